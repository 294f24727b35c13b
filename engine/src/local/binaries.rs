//! Finding the installed programs of each service: an environment override
//! (`VELOSTREAM_TANSU_BIN`, `VELOSTREAM_CLICKHOUSE_BIN`,
//! `VELOSTREAM_PROMETHEUS_BIN`, `VELOSTREAM_ZOOKEEPER_BIN`,
//! `VELOSTREAM_JAVA_BIN`), then `PATH`, then where the installers put them.
//! A missing program is [`Error::NotInstalled`], naming the package.

use std::path::{Path, PathBuf};

use super::Service;
use crate::{Error, Result};

/// One program a service needs.
#[derive(Clone, Copy, Debug)]
struct Program {
    /// Environment variable that overrides the lookup.
    env: &'static str,
    /// File name looked up on `PATH`.
    name: &'static str,
    /// Further places to look (`~` is `$HOME`).
    fallbacks: &'static [&'static str],
    /// What provides it, for the error message.
    package: &'static str,
}

const TANSU: Program = Program {
    env: "VELOSTREAM_TANSU_BIN",
    name: "tansu",
    fallbacks: &["~/.cargo/bin/tansu"],
    package: "tansu 0.6.0, from crates.io",
};
const CLICKHOUSE: Program = Program {
    env: "VELOSTREAM_CLICKHOUSE_BIN",
    name: "clickhouse-server",
    fallbacks: &["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"],
    package: "Debian package clickhouse-server",
};
const PROMETHEUS: Program = Program {
    env: "VELOSTREAM_PROMETHEUS_BIN",
    name: "prometheus",
    fallbacks: &["/usr/bin/prometheus"],
    package: "Debian package prometheus",
};
const ZOOKEEPER: Program = Program {
    env: "VELOSTREAM_ZOOKEEPER_BIN",
    name: "zkServer.sh",
    fallbacks: &["/usr/share/zookeeper/bin/zkServer.sh"],
    package: "Debian package zookeeper",
};
const JAVA: Program = Program {
    env: "VELOSTREAM_JAVA_BIN",
    name: "java",
    fallbacks: &["/usr/bin/java"],
    package: "Debian package default-jre-headless",
};

fn programs(service: Service) -> &'static [Program] {
    match service {
        Service::Kafka => &[TANSU],
        Service::ClickHouse => &[CLICKHOUSE],
        Service::ZooKeeper => &[ZOOKEEPER, JAVA],
        Service::ClickHouseCluster => &[CLICKHOUSE, ZOOKEEPER, JAVA],
        Service::Prometheus => &[PROMETHEUS],
    }
}

/// Checks that every program `service` needs is installed.
pub fn check(service: Service) -> Result<()> {
    for p in programs(service) {
        locate(service, p)?;
    }
    Ok(())
}

/// The tansu broker.
pub fn tansu() -> Result<PathBuf> {
    locate(Service::Kafka, &TANSU)
}

/// clickhouse-server (or the `clickhouse` multi-call binary).
pub fn clickhouse_server(service: Service) -> Result<PathBuf> {
    locate(service, &CLICKHOUSE)
}

/// prometheus.
pub fn prometheus() -> Result<PathBuf> {
    locate(Service::Prometheus, &PROMETHEUS)
}

/// ZooKeeper's `zkServer.sh`; Java must be installed too.
pub fn zookeeper() -> Result<PathBuf> {
    locate(Service::ZooKeeper, &JAVA)?;
    locate(Service::ZooKeeper, &ZOOKEEPER)
}

fn locate(service: Service, p: &Program) -> Result<PathBuf> {
    let not_installed = |detail: String| Error::NotInstalled {
        service: service.name().to_string(),
        what: format!("{} ({}) is not installed{detail}", p.name, p.package),
    };
    if let Some(path) = std::env::var_os(p.env).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(not_installed(format!(
                ": {}={} is not an executable file",
                p.env,
                path.display()
            )))
        };
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(p.name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let fallbacks = p.fallbacks.iter().map(|f| match f.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(f),
    });
    on_path
        .into_iter()
        .chain(fallbacks)
        .find(|c| is_executable(c))
        .ok_or_else(|| not_installed(String::new()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_service_package_and_install_command() {
        let p = Program {
            env: "VELOSTREAM_TEST_NO_SUCH_BIN",
            name: "velostream-no-such-program",
            fallbacks: &["/nonexistent/velostream-no-such-program"],
            package: "Debian package nothing",
        };
        let msg = locate(Service::ZooKeeper, &p).unwrap_err().to_string();
        assert!(msg.contains("zookeeper"), "{msg}");
        assert!(
            msg.contains("velostream-no-such-program (Debian package nothing) is not installed"),
            "{msg}"
        );
        assert!(msg.contains("infra/local/install.sh"), "{msg}");
    }

    #[test]
    fn finds_a_program_on_path() {
        let p = Program {
            env: "VELOSTREAM_TEST_NO_SUCH_BIN",
            name: "sh",
            fallbacks: &[],
            package: "",
        };
        assert!(locate(Service::Kafka, &p).unwrap().ends_with("sh"));
    }
}
