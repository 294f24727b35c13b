//! The TLS front of the local Kafka broker (`velostream local tls-proxy`):
//! terminates TLS on the listen address and relays each connection to
//! tansu's plain upstream port. It starts the broker command as its child,
//! so both live in one process group and die together; it exits when the
//! broker exits or on SIGTERM/SIGINT.
//!
//! Rust (tokio + OpenSSL, the TLS library rdkafka links) rather than a
//! script: an installed binary needs no Python to run its own TLS services,
//! and optional client-certificate checking (verify a certificate when one
//! is presented, accept clients without one) is OpenSSL's `SSL_VERIFY_PEER`
//! without `FAIL_IF_NO_PEER_CERT`.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;

use crate::{Error, Result};

/// What the proxy does.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// `HOST:PORT` to serve TLS on.
    pub listen: String,
    /// `HOST:PORT` of the plain broker.
    pub upstream: String,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, unencrypted).
    pub key: PathBuf,
    /// CA that presented client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    /// The broker command (program and arguments).
    pub command: Vec<String>,
}

/// The TLS acceptor: TLS 1.2+, the server certificate, optional client
/// certificate checking against `client_ca`.
pub fn acceptor(cfg: &ProxyConfig) -> Result<SslAcceptor> {
    let ssl_err = |what: &str, e: openssl::error::ErrorStack| {
        Error::Config(format!("Kafka TLS front: {what}: {e}"))
    };
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| ssl_err("creating the TLS context", e))?;
    b.set_certificate_chain_file(&cfg.cert)
        .map_err(|e| ssl_err(&format!("certificate {}", cfg.cert.display()), e))?;
    b.set_private_key_file(&cfg.key, SslFiletype::PEM)
        .map_err(|e| ssl_err(&format!("private key {}", cfg.key.display()), e))?;
    b.check_private_key()
        .map_err(|e| ssl_err("the key does not match the certificate", e))?;
    if let Some(ca) = &cfg.client_ca {
        b.set_ca_file(ca)
            .map_err(|e| ssl_err(&format!("client CA {}", ca.display()), e))?;
        b.set_verify(SslVerifyMode::PEER);
    }
    Ok(b.build())
}

/// Runs the proxy and the broker until either ends or a signal arrives.
pub async fn run(cfg: ProxyConfig) -> Result<()> {
    let acceptor = Arc::new(acceptor(&cfg)?);
    let (program, args) = cfg
        .command
        .split_first()
        .ok_or_else(|| Error::Config("tls-proxy: the broker command is missing after --".into()))?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Services(format!("tls-proxy: starting {program}: {e}")))?;
    let listener = TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| Error::io(format!("tls-proxy: binding {}", cfg.listen), e))?;
    eprintln!(
        "tls-proxy: TLS on {} -> {} (broker pid {})",
        cfg.listen,
        cfg.upstream,
        child.id().unwrap_or(0)
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("tls-proxy: SIGTERM handler", e))?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((tcp, _)) = accepted {
                    tokio::spawn(relay(Arc::clone(&acceptor), tcp, cfg.upstream.clone()));
                }
            }
            status = child.wait() => {
                eprintln!("tls-proxy: broker exited with {status:?}");
                return Err(Error::Services(format!("tls-proxy: the broker exited ({status:?})")));
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    Ok(())
}

/// One connection: TLS handshake, then bytes both ways until either side closes.
async fn relay(acceptor: Arc<SslAcceptor>, tcp: TcpStream, upstream: String) {
    let Ok(ssl) = Ssl::new(acceptor.context()) else {
        return;
    };
    let Ok(mut tls) = SslStream::new(ssl, tcp) else {
        return;
    };
    if let Err(e) = Pin::new(&mut tls).accept().await {
        eprintln!("tls-proxy: handshake refused: {e}");
        return;
    }
    match TcpStream::connect(&upstream).await {
        Ok(mut up) => {
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
        }
        Err(e) => eprintln!("tls-proxy: upstream {upstream}: {e}"),
    }
}
