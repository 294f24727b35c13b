//! The shipped transforms planned against the taxi schema and applied to known rows.

use arrow_schema::{DataType, TimeUnit};
use datafusion::assert_batches_eq;
use velostream_sql::Transform;

use crate::taxi::{batch, reference_trips, taxi_schema, transform_path};

fn load(name: &str) -> Transform {
    Transform::from_file(&transform_path(name), taxi_schema())
        .unwrap_or_else(|e| panic!("{name} must plan against the taxi schema: {e}"))
}

/// (name, type, nullable) of every output field.
fn fields(t: &Transform) -> Vec<(String, DataType, bool)> {
    t.output_schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
        .collect()
}

#[tokio::test]
async fn enrich_adds_duration_speed_date_hour_and_tip_share() {
    let t = load("taxi_enrich.sql");
    let f = fields(&t);
    assert_eq!(f.len(), 24);
    // The 19 input columns come first, unchanged.
    let input: Vec<_> = taxi_schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
        .collect();
    assert_eq!(&f[..19], &input[..]);
    assert_eq!(
        &f[19..],
        &[
            ("trip_duration_s".to_string(), DataType::Int64, false),
            ("avg_speed_mph".to_string(), DataType::Float64, true),
            ("pickup_date".to_string(), DataType::Date32, false),
            ("pickup_hour".to_string(), DataType::Int32, false),
            ("tip_pct".to_string(), DataType::Float64, true),
        ]
    );

    let out = t.apply(batch(&reference_trips())).await.unwrap();
    let derived: Vec<_> = out
        .iter()
        .map(|b| b.project(&[1, 19, 20, 21, 22, 23]).unwrap())
        .collect();
    assert_batches_eq!(
        [
            "+----------------------+-----------------+---------------+-------------+-------------+---------+",
            "| tpep_pickup_datetime | trip_duration_s | avg_speed_mph | pickup_date | pickup_hour | tip_pct |",
            "+----------------------+-----------------+---------------+-------------+-------------+---------+",
            "| 2024-01-01T00:00:00  | 1800            | 15.0          | 2024-01-01  | 0           | 20.0    |",
            "| 2024-01-01T23:59:00  | 600             | 12.0          | 2024-01-01  | 23          | 0.0     |",
            "| 2024-02-29T12:00:00  | 0               |               | 2024-02-29  | 12          | 0.0     |",
            "| 2024-03-10T08:15:00  | 1800            | 6.0           | 2024-03-10  | 8           |         |",
            "| 2024-01-05T10:00:00  | 60              | 300.0         | 2024-01-05  | 10          | 20.0    |",
            "| 2024-01-06T10:00:00  | 1200            | 12.0          | 2024-01-06  | 10          | 20.0    |",
            "| 2024-01-07T10:00:00  | 600             | -6.0          | 2024-01-07  | 10          | 20.0    |",
            "| 2024-01-08T17:00:00  | 60              | 150.0         | 2024-01-08  | 17          | 20.0    |",
            "+----------------------+-----------------+---------------+-------------+-------------+---------+",
        ],
        &derived
    );
}

#[tokio::test]
async fn clean_keeps_only_possible_trips_and_all_columns() {
    let t = load("taxi_clean.sql");
    assert_eq!(t.output_schema().as_ref(), taxi_schema().as_ref());
    let out = t.apply(batch(&reference_trips())).await.unwrap();
    // Rows 0, 1 and 7 survive (see taxi::reference_trips); 7 is exactly 150 mph, 9 passengers.
    let expected = batch(&[
        reference_trips()[0].clone(),
        reference_trips()[1].clone(),
        reference_trips()[7].clone(),
    ]);
    assert_eq!(out, vec![expected]);
}

#[tokio::test]
async fn clean_drops_every_impossible_trip() {
    let t = load("taxi_clean.sql");
    let bad: Vec<_> = reference_trips()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| ![0, 1, 7].contains(i))
        .map(|(_, t)| t)
        .collect();
    assert_eq!(bad.len(), 5);
    for (i, trip) in bad.iter().enumerate() {
        let out = t.apply(batch(std::slice::from_ref(trip))).await.unwrap();
        assert!(out.is_empty(), "impossible trip #{i} survived: {trip:?}");
    }
}

