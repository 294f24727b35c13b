//! Hostile identifiers end to end through the binary: column and table
//! names that break naive SQL quoting round-trip exactly (exactly-once),
//! and an empty column name is refused by name before anything is created.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use velostream_codecs::ddl::{quote_ident, quote_string};

use crate::harness::clickhouse::tsv_field;
use crate::harness::data::write_batch;
use crate::harness::exactly_once::exactly_once;
use crate::harness::pipeline::{produce_files, Consume};
use crate::harness::{self, TestDb};

/// Column names that break naive SQL quoting.
const HOSTILE_NAMES: &[&str] = &[
    "select",
    "a`b",
    "c\"d'e",
    "sp ace",
    "new\nline",
    "FROM",
    "ünï©ødé 名前 🚕",
    "back\\slash;--",
    "`); DROP TABLE t; --",
];

/// Values that break naive escaping.
const HOSTILE_VALUES: &[Option<&str>] = &[
    Some("'; DROP TABLE x; --"),
    Some("tab\there\nnewline"),
    Some("back\\slash \\N"),
    None,
    Some(""),
    Some("ünï©ødé 名前 🚕"),
];

#[test]
fn hostile_column_and_table_names_round_trip() {
    let brokers = harness::kafka_brokers();
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let n = HOSTILE_VALUES.len();
    let mut fields = vec![Field::new(HOSTILE_NAMES[0], DataType::Int32, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(Int32Array::from_iter_values(0..n as i32))];
    for (i, name) in HOSTILE_NAMES.iter().enumerate().skip(1) {
        fields.push(Field::new(*name, DataType::Utf8, true));
        // Each column holds the values rotated by its index.
        let values: Vec<Option<String>> = (0..n)
            .map(|r| HOSTILE_VALUES[(r + i) % n].map(|v| format!("{v}#{i}")))
            .collect();
        cols.push(Arc::new(StringArray::from(values)));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("batch");
    let file = dir.path().join("hostile.parquet");
    write_batch(&file, &batch, None);
    let topic = harness::unique_name("rel_hostile");
    let messages = produce_files(&brokers, &topic, &[file], 1, 1_000);

    // --table db.`we"ird ``tbl``; DROP--ü` names the table we"ird `tbl`; DROP--ü.
    let table_name = "we\"ird `tbl`; DROP--ü";
    let table_arg = format!("{}.`we\"ird ``tbl``; DROP--ü`", db.name);
    let parsed = velostream::clickhouse::TableRef::parse(&table_arg).expect("parse --table");
    assert_eq!(parsed.table, table_name);
    let mut consume = Consume::new(&brokers, &db.url, &topic, &table_arg);
    consume.exactly_once = true;
    let mut member = consume.cmd().spawn(&dir.path().join("consume.log"));
    member.expect_success(Duration::from_secs(120));

    // The created table has exactly the hostile names.
    let names = db.query(&format!(
        "SELECT name FROM system.columns WHERE database = {} AND table = {} FORMAT TSV",
        quote_string(&db.name),
        quote_string(table_name)
    ));
    let mut got: Vec<String> = names.lines().filter_map(tsv_field).collect();
    let mut want: Vec<String> = HOSTILE_NAMES.iter().map(|s| s.to_string()).collect();
    want.extend(
        velostream::consumer::exactly_once::COLUMNS
            .iter()
            .map(|(name, _)| name.to_string()),
    );
    got.sort();
    want.sort();
    assert_eq!(got, want, "column names of the created table");

    // Every value comes back unchanged, each message stored once.
    let table_sql = parsed.sql().expect("table sql");
    let quoted: Vec<String> = HOSTILE_NAMES
        .iter()
        .map(|c| quote_ident(c).expect("quote"))
        .collect();
    let text = db.query(&format!(
        "SELECT {} FROM {table_sql} ORDER BY {} FORMAT TSV",
        quoted.join(", "),
        quoted[0]
    ));
    let rows: Vec<Vec<Option<String>>> = text
        .lines()
        .map(|l| l.split('\t').map(tsv_field).collect())
        .collect();
    assert_eq!(rows.len(), n, "rows:\n{text}");
    for (r, row) in rows.iter().enumerate() {
        assert_eq!(row[0].as_deref(), Some(r.to_string().as_str()));
        for i in 1..HOSTILE_NAMES.len() {
            let want = HOSTILE_VALUES[(r + i) % n].map(|v| format!("{v}#{i}"));
            assert_eq!(row[i], want, "row {r}, column {:?}", HOSTILE_NAMES[i]);
        }
    }
    exactly_once(&db.url, &table_sql, &brokers, &topic)
        .messages(messages)
        .assert();
}

#[test]
fn empty_column_name_is_refused_clearly() {
    let brokers = harness::kafka_brokers();
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = Schema::new(vec![
        Field::new("ok", DataType::Int32, false),
        Field::new("", DataType::Int32, false),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![1, 2])),
        Arc::new(Int32Array::from(vec![3, 4])),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema), cols).expect("batch");
    let file = dir.path().join("empty-name.parquet");
    write_batch(&file, &batch, None);
    let topic = harness::unique_name("rel_empty");
    produce_files(&brokers, &topic, &[file], 1, 1_000);
    let table = db.table("empty_name");
    let out = Consume::new(&brokers, &db.url, &topic, &table)
        .cmd()
        .timeout(Duration::from_secs(120))
        .expect_failure();
    let last = out.stderr.lines().last().unwrap_or("");
    eprintln!("hostile names: empty column name: {last}");
    assert!(
        last.starts_with("error:")
            && last.contains("empty_name")
            && last.contains("column 2 ")
            && last.contains("empty name"),
        "the refusal names the problem: {last:?}\n{}",
        out.describe()
    );
    assert!(!db.has_table("empty_name"), "no table was created");
}
