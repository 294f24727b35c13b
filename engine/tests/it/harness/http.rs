//! Blocking HTTP for the tests (ClickHouse queries, Prometheus, `/metrics`
//! pages), through `ureq`: no async runtime, so it works inside async tests
//! too. Plain `http://` only; proxies from the environment are ignored (every
//! service is on this machine).

use std::sync::OnceLock;
use std::time::Duration;

/// A response: the status and the body as text.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body, lossily decoded as UTF-8.
    pub body: String,
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(120)))
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .new_agent()
    })
}

/// `GET url`. An error names the URL (connection refused, timeout, …).
pub fn get(url: &str) -> Result<Response, String> {
    read(url, agent().get(url).call())
}

/// `GET url`: the body of a 200 answer; any other status is an error.
pub fn get_ok(url: &str) -> Result<String, String> {
    let r = get(url)?;
    if r.status == 200 {
        Ok(r.body)
    } else {
        Err(format!("{url}: HTTP {}: {}", r.status, r.body.trim_end()))
    }
}

/// `POST url` with `body`.
pub fn post(url: &str, body: &[u8]) -> Result<Response, String> {
    read(url, agent().post(url).send(body))
}

fn read(
    url: &str,
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Response, String> {
    let mut response = sent.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .map_err(|e| format!("{url}: reading the body: {e}"))?;
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for
/// query parameters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
