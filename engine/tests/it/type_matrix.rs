//! The Arrow type matrix, value by value, with Parquet files written by real
//! third-party writers (pyarrow, polars, DuckDB; `engine/tests/py/write_types.py`
//! writes them at test time with the writer's default encodings and prints
//! what it wrote in a canonical text form).
//!
//! Each file is read by VeloStream's source, mapped per server generation,
//! encoded to Native and loaded:
//! - modern: the Native bytes are read by chdb-core (ClickHouse 26.9);
//! - 18.16: a table is created on the real server from the legacy mapping,
//!   its columns are read back from `system.columns` (so the encoder writes
//!   exactly what the server has, flattened `col.field` columns included),
//!   and the block is inserted; columns 18.x cannot hold are refused, by
//!   name, at mapping or encoding time;
//! - one run goes through the whole pipeline: `velostream produce` into
//!   Kafka, `velostream consume --create-table` into 18.16.
//!
//! ClickHouse renders each stored value with SQL ([`canon_sql`]) in the
//! same text the writer script produced, and the two are compared.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use velostream::source::{ParquetSource, SourceOptions};
use velostream_codecs::chtype::ChType;
use velostream_codecs::ddl::{quote_ident, quote_string, CreateTable};
use velostream_codecs::mapping::{
    field_columns, table_columns, table_comments, MappingOptions, ServerCaps,
};
use velostream_codecs::native::NativeEncoder;

use crate::harness::{self, http, TestDb};

/// The repository root.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("engine has a parent directory")
        .to_path_buf()
}

/// The project venv's python; fails with the install command when missing.
fn venv_python() -> PathBuf {
    let py = repo_root().join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} not found: run infra/local/install.sh (creates the venv from infra/local/requirements.txt)",
        py.display()
    );
    py
}

fn tsv_unescape(s: &str) -> String {
    velostream::clickhouse::tsv::unescape_field(s)
}

/// POSTs `body` to ClickHouse with `query` in the URL (or the SQL as the
/// body when `query` is `None`); the response text or the server's error.
fn ch_post(url: &str, query: Option<&str>, body: Vec<u8>) -> Result<String, String> {
    let mut target = format!("{}/", url.trim_end_matches('/'));
    if let Some(q) = query {
        target.push_str(&format!("?query={}", http::url_encode(q)));
    }
    let resp = http::post(&target, &body).map_err(|e| format!("ClickHouse {e}"))?;
    if resp.status == 200 {
        Ok(resp.body)
    } else {
        Err(format!("HTTP {}: {}", resp.status, resp.body.trim_end()))
    }
}

fn ch_exec(url: &str, sql: &str) -> Result<String, String> {
    ch_post(url, None, sql.as_bytes().to_vec())
}

fn insert_native(url: &str, table_sql: &str, body: &[u8]) -> Result<(), String> {
    let q = format!("INSERT INTO {table_sql} FORMAT Native");
    ch_post(url, Some(&q), body.to_vec()).map(|_| ())
}

/// Every row group of `source`, in batches of at most `batch_rows` rows.
fn read_all(source: &ParquetSource, batch_rows: usize) -> velostream::Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for rg in source.row_groups() {
        for batch in source.read_row_group(rg, batch_rows)? {
            out.push(batch?);
        }
    }
    Ok(out)
}

/// What a writer wrote: per column, the canonical text of every row.
struct Written {
    writer: String,
    version: String,
    path: PathBuf,
    columns: Vec<WrittenColumn>,
    dictionary_columns: Vec<String>,
}

struct WrittenColumn {
    name: String,
    values: Vec<String>,
    modern_only: Option<String>,
}

impl Written {
    fn column(&self, name: &str) -> &WrittenColumn {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{}: no column {name}", self.writer))
    }
}