#[tokio::test]
async fn normalize_narrows_types_and_converts_money_and_flags() {
    let t = load("taxi_normalize.sql");
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    let money = DataType::Decimal128(10, 2);
    let expected_fields: Vec<(String, DataType, bool)> = [
        ("vendor_id", DataType::Int8, false),
        ("pickup_at", ts.clone(), false),
        ("dropoff_at", ts, false),
        ("passenger_count", DataType::Int16, true),
        ("trip_distance_mi", DataType::Float64, false),
        ("ratecode_id", DataType::Int8, true),
        ("store_and_fwd", DataType::Boolean, true),
        ("pickup_location_id", DataType::Int16, false),
        ("dropoff_location_id", DataType::Int16, false),
        ("payment_type", DataType::Int8, false),
        ("fare_amount", money.clone(), false),
        ("extra", money.clone(), false),
        ("mta_tax", money.clone(), false),
        ("tip_amount", money.clone(), false),
        ("tolls_amount", money.clone(), false),
        ("improvement_surcharge", money.clone(), false),
        ("total_amount", money.clone(), false),
        ("congestion_surcharge", money.clone(), true),
        ("airport_fee", money, true),
    ]
    .into_iter()
    .map(|(n, d, null)| (n.to_string(), d, null))
    .collect();
    assert_eq!(fields(&t), expected_fields);

    let out = t.apply(batch(&reference_trips())).await.unwrap();
    assert_batches_eq!(
        [
            "+-----------+---------------------+---------------------+-----------------+------------------+-------------+---------------+--------------------+---------------------+--------------+-------------+-------+---------+------------+--------------+-----------------------+--------------+----------------------+-------------+",
            "| vendor_id | pickup_at           | dropoff_at          | passenger_count | trip_distance_mi | ratecode_id | store_and_fwd | pickup_location_id | dropoff_location_id | payment_type | fare_amount | extra | mta_tax | tip_amount | tolls_amount | improvement_surcharge | total_amount | congestion_surcharge | airport_fee |",
            "+-----------+---------------------+---------------------+-----------------+------------------+-------------+---------------+--------------------+---------------------+--------------+-------------+-------+---------+------------+--------------+-----------------------+--------------+----------------------+-------------+",
            "| 1         | 2024-01-01T00:00:00 | 2024-01-01T00:30:00 | 1               | 7.5              | 1           | false         | 161                | 236                 | 1            | 30.00       | 1.00  | 0.50    | 6.00       | 0.00         | 1.00                  | 41.00        | 2.50                 |             |",
            "| 2         | 2024-01-01T23:59:00 | 2024-01-02T00:09:00 |                 | 2.0              |             |               | 1                  | 2                   | 2            | 12.50       | 0.00  | 0.50    | 0.00       | 6.94         | 1.00                  | 20.94        |                      | 1.75        |",
            "| 1         | 2024-02-29T12:00:00 | 2024-02-29T12:00:00 | 2               | 0.0              | 99          | true          | 161                | 236                 | 1            | 3.00        | 1.00  | 0.50    | 0.00       | 0.00         | 1.00                  | 5.00         | 2.50                 |             |",
            "| 2         | 2024-03-10T08:15:00 | 2024-03-10T08:45:00 | 1               | 3.0              | 1           |               | 161                | 236                 | 1            | -10.00      | 1.00  | 0.50    | 0.00       | 0.00         | 1.00                  | -12.00       | 2.50                 |             |",
            "| 1         | 2024-01-05T10:00:00 | 2024-01-05T10:01:00 | 1               | 5.0              | 1           | false         | 161                | 236                 | 1            | 30.00       | 1.00  | 0.50    | 6.00       | 0.00         | 1.00                  | 41.00        | 2.50                 |             |",
            "| 1         | 2024-01-06T10:00:00 | 2024-01-06T10:20:00 | 10              | 4.0              | 1           | false         | 161                | 236                 | 1            | 30.00       | 1.00  | 0.50    | 6.00       | 0.00         | 1.00                  | 41.00        | 2.50                 |             |",
            "| 1         | 2024-01-07T10:00:00 | 2024-01-07T10:10:00 | 1               | -1.0             | 1           | false         | 161                | 236                 | 1            | 30.00       | 1.00  | 0.50    | 6.00       | 0.00         | 1.00                  | 41.00        | 2.50                 |             |",
            "| 1         | 2024-01-08T17:00:00 | 2024-01-08T17:01:00 | 9               | 2.5              | 1           | false         | 161                | 236                 | 1            | 30.00       | 1.00  | 0.50    | 6.00       | 0.00         | 1.00                  | 41.00        | 2.50                 |             |",
            "+-----------+---------------------+---------------------+-----------------+------------------+-------------+---------------+--------------------+---------------------+--------------+-------------+-------+---------+------------+--------------+-----------------------+--------------+----------------------+-------------+",
        ],
        &out
    );
}

#[tokio::test]
async fn normalize_rounds_money_to_exact_cents() {
    use arrow_array::Decimal128Array;
    let t = load("taxi_normalize.sql");
    // 6.94 and 20.94 are not exact in binary floating point (6.94 * 100 = 693.999...).
    let out = t.apply(batch(&reference_trips()[1..2])).await.unwrap();
    let col = |name: &str| {
        out[0]
            .column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap()
            .value(0)
    };
    assert_eq!(col("tolls_amount"), 694);
    assert_eq!(col("total_amount"), 2094);
    assert_eq!(col("airport_fee"), 175);
}

#[tokio::test]
async fn shipped_transforms_handle_an_empty_batch() {
    for name in ["taxi_enrich.sql", "taxi_clean.sql", "taxi_normalize.sql"] {
        let t = load(name);
        let out = t.apply(batch(&[])).await.unwrap();
        assert!(out.is_empty(), "{name}: {out:?}");
    }
}

/// Real TLC Parquet files declare every column optional: the shipped transforms must
/// plan against an all-nullable schema too and give the same rows.
#[tokio::test]
async fn shipped_transforms_accept_an_all_nullable_schema() {
    use std::sync::Arc;
    let nullable = Arc::new(arrow_schema::Schema::new(
        taxi_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let reference = batch(&reference_trips());
    let relabeled =
        arrow_array::RecordBatch::try_new(Arc::clone(&nullable), reference.columns().to_vec())
            .unwrap();
    for name in ["taxi_enrich.sql", "taxi_clean.sql", "taxi_normalize.sql"] {
        let strict = load(name);
        let loose = Transform::from_file(&transform_path(name), Arc::clone(&nullable))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Same names and types; only nullability may differ.
        let shape = |t: &Transform| -> Vec<(String, DataType)> {
            t.output_schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect()
        };
        assert_eq!(shape(&strict), shape(&loose), "{name}");
        let a = strict.apply(reference.clone()).await.unwrap();
        let b = loose.apply(relabeled.clone()).await.unwrap();
        assert_eq!(a.len(), b.len(), "{name}");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.columns(), y.columns(), "{name}");
        }
    }
}
