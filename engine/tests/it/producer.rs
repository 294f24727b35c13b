//! The producer against a real broker (tansu from the harness): every row
//! arrives exactly once and unchanged, the messages are standard Arrow IPC
//! streams (pyarrow reads them), JSON rows, message size limits, keyed
//! partitioning, and clean errors for bad input and unreachable brokers.
//!
//! Messages are read back with a plain rdkafka consumer that assigns every
//! partition from the beginning and reads until the decoded row count reaches
//! the source's (tansu's high watermarks are wrong, so they are not used),
//! then keeps reading for a moment so that duplicates would show.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type};
use arrow_array::{Array, RecordBatch};
use velostream::kafka::KafkaArgs;
use velostream::producer::{self, ProducerConfig};
use velostream::progress::Progress;
use velostream::source::{ParquetSource, SourceOptions};
use velostream_codecs::envelope;

use crate::harness::cmd::{velostream, Output};
use crate::harness::data::{concat, open, read_all, Taxi};
use crate::harness::kafka::{read_topic, Msg, Until};
use crate::harness::paths::parquet_files;
use crate::harness::process::signal;
use crate::harness::{create_topic, free_port, kafka_brokers, shared_testdata, unique_name};

/// CLI runs at a time in the per-file tests.
const PARALLEL_RUNS: usize = 4;
/// Time limit of one `velostream produce` run.
const CLI_LIMIT: Duration = Duration::from_secs(120);

/// Files of `bad_data/` that are readable after all (see `source_testdata`).
const READABLE_BAD_DATA: &[&str] = &["ARROW-GH-43605.parquet"];

// ------------------------------------------------------------------ helpers

/// Reads `topic` back (all partitions, from the beginning) until `rows_of`
/// summed over the messages reaches `want`, then a moment more so that
/// duplicates would show; fails unless exactly `want` rows arrived.
fn read_back(topic: &str, want: u64, rows_of: &dyn Fn(&Msg) -> u64) -> Vec<Msg> {
    read_topic(&kafka_brokers(), topic, Until::Rows { want, rows_of })
}

fn arrow_rows(m: &Msg) -> u64 {
    m.decode().num_rows() as u64
}

/// Runs `velostream produce --brokers B --topic T --partitions P REST…`
/// with a time limit (killed and failed on hang).
fn produce_cli(
    brokers: &str,
    topic: &str,
    partitions: &str,
    rest: &[&str],
    limit: Duration,
) -> Output {
    velostream()
        .args(["produce", "--brokers", brokers, "--topic", topic])
        .args(["--partitions", partitions])
        .args(rest)
        .timeout(limit)
        .run()
}

fn assert_ok(run: &Output, what: &str) {
    assert!(
        run.success(),
        "velostream produce failed for {what}:\n{}",
        run.describe()
    );
}

/// Checks that `msgs` (Arrow messages with envelopes) hold exactly the rows
/// of `source`: envelopes agree with the payloads, every row group's slices
/// are numbered 0..n without gaps or repeats, and the rows of each row group,
/// reassembled in slice order, equal the source's. Returns the slices seen.
fn assert_same_as_source(msgs: &[Msg], source: &ParquetSource) -> usize {
    let schema = source.schema();
    let fingerprint = envelope::schema_fingerprint(&schema);
    // (file, row group) -> slice -> batches of that message
    let mut groups: BTreeMap<(String, u32), BTreeMap<u32, Vec<RecordBatch>>> = BTreeMap::new();
    for m in msgs {
        let env = m.envelope();
        let decoded = m.decode();
        let at = format!("partition {} offset {}", m.partition, m.offset);
        assert_eq!(env.rows, decoded.num_rows() as u64, "{at}: envelope rows");
        assert!(decoded.num_rows() > 0, "{at}: empty message");
        assert_eq!(
            env.schema_fingerprint, fingerprint,
            "{at}: schema fingerprint"
        );
        assert_eq!(decoded.schema, schema, "{at}: schema");
        let src = env
            .source
            .unwrap_or_else(|| panic!("{at}: no source headers"));
        let previous = groups
            .entry((src.file.clone(), src.row_group))
            .or_default()
            .insert(src.slice, decoded.batches);
        assert!(
            previous.is_none(),
            "{at}: slice {} of {} row group {} arrived twice",
            src.slice,
            src.file,
            src.row_group
        );
    }
    let mut seen = 0;
    let mut expected_keys = Vec::new();
    for rg in source.row_groups() {
        let key = (rg.path.display().to_string(), rg.row_group as u32);
        expected_keys.push(key.clone());
        let slices = groups
            .get(&key)
            .unwrap_or_else(|| panic!("no message for {} row group {}", key.0, key.1));
        let numbers: Vec<u32> = slices.keys().copied().collect();
        let want: Vec<u32> = (0..slices.len() as u32).collect();
        assert_eq!(
            numbers, want,
            "{} row group {}: slice numbers",
            key.0, key.1
        );
        seen += slices.len();
        let got: Vec<RecordBatch> = slices.values().flatten().cloned().collect();
        let expected: Vec<RecordBatch> = source
            .read_row_group(rg, 1 << 20)
            .expect("read row group")
            .collect::<velostream::Result<_>>()
            .expect("read row group");
        let (got, expected) = (concat(&got), concat(&expected));
        assert_eq!(
            got.num_rows() as u64,
            rg.rows,
            "{} row group {}: rows",
            key.0,
            key.1
        );
        assert!(
            got == expected,
            "{} row group {}: rows differ from the source",
            key.0,
            key.1
        );
    }
    let extra: Vec<_> = groups
        .keys()
        .filter(|k| !expected_keys.contains(k))
        .collect();
    assert!(
        extra.is_empty(),
        "messages from unknown row groups: {extra:?}"
    );
    seen
}

