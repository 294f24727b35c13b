//! A table against Arrow batches value for value: every row rendered as a
//! TSV line on both sides (floats as their IEEE bit patterns, timestamps as
//! Unix seconds, dates as day numbers), the sorted lines compared, the first
//! difference named. A lost or duplicated row fails.

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::clickhouse::TestDb;

/// The ClickHouse expression rendering column `f` the way [`cell`] renders
/// its Arrow values.
fn ch_expr(f: &Field) -> String {
    let c = format!("`{}`", f.name());
    match f.data_type() {
        DataType::Float64 => format!("reinterpretAsUInt64(reinterpretAsString({c}))"),
        DataType::Timestamp(..) => format!("toUnixTimestamp({c})"),
        DataType::Date32 => format!("toUInt16({c})"),
        _ => c,
    }
}

/// One value as a TSV cell (see [`ch_expr`]).
fn cell(col: &ArrayRef, i: usize) -> String {
    if col.is_null(i) {
        return "\\N".into();
    }
    match col.data_type() {
        DataType::Float64 => col
            .as_primitive::<Float64Type>()
            .value(i)
            .to_bits()
            .to_string(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let us = col.as_primitive::<TimestampMicrosecondType>().value(i);
            assert_eq!(us % 1_000_000, 0, "test data has whole seconds");
            (us / 1_000_000).to_string()
        }
        DataType::Date32 => col.as_primitive::<Date32Type>().value(i).to_string(),
        DataType::Utf8 => {
            let s = col.as_string::<i32>().value(i);
            assert!(
                !s.contains(['\t', '\n', '\\']),
                "test strings need no TSV escaping: {s:?}"
            );
            s.to_string()
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => arrow_cast::display::array_value_to_string(col, i).expect("int"),
        other => panic!("no TSV rendering for {other} in this test"),
    }
}

/// Every row of `batches` as a TSV line, sorted.
fn local_lines(batches: &[RecordBatch]) -> Vec<String> {
    let mut lines = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let cells: Vec<String> = b.columns().iter().map(|c| cell(c, i)).collect();
            lines.push(cells.join("\t"));
        }
    }
    lines.sort_unstable();
    lines
}

/// Every row of the table (the columns of `schema`) as a TSV line, sorted.
fn table_lines(db: &TestDb, table: &str, schema: &Schema) -> Vec<String> {
    let exprs: Vec<String> = schema.fields().iter().map(|f| ch_expr(f)).collect();
    let text = db.query(&format!(
        "SELECT {} FROM {} FORMAT TSV",
        exprs.join(", "),
        db.table(table)
    ));
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort_unstable();
    lines
}

/// Asserts that the table holds exactly the rows of `batches` (a multiset:
/// a lost or duplicated row fails), naming the first difference.
pub fn assert_table_equals(db: &TestDb, table: &str, batches: &[RecordBatch]) {
    let schema = batches[0].schema();
    let want = local_lines(batches);
    let got = table_lines(db, table, &schema);
    if want != got {
        let first = want
            .iter()
            .zip(&got)
            .position(|(a, b)| a != b)
            .unwrap_or(want.len().min(got.len()));
        panic!(
            "table {table}: {} rows, expected {}; first difference at sorted row {first}:\n  \
             expected {:?}\n  got      {:?}\ncolumns: {:?}",
            got.len(),
            want.len(),
            want.get(first),
            got.get(first),
            schema.fields().iter().map(|f| f.name()).collect::<Vec<_>>()
        );
    }
}
