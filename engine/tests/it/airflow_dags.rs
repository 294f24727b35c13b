//! The Airflow DAGs of infra/airflow/dags, run for real: Apache Airflow
//! from PyPI in its own venv (`infra/local/install.sh --airflow`), SQLite
//! metadata, `airflow dags test` against the harness's tansu and
//! ClickHouse, the table asserted afterwards and every log grepped for a
//! planted secret.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use crate::harness;

const BIN: &str = env!("CARGO_BIN_EXE_velostream");

/// `<repo>/.venv-airflow/bin/<program>`, or a failure with the install hint.
fn airflow_bin(program: &str) -> PathBuf {
    let p = harness::repo_root().join(".venv-airflow/bin").join(program);
    assert!(
        p.exists(),
        "{} not found: run `{} --airflow` (Apache Airflow in its own venv, about 2 min)",
        p.display(),
        harness::INSTALL_COMMAND
    );
    p
}

fn dags_folder() -> PathBuf {
    harness::repo_root().join("infra/airflow/dags")
}

/// An isolated Airflow home (SQLite) with the settings of one test.
struct Airflow {
    home: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Airflow {
    fn new(dags: &Path) -> Airflow {
        let home = tempfile::tempdir().unwrap();
        let env = vec![
            ("AIRFLOW_HOME".into(), home.path().to_str().unwrap().into()),
            (
                "AIRFLOW__CORE__DAGS_FOLDER".into(),
                dags.to_str().unwrap().into(),
            ),
            ("AIRFLOW__CORE__LOAD_EXAMPLES".into(), "False".into()),
            // Airflow masks connection passwords in logs by itself; turn that
            // off so the grep below catches any leak by the DAG code.
            (
                "AIRFLOW__CORE__HIDE_SENSITIVE_VAR_CONN_FIELDS".into(),
                "False".into(),
            ),
            ("AIRFLOW__LOGGING__MASK_SECRETS".into(), "False".into()),
        ];
        Airflow { home, env }
    }

    fn set(&mut self, key: &str, value: impl Into<String>) {
        self.env.push((key.into(), value.into()));
    }

    fn var(&mut self, name: &str, value: impl Into<String>) {
        self.set(&format!("AIRFLOW_VAR_{}", name.to_uppercase()), value);
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new(airflow_bin(program))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("VELOSTREAM_CLICKHOUSE_URL")
            .env_remove("VELOSTREAM_BROKERS")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"))
    }

    fn migrate(&self) {
        let t0 = Instant::now();
        let out = self.run("airflow", &["db", "migrate"]);
        assert_ok(&out, "airflow db migrate");
        eprintln!("airflow db migrate: {:.1} s", t0.elapsed().as_secs_f64());
    }

    /// `airflow dags test DAG DATE`; returns everything it printed plus every log file.
    fn dags_test(&self, dag: &str, date: &str) -> String {
        let t0 = Instant::now();
        let out = self.run("airflow", &["dags", "test", dag, date]);
        let mut text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        text.push_str(&read_tree(&self.home.path().join("logs")));
        assert!(
            out.status.success() && !text.contains("state=failed"),
            "airflow dags test {dag} {date}: {}\n{text}",
            out.status
        );
        for task in task_ids(dag) {
            assert!(
                text.contains(&format!("task_id={task}")) || text.contains(task),
                "task {task} does not appear in the output:\n{text}"
            );
        }
        eprintln!(
            "airflow dags test {dag}: {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        text
    }
}

fn task_ids(dag: &str) -> &'static [&'static str] {
    match dag {
        "velostream_benchmark_run" => &[
            "provision",
            "start_consumer",
            "produce",
            "wait_drained",
            "stop_consumer",
            "verify",
        ],
        _ => &["produce", "wait_drained", "verify"],
    }
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The text of every file under `dir`.
fn read_tree(dir: &Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.push_str(&read_tree(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push_str(&String::from_utf8_lossy(&bytes));
            out.push('\n');
        }
    }
    out
}

fn gen(rows: u64, out: &Path, seed: u64) {
    let o = Command::new(BIN)
        .args([
            "gen",
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert_ok(&o, "velostream gen");
}

/// Connections and variables shared by both DAGs; the Kafka connection
/// carries a planted SASL password (ignored by librdkafka with plaintext).
fn configure(a: &mut Airflow, work: &Path, secret: &str) {
    let brokers = harness::kafka_brokers();
    let url = harness::clickhouse_url();
    let (host, port) = url
        .trim_start_matches("http://")
        .split_once(':')
        .expect("ClickHouse URL with a port");
    a.set(
        "AIRFLOW_CONN_VELOSTREAM_KAFKA",
        serde_json::json!({
            "conn_type": "generic",
            "login": "airflow-loader",
            "password": secret,
            "extra": {"brokers": brokers, "security_protocol": "plaintext"},
        })
        .to_string(),
    );
    a.set(
        "AIRFLOW_CONN_VELOSTREAM_CLICKHOUSE",
        serde_json::json!({
            "conn_type": "generic",
            "host": host,
            "port": port.trim_end_matches('/').parse::<u16>().unwrap(),
            "extra": {"protocol": "http"},
        })
        .to_string(),
    );
    a.var("velostream_bin", BIN);
    a.var("velostream_work_dir", work.to_str().unwrap());
    a.var("velostream_partitions", "2");
    a.var("velostream_drain_timeout", "180s");
    a.var("velostream_consume_options", r#"["--max-delay-ms", "200"]"#);
}

#[test]
fn every_dag_file_imports_and_an_import_error_fails_the_check() {
    let python = airflow_bin("python");
    let check = harness::repo_root().join("infra/airflow/check_dags.py");
    let a = Airflow::new(&dags_folder());
    let run = |folder: &Path| {
        Command::new(&python)
            .arg(&check)
            .arg(folder)
            .args(["velostream_benchmark_run", "velostream_load"])
            .envs(a.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap()
    };
    let out = run(&dags_folder());
    assert_ok(&out, "check_dags.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("dags: velostream_benchmark_run velostream_load"),
        "{stdout}"
    );
    // The same folder plus a broken DAG file must fail, naming the file.
    let broken = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(dags_folder()).unwrap().flatten() {
        if f.path().extension().is_some_and(|e| e == "py") {
            std::fs::copy(f.path(), broken.path().join(f.file_name())).unwrap();
        }
    }
    std::fs::write(
        broken.path().join("broken_dag.py"),
        "from airflow.sdk import DAG\nimport velostream_no_such_module\n",
    )
    .unwrap();
    let out = run(broken.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a broken DAG passed the check");
    assert!(stderr.contains("broken_dag.py"), "{stderr}");
}

#[test]
fn benchmark_run_dag_runs_the_lifecycle_and_never_logs_the_secret() {
    let db = harness::TestDb::new();
    let table = db.table("trips");
    let data = tempfile::tempdir().unwrap();
    gen(20_000, &data.path().join("taxi"), 7);
    let work = tempfile::tempdir().unwrap();
    let secret = format!("vs-planted-AIRFLOW-{}", std::process::id());
    let mut a = Airflow::new(&dags_folder());
    configure(&mut a, work.path(), &secret);
    a.var("velostream_topic", harness::unique_name("af_bench"));
    a.var("velostream_group", harness::unique_name("af_loaders"));
    a.var("velostream_table", &table);
    a.var("velostream_exactly_once", "true");
    a.var(
        "velostream_source",
        data.path().join("taxi").to_str().unwrap(),
    );
    a.migrate();
    let log = a.dags_test("velostream_benchmark_run", "2026-01-01");

    assert_eq!(
        db.query(&format!("SELECT count() FROM {table}")).trim(),
        "20000"
    );
    for want in [
        "provisioned topic",
        "consumer running",
        "sent SIGTERM to the consumer",
        "consumer stopped cleanly (exit status 0)",
        "all equal to the source",
    ] {
        assert!(
            log.contains(want),
            "{want:?} not in the DAG's output:\n{log}"
        );
    }
    // No secret in the task logs, the command lines or the consumer's own log.
    let everything = format!("{log}\n{}", read_tree(work.path()));
    assert!(
        !everything.contains(&secret),
        "the planted password appears in the logs"
    );
}

struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn load_dag_loads_each_runs_files_exactly_once_and_verifies() {
    let brokers = harness::kafka_brokers();
    let url = harness::clickhouse_url();
    let db = harness::TestDb::new();
    let table = db.table("daily");
    let topic = harness::unique_name("af_load");
    let group = harness::unique_name("af_load_g");
    harness::create_topic(&brokers, &topic, 2);
    // The long-running consumer of a deployment, with --exactly-once.
    let _consumer = Background(
        Command::new(BIN)
            .args([
                "consume",
                "--brokers",
                &brokers,
                "--topic",
                &topic,
                "--group",
                &group,
                "--clickhouse-url",
                &url,
                "--table",
                &table,
                "--create-table",
                "--exactly-once",
                "--max-delay-ms",
                "200",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let data = tempfile::tempdir().unwrap();
    gen(8_000, &data.path().join("2026-01-02"), 1);
    let work = tempfile::tempdir().unwrap();
    let secret = format!("vs-planted-AIRFLOW-LOAD-{}", std::process::id());
    let mut a = Airflow::new(&dags_folder());
    configure(&mut a, work.path(), &secret);
    a.var("velostream_topic", &topic);
    a.var("velostream_group", &group);
    a.var("velostream_table", &table);
    let root = data.path().to_str().unwrap();
    // Each run produces its logical date's files; verify covers all loaded so far.
    a.var(
        "velostream_load_source",
        format!("{root}/{{{{ ds }}}}/*.parquet"),
    );
    a.var("velostream_load_verify", format!("{root}/*/*.parquet"));
    a.migrate();
    let log1 = a.dags_test("velostream_load", "2026-01-02");
    assert_eq!(
        db.query(&format!("SELECT count() FROM {table}")).trim(),
        "8000"
    );
    assert!(
        log1.contains(&format!("{root}/2026-01-02/*.parquet")),
        "{log1}"
    );
    // The next day's files arrive.
    gen(5_000, &data.path().join("2026-01-03"), 2);
    let log2 = a.dags_test("velostream_load", "2026-01-03");
    assert_eq!(
        db.query(&format!("SELECT count() FROM {table}")).trim(),
        "13000"
    );
    assert!(log2.contains("all equal to the source"), "{log2}");
    assert!(!format!("{log1}{log2}").contains(&secret));
}
