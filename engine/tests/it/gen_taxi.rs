//! The synthetic taxi generator: determinism, schema, value sanity and size.

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use velostream::gen::{generate, generate_with_threads, taxi_schema, GenConfig};
use velostream::progress::Progress;
use velostream::source::{discover, ParquetSource, SourceOptions};

use crate::harness::data::{concat, read_all};

fn config(out: &Path, rows: u64, files: usize, row_group_rows: usize, seed: u64) -> GenConfig {
    GenConfig {
        rows,
        out: out.to_path_buf(),
        files,
        row_group_rows,
        seed,
    }
}

fn read_back(files: &[PathBuf]) -> RecordBatch {
    let source = ParquetSource::open(files, &SourceOptions::default()).expect("open generated");
    concat(&read_all(&source, 65_536).expect("read generated"))
}

#[test]
fn same_seed_gives_byte_identical_files_whatever_the_thread_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let progress = Progress::hidden();
    let one = generate_with_threads(
        &config(&dir.path().join("a"), 30_000, 2, 4_000, 7),
        &progress,
        1,
    )
    .expect("gen a");
    let three = generate_with_threads(
        &config(&dir.path().join("b"), 30_000, 2, 4_000, 7),
        &progress,
        3,
    )
    .expect("gen b");
    let other = generate(
        &config(&dir.path().join("c"), 30_000, 2, 4_000, 8),
        &progress,
    )
    .expect("gen c");
    assert_eq!(one.files.len(), 2);
    assert_eq!(one.rows, 30_000);
    for ((a, b), c) in one.files.iter().zip(&three.files).zip(&other.files) {
        let (a, b, c) = (
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            std::fs::read(c).unwrap(),
        );
        assert!(a == b, "same seed must give identical bytes");
        assert!(a != c, "a different seed must give different data");
    }
    assert_eq!(one.bytes, three.bytes);
    let on_disk: u64 = one
        .files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(one.bytes, on_disk);
}

#[test]
fn files_have_the_tlc_schema_and_split_rows_evenly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("taxi");
    let summary = generate(&config(&out, 10_001, 3, 1_000, 1), &Progress::hidden()).expect("gen");
    let names: Vec<String> = summary
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "taxi-00000.parquet",
            "taxi-00001.parquet",
            "taxi-00002.parquet"
        ]
    );
    // Discovery finds exactly these (no temporary files left behind).
    let found = discover(&[out.to_string_lossy().into_owned()]).expect("discover");
    assert_eq!(found, summary.files);
    let source = ParquetSource::open(&found, &SourceOptions::default()).expect("open");
    assert_eq!(source.schema(), taxi_schema());
    assert_eq!(source.total_rows(), 10_001);
    let per_file: Vec<u64> = (0..3)
        .map(|i| {
            source
                .row_groups()
                .iter()
                .filter(|rg| rg.file_index == i)
                .map(|rg| rg.rows)
                .sum()
        })
        .collect();
    assert_eq!(per_file, vec![3_334, 3_334, 3_333]);
    assert!(source.row_groups().iter().all(|rg| rg.rows <= 1_000));
    assert_eq!(source.row_groups().len(), 12);

    // A second run with fewer files leaves exactly one data set.
    generate(&config(&out, 500, 1, 1_000, 1), &Progress::hidden()).expect("regen");
    let found = discover(&[out.to_string_lossy().into_owned()]).expect("discover");
    assert_eq!(found, vec![out.join("taxi-00000.parquet")]);
}

#[test]
fn invalid_configurations_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Progress::hidden();
    assert!(generate(&config(dir.path(), 0, 1, 10, 1), &p).is_err());
    assert!(generate(&config(dir.path(), 5, 6, 10, 1), &p).is_err());
    assert!(generate(&config(dir.path(), 5, 0, 10, 1), &p).is_err());
    assert!(generate(&config(dir.path(), 5, 1, 0, 1), &p).is_err());
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

fn is_cents(v: f64) -> bool {
    ((v * 100.0).round() / 100.0 - v).abs() < 1e-9
}

