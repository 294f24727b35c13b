//! Planted secrets (SASL password, TLS key password, ClickHouse passwords,
//! secret `-X` properties), given through flags, the environment and config
//! files to successful and failing produce, consume and bench runs and to
//! `--help`, against plaintext and TLS services: none may appear in
//! anything the binary writes (stdout, stderr, metrics, report files).
//! New cases go into this one test, through [`Planted`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::cmd::{velostream, Cmd};
use crate::harness::data::Taxi;
use crate::harness::paths::path_str;
use crate::harness::pipeline::produce_files;
use crate::harness::prometheus::metrics_page;
use crate::harness::{self, TestDb};

const SASL_SECRET: &str = "vs-planted-SASL-5c1d9e02";
const KEY_SECRET: &str = "vs-planted-KEYPW-a83f71b6";
const FILE_CH_SECRET: &str = "vs-planted-FILECH-0e6b2c4d";
const CH_SECRET: &str = "vs-planted-CH-7f3a9c0d";
const URL_SECRET: &str = "vs-planted-URLQUERY-4b8e1f27";

/// What a run must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Success,
    Failure,
}

/// One finished run.
#[derive(Debug)]
struct Run {
    name: String,
    expect: Expect,
    success: bool,
    status: String,
    /// stdout and stderr, interleaved.
    output: String,
    /// The last `/metrics` page scraped while it ran (when asked for).
    metrics: String,
    elapsed: Duration,
}

/// The runs of the test and the secrets none of them may print.
struct Planted {
    secrets: Vec<String>,
    dir: PathBuf,
    runs: Vec<Run>,
    files: Vec<PathBuf>,
}

impl Planted {
    fn new(secrets: &[&str], dir: &Path) -> Planted {
        Planted {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            dir: dir.to_path_buf(),
            runs: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Runs `cmd` to the end (at most 150 s), scraping `/metrics` on
    /// `metrics_port` while it runs when given.
    fn run(&mut self, name: &str, expect: Expect, cmd: Cmd, metrics_port: Option<u16>) {
        let started = Instant::now();
        let mut running = cmd.spawn(&self.dir.join(format!("{name}.log")));
        let mut metrics = String::new();
        let status = running.wait_with(Duration::from_secs(150), |_| {
            if let Some(page) = metrics_port.and_then(|p| metrics_page(&format!("127.0.0.1:{p}"))) {
                metrics = page;
            }
        });
        self.runs.push(Run {
            name: name.to_string(),
            expect,
            success: status.success(),
            status: status.to_string(),
            output: running.log(),
            metrics,
            elapsed: started.elapsed(),
        });
    }

    /// A file the runs may write (a report): checked too, if it exists.
    fn check_file(&mut self, path: &Path) {
        self.files.push(path.to_path_buf());
    }

    fn output(&self, name: &str) -> &str {
        self.runs
            .iter()
            .find(|r| r.name == name)
            .map_or("", |r| r.output.as_str())
    }

    fn scraped(&self, name: &str) -> bool {
        self.runs
            .iter()
            .any(|r| r.name == name && !r.metrics.is_empty())
    }

    /// Every way a run went wrong: unexpected exit status, a panic, a
    /// secret in its output or metrics, a secret in a checked file.
    fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for r in &self.runs {
            eprintln!(
                "secrets: {}: {} in {:?}; last line: {}",
                r.name,
                r.status,
                r.elapsed,
                r.output.lines().last().unwrap_or("")
            );
            if r.success != (r.expect == Expect::Success) || r.output.contains("panicked at") {
                failures.push(format!(
                    "{}: expected {:?}, got {}:\n{}",
                    r.name, r.expect, r.status, r.output
                ));
            }
            for s in &self.secrets {
                if r.output.contains(s.as_str()) {
                    failures.push(format!(
                        "{}: output holds a planted secret:\n{}",
                        r.name, r.output
                    ));
                }
                if r.metrics.contains(s.as_str()) {
                    failures.push(format!("{}: metrics hold a planted secret", r.name));
                }
            }
        }
        for f in &self.files {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            if self.secrets.iter().any(|s| text.contains(s.as_str())) {
                failures.push(format!("{}: holds a planted secret", f.display()));
            }
        }
        failures
    }
}

/// Writes `text` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p
}

