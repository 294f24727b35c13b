//! Per-batch execution: planned once, isolated between batches and concurrent callers.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use velostream_sql::{Error, Transform};

use crate::taxi::{batch, many_trips, reference_trips, taxi_schema, Trip};

fn transform(sql: &str) -> Transform {
    Transform::from_sql(sql, taxi_schema()).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

/// Concatenated values of an Int64 or Float64 column, as f64.
fn column_f64(batches: &[RecordBatch], name: &str) -> Vec<f64> {
    let mut out = Vec::new();
    for b in batches {
        let c = b
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"));
        match c.data_type() {
            DataType::Float64 => out.extend(c.as_primitive::<Float64Type>().values().iter()),
            DataType::Int64 => out.extend(
                c.as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .map(|v| *v as f64),
            ),
            DataType::Int32 => out.extend(
                c.as_primitive::<Int32Type>()
                    .values()
                    .iter()
                    .map(|v| *v as f64),
            ),
            other => panic!("{name}: unexpected {other}"),
        }
    }
    out
}

const SCALE: &str =
    "SELECT \"PULocationID\" AS k, fare_amount * 2 AS f2 FROM input WHERE trip_distance > 1.0";

/// What SCALE must return for `trips`, computed without DataFusion.
fn expected_scale(trips: &[Trip]) -> (Vec<f64>, Vec<f64>) {
    trips
        .iter()
        .filter(|t| t.distance > 1.0)
        .map(|t| (t.pu as f64, t.fare * 2.0))
        .unzip()
}

fn with_keys(mut trips: Vec<Trip>, offset: usize) -> Vec<Trip> {
    for (i, t) in trips.iter_mut().enumerate() {
        t.pu = (offset * 1000 + i) as i32;
    }
    trips
}

#[test]
fn transform_is_send_sync_clone() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    assert_traits::<Transform>();
}

