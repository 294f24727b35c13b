//! Kafka client settings from flags, environment variables and `-X key=value`
//! pass-through options. Secrets (SASL password, key passwords) are taken
//! from flags or environment but never printed: [`KafkaArgs`]'s `Debug`
//! redacts them and errors never echo configuration values.

use std::fmt;

use rdkafka::ClientConfig;

use crate::{Error, Result};

/// librdkafka property names whose values are secrets.
const SECRET_KEYS: &[&str] = &[
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
];

/// Connection settings common to every Kafka client VeloStream creates.
#[derive(Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma separated (HOST:PORT[,HOST:PORT…]).
    #[arg(long, env = "VELOSTREAM_BROKERS", value_name = "HOST:PORT[,…]")]
    pub brokers: String,

    /// security.protocol: plaintext, ssl, sasl_plaintext or sasl_ssl.
    #[arg(long, env = "VELOSTREAM_KAFKA_SECURITY_PROTOCOL")]
    pub security_protocol: Option<String>,

    /// sasl.mechanism, e.g. PLAIN or SCRAM-SHA-512.
    #[arg(long, env = "VELOSTREAM_KAFKA_SASL_MECHANISM")]
    pub sasl_mechanism: Option<String>,

    /// sasl.username.
    #[arg(long, env = "VELOSTREAM_KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,

    /// sasl.password (prefer the environment variable; never printed).
    #[arg(long, env = "VELOSTREAM_KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub sasl_password: Option<String>,

    /// ssl.ca.location: CA certificate file for TLS connections.
    #[arg(long, env = "VELOSTREAM_KAFKA_SSL_CA")]
    pub ssl_ca_location: Option<String>,

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
            options: Vec::new(),
        }
    }

    /// A librdkafka configuration with the common settings applied; the
    /// caller adds role-specific properties, then [`KafkaArgs::apply_overrides`].
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
            c.set("security.protocol", v);
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
        if let Some(v) = &self.ssl_ca_location {
            c.set("ssl.ca.location", v);
        }
        Ok(c)
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
