//! The performance targets, checked on the ratios of one report
//! (`velostream bench --targets`, used by `benches/e2e.sh`). They are
//! ratios measured side by side in the same run, never absolute timings.

use super::report::Report;

/// One target and how the run did against it.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub what: &'static str,
    /// The measured ratio, `None` when its comparison did not run.
    pub value: Option<f64>,
    pub at_least: bool,
    pub bound: f64,
}

impl Target {
    /// Whether the ratio was measured and is on the right side of the bound.
    pub fn met(&self) -> bool {
        self.value.is_some_and(|v| {
            if self.at_least {
                v >= self.bound
            } else {
                v <= self.bound
            }
        })
    }
}

/// The targets of the end-to-end comparison.
pub fn targets(r: &Report) -> Vec<Target> {
    let ratios = r.ratios.clone().unwrap_or_default();
    let t = |what, value, at_least, bound| Target {
        what,
        value,
        at_least,
        bound,
    };
    vec![
        t(
            "end-to-end rows/s vs ClickHouse native-file insert",
            ratios.end_to_end_vs_native_file,
            true,
            0.8,
        ),
        t(
            "end-to-end rows/s vs per-row JSON pipeline",
            ratios.end_to_end_vs_json_rows,
            true,
            10.0,
        ),
        t(
            "Kafka bytes/row vs JSON",
            ratios.wire_bytes_per_row_vs_json_rows,
            false,
            0.2,
        ),
        t(
            "producer rows/s vs bare Parquet decode",
            ratios.producer_vs_parquet_decode,
            true,
            0.8,
        ),
        t(
            "consumer CPU s/Mrow vs JSON",
            ratios.consumer_cpu_vs_json_rows,
            false,
            0.1,
        ),
    ]
}

/// The targets as lines of text, with the CPU budget when it is known.
pub fn render(r: &Report) -> String {
    let mut out = String::from("Targets (ratios measured in this run):\n");
    for t in targets(r) {
        let (mark, value) = match t.value {
            Some(v) => (if t.met() { "MET " } else { "MISS" }, format!("{v:8.3}")),
            None => ("----", "not run".to_string()),
        };
        let op = if t.at_least { ">=" } else { "<=" };
        out.push_str(&format!(
            "  {mark} {:<58} {value} (target {op} {})\n",
            t.what, t.bound
        ));
    }
    if let Some(n) = r.ratios.as_ref().and_then(|x| x.native_file_vs_json_rows) {
        out.push_str(&format!(
            "       (ClickHouse's own Native insert is {n:.2} x the JSON pipeline: \
             the most any pipeline into this server can reach)\n"
        ));
    }
    if let Some(b) = &r.cpu_budget {
        out.push_str(&format!(
            "  CPU s per million rows: producer {:.3}, consumer {:.3}, librdkafka {:.3}, \
             tansu {:.3}, ClickHouse {:.3} = {:.3} on {:.0} cores (machine busy {:.2} cores)\n",
            b.producer,
            b.consumer,
            b.kafka_client,
            b.tansu,
            b.clickhouse,
            b.total,
            b.cpus,
            r.run.machine_busy_cores
        ));
        out.push_str(&format!(
            "  CPU-bound ceiling: {:.0} rows/s end to end; ratio vs native-file at most {}\n",
            b.end_to_end_ceiling_rows_per_s,
            b.end_to_end_vs_native_file_ceiling
                .map_or("unknown".to_string(), |c| format!("{c:.3}"))
        ));
    }
    out.push_str(&format!(
        "  validated: {}, rows: {}\n",
        r.validated, r.rows_clickhouse
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::sample;
    use super::*;

    #[test]
    fn each_target_is_met_or_missed_from_its_ratio_and_absent_ones_are_not_met() {
        let mut r = sample();
        let got: Vec<(bool, Option<f64>)> =
            targets(&r).iter().map(|t| (t.met(), t.value)).collect();
        // e2e/native 0.5 < 0.8; e2e/json 20 >= 10; bytes 0.075 <= 0.2;
        // producer 0.8 >= 0.8; CPU 0.052 <= 0.1.
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            [false, true, true, true, true]
        );
        let text = render(&r);
        assert!(
            text.contains("MISS end-to-end rows/s vs ClickHouse native-file insert"),
            "{text}"
        );
        assert!(text.contains("validated: true, rows: 1000"), "{text}");
        r.ratios = None;
        assert!(targets(&r).iter().all(|t| !t.met() && t.value.is_none()));
        assert!(render(&r).contains("not run"));
    }
}
