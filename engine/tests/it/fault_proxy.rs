//! A fault-injecting HTTP/1.1 proxy between the consumer and ClickHouse,
//! for the unknown-outcome tests: it forwards every request and response,
//! and on chosen INSERT requests it
//! - `ResetAfterReply`: forwards the whole INSERT, waits for the server's
//!   reply (the rows are stored), then resets the client connection so the
//!   reply never arrives;
//! - `HoldTail(d)`: forwards all of the INSERT body but its last bytes,
//!   holds them for `d` (longer than the client's timeout: the client gives
//!   up while the server is still inserting), then completes the body, so
//!   the server stores the rows after the client has failed;
//! - `ResetMidBody`: forwards half of the body, then resets both
//!   connections (the server stores nothing).
//!
//! INSERTs are counted in arrival order; the plan says which ones fail.
//!
//! [`FaultProxy::hold_first`] holds the first request that contains a
//! given text until the test releases it, so a test can crash the server at
//! a chosen step of the client's protocol rather than at a moment it hopes
//! the client is at.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What happens to one INSERT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    ResetAfterReply,
    HoldTail(Duration),
    ResetMidBody,
}

/// A running proxy; it stops accepting when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    inserts: Arc<AtomicUsize>,
    applied: Arc<Mutex<Vec<(usize, Fault)>>>,
    hold: Arc<Hold>,
}

/// Where the one request [`FaultProxy::hold_first`] asks for is.
#[derive(Debug, Default)]
struct Hold {
    state: Mutex<HoldState>,
    changed: Condvar,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum HoldState {
    #[default]
    Off,
    /// Waiting for a request containing this (lower-case) text.
    Armed(String),
    Holding,
    Released,
}

impl Hold {
    /// Blocks while `request` is the one to hold, until it is released.
    fn pause_if_wanted(&self, request: &Message) {
        let mut state = self.state.lock().unwrap();
        let HoldState::Armed(needle) = &*state else {
            return;
        };
        if !request.text().contains(needle.as_str()) {
            return;
        }
        *state = HoldState::Holding;
        self.changed.notify_all();
        let _released = self
            .changed
            .wait_while(state, |s| *s == HoldState::Holding)
            .unwrap();
    }
}

impl FaultProxy {
    /// Proxies to `upstream` (`host:port`), failing INSERT number n (from 0)
    /// as `plan[n]` says.
    pub fn start(upstream: &str, plan: HashMap<usize, Fault>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fault proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let inserts = Arc::new(AtomicUsize::new(0));
        let applied = Arc::new(Mutex::new(Vec::new()));
        let plan = Arc::new(plan);
        let upstream = upstream.to_string();
        let hold = Arc::new(Hold::default());
        let (i, a, h) = (
            Arc::clone(&inserts),
            Arc::clone(&applied),
            Arc::clone(&hold),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, plan, i, a, h) = (
                    upstream.clone(),
                    Arc::clone(&plan),
                    Arc::clone(&i),
                    Arc::clone(&a),
                    Arc::clone(&h),
                );
                std::thread::spawn(move || {
                    if let Ok(server) = TcpStream::connect(&upstream) {
                        let _ = Connection {
                            client,
                            server,
                            plan,
                            inserts: i,
                            applied: a,
                            hold: h,
                        }
                        .serve();
                    }
                });
            }
        });
        FaultProxy {
            port,
            inserts,
            applied,
            hold,
        }
    }

    /// Holds the first request from now on whose head or body contains
    /// `needle` (case-insensitive) until [`FaultProxy::release`].
    pub fn hold_first(&self, needle: &str) {
        *self.hold.state.lock().unwrap() = HoldState::Armed(needle.to_ascii_lowercase());
    }

    /// Waits at most `timeout` for the request to hold to arrive.
    pub fn wait_held(&self, timeout: Duration) -> bool {
        let state = self.hold.state.lock().unwrap();
        let (state, _) = self
            .hold
            .changed
            .wait_timeout_while(state, timeout, |s| matches!(s, HoldState::Armed(_)))
            .unwrap();
        *state == HoldState::Holding
    }

    /// Lets the held request go on to the server.
    pub fn release(&self) {
        *self.hold.state.lock().unwrap() = HoldState::Released;
        self.hold.changed.notify_all();
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// INSERT requests seen so far.
    pub fn inserts(&self) -> usize {
        self.inserts.load(Ordering::SeqCst)
    }

    /// The faults applied so far: (insert number, fault).
    pub fn applied(&self) -> Vec<(usize, Fault)> {
        self.applied.lock().unwrap().clone()
    }
}

