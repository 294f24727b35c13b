//! The bench report: a table on the terminal and JSON with fixed top-level keys.

use serde_json::{json, Value};

use super::decode::DecodeResult;
use super::native_file::NativeFileResult;
use super::pipeline::RunResult;

/// Throughput and cost figures of one pipeline run.
pub fn run_json(r: &RunResult) -> Value {
    let rows = r.produce.rows.max(1) as f64;
    let p = &r.produce;
    let consumer_rows: u64 = r.consumers.iter().map(|c| c.rows_inserted).sum();
    json!({
        "rows": r.rows_clickhouse,
        "producer": {
            "rows_per_s": p.rows as f64 / p.elapsed_secs.max(1e-9),
            "mb_per_s": p.wire_bytes as f64 / p.elapsed_secs.max(1e-9) / 1e6,
            "messages_per_s": p.messages as f64 / p.elapsed_secs.max(1e-9),
            "messages": p.messages,
            "seconds": p.elapsed_secs,
            "cpu_seconds_per_million_rows": r.cpu.producer / rows * 1e6,
        },
        "consumer": {
            "rows_per_s": r.rows_clickhouse as f64 / r.consumer_secs.max(1e-9),
            "rows_inserted": consumer_rows,
            "seconds": r.consumer_secs,
            "cpu_seconds_per_million_rows": r.cpu.consumer / rows * 1e6,
        },
        "kafka_client_cpu_seconds_per_million_rows": r.cpu.kafka_client / rows * 1e6,
        "services_cpu_seconds_per_million_rows": r
            .services_cpu
            .iter()
            .map(|(k, v)| (k.clone(), json!(v / rows * 1e6)))
            .collect::<serde_json::Map<_, _>>(),
        "machine_busy_cores": r.machine_busy_cores,
        "end_to_end_rows_per_s": r.rows_clickhouse as f64 / r.end_to_end_secs.max(1e-9),
        "end_to_end_seconds": r.end_to_end_secs,
        "wire_bytes_per_row": p.wire_bytes as f64 / rows,
        "peak_lag_rows": r.timeline.peak_lag_rows(),
        "peak_lag_messages": peak_lag_messages(r),
    })
}

/// Lag in messages, from lag in rows and the run's rows per message.
fn peak_lag_messages(r: &RunResult) -> u64 {
    let per_msg = r.produce.rows as f64 / r.produce.messages.max(1) as f64;
    (r.timeline.peak_lag_rows() as f64 / per_msg.max(1.0)).ceil() as u64
}

/// The side-by-side measurements of one bench run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Comparisons<'a> {
    pub json_rows: Option<&'a RunResult>,
    pub native: Option<&'a NativeFileResult>,
    pub decode: Option<&'a DecodeResult>,
}

