//! Pickup times: rows are spread in order over the days from 2024-01-01,
//! following an hourly demand curve with daily and weekly cycles, so pickup
//! times grow through the data set like in the monthly TLC files.
//!
//! The span is January 2024 (31 days) for up to [`TRIPS_PER_DAY`]·31 rows and
//! grows with the row count beyond that, keeping the real files' density of
//! about 96 000 trips a day (January 2024 had 2.96 M): a larger data set looks
//! like several consecutive monthly files, not one impossibly busy month.

/// 2024-01-01T00:00:00 (a Monday), seconds since the Unix epoch.
pub const MONTH_START: i64 = 1_704_067_200;
/// Minimum span in days (January).
const MIN_DAYS: u64 = 31;
/// Trips per day in the real January 2024 yellow-taxi file, rounded.
pub const TRIPS_PER_DAY: u64 = 96_000;

/// Days covered by a data set of `rows` trips.
pub fn span_days(rows: u64) -> u64 {
    rows.div_ceil(TRIPS_PER_DAY).max(MIN_DAYS)
}

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

/// Inverse cumulative demand over the span's hours.
#[derive(Clone, Debug)]
pub struct MonthClock {
    /// Cumulative demand at the end of each hour, normalised to 1.
    cumulative: Vec<f64>,
}

impl MonthClock {
    /// The demand curve over `days` days from 2024-01-01.
    pub fn new(days: u64) -> MonthClock {
        let days = days.max(1) as usize;
        let mut cumulative = Vec::with_capacity(days * 24);
        let mut acc = 0.0;
        for day in 0..days {
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

    /// Seconds since 2024-01-01 at demand quantile `u` in [0, 1).
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

/// Hour of day (0..24) and whether the day is a weekend, for seconds since
/// 2024-01-01.
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
        let clock = MonthClock::new(31);
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

    #[test]
    fn span_keeps_the_real_daily_volume() {
        assert_eq!(span_days(1), 31);
        assert_eq!(span_days(2_976_000), 31);
        assert_eq!(span_days(10_000_000), 105);
        let clock = MonthClock::new(105);
        assert!(clock.seconds_at(0.999_999) > 104 * 86_400);
    }
}
