//! A standalone ZooKeeper (Debian `zookeeper`, Java) for the local
//! ClickHouse cluster: `zkServer.sh start-foreground <state>/zookeeper/zoo.cfg`
//! rendered from `infra/zookeeper/zoo.cfg` (the path must be given, or
//! Debian's `/etc/zookeeper/conf/zoo.cfg` is used), listening on 127.0.0.1
//! only, with the four-letter words `ruok` and `stat` (health check).

use std::process::Command;

use super::output::Endpoints;
use super::state::{create_dir, Ports, ServiceDir};
use super::supervisor::{Ctx, Spec};
use super::{binaries, health, ports, process, templates, Service};
use crate::Result;

/// The ZooKeeper service.
#[derive(Clone, Copy, Debug)]
pub struct ZooKeeper;

/// Renders `zoo.cfg` for a data directory and client port.
pub fn render_config(data_dir: &std::path::Path, client_port: u16) -> Result<String> {
    templates::ZOOKEEPER_CFG.render(&[
        ("DATA_DIR", data_dir.display().to_string()),
        ("CLIENT_PORT", client_port.to_string()),
    ])
}

impl Spec for ZooKeeper {
    fn service(&self) -> Service {
        Service::ZooKeeper
    }

    fn proc_name(&self) -> &'static str {
        "zookeeper"
    }

    fn launch(&self, dir: &ServiceDir, _ctx: &Ctx) -> Result<u32> {
        let script = binaries::zookeeper()?;
        let port = ports::free_port()?;
        let data = dir.file("data");
        create_dir(&data)?;
        create_dir(&dir.file("logs"))?;
        let cfg = dir.file("zoo.cfg");
        dir.write("zoo.cfg", &render_config(&data, port)?)?;
        let mut recorded = Ports::default();
        recorded.set("client", port);
        dir.set_ports(&recorded)?;
        let mut cmd = Command::new(script);
        cmd.arg("start-foreground")
            .arg(&cfg)
            .current_dir(dir.path())
            // A bounded heap (the JVM default is a quarter of the RAM), no
            // JMX, logs beside the data.
            .env(
                "JVMFLAGS",
                format!(
                    "-Xmx256m -Dzookeeper.log.dir={}",
                    dir.file("logs").display()
                ),
            )
            .env("JMXDISABLE", "true");
        process::spawn_group(&mut cmd, &dir.log())
    }

    fn healthy(&self, dir: &ServiceDir) -> bool {
        dir.ports()
            .get("client")
            .is_some_and(health::zookeeper_ruok)
    }

    fn endpoints(&self, dir: &ServiceDir) -> Endpoints {
        Endpoints {
            zookeeper: dir.ports().get("client").map(|p| format!("127.0.0.1:{p}")),
            ..Endpoints::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_standalone_loopback_with_ruok() {
        let cfg = render_config(std::path::Path::new("/state/zookeeper/data"), 2181).unwrap();
        for line in [
            "dataDir=/state/zookeeper/data",
            "clientPort=2181",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,stat",
        ] {
            assert!(cfg.lines().any(|l| l == line), "missing {line}:\n{cfg}");
        }
    }
}