/// The full report document.
pub fn document(
    rows_source: u64,
    main: &RunResult,
    validated: bool,
    differences: &[String],
    cmp: Comparisons<'_>,
    machine: Value,
) -> Value {
    let Comparisons {
        json_rows,
        native,
        decode,
    } = cmp;
    let m = run_json(main);
    let mut doc = json!({
        "rows_source": rows_source,
        "rows_clickhouse": main.rows_clickhouse,
        "validated": validated,
        "differences": differences,
        "producer": m["producer"],
        "consumer": m["consumer"],
        "end_to_end_rows_per_s": m["end_to_end_rows_per_s"],
        "end_to_end_seconds": m["end_to_end_seconds"],
        "wire_bytes_per_row": m["wire_bytes_per_row"],
        "peak_lag_rows": m["peak_lag_rows"],
        "peak_lag_messages": m["peak_lag_messages"],
        "kafka_client_cpu_seconds_per_million_rows": m["kafka_client_cpu_seconds_per_million_rows"],
        "services_cpu_seconds_per_million_rows": m["services_cpu_seconds_per_million_rows"],
        "machine_busy_cores": m["machine_busy_cores"],
        "machine": machine,
    });
    if let Some(b) = cpu_budget(&m, native, doc["machine"]["cpus"].as_f64()) {
        doc["cpu_budget"] = b;
    }
    let mut compare = serde_json::Map::new();
    let mut ratios = serde_json::Map::new();
    let e2e = m["end_to_end_rows_per_s"].as_f64().unwrap_or(0.0);
    if let Some(j) = json_rows {
        let jj = run_json(j);
        let j_e2e = jj["end_to_end_rows_per_s"].as_f64().unwrap_or(0.0);
        let j_bpr = jj["wire_bytes_per_row"].as_f64().unwrap_or(0.0);
        let j_cpu = jj["consumer"]["cpu_seconds_per_million_rows"]
            .as_f64()
            .unwrap_or(0.0);
        compare.insert("json-rows".into(), jj);
        ratios.insert(
            "end_to_end_vs_json_rows".into(),
            json!(e2e / j_e2e.max(1e-9)),
        );
        ratios.insert(
            "wire_bytes_per_row_vs_json_rows".into(),
            json!(m["wire_bytes_per_row"].as_f64().unwrap_or(0.0) / j_bpr.max(1e-9)),
        );
        ratios.insert(
            "consumer_cpu_vs_json_rows".into(),
            json!(
                m["consumer"]["cpu_seconds_per_million_rows"]
                    .as_f64()
                    .unwrap_or(0.0)
                    / j_cpu.max(1e-9)
            ),
        );
    }
    if let Some(n) = native {
        compare.insert(
            "native-file".into(),
            serde_json::to_value(n).unwrap_or(Value::Null),
        );
        ratios.insert(
            "end_to_end_vs_native_file".into(),
            json!(e2e / n.rows_per_s.max(1e-9)),
        );
        // What the JSON ratio would be if the pipeline ran exactly as fast as
        // ClickHouse's own insert of the same rows: no pipeline can beat it.
        if let Some(j_e2e) = compare
            .get("json-rows")
            .and_then(|j| j["end_to_end_rows_per_s"].as_f64())
        {
            ratios.insert(
                "native_file_vs_json_rows".into(),
                json!(n.rows_per_s / j_e2e.max(1e-9)),
            );
        }
    }
    if let Some(d) = decode {
        compare.insert(
            "parquet-decode".into(),
            serde_json::to_value(d).unwrap_or(Value::Null),
        );
        ratios.insert(
            "producer_vs_parquet_decode".into(),
            json!(m["producer"]["rows_per_s"].as_f64().unwrap_or(0.0) / d.rows_per_s.max(1e-9)),
        );
    }
    if !compare.is_empty() {
        doc["compare"] = Value::Object(compare);
        doc["ratios"] = Value::Object(ratios);
    }
    doc
}

/// What the measured CPU costs allow on this machine: every process of the
/// pipeline (producer, consumer, librdkafka, tansu, ClickHouse) shares the
/// same cores, so `cores / total CPU per row` bounds the end-to-end rate even
/// with perfect overlap; divided by the native-file rate it bounds the
/// end-to-end / native-file ratio. Needs the services' CPU (local services).
fn cpu_budget(m: &Value, native: Option<&NativeFileResult>, cpus: Option<f64>) -> Option<Value> {
    let services = m["services_cpu_seconds_per_million_rows"].as_object()?;
    let clickhouse = services.get("clickhouse")?.as_f64()?;
    let tansu = services.get("tansu").and_then(Value::as_f64).unwrap_or(0.0);
    let producer = m["producer"]["cpu_seconds_per_million_rows"].as_f64()?;
    let consumer = m["consumer"]["cpu_seconds_per_million_rows"].as_f64()?;
    let client = m["kafka_client_cpu_seconds_per_million_rows"].as_f64()?;
    let total = producer + consumer + client + tansu + clickhouse;
    let cpus = cpus.filter(|c| *c > 0.0)?;
    let ceiling = cpus * 1e6 / total.max(1e-9);
    let mut b = json!({
        "cpus": cpus,
        "producer": producer,
        "consumer": consumer,
        "kafka_client": client,
        "tansu": tansu,
        "clickhouse": clickhouse,
        "total": total,
        "end_to_end_ceiling_rows_per_s": ceiling,
    });
    if let Some(n) = native {
        b["native_file_clickhouse"] = json!(n.clickhouse_cpu_seconds_per_million_rows);
        b["end_to_end_vs_native_file_ceiling"] = json!(ceiling / n.rows_per_s.max(1e-9));
    }
    Some(b)
}

