//! Native blocks from `velostream_codecs::native` read by a modern ClickHouse
//! (chdb-core, in-process ClickHouse 26.x, through the project venv):
//! encoded bytes are written to a file and read with
//! `SELECT ... FROM file('x.native', Native)`, value by value. Covers the
//! modern mapping: DateTime64 with time zones, Bool, Date32, LowCardinality,
//! Array(Nullable(T)), Decimal128/256.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::*;
use arrow_buffer::i256;
use velostream_codecs::chtype::ChType;
use velostream_codecs::ddl::quote_string;
use velostream_codecs::mapping::{table_columns, MappingOptions, ServerCaps};
use velostream_codecs::native::NativeEncoder;

use crate::harness;
use crate::harness::clickhouse::tsv_unescape;
use crate::native_clickhouse::{batch_of, case, common_cases, Case};

/// Runs `queries` in one chdb process; returns each query's TSV output.
fn chdb(queries: &[String]) -> Vec<Result<String, String>> {
    let python = harness::venv_python();
    let script = harness::repo_root().join("engine/tests/py/chdb_query.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {} {}: {e}", python.display(), script.display()));
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

/// Decimal text of an unscaled value given as a decimal integer string.
fn decimal_str(v: &str, scale: usize) -> String {
    let (neg, digits) = match v.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, v),
    };
    let body = if scale == 0 {
        digits.to_string()
    } else if digits.len() > scale {
        format!(
            "{}.{}",
            &digits[..digits.len() - scale],
            &digits[digits.len() - scale..]
        )
    } else {
        format!("0.{}{digits}", "0".repeat(scale - digits.len()))
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

fn modern_cases() -> Vec<Case> {
    let big = i256::from_i128(10)
        .wrapping_pow(59)
        .wrapping_sub(i256::from_i128(1));
    let dec256 = Decimal256Array::from(vec![
        Some(big),
        Some(big.wrapping_neg()),
        Some(i256::from_i128(1)),
        None,
        Some(i256::ZERO),
    ])
    .with_precision_and_scale(60, 5)
    .unwrap();
    let dec256_text: Vec<String> = [
        Some(big),
        Some(big.wrapping_neg()),
        Some(i256::from_i128(1)),
        None,
        Some(i256::ZERO),
    ]
    .iter()
    .map(|v| v.map_or("\\N".to_string(), |v| decimal_str(&v.to_string(), 5)))
    .collect();
    let mut lists = ListBuilder::new(StringDictionaryBuilder::<Int32Type>::new());
    for row in [
        vec![Some("a"), None],
        vec![],
        vec![Some("b"), Some("a")],
        vec![None],
        vec![],
    ] {
        for v in row {
            lists.values().append_option(v);
        }
        lists.append(true);
    }
    let mut cases = vec![
        case(
            "b",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
                Some(false),
            ])),
            true,
            "{c}",
            &["true", "false", "\\N", "true", "false"],
        ),
        case(
            "d32",
            Arc::new(Date32Array::from(vec![
                Some(-25567),
                Some(-1),
                Some(0),
                Some(120_529),
                None,
            ])),
            true,
            "toString({c})",
            &[
                "1900-01-01",
                "1969-12-31",
                "1970-01-01",
                "2299-12-31",
                "\\N",
            ],
        ),
        case(
            "ts_paris",
            Arc::new(
                TimestampMillisecondArray::from(vec![
                    Some(0),
                    Some(1_700_000_000_123),
                    Some(-1),
                    Some(951_782_400_000),
                    None,
                ])
                .with_timezone("Europe/Paris"),
            ),
            true,
            "toString({c})",
            &[
                "1970-01-01 01:00:00.000",
                "2023-11-14 23:13:20.123",
                "1970-01-01 00:59:59.999",
                "2000-02-29 01:00:00.000",
                "\\N",
            ],
        ),
        case(
            "ts_paris_raw",
            Arc::new(
                TimestampMillisecondArray::from(vec![
                    0,
                    1_700_000_000_123,
                    -1,
                    951_782_400_000,
                    i64::from(u32::MAX) * 1000 + 7,
                ])
                .with_timezone("Europe/Paris"),
            ),
            false,
            "toUnixTimestamp64Milli({c})",
            &["0", "1700000000123", "-1", "951782400000", "4294967295007"],
        ),
        case(
            "ts_us",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    0,
                    1,
                    -1_000_000,
                    1_700_000_000_123_456,
                    86_400_000_000,
                ])
                .with_timezone("UTC"),
            ),
            false,
            "concat(toString({c}), ' ', toString(toUnixTimestamp64Micro({c})))",
            &[
                "1970-01-01 00:00:00.000000 0",
                "1970-01-01 00:00:00.000001 1",
                "1969-12-31 23:59:59.000000 -1000000",
                "2023-11-14 22:13:20.123456 1700000000123456",
                "1970-01-02 00:00:00.000000 86400000000",
            ],
        ),
        case(
            "ts_ns",
            Arc::new(TimestampNanosecondArray::from(vec![
                0,
                1,
                1_700_000_000_123_456_789,
                -1,
                5,
            ])),
            false,
            "toUnixTimestamp64Nano({c})",
            &["0", "1", "1700000000123456789", "-1", "5"],
        ),
        case(
            "ts_s",
            Arc::new(
                TimestampSecondArray::from(vec![0, 3600, 1_700_000_000, -86_400, 59])
                    .with_timezone("+05:00"),
            ),
            false,
            "toString({c})",
            &[
                "1970-01-01 05:00:00",
                "1970-01-01 06:00:00",
                "2023-11-15 03:13:20",
                "1969-12-31 05:00:00",
                "1970-01-01 05:00:59",
            ],
        ),
        case("dec256", Arc::new(dec256), true, "{c}", &[]),
        case(
            "lc_arr",
            Arc::new(lists.finish()),
            false,
            "arrayMap(x -> ifNull(x, 'NULL'), {c})",
            &["['a','NULL']", "[]", "['b','a']", "['NULL']", "[]"],
        ),
    ];
    cases
        .iter_mut()
        .find(|c| c.field.name() == "dec256")
        .unwrap()
        .expected = dec256_text;
    cases
}