// ------------------------------------------------------------------ tests

/// 200k generated rows in 2 files, several row groups, sliced into several
/// messages per row group, round-robin over 3 partitions: read back equal.
#[test]
fn generated_taxi_data_arrives_exactly_once_and_unchanged() {
    let brokers = kafka_brokers();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(200_000)
        .files(2)
        .row_groups(30_000)
        .seed(11)
        .write(dir.path());
    let source = Arc::new(open(&files));
    assert!(
        source.row_groups().len() >= 6,
        "{} row groups",
        source.row_groups().len()
    );
    let topic = unique_name("producer_taxi");
    create_topic(&brokers, &topic, 3);

    let mut cfg = ProducerConfig::new(KafkaArgs::new(brokers.clone()), &topic);
    cfg.max_rows_per_message = 7_000;
    cfg.read_batch_rows = 8_192;
    cfg.parallelism = 3;
    let summary = producer::run(
        &cfg,
        Arc::clone(&source),
        3,
        Arc::new(AtomicBool::new(false)),
        &Progress::hidden(),
    )
    .expect("produce");
    assert_eq!(summary.rows, 200_000);
    assert_eq!(summary.row_groups, source.row_groups().len());

    let msgs = read_back(&topic, source.total_rows(), &arrow_rows);
    assert_eq!(
        msgs.len() as u64,
        summary.messages,
        "messages read vs acknowledged"
    );
    let wire: u64 = msgs.iter().map(|m| m.payload.len() as u64).sum();
    assert_eq!(
        wire, summary.wire_bytes,
        "payload bytes read vs acknowledged"
    );
    let slices = assert_same_as_source(&msgs, &source);
    assert!(
        slices > source.row_groups().len(),
        "expected several slices per row group, got {slices}"
    );

    // The slices of one row group go round-robin over the partitions from a
    // start fixed by the file and row group: partition - slice is constant
    // modulo 3 within a row group, so every row group adds at most one
    // message of imbalance between partitions.
    let mut start_of: BTreeMap<(String, u32), i64> = BTreeMap::new();
    let mut per_partition = [0usize; 3];
    for m in &msgs {
        per_partition[m.partition as usize] += 1;
        let src = m.envelope().source.expect("source headers");
        let start = (i64::from(m.partition) - i64::from(src.slice)).rem_euclid(3);
        let first = *start_of
            .entry((src.file.clone(), src.row_group))
            .or_insert(start);
        assert_eq!(
            first, start,
            "{} row group {} slice {} on partition {}: not round-robin from the row group's start",
            src.file, src.row_group, src.slice, m.partition
        );
    }
    let (lo, hi) = (
        per_partition.iter().min().unwrap(),
        per_partition.iter().max().unwrap(),
    );
    assert!(
        hi - lo <= source.row_groups().len(),
        "spread {per_partition:?} over {} row groups",
        source.row_groups().len()
    );
    eprintln!(
        "producer taxi: {} rows, {} messages, {} row groups, {:.1} bytes/row on the wire, {:.0} rows/s",
        summary.rows,
        summary.messages,
        summary.row_groups,
        summary.wire_bytes as f64 / summary.rows as f64,
        summary.rows_per_sec()
    );
}