/// The human table.
pub fn table(doc: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<42} {v}\n"));
    line(
        "rows (source / ClickHouse)",
        format!("{} / {}", doc["rows_source"], doc["rows_clickhouse"]),
    );
    line(
        "validated (count + column checksums)",
        format!("{}", doc["validated"]),
    );
    line(
        "producer rows/s",
        format!("{:.0}", f(&doc["producer"]["rows_per_s"])),
    );
    line(
        "producer MB/s (wire)",
        format!("{:.1}", f(&doc["producer"]["mb_per_s"])),
    );
    line(
        "producer messages/s",
        format!("{:.1}", f(&doc["producer"]["messages_per_s"])),
    );
    line(
        "consumer rows/s",
        format!("{:.0}", f(&doc["consumer"]["rows_per_s"])),
    );
    line(
        "end-to-end rows/s",
        format!("{:.0}", f(&doc["end_to_end_rows_per_s"])),
    );
    line(
        "wire bytes/row",
        format!("{:.1}", f(&doc["wire_bytes_per_row"])),
    );
    line(
        "peak lag rows / messages",
        format!("{} / {}", doc["peak_lag_rows"], doc["peak_lag_messages"]),
    );
    line(
        "CPU s per M rows: producer / consumer",
        format!(
            "{:.2} / {:.2} (+{:.2} librdkafka threads)",
            f(&doc["producer"]["cpu_seconds_per_million_rows"]),
            f(&doc["consumer"]["cpu_seconds_per_million_rows"]),
            f(&doc["kafka_client_cpu_seconds_per_million_rows"])
        ),
    );
    if let Some(svc) = doc["services_cpu_seconds_per_million_rows"].as_object() {
        if !svc.is_empty() {
            let parts: Vec<String> = svc
                .iter()
                .map(|(k, v)| format!("{k} {:.2}", f(v)))
                .collect();
            line("CPU s per M rows: services", parts.join(" / "));
        }
    }
    line(
        "machine busy cores (all processes)",
        format!("{:.2}", f(&doc["machine_busy_cores"])),
    );
    if let Some(b) = doc.get("cpu_budget") {
        line(
            "CPU-bound ceiling of end-to-end rows/s",
            format!(
                "{:.0} ({} cores / {:.2} CPU s per M rows in all processes)",
                f(&b["end_to_end_ceiling_rows_per_s"]),
                b["cpus"],
                f(&b["total"])
            ),
        );
        if let Some(c) = b.get("end_to_end_vs_native_file_ceiling") {
            line(
                "ceiling of ratio end_to_end_vs_native_file",
                format!("{:.3}", f(c)),
            );
        }
    }
    if let Some(j) = doc.get("compare").and_then(|c| c.get("json-rows")) {
        line(
            "json-rows: end-to-end rows/s",
            format!("{:.0}", f(&j["end_to_end_rows_per_s"])),
        );
        line(
            "json-rows: wire bytes/row",
            format!("{:.1}", f(&j["wire_bytes_per_row"])),
        );
        line(
            "json-rows: consumer CPU s per M rows",
            format!("{:.2}", f(&j["consumer"]["cpu_seconds_per_million_rows"])),
        );
    }
    if let Some(n) = doc.get("compare").and_then(|c| c.get("native-file")) {
        line(
            "native-file insert rows/s",
            format!("{:.0} ({} streams)", f(&n["rows_per_s"]), n["streams"]),
        );
        if let Some(c) = n["clickhouse_cpu_seconds_per_million_rows"].as_f64() {
            line(
                "native-file: ClickHouse CPU s per M rows",
                format!(
                    "{c:.2} (machine busy cores {:.2})",
                    f(&n["machine_busy_cores"])
                ),
            );
        }
    }
    if let Some(d) = doc.get("compare").and_then(|c| c.get("parquet-decode")) {
        line(
            "bare Parquet decode rows/s",
            format!("{:.0} ({} threads)", f(&d["rows_per_s"]), d["threads"]),
        );
    }
    if let Some(r) = doc.get("ratios").and_then(Value::as_object) {
        for (k, v) in r {
            line(&format!("ratio {k}"), format!("{:.3}", f(v)));
        }
    }
    out
}
