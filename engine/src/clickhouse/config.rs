//! Connection settings for the ClickHouse HTTP interface.
//!
//! `http://` and `https://` endpoints are accepted; `https` verifies the
//! server against the system trust store plus an optional extra CA
//! ([`ClickHouseConfig::ca_cert`]).
//!
//! Credentials never travel inside the URL: a URL with a `user:pass@`
//! part is rejected (its credentials are not echoed), and the password lives in
//! a [`Secret`] whose `Debug` and `Display` print `***`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result};

/// Default time limit for one request (connect, send, server work, response).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A password or other credential. `Debug` and `Display` print `***`; only
/// [`Secret::expose`] gives the text, for the one place that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The credential itself. Call it only to hand it to the HTTP client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How the body of `INSERT ... FORMAT Native` is compressed on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InsertCompression {
    /// ClickHouse's own compressed-block framing (LZ4 + CityHash128 checksum,
    /// `decompress=1`). Works on 18.16 and every later server.
    #[default]
    Lz4,
    /// Send the Native bytes as they are.
    None,
}

impl InsertCompression {
    /// Lower-case name, as used on the command line and in log lines.
    pub fn as_str(&self) -> &'static str {
        match self {
            InsertCompression::Lz4 => "lz4",
            InsertCompression::None => "none",
        }
    }
}

impl std::str::FromStr for InsertCompression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "lz4" => Ok(InsertCompression::Lz4),
            "none" | "off" => Ok(InsertCompression::None),
            other => Err(Error::Config(format!(
                "unknown ClickHouse insert compression {other:?}: expected lz4 or none"
            ))),
        }
    }
}

impl fmt::Display for InsertCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and how to reach ClickHouse. `Debug` shows the URL redacted.
#[derive(Clone)]
pub struct ClickHouseConfig {
    /// HTTP endpoint, e.g. `http://127.0.0.1:8123`. No credentials, query
    /// string or fragment (see [`ClickHouseConfig::validate`]).
    pub url: String,
    /// User name; `None` means the server's `default` user.
    pub user: Option<String>,
    /// Password of `user`.
    pub password: Option<Secret>,
    /// Compression of INSERT bodies.
    pub compression: InsertCompression,
    /// Time limit of every request, connection included.
    pub timeout: Duration,
    /// Extra CA certificate (PEM) trusted for `https://` URLs, in addition
    /// to the system trust store.
    pub ca_cert: Option<PathBuf>,
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &redact_url(&self.url))
            .field("user", &self.user)
            .field("password", &self.password)
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .field("ca_cert", &self.ca_cert)
            .finish()
    }
}

impl ClickHouseConfig {
    /// A config for `url` with the defaults: default user, no password, LZ4,
    /// [`DEFAULT_TIMEOUT`].
    pub fn new(url: impl Into<String>) -> Self {
        ClickHouseConfig {
            url: url.into(),
            user: None,
            password: None,
            compression: InsertCompression::default(),
            timeout: DEFAULT_TIMEOUT,
            ca_cert: None,
        }
    }

    /// True when the URL's scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.url
            .trim()
            .split_once("://")
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("https"))
    }

    /// Checks the URL and the timeout.
    ///
    /// Rejected: schemes other than `http` and `https`, a CA certificate
    /// with an `http://` URL, a missing host, `user[:password]@` credentials (set `user`/`password`
    /// instead; the error does not repeat them), a query string or fragment,
    /// and a zero timeout.
    pub fn validate(&self) -> Result<()> {
        let url = self.url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(Error::Config(format!(
                "ClickHouse URL {:?} has no scheme: expected http://HOST:PORT or https://HOST:PORT",
                redact_url(url)
            )));
        };
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(Error::Config(format!(
                "ClickHouse URL {:?}: scheme {scheme:?} is not supported, use http:// or https://",
                redact_url(url)
            )));
        }
        if let Some(ca) = &self.ca_cert {
            if !scheme.eq_ignore_ascii_case("https") {
                return Err(Error::Config(format!(
                    "ClickHouse CA certificate {} is given but URL {:?} is not https://",
                    ca.display(),
                    redact_url(url)
                )));
            }
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if authority.contains('@') {
            return Err(Error::Config(format!(
                "ClickHouse URL {:?} carries credentials; remove them from the URL and \
                 pass the user and password separately (--clickhouse-user, \
                 CLICKHOUSE_PASSWORD)",
                redact_url(url)
            )));
        }
        if authority.is_empty() {
            return Err(Error::Config(format!(
                "ClickHouse URL {:?} has no host",
                redact_url(url)
            )));
        }
        let tail = &rest[authority_end..];
        if tail.contains(['?', '#']) {
            return Err(Error::Config(format!(
                "ClickHouse URL {:?} has a query string or fragment; settings are \
                 not taken from the URL (use --clickhouse-user, --clickhouse-password and \
                 --clickhouse-setting)",
                redact_url(url)
            )));
        }
        if self.timeout.is_zero() {
            return Err(Error::Config(
                "ClickHouse timeout (--clickhouse-timeout) must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// `url` for messages: `user:pass@` replaced by `***@`, the value of every
/// query parameter by `***`, and a fragment by `#***`.
pub(crate) fn redact_url(url: &str) -> String {
    let url = redact_userinfo(url);
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((b, _)) => (b.to_string(), "#***"),
        None => (url.clone(), ""),
    };
    let Some((base, query)) = before_fragment.split_once('?') else {
        return format!("{before_fragment}{fragment}");
    };
    let params: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) => format!("{k}=***"),
            None if kv.is_empty() => String::new(),
            None => "***".to_string(),
        })
        .collect();
    format!("{base}?{}{fragment}", params.join("&"))
}

