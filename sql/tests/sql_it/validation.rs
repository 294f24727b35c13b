//! Start-up errors: syntax positions, rejected statements, unknown names, no file access.

use std::io::Write;
use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use velostream_sql::{validate_single_select, Error, Position, Transform};

use crate::taxi::taxi_schema;

fn pos(line: u64, column: u64) -> Option<Position> {
    Some(Position { line, column })
}

fn plan(sql: &str) -> Error {
    Transform::from_sql(sql, taxi_schema()).expect_err(sql)
}

#[test]
fn syntax_error_reports_line_and_column() {
    let sql = "SELECT fare_amount,\n       tip_amount\nFROM input\nWHERE fare_amount >= = 1";
    let err = plan(sql);
    assert!(matches!(err, Error::Syntax { .. }), "{err:?}");
    assert_eq!(err.position(), pos(4, 22), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("<inline sql>:4:22: SQL syntax error"),
        "{text}"
    );
    assert!(text.contains("found: ="), "{text}");
    assert!(
        !text.contains("at Line"),
        "location is not repeated: {text}"
    );

    let err = validate_single_select("SELECT 'unterminated FROM input").unwrap_err();
    assert!(matches!(err, Error::Syntax { .. }), "{err:?}");
    assert_eq!(err.position(), pos(1, 8), "{err}");
}

#[test]
fn errors_from_a_file_name_the_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.sql");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(
        f,
        "-- a comment line\nSELECT *\nFROM input\nWHERE fare_amount >"
    )
    .unwrap();
    drop(f);
    let err = Transform::from_file(&path, taxi_schema()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:4:20: SQL syntax error", path.display())),
        "{text}"
    );

    let missing = dir.path().join("missing.sql");
    let err = Transform::from_file(&missing, taxi_schema()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.sql"), "{err}");
}

