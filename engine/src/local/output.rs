//! The `VELOSTREAM_*=` endpoint lines: what `velostream local start` prints
//! on stdout (and stores per service), and [`Endpoints`] parsed from them.
//!
//! ```text
//! VELOSTREAM_BROKERS=127.0.0.1:PORT
//! VELOSTREAM_CLICKHOUSE_URL=http://127.0.0.1:PORT
//! VELOSTREAM_CLICKHOUSE_HTTPS_URL=https://127.0.0.1:PORT      (with TLS)
//! VELOSTREAM_ZOOKEEPER=127.0.0.1:PORT
//! VELOSTREAM_CLICKHOUSE_CLUSTER=velostream
//! VELOSTREAM_CLICKHOUSE_CLUSTER_URLS=http://a1,http://a2 http://b1,http://b2
//! VELOSTREAM_PROMETHEUS_URL=http://127.0.0.1:PORT
//! VELOSTREAM_PROMETHEUS_TARGETS=DIR/prometheus/targets.json
//! VELOSTREAM_STARTED=<service>      (only when this call started it)
//! ```
//!
//! Cluster URLs: shards separated by spaces, the replicas of a shard by
//! commas, as repeated `--clickhouse-url` values take them.

use std::path::PathBuf;

use super::Service;

/// Where the services listen. A field is `None` when that service was not
/// requested.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Kafka bootstrap servers, `127.0.0.1:PORT`.
    pub brokers: Option<String>,
    /// ClickHouse HTTP URL, `http://127.0.0.1:PORT`.
    pub clickhouse_url: Option<String>,
    /// ClickHouse HTTPS URL, when started with TLS.
    pub clickhouse_https_url: Option<String>,
    /// ZooKeeper client address, `127.0.0.1:PORT`.
    pub zookeeper: Option<String>,
    /// The cluster's name in `remote_servers`.
    pub clickhouse_cluster: Option<String>,
    /// The cluster's HTTP URLs, one list of replica URLs per shard.
    pub clickhouse_cluster_urls: Option<Vec<Vec<String>>>,
    /// Prometheus URL, `http://127.0.0.1:PORT`.
    pub prometheus_url: Option<String>,
    /// The file_sd target file Prometheus watches.
    pub prometheus_targets: Option<PathBuf>,
    /// Services started by the call that printed these lines.
    pub started: Vec<Service>,
}

impl Endpoints {
    /// Parses `KEY=VALUE` lines; unknown keys and other lines are ignored.
    pub fn parse(text: &str) -> Endpoints {
        let mut out = Endpoints::default();
        for line in text.lines() {
            let Some((key, value)) = line.trim().split_once('=') else {
                continue;
            };
            out.set(key.trim(), value.trim());
        }
        out
    }

    fn set(&mut self, key: &str, value: &str) {
        let v = Some(value.to_string());
        match key {
            "VELOSTREAM_BROKERS" => self.brokers = v,
            "VELOSTREAM_CLICKHOUSE_URL" => self.clickhouse_url = v,
            "VELOSTREAM_CLICKHOUSE_HTTPS_URL" => self.clickhouse_https_url = v,
            "VELOSTREAM_ZOOKEEPER" => self.zookeeper = v,
            "VELOSTREAM_CLICKHOUSE_CLUSTER" => self.clickhouse_cluster = v,
            "VELOSTREAM_CLICKHOUSE_CLUSTER_URLS" => {
                self.clickhouse_cluster_urls = Some(parse_shard_urls(value))
            }
            "VELOSTREAM_PROMETHEUS_URL" => self.prometheus_url = v,
            "VELOSTREAM_PROMETHEUS_TARGETS" => self.prometheus_targets = Some(value.into()),
            "VELOSTREAM_STARTED" => self.started.extend(Service::from_name(value)),
            _ => {}
        }
    }