/// Runs `write_types.py WRITER` into `dir`.
fn write_with(writer: &str, dir: &Path) -> Written {
    let python = venv_python();
    let script = repo_root().join("engine/tests/py/write_types.py");
    let path = dir.join(format!("{writer}.parquet"));
    let out = Command::new(&python)
        .arg(&script)
        .arg(writer)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {writer} failed ({}): {}\nIs {writer} installed in the venv? run infra/local/install.sh \
         (installs infra/local/requirements.txt)",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("writer JSON");
    let columns = v["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| WrittenColumn {
            name: c["name"].as_str().unwrap().to_string(),
            values: c["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect(),
            modern_only: c["modern_only"].as_str().map(str::to_string),
        })
        .collect();
    Written {
        writer: writer.to_string(),
        version: v["version"].as_str().unwrap_or_default().to_string(),
        path,
        columns,
        dictionary_columns: v["dictionary_columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect(),
    }
}

/// Reads the file with VeloStream's source (all row groups, small batches
/// so that blocks are built from several batches).
fn read_source(path: &Path, columns: Option<Vec<String>>) -> (SchemaRef, Vec<RecordBatch>) {
    let opts = SourceOptions {
        columns,
        ..SourceOptions::default()
    };
    let source = ParquetSource::open(&[path.to_path_buf()], &opts)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let batches = read_all(&source, 3).unwrap_or_else(|e| panic!("reading: {e}"));
    (source.schema(), batches)
}

fn time_digits(dt: &DataType) -> Option<u32> {
    let unit = match dt {
        DataType::Time32(u) | DataType::Time64(u) | DataType::Duration(u) => u,
        DataType::Timestamp(u, _) => u,
        DataType::Dictionary(_, v) => return time_digits(v),
        _ => return None,
    };
    Some(match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    })
}

/// Integer `ticks` of 10^-`digits` s as nanoseconds, in text.
fn as_nanos(ticks: &str, digits: u32) -> String {
    let zeros = "0".repeat(9 - digits as usize);
    format!("if({ticks} = 0, '0', concat(toString({ticks}), '{zeros}'))")
}

/// The child types of an Arrow list, map or struct, for [`canon_sql`].
fn arrow_children(dt: &DataType) -> Vec<DataType> {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            vec![f.data_type().clone()]
        }
        DataType::Map(entries, _) => vec![entries.data_type().clone()],
        DataType::Struct(children) => children.iter().map(|c| c.data_type().clone()).collect(),
        DataType::Dictionary(_, v) => arrow_children(v),
        _ => Vec::new(),
    }
}