/// Runs against the plaintext services: a wrong ClickHouse password, SASL
/// against a broker without SASL (password from the environment and from
/// `-X` with librdkafka's own debug output), and the help pages.
fn plaintext_runs(p: &mut Planted, file: &str) {
    let brokers = harness::kafka_brokers();
    let url = harness::clickhouse_url();
    let topic = harness::unique_name("secret_plain");
    produce_files(&brokers, &topic, &[PathBuf::from(file)], 1, 1_000);
    let consume = || {
        velostream()
            .args(["--log", "debug", "consume", "--brokers", &brokers])
            .args(["--clickhouse-url", &url, "--topic", &topic])
            .args(["--table", "default.never", "--exit-when-idle", "2"])
    };
    let sasl = [
        "--security-protocol",
        "sasl_plaintext",
        "--sasl-mechanism",
        "PLAIN",
        "--sasl-username",
        "velostream",
    ];
    let produce = |log: &str| {
        velostream().args([
            "--log",
            log,
            "produce",
            "--brokers",
            &brokers,
            "--topic",
            &topic,
        ])
    };
    let (ch_env, sasl_env) = (
        ("VELOSTREAM_CLICKHOUSE_PASSWORD", CH_SECRET),
        ("VELOSTREAM_KAFKA_SASL_PASSWORD", SASL_SECRET),
    );
    // The default user has no password: a wrong one.
    let wrong_ch = consume()
        .args(["--clickhouse-user", "default", "--create-table"])
        .envs([ch_env]);
    p.run("consume-ch-password", Expect::Failure, wrong_ch, None);
    // A password in the URL's query string (refused: query strings are not
    // accepted), with userinfo too, through a flag and the environment.
    let in_url = format!("{url}/?user=default&password={URL_SECRET}#{URL_SECRET}");
    p.run(
        "consume-url-query-secret",
        Expect::Failure,
        velostream()
            .args(["--log", "debug", "consume", "--brokers", &brokers])
            .args(["--clickhouse-url", &in_url, "--topic", &topic])
            .args(["--table", "default.never", "--exit-when-idle", "2"]),
        None,
    );
    let userinfo = url.replacen("://", &format!("://default:{URL_SECRET}@"), 1);
    p.run(
        "verify-url-env-secret",
        Expect::Failure,
        velostream()
            .args(["--log", "debug", "verify", "--table", "default.never"])
            .arg(file)
            .env(
                "VELOSTREAM_CLICKHOUSE_URL",
                format!("{userinfo}/?password={URL_SECRET}"),
            ),
        None,
    );
    p.run(
        "consume-sasl",
        Expect::Failure,
        consume().args(sasl).envs([sasl_env]),
        None,
    );
    let produce_sasl = produce("debug")
        .args(sasl)
        .arg(file)
        .envs([ch_env, sasl_env]);
    p.run("produce-sasl", Expect::Failure, produce_sasl, None);
    // The same secret as -X, with librdkafka's configuration debug output.
    let produce_x = produce("trace")
        .args([
            "-X",
            "security.protocol=sasl_plaintext",
            "-X",
            "sasl.mechanism=PLAIN",
        ])
        .args(["-X", "sasl.username=velostream"])
        .args(["-X", &format!("sasl.password={SASL_SECRET}")])
        .args([
            "-X",
            "log_level=7",
            "-X",
            "debug=security,conf,broker",
            file,
        ]);
    p.run("produce-x-option", Expect::Failure, produce_x, None);
    for (name, args) in [
        ("consume-help", &["consume", "--help"][..]),
        ("produce-help", &["produce", "--help"]),
        ("help", &["--help"]),
    ] {
        let help = velostream().args(args).envs([ch_env, sasl_env]);
        p.run(name, Expect::Success, help, None);
    }
}

