//! Kafka and ClickHouse with TLS for the security tests, started once per
//! test process with a throwaway CA made by the `openssl` CLI.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use velostream::local::{LocalServices, Service, TlsFiles};

use super::services::{remove_stale_state_dirs, state_dir, INSTALL_COMMAND};

/// Kafka and ClickHouse with TLS, started once per test process (in
/// `<state_dir>/tls`) with a throwaway CA made by the `openssl` CLI.
#[derive(Debug)]
pub struct TlsServices {
    /// Kafka bootstrap servers that accept only TLS (`security.protocol=ssl`).
    pub brokers: String,
    /// ClickHouse HTTPS URL (`https://127.0.0.1:PORT`).
    pub clickhouse_https_url: String,
    /// The same ClickHouse server over plain HTTP (for checks).
    pub clickhouse_url: String,
    /// PEM of the CA that signed both servers' certificate (CN and SAN 127.0.0.1).
    pub ca: PathBuf,
    /// PEM of another CA that signed nothing the servers present.
    pub other_ca: PathBuf,
    /// A ClickHouse user with a password (defined in `users.d/` before start).
    pub clickhouse_user: String,
    /// Its password, unique per process; tests treat it as a planted secret.
    pub clickhouse_password: String,
    /// Client certificate signed by [`TlsServices::ca`] (Kafka checks
    /// presented client certificates against that CA).
    pub client_cert: PathBuf,
    /// Its private key, encrypted with [`TlsServices::client_key_password`].
    pub client_key: PathBuf,
    /// Passphrase of `client_key`, unique per process (a planted secret).
    pub client_key_password: String,
    /// Client certificate and unencrypted key signed by `other_ca` (refused).
    pub other_client_cert: PathBuf,
    /// Key of `other_client_cert`.
    pub other_client_key: PathBuf,
}

/// The TLS services of this test process; see [`TlsServices`]. Panics with
/// the install command when a binary (tansu, clickhouse-server, openssl) is
/// missing.
pub fn tls_services() -> &'static TlsServices {
    static TLS: OnceLock<Result<TlsServices, String>> = OnceLock::new();
    TLS.get_or_init(start_tls_services)
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn start_tls_services() -> Result<TlsServices, String> {
    remove_stale_state_dirs();
    let pki = state_dir().join("tls-pki");
    std::fs::create_dir_all(&pki).map_err(|e| format!("creating {}: {e}", pki.display()))?;
    let ca = make_ca(&pki, "ca")?;
    let other_ca = make_ca(&pki, "other-ca")?;
    let cert = pki.join("server.pem");
    let key = pki.join("server.key");
    let csr = pki.join("server.csr");
    let ext = pki.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| format!("writing {}: {e}", ext.display()))?;
    let p = |p: &Path| p.display().to_string();
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&pki.join("ca.key")),
        "-CAcreateserial",
        "-out",
        &p(&cert),
        "-days",
        "2",
        "-extfile",
        &p(&ext),
    ])?;
    // ClickHouse merges users.d/*.xml into the users.xml that `velostream local` writes.
    let clickhouse_user = "vs_secure".to_string();
    let clickhouse_password = format!("vs-planted-CHTLS-{}", std::process::id());
    let users_d = state_dir().join("tls/clickhouse/users.d");
    std::fs::create_dir_all(&users_d)
        .map_err(|e| format!("creating {}: {e}", users_d.display()))?;
    std::fs::write(
        users_d.join("vs_secure.xml"),
        format!(
            "<?xml version=\"1.0\"?>\n<yandex><users><{clickhouse_user}>\
             <password>{clickhouse_password}</password>\
             <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>\
             <profile>default</profile><quota>default</quota>\
             </{clickhouse_user}></users></yandex>\n"
        ),
    )
    .map_err(|e| format!("writing {}: {e}", users_d.display()))?;
    let client_key_password = format!("vs-planted-CLIENTKEY-{}", std::process::id());
    let (client_cert, client_key) =
        make_client_cert(&pki, "client", "ca", Some(&client_key_password))?;
    let (other_client_cert, other_client_key) =
        make_client_cert(&pki, "other-client", "other-ca", None)?;
    let opts = crate::harness_services::local_options(state_dir().join("tls"));
    let t0 = Instant::now();
    let handle = LocalServices::start_with_tls(
        &[Service::Kafka, Service::ClickHouse],
        &opts,
        &TlsFiles {
            cert,
            key,
            client_ca: Some(ca.clone()),
        },
    )
    .map_err(|e| {
        let hint = if matches!(e, velostream::Error::NotInstalled { .. }) {
            format!("; run {INSTALL_COMMAND}")
        } else {
            String::new()
        };
        format!("starting Kafka and ClickHouse with TLS: {e}{hint}")
    })?;
    let endpoints = handle.detach(); // the watchdog stops them with this process
    let services = TlsServices {
        brokers: endpoints.brokers.ok_or("no TLS brokers endpoint")?,
        clickhouse_https_url: endpoints
            .clickhouse_https_url
            .ok_or("no ClickHouse HTTPS endpoint")?,
        clickhouse_url: endpoints.clickhouse_url.ok_or("no ClickHouse endpoint")?,
        ca,
        other_ca,
        clickhouse_user,
        clickhouse_password,
        client_cert,
        client_key,
        client_key_password,
        other_client_cert,
        other_client_key,
    };
    eprintln!(
        "harness: started TLS Kafka at {} and ClickHouse at {} in {} ms",
        services.brokers,
        services.clickhouse_https_url,
        t0.elapsed().as_millis()
    );
    Ok(services)
}