#[test]
fn values_are_realistic_and_correlated_and_size_is_taxi_like() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = 200_000u64;
    let summary = generate(
        &config(dir.path(), rows, 1, 1_048_576, 42),
        &Progress::hidden(),
    )
    .expect("gen");
    let bytes_per_row = summary.bytes as f64 / rows as f64;
    eprintln!(
        "generated {rows} rows: {} bytes, {bytes_per_row:.2} bytes/row",
        summary.bytes
    );
    assert!(
        (14.0..=25.0).contains(&bytes_per_row),
        "{bytes_per_row:.2} bytes/row"
    );

    let all = read_back(&summary.files);
    let col = |name: &str| all.column(all.schema().index_of(name).unwrap()).clone();
    let pickup = col("tpep_pickup_datetime");
    let pickup = pickup.as_primitive::<TimestampMicrosecondType>().values();
    let dropoff = col("tpep_dropoff_datetime");
    let dropoff = dropoff.as_primitive::<TimestampMicrosecondType>().values();
    let jan_2024 = 1_704_067_200_000_000i64..1_706_745_600_000_000;
    let mut by_hour = [0u64; 24];
    for i in 0..pickup.len() {
        assert!(
            jan_2024.contains(&pickup[i]),
            "pickup {} in January 2024",
            pickup[i]
        );
        assert!(dropoff[i] >= pickup[i], "row {i}: dropoff before pickup");
        assert!(
            dropoff[i] - pickup[i] <= 6 * 3_600_000_000,
            "row {i}: trip over 6 h"
        );
        if i > 0 {
            assert!(
                pickup[i] >= pickup[i - 1] - 60_000_000,
                "row {i}: pickups go back in time"
            );
        }
        by_hour[((pickup[i] / 3_600_000_000) % 24) as usize] += 1;
    }
    assert!(by_hour[18] > 4 * by_hour[4], "daily cycle: {by_hour:?}");

    for name in ["PULocationID", "DOLocationID"] {
        let zones = col(name);
        assert!(
            zones
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .all(|z| (1..=265).contains(z)),
            "{name}"
        );
    }
    let pu = col("PULocationID");
    let midtown = pu
        .as_primitive::<Int32Type>()
        .values()
        .iter()
        .filter(|z| [161, 237, 236].contains(*z))
        .count();
    assert!(
        midtown as f64 / rows as f64 > 0.08,
        "pickups skew toward Manhattan: {midtown}"
    );

    for name in [
        "passenger_count",
        "RatecodeID",
        "store_and_fwd_flag",
        "congestion_surcharge",
        "airport_fee",
    ] {
        let rate = col(name).null_count() as f64 / rows as f64;
        assert!((0.02..=0.05).contains(&rate), "{name}: null rate {rate}");
    }
    for name in [
        "VendorID",
        "trip_distance",
        "fare_amount",
        "total_amount",
        "payment_type",
    ] {
        assert_eq!(col(name).null_count(), 0, "{name}");
    }

    let distance = col("trip_distance");
    let distance = distance.as_primitive::<Float64Type>().values();
    let fare = col("fare_amount");
    let fare = fare.as_primitive::<Float64Type>().values();
    let r = pearson(distance, fare);
    assert!(r > 0.8, "fare correlates with distance: r = {r}");
    let payment = col("payment_type");
    let payment = payment.as_primitive::<Int64Type>().values();
    let tip = col("tip_amount");
    let tip = tip.as_primitive::<Float64Type>().values();
    let total = col("total_amount");
    let total = total.as_primitive::<Float64Type>().values();
    let (mut card, mut card_tipped) = (0, 0);
    for i in 0..tip.len() {
        match payment[i] {
            1 => {
                card += 1;
                card_tipped += usize::from(tip[i] > 0.0);
            }
            2 => assert_eq!(tip[i], 0.0, "row {i}: cash tips are not recorded"),
            _ => {}
        }
        assert!(
            is_cents(fare[i]) && is_cents(tip[i]) && is_cents(total[i]) && is_cents(distance[i]),
            "row {i}"
        );
        assert!(
            total[i] >= fare[i] + tip[i] - 1e-9,
            "row {i}: total includes fare and tip"
        );
    }
    let tipped = card_tipped as f64 / card as f64;
    assert!(
        (0.75..0.95).contains(&tipped),
        "card trips tipped: {tipped}"
    );
    let cash = payment.iter().filter(|p| **p == 2).count() as f64 / rows as f64;
    assert!((0.10..0.20).contains(&cash), "cash share {cash}");
    assert!(col("passenger_count")
        .as_primitive::<Int64Type>()
        .iter()
        .flatten()
        .all(|p| (0..=6).contains(&p)));
    // The driver-entered fields are missing together.
    let pc = col("passenger_count");
    let rc = col("RatecodeID");
    assert!((0..pc.len()).all(|i| pc.is_null(i) == rc.is_null(i)));
}