/// Runs against the TLS services: produce, consume and bench, successful
/// and failing, with secrets from flags, the environment and config files,
/// metrics scraped and reports checked.
fn tls_runs(p: &mut Planted, file: &str) {
    let tls = harness::tls_services();
    let dir = p.dir.clone();
    let topic = harness::unique_name("secret_tls");
    let (ca, other_ca) = (path_str(&tls.ca), path_str(&tls.other_ca));
    let ch_secret = tls.clickhouse_password.as_str();
    let data_dir = dir.join("bench-data");
    let data_dir = path_str(&data_dir);
    // A file carrying every secret (used by several runs).
    let secrets_toml = write(
        &dir,
        "secrets.toml",
        &format!(
            "ssl-key-password = \"{KEY_SECRET}\"\nsasl-password = \"{SASL_SECRET}\"\n\
             clickhouse-password = \"{FILE_CH_SECRET}\"\n"
        ),
    );
    let cfg = path_str(&secrets_toml);
    // bench takes the same flags as produce/consume: TLS settings, the key
    // and ClickHouse passwords from a [bench] section, one secret -X
    // property, and the ClickHouse user over HTTPS.
    let bench_toml = |name: &str, kafka_ca: &str| {
        write(
            &dir,
            name,
            &format!(
                "[bench]\nsecurity-protocol = \"ssl\"\nssl-ca-location = \"{kafka_ca}\"\n\
                 ssl-key-password = \"{KEY_SECRET}\"\n\
                 kafka-option = [\"sasl.password={SASL_SECRET}\"]\n\
                 clickhouse-user = \"{}\"\nclickhouse-password = \"{ch_secret}\"\n\
                 clickhouse-ca-cert = \"{ca}\"\n",
                tls.clickhouse_user
            ),
        )
    };
    let (bench_bad, bench_good) = (
        bench_toml("bench-bad.toml", other_ca),
        bench_toml("bench-good.toml", ca),
    );
    let kafka_tls = ["--brokers", &tls.brokers, "--security-protocol", "ssl"];
    let https = [
        "--clickhouse-url",
        &tls.clickhouse_https_url,
        "--clickhouse-user",
        &tls.clickhouse_user,
    ];
    let db = TestDb::on(&tls.clickhouse_url);
    // Success paths: TLS produce with a key password from the environment,
    // consume with the ClickHouse password from the environment, metrics on.
    let produce_ok = velostream()
        .args(["--log", "debug", "produce"])
        .args(kafka_tls)
        .args([
            "--ssl-ca-location",
            ca,
            "--topic",
            &topic,
            "--partitions",
            "1",
            file,
        ])
        .env("VELOSTREAM_KAFKA_SSL_KEY_PASSWORD", KEY_SECRET);
    p.run("produce-tls-ok", Expect::Success, produce_ok, None);
    let metrics_port = harness::free_port();
    let consume_ok = velostream()
        .args(["--log", "debug", "consume"])
        .args(kafka_tls)
        .args(["--ssl-ca-location", ca, "--ssl-key-password", KEY_SECRET])
        .args(["--topic", &topic, "--group", &harness::unique_name("g")])
        .args(https)
        .args([
            "--clickhouse-ca-cert",
            ca,
            "--table",
            &db.table("t"),
            "--create-table",
        ])
        .args(["--exit-when-idle", "2"])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        .env("VELOSTREAM_CLICKHOUSE_PASSWORD", ch_secret);
    p.run(
        "consume-tls-ok",
        Expect::Success,
        consume_ok,
        Some(metrics_port),
    );
    // Failures: wrong CA with secrets from the config file.
    let wrong_ca = velostream()
        .args(["--log", "trace", "--config", cfg, "produce"])
        .args(kafka_tls)
        .args(["--ssl-ca-location", other_ca, "--topic", &topic, file]);
    p.run("produce-wrong-ca-file", Expect::Failure, wrong_ca, None);
    // SASL over TLS against a broker without SASL, password on the command line.
    let sasl_ssl = velostream()
        .args(["--log", "debug", "produce", "--brokers", &tls.brokers])
        .args(["--security-protocol", "sasl_ssl", "--ssl-ca-location", ca])
        .args(["--sasl-mechanism", "PLAIN", "--sasl-username", "vs"])
        .args([
            "--sasl-password",
            SASL_SECRET,
            "--ssl-key-password",
            KEY_SECRET,
        ])
        .args(["--topic", &topic, file]);
    p.run("produce-sasl-ssl-flags", Expect::Failure, sasl_ssl, None);
    // Wrong ClickHouse password from the file over HTTPS (the user exists).
    let wrong_ch = velostream()
        .args(["--log", "debug", "consume", "--config", cfg])
        .args(kafka_tls)
        .args(["--ssl-ca-location", ca, "--topic", &topic])
        .args(https)
        .args([
            "--clickhouse-ca-cert",
            ca,
            "--table",
            &db.table("never"),
            "--create-table",
        ])
        .args(["--exit-when-idle", "2"]);
    p.run(
        "consume-wrong-ch-password-file",
        Expect::Failure,
        wrong_ch,
        None,
    );
    // An untrusted HTTPS endpoint, the right password from the environment.
    let untrusted = velostream()
        .args(["--log", "debug", "consume"])
        .args(kafka_tls)
        .args(["--ssl-ca-location", ca, "--topic", &topic])
        .args(https)
        .args([
            "--clickhouse-ca-cert",
            other_ca,
            "--table",
            &db.table("never"),
        ])
        .args(["--exit-when-idle", "2"])
        .env("VELOSTREAM_CLICKHOUSE_PASSWORD", ch_secret)
        .env("VELOSTREAM_KAFKA_SASL_PASSWORD", SASL_SECRET);
    p.run(
        "consume-untrusted-https-env",
        Expect::Failure,
        untrusted,
        None,
    );
    // An unreachable TLS endpoint (nothing listens there).
    let dead = format!("127.0.0.1:{}", harness::free_port());
    let unreachable = velostream()
        .args(["--log", "debug", "produce", "--brokers", &dead])
        .args(["--security-protocol", "ssl", "--ssl-ca-location", ca])
        .args(["--topic", &topic, file])
        .env("VELOSTREAM_KAFKA_SSL_KEY_PASSWORD", KEY_SECRET)
        .env("VELOSTREAM_KAFKA_SASL_PASSWORD", SASL_SECRET);
    p.run(
        "produce-unreachable-tls-env",
        Expect::Failure,
        unreachable,
        None,
    );
    // bench: secrets as -X options from the config file; the broker refuses
    // the unknown CA, and the report (if any) and metrics are checked too.
    let report = dir.join("report.json");
    let bench_metrics = harness::free_port();
    let bench_bad = velostream()
        .args(["--log", "debug", "--config", path_str(&bench_bad), "bench"])
        .args(["--rows", "2000", "--brokers", &tls.brokers])
        .args([
            "--clickhouse-url",
            &tls.clickhouse_https_url,
            "--data-dir",
            data_dir,
        ])
        .args(["--report-json", path_str(&report)])
        .args(["--metrics-addr", &format!("127.0.0.1:{bench_metrics}")]);
    p.run(
        "bench-wrong-ca-file",
        Expect::Failure,
        bench_bad,
        Some(bench_metrics),
    );
    p.check_file(&report);
    // bench with a wrong ClickHouse password from the top-level keys of
    // the shared config file (the user exists), TLS flags on the command line.
    let bench_wrong_ch = velostream()
        .args(["--log", "debug", "--config", cfg, "bench", "--rows", "2000"])
        .args(kafka_tls)
        .args(["--ssl-ca-location", ca])
        .args(https)
        .args(["--clickhouse-ca-cert", ca, "--data-dir", data_dir]);
    p.run(
        "bench-wrong-ch-password-file",
        Expect::Failure,
        bench_wrong_ch,
        None,
    );
    // bench that succeeds over Kafka TLS and ClickHouse HTTPS with secrets
    // from the file and the environment.
    let report_ok = dir.join("report-ok.json");
    let ok_metrics = harness::free_port();
    let bench_ok = velostream()
        .args(["--log", "debug", "--config", path_str(&bench_good), "bench"])
        .args([
            "--rows",
            "5000",
            "--partitions",
            "1",
            "--brokers",
            &tls.brokers,
        ])
        .args([
            "--clickhouse-url",
            &tls.clickhouse_https_url,
            "--data-dir",
            data_dir,
        ])
        .args(["--report-json", path_str(&report_ok)])
        .args(["--metrics-addr", &format!("127.0.0.1:{ok_metrics}")])
        .env("VELOSTREAM_KAFKA_SASL_PASSWORD", SASL_SECRET);
    p.run("bench-tls-ok", Expect::Success, bench_ok, Some(ok_metrics));
    assert!(report_ok.exists(), "bench-tls-ok wrote its report");
    p.check_file(&report_ok);
    let produce_help = velostream()
        .args(["produce", "--help"])
        .env("VELOSTREAM_KAFKA_SSL_KEY_PASSWORD", KEY_SECRET);
    p.run("produce-help-env", Expect::Success, produce_help, None);
    let bench_help = velostream()
        .args(["bench", "--help"])
        .env("VELOSTREAM_KAFKA_SASL_PASSWORD", SASL_SECRET)
        .env("VELOSTREAM_CLICKHOUSE_PASSWORD", FILE_CH_SECRET);
    p.run("bench-help", Expect::Success, bench_help, None);
}

