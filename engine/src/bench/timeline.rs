//! Samples of the pipeline over time: rows produced (acknowledged by Kafka)
//! and rows counted in ClickHouse. Lag is their difference; rates are the
//! differences between samples.

/// One sample.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sample {
    /// Seconds since the producer started.
    pub t: f64,
    pub produced_rows: u64,
    pub clickhouse_rows: u64,
}

/// The samples of one run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Timeline {
    pub samples: Vec<Sample>,
}

impl Timeline {
    /// Largest produced − inserted difference seen.
    pub fn peak_lag_rows(&self) -> u64 {
        self.samples
            .iter()
            .map(|s| s.produced_rows.saturating_sub(s.clickhouse_rows))
            .max()
            .unwrap_or(0)
    }

    /// Time of the first sample with rows in ClickHouse.
    pub fn first_insert_t(&self) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.clickhouse_rows > 0)
            .map(|s| s.t)
    }

    /// (t, producer rows/s, consumer rows/s, lag rows) per interval.
    pub fn rates(&self) -> Vec<(f64, f64, f64, f64)> {
        self.samples
            .windows(2)
            .map(|w| {
                let dt = (w[1].t - w[0].t).max(1e-6);
                (
                    w[1].t,
                    w[1].produced_rows.saturating_sub(w[0].produced_rows) as f64 / dt,
                    w[1].clickhouse_rows.saturating_sub(w[0].clickhouse_rows) as f64 / dt,
                    w[1].produced_rows.saturating_sub(w[1].clickhouse_rows) as f64,
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_and_rates() {
        let tl = Timeline {
            samples: vec![
                Sample {
                    t: 0.0,
                    produced_rows: 0,
                    clickhouse_rows: 0,
                },
                Sample {
                    t: 1.0,
                    produced_rows: 100,
                    clickhouse_rows: 0,
                },
                Sample {
                    t: 2.0,
                    produced_rows: 150,
                    clickhouse_rows: 120,
                },
            ],
        };
        assert_eq!(tl.peak_lag_rows(), 100);
        assert_eq!(tl.first_insert_t(), Some(2.0));
        assert_eq!(tl.rates()[1], (2.0, 50.0, 120.0, 30.0));
    }
}
