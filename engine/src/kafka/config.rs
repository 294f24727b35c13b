//! Kafka client settings from flags, environment variables and `-X key=value`
//! pass-through options. Secrets (SASL password, key passwords) are taken
//! from flags or environment but never printed: [`KafkaArgs`]'s `Debug`
//! redacts them and errors never echo configuration values.

use std::fmt;
use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;

use crate::{Error, Result};

/// librdkafka property names whose values are secrets.
const SECRET_KEYS: &[&str] = &[
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
    "ssl.truststore.password",
    "ssl.key.pem",
    "ssl_key",
];

/// Values accepted by `--security-protocol` (librdkafka `security.protocol`).
pub const SECURITY_PROTOCOLS: [&str; 4] = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];

/// Connection settings common to every Kafka client VeloStream creates.
///
/// Every TLS/SASL flag also answers to a `--kafka-` prefixed alias
/// (`--kafka-security-protocol`, `--kafka-ssl-ca-location`, ...).
#[derive(Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma separated (HOST:PORT[,HOST:PORT…]).
    #[arg(long, env = "VELOSTREAM_BROKERS", value_name = "HOST:PORT[,…]")]
    pub brokers: String,

    /// security.protocol: plaintext, ssl, sasl_plaintext or sasl_ssl.
    #[arg(
        long,
        visible_alias = "kafka-security-protocol",
        env = "VELOSTREAM_KAFKA_SECURITY_PROTOCOL",
        value_parser = SECURITY_PROTOCOLS,
        ignore_case = true
    )]
    pub security_protocol: Option<String>,

    /// sasl.mechanism, e.g. PLAIN or SCRAM-SHA-512.
    #[arg(
        long,
        visible_alias = "kafka-sasl-mechanism",
        env = "VELOSTREAM_KAFKA_SASL_MECHANISM"
    )]
    pub sasl_mechanism: Option<String>,

    /// sasl.username.
    #[arg(
        long,
        visible_alias = "kafka-sasl-username",
        env = "VELOSTREAM_KAFKA_SASL_USERNAME"
    )]
    pub sasl_username: Option<String>,

    /// sasl.password (prefer the environment variable; never printed).
    #[arg(
        long,
        visible_alias = "kafka-sasl-password",
        env = "VELOSTREAM_KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<String>,

    /// ssl.ca.location: PEM file of the CA(s) that signed the brokers' certificates
    /// (default: the system trust store).
    #[arg(
        long,
        visible_alias = "kafka-ssl-ca-location",
        env = "VELOSTREAM_KAFKA_SSL_CA",
        value_name = "PEM"
    )]
    pub ssl_ca_location: Option<String>,

    /// ssl.certificate.location: client certificate (PEM) for mutual TLS.
    #[arg(
        long,
        visible_alias = "kafka-ssl-certificate-location",
        env = "VELOSTREAM_KAFKA_SSL_CERTIFICATE",
        value_name = "PEM"
    )]
    pub ssl_certificate_location: Option<String>,

    /// ssl.key.location: private key (PEM) of the client certificate.
    #[arg(
        long,
        visible_alias = "kafka-ssl-key-location",
        env = "VELOSTREAM_KAFKA_SSL_KEY",
        value_name = "PEM"
    )]
    pub ssl_key_location: Option<String>,

    /// ssl.key.password: passphrase of the private key (prefer the environment
    /// variable; never printed).
    #[arg(
        long,
        visible_alias = "kafka-ssl-key-password",
        env = "VELOSTREAM_KAFKA_SSL_KEY_PASSWORD",
        hide_env_values = true
    )]
    pub ssl_key_password: Option<String>,

    /// Any librdkafka property, repeatable: -X fetch.wait.max.ms=10.
    #[arg(short = 'X', long = "kafka-option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
}

impl fmt::Debug for KafkaArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: Vec<String> = self.options.iter().map(|o| redact_option(o)).collect();
        f.debug_struct("KafkaArgs")
            .field("brokers", &self.brokers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password.as_ref().map(|_| "***"))
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("ssl_certificate_location", &self.ssl_certificate_location)
            .field("ssl_key_location", &self.ssl_key_location)
            .field(
                "ssl_key_password",
                &self.ssl_key_password.as_ref().map(|_| "***"),
            )
            .field("options", &options)
            .finish()
    }
}

fn redact_option(o: &str) -> String {
    match o.split_once('=') {
        Some((k, _)) if SECRET_KEYS.contains(&k.trim()) => format!("{k}=***"),
        _ => o.to_string(),
    }
}