/// `url` with any `user:pass@` part replaced by `***@`, for messages.
pub(crate) fn redact_userinfo(url: &str) -> String {
    let (prefix, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => format!(
            "{prefix}***@{}{}",
            &authority[at + 1..],
            &rest[authority_end..]
        ),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_and_userinfo_never_appear_in_errors_or_debug() {
        for url in [
            "http://127.0.0.1:8123/?password=hunter2-planted",
            "http://127.0.0.1:8123/?user=x&password=hunter2-planted#frag",
            "http://127.0.0.1:8123?password=hunter2-planted",
            "http://u:hunter2-planted@127.0.0.1:8123/?password=hunter2-planted",
            "ftp://127.0.0.1/?password=hunter2-planted",
            "127.0.0.1:8123/?password=hunter2-planted",
        ] {
            let cfg = ClickHouseConfig::new(url);
            let e = cfg.validate().unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{url}: {e}");
            let dbg = format!("{cfg:?}");
            assert!(!dbg.contains("hunter2"), "{url}: {dbg}");
        }
        let e = ClickHouseConfig::new("http://h:1/?password=hunter2-planted")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("password=***"),
            "the key stays, the value goes: {e}"
        );
    }

    #[test]
    fn secret_is_never_formatted() {
        let s = Secret::new("hunter2-planted");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        let mut cfg = ClickHouseConfig::new("http://127.0.0.1:8123");
        cfg.password = Some(s.clone());
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert_eq!(s.expose(), "hunter2-planted");
    }

    #[test]
    fn accepts_plain_http_urls() {
        for url in [
            "http://127.0.0.1:8123",
            "http://127.0.0.1:8123/",
            "HTTP://localhost:8123/",
            "http://[::1]:8123",
            "https://127.0.0.1:8443",
            "HTTPS://clickhouse.example.com/",
        ] {
            ClickHouseConfig::new(url).validate().unwrap();
        }
    }

    #[test]
    fn rejects_credentials_in_url_without_echoing_them() {
        let err = ClickHouseConfig::new("http://bob:s3cr3t-pw@127.0.0.1:8123/")
            .validate()
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains("credentials"), "{text}");
        assert!(!text.contains("s3cr3t-pw"), "{text}");
        assert!(!text.contains("bob"), "{text}");
        assert!(text.contains("***@127.0.0.1:8123"), "{text}");
    }

    #[test]
    fn rejects_other_bad_urls() {
        for url in [
            "127.0.0.1:8123",
            "ftp://127.0.0.1:8443",
            "https://",
            "http://",
            "http:///x",
            "http://127.0.0.1:8123/?database=x",
            "http://127.0.0.1:8123/#frag",
        ] {
            assert!(
                ClickHouseConfig::new(url).validate().is_err(),
                "{url} should be rejected"
            );
        }
        let mut cfg = ClickHouseConfig::new("http://127.0.0.1:8123");
        cfg.timeout = Duration::ZERO;
        assert!(cfg.validate().is_err());
        // A CA certificate only makes sense with https.
        let mut cfg = ClickHouseConfig::new("http://127.0.0.1:8123");
        cfg.ca_cert = Some(PathBuf::from("/tmp/ca.pem"));
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("/tmp/ca.pem") && err.contains("https"),
            "{err}"
        );
        cfg.url = "https://127.0.0.1:8443".into();
        cfg.validate().unwrap();
        assert!(cfg.is_https());
    }

    #[test]
    fn redact_userinfo_keeps_the_rest() {
        assert_eq!(
            redact_userinfo("http://a:b@h:1/p?q"),
            "http://***@h:1/p?q".to_string()
        );
        assert_eq!(redact_userinfo("http://h:1/p@x"), "http://h:1/p@x");
    }

    #[test]
    fn compression_names() {
        assert_eq!(
            "LZ4".parse::<InsertCompression>().unwrap(),
            InsertCompression::Lz4
        );
        assert_eq!(
            "none".parse::<InsertCompression>().unwrap(),
            InsertCompression::None
        );
        assert!("zstd".parse::<InsertCompression>().is_err());
        assert_eq!(InsertCompression::default().to_string(), "lz4");
    }
}
