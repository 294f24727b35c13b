//! Native blocks from `velostream_codecs::native` inserted into a real
//! ClickHouse 18.16 server over HTTP (`INSERT ... FORMAT Native`), tables
//! created with `velostream_codecs::ddl`, values read back and compared one
//! by one. 18.16 converts nothing on Native input, so every test also proves
//! that the encoder emits exactly the table's column types.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::*;
use arrow_schema::{DataType, Field, Schema};
use velostream_codecs::chtype::ChType;
use velostream_codecs::ddl::{qualified_table, quote_ident, CreateTable};
use velostream_codecs::mapping::{table_columns, MappingOptions, ServerCaps};
use velostream_codecs::native::NativeEncoder;

use crate::harness::clickhouse::{ch_exec, insert_native, tsv_unescape};
use crate::harness::{self, ch_query, TestDb};

/// Uppercase hex, as ClickHouse's `hex()` prints it.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// Decimal text of an unscaled value, as ClickHouse prints `Decimal(_, scale)`.
pub(crate) fn decimal_text(v: i128, scale: u32) -> String {
    let neg = v < 0;
    let digits = v.unsigned_abs().to_string();
    let s = scale as usize;
    let body = if s == 0 {
        digits
    } else if digits.len() > s {
        format!(
            "{}.{}",
            &digits[..digits.len() - s],
            &digits[digits.len() - s..]
        )
    } else {
        format!("0.{}{digits}", "0".repeat(s - digits.len()))
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

/// A column of the all-types fixture: Arrow field and array, a SQL
/// expression over the column (`{c}` is replaced by the quoted name) and the
/// expected TSV text per row.
pub(crate) struct Case {
    pub field: Field,
    pub array: ArrayRef,
    pub expr: &'static str,
    pub expected: Vec<String>,
}

pub(crate) fn case(
    name: &str,
    array: ArrayRef,
    nullable: bool,
    expr: &'static str,
    expected: &[&str],
) -> Case {
    Case {
        field: Field::new(name, array.data_type().clone(), nullable),
        array,
        expr,
        expected: expected.iter().map(|s| s.to_string()).collect(),
    }
}

/// Five rows of every type 18.16 and modern servers share, with nulls,
/// empty strings, extremes, NaN/inf, unicode and nested arrays. Row `n`
/// carries the row number for ordering.
pub(crate) fn common_cases() -> Vec<Case> {
    let strs = ["", "héllo ✓ 名前", "", "tab\tnl\nq'\"\\", "x"];
    let hexes: Vec<String> = strs.iter().map(|s| hex(s.as_bytes())).collect();
    let h = |i: usize| hexes[i].as_str();
    let mut lc = StringDictionaryBuilder::<Int32Type>::new();
    for v in ["red", "green", "red", "", "blue"] {
        lc.append_value(v);
    }
    let mut lcn = StringDictionaryBuilder::<Int32Type>::new();
    for v in [Some("a"), None, Some("b"), Some("a"), None] {
        lcn.append_option(v);
    }
    let mut arr = ListBuilder::new(arrow_array::builder::Int32Builder::new());
    for row in [
        vec![Some(1), None, Some(3)],
        vec![],
        vec![None],
        vec![Some(i32::MIN), Some(i32::MAX)],
        vec![],
    ] {
        arr.append_value(row);
    }
    let arr = arr.finish();
    let mut arrs = ListBuilder::new(arrow_array::builder::StringBuilder::new())
        .with_field(Field::new("item", DataType::Utf8, false));
    for row in [vec!["a", "b"], vec![], vec![""], vec!["ü"], vec!["x"]] {
        arrs.append_value(row.into_iter().map(Some));
    }
    let arrs = arrs.finish();
    let mut arrns = ListBuilder::new(arrow_array::builder::StringBuilder::new());
    for row in [
        vec![Some("a"), None],
        vec![],
        vec![None],
        vec![Some("ü"), Some("")],
        vec![Some("")],
    ] {
        arrns.append_value(row);
    }
    let arrns = arrns.finish();
    let mut arrd = ListBuilder::new(
        arrow_array::builder::Decimal128Builder::new().with_data_type(DataType::Decimal128(12, 3)),
    )
    .with_field(Field::new("item", DataType::Decimal128(12, 3), false));
    for row in [
        vec![1_500i128, -2],
        vec![],
        vec![0],
        vec![999_999_999_999],
        vec![],
    ] {
        arrd.append_value(row.into_iter().map(Some));
    }
    let arrd = arrd.finish();
    let mut arr2 = ListBuilder::new(
        ListBuilder::new(arrow_array::builder::Int64Builder::new()).with_field(Field::new(
            "item",
            DataType::Int64,
            false,
        )),
    )
    .with_field(Field::new(
        "item",
        DataType::List(Arc::new(Field::new("item", DataType::Int64, false))),
        false,
    ));
    for row in [
        vec![vec![1i64], vec![2, 3]],
        vec![],
        vec![vec![]],
        vec![vec![i64::MIN]],
        vec![vec![], vec![7]],
    ] {
        for inner in row {
            arr2.values().append_value(inner.into_iter().map(Some));
        }
        arr2.append(true);
    }
    let arr2 = arr2.finish();
    let f32s = Float32Array::from(vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 1.5]);
    let f64s = Float64Array::from(vec![
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e300,
        -2.25,
    ]);
    vec![
        case(
            "n",
            Arc::new(UInt32Array::from(vec![0, 1, 2, 3, 4])),
            false,
            "{c}",
            &["0", "1", "2", "3", "4"],
        ),
        case(
            "i8",
            Arc::new(Int8Array::from(vec![i8::MIN, -1, 0, 1, i8::MAX])),
            false,
            "{c}",
            &["-128", "-1", "0", "1", "127"],
        ),
        case(
            "i16",
            Arc::new(Int16Array::from(vec![i16::MIN, -1, 0, 1, i16::MAX])),
            false,
            "{c}",
            &["-32768", "-1", "0", "1", "32767"],
        ),
        case(
            "i32",
            Arc::new(Int32Array::from(vec![
                Some(i32::MIN),
                None,
                Some(0),
                Some(1),
                Some(i32::MAX),
            ])),
            true,
            "{c}",
            &["-2147483648", "\\N", "0", "1", "2147483647"],
        ),
        case(
            "i64",
            Arc::new(Int64Array::from(vec![i64::MIN, -1, 0, 1, i64::MAX])),
            false,
            "{c}",
            &[
                "-9223372036854775808",
                "-1",
                "0",
                "1",
                "9223372036854775807",
            ],
        ),
        case(
            "u8",
            Arc::new(UInt8Array::from(vec![0, 1, 2, 254, 255])),
            false,
            "{c}",
            &["0", "1", "2", "254", "255"],
        ),
        case(
            "u16",
            Arc::new(UInt16Array::from(vec![0, 1, 2, 65534, 65535])),
            false,
            "{c}",
            &["0", "1", "2", "65534", "65535"],
        ),
        case(
            "u32",
            Arc::new(UInt32Array::from(vec![0, 1, 2, u32::MAX - 1, u32::MAX])),
            false,
            "{c}",
            &["0", "1", "2", "4294967294", "4294967295"],
        ),
        case(
            "u64",
            Arc::new(UInt64Array::from(vec![
                Some(0),
                Some(1),
                None,
                Some(u64::MAX - 1),
                Some(u64::MAX),
            ])),
            true,
            "{c}",
            &[
                "0",
                "1",
                "\\N",
                "18446744073709551614",
                "18446744073709551615",
            ],
        ),
        case(
            "f32",
            Arc::new(f32s),
            false,
            "{c}",
            &["nan", "inf", "-inf", "-0", "1.5"],
        ),
        case(
            "f64",
            Arc::new(f64s),
            false,
            "{c}",
            &["nan", "inf", "-inf", "1e300", "-2.25"],
        ),
        case(
            "s",
            Arc::new(StringArray::from(vec![
                Some(strs[0]),
                Some(strs[1]),
                None,
                Some(strs[3]),
                Some(strs[4]),
            ])),
            true,
            "hex({c})",
            &[h(0), h(1), "\\N", h(3), h(4)],
        ),
        case(
            "ls",
            Arc::new(LargeStringArray::from(strs.to_vec())),
            false,
            "hex({c})",
            &[h(0), h(1), h(2), h(3), h(4)],
        ),
        case(
            "sv",
            Arc::new(StringViewArray::from(strs.to_vec())),
            false,
            "hex({c})",
            &[h(0), h(1), h(2), h(3), h(4)],
        ),
        case(
            "bin",
            Arc::new(BinaryArray::from(vec![
                &b"\x00\xff\n\t"[..],
                b"",
                b"\x80",
                b"abc",
                b"\\",
            ])),
            false,
            "hex({c})",
            &["00FF0A09", "", "80", "616263", "5C"],
        ),
        case(
            "fsb",
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    vec![
                        Some(*b"abc"),
                        None,
                        Some([0, 0, 0]),
                        Some([255, 1, 2]),
                        Some(*b"xyz"),
                    ]
                    .into_iter(),
                    3,
                )
                .unwrap(),
            ),
            true,
            "hex({c})",
            &["616263", "\\N", "000000", "FF0102", "78797A"],
        ),
        case(
            "lc",
            Arc::new(lc.finish()),
            false,
            "hex({c})",
            &["726564", "677265656E", "726564", "", "626C7565"],
        ),
        case(
            "lcn",
            Arc::new(lcn.finish()),
            true,
            "hex({c})",
            &["61", "\\N", "62", "61", "\\N"],
        ),
        case(
            "arr",
            Arc::new(arr),
            false,
            "{c}",
            &[
                "[1,NULL,3]",
                "[]",
                "[NULL]",
                "[-2147483648,2147483647]",
                "[]",
            ],
        ),
        case(
            "arrs",
            Arc::new(arrs),
            false,
            "arrayMap(x -> hex(x), {c})",
            &["['61','62']", "[]", "['']", "['C3BC']", "['78']"],
        ),
        case(
            "arrns",
            Arc::new(arrns),
            false,
            "arrayMap(x -> ifNull(hex(x), 'NULL'), {c})",
            &["['61','NULL']", "[]", "['NULL']", "['C3BC','']", "['']"],
        ),
        case(
            "arrd",
            Arc::new(arrd),
            false,
            "{c}",
            &["[1.500,-0.002]", "[]", "[0.000]", "[999999999.999]", "[]"],
        ),
        case(
            "arr2",
            Arc::new(arr2),
            false,
            "{c}",
            &[
                "[[1],[2,3]]",
                "[]",
                "[[]]",
                "[[-9223372036854775808]]",
                "[[],[7]]",
            ],
        ),
        case(
            "dec",
            Arc::new(
                Decimal128Array::from(vec![
                    Some(999_999_999_999_999_999),
                    Some(-1),
                    None,
                    Some(0),
                    Some(12345),
                ])
                .with_precision_and_scale(18, 4)
                .unwrap(),
            ),
            true,
            "{c}",
            &[
                &decimal_text(999_999_999_999_999_999, 4),
                &decimal_text(-1, 4),
                "\\N",
                &decimal_text(0, 4),
                &decimal_text(12345, 4),
            ],
        ),
        case(
            "dec38",
            Arc::new(
                Decimal128Array::from(vec![10i128.pow(38) - 1, -(10i128.pow(38) - 1), 1, 0, -5])
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
            ),
            false,
            "{c}",
            &[
                &decimal_text(10i128.pow(38) - 1, 10),
                &decimal_text(-(10i128.pow(38) - 1), 10),
                &decimal_text(1, 10),
                &decimal_text(0, 10),
                &decimal_text(-5, 10),
            ],
        ),
        case(
            "dec9",
            Arc::new(
                Decimal32Array::from(vec![999_999_999, -999_999_999, 1, 0, 250])
                    .with_precision_and_scale(9, 2)
                    .unwrap(),
            ),
            false,
            "{c}",
            &[
                &decimal_text(999_999_999, 2),
                &decimal_text(-999_999_999, 2),
                &decimal_text(1, 2),
                &decimal_text(0, 2),
                &decimal_text(250, 2),
            ],
        ),
    ]
}

