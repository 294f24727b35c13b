//! Prometheus: registering scrape targets with the test server, PromQL
//! queries, and reading a process's own `/metrics` page.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::http::{self, url_encode};
use super::paths::unique_name;
use super::services::{prometheus_targets, prometheus_url};

/// A scrape target registered with the test Prometheus; removed on drop.
#[derive(Debug)]
pub struct ScrapeTarget {
    /// The file_sd file holding this target.
    pub file: PathBuf,
    /// `host:port` scraped.
    pub address: String,
    /// Value of the `test` label on every scraped series.
    pub label: String,
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Registers `address` (`host:port` serving `/metrics`) with the test
/// Prometheus. Every series scraped from it carries the label
/// `test="<label>"`, where `label` is unique, so queries can select it.
pub fn scrape(address: &str) -> ScrapeTarget {
    let targets = prometheus_targets();
    let dir = targets
        .parent()
        .expect("target file has a parent directory")
        .join("targets.d");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let label = unique_name("scrape");
    let file = dir.join(format!("{label}.json"));
    velostream::local::write_scrape_targets(&file, &[address.to_string()], &[("test", &label)])
        .unwrap_or_else(|e| panic!("{e}"));
    ScrapeTarget {
        file,
        address: address.to_string(),
        label,
    }
}

/// Waits until Prometheus reports `target` as scraped successfully.
pub fn wait_for_scrape(target: &ScrapeTarget, timeout: Duration) {
    let url = format!("{}/api/v1/targets?state=active", prometheus_url());
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(body) = http::get_ok(&url) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let up = v["data"]["activeTargets"].as_array().is_some_and(|ts| {
                ts.iter()
                    .any(|t| t["labels"]["test"] == target.label.as_str() && t["health"] == "up")
            });
            if up {
                return;
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "Prometheus {} did not scrape {} within {timeout:?}; targets: {last}",
        prometheus_url(),
        target.address
    );
}

/// Runs a PromQL range query and returns `data.result` (one entry per series).
pub fn prom_query_range(expr: &str, start: f64, end: f64, step: f64) -> Vec<serde_json::Value> {
    api(
        expr,
        &format!(
            "query_range?query={}&start={start:.3}&end={end:.3}&step={step}",
            url_encode(expr)
        ),
    )
}

/// Runs an instant PromQL query and returns `data.result`.
pub fn prom_query(expr: &str) -> Vec<serde_json::Value> {
    api(expr, &format!("query?query={}", url_encode(expr)))
}

fn api(expr: &str, path: &str) -> Vec<serde_json::Value> {
    let url = format!("{}/api/v1/{path}", prometheus_url());
    let r = http::get(&url).unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("{url}: HTTP {}: not JSON ({e}): {}", r.status, r.body));
    assert!(
        r.status == 200 && v["status"] == "success",
        "Prometheus query {expr:?}: HTTP {}: {}",
        r.status,
        r.body
    );
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The `/metrics` page served at `addr` (`host:port`), if it answers 200.
pub fn metrics_page(addr: &str) -> Option<String> {
    http::get_ok(&format!("http://{addr}/metrics")).ok()
}

/// The value of the unlabelled sample `name` on the `/metrics` page at
/// `addr`, if the page answers and has it.
pub fn metric_value(addr: &str, name: &str) -> Option<f64> {
    let page = metrics_page(addr)?;
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
