//! The ClickHouse HTTP client: queries, metadata, Native inserts.
//!
//! Built on the `clickhouse` crate's HTTP transport, used only for raw
//! statements (`query_raw`), `fetch_bytes("TSV")` and pre-formatted inserts
//! (`insert_formatted_with`), because its typed row fetches need
//! `RowBinaryWithNamesAndTypes`, which 18.16 does not have. Every request is
//! bounded by the configured timeout and every failure becomes an
//! [`Error::ClickHouse`] classified by [`super::retry`].

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use clickhouse::insert_formatted::CompressedData;
use clickhouse::{Client, Compression};
use tokio::sync::OnceCell;
use velostream_codecs::chtype::ChType;
use velostream_codecs::ddl;

use super::config::{ClickHouseConfig, InsertCompression};
use super::retry::{self, classify};
use super::table::TableRef;
use super::tsv;
use super::version::ServerVersion;
use crate::{Error, Result};

/// TCP keepalive and idle-pool settings of the `clickhouse` crate's own
/// default HTTP client, mirrored by [`https_client_with_ca`].
const TCP_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(60);
const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The HTTP(S) client the `clickhouse` crate builds by default (hyper,
/// native-tls, keepalive 60 s, idle pool timeout 2 s) as a ClickHouse client, trusting the PEM
/// certificate(s) in `ca` in addition to the system trust store.
fn https_client_with_ca(ca: &Path) -> Result<Client> {
    use hyper_tls::native_tls;
    use hyper_util::client::legacy::connect::HttpConnector;
    let what = || format!("ClickHouse CA certificate {}", ca.display());
    let pem = std::fs::read(ca).map_err(|e| Error::io(what(), e))?;
    let mut tls = native_tls::TlsConnector::builder();
    let mut found = 0;
    for block in pem_blocks(&pem) {
        let cert = native_tls::Certificate::from_pem(block)
            .map_err(|e| Error::Config(format!("{}: not a PEM certificate: {e}", what())))?;
        tls.add_root_certificate(cert);
        found += 1;
    }
    if found == 0 {
        return Err(Error::Config(format!(
            "{}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            what()
        )));
    }
    let tls = tls
        .build()
        .map_err(|e| Error::Config(format!("{}: TLS setup failed: {e}", what())))?;
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.enforce_http(false);
    let https = hyper_tls::HttpsConnector::from((http, tls.into()));
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(https);
    Ok(Client::with_http_client(hyper))
}

/// The `-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----` blocks of a
/// PEM file (a CA bundle may hold several).
fn pem_blocks(pem: &[u8]) -> Vec<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(b) = find(rest, BEGIN) {
        let Some(e) = find(&rest[b..], END) else {
            break;
        };
        let end = b + e + END.len();
        out.push(&rest[b..end]);
        rest = &rest[end..];
    }
    out
}

/// Whether a connection error text describes a failed TLS handshake or
/// certificate check (OpenSSL's and native-tls's wording).
fn is_tls_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "certificate",
        "handshake",
        "ssl routines",
        "tls",
        "wrong version number",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// Uncompressed bytes per compressed block of an INSERT body (ClickHouse's
/// own default block size, 1 MiB).
pub const COMPRESS_BLOCK_BYTES: usize = 1 << 20;

/// Per-insert options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InsertOptions {
    /// Sent as `insert_deduplication_token` when the server has that setting
    /// (22.2 and later; see [`ClickHouse::supports_dedup_token`]); silently
    /// left out otherwise.
    pub dedup_token: Option<String>,
    /// Explicit column list `INSERT INTO t (a, b)`; `None` means the body
    /// carries every column (Native matches columns by name either way).
    pub columns: Option<Vec<String>>,
    /// The query id (visible in `system.processes` while the insert runs).
    pub query_id: Option<String>,
    /// Further settings of this insert (name, value).
    pub settings: Vec<(String, String)>,
}

/// A ClickHouse endpoint. Cheap to clone (clones share the connection pool
/// and the cached server facts); `Send + Sync`.
#[derive(Clone)]
pub struct ClickHouse {
    /// For statements and queries: responses are small, never compressed.
    query_client: Client,
    /// For inserts: ClickHouse block compression when configured.
    insert_client: Client,
    cfg: Arc<ClickHouseConfig>,
    version: Arc<OnceCell<ServerVersion>>,
    dedup_token: Arc<OnceCell<bool>>,
}

