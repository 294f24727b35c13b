//! Prometheus scraping file_sd targets: `targets.json` (the bench) and one
//! file per test under `targets.d/`, configured from
//! `infra/prometheus/local.yml`.

use std::path::Path;
use std::process::Command;

use super::output::Endpoints;
use super::state::{create_dir, Ports, ServiceDir};
use super::supervisor::{Ctx, Spec};
use super::{binaries, health, ports, process, templates, Service};
use crate::{Error, Result};

/// The Prometheus service.
#[derive(Clone, Copy, Debug)]
pub struct Prometheus;

impl Spec for Prometheus {
    fn service(&self) -> Service {
        Service::Prometheus
    }

    fn proc_name(&self) -> &'static str {
        "prometheus"
    }

    fn launch(&self, dir: &ServiceDir, _ctx: &Ctx) -> Result<u32> {
        let bin = binaries::prometheus()?;
        let port = ports::free_port()?;
        create_dir(&dir.file("data"))?;
        create_dir(&dir.file("targets.d"))?;
        let targets = dir.file("targets.json");
        if !targets.exists() {
            dir.write("targets.json", "[]\n")?;
        }
        let config = templates::PROMETHEUS_LOCAL.render(&[
            ("TARGETS_FILE", targets.display().to_string()),
            ("TARGETS_DIR", dir.file("targets.d").display().to_string()),
        ])?;
        dir.write("prometheus.yml", &config)?;
        let mut recorded = Ports::default();
        recorded.set("http", port);
        dir.set_ports(&recorded)?;
        let mut cmd = Command::new(bin);
        cmd.arg(format!(
            "--config.file={}",
            dir.file("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.file("data").display()
        ))
        .arg("--storage.tsdb.retention.time=2d")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-lifecycle")
        .current_dir(dir.path());
        process::spawn_group(&mut cmd, &dir.log())
    }

    fn healthy(&self, dir: &ServiceDir) -> bool {
        dir.ports()
            .get("http")
            .is_some_and(health::prometheus_ready)
    }

    fn endpoints(&self, dir: &ServiceDir) -> Endpoints {
        Endpoints {
            prometheus_url: dir
                .ports()
                .get("http")
                .map(|p| format!("http://127.0.0.1:{p}")),
            prometheus_targets: Some(dir.file("targets.json")),
            ..Endpoints::default()
        }
    }
}

/// Writes a Prometheus file_sd target file atomically (write + rename), so
/// Prometheus never reads a half-written file. `targets` are `host:port`
/// addresses serving `/metrics`; `labels` are attached to every series.
pub fn write_scrape_targets(
    path: &Path,
    targets: &[String],
    labels: &[(&str, &str)],
) -> Result<()> {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_string(),
                serde_json::Value::String((*v).to_string()),
            )
        })
        .collect();
    let doc = serde_json::json!([{ "targets": targets, "labels": labels }]);
    let tmp = path.with_extension("json.tmp");
    let ctx = |op: &str, p: &Path| format!("{op} Prometheus targets {}", p.display());
    std::fs::write(&tmp, doc.to_string()).map_err(|e| Error::io(ctx("writing", &tmp), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(ctx("renaming to", path), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_target_file_is_valid_file_sd_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.json");
        write_scrape_targets(&path, &["127.0.0.1:9464".into()], &[("run", "r1")]).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v[0]["targets"][0], "127.0.0.1:9464");
        assert_eq!(v[0]["labels"]["run"], "r1");
        assert!(!dir.path().join("targets.json.tmp").exists());
    }
}
