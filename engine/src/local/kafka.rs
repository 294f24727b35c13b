//! tansu 0.6.0 as the local Kafka broker (memory storage: topics and
//! messages are gone after a restart). With TLS, tansu listens on an inner
//! plain port behind the TLS front (`velostream local tls-proxy`, see
//! [`super::tls_proxy`]), which leads the process group and advertises the
//! TLS port, so clients always come back through TLS: tansu 0.6.0 cannot
//! serve TLS itself (its `--cert` and `--key` flags exclude each other).

use std::process::Command;

use super::output::Endpoints;
use super::state::{Ports, ServiceDir};
use super::supervisor::{Ctx, Spec};
use super::{binaries, health, ports, process, Service};
use crate::Result;

/// The Kafka service.
#[derive(Clone, Copy, Debug)]
pub struct Kafka;

/// tansu's arguments for a listener on `listen` advertising `advertise`.
fn broker_args(listen: u16, advertise: u16) -> Vec<String> {
    vec![
        "broker".into(),
        "--listener-url".into(),
        format!("tcp://127.0.0.1:{listen}"),
        "--advertised-listener-url".into(),
        format!("tcp://127.0.0.1:{advertise}"),
        "--storage-engine".into(),
        "memory://tansu/".into(),
    ]
}

impl Spec for Kafka {
    fn service(&self) -> Service {
        Service::Kafka
    }

    fn proc_name(&self) -> &'static str {
        "tansu"
    }

    fn launch(&self, dir: &ServiceDir, ctx: &Ctx) -> Result<u32> {
        let tansu = binaries::tansu()?;
        let picked = ports::free_ports(2)?;
        let (port, inner) = (picked[0], picked[1]);
        let mut recorded = Ports::default();
        recorded.set("kafka", port);
        let mut cmd = match &ctx.opts.tls {
            None => {
                let mut cmd = Command::new(&tansu);
                cmd.args(broker_args(port, port));
                cmd
            }
            Some(tls) => {
                recorded.set("inner", inner);
                let mut cmd = Command::new(ctx.exe()?);
                cmd.args(["local", "tls-proxy", "--listen"])
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--upstream")
                    .arg(format!("127.0.0.1:{inner}"))
                    .arg("--cert")
                    .arg(&tls.cert)
                    .arg("--key")
                    .arg(&tls.key);
                if let Some(ca) = &tls.client_ca {
                    cmd.arg("--client-ca").arg(ca);
                }
                cmd.arg("--").arg(&tansu).args(broker_args(inner, port));
                cmd
            }
        };
        dir.set_ports(&recorded)?;
        process::spawn_group(cmd.current_dir(dir.path()), &dir.log())
    }

    fn healthy(&self, dir: &ServiceDir) -> bool {
        dir.ports()
            .get("kafka")
            .is_some_and(|p| health::kafka_metadata(p, dir.is_tls()))
    }

    fn endpoints(&self, dir: &ServiceDir) -> Endpoints {
        Endpoints {
            brokers: dir.ports().get("kafka").map(|p| format!("127.0.0.1:{p}")),
            ..Endpoints::default()
        }
    }
}