#[test]
fn planted_secrets_are_never_printed() {
    let tls = harness::tls_services();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(2_000)
        .row_groups(2_500)
        .seed(11)
        .write(&dir.path().join("data"));
    let file = path_str(&files[0]);
    let mut p = Planted::new(
        &[
            SASL_SECRET,
            KEY_SECRET,
            FILE_CH_SECRET,
            CH_SECRET,
            URL_SECRET,
            &tls.clickhouse_password,
            &tls.client_key_password,
        ],
        dir.path(),
    );
    plaintext_runs(&mut p, file);
    tls_runs(&mut p, file);
    let mut failures = p.failures();
    // The failures are the ones planted, and the help pages name the
    // password variables and flags.
    for (name, expected) in [
        ("consume-help", "VELOSTREAM_CLICKHOUSE_PASSWORD"),
        ("consume-help", "VELOSTREAM_KAFKA_SASL_PASSWORD"),
        ("bench-wrong-ca-file", "certificate verify failed"),
        ("bench-wrong-ch-password-file", "WRONG_PASSWORD"),
        ("bench-help", "--ssl-key-password"),
        ("bench-help", "--clickhouse-password"),
        ("consume-url-query-secret", "***"),
    ] {
        if !p.output(name).contains(expected) {
            failures.push(format!("{name}: no {expected:?} in:\n{}", p.output(name)));
        }
    }
    let ch = p.output("consume-ch-password");
    if !(ch.contains("193") || ch.to_lowercase().contains("password")) {
        failures.push(format!(
            "a wrong ClickHouse password is not reported as such:\n{ch}"
        ));
    }
    for name in ["consume-tls-ok", "bench-tls-ok"] {
        if !p.scraped(name) {
            failures.push(format!("{name}: its metrics were never scraped"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
