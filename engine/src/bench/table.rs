//! The bench report as a table on the terminal.

use super::report::Report;

/// The human table of a report.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<42} {v}\n"));
    run_lines(r, &mut line);
    comparison_lines(r, &mut line);
    out
}

/// The VeloStream run: rows, rates, lag, CPU, shards.
fn run_lines(r: &Report, line: &mut impl FnMut(&str, String)) {
    let run = &r.run;
    line(
        "rows (source / ClickHouse)",
        format!("{} / {}", r.rows_source, r.rows_clickhouse),
    );
    line(
        "validated (count + column checksums)",
        r.validated.to_string(),
    );
    line("producer rows/s", format!("{:.0}", run.producer.rows_per_s));
    line(
        "producer MB/s (wire)",
        format!("{:.1}", run.producer.mb_per_s),
    );
    line(
        "producer messages/s",
        format!("{:.1}", run.producer.messages_per_s),
    );
    line("consumer rows/s", format!("{:.0}", run.consumer.rows_per_s));
    line(
        "end-to-end rows/s",
        format!("{:.0}", run.end_to_end_rows_per_s),
    );
    line("wire bytes/row", format!("{:.1}", run.wire_bytes_per_row));
    line(
        "peak lag rows / messages",
        format!("{} / {}", run.peak_lag_rows, run.peak_lag_messages),
    );
    line(
        "CPU s per M rows: producer / consumer",
        format!(
            "{:.2} / {:.2} (+{:.2} librdkafka threads)",
            run.producer.cpu_seconds_per_million_rows,
            run.consumer.cpu_seconds_per_million_rows,
            run.kafka_client_cpu_seconds_per_million_rows
        ),
    );
    let services = &run.services_cpu_seconds_per_million_rows;
    if !services.is_empty() {
        let parts: Vec<String> = services
            .iter()
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        line("CPU s per M rows: services", parts.join(" / "));
    }
    line(
        "machine busy cores (all processes)",
        format!("{:.2}", run.machine_busy_cores),
    );
    if let Some(b) = &r.cpu_budget {
        line(
            "CPU-bound ceiling of end-to-end rows/s",
            format!(
                "{:.0} ({} cores / {:.2} CPU s per M rows in all processes)",
                b.end_to_end_ceiling_rows_per_s, b.cpus, b.total
            ),
        );
        if let Some(c) = b.end_to_end_vs_native_file_ceiling {
            line(
                "ceiling of ratio end_to_end_vs_native_file",
                format!("{c:.3}"),
            );
        }
    }
    parts_and_freshness_lines(r, line);
    for s in &r.shards {
        line(
            &format!("shard {} (partitions {:?})", s.shard, s.partitions),
            format!("{} rows, {:.0} rows/s", s.rows, s.rows_per_s),
        );
    }
}

/// What the run cost ClickHouse in parts, and the freshness phase.
fn parts_and_freshness_lines(r: &Report, line: &mut impl FnMut(&str, String)) {
    let run = &r.run;
    if let Some(p) = &run.clickhouse_parts {
        line("ClickHouse parts / merges per M rows", parts_text(p));
    }
    if !run.consumer.inserts_by_reason.is_empty() {
        line(
            "inserts, by what ended them",
            inserts_text(&run.consumer.inserts_by_reason),
        );
    }
    if let Some(f) = &r.freshness {
        let share = f.share_of_backlog.map_or(String::new(), |s| {
            format!(", {:.0}% of the backlog rate", s * 100.0)
        });
        line(
            "freshness: steady rate",
            format!(
                "{:.0} rows/s for {:.1}s{share} ({} messages, {} rows, all visible)",
                f.rate_rows_per_s, f.seconds, f.messages, f.rows
            ),
        );
        line(
            "freshness: latency p50 / p99 / max",
            format!(
                "{:.3} / {:.3} / {:.3} s (ack -> visible, polled every {:.0} ms; peak lag {} rows)",
                f.latency_p50_s,
                f.latency_p99_s,
                f.latency_max_s,
                f.poll_interval_s * 1000.0,
                f.peak_lag_rows
            ),
        );
    }
}

/// The side-by-side measurements and their ratios.
fn comparison_lines(r: &Report, line: &mut impl FnMut(&str, String)) {
    let compare = r.compare.clone().unwrap_or_default();
    if let Some(j) = &compare.json_rows {
        line(
            "json-rows: end-to-end rows/s",
            format!("{:.0}", j.end_to_end_rows_per_s),
        );
        line(
            "json-rows: wire bytes/row",
            format!("{:.1}", j.wire_bytes_per_row),
        );
        line(
            "json-rows: consumer CPU s per M rows",
            format!("{:.2}", j.consumer.cpu_seconds_per_million_rows),
        );
    }
    if let Some(n) = &compare.native_file {
        line(
            "native-file insert rows/s",
            format!("{:.0} ({} streams)", n.rows_per_s, n.streams),
        );
        if let Some(c) = n.clickhouse_cpu_seconds_per_million_rows {
            line(
                "native-file: ClickHouse CPU s per M rows",
                format!("{c:.2} (machine busy cores {:.2})", n.machine_busy_cores),
            );
        }
        if let Some(p) = &n.clickhouse_parts {
            line("native-file: parts / merges per M rows", parts_text(p));
        }
    }
    if let Some(d) = &compare.parquet_decode {
        line(
            "bare Parquet decode rows/s",
            format!("{:.0} ({} threads)", d.rows_per_s, d.threads),
        );
    }
    for (k, v) in r.ratios.clone().unwrap_or_default().entries() {
        line(&format!("ratio {k}"), format!("{v:.3}"));
    }
}

/// `rows 70, caught_up 29, quiet 2`: most first.
fn inserts_text(by_reason: &std::collections::BTreeMap<String, u64>) -> String {
    let mut counts: Vec<_> = by_reason.iter().collect();
    counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let counts: Vec<String> = counts.iter().map(|(r, n)| format!("{r} {n}")).collect();
    counts.join(", ")
}

fn parts_text(p: &super::parts::PartActivity) -> String {
    format!(
        "{:.2} / {:.2} ({} parts created, {} merges done)",
        p.parts_per_million_rows, p.merges_per_million_rows, p.parts_created, p.merges
    )
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::sample;
    use super::*;

    #[test]
    fn the_table_shows_the_figures_shards_and_ratios() {
        let t = table(&sample());
        for want in [
            "rows (source / ClickHouse)                 1000 / 1000",
            "end-to-end rows/s                          800000",
            "shard 1 (partitions [0, 2])                500 rows, 500 rows/s",
            "native-file insert rows/s                  1600000 (2 streams)",
            "ratio end_to_end_vs_native_file            0.500",
            "inserts, by what ended them                caught_up 1, rows 1",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
    }
}