/// SQL rendering the value `e` of ClickHouse type `ch` (written from Arrow
/// type `arrow`) in the canonical text of `write_types.py`. `depth` keeps
/// lambda parameter names unique.
fn canon_sql(e: &str, ch: &ChType, arrow: &DataType, depth: usize) -> String {
    let child = |i: usize| {
        arrow_children(arrow)
            .get(i)
            .cloned()
            .unwrap_or(DataType::Null)
    };
    match ch {
        ChType::Nullable(t) => format!(
            "if(isNull({e}), 'NULL', {})",
            canon_sql(&format!("assumeNotNull({e})"), t, arrow, depth)
        ),
        ChType::LowCardinality(t) => canon_sql(&format!("CAST({e} AS {t})"), t, arrow, depth),
        ChType::Int32 | ChType::Int64 if time_digits(arrow).is_some() => {
            as_nanos(e, time_digits(arrow).unwrap())
        }
        ChType::Int8
        | ChType::Int16
        | ChType::Int32
        | ChType::Int64
        | ChType::UInt8
        | ChType::UInt16
        | ChType::UInt32
        | ChType::UInt64 => format!("toString({e})"),
        ChType::Bool => format!("toString(toUInt8({e}))"),
        ChType::Float32 | ChType::Float64 => {
            format!("if(isNaN({e}), 'nan', concat('f', hex(reinterpretAsString(toFloat64({e})))))")
        }
        ChType::String | ChType::FixedString(_) => format!("concat('x', hex({e}))"),
        ChType::Uuid => format!("toString({e})"),
        // Day numbers: 18.16 prints day 0 as 0000-00-00 and cannot print
        // dates after 2105, although it stores them.
        ChType::Date | ChType::Date32 => format!("toString(toInt32({e}))"),
        ChType::DateTime(_) => as_nanos(&format!("toInt64(toUInt32({e}))"), 0),
        ChType::DateTime64(p, _) => {
            let ticks = match p {
                3 => format!("toUnixTimestamp64Milli({e})"),
                6 => format!("toUnixTimestamp64Micro({e})"),
                9 => format!("toUnixTimestamp64Nano({e})"),
                _ => format!("toInt64({e})"),
            };
            as_nanos(&ticks, u32::from(*p))
        }
        ChType::Decimal { .. } => format!(
            r"replaceRegexpOne(replaceRegexpOne(toString({e}), '(\\.[0-9]*[1-9])0+$', '\\1'), '\\.0+$', '')"
        ),
        ChType::Array(t) => {
            let v = format!("e{depth}");
            format!(
                "concat('[', arrayStringConcat(arrayMap({v} -> {}, {e}), ','), ']')",
                canon_sql(&v, t, &child(0), depth + 1)
            )
        }
        ChType::Tuple(elements) => {
            let parts: Vec<String> = elements
                .iter()
                .enumerate()
                .map(|(i, el)| {
                    canon_sql(
                        &format!("tupleElement({e}, {})", i + 1),
                        &el.ty,
                        &child(i),
                        depth + 1,
                    )
                })
                .collect();
            format!("concat('(', {}, ')')", parts.join(", ',', "))
        }
        ChType::Map(k, v) => {
            let kv = arrow_children(&child(0));
            let (kn, vn) = (format!("k{depth}"), format!("v{depth}"));
            format!(
                "concat('{{', arrayStringConcat(arrayMap(({kn}, {vn}) -> concat({}, ':', {}), \
                 mapKeys({e}), mapValues({e})), ','), '}}')",
                canon_sql(&kn, k, kv.first().unwrap_or(&DataType::Null), depth + 1),
                canon_sql(&vn, v, kv.get(1).unwrap_or(&DataType::Null), depth + 1)
            )
        }
    }
}

/// Whether `t` is a (Nullable) Decimal: such top-level columns are read as
/// they are and normalised here, because 18.16's toString() misprints
/// Decimal128 values above 2^64 (its TSV output is right).
fn is_decimal(t: &ChType) -> bool {
    match t {
        ChType::Nullable(inner) => is_decimal(inner),
        t => matches!(t, ChType::Decimal { .. }),
    }
}

/// A decimal as ClickHouse prints it, in the canonical text.
fn normalize_decimal(text: &str) -> String {
    if text == "\\N" {
        return "NULL".into();
    }
    let mut s = text.to_string();
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if s == "-0" || s.is_empty() {
        s = "0".into();
    }
    s
}

/// SQL for a source column stored as the table columns `cols`: one column,
/// or (old servers) one `Array` column per struct field of a list.
fn column_sql(field: &Field, cols: &[(String, ChType)]) -> String {
    if let [(name, ty)] = cols {
        if name == field.name() && is_decimal(ty) {
            return quote_ident(name).unwrap();
        }
        if name == field.name() {
            return canon_sql(&quote_ident(name).unwrap(), ty, field.data_type(), 0);
        }
    }
    let structs = arrow_children(field.data_type());
    let fields = structs.first().map(arrow_children).unwrap_or_default();
    let vars: Vec<String> = (0..cols.len()).map(|i| format!("f{i}")).collect();
    let parts: Vec<String> = cols
        .iter()
        .zip(&vars)
        .enumerate()
        .map(|(i, ((_, ty), v))| {
            let ChType::Array(inner) = ty else {
                panic!("flattened column of type {ty}")
            };
            canon_sql(v, inner, fields.get(i).unwrap_or(&DataType::Null), 1)
        })
        .collect();
    let arrays: Vec<String> = cols.iter().map(|(n, _)| quote_ident(n).unwrap()).collect();
    format!(
        "concat('[', arrayStringConcat(arrayMap(({}) -> concat('(', {}, ')'), {}), ','), ']')",
        vars.join(", "),
        parts.join(", ',', "),
        arrays.join(", ")
    )
}

