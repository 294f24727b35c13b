//! The infra/ files that cannot run here (no Docker engine) are still
//! checked for real: the compose file validates with docker-compose and
//! mounts only files that exist, the Prometheus configs pass promtool, the
//! ClickHouse XML parses, and the generated local Prometheus config is valid.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness;

fn infra() -> PathBuf {
    harness::repo_root().join("infra")
}

/// Runs `program args`, panicking with the install hint when the program is
/// missing and with its output when it fails; returns stdout.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(harness::repo_root())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}; run {}", harness::INSTALL_COMMAND));
    assert!(
        out.status.success(),
        "{program} {}: {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn compose_file_is_valid_and_mounts_only_existing_files() {
    let resolved = run(
        "docker-compose",
        &["-f", "infra/docker-compose.yml", "config"],
    );
    let mut mounts = 0;
    for line in resolved.lines() {
        // Resolved bind mounts: `- /abs/source:/container/path[:ro]`.
        let Some(spec) = line.trim().strip_prefix("- /") else {
            continue;
        };
        if spec.contains(char::is_whitespace) || !spec.contains(":/") {
            continue; // a command or healthcheck argument, not a mount
        }
        let source = format!("/{}", spec.split(':').next().unwrap_or(""));
        assert!(
            Path::new(&source).exists(),
            "compose mounts {source}, which does not exist"
        );
        assert!(
            source.starts_with(infra().to_str().unwrap()),
            "compose mounts {source} from outside infra/"
        );
        mounts += 1;
    }
    assert!(
        mounts >= 6,
        "expected the ClickHouse, Prometheus and Grafana mounts, found {mounts}:\n{resolved}"
    );
    for image in [
        "apache/kafka:",
        "clickhouse/clickhouse-server:",
        "prom/prometheus:",
        "grafana/grafana:",
    ] {
        let line = resolved
            .lines()
            .find(|l| l.contains(image))
            .unwrap_or_else(|| panic!("no {image} image in the compose file"));
        assert!(!line.ends_with(":latest"), "{line}: pin a real tag");
    }
    // Every published port is bound to 127.0.0.1.
    let raw = std::fs::read_to_string(infra().join("docker-compose.yml")).unwrap();
    let mut in_ports = false;
    for line in raw.lines() {
        let t = line.trim();
        if t.ends_with(':') && !t.starts_with('-') {
            in_ports = t == "ports:";
        } else if in_ports && t.starts_with('-') {
            assert!(
                t.contains("\"127.0.0.1:"),
                "published port not bound to 127.0.0.1: {t}"
            );
        }
    }
}

#[test]
fn prometheus_configs_pass_promtool() {
    let compose_cfg = infra().join("prometheus/prometheus.yml");
    run(
        "promtool",
        &["check", "config", compose_cfg.to_str().unwrap()],
    );
}

#[test]
fn local_prometheus_config_generated_by_velostream_local_passes_promtool() {
    let url = harness::prometheus_url();
    // The config of the Prometheus the harness uses, read back from the server.
    let body = harness::http::get_ok(&format!("{url}/api/v1/status/config"))
        .unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let yaml = v["data"]["yaml"].as_str().unwrap();
    assert!(yaml.contains("scrape_interval: 1s"), "{yaml}");
    assert!(yaml.contains("file_sd_configs"), "{yaml}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, yaml).unwrap();
    run("promtool", &["check", "config", path.to_str().unwrap()]);
}

#[test]
fn clickhouse_config_files_are_well_formed_xml() {
    let files = [
        infra().join("clickhouse/config.d/velostream.xml"),
        infra().join("clickhouse/users.d/velostream.xml"),
        infra().join("clickhouse/local/config.xml"),
        infra().join("clickhouse/local/users.xml"),
        infra().join("clickhouse/local/https.xml"),
        infra().join("clickhouse/cluster/replica.xml"),
        infra().join("clickhouse/cluster/remote_servers.xml"),
        infra().join("clickhouse/keeper/keeper.xml"),
    ];
    let script = "import sys, xml.etree.ElementTree as ET\n\
                  for f in sys.argv[1:]:\n    root = ET.parse(f).getroot()\n    \
                  assert root.tag == 'clickhouse', (f, root.tag)\n";
    let mut args = vec!["-c", script];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    run(harness::venv_python().to_str().unwrap(), &args);
}

#[test]
fn clickhouse_init_sql_runs_on_a_real_server() {
    let url = harness::clickhouse_url();
    let dir = infra().join("clickhouse/initdb");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.sql in {}", dir.display());
    for file in files {
        let sql: String = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .map(|l| format!("{l}\n"))
            .collect();
        for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
            harness::ch_try_query(&url, statement)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
    }
    assert_eq!(
        harness::ch_query(
            &url,
            "SELECT count() FROM system.databases WHERE name = 'velostream'"
        ),
        "1\n"
    );
}

/// The `cluster` profile: Keeper and 2 shards x 2 replicas that mount the
/// same config templates as the local cluster, each with its own macros.
#[test]
fn compose_cluster_profile_is_valid_and_shares_the_cluster_templates() {
    let resolved = run(
        "docker-compose",
        &[
            "-f",
            "infra/docker-compose.yml",
            "--profile",
            "cluster",
            "config",
        ],
    );
    let keeper = resolved
        .lines()
        .find(|l| l.contains("clickhouse/clickhouse-keeper:"))
        .expect("a ClickHouse Keeper image");
    assert!(!keeper.ends_with(":latest"), "{keeper}: pin a real tag");
    for (server, shard) in [
        ("ch-s1r1", "s1"),
        ("ch-s1r2", "s1"),
        ("ch-s2r1", "s2"),
        ("ch-s2r2", "s2"),
    ] {
        let header = format!("  {server}:");
        let block: String = resolved
            .lines()
            .skip_while(|l| *l != header)
            .skip(1)
            .take_while(|l| l.starts_with("   "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(!block.is_empty(), "no service {server}:\n{resolved}");
        for needle in [
            format!("VELOSTREAM_SHARD: {shard}"),
            format!("VELOSTREAM_REPLICA: {}", &server[3..]),
            format!("VELOSTREAM_INTERSERVER_HOST: {server}"),
            "VELOSTREAM_ZOOKEEPER_HOST: keeper".to_string(),
            "/clickhouse/cluster/replica.xml:/etc/clickhouse-server/config.d/replica.xml"
                .to_string(),
            "/clickhouse/cluster/remote_servers.xml:".to_string(),
            "/clickhouse/config.d/velostream.xml:".to_string(),
            "- cluster".to_string(),
        ] {
            assert!(
                block.contains(&needle),
                "{server} lacks {needle:?}:\n{block}"
            );
        }
    }
    // The shared template names exactly the variables the compose file sets.
    let replica = std::fs::read_to_string(infra().join("clickhouse/cluster/replica.xml")).unwrap();
    for var in [
        "VELOSTREAM_SHARD",
        "VELOSTREAM_REPLICA",
        "VELOSTREAM_INTERSERVER_HOST",
        "VELOSTREAM_INTERSERVER_PORT",
        "VELOSTREAM_ZOOKEEPER_HOST",
        "VELOSTREAM_ZOOKEEPER_PORT",
    ] {
        assert!(
            replica.contains(&format!("from_env=\"{var}\"")),
            "replica.xml lacks {var}"
        );
        assert_eq!(
            resolved.matches(&format!("{var}:")).count(),
            4,
            "{var} in the compose file"
        );
    }
}