/// The messages are plain Arrow IPC streams: pyarrow + confluent-kafka read
/// the same rows, the same sum of `trip_distance` and the same null count of
/// `passenger_count` as the Rust source.
#[test]
fn pyarrow_reads_the_messages() {
    let brokers = kafka_brokers();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(60_000)
        .row_groups(20_000)
        .seed(12)
        .write(dir.path());
    let source = open(&files);
    let batches = read_all(&source, 65_536).expect("read source");
    let mut sum = 0.0f64;
    let mut nulls = 0usize;
    for b in &batches {
        let idx = b.schema().index_of("trip_distance").unwrap();
        sum += b
            .column(idx)
            .as_primitive::<Float64Type>()
            .iter()
            .flatten()
            .sum::<f64>();
        nulls += b
            .column(b.schema().index_of("passenger_count").unwrap())
            .null_count();
    }
    assert!(
        nulls > 0,
        "the generator should produce null passenger counts"
    );

    let topic = unique_name("producer_py");
    let file = files[0].display().to_string();
    let run = produce_cli(
        &brokers,
        &topic,
        "2",
        &["--max-rows-per-message", "5000", &file],
        CLI_LIMIT,
    );
    assert_ok(&run, &file);
    assert!(run.stdout.contains("produced 60000 rows"), "{}", run.stdout);

    let script = crate::harness::repo_root().join("engine/tests/py/read_topic.py");
    let script = script.to_str().unwrap();
    let stdout = crate::harness::python_stdout([
        script,
        &brokers,
        &topic,
        "2",
        "60000",
        "90",
        "trip_distance",
        "passenger_count",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["errors"], serde_json::json!([]), "pyarrow errors");
    assert_eq!(v["rows"], 60_000, "{v}");
    assert!(v["messages"].as_u64().unwrap() >= 12, "{v}");
    let names: Vec<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(v["columns"], serde_json::json!(names));
    let py_sum = v["sum"].as_f64().unwrap();
    assert!(
        (py_sum - sum).abs() <= sum.abs() * 1e-9,
        "sum(trip_distance): pyarrow {py_sum}, Rust {sum}"
    );
    assert_eq!(v["nulls"], nulls, "null passenger_count");
}

/// What the in-process source makes of one file: all its rows, or an error.
fn source_read(path: &Path) -> Result<RecordBatch, String> {
    let source = ParquetSource::open(&[path.to_path_buf()], &SourceOptions::default())
        .map_err(|e| e.to_string())?;
    let batches = read_all(&source, 1024).map_err(|e| e.to_string())?;
    if batches.is_empty() {
        return Ok(RecordBatch::new_empty(source.schema()));
    }
    Ok(concat(&batches))
}

/// Produces `path` to a fresh one-partition topic with the CLI and checks the
/// outcome against the in-process source. Returns a failure description.
fn check_file(brokers: &str, path: &Path) -> Option<String> {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let expected = source_read(path);
    let topic = unique_name("producer_file");
    let file = path.display().to_string();
    let run = produce_cli(brokers, &topic, "1", &[&file], CLI_LIMIT);
    match (expected, run.success()) {
        (Ok(batch), true) => {
            let rows = batch.num_rows() as u64;
            let msgs = read_back(&topic, rows, &arrow_rows);
            let got: Vec<RecordBatch> = msgs.iter().flat_map(|m| m.decode().batches).collect();
            eprintln!("{name}: {rows} rows in {} messages", msgs.len());
            if rows == 0 {
                return (!got.is_empty()).then(|| format!("{name}: messages for an empty file"));
            }
            let got = concat(&got);
            (got != batch).then(|| format!("{name}: rows read back differ from the source"))
        }
        (Ok(_), false) => {
            eprintln!("{name}: refused: {}", run.stderr.trim());
            // Allowed only as a clear refusal naming the file and a column type.
            let named = run.stderr.contains(&name) && run.stderr.to_lowercase().contains("type");
            (!named).then(|| format!("{name}: source reads it but produce failed: {}", run.stderr))
        }
        (Err(e), true) => Some(format!("{name}: source fails ({e}) but produce succeeded")),
        (Err(_), false) => {
            eprintln!("{name}: refused: {}", run.stderr.trim());
            (!run.stderr.contains(&name))
                .then(|| format!("{name}: error does not name the file: {}", run.stderr))
        }
    }
}

/// Every file in `data/` produces exactly what the source reads, or is
/// refused with an error naming it (never a panic or a hang).
#[test]
fn every_testdata_file_produces_or_is_refused_by_name() {
    let brokers = kafka_brokers();
    let dir = shared_testdata().join("data");
    let files = parquet_files(&dir);
    assert_every_file(&files, |f| check_file(&brokers, f));
}

/// Runs `check` over `files` in parallel; fails listing every file for
/// which it returned a problem.
fn assert_every_file(files: &[PathBuf], check: impl Fn(&PathBuf) -> Option<String> + Sync) {
    let failures: Vec<String> = parallel(files, check).into_iter().flatten().collect();
    assert!(
        failures.is_empty(),
        "{} of {} files:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// `f` over `items` on [`PARALLEL_RUNS`] threads, results in item order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_RUNS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                *results[i].lock().unwrap() = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|r| r.into_inner().unwrap().expect("every item ran"))
        .collect()
}

/// `--format json-rows` over every file in `data/`: one valid JSON object per
/// row with the schema's keys, or a refusal naming the file and the column
/// type JSON rows cannot carry (never a panic or a hang).
#[test]
fn every_testdata_file_as_json_rows_is_valid_json_or_refused_by_name() {
    let brokers = kafka_brokers();
    let files = parquet_files(&shared_testdata().join("data"));
    assert_every_file(&files, |path| {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let expected = source_read(path);
        let topic = unique_name("producer_file_json");
        let file = path.display().to_string();
        let run = produce_cli(
            &brokers,
            &topic,
            "1",
            &["--format", "json-rows", &file],
            CLI_LIMIT,
        );
        let batch = match (expected, run.success()) {
            (Ok(batch), true) => batch,
            (Ok(_), false) => {
                eprintln!("{name} (json-rows): refused: {}", run.stderr.trim());
                let named =
                    run.stderr.contains(&name) && run.stderr.to_lowercase().contains("type");
                return (!named).then(|| {
                    format!(
                        "{name}: json-rows refusal does not name the file and type: {}",
                        run.stderr
                    )
                });
            }
            (Err(e), true) => {
                return Some(format!("{name}: source fails ({e}) but produce succeeded"))
            }
            (Err(_), false) => {
                return (!run.stderr.contains(&name))
                    .then(|| format!("{name}: error does not name the file: {}", run.stderr))
            }
        };
        let keys: HashSet<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let msgs = read_back(&topic, batch.num_rows() as u64, &|_| 1);
        for m in &msgs {
            let v: serde_json::Value = match serde_json::from_slice(&m.payload) {
                Ok(v) => v,
                Err(e) => {
                    return Some(format!(
                        "{name}: offset {}: invalid JSON ({e}): {}",
                        m.offset,
                        String::from_utf8_lossy(&m.payload)
                    ))
                }
            };
            let got: HashSet<String> = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            if got != keys {
                return Some(format!(
                    "{name}: offset {}: keys {got:?}, want {keys:?}",
                    m.offset
                ));
            }
        }
        eprintln!("{name} (json-rows): {} messages", msgs.len());
        None
    });
}

/// Every file in `bad_data/` fails with its name in the message (except the
/// ones that are readable after all, which must produce correctly).
#[test]
fn every_bad_file_is_an_error_naming_it() {
    let brokers = kafka_brokers();
    let files = parquet_files(&shared_testdata().join("bad_data"));
    assert_every_file(&files, |f| {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if READABLE_BAD_DATA.contains(&name.as_str()) {
            return check_file(&brokers, f);
        }
        let topic = unique_name("producer_bad");
        let file = f.display().to_string();
        let run = produce_cli(&brokers, &topic, "1", &[&file], CLI_LIMIT);
        eprintln!("{name}: ok={} {}", run.success(), run.stderr.trim());
        if run.success() {
            Some(format!("{name}: produce succeeded: {}", run.stdout))
        } else if !run.stderr.contains(&name) {
            Some(format!(
                "{name}: error does not name the file: {}",
                run.stderr
            ))
        } else {
            None
        }
    });
}

/// `--format json-rows`: one JSON object per row and message, with the
/// schema's keys and the source's values.
#[test]
fn json_rows_gives_one_message_per_row() {
    let brokers = kafka_brokers();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(3_000)
        .row_groups(1_000)
        .seed(13)
        .write(dir.path());
    let source = open(&files);
    let batch = concat(&read_all(&source, 65_536).expect("read source"));
    let topic = unique_name("producer_json");
    let file = files[0].display().to_string();
    let run = produce_cli(
        &brokers,
        &topic,
        "2",
        &["--format", "json-rows", &file],
        CLI_LIMIT,
    );
    assert_ok(&run, &file);
    let msgs = read_back(&topic, 3_000, &|_| 1);
    let keys: HashSet<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut pu: Vec<i64> = Vec::new();
    let mut null_passengers = 0usize;
    for m in &msgs {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_else(|e| {
            panic!(
                "partition {} offset {}: not JSON ({e}): {}",
                m.partition,
                m.offset,
                String::from_utf8_lossy(&m.payload)
            )
        });
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {v}"));
        let got: HashSet<String> = obj.keys().cloned().collect();
        assert_eq!(got, keys, "keys of {v}");
        pu.push(
            obj["PULocationID"]
                .as_i64()
                .unwrap_or_else(|| panic!("PULocationID in {v}")),
        );
        null_passengers += usize::from(obj["passenger_count"].is_null());
    }
    let mut want: Vec<i64> = batch
        .column(batch.schema().index_of("PULocationID").unwrap())
        .as_primitive::<Int32Type>()
        .values()
        .iter()
        .map(|v| i64::from(*v))
        .collect();
    pu.sort_unstable();
    want.sort_unstable();
    assert!(pu == want, "PULocationID values differ from the source");
    let passengers = batch.column(batch.schema().index_of("passenger_count").unwrap());
    assert_eq!(null_passengers, passengers.null_count());
}

/// A broker address nobody listens on: a prompt error naming it.
#[test]
fn unreachable_broker_fails_fast_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(1_000)
        .row_groups(1_000)
        .seed(14)
        .write(dir.path());
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let file = files[0].display().to_string();
    let run = produce_cli(&address, "nowhere", "1", &[&file], Duration::from_secs(90));
    assert!(
        !run.success(),
        "produce to {address} succeeded: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains(&address),
        "error does not name {address}: {}",
        run.stderr
    );
    assert!(
        run.elapsed < Duration::from_secs(30),
        "took {:?}",
        run.elapsed
    );
    eprintln!(
        "producer unreachable: failed in {:?}: {}",
        run.elapsed,
        run.stderr.trim()
    );
}

/// `--max-message-bytes 65536`: no message is larger, and every row arrives.
#[test]
fn max_message_bytes_is_respected() {
    let brokers = kafka_brokers();
    let dir = tempfile::tempdir().expect("tempdir");
    // Two files, given as their directory (the CLI discovers them).
    let files = Taxi::rows(100_000)
        .files(2)
        .row_groups(25_000)
        .seed(15)
        .write(dir.path());
    let source = open(&files);
    let topic = unique_name("producer_size");
    let file = dir.path().display().to_string();
    let run = produce_cli(
        &brokers,
        &topic,
        "2",
        &["--max-message-bytes", "65536", &file],
        CLI_LIMIT,
    );
    assert_ok(&run, &file);
    let msgs = read_back(&topic, 100_000, &arrow_rows);
    let largest = msgs.iter().map(|m| m.payload.len()).max().unwrap_or(0);
    assert!(largest <= 65_536, "largest message {largest} bytes");
    assert!(
        largest > 65_536 / 4,
        "messages far below the target: largest {largest} bytes"
    );
    assert_same_as_source(&msgs, &source);
    eprintln!(
        "producer size: {} messages, largest {largest} bytes",
        msgs.len()
    );
}

/// `--key-column PULocationID`: all rows of one key share a partition.
#[test]
fn key_column_keeps_equal_keys_in_one_partition() {
    let brokers = kafka_brokers();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(50_000)
        .row_groups(10_000)
        .seed(16)
        .write(dir.path());
    let source = open(&files);
    let topic = unique_name("producer_keyed");
    let file = files[0].display().to_string();
    let run = produce_cli(
        &brokers,
        &topic,
        "4",
        &["--key-column", "PULocationID", &file],
        CLI_LIMIT,
    );
    assert_ok(&run, &file);
    let msgs = read_back(&topic, 50_000, &arrow_rows);
    let mut home: HashMap<i32, i32> = HashMap::new();
    let mut got_counts: HashMap<i32, u64> = HashMap::new();
    for m in &msgs {
        for b in m.decode().batches {
            let keys = b
                .column(b.schema().index_of("PULocationID").unwrap())
                .as_primitive::<Int32Type>()
                .clone();
            for k in keys.values().iter() {
                *got_counts.entry(*k).or_default() += 1;
                let p = *home.entry(*k).or_insert(m.partition);
                assert_eq!(
                    p, m.partition,
                    "key {k} in partitions {p} and {}",
                    m.partition
                );
            }
        }
    }
    let used: HashSet<i32> = home.values().copied().collect();
    assert!(used.len() >= 3, "keys spread over partitions {used:?} only");
    let mut want_counts: HashMap<i32, u64> = HashMap::new();
    for b in read_all(&source, 65_536).expect("read source") {
        let keys = b
            .column(b.schema().index_of("PULocationID").unwrap())
            .as_primitive::<Int32Type>()
            .clone();
        for k in keys.values().iter() {
            *want_counts.entry(*k).or_default() += 1;
        }
    }
    assert!(
        got_counts == want_counts,
        "rows per key differ from the source"
    );
    // Sanity: the key column really has many distinct values.
    assert!(
        want_counts.len() > 20,
        "{} distinct keys",
        want_counts.len()
    );
}

/// A row that alone exceeds `--max-message-bytes`: an error naming the file
/// and row group, promptly (the workers and the sender both stop).
#[test]
fn oversized_row_is_an_error_naming_the_source() {
    let brokers = kafka_brokers();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(20_000)
        .row_groups(5_000)
        .seed(17)
        .write(dir.path());
    let topic = unique_name("producer_oversized");
    let file = files[0].display().to_string();
    let run = produce_cli(
        &brokers,
        &topic,
        "1",
        &["--max-message-bytes", "1024", &file],
        CLI_LIMIT,
    );
    assert!(
        !run.success(),
        "produce with 1 KiB messages succeeded: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains(&file) && run.stderr.contains("row group"),
        "error does not name the file and row group: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("1024"),
        "error does not name the limit: {}",
        run.stderr
    );
}

/// Stopping mid-run: the run ends with `Interrupted` reporting the rows and
/// messages acknowledged, and exactly those are in the topic: a prefix of the
/// source in message order, nothing lost in between, nothing duplicated.
#[test]
fn stop_mid_run_leaves_an_exact_prefix() {
    let brokers = kafka_brokers();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(600_000)
        .files(2)
        .row_groups(50_000)
        .seed(18)
        .write(dir.path());
    let source = Arc::new(open(&files));
    let topic = unique_name("producer_stop");
    create_topic(&brokers, &topic, 2);
    let stop = Arc::new(AtomicBool::new(false));

    // Raise the stop flag as soon as the first rows are acknowledged.
    let progress = Arc::new(Progress::hidden());
    let watcher = {
        let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while progress.rows() == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let mut cfg = ProducerConfig::new(KafkaArgs::new(brokers.clone()), &topic);
    // Small messages make the run long enough (seconds) to stop in the middle.
    cfg.max_rows_per_message = 50;
    cfg.parallelism = 2;
    // A small local queue keeps the send loop running until acknowledgements
    // arrive; otherwise a fast machine enqueues everything before the first
    // ack and the stop flag comes too late to matter.
    cfg.kafka
        .options
        .push("queue.buffering.max.messages=100".into());
    let result = producer::run(&cfg, Arc::clone(&source), 2, Arc::clone(&stop), &progress);
    watcher.join().expect("watcher");
    let message = match result {
        Err(velostream::Error::Interrupted(m)) => m,
        Ok(s) => panic!("the run finished before the stop flag: {s:?}"),
        Err(e) => panic!("expected Interrupted, got {e}"),
    };
    // "stopped after N rows in M messages, all acknowledged"
    let words: Vec<&str> = message.split_whitespace().collect();
    let number_after = |w: &str| -> u64 {
        let i = words
            .iter()
            .position(|x| *x == w)
            .unwrap_or_else(|| panic!("no {w:?} in {message:?}"));
        words[i + 1]
            .parse()
            .unwrap_or_else(|_| panic!("no number after {w:?} in {message:?}"))
    };
    let rows = number_after("after");
    let messages = number_after("in");
    assert!(message.contains("all acknowledged"), "{message}");
    assert!(
        rows > 0 && rows < source.total_rows(),
        "{rows} of {} rows: not a mid-run stop",
        source.total_rows()
    );

    let msgs = read_back(&topic, rows, &arrow_rows);
    assert_eq!(msgs.len() as u64, messages, "messages in the topic");
    // Group by row group, then check the prefix shape and the values.
    let mut groups: BTreeMap<(String, u32), BTreeMap<u32, RecordBatch>> = BTreeMap::new();
    for m in &msgs {
        let src = m.envelope().source.expect("source headers");
        let batch = concat(&m.decode().batches);
        let dup = groups
            .entry((src.file.clone(), src.row_group))
            .or_default()
            .insert(src.slice, batch);
        assert!(dup.is_none(), "{src:?} twice");
    }
    let mut complete = true;
    let mut seen = 0u64;
    for rg in source.row_groups() {
        let key = (rg.path.display().to_string(), rg.row_group as u32);
        let Some(slices) = groups.remove(&key) else {
            complete = false;
            continue;
        };
        assert!(complete, "{key:?} present after an incomplete row group");
        let numbers: Vec<u32> = slices.keys().copied().collect();
        let want: Vec<u32> = (0..slices.len() as u32).collect();
        assert_eq!(numbers, want, "{key:?}: slices are not a prefix");
        let got = concat(&slices.into_values().collect::<Vec<_>>());
        let expected: Vec<RecordBatch> = source
            .read_row_group(rg, 1 << 20)
            .expect("read row group")
            .collect::<velostream::Result<_>>()
            .expect("read row group");
        let expected = concat(&expected);
        assert!(
            got.num_rows() as u64 <= rg.rows,
            "{key:?}: {} rows",
            got.num_rows()
        );
        assert!(
            got == expected.slice(0, got.num_rows()),
            "{key:?}: rows differ from the source prefix"
        );
        complete = got.num_rows() as u64 == rg.rows;
        seen += got.num_rows() as u64;
    }
    assert!(groups.is_empty(), "unknown row groups {:?}", groups.keys());
    assert_eq!(seen, rows);
    eprintln!(
        "producer stop: {rows} of {} rows in {messages} messages before the stop",
        source.total_rows()
    );
}

/// Every Arrow body compression with every Kafka record-batch compression
/// round-trips exactly.
#[test]
fn every_compression_combination_round_trips() {
    let brokers = kafka_brokers();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(20_000)
        .row_groups(10_000)
        .seed(19)
        .write(dir.path());
    let source = open(&files);
    let file = files[0].display().to_string();
    let mut combos = Vec::new();
    for ipc in ["lz4", "zstd", "none"] {
        for kafka in ["none", "lz4", "zstd", "gzip", "snappy"] {
            combos.push((ipc, kafka));
        }
    }
    let sizes = parallel(&combos, |(ipc, kafka)| {
        let topic = unique_name("producer_codec");
        let run = produce_cli(
            &brokers,
            &topic,
            "1",
            &[
                "--compression",
                ipc,
                "--kafka-compression",
                kafka,
                "--max-rows-per-message",
                "4000",
                &file,
            ],
            CLI_LIMIT,
        );
        assert_ok(
            &run,
            &format!("--compression {ipc} --kafka-compression {kafka}"),
        );
        let msgs = read_back(&topic, 20_000, &arrow_rows);
        assert_same_as_source(&msgs, &source);
        msgs.iter().map(|m| m.payload.len()).sum::<usize>()
    });
    let by_ipc = |name: &str| {
        combos
            .iter()
            .zip(&sizes)
            .find(|((ipc, kafka), _)| *ipc == name && *kafka == "none")
            .map(|(_, s)| *s)
            .unwrap()
    };
    // The Arrow body compression really is applied.
    assert!(
        by_ipc("lz4") < by_ipc("none"),
        "lz4 {} vs none {}",
        by_ipc("lz4"),
        by_ipc("none")
    );
    assert!(
        by_ipc("zstd") < by_ipc("none"),
        "zstd {} vs none {}",
        by_ipc("zstd"),
        by_ipc("none")
    );
    eprintln!(
        "producer codecs: payload bytes for 20000 rows: lz4 {}, zstd {}, none {}",
        by_ipc("lz4"),
        by_ipc("zstd"),
        by_ipc("none")
    );
}

/// `--columns`: messages carry only those columns, in that order, with the
/// source's values.
#[test]
fn columns_selects_and_orders_columns() {
    let brokers = kafka_brokers();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(10_000)
        .row_groups(5_000)
        .seed(20)
        .write(dir.path());
    let columns = vec![
        "trip_distance".to_string(),
        "VendorID".to_string(),
        "passenger_count".to_string(),
    ];
    let source = ParquetSource::open(
        &files,
        &SourceOptions {
            columns: Some(columns.clone()),
            ..SourceOptions::default()
        },
    )
    .expect("open source with columns");
    let topic = unique_name("producer_columns");
    let file = files[0].display().to_string();
    let run = produce_cli(
        &brokers,
        &topic,
        "1",
        &["--columns", &columns.join(","), &file],
        CLI_LIMIT,
    );
    assert_ok(&run, &file);
    let msgs = read_back(&topic, 10_000, &arrow_rows);
    for m in &msgs {
        let names: Vec<String> = m
            .decode()
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, columns);
    }
    assert_same_as_source(&msgs, &source);
}

/// The broker dies in the middle of a run: the run ends with a delivery
/// error that names the broker and counts what was not acknowledged, within
/// the message timeout plus a margin (no hang, no false success).
#[test]
fn broker_dying_mid_run_is_a_delivery_error_not_a_hang() {
    // A private broker (not the shared one), stopped by this test.
    let state = tempfile::tempdir().expect("tempdir");
    let services = velostream::local::LocalServices::start(
        &[velostream::local::Service::Kafka],
        &crate::harness::local_options(state.path().to_path_buf()),
    )
    .expect("start a private tansu");
    let brokers = services.endpoints().brokers.clone().expect("brokers");
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(600_000)
        .row_groups(50_000)
        .seed(21)
        .write(dir.path());
    let source = Arc::new(open(&files));
    let topic = unique_name("producer_dying");
    create_topic(&brokers, &topic, 2);

    let mut kafka = KafkaArgs::new(brokers.clone());
    // A short message timeout, and a small local queue so that sending is
    // paced by acknowledgements (as with large messages, where the 256 MiB
    // queue holds only a few hundred).
    kafka.options = vec![
        "message.timeout.ms=10000".into(),
        "queue.buffering.max.messages=200".into(),
    ];
    let mut cfg = ProducerConfig::new(kafka, &topic);
    cfg.max_rows_per_message = 50;
    let progress = Arc::new(Progress::hidden());
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (source, progress, stop) = (
            Arc::clone(&source),
            Arc::clone(&progress),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || producer::run(&cfg, source, 2, stop, &progress))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.rows() == 0 && Instant::now() < deadline && !producer.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stopped_at = progress.rows();
    assert!(
        stopped_at > 0,
        "no rows acknowledged before the broker was stopped"
    );
    // SIGKILL the private broker at once (its pid file in the state directory).
    let pid_file = state.path().join("kafka/pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()))
        .trim()
        .parse()
        .expect("pid");
    signal(pid, "-KILL");
    let _ = services.stop();

    // Join with a limit: a hang fails the test instead of blocking it.
    // message.timeout.ms is 10 s and in-flight requests time out after
    // request.timeout.ms (30 s): the error is due soon after that. Without a
    // stop on the first lost message, every further window of 200 queued
    // messages would wait out the timeout again (minutes).
    let killed_at = Instant::now();
    let limit = Duration::from_secs(90);
    while !producer.is_finished() {
        if killed_at.elapsed() > limit {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            panic!("the producer still runs {limit:?} after its broker died");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = killed_at.elapsed();
    let result = producer.join().expect("producer thread");
    let err = match result {
        Ok(s) if s.rows == source.total_rows() => {
            panic!("the run finished before the broker was stopped ({stopped_at} rows acknowledged then); make it longer")
        }
        Ok(s) => panic!("a run whose broker died reported success: {s:?}"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&brokers),
        "error does not name {brokers}: {err}"
    );
    assert!(err.contains("not acknowledged"), "{err}");
    eprintln!("producer dying broker: failed {elapsed:?} after the kill: {err}");
}

/// `--format json-rows --key-column PULocationID`: one message per row, and
/// all rows of one key share a partition.
#[test]
fn json_rows_with_key_column_keeps_equal_keys_in_one_partition() {
    let brokers = kafka_brokers();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Taxi::rows(5_000)
        .row_groups(2_000)
        .seed(22)
        .write(dir.path());
    let topic = unique_name("producer_json_keyed");
    let file = files[0].display().to_string();
    let run = produce_cli(
        &brokers,
        &topic,
        "3",
        &[
            "--format",
            "json-rows",
            "--key-column",
            "PULocationID",
            &file,
        ],
        CLI_LIMIT,
    );
    assert_ok(&run, &file);
    let msgs = read_back(&topic, 5_000, &|_| 1);
    let mut home: HashMap<i64, i32> = HashMap::new();
    for m in &msgs {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("JSON row");
        let k = v["PULocationID"].as_i64().expect("PULocationID");
        let p = *home.entry(k).or_insert(m.partition);
        assert_eq!(
            p, m.partition,
            "key {k} in partitions {p} and {}",
            m.partition
        );
    }
    let used: HashSet<i32> = home.values().copied().collect();
    assert_eq!(used.len(), 3, "keys spread over partitions {used:?} only");
}