/// A self-signed CA `<name>.pem` (key `<name>.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let pem = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key.display().to_string(),
        "-out",
        &pem.display().to_string(),
        "-days",
        "2",
        "-subj",
        &format!("/CN=velostream-test-{name}"),
    ])?;
    Ok(pem)
}

/// A client certificate `<name>.pem` signed by the CA `<ca>.pem` in `dir`,
/// with its key `<name>.key` (encrypted with `password` when given).
fn make_client_cert(
    dir: &Path,
    name: &str,
    ca: &str,
    password: Option<&str>,
) -> Result<(PathBuf, PathBuf), String> {
    let p = |f: String| dir.join(f).display().to_string();
    let (pem, key, csr, ext) = (
        p(format!("{name}.pem")),
        p(format!("{name}.key")),
        p(format!("{name}.csr")),
        p(format!("{name}.ext")),
    );
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .map_err(|e| format!("writing {ext}: {e}"))?;
    let pass = password.map(|pw| format!("pass:{pw}"));
    let mut genkey = vec!["genpkey", "-algorithm", "RSA", "-out", &key];
    if let Some(pass) = &pass {
        genkey.extend(["-aes256", "-pass", pass]);
    }
    openssl(&genkey)?;
    let subj = format!("/CN=velostream-test-{name}");
    let mut req = vec!["req", "-new", "-key", &key, "-out", &csr, "-subj", &subj];
    if let Some(pass) = &pass {
        req.extend(["-passin", pass]);
    }
    openssl(&req)?;
    let (ca_pem, ca_key) = (p(format!("{ca}.pem")), p(format!("{ca}.key")));
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &pem,
        "-days",
        "2",
        "-extfile",
        &ext,
    ])?;
    Ok((PathBuf::from(pem), PathBuf::from(key)))
}

fn openssl(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .map_err(|e| {
            format!(
                "running openssl: {e}; install it with {INSTALL_COMMAND} (Debian package openssl)"
            )
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {}: {}: {}",
            args.iter()
                .map(|a| if a.starts_with("pass:") {
                    "pass:***"
                } else {
                    a
                })
                .collect::<Vec<_>>()
                .join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}