impl KafkaArgs {
    /// Settings for brokers at `brokers` with nothing else set.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaArgs {
            brokers: brokers.into(),
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            ssl_key_password: None,
            options: Vec::new(),
        }
    }

    /// Long names of the TLS/SASL flags that are set (not `-X` options).
    pub fn security_flags_set(&self) -> Vec<&'static str> {
        [
            ("--security-protocol", self.security_protocol.is_some()),
            ("--sasl-mechanism", self.sasl_mechanism.is_some()),
            ("--sasl-username", self.sasl_username.is_some()),
            ("--sasl-password", self.sasl_password.is_some()),
            ("--ssl-ca-location", self.ssl_ca_location.is_some()),
            (
                "--ssl-certificate-location",
                self.ssl_certificate_location.is_some(),
            ),
            ("--ssl-key-location", self.ssl_key_location.is_some()),
            ("--ssl-key-password", self.ssl_key_password.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, set)| set.then_some(flag))
        .collect()
    }

    /// The secret values configured here (SASL password, key password and
    /// secret `-X` properties), for scrubbing them out of messages.
    pub fn secrets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = [&self.sasl_password, &self.ssl_key_password]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        for o in &self.options {
            if let Some((k, v)) = o.split_once('=') {
                if SECRET_KEYS.contains(&k.trim()) && !v.trim().is_empty() {
                    out.push(v.trim());
                }
            }
        }
        out
    }

    /// A librdkafka configuration with the common settings applied; the
    /// caller adds role-specific properties, then [`KafkaArgs::apply_overrides`].
    ///
    /// TLS files are checked here, so a missing or unreadable CA, certificate
    /// or key is reported with its flag and path before any connection.
    pub fn client_config(&self) -> Result<ClientConfig> {
        if self.brokers.trim().is_empty() {
            return Err(Error::Config("--brokers is empty".into()));
        }
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        // Fail fast on unreachable brokers instead of retrying for minutes.
        c.set("socket.connection.setup.timeout.ms", "10000");
        c.set("log_level", "3");
        if let Some(v) = &self.security_protocol {
            c.set("security.protocol", v.to_ascii_lowercase());
        }
        if let Some(v) = &self.sasl_mechanism {
            c.set("sasl.mechanism", v);
        }
        if let Some(v) = &self.sasl_username {
            c.set("sasl.username", v);
        }
        if let Some(v) = &self.sasl_password {
            c.set("sasl.password", v);
        }
        let files = [
            (
                "--ssl-ca-location",
                "ssl.ca.location",
                &self.ssl_ca_location,
            ),
            (
                "--ssl-certificate-location",
                "ssl.certificate.location",
                &self.ssl_certificate_location,
            ),
            (
                "--ssl-key-location",
                "ssl.key.location",
                &self.ssl_key_location,
            ),
        ];
        for (flag, key, value) in files {
            if let Some(path) = value {
                check_readable(flag, path)?;
                c.set(key, path);
            }
        }
        if let Some(v) = &self.ssl_key_password {
            c.set("ssl.key.password", v);
        }
        Ok(c)
    }

    /// The `-X KEY=VALUE` pass-through properties as (key, value); entries
    /// without `=` are skipped (they are refused by
    /// [`apply_overrides`](Self::apply_overrides)).
    pub fn overrides(&self) -> Vec<(&str, &str)> {
        self.options
            .iter()
            .filter_map(|o| o.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect()
    }

    /// Applies the user's `-X key=value` options last, so they win.
    pub fn apply_overrides(&self, c: &mut ClientConfig) -> Result<()> {
        for o in &self.options {
            let (k, v) = o.split_once('=').ok_or_else(|| {
                Error::Config(format!("-X {}: expected KEY=VALUE", redact_option(o)))
            })?;
            c.set(k.trim(), v.trim());
        }
        Ok(())
    }
}

/// A client context that logs like rdkafka's default one and also keeps
/// the last error librdkafka reported (for example `SSL handshake failed:
/// ... certificate verify failed`), so that a bare "broker transport
/// failure" can say why. Secret values are redacted from what it keeps.
pub struct ErrorMemo {
    last: Mutex<Option<String>>,
    secrets: Vec<String>,
    /// The client speaks without TLS (plaintext or sasl_plaintext).
    plaintext: bool,
}

impl fmt::Debug for ErrorMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorMemo")
            .field("last", &self.last())
            .finish_non_exhaustive()
    }
}

impl ErrorMemo {
    /// A memo that redacts the secrets of `kafka`.
    pub fn new(kafka: &KafkaArgs) -> Self {
        ErrorMemo {
            last: Mutex::new(None),
            secrets: kafka.secrets().into_iter().map(str::to_string).collect(),
            plaintext: kafka.security_protocol.as_deref().is_none_or(|p| {
                p.eq_ignore_ascii_case("plaintext") || p.eq_ignore_ascii_case("sasl_plaintext")
            }),
        }
    }

