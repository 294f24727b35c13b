//! The Grafana dashboard (infra/grafana/dashboards/velostream.json) against
//! the metric contract (`velostream::metrics::ALL`): statically, every query
//! names only exported metrics and every metric has a panel; live, every
//! panel query returns data from a real Prometheus scraping a real
//! `velostream bench` run.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use velostream::metrics;

use crate::harness;
use crate::harness::cmd::velostream;

/// Metrics exported as Prometheus histograms (`_bucket`, `_sum`, `_count`):
/// the names `metrics::install` configures buckets for.
const HISTOGRAMS: &[&str] = &[
    metrics::PRODUCER_MESSAGE_SIZE,
    metrics::PRODUCER_SEND_LATENCY,
    metrics::CONSUMER_INSERT_LATENCY,
    metrics::CONSUMER_INSERT_ROWS,
];

/// Panels the dashboard must have (title fragments).
const REQUIRED_PANELS: &[&str] = &[
    "Producer throughput (rows/s)",
    "Producer throughput (bytes/s)",
    "Consumer throughput (rows/s)",
    "Consumer throughput (bytes/s)",
    "Consumer lag (rows) per partition",
    "Consumer lag (messages) per partition",
    "Total rows in ClickHouse",
    "Insert latency p50 / p99",
    "Retries and dead letters",
    "Bytes per row",
];

fn dashboard() -> Value {
    let path = harness::repo_root().join("infra/grafana/dashboards/velostream.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()))
}

/// Every panel, including panels nested in collapsed rows.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("dashboard has panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// (panel title, refId, expr) of every query.
fn queries(dash: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for p in panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            let expr = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {title:?}: target without a string expr: {t}"));
            out.push((
                title,
                t["refId"].as_str().unwrap_or("?").to_string(),
                expr.to_string(),
            ));
        }
    }
    out
}

/// Identifiers starting with `velostream_` outside label matchers, strings
/// and grouping lists.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let (mut i, mut braces) = (0, 0usize);
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
            }
            c if braces == 0 && (c.is_ascii_alphabetic() || c == '_' || c == ':') => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word.starts_with("velostream_") {
                    names.push(word);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// The contract name a series name refers to, if any.
fn contract_name(series: &str) -> Option<&'static str> {
    if let Some(name) = metrics::ALL.iter().find(|n| **n == series) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = series.strip_suffix(suffix)?;
        HISTOGRAMS.iter().find(|h| **h == base).copied()
    })
}

fn balanced(expr: &str) -> bool {
    let mut stack = Vec::new();
    for c in expr.chars() {
        let open = match c {
            '(' | '[' | '{' => {
                stack.push(c);
                continue;
            }
            ')' => '(',
            ']' => '[',
            '}' => '{',
            _ => continue,
        };
        if stack.pop() != Some(open) {
            return false;
        }
    }
    stack.is_empty()
}

#[test]
fn histograms_listed_here_are_in_the_metric_contract() {
    for h in HISTOGRAMS {
        assert!(
            metrics::ALL.contains(h),
            "{h} is not in velostream::metrics::ALL"
        );
    }
}

#[test]
fn metric_name_scanner_skips_labels_and_strings() {
    let names = metric_names(
        "sum by (partition) (rate(velostream_a_total{job=\"velostream_x\"}[1m])) / velostream_b",
    );
    assert_eq!(names, vec!["velostream_a_total", "velostream_b"]);
}

#[test]
fn dashboard_queries_use_only_contract_metrics_and_cover_all_of_them() {
    let dash = dashboard();
    assert_eq!(dash["uid"], "velostream");
    let queries = queries(&dash);
    assert!(!queries.is_empty(), "dashboard has no queries");
    let mut used = BTreeSet::new();
    for (title, ref_id, expr) in &queries {
        assert!(
            balanced(expr),
            "panel {title:?} {ref_id}: unbalanced brackets in {expr:?}"
        );
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "panel {title:?} {ref_id}: no velostream metric in {expr:?}"
        );
        for name in names {
            let base = contract_name(&name).unwrap_or_else(|| {
                panic!(
                    "panel {title:?} {ref_id}: {name} is not in velostream::metrics::ALL \
                     (histograms may add _bucket/_sum/_count): {expr:?}"
                )
            });
            used.insert(base);
        }
    }
    let unused: Vec<_> = metrics::ALL.iter().filter(|m| !used.contains(*m)).collect();
    assert!(
        unused.is_empty(),
        "metrics without a dashboard panel: {unused:?}"
    );

    let titles: Vec<&str> = panels(&dash)
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for want in REQUIRED_PANELS {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "no panel titled {want:?}; panels: {titles:?}"
        );
    }
}