struct Connection {
    client: TcpStream,
    server: TcpStream,
    plan: Arc<HashMap<usize, Fault>>,
    inserts: Arc<AtomicUsize>,
    applied: Arc<Mutex<Vec<(usize, Fault)>>>,
    hold: Arc<Hold>,
}

/// One HTTP message as raw bytes: head (with the blank line) and body (with
/// its chunked framing, if any).
struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Message {
    fn first_line(&self) -> String {
        String::from_utf8_lossy(&self.head)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }

    /// Head and body as lower-case text (for matching, not parsing).
    fn text(&self) -> String {
        let mut bytes = self.head.clone();
        bytes.extend_from_slice(&self.body);
        String::from_utf8_lossy(&bytes).to_ascii_lowercase()
    }
}

impl Connection {
    /// Request/response pairs until either side closes.
    fn serve(mut self) -> std::io::Result<()> {
        let mut from_client = BufReader::new(self.client.try_clone()?);
        let mut from_server = BufReader::new(self.server.try_clone()?);
        loop {
            let Some(request) = read_message(&mut from_client)? else {
                return Ok(());
            };
            self.hold.pause_if_wanted(&request);
            let is_insert = request
                .first_line()
                .to_ascii_lowercase()
                .contains("query=insert");
            let fault = if is_insert {
                let n = self.inserts.fetch_add(1, Ordering::SeqCst);
                let fault = self.plan.get(&n).copied();
                if let Some(f) = fault {
                    self.applied.lock().unwrap().push((n, f));
                }
                fault
            } else {
                None
            };
            match fault {
                None => {
                    self.forward(&request)?;
                    let Some(response) = read_message(&mut from_server)? else {
                        return Ok(());
                    };
                    self.client.write_all(&response.head)?;
                    self.client.write_all(&response.body)?;
                }
                Some(Fault::ResetAfterReply) => {
                    self.forward(&request)?;
                    let _ = read_message(&mut from_server)?;
                    reset(&self.client);
                    return Ok(());
                }
                Some(Fault::HoldTail(d)) => {
                    let cut = request.body.len().saturating_sub(5);
                    self.server.write_all(&request.head)?;
                    self.server.write_all(&request.body[..cut])?;
                    std::thread::sleep(d);
                    self.server.write_all(&request.body[cut..])?;
                    let _ = read_message(&mut from_server)?;
                    reset(&self.client);
                    return Ok(());
                }
                Some(Fault::ResetMidBody) => {
                    self.server.write_all(&request.head)?;
                    self.server
                        .write_all(&request.body[..request.body.len() / 2])?;
                    reset(&self.server);
                    reset(&self.client);
                    return Ok(());
                }
            }
        }
    }

    fn forward(&mut self, request: &Message) -> std::io::Result<()> {
        self.server.write_all(&request.head)?;
        self.server.write_all(&request.body)
    }
}

/// Closes `s` with a TCP reset (SO_LINGER 0) rather than an orderly FIN.
fn reset(s: &TcpStream) {
    let sock = socket2::SockRef::from(s);
    let _ = sock.set_linger(Some(Duration::ZERO));
    let _ = s.shutdown(Shutdown::Both);
}

/// Reads one HTTP/1.1 message (request or response); `None` at a clean EOF
/// before its first byte.
fn read_message(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Message>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        let blank = line == b"\r\n";
        head.extend_from_slice(&line);
        if blank {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let header = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_string())
        })
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size_line = Vec::new();
            r.read_until(b'\n', &mut size_line)?;
            body.extend_from_slice(&size_line);
            let size_text = String::from_utf8_lossy(&size_line);
            let size = usize::from_str_radix(size_text.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Some(Message { head, body }))
}
