//! Health checks, each a real request to the service: ClickHouse `/ping`
//! answers `Ok.`, Prometheus `/-/ready` answers 200, Kafka answers a metadata
//! request (rdkafka) listing a broker, ZooKeeper answers `ruok` with `imok`.
//! [`wait_healthy`] polls one until it passes, the process dies or time is up.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};

const IO_TIMEOUT: Duration = Duration::from_secs(3);

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn tcp_open(port: u16) -> bool {
    TcpStream::connect_timeout(&loopback(port), IO_TIMEOUT).is_ok()
}

/// Sends `request` to 127.0.0.1:`port` and reads until the peer closes.
fn exchange(port: u16, request: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&loopback(port), IO_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).ok()?;
    stream.write_all(request).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    Some(String::from_utf8_lossy(&response).into_owned())
}

/// `GET path` over HTTP/1.0; returns the status and the body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    parse_http_response(&exchange(port, request.as_bytes())?)
}

/// Splits an HTTP/1.x response into status and body.
pub fn parse_http_response(text: &str) -> Option<(u16, String)> {
    let status = text
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Some((status, body.to_string()))
}

/// ClickHouse answers `/ping` with `Ok.`.
pub fn clickhouse_ping(port: u16) -> bool {
    matches!(http_get(port, "/ping"), Some((200, body)) if body.trim() == "Ok.")
}

/// Prometheus is ready to serve queries.
pub fn prometheus_ready(port: u16) -> bool {
    matches!(http_get(port, "/-/ready"), Some((200, _)))
}

/// ZooKeeper answers the four-letter word `ruok` with `imok`, and `stat`
/// shows it serving requests (`ruok` is answered before the server accepts
/// sessions; a client connecting then is dropped during its handshake).
pub fn zookeeper_ruok(port: u16) -> bool {
    exchange(port, b"ruok").is_some_and(|r| r.trim() == "imok")
        && exchange(port, b"stat").is_some_and(|r| r.contains("Mode: "))
}

/// A Kafka metadata request to 127.0.0.1:`port` lists at least one broker.
/// With `tls`, over TLS without checking the certificate: liveness only,
/// the clients under test check it.
pub fn kafka_metadata(port: u16, tls: bool) -> bool {
    if !tcp_open(port) {
        return false; // spares librdkafka's connection-refused noise
    }
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("socket.timeout.ms", "3000")
        .set_log_level(RDKafkaLogLevel::Emerg);
    if tls {
        config
            .set("security.protocol", "ssl")
            .set("enable.ssl.certificate.verification", "false");
    }
    let Ok(consumer) = config.create::<BaseConsumer>() else {
        return false;
    };
    consumer
        .fetch_metadata(None, IO_TIMEOUT)
        .is_ok_and(|md| !md.brokers().is_empty())
}

/// How a wait for health ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// The check passed.
    Healthy,
    /// The process exited first (e.g. its port was taken: retry).
    Exited,
    /// Time ran out while the process was still running.
    TimedOut,
}

/// Polls `healthy` every 200 ms until it passes, `running` turns false, or
/// `timeout` has passed.
pub fn wait_healthy(
    timeout: Duration,
    mut healthy: impl FnMut() -> bool,
    mut running: impl FnMut() -> bool,
) -> Waited {
    let deadline = Instant::now() + timeout;
    loop {
        if healthy() {
            return Waited::Healthy;
        }
        if !running() {
            return Waited::Exited;
        }
        if Instant::now() > deadline {
            return Waited::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_status_and_body() {
        let r = parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nOk.\n").unwrap();
        assert_eq!(r, (200, "Ok.\n".to_string()));
        assert_eq!(parse_http_response("nonsense"), None);
    }

    #[test]
    fn ruok_and_ping_against_tiny_servers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (i, s) in listener.incoming().enumerate() {
                let mut s = s.unwrap();
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf);
                let reply: &[u8] = match i {
                    0 => b"imok",
                    1 => b"Zookeeper version: 3.8\nMode: standalone\n",
                    2 => b"HTTP/1.0 200 OK\r\n\r\nOk.\n",
                    _ => b"HTTP/1.0 503 Service Unavailable\r\n\r\n",
                };
                let _ = s.write_all(reply);
            }
        });
        assert!(zookeeper_ruok(port));
        assert!(clickhouse_ping(port));
        assert!(!prometheus_ready(port));
    }

    #[test]
    fn nothing_listening_is_unhealthy() {
        let port = crate::local::ports::free_port().unwrap();
        assert!(!tcp_open(port));
        assert!(!zookeeper_ruok(port));
        assert!(!kafka_metadata(port, false));
    }

    #[test]
    fn wait_reports_each_outcome() {
        let d = Duration::from_millis(300);
        assert_eq!(wait_healthy(d, || true, || true), Waited::Healthy);
        assert_eq!(wait_healthy(d, || false, || false), Waited::Exited);
        assert_eq!(wait_healthy(d, || false, || true), Waited::TimedOut);
    }
}
