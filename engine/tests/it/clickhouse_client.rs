//! `velostream::clickhouse` against the real ClickHouse server of the harness
//! (18.16 on the dev machines): version, DDL, Native inserts with and without
//! LZ4, metadata with hostile column names, and the classification of
//! failures (unknown table, wrong password, nothing listening, no answer).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use bytes::Bytes;
use velostream::clickhouse::{
    ClickHouse, ClickHouseConfig, InsertCompression, InsertOptions, Secret, TableRef,
};
use velostream::Error;
use velostream_codecs::chtype::ChType;
use velostream_codecs::ddl::{quote_ident, CreateTable};
use velostream_codecs::mapping::ServerCaps;

use crate::harness::{self, TestDb};

fn client(url: &str, compression: InsertCompression) -> ClickHouse {
    let mut cfg = ClickHouseConfig::new(url);
    cfg.compression = compression;
    cfg.timeout = Duration::from_secs(20);
    ClickHouse::new(cfg).expect("valid config")
}

/// One Native block (HTTP flavour, no block info) with a single UInt64
/// column `name` holding `values`.
fn native_u64_block(name: &str, values: &[u64]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn string(out: &mut Vec<u8>, s: &str) {
        varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = Vec::new();
    varint(&mut out, 1);
    varint(&mut out, values.len() as u64);
    string(&mut out, name);
    string(&mut out, "UInt64");
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Creates `db.name (v UInt64)` and returns its reference.
async fn u64_table(ch: &ClickHouse, db: &TestDb, name: &str) -> TableRef {
    let t = TableRef::new(Some(&db.name), name);
    let columns = [("v".to_string(), ChType::UInt64)];
    let ddl = CreateTable {
        database: Some(&db.name),
        table: name,
        columns: &columns,
        order_by: &[],
        if_not_exists: false,
    }
    .to_sql()
    .unwrap();
    ch.execute(&ddl).await.unwrap();
    t
}

fn ch_parts(e: &Error) -> (&str, &str, Option<u32>, bool) {
    match e {
        Error::ClickHouse {
            context,
            message,
            code,
            transient,
        } => (context, message, *code, *transient),
        other => panic!("expected Error::ClickHouse, got {other:?}"),
    }
}

#[tokio::test]
async fn server_version_is_parsed_and_maps_to_caps() {
    let url = harness::clickhouse_url();
    let ch = client(&url, InsertCompression::Lz4);
    let v = ch.server_version().await.unwrap();
    let raw = harness::ch_query(&url, "SELECT version()");
    assert!(
        raw.trim()
            .starts_with(&format!("{}.{}.{}", v.major, v.minor, v.patch)),
        "{raw:?} vs {v}"
    );
    assert!(v.major >= 18, "{v}");
    assert_eq!(v.caps(), ServerCaps::for_version(v.major, v.minor));
    // Cached: a clone sees the same value.
    assert_eq!(ch.clone().server_version().await.unwrap(), v);
    // The dedup-token probe agrees with the documented first version (22.2).
    assert_eq!(ch.supports_dedup_token().await.unwrap(), v.at_least(22, 2));
}

#[tokio::test]
async fn native_insert_lz4_and_plain_then_count() {
    let url = harness::clickhouse_url();
    let db = TestDb::on(&url);
    let lz4 = client(&url, InsertCompression::Lz4);
    let plain = client(&url, InsertCompression::None);
    let t = u64_table(&lz4, &db, "nums").await;
    assert_eq!(lz4.count_rows(&t).await.unwrap(), 0);
    assert_eq!(lz4.active_rows(&t).await.unwrap(), 0, "no part yet");

    lz4.insert_native(
        &t,
        native_u64_block("v", &[1, 2, 3]).into(),
        &InsertOptions::default(),
    )
    .await
    .unwrap();
    plain
        .insert_native(
            &t,
            native_u64_block("v", &[10, 20]).into(),
            &InsertOptions::default(),
        )
        .await
        .unwrap();
    // Explicit column list and a dedup token (left out on servers without it).
    let opts = InsertOptions {
        dedup_token: Some("batch-0001".into()),
        columns: Some(vec!["v".into()]),
        ..InsertOptions::default()
    };
    lz4.insert_native(&t, native_u64_block("v", &[100]).into(), &opts)
        .await
        .unwrap();
    assert_eq!(lz4.count_rows(&t).await.unwrap(), 6);
    // Three inserts, three parts: system.parts adds them up like count().
    assert_eq!(lz4.active_rows(&t).await.unwrap(), 6);
    plain
        .query_tsv(&format!("OPTIMIZE TABLE {} FINAL", t.sql().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        lz4.active_rows(&t).await.unwrap(),
        6,
        "merged parts count once"
    );
    let sum = plain
        .query_tsv(&format!("SELECT sum(v) FROM {}", t.sql().unwrap()))
        .await
        .unwrap();
    assert_eq!(sum.trim(), "136");
}

#[tokio::test]
async fn large_lz4_body_is_sent_in_several_compressed_blocks() {
    let url = harness::clickhouse_url();
    let db = TestDb::on(&url);
    let ch = client(&url, InsertCompression::Lz4);
    let t = u64_table(&ch, &db, "big").await;
    // 300k rows = 2.4 MB: three compressed blocks of at most 1 MiB, the
    // second one starting in the middle of a value.
    let values: Vec<u64> = (0..300_000u64).map(|i| i * 7919).collect();
    let body = native_u64_block("v", &values);
    assert!(body.len() > 2 * (1 << 20));
    ch.insert_native(&t, Bytes::from(body), &InsertOptions::default())
        .await
        .unwrap();
    assert_eq!(ch.count_rows(&t).await.unwrap(), 300_000);
    let sum = ch
        .query_tsv(&format!("SELECT sum(v) FROM {}", t.sql().unwrap()))
        .await
        .unwrap();
    let expected: u64 = values.iter().sum();
    assert_eq!(sum.trim(), expected.to_string());
}

#[tokio::test]
async fn table_columns_round_trip_hostile_names_and_types() {
    let url = harness::clickhouse_url();
    let db = TestDb::on(&url);
    let ch = client(&url, InsertCompression::Lz4);
    let columns: Vec<(String, ChType)> = vec![
        ("plain".into(), ChType::UInt64),
        ("back`tick".into(), ChType::String),
        ("it's \"quoted\"".into(), ChType::Int32),
        ("with space".into(), ChType::Float64),
        ("new\nline".into(), ChType::UInt8),
        ("tab\there".into(), ChType::Date),
        (
            "back\\slash\\n".into(),
            ChType::Nullable(Box::new(ChType::String)),
        ),
        ("ünïcødé ✓ 名前".into(), ChType::FixedString(4)),
        ("select".into(), ChType::DateTime(Some("UTC".into()))),
        (
            "dec".into(),
            ChType::Decimal {
                precision: 9,
                scale: 2,
            },
        ),
        (
            "arr".into(),
            ChType::Array(Box::new(ChType::Nullable(Box::new(ChType::Int32)))),
        ),
    ];
    // A hostile table name too: quotes and a backslash go through
    // quote_string in the system.columns filter.
    let table = "t'ab`le\\x";
    let ddl = CreateTable {
        database: Some(&db.name),
        table,
        columns: &columns,
        order_by: &["plain".to_string()],
        if_not_exists: false,
    }
    .to_sql()
    .unwrap();
    ch.execute(&ddl).await.unwrap();
    let t = TableRef::new(Some(&db.name), table);
    assert!(ch.table_exists(&t).await.unwrap());
    let got = ch.table_columns(&t).await.unwrap().expect("table exists");
    assert_eq!(got, columns);

    // The same table through TableRef::parse of a quoted name.
    let parsed = TableRef::parse(&format!("{}.{}", db.name, quote_ident(table).unwrap())).unwrap();
    assert_eq!(parsed, t);
    assert_eq!(ch.table_columns(&parsed).await.unwrap(), Some(columns));
}

#[tokio::test]
async fn missing_table_and_database_are_none() {
    let url = harness::clickhouse_url();
    let db = TestDb::on(&url);
    let ch = client(&url, InsertCompression::Lz4);
    assert!(ch.database_exists(&db.name).await.unwrap());
    assert!(!ch.database_exists("no_such_db_velostream").await.unwrap());
    let missing = TableRef::new(Some(&db.name), "does_not_exist");
    assert_eq!(ch.table_columns(&missing).await.unwrap(), None);
    assert!(!ch.table_exists(&missing).await.unwrap());
    let in_missing_db = TableRef::new(Some("no_such_db_velostream"), "t");
    assert_eq!(ch.table_columns(&in_missing_db).await.unwrap(), None);
    // A name that would break an unescaped literal.
    let hostile = TableRef::new(Some(&db.name), "x' OR '1'='1");
    assert_eq!(ch.table_columns(&hostile).await.unwrap(), None);
}

#[tokio::test]
async fn insert_into_unknown_table_is_permanent_code_60() {
    let url = harness::clickhouse_url();
    let db = TestDb::on(&url);
    let ch = client(&url, InsertCompression::Lz4);
    let t = TableRef::new(Some(&db.name), "nope");
    let err = ch
        .insert_native(
            &t,
            native_u64_block("v", &[1]).into(),
            &InsertOptions::default(),
        )
        .await
        .unwrap_err();
    let (context, message, code, transient) = ch_parts(&err);
    assert_eq!(code, Some(60), "{err}");
    assert!(!transient, "{err}");
    assert!(
        context.contains("nope") && context.contains("insert"),
        "{context}"
    );
    assert!(message.contains("nope"), "{message}");
    assert!(err.to_string().contains("UNKNOWN_TABLE"), "{err}");
}

#[tokio::test]
async fn garbage_native_body_is_a_permanent_error() {
    let url = harness::clickhouse_url();
    let db = TestDb::on(&url);
    let ch = client(&url, InsertCompression::None);
    let t = u64_table(&ch, &db, "g").await;
    let err = ch
        .insert_native(
            &t,
            Bytes::from_static(b"garbage-bytes-here"),
            &InsertOptions::default(),
        )
        .await
        .unwrap_err();
    let (_, _, code, transient) = ch_parts(&err);
    assert!(code.is_some() && !transient, "{err}");
    assert_eq!(ch.count_rows(&t).await.unwrap(), 0);
}

#[tokio::test]
async fn wrong_password_is_permanent_and_never_echoed() {
    let url = harness::clickhouse_url();
    let planted = "PLANTED-s3cret-9f2e7c";
    let mut cfg = ClickHouseConfig::new(&url);
    cfg.user = Some("default".into());
    cfg.password = Some(Secret::new(planted));
    cfg.timeout = Duration::from_secs(20);
    let ch = ClickHouse::new(cfg.clone()).unwrap();
    assert!(!format!("{ch:?} {cfg:?}").contains(planted));

    // The planted text is also inside the SQL, which the context quotes.
    let err = ch
        .execute(&format!("SELECT '{planted}'"))
        .await
        .unwrap_err();
    let (_, message, code, transient) = ch_parts(&err);
    let text = format!("{err} | {err:?}");
    assert!(!text.contains(planted), "password leaked: {text}");
    assert!(!transient, "{text}");
    // 193 WRONG_PASSWORD on 18.16, 516 AUTHENTICATION_FAILED on modern servers.
    assert!(matches!(code, Some(193 | 516)), "{text}");
    assert!(
        message.to_lowercase().contains("password") || code == Some(516),
        "{text}"
    );

    let t = TableRef::new(None, "whatever");
    let err = ch
        .insert_native(
            &t,
            native_u64_block("v", &[1]).into(),
            &InsertOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(planted));
    assert!(!ch_parts(&err).3, "{err}");
}

#[tokio::test]
async fn nothing_listening_is_transient_and_fast() {
    let port = harness::free_port();
    let mut cfg = ClickHouseConfig::new(format!("http://127.0.0.1:{port}"));
    cfg.timeout = Duration::from_secs(5);
    let ch = ClickHouse::new(cfg).unwrap();
    let start = Instant::now();
    let err = ch.server_version().await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let (context, message, code, transient) = ch_parts(&err);
    assert!(transient, "{err}");
    assert_eq!(code, None);
    assert!(context.contains(&port.to_string()), "{context}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
    eprintln!("connection refused reads: {err}");

    let t = TableRef::new(Some("d"), "t");
    let err = ch
        .insert_native(
            &t,
            native_u64_block("v", &[1]).into(),
            &InsertOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(ch_parts(&err).3, "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_transient() {
    // Accepts connections (kernel backlog) but never reads or answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cfg = ClickHouseConfig::new(format!("http://127.0.0.1:{port}"));
    cfg.timeout = Duration::from_millis(800);
    let ch = ClickHouse::new(cfg).unwrap();
    let start = Instant::now();
    let err = ch
        .count_rows(&TableRef::new(Some("d"), "t"))
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(700) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    let (context, message, code, transient) = ch_parts(&err);
    assert!(transient && code.is_none(), "{err}");
    assert!(context.contains("`d`.`t`"), "{context}");
    assert!(message.contains("timeout"), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    eprintln!("no answer reads: {err}");
    drop(listener);
}

// ------------------------------------------------------------------ fake server

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// `POST /?query=...` request target, URL-decoded.
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers every request with
/// `status` and `body`, recording what it received (keep-alive and chunked
/// request bodies supported). Stands in for servers we do not have here
/// (modern ClickHouse, proxies answering 503).
struct FakeServer {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl FakeServer {
    fn start(respond: fn(&Seen) -> (u16, String)) -> FakeServer {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let target = line.split(' ').nth(1).unwrap_or("").to_string();
                        let mut headers = Vec::new();
                        loop {
                            let mut h = String::new();
                            reader.read_line(&mut h).unwrap();
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            let (k, v) = h.split_once(':').unwrap();
                            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                        }
                        let header = |name: &str| {
                            headers
                                .iter()
                                .find(|(k, _)| k == name)
                                .map(|(_, v)| v.clone())
                        };
                        let mut body = Vec::new();
                        if let Some(n) = header("content-length") {
                            body.resize(n.parse().unwrap(), 0);
                            reader.read_exact(&mut body).unwrap();
                        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked"))
                        {
                            loop {
                                let mut size = String::new();
                                reader.read_line(&mut size).unwrap();
                                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                                let mut chunk = vec![0; n + 2];
                                reader.read_exact(&mut chunk).unwrap();
                                if n == 0 {
                                    break;
                                }
                                body.extend_from_slice(&chunk[..n]);
                            }
                        }
                        let seen = Seen {
                            target: percent_decode(&target),
                            headers,
                            body,
                        };
                        let (status, text) = respond(&seen);
                        log.lock().unwrap().push(seen);
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{text}",
                            text.len()
                        );
                        if writer.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeServer { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn fake_client(url: &str, compression: InsertCompression) -> ClickHouse {
    let mut cfg = ClickHouseConfig::new(url);
    cfg.compression = compression;
    cfg.timeout = Duration::from_secs(10);
    ClickHouse::new(cfg).unwrap()
}

#[tokio::test]
async fn dedup_token_is_sent_only_when_the_server_has_the_setting() {
    // A "modern" server: system.settings knows the token; inserts succeed.
    let modern = FakeServer::start(|_| (200, "1\n".into()));
    let ch = fake_client(&modern.url, InsertCompression::Lz4);
    assert!(ch.supports_dedup_token().await.unwrap());
    let t = TableRef::new(Some("db"), "t");
    let opts = InsertOptions {
        dedup_token: Some("lane-3/p0:17-42".into()),
        columns: Some(vec!["v".into(), "odd `name`".into()]),
        ..InsertOptions::default()
    };
    let block = native_u64_block("v", &[1, 2, 3]);
    ch.insert_native(&t, block.clone().into(), &opts)
        .await
        .unwrap();
    let seen = modern.seen();
    let probe = &seen[0];
    assert!(
        String::from_utf8_lossy(&probe.body).contains("insert_deduplication_token"),
        "{probe:?}"
    );
    let insert = seen.last().unwrap();
    assert!(
        insert
            .target
            .contains("insert_deduplication_token=lane-3/p0:17-42"),
        "{}",
        insert.target
    );
    assert!(
        insert
            .target
            .contains("INSERT INTO `db`.`t` (`v`, `odd \\`name\\``) FORMAT Native"),
        "{}",
        insert.target
    );
    // ClickHouse block framing: 16-byte CityHash128, method 0x82 (LZ4),
    // compressed size incl. 9-byte header, uncompressed size.
    assert!(insert.target.contains("decompress=1"), "{}", insert.target);
    let body = &insert.body;
    assert_eq!(body[16], 0x82, "{body:?}");
    let compressed = u32::from_le_bytes(body[17..21].try_into().unwrap()) as usize;
    let raw = u32::from_le_bytes(body[21..25].try_into().unwrap()) as usize;
    assert_eq!(raw, block.len());
    assert_eq!(16 + compressed, body.len());

    // An "old" server: no such setting, the token is left out.
    let old = FakeServer::start(|_| (200, "0\n".into()));
    let ch = fake_client(&old.url, InsertCompression::None);
    assert!(!ch.supports_dedup_token().await.unwrap());
    ch.insert_native(&t, block.clone().into(), &opts)
        .await
        .unwrap();
    let insert = old.seen().last().unwrap().clone();
    assert!(
        !insert.target.contains("insert_deduplication_token"),
        "{}",
        insert.target
    );
    assert!(!insert.target.contains("decompress=1"), "{}", insert.target);
    assert_eq!(insert.body, block, "uncompressed body is sent as is");
}

#[tokio::test]
async fn insert_formatted_sends_other_formats() {
    let server = FakeServer::start(|_| (200, String::new()));
    let ch = fake_client(&server.url, InsertCompression::None);
    let t = TableRef::new(None, "t");
    let body = b"{\"v\":1}\n".to_vec();
    ch.insert_formatted(
        &t,
        "JSONEachRow",
        body.clone().into(),
        &InsertOptions::default(),
    )
    .await
    .unwrap();
    let seen = server.seen();
    assert!(
        seen[0]
            .target
            .contains("INSERT INTO `t` FORMAT JSONEachRow"),
        "{:?}",
        seen[0]
    );
    assert_eq!(seen[0].body, body);
    let err = ch
        .insert_formatted(&t, "JSON; DROP", Bytes::new(), &InsertOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[tokio::test]
async fn http_failures_are_classified_by_code_then_status() {
    let too_many_parts = FakeServer::start(|_| {
        (
            500,
            "Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)".into(),
        )
    });
    let err = fake_client(&too_many_parts.url, InsertCompression::Lz4)
        .execute("SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(ch_parts(&err).2, Some(252));
    assert!(ch_parts(&err).3, "{err}");

    let type_mismatch =
        FakeServer::start(|_| (500, "Code: 53. DB::Exception: Type mismatch".into()));
    let err = fake_client(&type_mismatch.url, InsertCompression::Lz4)
        .execute("SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(
        (ch_parts(&err).2, ch_parts(&err).3),
        (Some(53), false),
        "{err}"
    );

    let proxy = FakeServer::start(|_| (503, String::new()));
    let err = fake_client(&proxy.url, InsertCompression::Lz4)
        .execute("SELECT 1")
        .await
        .unwrap_err();
    assert_eq!((ch_parts(&err).2, ch_parts(&err).3), (None, true), "{err}");

    let not_found = FakeServer::start(|_| (404, String::new()));
    let err = fake_client(&not_found.url, InsertCompression::Lz4)
        .execute("SELECT 1")
        .await
        .unwrap_err();
    assert_eq!((ch_parts(&err).2, ch_parts(&err).3), (None, false), "{err}");
}

#[tokio::test]
async fn credentials_travel_in_headers_never_in_the_url() {
    let server = FakeServer::start(|_| (200, "23.8.1.1\n".into()));
    let mut cfg = ClickHouseConfig::new(&server.url);
    cfg.user = Some("writer".into());
    cfg.password = Some(Secret::new("PLANTED-hdr-pw"));
    let ch = ClickHouse::new(cfg).unwrap();
    let v = ch.server_version().await.unwrap();
    assert_eq!((v.major, v.minor, v.patch), (23, 8, 1));
    ch.insert_native(
        &TableRef::new(None, "t"),
        native_u64_block("v", &[1]).into(),
        &InsertOptions::default(),
    )
    .await
    .unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert!(!s.target.contains("PLANTED"), "{}", s.target);
        let header = |name: &str| {
            s.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("x-clickhouse-user"), Some("writer"));
        assert_eq!(header("x-clickhouse-key"), Some("PLANTED-hdr-pw"));
    }
}
