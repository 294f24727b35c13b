//! Security settings against real services: Kafka over TLS (tansu behind
//! the harness's TLS front), ClickHouse over HTTPS with a custom CA and a
//! password-protected user, and the `--config` file. The planted-secrets
//! test is in `secrets.rs`.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use velostream::clickhouse::{ClickHouse, ClickHouseConfig, Secret};

use crate::harness::clickhouse::count;
use crate::harness::cmd::velostream;
use crate::harness::data::Taxi;
use crate::harness::paths::path_str as path;
use crate::harness::{self, TestDb};

/// Passwords that must not be echoed (a wrong key password, a wrong
/// ClickHouse password in the environment).
const KEY_SECRET: &str = "vs-planted-KEYPW-a83f71b6";
const FILE_CH_SECRET: &str = "vs-planted-FILECH-0e6b2c4d";

/// One finished run of the binary, named for messages.
#[derive(Debug)]
struct Run {
    name: String,
    status: ExitStatus,
    /// stdout, then stderr.
    output: String,
    elapsed: Duration,
}

/// Runs the binary with `args` and extra environment (at most `timeout`).
fn run(name: &str, args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> Run {
    let out = velostream()
        .args(args)
        .envs(envs.iter().copied())
        .timeout(timeout)
        .run();
    Run {
        name: name.to_string(),
        status: out.status,
        output: out.text(),
        elapsed: out.elapsed,
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

/// Fails unless the run failed within 45 s with a final error naming `broker`.
fn assert_refused_naming(r: &Run, broker: &str) {
    eprintln!("security: {} failed after {:?}", r.name, r.elapsed);
    assert!(!r.status.success(), "{} should fail:\n{}", r.name, r.output);
    let last = r
        .output
        .lines()
        .rfind(|l| l.starts_with("error:"))
        .unwrap_or("");
    assert!(
        last.contains(broker),
        "{}: the final error names the broker {broker}:\n{}",
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

/// One Parquet file of `rows` generated taxi rows.
fn taxi_file(dir: &Path, rows: u64) -> PathBuf {
    let files = Taxi::rows(rows)
        .row_groups(2_500)
        .seed(11)
        .write(&dir.join("data"));
    files[0].clone()
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
        Duration::from_secs(120),
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
        Duration::from_secs(180),
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
        Duration::from_secs(300),
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
        limit,
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
        limit,
    );
    for r in [&wrong_ca, &plaintext] {
        assert_refused_naming(r, &tls.brokers);
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
        t,
    );
    assert_ok(&ok);
    // A certificate from another CA is refused by the broker's TLS front,
    // which proves the client presents the configured certificate.
    let other_args = base(&tls.other_client_cert, &tls.other_client_key);
    let other_args: Vec<&str> = other_args.iter().map(String::as_str).collect();
    let other = run("produce-mtls-other-ca", &other_args, &[], t);
    // A wrong key password: the key cannot be loaded.
    let wrong_pw = run(
        "produce-mtls-wrong-key-password",
        &ok_args,
        &[("VELOSTREAM_KAFKA_SSL_KEY_PASSWORD", KEY_SECRET)],
        t,
    );
    for r in [&other, &wrong_pw] {
        assert_refused_naming(r, &tls.brokers);
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
        Duration::from_secs(120),
    ));
    let consume = run(
        "consume-config",
        &["consume", "--config", cfg],
        &[],
        Duration::from_secs(180),
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
        Duration::from_secs(180),
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
        Duration::from_secs(120),
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
        Duration::from_secs(30),
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