#[test]
fn chdb_reads_every_modern_type() {
    let mut cases = common_cases();
    cases.extend(modern_cases());
    let batch = batch_of(&cases);
    let columns = table_columns(&batch.schema(), ServerCaps::MODERN).unwrap();
    let ty = |n: &str| columns.iter().find(|(c, _)| c == n).unwrap().1.to_string();
    assert_eq!(ty("b"), "Nullable(Bool)");
    assert_eq!(ty("lc"), "LowCardinality(String)");
    assert_eq!(ty("lcn"), "LowCardinality(Nullable(String))");
    assert_eq!(ty("ts_paris"), "Nullable(DateTime64(3, 'Europe/Paris'))");
    assert_eq!(ty("ts_s"), "DateTime64(0, 'Etc/GMT-5')");
    assert_eq!(ty("d32"), "Nullable(Date32)");
    assert_eq!(ty("lc_arr"), "Array(LowCardinality(Nullable(String)))");
    assert_eq!(ty("dec256"), "Nullable(Decimal(60, 5))");

    let enc = NativeEncoder::new(&batch.schema(), &columns, MappingOptions::default()).unwrap();
    let mut body = Vec::new();
    // Blocks from slices (the empty one adds nothing): sliced offsets and multi-block files.
    enc.encode(&batch.slice(0, 3), &mut body).unwrap();
    enc.encode(&batch.slice(3, 0), &mut body).unwrap();
    enc.encode(&batch.slice(3, 2), &mut body).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all types.native");
    std::fs::write(&path, &body).unwrap();
    let file = format!("file({}, Native)", quote_string(path.to_str().unwrap()));

    let mut queries = vec![format!("DESCRIBE TABLE {file}")];
    for c in &cases {
        let expr = c.expr.replace(
            "{c}",
            &velostream_codecs::ddl::quote_ident(c.field.name()).unwrap(),
        );
        queries.push(format!(
            "SELECT {expr} FROM {file} ORDER BY n SETTINGS output_format_decimal_trailing_zeros = 1"
        ));
    }
    let results = chdb(&queries);

    // chdb sees exactly the types we wrote.
    let described = results[0]
        .as_ref()
        .unwrap_or_else(|e| panic!("DESCRIBE: {e}"));
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
    assert_eq!(seen, columns);

    let mut failures = Vec::new();
    for (c, r) in cases.iter().zip(&results[1..]) {
        match r {
            Ok(text) => {
                let got: Vec<&str> = text.lines().collect();
                if got != c.expected {
                    failures.push(format!(
                        "column {}: expected {:?}\n  got {:?}",
                        c.field.name(),
                        c.expected,
                        got
                    ));
                }
            }
            Err(e) => failures.push(format!("column {}: {e}", c.field.name())),
        }
    }
    assert!(
        failures.is_empty(),
        "value mismatches:\n{}",
        failures.join("\n")
    );
}