/// Compares ClickHouse's rendering of every column with what was written.
fn compare(
    written: &Written,
    server: &str,
    fields: &[(Field, Vec<(String, ChType)>)],
    results: Vec<Result<String, String>>,
) {
    let mut failures = Vec::new();
    for ((field, cols), got) in fields.iter().zip(results) {
        let want = &written.column(field.name()).values;
        match got {
            Ok(text) => {
                let decimal = matches!(cols.as_slice(), [(_, t)] if is_decimal(t));
                let got: Vec<String> = text
                    .lines()
                    .map(|l| {
                        if decimal {
                            normalize_decimal(l)
                        } else {
                            tsv_unescape(l)
                        }
                    })
                    .collect();
                if &got != want {
                    failures.push(format!(
                        "{} column {:?} ({} → {}):\n  wrote {want:?}\n  {server} has {got:?}",
                        written.writer,
                        field.name(),
                        field.data_type(),
                        cols.iter()
                            .map(|(n, t)| format!("{n} {t}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            Err(e) => failures.push(format!(
                "{} column {:?}: {server}: {e}",
                written.writer,
                field.name()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} {}: {} of {} columns differ:\n{}",
        written.writer,
        written.version,
        failures.len(),
        fields.len(),
        failures.join("\n")
    );
}

/// Runs `queries` in one chdb process (`engine/tests/py/chdb_query.py`):
/// each query's TSV output or error.
fn chdb(queries: &[String]) -> Vec<Result<String, String>> {
    use std::io::Write;
    use std::process::Stdio;
    let python = venv_python();
    let script = repo_root().join("engine/tests/py/chdb_query.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let input = serde_json::to_vec(queries).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} failed ({}): {}\nIs chdb-core installed? run infra/local/install.sh",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .into_iter()
        .map(|r| match (r.get("ok"), r.get("error")) {
            (Some(ok), _) => Ok(ok.as_str().unwrap_or_default().to_string()),
            (_, Some(err)) => Err(err.as_str().unwrap_or_default().to_string()),
            _ => Err(format!("unexpected chdb result {r}")),
        })
        .collect()
}

/// Modern ClickHouse (chdb-core 26.9): every column of the writer's file
/// maps, encodes and reads back equal, with the DESCRIBEd types equal to
/// the mapping.
fn modern_round_trip(writer: &str) {
    let dir = tempfile::tempdir().unwrap();
    let written = write_with(writer, dir.path());
    let (schema, batches) = read_source(&written.path, None);
    let columns = table_columns(&schema, ServerCaps::MODERN)
        .unwrap_or_else(|e| panic!("{writer}: modern mapping: {e}"));
    let enc = NativeEncoder::new(&schema, &columns, MappingOptions::default())
        .unwrap_or_else(|e| panic!("{writer}: {e}"));
    let mut body = Vec::new();
    enc.encode_batches(&batches, &mut body).unwrap();
    let path = dir.path().join(format!("{writer}.native"));
    std::fs::write(&path, &body).unwrap();
    let file = format!("file({}, Native)", quote_string(path.to_str().unwrap()));
    let fields: Vec<(Field, Vec<(String, ChType)>)> = schema
        .fields()
        .iter()
        .map(|f| {
            (
                f.as_ref().clone(),
                field_columns(f, ServerCaps::MODERN).unwrap(),
            )
        })
        .collect();
    let mut queries = vec![format!("DESCRIBE TABLE {file}")];
    for (f, cols) in &fields {
        queries.push(format!(
            "SELECT {} FROM {file} ORDER BY id",
            column_sql(f, cols)
        ));
    }
    let mut results = chdb(&queries);
    let described = results.remove(0).expect("DESCRIBE");
    let seen: Vec<(String, ChType)> = described
        .lines()
        .map(|l| {
            let mut parts = l.split('\t');
            let name = tsv_unescape(parts.next().unwrap());
            let t = tsv_unescape(parts.next().unwrap());
            (
                name,
                ChType::parse(&t).unwrap_or_else(|e| panic!("{t}: {e}")),
            )
        })
        .collect();
    assert_eq!(seen, columns, "{writer}: chdb sees other column types");
    compare(&written, "chdb 26.9", &fields, results);
}

/// What the legacy mapping does with each column of the file: the columns
/// that load, and for the others the error, checked to name the column.
fn legacy_plan(written: &Written, schema: &Schema) -> Vec<String> {
    let mut load = Vec::new();
    for f in schema.fields() {
        let col = written.column(f.name());
        match (field_columns(f, ServerCaps::LEGACY), &col.modern_only) {
            (Ok(_), None) => load.push(f.name().clone()),
            (Ok(_), Some(why)) => {
                // Values 18.x cannot hold: refused when encoding, by column and row.
                let (s, batches) = read_source(&written.path, Some(vec![f.name().clone()]));
                let enc =
                    NativeEncoder::for_schema(&s, ServerCaps::LEGACY, MappingOptions::default())
                        .unwrap();
                let e = enc
                    .encode_batches(&batches, &mut Vec::new())
                    .expect_err(&format!(
                        "{} column {}: {why}: not refused",
                        written.writer,
                        f.name()
                    ))
                    .to_string();
                assert!(
                    e.contains(&format!("{:?}", f.name())) && e.contains("row"),
                    "{}: refusal must name column {} and the row: {e}",
                    written.writer,
                    f.name()
                );
            }
            (Err(e), Some(_)) => {
                let e = e.to_string();
                assert!(
                    e.contains(&format!("{:?}", f.name()))
                        && e.contains(&f.data_type().to_string())
                        && (e.contains("--transform") || e.contains("create the table")),
                    "{}: refusal must name column {}, its Arrow type and the way out: {e}",
                    written.writer,
                    f.name()
                );
            }
            (Err(e), None) => panic!("{}: column {}: {e}", written.writer, f.name()),
        }
    }
    load
}

/// The columns of `table` on the server: (name, type, comment).
fn server_columns(db: &TestDb, table: &str) -> Vec<(String, ChType, String)> {
    db.query(&format!(
        "SELECT name, type, comment FROM system.columns WHERE database = '{}' AND table = '{table}' FORMAT TSV",
        db.name
    ))
    .lines()
    .map(|l| {
        let p: Vec<String> = l.split('\t').map(tsv_unescape).collect();
        (
            p[0].clone(),
            ChType::parse(&p[1]).unwrap_or_else(|e| panic!("{}: {e}", p[1])),
            p[2].clone(),
        )
    })
    .collect()
}

/// Reads every loaded column back from `table_sql` and compares.
fn compare_table(
    written: &Written,
    url: &str,
    table_sql: &str,
    schema: &Schema,
    server: &[(String, ChType, String)],
) {
    let mut fields = Vec::new();
    let mut results = Vec::new();
    for f in schema.fields() {
        let cols: Vec<(String, ChType)> = server
            .iter()
            .filter(|(n, _, _)| {
                n == f.name() || n.strip_prefix(&format!("{}.", f.name())).is_some()
            })
            .filter(|(n, _, _)| n == f.name() || schema.index_of(n).is_err())
            .map(|(n, t, _)| (n.clone(), t.clone()))
            .collect();
        let sql = format!(
            "SELECT {} FROM {table_sql} ORDER BY id FORMAT TSV",
            column_sql(f, &cols)
        );
        results.push(ch_exec(url, &sql));
        fields.push((f.as_ref().clone(), cols));
    }
    compare(written, "ClickHouse 18.16", &fields, results);
}

/// ClickHouse 18.16: the table is created from the legacy mapping (with the
/// unit comments), its columns as the server reports them drive the encoder,
/// and every loadable column reads back equal.
fn legacy_round_trip(writer: &str) {
    let dir = tempfile::tempdir().unwrap();
    let written = write_with(writer, dir.path());
    let (full, _) = read_source(&written.path, None);
    let load = legacy_plan(&written, &full);
    let (schema, batches) = read_source(&written.path, Some(load));
    let columns = table_columns(&schema, ServerCaps::LEGACY).unwrap();
    let comments = table_comments(&schema);
    let db = TestDb::new();
    let url = harness::clickhouse_url();
    let ddl = CreateTable {
        database: Some(&db.name),
        table: "t",
        columns: &columns,
        order_by: &[],
        if_not_exists: false,
    }
    .to_sql_with_comments(&comments)
    .unwrap();
    ch_exec(&url, &ddl).unwrap_or_else(|e| panic!("{writer}: {e}"));
    let server = server_columns(&db, "t");
    let got: Vec<(String, ChType)> = server
        .iter()
        .map(|(n, t, _)| (n.clone(), t.clone()))
        .collect();
    assert_eq!(got, columns, "{writer}: 18.16 stores other column types");
    for (name, comment) in &comments {
        let stored = server
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|c| c.2.as_str());
        assert_eq!(
            stored,
            Some(comment.as_str()),
            "{writer}: comment of {name}"
        );
    }
    let enc = NativeEncoder::new(&schema, &got, MappingOptions::default())
        .unwrap_or_else(|e| panic!("{writer}: {e}"));
    let mut body = Vec::new();
    enc.encode_batches(&batches, &mut body).unwrap();
    let table_sql = format!("{}.t", quote_ident(&db.name).unwrap());
    insert_native(&url, &table_sql, &body).unwrap_or_else(|e| panic!("{writer}: {e}"));
    compare_table(&written, &url, &table_sql, &schema, &server);
}

#[test]
fn pyarrow_types_round_trip_on_modern_clickhouse() {
    modern_round_trip("pyarrow");
}

#[test]
fn polars_types_round_trip_on_modern_clickhouse() {
    modern_round_trip("polars");
}

#[test]
fn duckdb_types_round_trip_on_modern_clickhouse() {
    modern_round_trip("duckdb");
}

#[test]
fn pyarrow_types_round_trip_on_clickhouse18() {
    legacy_round_trip("pyarrow");
}

#[test]
fn polars_types_round_trip_on_clickhouse18() {
    legacy_round_trip("polars");
}

#[test]
fn duckdb_types_round_trip_on_clickhouse18() {
    legacy_round_trip("duckdb");
}

/// The writers' default encodings are exercised: dictionary pages, and the
/// string types each writer declares (pyarrow Utf8/LargeUtf8/Utf8View,
/// polars' and DuckDB's own choices), as VeloStream's source reads them.
#[test]
fn writer_defaults_are_exercised() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for writer in ["pyarrow", "polars", "duckdb"] {
        let written = write_with(writer, dir.path());
        assert!(
            !written.dictionary_columns.is_empty(),
            "{writer}: no dictionary page in the file"
        );
        let (schema, _) = read_source(&written.path, None);
        for f in schema.fields() {
            seen.push(format!("{writer} {} {}", f.name(), f.data_type()));
        }
    }
    for want in [
        "pyarrow s Utf8",
        "pyarrow ls LargeUtf8",
        "pyarrow sv Utf8View",
        "pyarrow ts_ns_frac Timestamp(ns, \"UTC\")",
        "pyarrow dict_s Dictionary(Int32, Utf8)",
    ] {
        assert!(seen.iter().any(|s| s == want), "{want} not in {seen:#?}");
    }
    assert!(
        seen.iter()
            .any(|s| s.starts_with("polars s ")
                && (s.ends_with("LargeUtf8") || s.ends_with("Utf8View"))),
        "polars strings: {seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.starts_with("polars dt_ns_frac Timestamp(ns")),
        "polars nanoseconds: {seen:#?}"
    );
}

/// The whole pipeline into 18.16: `velostream produce` reads the pyarrow
/// file and sends Arrow IPC to Kafka, `velostream consume --create-table`
/// creates the table from the legacy mapping and inserts; values equal.
#[test]
fn pyarrow_types_through_kafka_into_clickhouse18() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_with("pyarrow", dir.path());
    let (full, _) = read_source(&written.path, None);
    let load = legacy_plan(&written, &full);
    let (schema, _) = read_source(&written.path, Some(load.clone()));
    let brokers = harness::kafka_brokers();
    let url = harness::clickhouse_url();
    let topic = harness::unique_name("types");
    harness::create_topic(&brokers, &topic, 2);
    let bin = env!("CARGO_BIN_EXE_velostream");
    let out = Command::new(bin)
        .args(["produce", "--brokers", &brokers, "--topic", &topic])
        .args(["--columns", &load.join(","), "--max-rows-per-message", "2"])
        .arg(&written.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "produce: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = TestDb::new();
    let table = db.table("t");
    let out = Command::new(bin)
        .args(["consume", "--brokers", &brokers, "--topic", &topic])
        .args(["--group", &harness::unique_name("g")])
        .args([
            "--clickhouse-url",
            &url,
            "--table",
            &table,
            "--create-table",
        ])
        .args(["--exit-when-idle", "3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "consume: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = server_columns(&db, "t");
    let want = table_columns(&schema, ServerCaps::LEGACY).unwrap();
    let got: Vec<(String, ChType)> = server
        .iter()
        .map(|(n, t, _)| (n.clone(), t.clone()))
        .collect();
    assert_eq!(got, want, "the consumer created other column types");
    let comment = server
        .iter()
        .find(|(n, _, _)| n == "t64ns")
        .map(|c| c.2.clone());
    assert_eq!(
        comment.as_deref(),
        Some("Arrow Time64(ns): nanoseconds since midnight")
    );
    let table_sql = format!("{}.t", quote_ident(&db.name).unwrap());
    compare_table(&written, &url, &table_sql, &schema, &server);
}

/// Types with no ClickHouse column are refused at start, naming the
/// column, the Arrow type and the way out; on 18.x also Map and wide
/// decimals (the modern mapping has them).
#[test]
fn unmappable_types_are_refused_with_the_way_out() {
    let cases = [
        (
            Field::new(
                "iv",
                DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
                true,
            ),
            ServerCaps::MODERN,
            "--transform",
        ),
        (
            Field::new("nothing", DataType::Null, true),
            ServerCaps::MODERN,
            "create the table yourself",
        ),
        (
            Field::new(
                "m",
                DataType::Map(
                    Arc::new(Field::new(
                        "entries",
                        DataType::Struct(
                            vec![
                                Field::new("key", DataType::Utf8, false),
                                Field::new("value", DataType::Int32, true),
                            ]
                            .into(),
                        ),
                        false,
                    )),
                    false,
                ),
                true,
            ),
            ServerCaps::LEGACY,
            "map_keys()",
        ),
        (
            Field::new("wide", DataType::Decimal256(76, 20), true),
            ServerCaps::LEGACY,
            "38 digits",
        ),
        (
            Field::new(
                "ist",
                DataType::Timestamp(TimeUnit::Second, Some("+05:30".into())),
                true,
            ),
            ServerCaps::MODERN,
            "create the table yourself",
        ),
    ];
    for (field, caps, way_out) in cases {
        let e = field_columns(&field, caps).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{:?}", field.name()))
                && e.contains(&field.data_type().to_string())
                && e.contains(way_out),
            "{e}"
        );
    }
}