#[test]
fn dashboard_panels_use_the_provisioned_datasource_and_do_not_overlap() {
    let dash = dashboard();
    let provisioning = std::fs::read_to_string(
        harness::repo_root().join("infra/grafana/provisioning/datasources/prometheus.yml"),
    )
    .unwrap();
    let mut cells = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for p in panels(&dash) {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate panel id in {title:?}"
        );
        if p["type"] != "row" {
            let uid = p["datasource"]["uid"]
                .as_str()
                .unwrap_or_else(|| panic!("{title:?}: no datasource uid"));
            assert!(
                provisioning.contains(&format!("uid: {uid}")),
                "{title:?}: datasource {uid} is not provisioned"
            );
        }
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "{title:?} is wider than the grid");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "{title:?} overlaps another panel at ({cx}, {cy})"
                );
            }
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Grafana variables the queries use, replaced as Grafana would for a 1 s
/// scrape interval.
/// Grafana's variables as a query over the run would see them; rate
/// windows span `rate_window` (Grafana sizes `$__rate_interval` from the
/// scrape interval; here the whole run, so that scrapes delayed on a loaded
/// machine still leave two samples in a window).
fn grafana_expand(expr: &str, rate_window: &str) -> String {
    expr.replace("$__rate_interval", rate_window)
        .replace("$__interval", "1s")
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_bench_run() {
    let brokers = harness::kafka_brokers();
    let clickhouse = harness::clickhouse_url();
    let metrics_addr = format!("127.0.0.1:{}", harness::free_port());
    let target = harness::scrape(&metrics_addr);
    // Long enough (several seconds of producing and inserting at a 1 s
    // scrape interval) for every rate() window to see increases.
    let rows = 1_000_000u64;

    let data_dir = tempfile::tempdir().unwrap();

    let start = unix_now() - 2.0;
    let out = velostream()
        .args(["bench", "--rows", &rows.to_string(), "--brokers", &brokers])
        .args(["--clickhouse-url", &clickhouse])
        .args(["--metrics-addr", &metrics_addr])
        // Keep /metrics up before the run (so the producer's short run has
        // a zero baseline scraped before it) and after it (final values).
        .args(["--insert-rows", "50000", "--hold-metrics-secs", "6"])
        .arg("--data-dir")
        .arg(data_dir.path())
        .timeout(Duration::from_secs(600))
        .expect_success();
    let elapsed = out.elapsed;
    eprintln!("dashboard: bench of {rows} rows took {elapsed:?}");
    // Let Prometheus ingest the last scrape.
    std::thread::sleep(Duration::from_secs(2));
    let end = unix_now();

    let selector = format!("{{test=\"{}\"}}", target.label);
    let scraped = harness::prom_query_range(&format!("up{selector}"), start, end, 1.0);
    let up_samples = scraped
        .iter()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .filter(|v| v[1] == "1")
        .count();
    assert!(
        up_samples >= 2,
        "Prometheus scraped the bench at {metrics_addr} only {up_samples} times in {elapsed:?}: {scraped:?}"
    );

    let mut failures = Vec::new();
    // The metrics agree with what the run did (last scraped values).
    let window = (end - start).ceil() as u64 + 1;
    for name in [
        metrics::PRODUCER_ROWS,
        metrics::CONSUMER_INSERTED_ROWS,
        metrics::CLICKHOUSE_ROWS,
    ] {
        let result =
            harness::prom_query(&format!("max(last_over_time({name}{selector}[{window}s]))"));
        let value = result
            .first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok());
        if value != Some(rows as f64) {
            failures.push(format!(
                "{name}: last scraped value {value:?}, expected {rows} after the bench"
            ));
        }
    }
    for (title, ref_id, expr) in queries(&dashboard()) {
        let expr = grafana_expand(&expr, &format!("{window}s"));
        let series = harness::prom_query_range(&expr, start, end, 1.0);
        let finite = series
            .iter()
            .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v[1].as_str().and_then(|x| x.parse::<f64>().ok()))
            .filter(|x| x.is_finite())
            .count();
        if finite == 0 {
            failures.push(format!(
                "{title} [{ref_id}] {expr}: {} series, no finite sample",
                series.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "dashboard metrics wrong or without data over the bench run:\n{}",
        failures.join("\n")
    );
}