/// Types that differ between legacy and modern servers, with legacy-range
/// values: Date32 → Date, second timestamps → DateTime, booleans.
pub(crate) fn legacy_cases() -> Vec<Case> {
    let utc: Option<Arc<str>> = Some("UTC".into());
    vec![
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
            &["1", "0", "\\N", "1", "0"],
        ),
        case(
            "d",
            Arc::new(Date32Array::from(vec![
                Some(0),
                Some(1),
                Some(19000),
                Some(65535),
                None,
            ])),
            true,
            "toUInt16({c})",
            &["0", "1", "19000", "65535", "\\N"],
        ),
        // 18.16 prints day 0 as 0000-00-00 and wraps after 2105; the raw
        // values above are exact, the text is checked in its display range.
        case(
            "d_text",
            Arc::new(Date32Array::from(vec![1, 365, 11016, 19000, 49000])),
            false,
            "toString({c})",
            &[
                "1970-01-02",
                "1971-01-01",
                "2000-02-29",
                "2022-01-08",
                "2104-02-28",
            ],
        ),
        case(
            "ts",
            Arc::new(
                TimestampSecondArray::from(vec![
                    Some(0),
                    Some(1),
                    Some(1_700_000_000),
                    Some(u32::MAX as i64),
                    None,
                ])
                .with_timezone_opt(utc.clone()),
            ),
            true,
            "toUInt32({c})",
            &["0", "1", "1700000000", "4294967295", "\\N"],
        ),
        case(
            "ts_text",
            Arc::new(
                TimestampSecondArray::from(vec![1, 59, 1_700_000_000, 951_782_400, 4_102_444_799])
                    .with_timezone_opt(utc.clone()),
            ),
            false,
            "toString({c})",
            &[
                "1970-01-01 00:00:01",
                "1970-01-01 00:00:59",
                "2023-11-14 22:13:20",
                "2000-02-29 00:00:00",
                "2099-12-31 23:59:59",
            ],
        ),
        case(
            "ts_ms",
            Arc::new(
                TimestampMillisecondArray::from(vec![
                    0,
                    1000,
                    1_700_000_000_000,
                    5_000,
                    86_400_000,
                ])
                .with_timezone_opt(utc),
            ),
            false,
            "toUInt32({c})",
            &["0", "1", "1700000000", "5", "86400"],
        ),
    ]
}

