//! The server version and what it implies.

use std::fmt;

use velostream_codecs::mapping::ServerCaps;

use crate::{Error, Result};

/// `SELECT version()` parsed: `18.16.1` or `23.8.2.7` (a fourth component
/// and suffixes such as `-lts` are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion {
    /// Year-based major version (18, 23, 24, ...).
    pub major: u32,
    /// Minor version (the release month on modern servers).
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

/// The first release with the `insert_deduplication_token` setting (22.2).
/// [`crate::clickhouse::ClickHouse::supports_dedup_token`] asks the server's
/// `system.settings` instead of trusting this number; it is documentation and
/// a fallback for tests.
pub const DEDUP_TOKEN_SINCE: ServerVersion = ServerVersion {
    major: 22,
    minor: 2,
    patch: 0,
};

impl ServerVersion {
    /// Parses the text of `SELECT version()`.
    pub fn parse(text: &str) -> Result<ServerVersion> {
        let text = text.trim();
        let bad = |why: &str| {
            Error::Config(format!(
                "cannot parse ClickHouse server version {text:?}: {why}"
            ))
        };
        let mut parts = text.split('.').map(|p| {
            let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse::<u32>().ok()
        });
        let major = parts
            .next()
            .flatten()
            .ok_or_else(|| bad("no major version"))?;
        let minor = parts
            .next()
            .flatten()
            .ok_or_else(|| bad("no minor version"))?;
        let patch = parts.next().flatten().unwrap_or(0);
        Ok(ServerVersion {
            major,
            minor,
            patch,
        })
    }

    /// The type capabilities of this server (DateTime64, Bool, Date32,
    /// LowCardinality without the experimental flag).
    pub fn caps(&self) -> ServerCaps {
        ServerCaps::for_version(self.major, self.minor)
    }

    /// Whether this version is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_version_strings() {
        let v = ServerVersion::parse("18.16.1\n").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (18, 16, 1));
        let v = ServerVersion::parse("23.8.2.7").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (23, 8, 2));
        let v = ServerVersion::parse("24.3.1.2672-lts").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (24, 3, 1));
        let v = ServerVersion::parse("25.10").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (25, 10, 0));
        assert_eq!(v.to_string(), "25.10.0");
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "abc", "18", "x.1.2", "18.y"] {
            assert!(ServerVersion::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn ordering_and_caps() {
        let old = ServerVersion::parse("18.16.1").unwrap();
        let new = ServerVersion::parse("23.8.1").unwrap();
        assert!(old < DEDUP_TOKEN_SINCE && DEDUP_TOKEN_SINCE < new);
        assert!(new.at_least(22, 2) && !old.at_least(22, 2));
        assert_eq!(old.caps(), ServerCaps::for_version(18, 16));
        assert!(!old.caps().datetime64);
        assert!(new.caps().datetime64);
    }
}