impl fmt::Debug for ClickHouse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouse")
            .field("url", &self.cfg.url)
            .field("user", &self.cfg.user)
            .field("password", &self.cfg.password.as_ref().map(|_| "***"))
            .field("compression", &self.cfg.compression)
            .field("timeout", &self.cfg.timeout)
            .field("version", &self.version.get())
            .finish()
    }
}

impl ClickHouse {
    /// Validates `cfg` (see [`ClickHouseConfig::validate`]) and prepares the
    /// client. No request is made until the first call.
    pub fn new(cfg: ClickHouseConfig) -> Result<Self> {
        cfg.validate()?;
        let client = match &cfg.ca_cert {
            Some(ca) => https_client_with_ca(ca)?,
            None => Client::default(),
        };
        let mut base = client
            .with_url(cfg.url.trim().trim_end_matches('/'))
            .with_validation(false);
        match (&cfg.user, &cfg.password) {
            (Some(user), _) => base = base.with_user(user.clone()),
            // A password alone belongs to the server's `default` user (an
            // empty user name is answered with "Unknown user").
            (None, Some(_)) => base = base.with_user("default"),
            (None, None) => {}
        }
        if let Some(password) = &cfg.password {
            base = base.with_password(password.expose().to_string());
        }
        let query_client = base.clone().with_compression(Compression::None);
        let insert_client = base.with_compression(match cfg.compression {
            InsertCompression::Lz4 => Compression::Lz4,
            InsertCompression::None => Compression::None,
        });
        Ok(ClickHouse {
            query_client,
            insert_client,
            cfg: Arc::new(cfg),
            version: Arc::new(OnceCell::new()),
            dedup_token: Arc::new(OnceCell::new()),
        })
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &ClickHouseConfig {
        &self.cfg
    }

    fn secrets(&self) -> Vec<&str> {
        self.cfg
            .password
            .as_ref()
            .map(|p| vec![p.expose()])
            .unwrap_or_default()
    }

    /// Runs `fut` under the configured timeout, classifying failures.
    async fn bounded<T>(
        &self,
        context: impl FnOnce() -> String,
        fut: impl Future<Output = clickhouse::error::Result<T>>,
    ) -> Result<T> {
        let err = match tokio::time::timeout(self.cfg.timeout, fut).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => classify(context(), &e, &self.secrets()),
            Err(_) => retry::timed_out(context(), self.cfg.timeout, &self.secrets()),
        };
        // Connection-level failures: say which server could not be reached.
        Err(match err {
            // A TLS failure does not heal by retrying.
            Error::ClickHouse {
                context,
                message,
                code: None,
                transient: true,
            } if is_tls_failure(&message) => Error::ClickHouse {
                context,
                message: format!(
                    "{message} (TLS with server {}: is its certificate signed by a CA in the \
                     system trust store or in --clickhouse-ca-cert?)",
                    self.cfg.url
                ),
                code: None,
                transient: false,
            },
            Error::ClickHouse {
                context,
                message,
                code: None,
                transient: true,
            } if !context.contains(&self.cfg.url) => Error::ClickHouse {
                context,
                message: format!("{message} (server {})", self.cfg.url),
                code: None,
                transient: true,
            },
            other => other,
        })
    }