#[tokio::test]
async fn planned_once_for_many_batches() {
    let t = transform(SCALE);
    assert_eq!(t.planning_passes(), 1);
    for offset in 0..50 {
        let trips = with_keys(many_trips(200, offset * 7), offset);
        let out = t.apply(batch(&trips)).await.unwrap();
        let (k, f2) = expected_scale(&trips);
        assert_eq!(column_f64(&out, "k"), k, "batch {offset}");
        assert_eq!(column_f64(&out, "f2"), f2, "batch {offset}");
        for b in &out {
            assert_eq!(b.schema(), t.output_schema());
        }
    }
    assert_eq!(t.batches_applied(), 50);
    assert_eq!(t.planning_passes(), 1, "apply must never plan");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_applies_do_not_mix_batches() {
    let t = transform(SCALE);
    let mut tasks = Vec::new();
    for task in 0..16 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..10 {
                let offset = task * 10 + round;
                let trips = with_keys(many_trips(300 + offset, offset), offset);
                let out = t.apply(batch(&trips)).await.unwrap();
                let (k, f2) = expected_scale(&trips);
                assert_eq!(column_f64(&out, "k"), k, "task {task} round {round}");
                assert_eq!(column_f64(&out, "f2"), f2, "task {task} round {round}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(t.batches_applied(), 160);
    assert_eq!(t.planning_passes(), 1);
}

/// Aggregates, sorts with LIMIT (TopK) and windows see only the current batch.
#[tokio::test]
async fn stateful_operators_are_reset_between_batches() {
    let agg = transform(
        "SELECT \"VendorID\" AS v, count(*) AS n, sum(fare_amount) AS fares \
         FROM input GROUP BY \"VendorID\" ORDER BY v",
    );
    let top = transform("SELECT fare_amount FROM input ORDER BY fare_amount DESC LIMIT 2");
    let win = transform(
        "SELECT fare_amount, sum(fare_amount) OVER (ORDER BY tpep_pickup_datetime) AS running \
         FROM input ORDER BY tpep_pickup_datetime",
    );
    let first = vec![
        Trip {
            vendor: 1,
            fare: 100.0,
            ..crate::taxi::trip()
        },
        Trip {
            vendor: 2,
            fare: 90.0,
            ..crate::taxi::trip()
        },
        Trip {
            vendor: 1,
            fare: 80.0,
            ..crate::taxi::trip()
        },
    ];
    let second = vec![
        Trip {
            vendor: 2,
            fare: 1.0,
            pickup: crate::taxi::ts(2024, 1, 1, 0, 0, 0),
            ..crate::taxi::trip()
        },
        Trip {
            vendor: 2,
            fare: 3.0,
            pickup: crate::taxi::ts(2024, 1, 1, 0, 0, 1),
            ..crate::taxi::trip()
        },
        Trip {
            vendor: 2,
            fare: 2.0,
            pickup: crate::taxi::ts(2024, 1, 1, 0, 0, 2),
            ..crate::taxi::trip()
        },
    ];
    for _ in 0..2 {
        let out = agg.apply(batch(&first)).await.unwrap();
        assert_eq!(column_f64(&out, "v"), [1.0, 2.0]);
        assert_eq!(column_f64(&out, "n"), [2.0, 1.0]);
        assert_eq!(column_f64(&out, "fares"), [180.0, 90.0]);
        let out = agg.apply(batch(&second)).await.unwrap();
        assert_eq!(column_f64(&out, "v"), [2.0]);
        assert_eq!(column_f64(&out, "n"), [3.0]);
        assert_eq!(column_f64(&out, "fares"), [6.0]);

        let out = top.apply(batch(&first)).await.unwrap();
        assert_eq!(column_f64(&out, "fare_amount"), [100.0, 90.0]);
        // A TopK that kept state (or a dynamic filter) from the first batch would drop these.
        let out = top.apply(batch(&second)).await.unwrap();
        assert_eq!(column_f64(&out, "fare_amount"), [3.0, 2.0]);

        let out = win.apply(batch(&second)).await.unwrap();
        assert_eq!(column_f64(&out, "running"), [1.0, 4.0, 6.0]);
    }
    // GROUP BY over an empty batch yields no groups; a global aggregate yields one row.
    assert!(agg.apply(batch(&[])).await.unwrap().is_empty());
    let count = transform("SELECT count(*) AS n FROM input");
    assert_eq!(
        column_f64(&count.apply(batch(&[])).await.unwrap(), "n"),
        [0.0]
    );
    assert_eq!(
        column_f64(&count.apply(batch(&first)).await.unwrap(), "n"),
        [3.0]
    );
}

/// Self-joins (hash join build side) and scalar sub-queries use operator state that is
/// cached per plan instance; each batch must get fresh state, also concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joins_and_subqueries_see_only_their_own_batch() {
    let join = transform(
        "SELECT a.\"PULocationID\" AS k, count(*) AS pairs \
         FROM input a JOIN input b ON a.\"PULocationID\" = b.\"PULocationID\" \
         GROUP BY a.\"PULocationID\" ORDER BY k",
    );
    let above_avg = transform(
        "SELECT fare_amount FROM input \
         WHERE fare_amount > (SELECT avg(fare_amount) FROM input) ORDER BY fare_amount",
    );
    let plan = join.explain();
    assert!(
        plan.contains("HashJoinExec") || plan.contains("Join"),
        "{plan}"
    );

    let mut tasks = Vec::new();
    for task in 0..8usize {
        let (join, above_avg) = (join.clone(), above_avg.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..10usize {
                // n rows at location `base`, n+1 at `base + 1`: pairs n² and (n+1)².
                let n = 1 + (task + round) % 4;
                let base = (task * 100 + round) as i32;
                let mut trips = Vec::new();
                for i in 0..(2 * n + 1) {
                    trips.push(Trip {
                        pu: if i < n { base } else { base + 1 },
                        fare: (task * 1000 + round * 10 + i) as f64,
                        ..crate::taxi::trip()
                    });
                }
                let out = join.apply(batch(&trips)).await.unwrap();
                assert_eq!(column_f64(&out, "k"), [base as f64, (base + 1) as f64]);
                assert_eq!(
                    column_f64(&out, "pairs"),
                    [(n * n) as f64, ((n + 1) * (n + 1)) as f64]
                );

                let fares: Vec<f64> = trips.iter().map(|t| t.fare).collect();
                let avg = fares.iter().sum::<f64>() / fares.len() as f64;
                let expected: Vec<f64> = fares.iter().copied().filter(|f| *f > avg).collect();
                let out = above_avg.apply(batch(&trips)).await.unwrap();
                assert_eq!(column_f64(&out, "fare_amount"), expected);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(join.planning_passes(), 1);
    assert_eq!(above_avg.planning_passes(), 1);
}

#[tokio::test]
async fn union_output_is_ordered_and_complete() {
    let t =
        transform("SELECT fare_amount AS v FROM input UNION ALL SELECT tip_amount AS v FROM input");
    let trips = reference_trips();
    let out = t.apply(batch(&trips)).await.unwrap();
    let mut expected: Vec<f64> = trips.iter().map(|t| t.fare).collect();
    expected.extend(trips.iter().map(|t| t.tip));
    assert_eq!(column_f64(&out, "v"), expected);
}

#[tokio::test]
async fn plans_never_repartition() {
    for sql in [
        "SELECT \"VendorID\", count(*) AS n FROM input GROUP BY \"VendorID\"",
        "SELECT * FROM input ORDER BY fare_amount",
        "SELECT a.fare_amount FROM input a JOIN input b ON a.\"VendorID\" = b.\"VendorID\"",
        "SELECT fare_amount, rank() OVER (PARTITION BY \"VendorID\" ORDER BY fare_amount) AS r FROM input",
        "SELECT DISTINCT \"PULocationID\" FROM input",
    ] {
        let plan = transform(sql).explain();
        assert!(!plan.contains("RepartitionExec"), "{sql}\n{plan}");
        assert!(!plan.contains("CoalescePartitionsExec"), "{sql}\n{plan}");
    }
}

#[tokio::test]
async fn large_batches_are_returned_completely() {
    let t = transform("SELECT fare_amount FROM input WHERE fare_amount >= 0");
    let trips = many_trips(20_000, 0);
    let out = t.apply(batch(&trips)).await.unwrap();
    assert_eq!(rows(&out), 20_000);
    let expected: Vec<f64> = trips.iter().map(|t| t.fare).collect();
    assert_eq!(column_f64(&out, "fare_amount"), expected);
}

#[tokio::test]
async fn input_columns_are_matched_by_name() {
    let t = transform("SELECT fare_amount + tip_amount AS paid FROM input");
    let full = batch(&reference_trips());
    // Reversed column order, plus an extra column the schema does not know.
    let mut fields: Vec<_> = full.schema().fields().iter().rev().cloned().collect();
    let mut columns: Vec<_> = full.columns().iter().rev().cloned().collect();
    fields.push(Arc::new(Field::new("extra_col", DataType::Int32, false)));
    columns.push(Arc::new(Int32Array::from(vec![0; full.num_rows()])));
    let shuffled = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let out = t.apply(shuffled).await.unwrap();
    let expected: Vec<f64> = reference_trips().iter().map(|t| t.fare + t.tip).collect();
    assert_eq!(column_f64(&out, "paid"), expected);
}

#[tokio::test]
async fn mismatched_batches_are_rejected_with_the_column_name() {
    let t = transform("SELECT * FROM input");
    let full = batch(&reference_trips());

    // Missing column.
    let without = full
        .project(&(1..full.num_columns()).collect::<Vec<_>>())
        .unwrap();
    let err = t.apply(without).await.unwrap_err();
    assert!(matches!(err, Error::InputSchema { .. }), "{err:?}");
    assert!(err.to_string().contains("\"VendorID\" is missing"), "{err}");

    // Wrong type.
    let mut fields: Vec<_> = full.schema().fields().iter().cloned().collect();
    let mut columns = full.columns().to_vec();
    fields[0] = Arc::new(Field::new("VendorID", DataType::Int64, false));
    columns[0] = Arc::new(arrow_array::Int64Array::from(vec![1; full.num_rows()]));
    let wrong = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let err = t.apply(wrong).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("\"VendorID\" is Int64 in the batch but Int32"),
        "{err}"
    );

    // Nulls in a column the schema declares non-nullable.
    let mut fields: Vec<_> = full.schema().fields().iter().cloned().collect();
    let mut columns = full.columns().to_vec();
    fields[0] = Arc::new(Field::new("VendorID", DataType::Int32, true));
    let mut vendor: Vec<Option<i32>> = vec![Some(1); full.num_rows()];
    vendor[0] = None;
    columns[0] = Arc::new(Int32Array::from(vendor));
    let nulls = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let err = t.apply(nulls).await.unwrap_err();
    assert!(matches!(err, Error::InputSchema { .. }), "{err:?}");
    assert!(err.to_string().contains("VendorID"), "{err}");
}

#[tokio::test]
async fn execution_errors_name_the_transform() {
    let t = transform("SELECT CAST(fare_amount * 1e12 AS DECIMAL(10, 2)) AS huge FROM input");
    let err = t.apply(batch(&reference_trips())).await.unwrap_err();
    assert!(matches!(err, Error::Execution { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("transform <inline sql>: execution failed"),
        "{err}"
    );
    // The transform stays usable afterwards.
    let ok = t.apply(batch(&[])).await.unwrap();
    assert!(ok.is_empty());
}

#[tokio::test]
async fn empty_batch_keeps_the_output_schema_promise() {
    let t = transform("SELECT \"VendorID\" AS v FROM input");
    assert!(t.apply(batch(&[])).await.unwrap().is_empty());
    let out = t.apply(batch(&reference_trips()[..1])).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].schema(), t.output_schema());
    assert_eq!(out[0].column(0).len(), 1);
}

/// Documented behaviour: `now()` is folded to a constant when the transform is planned.
#[tokio::test]
async fn now_is_fixed_at_planning_time() {
    let t = transform("SELECT now() AS planned_at, fare_amount FROM input");
    let first = t.apply(batch(&reference_trips()[..1])).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = t.apply(batch(&reference_trips()[..1])).await.unwrap();
    assert_eq!(first[0].column(0), second[0].column(0));
}