/// The legacy mapping (what an 18.16 table gets) is also readable by a
/// modern server: DateTime, UInt8 booleans, Date.
#[test]
fn chdb_reads_legacy_mapping() {
    let cases = crate::native_clickhouse::legacy_cases();
    let mut all = vec![case(
        "n",
        Arc::new(UInt32Array::from(vec![0, 1, 2, 3, 4])),
        false,
        "{c}",
        &["0", "1", "2", "3", "4"],
    )];
    all.extend(cases);
    let batch = batch_of(&all);
    let enc = NativeEncoder::for_schema(
        &batch.schema(),
        ServerCaps::LEGACY,
        MappingOptions::default(),
    )
    .unwrap();
    let mut body = Vec::new();
    enc.encode(&batch, &mut body).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.native");
    std::fs::write(&path, &body).unwrap();
    let file = format!("file({}, Native)", quote_string(path.to_str().unwrap()));
    let queries: Vec<String> = all
        .iter()
        .map(|c| {
            let expr = c.expr.replace(
                "{c}",
                &velostream_codecs::ddl::quote_ident(c.field.name()).unwrap(),
            );
            format!("SELECT {expr} FROM {file} ORDER BY n")
        })
        .collect();
    for (c, r) in all.iter().zip(chdb(&queries)) {
        let text = r.unwrap_or_else(|e| panic!("column {}: {e}", c.field.name()));
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got, c.expected, "column {}", c.field.name());
    }
}

/// Hostile column names survive a Native file read by a modern server.
#[test]
fn chdb_reads_hostile_column_names() {
    let names = crate::native_clickhouse::HOSTILE_NAMES;
    let fields: Vec<arrow_schema::Field> = names
        .iter()
        .map(|n| arrow_schema::Field::new(*n, arrow_schema::DataType::Int32, false))
        .collect();
    let schema = Arc::new(arrow_schema::Schema::new(fields));
    let arrays: Vec<ArrayRef> = (0..names.len())
        .map(|i| Arc::new(Int32Array::from(vec![i as i32, 100 + i as i32])) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    let enc =
        NativeEncoder::for_schema(&schema, ServerCaps::MODERN, MappingOptions::default()).unwrap();
    let mut body = Vec::new();
    enc.encode(&batch, &mut body).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.native");
    std::fs::write(&path, &body).unwrap();
    let file = format!("file({}, Native)", quote_string(path.to_str().unwrap()));
    let mut queries = vec![format!("DESCRIBE {file}")];
    for n in names {
        let q = velostream_codecs::ddl::quote_ident(n).unwrap();
        queries.push(format!("SELECT {q} FROM {file} ORDER BY {q}"));
    }
    let results = chdb(&queries);
    let described = results[0]
        .as_ref()
        .unwrap_or_else(|e| panic!("DESCRIBE: {e}"));
    let got: Vec<String> = described
        .lines()
        .map(|l| tsv_unescape(l.split('\t').next().unwrap()))
        .collect();
    let want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    assert_eq!(got, want);
    for (i, (n, r)) in names.iter().zip(&results[1..]).enumerate() {
        let text = r.as_ref().unwrap_or_else(|e| panic!("column {n:?}: {e}"));
        assert_eq!(text, &format!("{i}\n{}\n", 100 + i), "column {n:?}");
    }
}