pub(crate) fn batch_of(cases: &[Case]) -> RecordBatch {
    let schema = Arc::new(Schema::new(
        cases.iter().map(|c| c.field.clone()).collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(schema, cases.iter().map(|c| c.array.clone()).collect()).unwrap()
}

/// `SELECT expr FROM table ORDER BY n` as one string per row.
fn column_values(url: &str, table_sql: &str, expr: &str) -> Vec<String> {
    let out = ch_query(
        url,
        &format!("SELECT {expr} FROM {table_sql} ORDER BY `n` FORMAT TSV"),
    );
    out.lines().map(str::to_string).collect()
}

fn compare_cases(url: &str, table_sql: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let expr = c.expr.replace("{c}", &quote_ident(c.field.name()).unwrap());
        let got = column_values(url, table_sql, &expr);
        if got != c.expected {
            failures.push(format!(
                "column {}: {expr}\n  expected {:?}\n  got      {:?}",
                c.field.name(),
                c.expected,
                got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "value mismatches:\n{}",
        failures.join("\n")
    );
}

fn server_columns(url: &str, db: &str, table: &str) -> Vec<(String, ChType)> {
    let out = ch_query(
        url,
        &format!(
            "SELECT name, type FROM system.columns WHERE database = '{db}' AND table = '{table}' FORMAT TSV"
        ),
    );
    out.lines()
        .map(|l| {
            let (n, t) = l.split_once('\t').unwrap();
            let (n, t) = (tsv_unescape(n), tsv_unescape(t));
            let ty = ChType::parse(&t).unwrap_or_else(|e| panic!("server type {t:?}: {e}"));
            (n, ty)
        })
        .collect()
}

const LC_SETTING: (&str, &str) = ("allow_experimental_low_cardinality_type", "1");

#[test]
fn clickhouse18_all_types_round_trip() {
    let url = harness::clickhouse_url();
    let db = TestDb::new();
    let mut cases = common_cases();
    cases.extend(legacy_cases());
    let batch = batch_of(&cases);
    let caps = ServerCaps::LEGACY;
    let mut columns = table_columns(&batch.schema(), caps).unwrap();
    // Legacy caps map dictionaries to String; these two are LowCardinality
    // on purpose (allowed here through the experimental setting).
    for (name, ty) in columns.iter_mut() {
        match name.as_str() {
            "lc" => *ty = ChType::parse("LowCardinality(String)").unwrap(),
            "lcn" => *ty = ChType::parse("LowCardinality(Nullable(String))").unwrap(),
            _ => {}
        }
    }
    let ddl = CreateTable {
        database: Some(&db.name),
        table: "all_types",
        columns: &columns,
        order_by: &["n".to_string()],
        if_not_exists: false,
    }
    .to_sql()
    .unwrap();
    ch_exec(&url, &ddl, &[LC_SETTING]).unwrap();
    // The server reports exactly the types we generated.
    assert_eq!(server_columns(&url, &db.name, "all_types"), columns);

    let enc = NativeEncoder::new(&batch.schema(), &columns, MappingOptions::default()).unwrap();
    // Two blocks from slices in one body: offsets of sliced arrays, and
    // several blocks per request.
    let mut body = Vec::new();
    enc.encode(&batch.slice(0, 2), &mut body).unwrap();
    enc.encode(&batch.slice(2, 0), &mut body).unwrap();
    enc.encode(&batch.slice(2, 3), &mut body).unwrap();
    let table = qualified_table(Some(&db.name), "all_types").unwrap();
    insert_native(&url, &table, &body).unwrap();
    assert_eq!(
        ch_query(&url, &format!("SELECT count() FROM {table}")).trim(),
        "5"
    );
    compare_cases(&url, &table, &cases);
    // A second insert of the whole batch doubles every row.
    let mut body = Vec::new();
    enc.encode(&batch, &mut body).unwrap();
    insert_native(&url, &table, &body).unwrap();
    assert_eq!(
        ch_query(
            &url,
            &format!("SELECT count(), uniqExact(`n`) FROM {table}")
        )
        .trim(),
        "10\t5"
    );
}

#[test]
fn clickhouse18_low_cardinality_inside_arrays() {
    let url = harness::clickhouse_url();
    let db = TestDb::new();
    let mut b = ListBuilder::new(StringDictionaryBuilder::<Int32Type>::new());
    for row in [
        vec![Some("a"), Some("b")],
        vec![],
        vec![None, Some("a")],
        vec![],
        vec![Some("c")],
    ] {
        for v in row {
            b.values().append_option(v);
        }
        b.append(true);
    }
    let mut all_empty = ListBuilder::new(StringDictionaryBuilder::<Int32Type>::new());
    for _ in 0..5 {
        all_empty.append(true);
    }
    let cases = vec![
        case(
            "n",
            Arc::new(UInt32Array::from(vec![0, 1, 2, 3, 4])),
            false,
            "{c}",
            &["0", "1", "2", "3", "4"],
        ),
        case(
            "a",
            Arc::new(b.finish()),
            false,
            "arrayMap(x -> ifNull(x, 'NULL'), {c})",
            &["['a','b']", "[]", "['NULL','a']", "[]", "['c']"],
        ),
        case(
            "e",
            Arc::new(all_empty.finish()),
            false,
            "{c}",
            &["[]", "[]", "[]", "[]", "[]"],
        ),
    ];
    let batch = batch_of(&cases);
    let columns = table_columns(&batch.schema(), ServerCaps::MODERN).unwrap();
    assert_eq!(
        columns[1].1.to_string(),
        "Array(LowCardinality(Nullable(String)))"
    );
    let ddl = CreateTable {
        database: Some(&db.name),
        table: "lc_arrays",
        columns: &columns,
        order_by: &[],
        if_not_exists: false,
    }
    .to_sql()
    .unwrap();
    ch_exec(&url, &ddl, &[LC_SETTING]).unwrap();
    let enc = NativeEncoder::new(&batch.schema(), &columns, MappingOptions::default()).unwrap();
    let mut body = Vec::new();
    enc.encode(&batch, &mut body).unwrap();
    let table = qualified_table(Some(&db.name), "lc_arrays").unwrap();
    insert_native(&url, &table, &body).unwrap();
    compare_cases(&url, &table, &cases);
}

/// A table written by hand with wider/other types than the Arrow schema:
/// the encoder must convert to exactly these types (18.16 would store
/// garbage otherwise).
#[test]
fn clickhouse18_converts_to_existing_table_types() {
    let url = harness::clickhouse_url();
    let db = TestDb::new();
    let table = qualified_table(Some(&db.name), "conv").unwrap();
    ch_exec(
        &url,
        &format!(
            "CREATE TABLE {table} (n UInt32, a UInt64, b Int64, c Float64, d Nullable(Int64), e DateTime('UTC'), \
             f LowCardinality(String), g String, h Date, i Decimal(38, 6), j Array(Nullable(UInt64)), \
             k FixedString(5), m UInt8, o Nullable(String), p UInt32, q DateTime) ENGINE = MergeTree ORDER BY n"
        ),
        &[LC_SETTING],
    )
    .unwrap();
    let columns = server_columns(&url, &db.name, "conv");
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    for v in ["x", "y", "x", "z", "y"] {
        dict.append_value(v);
    }
    let mut list = ListBuilder::new(arrow_array::builder::UInt8Builder::new())
        .with_field(Field::new("item", DataType::UInt8, false));
    for row in [vec![1u8, 255], vec![], vec![0], vec![7, 8, 9], vec![]] {
        list.append_value(row.into_iter().map(Some));
    }
    let cases = vec![
        case(
            "n",
            Arc::new(UInt32Array::from(vec![0, 1, 2, 3, 4])),
            false,
            "{c}",
            &["0", "1", "2", "3", "4"],
        ),
        case(
            "a",
            Arc::new(UInt32Array::from(vec![0, 1, u32::MAX, 7, 8])),
            false,
            "{c}",
            &["0", "1", "4294967295", "7", "8"],
        ),
        case(
            "b",
            Arc::new(Int8Array::from(vec![-128, -1, 0, 1, 127])),
            false,
            "{c}",
            &["-128", "-1", "0", "1", "127"],
        ),
        case(
            "c",
            Arc::new(Float32Array::from(vec![
                1.5,
                -0.25,
                f32::INFINITY,
                0.0,
                3.0,
            ])),
            false,
            "{c}",
            &["1.5", "-0.25", "inf", "0", "3"],
        ),
        case(
            "d",
            Arc::new(Int32Array::from(vec![i32::MIN, 2, 3, 4, i32::MAX])),
            false,
            "{c}",
            &["-2147483648", "2", "3", "4", "2147483647"],
        ),
        case(
            "e",
            Arc::new(
                TimestampMillisecondArray::from(vec![
                    0,
                    1_000,
                    1_700_000_000_000,
                    60_000,
                    3_600_000,
                ])
                .with_timezone("UTC"),
            ),
            false,
            "toUInt32({c})",
            &["0", "1", "1700000000", "60", "3600"],
        ),
        case(
            "f",
            Arc::new(StringArray::from(vec!["p", "q", "p", "", "ü"])),
            false,
            "{c}",
            &["p", "q", "p", "", "ü"],
        ),
        case(
            "g",
            Arc::new(dict.finish()),
            false,
            "{c}",
            &["x", "y", "x", "z", "y"],
        ),
        case(
            "h",
            Arc::new(Date32Array::from(vec![0, 1, 19000, 20000, 65535])),
            false,
            "toUInt16({c})",
            &["0", "1", "19000", "20000", "65535"],
        ),
        case(
            "i",
            Arc::new(
                Decimal128Array::from(vec![12345, -1, 0, 9_999_999_999, 100])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            false,
            "{c}",
            &[
                &decimal_text(123_450_000, 6),
                &decimal_text(-10_000, 6),
                &decimal_text(0, 6),
                &decimal_text(99_999_999_990_000, 6),
                &decimal_text(1_000_000, 6),
            ],
        ),
        case(
            "j",
            Arc::new(list.finish()),
            false,
            "{c}",
            &["[1,255]", "[]", "[0]", "[7,8,9]", "[]"],
        ),
        case(
            "k",
            Arc::new(StringArray::from(vec!["ab", "", "abcde", "ü", "12345"])),
            false,
            "hex({c})",
            &[
                "6162000000",
                "0000000000",
                "6162636465",
                "C3BC000000",
                "3132333435",
            ],
        ),
        case(
            "m",
            Arc::new(BooleanArray::from(vec![true, false, true, true, false])),
            false,
            "{c}",
            &["1", "0", "1", "1", "0"],
        ),
        case(
            "o",
            Arc::new(BinaryArray::from(vec![&b"a"[..], b"b", b"c", b"d", b"e"])),
            false,
            "{c}",
            &["a", "b", "c", "d", "e"],
        ),
        case(
            "p",
            Arc::new(Int64Array::from(vec![0, 1, u32::MAX as i64, 5, 6])),
            false,
            "{c}",
            &["0", "1", "4294967295", "5", "6"],
        ),
        // Sub-seconds truncated (floor) because the options allow it.
        case(
            "q",
            Arc::new(TimestampMicrosecondArray::from(vec![
                999_999,
                1_000_001,
                1_700_000_000_500_000,
                0,
                2_000_000,
            ])),
            false,
            "toUInt32({c})",
            &["0", "1", "1700000000", "0", "2"],
        ),
    ];
    let batch = batch_of(&cases);
    // Without truncation the sub-second column is refused, naming column and row.
    let strict = NativeEncoder::new(&batch.schema(), &columns, MappingOptions::default()).unwrap();
    let e = strict
        .encode(&batch, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"q\"") && e.contains("row 0") && e.contains("sub-second"),
        "{e}"
    );
    let enc = NativeEncoder::new(
        &batch.schema(),
        &columns,
        MappingOptions {
            allow_truncation: true,
        },
    )
    .unwrap();
    let mut body = Vec::new();
    enc.encode(&batch, &mut body).unwrap();
    insert_native(&url, &table, &body).unwrap();
    compare_cases(&url, &table, &cases);
}

/// Column names that must survive DDL, Native blocks and queries unchanged.
pub(crate) const HOSTILE_NAMES: [&str; 16] = [
    "n",
    "`",
    "a`b",
    "it's",
    "\"dq\"",
    "new\nline",
    "tab\tcol",
    "back\\slash",
    "with space",
    "SELECT",
    "FROM",
    "名前 ü",
    "emoji 🦀",
    "semi;colon--",
    "bell\u{7}",
    "`; DROP TABLE x; --",
];

/// Hostile column and table names through DDL and Native inserts.
#[test]
fn clickhouse18_hostile_identifiers_round_trip() {
    let url = harness::clickhouse_url();
    let db = TestDb::new();
    let names = HOSTILE_NAMES;
    let fields: Vec<Field> = names
        .iter()
        .map(|n| Field::new(*n, DataType::Int32, false))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let arrays: Vec<ArrayRef> = (0..names.len())
        .map(|i| Arc::new(Int32Array::from(vec![i as i32, 100 + i as i32])) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    let columns = table_columns(&schema, ServerCaps::LEGACY).unwrap();
    let table_name = "tbl `x` 'y'\n";
    let ddl = CreateTable {
        database: Some(&db.name),
        table: table_name,
        columns: &columns,
        order_by: &["n".to_string(), "a`b".to_string()],
        if_not_exists: true,
    }
    .to_sql()
    .unwrap();
    ch_query(&url, &ddl);
    let enc = NativeEncoder::new(&schema, &columns, MappingOptions::default()).unwrap();
    let mut body = Vec::new();
    enc.encode(&batch, &mut body).unwrap();
    let table = qualified_table(Some(&db.name), table_name).unwrap();
    insert_native(&url, &table, &body).unwrap();
    // The server holds exactly these names (compared as hex: no escaping games).
    let got = ch_query(
        &url,
        &format!(
            "SELECT hex(name) FROM system.columns WHERE database = '{}' AND table = unhex('{}') FORMAT TSV",
            db.name,
            hex(table_name.as_bytes())
        ),
    );
    let mut got: Vec<&str> = got.lines().collect();
    let mut want: Vec<String> = names.iter().map(|n| hex(n.as_bytes())).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    for (i, n) in names.iter().enumerate() {
        let v = ch_query(
            &url,
            &format!(
                "SELECT {} FROM {table} ORDER BY `n` FORMAT TSV",
                quote_ident(n).unwrap()
            ),
        );
        assert_eq!(v, format!("{i}\n{}\n", 100 + i), "column {n:?}");
    }
}

/// An empty batch encodes to no bytes, and that empty body is a valid
/// (empty) insert.
#[test]
fn clickhouse18_empty_batch_is_accepted() {
    let url = harness::clickhouse_url();
    let db = TestDb::new();
    let cases = common_cases();
    let batch = batch_of(&cases).slice(0, 0);
    let columns = table_columns(&batch.schema(), ServerCaps::LEGACY).unwrap();
    let ddl = CreateTable {
        database: Some(&db.name),
        table: "empty",
        columns: &columns,
        order_by: &[],
        if_not_exists: false,
    }
    .to_sql()
    .unwrap();
    ch_query(&url, &ddl);
    let enc = NativeEncoder::new(&batch.schema(), &columns, MappingOptions::default()).unwrap();
    let mut body = Vec::new();
    enc.encode(&batch, &mut body).unwrap();
    assert!(body.is_empty());
    let table = qualified_table(Some(&db.name), "empty").unwrap();
    insert_native(&url, &table, &body).unwrap();
    assert_eq!(
        ch_query(&url, &format!("SELECT count() FROM {table}")).trim(),
        "0"
    );
}