    /// Runs a statement (DDL, `INSERT ... SELECT`, `OPTIMIZE`, ...) and
    /// discards any result. The SQL is sent verbatim (`?` is not a
    /// placeholder).
    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.bounded(
            || format!("executing {}", abbreviate(sql)),
            self.query_client.query_raw(sql).execute(),
        )
        .await
    }

    /// Like [`ClickHouse::execute`] with query-level settings (name, value).
    pub async fn execute_with_settings(
        &self,
        sql: &str,
        settings: &[(&str, String)],
    ) -> Result<()> {
        let mut q = self.query_client.query_raw(sql);
        for (k, v) in settings {
            q = q.with_setting(*k, v.clone());
        }
        self.bounded(|| format!("executing {}", abbreviate(sql)), q.execute())
            .await
    }

    /// Runs a query and returns its result as `TabSeparated` text (unless the
    /// SQL names another `FORMAT`). See [`super::tsv`] to split it.
    pub async fn query_tsv(&self, sql: &str) -> Result<String> {
        self.query_tsv_with_context(sql, || format!("querying {}", abbreviate(sql)))
            .await
    }

    async fn query_tsv_with_context(
        &self,
        sql: &str,
        context: impl FnOnce() -> String,
    ) -> Result<String> {
        let query = self.query_client.query_raw(sql);
        let bytes = self
            .bounded(
                context,
                async move { query.fetch_bytes("TSV")?.collect().await },
            )
            .await?;
        String::from_utf8(bytes.to_vec()).map_err(|e| Error::ClickHouse {
            context: retry::redact(&format!("querying {}", abbreviate(sql)), &self.secrets()),
            message: format!("response is not UTF-8: {e}"),
            code: None,
            transient: false,
        })
    }

    /// `SELECT uptime()`: how long the server process has run (whole
    /// seconds, rounded down).
    pub async fn uptime(&self) -> Result<std::time::Duration> {
        let text = self.query_tsv("SELECT uptime()").await?;
        let secs = text.trim().parse::<u64>().map_err(|e| Error::ClickHouse {
            context: format!(
                "reading the uptime of {}",
                super::config::redact_url(&self.cfg.url)
            ),
            message: format!("not a number of seconds: {:?} ({e})", text.trim()),
            code: None,
            transient: false,
        })?;
        Ok(std::time::Duration::from_secs(secs))
    }

    /// `SELECT version()`, parsed and cached for the life of this client and
    /// its clones.
    pub async fn server_version(&self) -> Result<ServerVersion> {
        let v = self
            .version
            .get_or_try_init(|| async {
                let text = self
                    .query_tsv_with_context("SELECT version()", || {
                        format!("reading the server version from {}", self.cfg.url)
                    })
                    .await?;
                ServerVersion::parse(&text)
            })
            .await?;
        Ok(*v)
    }

    /// Whether the server knows the `insert_deduplication_token` setting
    /// (added in ClickHouse 22.2; absent on 18.16). Asked once from
    /// `system.settings` and cached. [`ClickHouse::insert_native`] leaves the
    /// token out when this is `false`, so a caller that relies on
    /// deduplication must check it.
    pub async fn supports_dedup_token(&self) -> Result<bool> {
        let v = self
            .dedup_token
            .get_or_try_init(|| async {
                let text = self
                    .query_tsv_with_context(
                        "SELECT count() FROM system.settings \
                         WHERE name = 'insert_deduplication_token'",
                        || "checking for the insert_deduplication_token setting".to_string(),
                    )
                    .await?;
                Ok::<bool, Error>(text.trim() != "0")
            })
            .await?;
        Ok(*v)
    }

    /// `database = <literal>` for `system.*` filters; the current database
    /// when the table is not qualified.
    fn database_filter(t: &TableRef) -> String {
        match &t.database {
            Some(db) => format!("database = {}", ddl::quote_string(db)),
            None => "database = currentDatabase()".to_string(),
        }
    }

    /// Whether database `name` exists.
    pub async fn database_exists(&self, name: &str) -> Result<bool> {
        let sql = format!(
            "SELECT count() FROM system.databases WHERE name = {}",
            ddl::quote_string(name)
        );
        let text = self
            .query_tsv_with_context(&sql, || {
                format!("checking whether database {name:?} exists")
            })
            .await?;
        Ok(text.trim() != "0")
    }

    /// Whether table `t` exists.
    pub async fn table_exists(&self, t: &TableRef) -> Result<bool> {
        let sql = format!(
            "SELECT count() FROM system.tables WHERE {} AND name = {}",
            Self::database_filter(t),
            ddl::quote_string(&t.table)
        );
        let text = self
            .query_tsv_with_context(&sql, || format!("checking whether table {t} exists"))
            .await?;
        Ok(text.trim() != "0")
    }

    /// The columns of `t` in table order, from `system.columns`, with their
    /// parsed types; `None` when the table does not exist. Names come back
    /// exactly as stored, whatever characters they contain.
    pub async fn table_columns(&self, t: &TableRef) -> Result<Option<Vec<(String, ChType)>>> {
        let sql = format!(
            "SELECT name, type FROM system.columns WHERE {} AND table = {}",
            Self::database_filter(t),
            ddl::quote_string(&t.table)
        );
        let context = || format!("reading the columns of table {t}");
        let text = self.query_tsv_with_context(&sql, context).await?;
        let rows = tsv::parse_rows(&text);
        if rows.is_empty() {
            return Ok(None);
        }
        let mut columns = Vec::with_capacity(rows.len());
        for row in rows {
            let [name, ty]: [String; 2] =
                row.try_into()
                    .map_err(|row: Vec<String>| Error::ClickHouse {
                        context: context(),
                        message: format!("expected 2 fields per row, got {}", row.len()),
                        code: None,
                        transient: false,
                    })?;
            let parsed = ChType::parse(&ty).map_err(|e| Error::ClickHouse {
                context: context(),
                message: format!("column {name:?}: {e}"),
                code: None,
                transient: false,
            })?;
            columns.push((name, parsed));
        }
        Ok(Some(columns))
    }

    /// The engine of `t` (`MergeTree`, `ReplicatedMergeTree`, `Distributed`,
    /// ...); `None` when the table does not exist.
    pub async fn table_engine(&self, t: &TableRef) -> Result<Option<String>> {
        let sql = format!(
            "SELECT engine FROM system.tables WHERE {} AND name = {}",
            Self::database_filter(t),
            ddl::quote_string(&t.table)
        );
        let text = self
            .query_tsv_with_context(&sql, || format!("reading the engine of table {t}"))
            .await?;
        Ok(tsv::parse_rows(&text)
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next()))
    }

    /// `SELECT count() FROM t`.
    pub async fn count_rows(&self, t: &TableRef) -> Result<u64> {
        let sql = format!("SELECT count() FROM {}", t.sql()?);
        self.query_u64(&sql, || format!("counting the rows of table {t}"))
            .await
    }

    /// Rows in the active parts of `t`, from `system.parts`: no column is
    /// read, so it costs the server nothing however large the table is (on
    /// ClickHouse before 20.x, `SELECT count()` decompresses a whole column).
    /// A row of a part being merged is counted once; a part still being
    /// written is not counted yet.
    pub async fn active_rows(&self, t: &TableRef) -> Result<u64> {
        let sql = format!(
            "SELECT sum(rows) FROM system.parts WHERE active AND {} AND table = {}",
            Self::database_filter(t),
            ddl::quote_string(&t.table)
        );
        self.query_u64(&sql, || {
            format!("summing the rows of the active parts of table {t}")
        })
        .await
    }

    /// The one number `sql` answers; an error naming `context` and the
    /// answer otherwise.
    async fn query_u64(&self, sql: &str, context: impl Fn() -> String) -> Result<u64> {
        let text = self.query_tsv_with_context(sql, &context).await?;
        text.trim().parse().map_err(|e| Error::ClickHouse {
            context: context(),
            message: format!("{} returned {:?}: {e}", abbreviate(sql), text.trim()),
            code: None,
            transient: false,
        })
    }

    /// Sends `body` (one or more Native blocks, see
    /// `velostream_codecs::native::NativeEncoder`) as
    /// `INSERT INTO t [(cols)] FORMAT Native`, compressed per the config in
    /// blocks of [`COMPRESS_BLOCK_BYTES`]. Succeeds only when the server has
    /// stored the data.
    pub async fn insert_native(
        &self,
        t: &TableRef,
        body: Bytes,
        opts: &InsertOptions,
    ) -> Result<()> {
        self.insert_formatted(t, "Native", body, opts).await
    }

    /// Like [`ClickHouse::insert_native`] for any input format the server
    /// knows (`JSONEachRow`, `RowBinary`, `TSV`, ...). `format` must be a bare
    /// format name (letters, digits, `_`).
    pub async fn insert_formatted(
        &self,
        t: &TableRef,
        format: &str,
        body: Bytes,
        opts: &InsertOptions,
    ) -> Result<()> {
        if format.is_empty()
            || !format
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(Error::Config(format!(
                "invalid ClickHouse input format name {format:?}"
            )));
        }
        let mut sql = format!("INSERT INTO {}", t.sql()?);
        if let Some(columns) = &opts.columns {
            let quoted = columns
                .iter()
                .map(|c| ddl::quote_ident(c))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            sql.push_str(&format!(" ({})", quoted.join(", ")));
        }
        sql.push_str(&format!(" FORMAT {format}"));

        let token = match &opts.dedup_token {
            Some(token) if self.supports_dedup_token().await? => Some(token.clone()),
            _ => None,
        };
        let compression = self.cfg.compression;
        let len = body.len();
        let context =
            || format!("inserting {len} bytes of {format} data ({compression}) into table {t}");

        let chunks: Vec<Chunk> = match compression {
            InsertCompression::None => vec![Chunk::Plain(body)],
            InsertCompression::Lz4 => {
                let compressed = tokio::task::spawn_blocking(move || {
                    body.chunks(COMPRESS_BLOCK_BYTES)
                        .map(|c| CompressedData::new(c, Compression::Lz4).map(Chunk::Lz4))
                        .collect::<clickhouse::error::Result<Vec<_>>>()
                })
                .await
                .map_err(|e| Error::ClickHouse {
                    context: context(),
                    message: format!("LZ4 compression task failed: {e}"),
                    code: None,
                    transient: false,
                })?;
                compressed.map_err(|e| classify(context(), &e, &[]))?
            }
        };

        let mut insert = self
            .insert_client
            .insert_formatted_with(sql)
            .with_timeouts(Some(self.cfg.timeout), Some(self.cfg.timeout));
        if let Some(token) = token {
            insert = insert.with_setting("insert_deduplication_token", token);
        }
        if let Some(id) = &opts.query_id {
            insert = insert.with_setting("query_id", id.clone());
        }
        for (k, v) in &opts.settings {
            insert = insert.with_setting(k.clone(), v.clone());
        }
        self.bounded(context, async move {
            for chunk in chunks {
                match chunk {
                    Chunk::Plain(b) => insert.send(b).await?,
                    Chunk::Lz4(c) => insert.send_compressed(c).await?,
                }
            }
            insert.end().await
        })
        .await
    }
}

