//! The state directory: one sub-directory per service (or per cluster
//! server) holding its `pid`, `ports`, `endpoints`, `log`, `lock` and
//! `watchdog.pid` files next to its data.
//!
//! Layout: `<root>/<service>/{pid,ports,endpoints,log,lock,watchdog.pid,tls}`;
//! a cluster keeps one directory per server under
//! `<root>/clickhouse-cluster/<server>/`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The default state directory: `$XDG_CACHE_HOME/velostream/local`, else
/// `$HOME/.cache/velostream/local`, else `<temp>/velostream-local`.
pub fn default_root() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        });
    match cache {
        Some(dir) => dir.join("velostream").join("local"),
        None => std::env::temp_dir().join("velostream-local"),
    }
}

/// A state directory (created on first use, kept as an absolute path).
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (and creates) `root`, or [`default_root`] when `None`.
    pub fn open(root: Option<&Path>) -> Result<StateDir> {
        let root = root.map(Path::to_path_buf).unwrap_or_else(default_root);
        create_dir(&root)?;
        let root = root
            .canonicalize()
            .map_err(|e| Error::io(format!("state directory {}", root.display()), e))?;
        Ok(StateDir { root })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a service (or of a cluster server): `<root>/<name>`.
    pub fn service(&self, name: &str) -> ServiceDir {
        ServiceDir {
            dir: self.root.join(name),
        }
    }
}

/// Creates `dir` and its parents, naming it on failure.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// Writes `path` atomically (write a temporary file, then rename).
pub fn write_atomic(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })
}

/// The files of one service in the state directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDir {
    dir: PathBuf,
}

impl ServiceDir {
    /// A service directory at `dir` (a cluster server's own directory).
    pub fn at(dir: PathBuf) -> ServiceDir {
        ServiceDir { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<name>`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the directory.
    pub fn create(&self) -> Result<()> {
        create_dir(&self.dir)
    }

    /// True when the directory exists.
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// The service's combined stdout/stderr log.
    pub fn log(&self) -> PathBuf {
        self.file("log")
    }

    /// Takes the service's exclusive lock (`<dir>/lock`), waiting for other
    /// processes that hold it; released when the guard drops.
    pub fn lock(&self) -> Result<DirLock> {
        self.create()?;
        let path = self.file("lock");
        let file =
            File::create(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io(format!("locking {}", path.display()), e.into()))?;
        Ok(DirLock { _file: file })
    }

    /// The recorded pid, if the pid file holds one.
    pub fn pid(&self) -> Option<u32> {
        self.read("pid")?.trim().parse().ok()
    }

    /// Records `pid`.
    pub fn set_pid(&self, pid: u32) -> Result<()> {
        write_atomic(&self.file("pid"), &format!("{pid}\n"))
    }

    /// The recorded watchdog pid.
    pub fn watchdog_pid(&self) -> Option<u32> {
        self.read("watchdog.pid")?.trim().parse().ok()
    }

    /// Reads `<dir>/<name>` (None when missing or unreadable).
    pub fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.file(name)).ok()
    }

    /// Writes `<dir>/<name>` atomically.
    pub fn write(&self, name: &str, contents: &str) -> Result<()> {
        write_atomic(&self.file(name), contents)
    }

    /// Removes `<dir>/<name>` if present.
    pub fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.file(name));
    }

    /// The recorded ports (`ports` file, `name=port` lines).
    pub fn ports(&self) -> Ports {
        Ports::parse(&self.read("ports").unwrap_or_default())
    }

    /// Records `ports`.
    pub fn set_ports(&self, ports: &Ports) -> Result<()> {
        self.write("ports", &ports.render())
    }

    /// The endpoint lines written when the service became healthy.
    pub fn endpoints(&self) -> Option<String> {
        self.read("endpoints")
    }

    /// True when the running instance was started with TLS.
    pub fn is_tls(&self) -> bool {
        self.file("tls").exists()
    }
}

/// Holds a service directory's lock.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Named ports of one process (`http`, `tcp`, `https`, `interserver`, `client`…).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ports(BTreeMap<String, u16>);

impl Ports {
    /// Parses `name=port` lines; malformed lines are ignored.
    pub fn parse(text: &str) -> Ports {
        Ports(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .filter_map(|(k, v)| Some((k.trim().to_string(), v.trim().parse().ok()?)))
                .collect(),
        )
    }

    /// `name=port` lines.
    pub fn render(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    /// Sets a port.
    pub fn set(&mut self, name: &str, port: u16) {
        self.0.insert(name.to_string(), port);
    }

    /// A port by name.
    pub fn get(&self, name: &str) -> Option<u16> {
        self.0.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_round_trip_and_ignore_garbage() {
        let mut p = Ports::default();
        p.set("http", 8123);
        p.set("tcp", 9000);
        let text = p.render();
        assert_eq!(text, "http=8123\ntcp=9000\n");
        let back = Ports::parse(&format!("{text}junk\nx=notaport\n"));
        assert_eq!(back, p);
        assert_eq!(back.get("https"), None);
    }

    #[test]
    fn lock_is_exclusive_between_handles() {
        let dir = tempfile::tempdir().unwrap();
        let svc = StateDir::open(Some(dir.path())).unwrap().service("x");
        let guard = svc.lock().unwrap();
        let file = File::create(svc.file("lock")).unwrap();
        let busy = rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive);
        assert!(
            busy.is_err(),
            "a second lock succeeded while the first is held"
        );
        drop(guard);
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    }

    #[test]
    fn default_root_is_under_the_cache_dir() {
        let root = default_root();
        assert!(root.ends_with("velostream/local"), "{}", root.display());
    }
}
