//! Hand-built NYC yellow-taxi batches (2023+ TLC schema) with known values.

use std::sync::Arc;

use arrow_array::{
    Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The TLC yellow-taxi schema as the engine's generator produces it.
pub fn taxi_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    Arc::new(Schema::new(vec![
        Field::new("VendorID", DataType::Int32, false),
        Field::new("tpep_pickup_datetime", ts.clone(), false),
        Field::new("tpep_dropoff_datetime", ts, false),
        Field::new("passenger_count", DataType::Int64, true),
        Field::new("trip_distance", DataType::Float64, false),
        Field::new("RatecodeID", DataType::Int64, true),
        Field::new("store_and_fwd_flag", DataType::Utf8, true),
        Field::new("PULocationID", DataType::Int32, false),
        Field::new("DOLocationID", DataType::Int32, false),
        Field::new("payment_type", DataType::Int64, false),
        Field::new("fare_amount", DataType::Float64, false),
        Field::new("extra", DataType::Float64, false),
        Field::new("mta_tax", DataType::Float64, false),
        Field::new("tip_amount", DataType::Float64, false),
        Field::new("tolls_amount", DataType::Float64, false),
        Field::new("improvement_surcharge", DataType::Float64, false),
        Field::new("total_amount", DataType::Float64, false),
        Field::new("congestion_surcharge", DataType::Float64, true),
        Field::new("airport_fee", DataType::Float64, true),
    ]))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since the epoch of a wall-clock time (no time zone).
pub fn ts(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60_000_000 + s * 1_000_000
}

/// One trip row.
#[derive(Clone, Debug)]
pub struct Trip {
    pub vendor: i32,
    pub pickup: i64,
    pub dropoff: i64,
    pub passengers: Option<i64>,
    pub distance: f64,
    pub ratecode: Option<i64>,
    pub flag: Option<&'static str>,
    pub pu: i32,
    pub du: i32,
    pub payment: i64,
    pub fare: f64,
    pub extra: f64,
    pub mta: f64,
    pub tip: f64,
    pub tolls: f64,
    pub improvement: f64,
    pub total: f64,
    pub congestion: Option<f64>,
    pub airport: Option<f64>,
}

/// A plausible trip, to be modified with struct update syntax.
pub fn trip() -> Trip {
    Trip {
        vendor: 1,
        pickup: ts(2024, 1, 1, 0, 0, 0),
        dropoff: ts(2024, 1, 1, 0, 30, 0),
        passengers: Some(1),
        distance: 7.5,
        ratecode: Some(1),
        flag: Some("N"),
        pu: 161,
        du: 236,
        payment: 1,
        fare: 30.0,
        extra: 1.0,
        mta: 0.5,
        tip: 6.0,
        tolls: 0.0,
        improvement: 1.0,
        total: 41.0,
        congestion: Some(2.5),
        airport: None,
    }
}

/// The reference rows; comments say what `taxi_clean.sql` must do with each.
pub fn reference_trips() -> Vec<Trip> {
    vec![
        // 0: keep. 1800 s, 7.5 mi -> 15 mph, tip 20 %.
        trip(),
        // 1: keep. Crosses midnight, 600 s, 2 mi -> 12 mph, NULLs.
        Trip {
            vendor: 2,
            pickup: ts(2024, 1, 1, 23, 59, 0),
            dropoff: ts(2024, 1, 2, 0, 9, 0),
            passengers: None,
            distance: 2.0,
            ratecode: None,
            flag: None,
            pu: 1,
            du: 2,
            payment: 2,
            fare: 12.5,
            extra: 0.0,
            tip: 0.0,
            tolls: 6.94,
            total: 20.94,
            congestion: None,
            airport: Some(1.75),
            ..trip()
        },
        // 2: drop (dropoff == pickup).
        Trip {
            pickup: ts(2024, 2, 29, 12, 0, 0),
            dropoff: ts(2024, 2, 29, 12, 0, 0),
            passengers: Some(2),
            distance: 0.0,
            ratecode: Some(99),
            flag: Some("Y"),
            fare: 3.0,
            tip: 0.0,
            total: 5.0,
            ..trip()
        },
        // 3: drop (negative fare). Flag not Y/N.
        Trip {
            vendor: 2,
            pickup: ts(2024, 3, 10, 8, 15, 0),
            dropoff: ts(2024, 3, 10, 8, 45, 0),
            distance: 3.0,
            flag: Some("X"),
            fare: -10.0,
            tip: 0.0,
            total: -12.0,
            ..trip()
        },
        // 4: drop (60 s for 5 mi = 300 mph).
        Trip {
            pickup: ts(2024, 1, 5, 10, 0, 0),
            dropoff: ts(2024, 1, 5, 10, 1, 0),
            distance: 5.0,
            ..trip()
        },
        // 5: drop (10 passengers).
        Trip {
            pickup: ts(2024, 1, 6, 10, 0, 0),
            dropoff: ts(2024, 1, 6, 10, 20, 0),
            passengers: Some(10),
            distance: 4.0,
            ..trip()
        },
        // 6: drop (negative distance).
        Trip {
            pickup: ts(2024, 1, 7, 10, 0, 0),
            dropoff: ts(2024, 1, 7, 10, 10, 0),
            distance: -1.0,
            ..trip()
        },
        // 7: keep. Exactly 150 mph (2.5 mi in 60 s), 9 passengers.
        Trip {
            pickup: ts(2024, 1, 8, 17, 0, 0),
            dropoff: ts(2024, 1, 8, 17, 1, 0),
            passengers: Some(9),
            distance: 2.5,
            ..trip()
        },
    ]
}

/// Builds a batch in [`taxi_schema`] from `trips`.
pub fn batch(trips: &[Trip]) -> RecordBatch {
    let col_i32 = |f: fn(&Trip) -> i32| Arc::new(Int32Array::from_iter_values(trips.iter().map(f)));
    let col_i64 =
        |f: fn(&Trip) -> Option<i64>| Arc::new(Int64Array::from_iter(trips.iter().map(f)));
    let col_f64 =
        |f: fn(&Trip) -> Option<f64>| Arc::new(Float64Array::from_iter(trips.iter().map(f)));
    let col_ts = |f: fn(&Trip) -> i64| {
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            trips.iter().map(f),
        ))
    };
    RecordBatch::try_new(
        taxi_schema(),
        vec![
            col_i32(|t| t.vendor),
            col_ts(|t| t.pickup),
            col_ts(|t| t.dropoff),
            col_i64(|t| t.passengers),
            col_f64(|t| Some(t.distance)),
            col_i64(|t| t.ratecode),
            Arc::new(StringArray::from_iter(trips.iter().map(|t| t.flag))),
            col_i32(|t| t.pu),
            col_i32(|t| t.du),
            col_i64(|t| Some(t.payment)),
            col_f64(|t| Some(t.fare)),
            col_f64(|t| Some(t.extra)),
            col_f64(|t| Some(t.mta)),
            col_f64(|t| Some(t.tip)),
            col_f64(|t| Some(t.tolls)),
            col_f64(|t| Some(t.improvement)),
            col_f64(|t| Some(t.total)),
            col_f64(|t| t.congestion),
            col_f64(|t| t.airport),
        ],
    )
    .expect("reference batch matches the taxi schema")
}

/// `n` distinct, valid trips (pickups one minute apart, distance grows with the index).
pub fn many_trips(n: usize, offset: usize) -> Vec<Trip> {
    (0..n)
        .map(|i| {
            let k = (i + offset) as i64;
            Trip {
                vendor: 1 + (k % 2) as i32,
                pickup: ts(2024, 1, 1, 0, 0, 0) + k * 60_000_000,
                dropoff: ts(2024, 1, 1, 0, 0, 0) + k * 60_000_000 + 600_000_000,
                distance: (k % 50) as f64 * 0.1,
                fare: 5.0 + (k % 7) as f64,
                passengers: if k % 5 == 0 { None } else { Some(k % 4) },
                ..trip()
            }
        })
        .collect()
}

/// Path of a shipped transform file.
pub fn transform_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("transforms")
        .join(name)
}
