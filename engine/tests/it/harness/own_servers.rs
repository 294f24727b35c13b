//! Servers owned by one test, for fault injection: a clickhouse-server
//! that can be killed and started again on the same ports with the same
//! data, and a tansu broker on a fixed port (memory storage) that can be
//! frozen, killed and replaced. The shared services of `services.rs` are
//! never disturbed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http;
use super::paths::free_port;
use super::process::{signal, tail};
use super::services::INSTALL_COMMAND;

/// A clickhouse-server owned by one test: it can be stopped and started
/// again on the same ports with the same data directory.
#[derive(Debug)]
pub struct OwnClickHouse {
    dir: PathBuf,
    http_port: u16,
    child: Option<Child>,
}

impl OwnClickHouse {
    /// Writes the configuration (as `infra/local/services.sh` does) and starts it.
    pub fn start(dir: &Path) -> OwnClickHouse {
        for sub in ["data", "tmp", "user_files", "format_schemas", "logs"] {
            std::fs::create_dir_all(dir.join(sub)).expect("clickhouse dirs");
        }
        let d = dir.display();
        std::fs::write(
            dir.join("users.xml"),
            "<?xml version=\"1.0\"?>\n<yandex><profiles><default>\
             <max_memory_usage>4000000000</max_memory_usage></default></profiles>\
             <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>\
             <profile>default</profile><quota>default</quota></default></users>\
             <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>\
             <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>\
             </interval></default></quotas></yandex>\n",
        )
        .expect("users.xml");
        let http_port = free_port();
        let tcp_port = free_port();
        std::fs::write(
            dir.join("config.xml"),
            format!(
                "<?xml version=\"1.0\"?>\n<yandex><logger><level>information</level>\
                 <log>{d}/logs/clickhouse-server.log</log><errorlog>{d}/logs/clickhouse-server.err.log</errorlog>\
                 <size>100M</size><count>2</count></logger>\
                 <listen_host>127.0.0.1</listen_host><http_port>{http_port}</http_port><tcp_port>{tcp_port}</tcp_port>\
                 <max_connections>1024</max_connections><keep_alive_timeout>10</keep_alive_timeout>\
                 <max_concurrent_queries>100</max_concurrent_queries>\
                 <mark_cache_size>536870912</mark_cache_size>\
                 <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/user_files/</user_files_path>\
                 <format_schema_path>{d}/format_schemas/</format_schema_path>\
                 <users_config>{d}/users.xml</users_config><default_profile>default</default_profile>\
                 <default_database>default</default_database><timezone>UTC</timezone>\
                 <mlock_executable>false</mlock_executable></yandex>\n"
            ),
        )
        .expect("config.xml");
        let mut ch = OwnClickHouse {
            dir: dir.to_path_buf(),
            http_port,
            child: None,
        };
        ch.run();
        ch
    }

    /// The HTTP URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn binary() -> &'static str {
        ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!(
                    "clickhouse-server is not installed: run {}",
                    INSTALL_COMMAND
                )
            })
    }

    /// Starts the server and waits until it answers `/ping`.
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = File::create(self.dir.join("stdout.log")).expect("log");
        let child = Command::new(Self::binary())
            .arg(format!("--config-file={}/config.xml", self.dir.display()))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting clickhouse-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let ping = format!("{}/ping", self.url());
        while http::get_ok(&ping).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "clickhouse-server on port {} did not start ({exited:?}):\n{}",
                self.http_port,
                tail(&self.dir.join("logs/clickhouse-server.err.log"), 20)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server (SIGKILL: a crash, not a graceful shutdown, which
    /// on 18.16 keeps serving requests for many seconds) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL clickhouse-server");
            child.wait().expect("wait for clickhouse-server");
        }
    }
}

impl Drop for OwnClickHouse {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The tansu binary, as `infra/local/services.sh` finds it.
fn tansu_bin() -> PathBuf {
    if let Ok(b) = std::env::var("VELOSTREAM_TANSU_BIN") {
        return PathBuf::from(b);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file());
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu"));
    on_path
        .or(home.filter(|p| p.is_file()))
        .unwrap_or_else(|| panic!("tansu is not installed: run {}", INSTALL_COMMAND))
}

/// A private tansu on a fixed port (memory storage), killed on drop.
#[derive(Debug)]
pub struct OwnTansu {
    child: Child,
}

impl OwnTansu {
    /// Starts tansu listening on 127.0.0.1:`port`, its output in `log`.
    pub fn start(port: u16, log: &Path) -> OwnTansu {
        let out = File::create(log).expect("tansu log");
        let err = out.try_clone().expect("tansu log");
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting tansu");
        OwnTansu { child }
    }

    /// Sends `sig` (`"-STOP"`, …) to the broker.
    pub fn signal(&self, sig: &str) {
        signal(self.child.id(), sig);
    }
}

impl Drop for OwnTansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
