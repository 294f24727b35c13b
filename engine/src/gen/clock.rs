//! Pickup times: rows are spread over January 2024 in order, following an
//! hourly demand curve with daily and weekly cycles, so pickup times grow
//! through the data set like in a monthly TLC file.

/// 2024-01-01T00:00:00 (a Monday), seconds since the Unix epoch.
pub const MONTH_START: i64 = 1_704_067_200;
/// Days in the month.
const DAYS: usize = 31;

/// Relative demand per hour of a weekday (0 = midnight).
const WEEKDAY: [f64; 24] = [
    0.45, 0.28, 0.18, 0.12, 0.10, 0.13, 0.32, 0.60, 0.78, 0.82, 0.84, 0.88, 0.92, 0.95, 1.00, 1.02,
    1.00, 1.08, 1.14, 1.05, 0.95, 0.92, 0.86, 0.66,
];
/// Relative demand per hour of a weekend day: late nights busier, mornings quieter.
const WEEKEND: [f64; 24] = [
    0.85, 0.70, 0.52, 0.36, 0.22, 0.14, 0.14, 0.20, 0.32, 0.48, 0.66, 0.80, 0.90, 0.95, 0.98, 0.98,
    0.97, 0.98, 1.00, 0.95, 0.88, 0.85, 0.86, 0.84,
];
/// Day-of-week factor, Monday first.
const DAY_FACTOR: [f64; 7] = [0.88, 0.98, 1.04, 1.10, 1.08, 1.02, 0.84];

/// Inverse cumulative demand over the month's hours.
#[derive(Clone, Debug)]
pub struct MonthClock {
    /// Cumulative demand at the end of each hour, normalised to 1.
    cumulative: Vec<f64>,
}

impl MonthClock {
    /// The January 2024 demand curve.
    pub fn new() -> MonthClock {
        let mut cumulative = Vec::with_capacity(DAYS * 24);
        let mut acc = 0.0;
        for day in 0..DAYS {
            let dow = day % 7; // 2024-01-01 is a Monday
            let profile = if dow >= 5 { &WEEKEND } else { &WEEKDAY };
            for demand in profile {
                acc += demand * DAY_FACTOR[dow];
                cumulative.push(acc);
            }
        }
        for c in &mut cumulative {
            *c /= acc;
        }
        MonthClock { cumulative }
    }

    /// Seconds since the month start at demand quantile `u` in [0, 1).
    #[inline]
    pub fn seconds_at(&self, u: f64) -> i64 {
        let u = u.clamp(0.0, 1.0);
        let hour = self
            .cumulative
            .partition_point(|c| *c <= u)
            .min(self.cumulative.len() - 1);
        let lo = if hour == 0 {
            0.0
        } else {
            self.cumulative[hour - 1]
        };
        let hi = self.cumulative[hour];
        let within = if hi > lo { (u - lo) / (hi - lo) } else { 0.0 };
        hour as i64 * 3600 + (within * 3600.0) as i64
    }
}

impl Default for MonthClock {
    fn default() -> Self {
        MonthClock::new()
    }
}

/// Hour of day (0..24) and whether the day is a weekend, for seconds since
/// the month start.
#[inline]
pub fn hour_and_weekend(seconds: i64) -> (u32, bool) {
    let day = seconds.div_euclid(86_400);
    let hour = (seconds.rem_euclid(86_400) / 3600) as u32;
    (hour, day.rem_euclid(7) >= 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotone_over_the_month_with_quiet_nights() {
        let clock = MonthClock::new();
        let mut last = -1;
        let mut by_hour = [0u32; 24];
        let n = 100_000;
        for i in 0..n {
            let s = clock.seconds_at(i as f64 / n as f64);
            assert!(s >= last);
            assert!(s < 31 * 86_400);
            last = s;
            by_hour[hour_and_weekend(s).0 as usize] += 1;
        }
        assert!(by_hour[18] > 5 * by_hour[4], "{by_hour:?}");
    }
}