/// One piece of an INSERT body.
enum Chunk {
    Plain(Bytes),
    Lz4(CompressedData),
}

/// The first line of `sql`, at most 120 characters, for error contexts.
fn abbreviate(sql: &str) -> String {
    let line = sql.trim().lines().next().unwrap_or("");
    let mut out: String = line.chars().take(120).collect();
    if out.len() < sql.trim().len() {
        out.push_str(" ...");
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_split_a_bundle() {
        let pem = b"junk\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n\
            -----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n\
            -----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        let blocks = pem_blocks(pem);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[0].ends_with(b"-----END CERTIFICATE-----"));
        assert!(String::from_utf8_lossy(blocks[1]).contains("BBB"));
        assert!(pem_blocks(b"no pem here").is_empty());
    }

    #[test]
    fn ca_file_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ClickHouseConfig::new("https://127.0.0.1:1");
        cfg.ca_cert = Some(dir.path().join("missing.pem"));
        let err = ClickHouse::new(cfg.clone()).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        cfg.ca_cert = Some(empty);
        let err = ClickHouse::new(cfg).unwrap_err().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
    }

    #[test]
    fn tls_failures_are_recognised() {
        assert!(is_tls_failure(
            "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed"
        ));
        assert!(!is_tls_failure("Connection refused (os error 111)"));
    }

    #[test]
    fn abbreviates_long_sql() {
        assert_eq!(abbreviate("SELECT 1"), "\"SELECT 1\"");
        let long = format!("SELECT {}", "x, ".repeat(100));
        let a = abbreviate(&long);
        assert!(a.len() < 140 && a.ends_with(" ...\""), "{a}");
        assert_eq!(abbreviate("SELECT 1\nFROM t"), "\"SELECT 1 ...\"");
    }

    #[test]
    fn new_rejects_bad_config_and_debug_hides_password() {
        assert!(ClickHouse::new(ClickHouseConfig::new("http://u:p@127.0.0.1:1")).is_err());
        let mut cfg = ClickHouseConfig::new("http://127.0.0.1:1");
        cfg.password = Some("planted-pw-77".into());
        let ch = ClickHouse::new(cfg).unwrap();
        let dbg = format!("{ch:?}");
        assert!(!dbg.contains("planted-pw-77"), "{dbg}");
    }

    #[test]
    fn clickhouse_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<ClickHouse>();
    }
}