    /// Takes every endpoint `other` has (the started lists are joined).
    pub fn merge(&mut self, other: Endpoints) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            brokers,
            clickhouse_url,
            clickhouse_https_url,
            zookeeper,
            clickhouse_cluster,
            clickhouse_cluster_urls,
            prometheus_url,
            prometheus_targets
        );
        self.started.extend(other.started);
    }

    /// The `KEY=VALUE` lines of every endpoint present (not `STARTED`).
    pub fn lines(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push_str(&format!("{k}={v}\n"));
            }
        };
        line("VELOSTREAM_BROKERS", self.brokers.clone());
        line("VELOSTREAM_CLICKHOUSE_URL", self.clickhouse_url.clone());
        line(
            "VELOSTREAM_CLICKHOUSE_HTTPS_URL",
            self.clickhouse_https_url.clone(),
        );
        line("VELOSTREAM_ZOOKEEPER", self.zookeeper.clone());
        line(
            "VELOSTREAM_CLICKHOUSE_CLUSTER",
            self.clickhouse_cluster.clone(),
        );
        line(
            "VELOSTREAM_CLICKHOUSE_CLUSTER_URLS",
            self.clickhouse_cluster_urls
                .as_deref()
                .map(format_shard_urls),
        );
        line("VELOSTREAM_PROMETHEUS_URL", self.prometheus_url.clone());
        line(
            "VELOSTREAM_PROMETHEUS_TARGETS",
            self.prometheus_targets
                .as_ref()
                .map(|p| p.display().to_string()),
        );
        out
    }
}

/// `http://a1,http://a2 http://b1,http://b2` → `[[a1, a2], [b1, b2]]`.
pub fn parse_shard_urls(text: &str) -> Vec<Vec<String>> {
    text.split_whitespace()
        .map(|shard| {
            shard
                .split(',')
                .filter(|u| !u.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

/// The inverse of [`parse_shard_urls`].
pub fn format_shard_urls(shards: &[Vec<String>]) -> String {
    shards
        .iter()
        .map(|s| s.join(","))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoint_lines_and_ignores_noise() {
        let out = Endpoints::parse(
            "VELOSTREAM_BROKERS=127.0.0.1:9092\nnoise\nVELOSTREAM_STARTED=kafka\n\
             VELOSTREAM_CLICKHOUSE_URL=http://127.0.0.1:8123\n\
             VELOSTREAM_PROMETHEUS_URL=http://127.0.0.1:9090\n\
             VELOSTREAM_PROMETHEUS_TARGETS=/tmp/x/targets.json\nOTHER=1\n\
             VELOSTREAM_CLICKHOUSE_HTTPS_URL=https://127.0.0.1:8443\n\
             VELOSTREAM_STARTED=clickhouse-cluster\nVELOSTREAM_STARTED=bogus\n",
        );
        assert_eq!(
            out.clickhouse_https_url.as_deref(),
            Some("https://127.0.0.1:8443")
        );
        assert_eq!(out.brokers.as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(out.clickhouse_url.as_deref(), Some("http://127.0.0.1:8123"));
        assert_eq!(out.prometheus_url.as_deref(), Some("http://127.0.0.1:9090"));
        assert_eq!(
            out.prometheus_targets,
            Some(PathBuf::from("/tmp/x/targets.json"))
        );
        assert_eq!(
            out.started,
            vec![Service::Kafka, Service::ClickHouseCluster]
        );
    }

    #[test]
    fn cluster_lines_round_trip() {
        let text =
            "VELOSTREAM_ZOOKEEPER=127.0.0.1:2181\nVELOSTREAM_CLICKHOUSE_CLUSTER=velostream\n\
                    VELOSTREAM_CLICKHOUSE_CLUSTER_URLS=http://a1,http://a2 http://b1,http://b2\n";
        let e = Endpoints::parse(text);
        assert_eq!(
            e.clickhouse_cluster_urls,
            Some(vec![
                vec!["http://a1".to_string(), "http://a2".to_string()],
                vec!["http://b1".to_string(), "http://b2".to_string()],
            ])
        );
        assert_eq!(e.lines(), text);
    }

    #[test]
    fn merge_keeps_what_the_other_lacks() {
        let mut a = Endpoints::parse("VELOSTREAM_BROKERS=x:1\nVELOSTREAM_STARTED=kafka\n");
        a.merge(Endpoints::parse("VELOSTREAM_CLICKHOUSE_URL=http://y:2\n"));
        assert_eq!(a.brokers.as_deref(), Some("x:1"));
        assert_eq!(a.clickhouse_url.as_deref(), Some("http://y:2"));
        assert_eq!(a.started, vec![Service::Kafka]);
    }
}