    /// The last error reported, secrets redacted.
    pub fn last(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn remember(&self, text: &str) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        // "N/M brokers are down" follows the specific failure; keep that one.
        if last.is_some() && text.contains("brokers are down") {
            return;
        }
        let mut text = text.to_string();
        for s in self.secrets.iter().filter(|s| !s.is_empty()) {
            text = text.replace(s.as_str(), "***");
        }
        // A TLS listener closes a plaintext client's first request.
        if self.plaintext && text.contains("APIVERSION_QUERY") && text.contains("Disconnected") {
            text.push_str(" (the broker may expect TLS: try --security-protocol ssl or sasl_ssl)");
        }
        *last = Some(text);
    }
}

impl ClientContext for ErrorMemo {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // Connection failures (FAIL; at debug level after the first): the
        // error that ends the run quotes the last one, so they are not
        // repeated at error level.
        if fac == "FAIL" {
            self.remember(log_message);
            tracing::debug!(target: "librdkafka", "librdkafka: {fac} {log_message}");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                self.remember(log_message);
                tracing::error!(target: "librdkafka", "librdkafka: {fac} {log_message}");
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "librdkafka: {fac} {log_message}")
            }
            _ => tracing::debug!(target: "librdkafka", "librdkafka: {fac} {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.remember(reason);
        tracing::debug!(target: "librdkafka", "librdkafka: {error}: {reason}");
    }
}

impl ConsumerContext for ErrorMemo {}

/// A TLS file given by `flag` must be a readable file.
fn check_readable(flag: &str, path: &str) -> Result<()> {
    match std::fs::File::open(path) {
        Ok(f) if f.metadata().map(|m| m.is_file()).unwrap_or(false) => Ok(()),
        Ok(_) => Err(Error::Config(format!("{flag} {path}: not a file"))),
        Err(e) => Err(Error::Config(format!("{flag} {path}: cannot read it: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let mut k = KafkaArgs::new("127.0.0.1:9092");
        k.sasl_password = Some("hunter2-planted".into());
        k.options = vec!["ssl.key.password=also-secret".into(), "linger.ms=5".into()];
        let d = format!("{k:?}");
        assert!(
            !d.contains("hunter2-planted") && !d.contains("also-secret"),
            "{d}"
        );
        assert!(d.contains("linger.ms=5"));
        k.ssl_key_password = Some("key-pw-planted".into());
        let d = format!("{k:?}");
        assert!(!d.contains("key-pw-planted"), "{d}");
        let secrets = k.secrets();
        assert!(secrets.contains(&"hunter2-planted") && secrets.contains(&"also-secret"));
        assert!(secrets.contains(&"key-pw-planted") && !secrets.contains(&"5"));
    }

    #[test]
    fn error_memo_keeps_the_last_error_without_secrets() {
        let mut k = KafkaArgs::new("b:1");
        k.ssl_key_password = Some("memo-secret".into());
        let memo = ErrorMemo::new(&k);
        assert_eq!(memo.last(), None);
        memo.error(
            KafkaError::Global(rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure),
            "ssl://b:1/bootstrap: SSL handshake failed with memo-secret",
        );
        memo.error(
            KafkaError::Global(rdkafka::types::RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        let last = memo.last().unwrap();
        assert!(
            last.contains("SSL handshake failed") && !last.contains("memo-secret"),
            "{last}"
        );
    }

    #[test]
    fn tls_settings_reach_librdkafka_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "pem").unwrap();
        let mut k = KafkaArgs::new("b:1");
        k.security_protocol = Some("SSL".into());
        k.ssl_ca_location = Some(ca.to_str().unwrap().into());
        k.ssl_key_password = Some("pw".into());
        let c = k.client_config().unwrap();
        assert_eq!(c.get("security.protocol"), Some("ssl"));
        assert_eq!(c.get("ssl.ca.location"), ca.to_str());
        assert_eq!(c.get("ssl.key.password"), Some("pw"));
        k.ssl_key_location = Some(dir.path().join("nope.pem").to_str().unwrap().into());
        let err = k.client_config().unwrap_err().to_string();
        assert!(
            err.contains("--ssl-key-location") && err.contains("nope.pem"),
            "{err}"
        );
        k.ssl_key_location = Some(dir.path().to_str().unwrap().into());
        assert!(k
            .client_config()
            .unwrap_err()
            .to_string()
            .contains("not a file"));
    }

    #[test]
    fn overrides_win_and_malformed_options_are_refused() {
        let mut k = KafkaArgs::new("b:1");
        k.options = vec!["linger.ms = 7".into()];
        let mut c = k.client_config().unwrap();
        c.set("linger.ms", "1");
        k.apply_overrides(&mut c).unwrap();
        assert_eq!(c.get("linger.ms"), Some("7"));
        k.options = vec!["sasl.password".into()];
        assert!(k.apply_overrides(&mut c).is_err());
    }
}