#[test]
fn non_select_statements_are_rejected() {
    let cases = [
        ("CREATE TABLE t (a INT)", "CREATE TABLE"),
        (
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL",
        ),
        ("CREATE VIEW v AS SELECT * FROM input", "CREATE VIEW"),
        ("INSERT INTO input VALUES (1)", "INSERT INTO"),
        ("UPDATE input SET fare_amount = 0", "UPDATE"),
        ("DELETE FROM input", "DELETE FROM"),
        ("DROP TABLE input", "DROP TABLE"),
        ("COPY input TO '/tmp/velostream-copy.csv'", "COPY"),
        ("COPY (SELECT * FROM input) TO '/tmp/x.parquet'", "COPY"),
        ("SET datafusion.execution.batch_size = 1", "SET"),
        ("EXPLAIN SELECT * FROM input", "EXPLAIN"),
        ("SHOW TABLES", "SHOW TABLES"),
    ];
    for (sql, keyword) in cases {
        let err = validate_single_select(sql).expect_err(sql);
        assert!(matches!(err, Error::Rejected { .. }), "{sql}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(keyword), "{sql}: {text}");
        assert!(text.contains("only a single SELECT"), "{sql}: {text}");
        assert_eq!(err.position(), pos(1, 1), "{sql}: {text}");
        // from_sql runs the same checks before planning.
        assert!(matches!(plan(sql), Error::Rejected { .. }), "{sql}");
    }
}

#[test]
fn several_statements_are_rejected_at_the_second() {
    let err = plan("SELECT * FROM input;\n  SELECT 1 FROM input");
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
    assert!(err.to_string().contains("2 statements"), "{err}");
    assert_eq!(err.position(), pos(2, 3));
    // A single trailing semicolon is fine.
    validate_single_select("SELECT * FROM input;").unwrap();
    // An empty file is not a transform.
    let err = validate_single_select("  -- only a comment\n").unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
}

#[test]
fn select_into_and_nested_dml_are_rejected() {
    let err = validate_single_select("SELECT * INTO copy_of_input FROM input").unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
    assert!(err.to_string().contains("INTO"), "{err}");
}

#[test]
fn accepted_query_shapes() {
    for sql in [
        "SELECT * FROM input",
        "select * from INPUT", // unquoted names fold to lower case
        "WITH t AS (SELECT fare_amount FROM input) SELECT * FROM t",
        "SELECT fare_amount FROM input UNION ALL SELECT tip_amount FROM input",
        "SELECT x FROM (SELECT fare_amount AS x FROM input) sub",
        "/* block */ SELECT 1 AS one FROM input -- trailing",
    ] {
        validate_single_select(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        Transform::from_sql(sql, taxi_schema()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[test]
fn unknown_column_is_named_and_located() {
    let err = plan("SELECT fare_amount,\n       fare + tip_amount AS total\nFROM input");
    assert!(matches!(err, Error::Plan { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("fare"), "{text}");
    assert_eq!(err.position(), pos(2, 8), "{text}");
    assert!(
        text.starts_with("<inline sql>:2:8: cannot plan transform"),
        "{text}"
    );

    // In WHERE, after other identifiers that contain the name as a substring.
    let err = plan("SELECT fare_amount FROM input\nWHERE   vendor = 1");
    assert!(err.to_string().contains("vendor"), "{err}");
    assert_eq!(err.position(), pos(2, 9), "{err}");

    // Case matters for quoted names: "vendorid" is not "VendorID".
    let err = plan("SELECT \"vendorid\" FROM input");
    assert!(err.to_string().contains("vendorid"), "{err}");
    assert_eq!(err.position(), pos(1, 8), "{err}");
}

#[test]
fn unknown_function_is_named() {
    let err = plan("SELECT no_such_fn(fare_amount) FROM input");
    assert!(matches!(err, Error::Plan { .. }), "{err:?}");
    assert!(err.to_string().contains("no_such_fn"), "{err}");
    assert_eq!(err.position(), pos(1, 8), "{err}");
}

#[test]
fn other_tables_and_file_reading_functions_are_rejected() {
    let cases = [
        ("SELECT * FROM read_parquet('/etc/passwd')", 15),
        ("SELECT * FROM read_csv('/etc/passwd')", 15),
        ("SELECT * FROM read_json('/etc/passwd')", 15),
        ("SELECT * FROM generate_series(1, 10)", 15),
        ("SELECT * FROM '/etc/passwd'", 15),
        ("SELECT * FROM \"/etc/passwd\"", 15),
        ("SELECT * FROM trips", 15),
        ("SELECT * FROM information_schema.tables", 15),
        (
            "SELECT * FROM input JOIN read_parquet('/etc/passwd') p ON true",
            26,
        ),
        ("SELECT (SELECT count(*) FROM other) AS n FROM input", 30),
    ];
    for (sql, column) in cases {
        let err = plan(sql);
        assert!(matches!(err, Error::Rejected { .. }), "{sql}: {err:?}");
        let text = err.to_string();
        assert!(text.contains("may only read `input`"), "{sql}: {text}");
        assert_eq!(err.position(), pos(1, column), "{sql}: {text}");
    }
}

#[test]
fn a_query_must_read_input() {
    let err = plan("SELECT 1 AS one");
    assert!(matches!(err, Error::Plan { .. }), "{err:?}");
    assert!(
        err.to_string().contains("does not read the table `input`"),
        "{err}"
    );
}

#[test]
fn output_column_names_must_be_unique() {
    let err = plan(
        "SELECT a.fare_amount, b.fare_amount FROM input a JOIN input b ON a.\"VendorID\" = b.\"VendorID\"",
    );
    assert!(matches!(err, Error::Plan { .. }), "{err:?}");
    assert!(err.to_string().contains("fare_amount"), "{err}");
}

#[tokio::test]
async fn hostile_column_names_work_when_double_quoted() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("trip distance", DataType::Float64, false),
        Field::new("he said \"hi\"", DataType::Utf8, true),
        Field::new("naïve ☃ 東京", DataType::Int64, false),
        Field::new("select", DataType::Int64, false),
        Field::new("it's", DataType::Int64, false),
    ]));
    let sql = r#"SELECT "trip distance" * 2 AS "double ""distance""",
           upper("he said ""hi""") AS "ünïcode out",
           "naïve ☃ 東京" + "select" + "it's" AS "sum; DROP TABLE x"
    FROM input WHERE "naïve ☃ 東京" > 0"#;
    let t = Transform::from_sql(sql, Arc::clone(&schema)).unwrap();
    let names: Vec<_> = t
        .output_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        ["double \"distance\"", "ünïcode out", "sum; DROP TABLE x"]
    );
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Float64Array::from(vec![1.5, 2.0])),
            Arc::new(StringArray::from(vec![Some("ab"), None])),
            Arc::new(Int64Array::from(vec![0, 7])),
            Arc::new(Int64Array::from(vec![10, 20])),
            Arc::new(Int64Array::from(vec![100, 200])),
        ],
    )
    .unwrap();
    let out = t.apply(batch).await.unwrap();
    datafusion::assert_batches_eq!(
        [
            "+-------------------+-------------+-------------------+",
            "| double \"distance\" | ünïcode out | sum; DROP TABLE x |",
            "+-------------------+-------------+-------------------+",
            "| 4.0               |             | 227               |",
            "+-------------------+-------------+-------------------+",
        ],
        &out
    );
}
