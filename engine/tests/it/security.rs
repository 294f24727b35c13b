//! Security settings against real services: Kafka over TLS (tansu behind
//! the harness's TLS front), ClickHouse over HTTPS with a custom CA and a
//! password-protected user, the `--config` file, and planted secrets that
//! must never show up in any output (stdout, stderr, report JSON, metrics).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use velostream::clickhouse::{ClickHouse, ClickHouseConfig, Secret};
use velostream::gen::{generate, GenConfig};
use velostream::progress::Progress;

use crate::harness::{self, ch_query, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_velostream");

/// Planted secrets: none of them may appear in anything the binary writes.
const SASL_SECRET: &str = "vs-planted-SASL-5c1d9e02";
const KEY_SECRET: &str = "vs-planted-KEYPW-a83f71b6";
const FILE_CH_SECRET: &str = "vs-planted-FILECH-0e6b2c4d";

/// What one run of the binary left behind.
#[derive(Debug)]
struct Run {
    name: String,
    status: ExitStatus,
    /// stdout and stderr, interleaved.
    output: String,
    elapsed: Duration,
    /// The last `/metrics` page scraped while it ran (when asked for).
    metrics: String,
}

/// Runs the binary with `args` and extra environment, killing it after
/// `timeout`. With `metrics_port`, `/metrics` on that port is scraped every
/// 100 ms while the process runs.
fn run(
    name: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    dir: &Path,
    timeout: Duration,
    metrics_port: Option<u16>,
) -> Run {
    let log = dir.join(format!("{name}.log"));
    let out = File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("VELOSTREAM_QUIET", "1")
        .env_remove("VELOSTREAM_CONFIG")
        .env_remove("VELOSTREAM_BROKERS")
        .env_remove("VELOSTREAM_CLICKHOUSE_URL")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {BIN}: {e}"));
    let mut metrics = String::new();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if let Some(port) = metrics_port {
            if let Some(body) = harness::prometheus::metrics_page(&format!("127.0.0.1:{port}")) {
                metrics = body;
            }
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name}: {BIN} did not finish within {timeout:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Run {
        name: name.to_string(),
        status,
        output: std::fs::read_to_string(&log).expect("log"),
        elapsed: t0.elapsed(),
        metrics,
    }
}

/// Fails with the run's output unless it succeeded.
fn assert_ok(r: &Run) {
    assert!(
        r.status.success(),
        "{}: exit {} after {:?}:\n{}",
        r.name,
        r.status,
        r.elapsed,
        r.output
    );
}

/// One Parquet file of `rows` generated taxi rows.
fn taxi_file(dir: &Path, rows: u64) -> PathBuf {
    let cfg = GenConfig {
        rows,
        out: dir.join("data"),
        files: 1,
        row_group_rows: 2_500,
        seed: 11,
    };
    let summary = generate(&cfg, &Progress::hidden()).expect("generating taxi data");
    assert_eq!(summary.rows, rows);
    summary.files[0].clone()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn count(url: &str, table: &str) -> u64 {
    ch_query(url, &format!("SELECT count() FROM {table}"))
        .trim()
        .parse()
        .expect("count")
}

// ------------------------------------------------------------------ 1 + 2: TLS round trip

#[test]
fn produce_and_consume_over_kafka_tls_into_clickhouse_https() {
    let tls = harness::tls_services();
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = 6_000;
    let file = taxi_file(dir.path(), rows);
    let topic = harness::unique_name("sec_tls");
    let ca = path(&tls.ca);
    let produce = run(
        "produce-tls",
        &[
            "produce",
            "--brokers",
            &tls.brokers,
            "--security-protocol",
            "ssl",
            "--ssl-ca-location",
            ca,
            "--topic",
            &topic,
            "--partitions",
            "2",
            "--max-rows-per-message",
            "1000",
            path(&file),
        ],
        &[],
        dir.path(),
        Duration::from_secs(120),
        None,
    );
    assert_ok(&produce);

    let db = TestDb::on(&tls.clickhouse_url);
    let table = db.table("trips");
    // The consumer takes the --kafka- aliases and the environment for TLS,
    // and a password-protected user over HTTPS with the test CA.
    let consume = run(
        "consume-tls",
        &[
            "consume",
            "--brokers",
            &tls.brokers,
            "--kafka-security-protocol",
            "SSL",
            "--kafka-ssl-ca-location",
            ca,
            "--topic",
            &topic,
            "--group",
            &harness::unique_name("g"),
            "--clickhouse-url",
            &tls.clickhouse_https_url,
            "--clickhouse-user",
            &tls.clickhouse_user,
            "--table",
            &table,
            "--create-table",
            "--exit-when-idle",
            "3",
        ],
        &[
            ("VELOSTREAM_CLICKHOUSE_CA_CERT", ca),
            ("VELOSTREAM_CLICKHOUSE_PASSWORD", &tls.clickhouse_password),
        ],
        dir.path(),
        Duration::from_secs(180),
        None,
    );
    assert_ok(&consume);
    assert_eq!(
        count(&tls.clickhouse_url, &table),
        rows,
        "{}",
        consume.output
    );
    for r in [&produce, &consume] {
        assert!(
            !r.output.contains(&tls.clickhouse_password),
            "{}: printed the ClickHouse password:\n{}",
            r.name,
            r.output
        );
    }
    eprintln!(
        "security: TLS round trip of {rows} rows: produce {:?}, consume {:?}",
        produce.elapsed, consume.elapsed
    );
}

/// `bench` takes the same security flags and environment variables as
/// produce and consume: a run over Kafka mutual TLS (client certificate
/// with an encrypted key) and ClickHouse HTTPS with a password-protected
/// user validates.
#[test]
fn bench_over_kafka_tls_and_clickhouse_https_with_a_password_validates() {
    let tls = harness::tls_services();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = path(&tls.ca);
    let rows = 20_000u64;
    let report = dir.path().join("report.json");
    let bench = run(
        "bench-tls-https",
        &[
            "bench",
            "--rows",
            &rows.to_string(),
            "--partitions",
            "2",
            "--brokers",
            &tls.brokers,
            "--security-protocol",
            "ssl",
            "--ssl-ca-location",
            ca,
            "--kafka-ssl-certificate-location",
            path(&tls.client_cert),
            "--ssl-key-location",
            path(&tls.client_key),
            "--clickhouse-url",
            &tls.clickhouse_https_url,
            "--clickhouse-user",
            &tls.clickhouse_user,
            "--clickhouse-ca-cert",
            ca,
            "--data-dir",
            path(&dir.path().join("bench-data")),
            "--report-json",
            path(&report),
        ],
        &[
            (
                "VELOSTREAM_KAFKA_SSL_KEY_PASSWORD",
                &tls.client_key_password,
            ),
            ("VELOSTREAM_CLICKHOUSE_PASSWORD", &tls.clickhouse_password),
        ],
        dir.path(),
        Duration::from_secs(300),
        None,
    );
    assert_ok(&bench);
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", report.display(), bench.output));
    let doc: serde_json::Value = serde_json::from_str(&text).expect("report JSON");
    assert_eq!(doc["validated"], true, "{text}");
    assert_eq!(doc["rows_source"], rows, "{text}");
    assert_eq!(doc["rows_clickhouse"], rows, "{text}");
    for secret in [&tls.clickhouse_password, &tls.client_key_password] {
        assert!(
            !bench.output.contains(secret.as_str()) && !text.contains(secret.as_str()),
            "a secret was printed:\n{}",
            bench.output
        );
    }
    eprintln!(
        "security: bench of {rows} rows over Kafka TLS and ClickHouse HTTPS in {:?}",
        bench.elapsed
    );
}

#[test]
fn kafka_tls_refuses_an_unknown_ca_and_plaintext_clients_quickly() {
    let tls = harness::tls_services();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = taxi_file(dir.path(), 1_000);
    let topic = harness::unique_name("sec_refused");
    let limit = Duration::from_secs(60);
    let wrong_ca = run(
        "produce-wrong-ca",
        &[
            "produce",
            "--brokers",
            &tls.brokers,
            "--security-protocol",
            "ssl",
            "--ssl-ca-location",
            path(&tls.other_ca),
            "--topic",
            &topic,
            "--partitions",
            "1",
            path(&file),
        ],
        &[],
        dir.path(),
        limit,
        None,
    );
    let plaintext = run(
        "produce-plaintext",
        &[
            "produce",
            "--brokers",
            &tls.brokers,
            "--topic",
            &topic,
            "--partitions",
            "1",
            path(&file),
        ],
        &[],
        dir.path(),
        limit,
        None,
    );
    for r in [&wrong_ca, &plaintext] {
        eprintln!("security: {} failed after {:?}", r.name, r.elapsed);
        assert!(!r.status.success(), "{} should fail:\n{}", r.name, r.output);
        let last = r
            .output
            .lines()
            .rfind(|l| l.starts_with("error:"))
            .unwrap_or("");
        assert!(
            last.contains(&tls.brokers),
            "{}: the final error names the broker {}:\n{}",
            r.name,
            tls.brokers,
            r.output
        );
        assert!(
            r.elapsed < Duration::from_secs(45),
            "{}: took {:?}",
            r.name,
            r.elapsed
        );
    }
    let lower = wrong_ca.output.to_lowercase();
    assert!(
        lower.contains("certificate verify failed") || lower.contains("ssl handshake failed"),
        "the wrong CA is reported as a certificate problem:\n{}",
        wrong_ca.output
    );
    let lower = plaintext.output.to_lowercase();
    assert!(
        lower.contains("security.protocol") || lower.contains("ssl"),
        "a plaintext client against TLS hints at security.protocol:\n{}",
        plaintext.output
    );
}

#[test]
fn kafka_mutual_tls_sends_the_client_certificate_with_its_key_password() {
    let tls = harness::tls_services();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = taxi_file(dir.path(), 1_000);
    let topic = harness::unique_name("sec_mtls");
    let t = Duration::from_secs(90);
    let base = |cert: &Path, key: &Path| {
        vec![
            "produce".to_string(),
            "--brokers".into(),
            tls.brokers.clone(),
            "--security-protocol".into(),
            "ssl".into(),
            "--ssl-ca-location".into(),
            path(&tls.ca).into(),
            "--ssl-certificate-location".into(),
            path(cert).into(),
            "--ssl-key-location".into(),
            path(key).into(),
            "--topic".into(),
            topic.clone(),
            "--partitions".into(),
            "1".into(),
            path(&file).into(),
        ]
    };
    let ok_args = base(&tls.client_cert, &tls.client_key);
    let ok_args: Vec<&str> = ok_args.iter().map(String::as_str).collect();
    let ok = run(
        "produce-mtls-ok",
        &ok_args,
        &[(
            "VELOSTREAM_KAFKA_SSL_KEY_PASSWORD",
            &tls.client_key_password,
        )],
        dir.path(),
        t,
        None,
    );
    assert_ok(&ok);
    // A certificate from another CA is refused by the broker's TLS front,
    // which proves the client presents the configured certificate.
    let other_args = base(&tls.other_client_cert, &tls.other_client_key);
    let other_args: Vec<&str> = other_args.iter().map(String::as_str).collect();
    let other = run(
        "produce-mtls-other-ca",
        &other_args,
        &[],
        dir.path(),
        t,
        None,
    );
    // A wrong key password: the key cannot be loaded.
    let wrong_pw = run(
        "produce-mtls-wrong-key-password",
        &ok_args,
        &[("VELOSTREAM_KAFKA_SSL_KEY_PASSWORD", KEY_SECRET)],
        dir.path(),
        t,
        None,
    );
    for r in [&other, &wrong_pw] {
        eprintln!("security: {} failed after {:?}", r.name, r.elapsed);
        assert!(!r.status.success(), "{} should fail:\n{}", r.name, r.output);
        let last = r
            .output
            .lines()
            .rfind(|l| l.starts_with("error:"))
            .unwrap_or("");
        assert!(
            last.contains(&tls.brokers),
            "{}: names the broker:\n{}",
            r.name,
            r.output
        );
        assert!(
            r.elapsed < Duration::from_secs(45),
            "{}: took {:?}",
            r.name,
            r.elapsed
        );
    }
    assert!(
        wrong_pw.output.to_lowercase().contains("ssl.key.location")
            || wrong_pw.output.to_lowercase().contains("decrypt"),
        "a wrong key password is reported as a key problem:\n{}",
        wrong_pw.output
    );
    for r in [&ok, &other, &wrong_pw] {
        for s in [tls.client_key_password.as_str(), KEY_SECRET] {
            assert!(
                !r.output.contains(s),
                "{}: printed a key password:\n{}",
                r.name,
                r.output
            );
        }
    }
}

#[test]
fn clickhouse_https_checks_the_certificate() {
    let tls = harness::tls_services();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let connect = |ca: Option<&Path>| {
        let mut cfg = ClickHouseConfig::new(tls.clickhouse_https_url.clone());
        cfg.user = Some(tls.clickhouse_user.clone());
        cfg.password = Some(Secret::new(tls.clickhouse_password.clone()));
        cfg.ca_cert = ca.map(Path::to_path_buf);
        cfg.timeout = Duration::from_secs(20);
        let ch = ClickHouse::new(cfg).expect("client");
        rt.block_on(async { ch.query_tsv("SELECT 40 + 2").await })
    };
    assert_eq!(connect(Some(&tls.ca)).expect("trusted CA").trim(), "42");
    for (what, ca) in [
        ("system roots", None),
        ("another CA", Some(tls.other_ca.as_path())),
    ] {
        let t0 = Instant::now();
        let err = connect(ca).expect_err("an untrusted certificate must fail");
        let text = format!("{err} {err:?}");
        eprintln!("security: https with {what}: {err} ({:?})", t0.elapsed());
        assert!(
            text.contains(&tls.clickhouse_https_url),
            "{what}: names the URL: {text}"
        );
        assert!(
            text.to_lowercase().contains("certificate"),
            "{what}: {text}"
        );
        assert!(
            !text.contains(&tls.clickhouse_password),
            "{what}: leaks the password: {text}"
        );
        assert!(
            matches!(
                err,
                velostream::Error::ClickHouse {
                    transient: false,
                    ..
                }
            ),
            "{what}: a certificate failure is not retried: {err:?}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{what}: {:?}",
            t0.elapsed()
        );
    }
}

// ------------------------------------------------------------------ 3: config file

#[test]
fn consume_configured_by_a_config_file_and_flags_override_it() {
    let tls = harness::tls_services();
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = 3_000;
    let file = taxi_file(dir.path(), rows);
    let topic = harness::unique_name("sec_cfg");
    let db = TestDb::on(&tls.clickhouse_url);
    let table = db.table("trips");
    let config = dir.path().join("velostream.toml");
    let ca = path(&tls.ca);
    std::fs::write(
        &config,
        format!(
            "# Everything a consumer needs.\n\
             brokers = \"{brokers}\"\n\
             security-protocol = \"ssl\"\n\
             ssl-ca-location = \"{ca}\"\n\
             topic = \"{topic}\"\n\
             clickhouse-url = \"{url}\"\n\
             clickhouse-ca-cert = \"{ca}\"\n\
             clickhouse-user = \"{user}\"\n\
             clickhouse-password = \"{password}\"\n\
             [produce]\n\
             partitions = 2\n\
             [consume]\n\
             table = \"{table}\"\n\
             create-table = true\n\
             exit-when-idle = 3\n\
             group = \"{group}\"\n",
            brokers = tls.brokers,
            url = tls.clickhouse_https_url,
            user = tls.clickhouse_user,
            password = tls.clickhouse_password,
            group = harness::unique_name("g"),
        ),
    )
    .expect("config file");
    let cfg = path(&config);
    assert_ok(&run(
        "produce-config",
        &["--config", cfg, "produce", path(&file)],
        &[],
        dir.path(),
        Duration::from_secs(120),
        None,
    ));
    let consume = run(
        "consume-config",
        &["consume", "--config", cfg],
        &[],
        dir.path(),
        Duration::from_secs(180),
        None,
    );
    assert_ok(&consume);
    assert_eq!(
        count(&tls.clickhouse_url, &table),
        rows,
        "{}",
        consume.output
    );

    // A flag beats the file: the table named on the command line is used.
    let other = db.table("by_flag");
    let by_flag = run(
        "consume-config-flag",
        &[
            "consume",
            "--table",
            &other,
            "--group",
            &harness::unique_name("g"),
        ],
        &[("VELOSTREAM_CONFIG", cfg)],
        dir.path(),
        Duration::from_secs(180),
        None,
    );
    assert_ok(&by_flag);
    assert_eq!(
        count(&tls.clickhouse_url, &other),
        rows,
        "{}",
        by_flag.output
    );
    // The environment beats the file too: a wrong password from the
    // environment makes the run fail although the file's is right.
    let by_env = run(
        "consume-config-env",
        &["--config", cfg, "consume", "--exit-when-idle", "1"],
        &[("VELOSTREAM_CLICKHOUSE_PASSWORD", FILE_CH_SECRET)],
        dir.path(),
        Duration::from_secs(120),
        None,
    );
    assert!(!by_env.status.success(), "{}", by_env.output);
    assert!(
        by_env.output.contains("193") || by_env.output.contains("password"),
        "{}",
        by_env.output
    );
    for r in [&consume, &by_flag, &by_env] {
        assert!(
            !r.output.contains(&tls.clickhouse_password),
            "{}:\n{}",
            r.name,
            r.output
        );
        assert!(
            !r.output.contains(FILE_CH_SECRET),
            "{}:\n{}",
            r.name,
            r.output
        );
    }
    // A misspelt key is refused before anything runs, naming file and key.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "brokers = \"x:1\"\nclickhouse-pasword = \"p\"\n").expect("bad config");
    let typo = run(
        "consume-config-typo",
        &["consume", "--config", path(&bad)],
        &[],
        dir.path(),
        Duration::from_secs(30),
        None,
    );
    assert_eq!(typo.status.code(), Some(2), "{}", typo.output);
    assert!(
        typo.output.contains(path(&bad))
            && typo.output.contains("clickhouse-pasword")
            && typo.output.contains("did you mean `clickhouse-password`"),
        "{}",
        typo.output
    );
}

// ------------------------------------------------------------------ 4: planted secrets

#[test]
fn planted_secrets_in_flags_environment_and_config_file_are_never_printed() {
    let tls = harness::tls_services();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = taxi_file(dir.path(), 2_000);
    let f = path(&file);
    let topic = harness::unique_name("sec_planted");
    let ca = path(&tls.ca);
    let other_ca = path(&tls.other_ca);
    let ch_secret = tls.clickhouse_password.as_str();
    let secrets = [SASL_SECRET, KEY_SECRET, FILE_CH_SECRET, ch_secret];
    // A file carrying every secret (used by several runs).
    let config = dir.path().join("secrets.toml");
    std::fs::write(
        &config,
        format!(
            "ssl-key-password = \"{KEY_SECRET}\"\n\
             sasl-password = \"{SASL_SECRET}\"\n\
             clickhouse-password = \"{FILE_CH_SECRET}\"\n"
        ),
    )
    .expect("config");
    let cfg = path(&config);
    // bench takes the same flags as produce/consume: TLS settings, the key
    // and ClickHouse passwords from a [bench] section, one secret -X
    // property, and the ClickHouse user over HTTPS.
    let bench_config = |name: &str, kafka_ca: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "[bench]\nsecurity-protocol = \"ssl\"\nssl-ca-location = \"{kafka_ca}\"\n\
                 ssl-key-password = \"{KEY_SECRET}\"\n\
                 kafka-option = [\"sasl.password={SASL_SECRET}\"]\n\
                 clickhouse-user = \"{}\"\nclickhouse-password = \"{ch_secret}\"\n\
                 clickhouse-ca-cert = \"{ca}\"\n",
                tls.clickhouse_user
            ),
        )
        .expect("bench config");
        p
    };
    let bench_bad = bench_config("bench-bad.toml", other_ca);
    let bench_good = bench_config("bench-good.toml", ca);
    let t = Duration::from_secs(150);
    let d = dir.path();
    let mut runs = Vec::new();
    // Success paths: TLS produce with a key password from the environment,
    // consume with the ClickHouse password from the environment, metrics on.
    runs.push(run(
        "produce-tls-ok",
        &[
            "--log",
            "debug",
            "produce",
            "--brokers",
            &tls.brokers,
            "--security-protocol",
            "ssl",
            "--ssl-ca-location",
            ca,
            "--topic",
            &topic,
            "--partitions",
            "1",
            f,
        ],
        &[("VELOSTREAM_KAFKA_SSL_KEY_PASSWORD", KEY_SECRET)],
        d,
        t,
        None,
    ));
    let db = TestDb::on(&tls.clickhouse_url);
    let metrics_port = harness::free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    runs.push(run(
        "consume-tls-ok",
        &[
            "--log",
            "debug",
            "consume",
            "--brokers",
            &tls.brokers,
            "--security-protocol",
            "ssl",
            "--ssl-ca-location",
            ca,
            "--ssl-key-password",
            KEY_SECRET,
            "--topic",
            &topic,
            "--group",
            &harness::unique_name("g"),
            "--clickhouse-url",
            &tls.clickhouse_https_url,
            "--clickhouse-ca-cert",
            ca,
            "--clickhouse-user",
            &tls.clickhouse_user,
            "--table",
            &db.table("t"),
            "--create-table",
            "--exit-when-idle",
            "2",
            "--metrics-addr",
            &metrics_addr,
        ],
        &[("VELOSTREAM_CLICKHOUSE_PASSWORD", ch_secret)],
        d,
        t,
        Some(metrics_port),
    ));
    // Failures: wrong CA with secrets from the config file.
    runs.push(run(
        "produce-wrong-ca-file",
        &[
            "--log",
            "trace",
            "--config",
            cfg,
            "produce",
            "--brokers",
            &tls.brokers,
            "--security-protocol",
            "ssl",
            "--ssl-ca-location",
            other_ca,
            "--topic",
            &topic,
            f,
        ],
        &[],
        d,
        t,
        None,
    ));
    // SASL over TLS against a broker without SASL, password on the command line.
    runs.push(run(
        "produce-sasl-ssl-flags",
        &[
            "--log",
            "debug",
            "produce",
            "--brokers",
            &tls.brokers,
            "--security-protocol",
            "sasl_ssl",
            "--ssl-ca-location",
            ca,
            "--sasl-mechanism",
            "PLAIN",
            "--sasl-username",
            "vs",
            "--sasl-password",
            SASL_SECRET,
            "--ssl-key-password",
            KEY_SECRET,
            "--topic",
            &topic,
            f,
        ],
        &[],
        d,
        t,
        None,
    ));
    // Wrong ClickHouse password from the file over HTTPS (the user exists).
    runs.push(run(
        "consume-wrong-ch-password-file",
        &[
            "--log",
            "debug",
            "consume",
            "--config",
            cfg,
            "--brokers",
            &tls.brokers,
            "--security-protocol",
            "ssl",
            "--ssl-ca-location",
            ca,
            "--topic",
            &topic,
            "--clickhouse-url",
            &tls.clickhouse_https_url,
            "--clickhouse-ca-cert",
            ca,
            "--clickhouse-user",
            &tls.clickhouse_user,
            "--table",
            &db.table("never"),
            "--create-table",
            "--exit-when-idle",
            "2",
        ],
        &[],
        d,
        t,
        None,
    ));
    // An untrusted HTTPS endpoint, the right password from the environment.
    runs.push(run(
        "consume-untrusted-https-env",
        &[
            "--log",
            "debug",
            "consume",
            "--brokers",
            &tls.brokers,
            "--security-protocol",
            "ssl",
            "--ssl-ca-location",
            ca,
            "--topic",
            &topic,
            "--clickhouse-url",
            &tls.clickhouse_https_url,
            "--clickhouse-ca-cert",
            other_ca,
            "--clickhouse-user",
            &tls.clickhouse_user,
            "--table",
            &db.table("never"),
            "--exit-when-idle",
            "2",
        ],
        &[
            ("VELOSTREAM_CLICKHOUSE_PASSWORD", ch_secret),
            ("VELOSTREAM_KAFKA_SASL_PASSWORD", SASL_SECRET),
        ],
        d,
        t,
        None,
    ));
    // An unreachable TLS endpoint (nothing listens there).
    let dead = format!("127.0.0.1:{}", harness::free_port());
    runs.push(run(
        "produce-unreachable-tls-env",
        &[
            "--log",
            "debug",
            "produce",
            "--brokers",
            &dead,
            "--security-protocol",
            "ssl",
            "--ssl-ca-location",
            ca,
            "--topic",
            &topic,
            f,
        ],
        &[
            ("VELOSTREAM_KAFKA_SSL_KEY_PASSWORD", KEY_SECRET),
            ("VELOSTREAM_KAFKA_SASL_PASSWORD", SASL_SECRET),
        ],
        d,
        t,
        None,
    ));
    // bench: secrets as -X options from the config file; the broker refuses
    // the unknown CA, and the report (if any) and metrics are checked too.
    let report = dir.path().join("report.json");
    let bench_metrics = harness::free_port();
    runs.push(run(
        "bench-wrong-ca-file",
        &[
            "--log",
            "debug",
            "--config",
            path(&bench_bad),
            "bench",
            "--rows",
            "2000",
            "--brokers",
            &tls.brokers,
            "--clickhouse-url",
            &tls.clickhouse_https_url,
            "--data-dir",
            path(&dir.path().join("bench-data")),
            "--report-json",
            path(&report),
            "--metrics-addr",
            &format!("127.0.0.1:{bench_metrics}"),
        ],
        &[],
        d,
        t,
        Some(bench_metrics),
    ));
    // bench with a wrong ClickHouse password from the top-level keys of
    // the shared config file (the user exists), TLS flags on the command line.
    runs.push(run(
        "bench-wrong-ch-password-file",
        &[
            "--log",
            "debug",
            "--config",
            cfg,
            "bench",
            "--rows",
            "2000",
            "--brokers",
            &tls.brokers,
            "--security-protocol",
            "ssl",
            "--ssl-ca-location",
            ca,
            "--clickhouse-url",
            &tls.clickhouse_https_url,
            "--clickhouse-ca-cert",
            ca,
            "--clickhouse-user",
            &tls.clickhouse_user,
            "--data-dir",
            path(&dir.path().join("bench-data")),
        ],
        &[],
        d,
        t,
        None,
    ));
    // bench that succeeds over Kafka TLS and ClickHouse HTTPS with secrets
    // from the file and the environment.
    let report_ok = dir.path().join("report-ok.json");
    let bench_ok_metrics = harness::free_port();
    runs.push(run(
        "bench-tls-ok",
        &[
            "--log",
            "debug",
            "--config",
            path(&bench_good),
            "bench",
            "--rows",
            "5000",
            "--partitions",
            "1",
            "--brokers",
            &tls.brokers,
            "--clickhouse-url",
            &tls.clickhouse_https_url,
            "--data-dir",
            path(&dir.path().join("bench-data")),
            "--report-json",
            path(&report_ok),
            "--metrics-addr",
            &format!("127.0.0.1:{bench_ok_metrics}"),
        ],
        &[("VELOSTREAM_KAFKA_SASL_PASSWORD", SASL_SECRET)],
        d,
        t,
        Some(bench_ok_metrics),
    ));
    runs.push(run(
        "produce-help",
        &["produce", "--help"],
        &[("VELOSTREAM_KAFKA_SSL_KEY_PASSWORD", KEY_SECRET)],
        d,
        t,
        None,
    ));
    runs.push(run(
        "bench-help",
        &["bench", "--help"],
        &[
            ("VELOSTREAM_KAFKA_SASL_PASSWORD", SASL_SECRET),
            ("VELOSTREAM_CLICKHOUSE_PASSWORD", FILE_CH_SECRET),
        ],
        d,
        t,
        None,
    ));

    let mut failures = Vec::new();
    for r in &runs {
        eprintln!(
            "security: {}: {} in {:?}; last line: {}",
            r.name,
            r.status,
            r.elapsed,
            r.output.lines().last().unwrap_or("")
        );
        let expect_ok = r.name.ends_with("-ok") || r.name.ends_with("help");
        if expect_ok != r.status.success() {
            failures.push(format!(
                "{}: unexpected exit status {}:\n{}",
                r.name, r.status, r.output
            ));
        }
        for s in secrets {
            if r.output.contains(s) {
                failures.push(format!(
                    "{}: output holds a planted secret:\n{}",
                    r.name, r.output
                ));
            }
            if r.metrics.contains(s) {
                failures.push(format!("{}: metrics hold a planted secret", r.name));
            }
        }
    }
    // The bench failures are the ones planted, and bench lists the flags.
    let output = |n: &str| {
        runs.iter()
            .find(|r| r.name == n)
            .map_or(String::new(), |r| r.output.clone())
    };
    for (name, expected) in [
        ("bench-wrong-ca-file", "certificate verify failed"),
        ("bench-wrong-ch-password-file", "WRONG_PASSWORD"),
        ("bench-help", "--ssl-key-password"),
        ("bench-help", "--clickhouse-password"),
    ] {
        if !output(name).contains(expected) {
            failures.push(format!("{name}: no {expected:?} in:\n{}", output(name)));
        }
    }
    let scraped = |n: &str| {
        runs.iter()
            .find(|r| r.name == n)
            .map(|r| !r.metrics.is_empty())
    };
    assert_eq!(
        scraped("consume-tls-ok"),
        Some(true),
        "the consumer's metrics were scraped"
    );
    assert_eq!(
        scraped("bench-tls-ok"),
        Some(true),
        "the bench's metrics were scraped"
    );
    for p in [&report, &report_ok] {
        if let Ok(text) = std::fs::read_to_string(p) {
            for s in secrets {
                if text.contains(s) {
                    failures.push(format!("{}: report holds a planted secret", p.display()));
                }
            }
        }
    }
    assert!(report_ok.exists(), "bench-tls-ok wrote its report");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
