//! The one ClickHouse client of the tests (HTTP, blocking, usable inside
//! async tests): queries, raw Native inserts, `count()`, TSV fields, and
//! [`TestDb`], a database per test.

use super::http::{self, url_encode};
use super::paths::unique_name;
use super::services::clickhouse_url;

/// A database created for one test and dropped when the value is dropped.
#[derive(Debug)]
pub struct TestDb {
    /// Database name (`[a-z0-9_]`).
    pub name: String,
    /// ClickHouse HTTP URL it lives on.
    pub url: String,
}

impl TestDb {
    /// Creates a uniquely named database on [`clickhouse_url`].
    pub fn new() -> TestDb {
        TestDb::on(&clickhouse_url())
    }

    /// Creates a uniquely named database on `url`.
    pub fn on(url: &str) -> TestDb {
        let name = unique_name("vs_test");
        ch_query(url, &format!("CREATE DATABASE {name}"));
        TestDb {
            name,
            url: url.to_string(),
        }
    }

    /// `"<db>.<table>"`.
    pub fn table(&self, table: &str) -> String {
        format!("{}.{table}", self.name)
    }

    /// Runs `sql` against this database's server (see [`ch_query`]).
    pub fn query(&self, sql: &str) -> String {
        ch_query(&self.url, sql)
    }

    /// `count()` of `table` of this database (a bare table name).
    pub fn count(&self, table: &str) -> u64 {
        count(&self.url, &self.table(table))
    }

    /// Rows of each part inserts created in `table` (a bare table name), in
    /// the order they were written, from `system.part_log`, once the parts
    /// hold `rows` rows: `SYSTEM FLUSH LOGS` on ClickHouse 18.x writes only
    /// the entries the log's thread has already dequeued, so the log is read
    /// again until it is complete (at most 15 s, beyond its own 7.5 s flush).
    pub fn new_parts(&self, table: &str, rows: u64) -> Vec<u64> {
        let q = velostream_codecs::ddl::quote_string;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            self.query("SYSTEM FLUSH LOGS");
            let parts: Vec<u64> = self
                .query(&format!(
                    "SELECT rows FROM system.part_log WHERE database = {} AND table = {} \
                     AND toString(event_type) IN ('NewPart', 'NEW_PART') \
                     ORDER BY event_time FORMAT TSV",
                    q(&self.name),
                    q(table)
                ))
                .lines()
                .map(|l| l.trim().parse().expect("rows of a part"))
                .collect();
            if parts.iter().sum::<u64>() >= rows || std::time::Instant::now() >= deadline {
                return parts;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// True when `table` (a bare table name) exists in this database.
    pub fn has_table(&self, table: &str) -> bool {
        let q = velostream_codecs::ddl::quote_string;
        self.query(&format!(
            "SELECT count() FROM system.tables WHERE database = {} AND name = {} FORMAT TSV",
            q(&self.name),
            q(table)
        ))
        .trim()
            == "1"
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Never panic in drop (the test may already be unwinding).
        if let Err(e) = ch_try_query(&self.url, &format!("DROP DATABASE IF EXISTS {}", self.name)) {
            eprintln!("harness: dropping database {}: {e}", self.name);
        }
    }
}

/// Runs `sql` on ClickHouse and returns the response body (TSV by
/// default). Panics with the server's message on error.
pub fn ch_query(url: &str, sql: &str) -> String {
    ch_try_query(url, sql).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`ch_query`] but returns the error message.
pub fn ch_try_query(url: &str, sql: &str) -> Result<String, String> {
    ch_exec(url, sql, &[])
}

/// Runs `sql` with `settings` as URL parameters; returns the body or the
/// server's error (naming the URL and the query).
pub fn ch_exec(url: &str, sql: &str, settings: &[(&str, &str)]) -> Result<String, String> {
    let params: Vec<String> = settings
        .iter()
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect();
    let target = format!("{}/?{}", url.trim_end_matches('/'), params.join("&"));
    let r = http::post(&target, sql.as_bytes())
        .map_err(|e| format!("ClickHouse {url}: {e}; query: {sql}"))?;
    if r.status == 200 {
        Ok(r.body)
    } else {
        Err(format!(
            "ClickHouse {url}: HTTP {}: {}; query: {sql}",
            r.status,
            r.body.trim_end()
        ))
    }
}

/// `INSERT INTO <table_sql> FORMAT Native` with `body` (Native blocks) as
/// the request body.
pub fn insert_native(url: &str, table_sql: &str, body: &[u8]) -> Result<(), String> {
    let q = format!("INSERT INTO {table_sql} FORMAT Native");
    let target = format!("{}/?query={}", url.trim_end_matches('/'), url_encode(&q));
    let r = http::post(&target, body).map_err(|e| format!("ClickHouse {url}: {e}; query: {q}"))?;
    if r.status == 200 {
        Ok(())
    } else {
        Err(format!(
            "ClickHouse {url}: HTTP {}: {}; query: {q}",
            r.status,
            r.body.trim_end()
        ))
    }
}

/// `count()` of `table` (`db.table`); panics naming the table on error.
pub fn count(url: &str, table: &str) -> u64 {
    try_count(url, table).unwrap_or_else(|e| panic!("{e}"))
}

/// `count()` of `table`, or why it could not be read (for example while the
/// table does not exist yet, or the server is down).
pub fn try_count(url: &str, table: &str) -> Result<u64, String> {
    let text = ch_try_query(url, &format!("SELECT count() FROM {table} FORMAT TSV"))?;
    text.trim()
        .parse()
        .map_err(|_| format!("count of {table} on {url}: {text:?}"))
}

/// Undoes ClickHouse's TSV escaping of one field.
pub fn tsv_unescape(s: &str) -> String {
    velostream::clickhouse::tsv::unescape_field(s)
}

/// One TSV field: `None` for `\N` (NULL), else the unescaped text.
pub fn tsv_field(s: &str) -> Option<String> {
    (s != "\\N").then(|| tsv_unescape(s))
}

/// Whether an INSERT runs on the server at `url` now (false when it cannot
/// be asked).
pub fn insert_running(url: &str) -> bool {
    ch_try_query(
        url,
        "SELECT count() FROM system.processes WHERE query LIKE 'INSERT%'",
    )
    .is_ok_and(|n| n.trim() != "0")
}
