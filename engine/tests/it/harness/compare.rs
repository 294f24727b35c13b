//! A taxi table against the Parquet source it was loaded from: the rows as
//! a multiset of content keys (what is missing, duplicated or foreign) and
//! checksums over every other checked column (sums and null counts).

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};

use super::clickhouse::ch_query;

/// The content key of one taxi row, spelled as ClickHouse prints it in TSV:
/// pickup second, zones, cents of total and distance, passenger count
/// (`\N` when null). See [`row_key`].
const KEY_SQL: &str = "toInt64(toUInt32(tpep_pickup_datetime)), PULocationID, DOLocationID, \
     toInt64(round(total_amount * 100)), toInt64(round(trip_distance * 100)), passenger_count";

/// Checksums: row count, sums of integer-valued expressions and null
/// counts. Same order as [`row_sums`].
const SUMS_SQL: &str = "count(), sum(toInt64(VendorID)), sum(toInt64(PULocationID)), \
     sum(toInt64(DOLocationID)), sum(payment_type), sum(toInt64(round(fare_amount * 100))), \
     sum(toInt64(round(total_amount * 100))), sum(toInt64(toUInt32(tpep_dropoff_datetime))), \
     countIf(isNull(passenger_count)), countIf(isNull(RatecodeID)), \
     countIf(isNull(congestion_surcharge)), countIf(isNull(airport_fee)), \
     countIf(isNull(store_and_fwd_flag))";

/// Number of values in [`SUMS_SQL`].
const SUMS: usize = 13;

/// The names of the [`SUMS_SQL`] values, for messages.
const SUM_NAMES: [&str; SUMS] = [
    "count",
    "VendorID",
    "PULocationID",
    "DOLocationID",
    "payment_type",
    "fare_amount cents",
    "total_amount cents",
    "tpep_dropoff_datetime",
    "null passenger_count",
    "null RatecodeID",
    "null congestion_surcharge",
    "null airport_fee",
    "null store_and_fwd_flag",
];

/// What [`compare_taxi`] found.
#[derive(Debug)]
pub struct Comparison {
    /// The table compared (`db.table`).
    pub table: String,
    /// Source rows.
    pub source_rows: u64,
    /// Rows in the table.
    pub stored_rows: u64,
    /// Source rows the table lacks.
    pub missing: u64,
    /// Table rows beyond the source's count of their key.
    pub duplicates: u64,
    /// Rows whose key the source does not have, and up to 3 of the keys.
    pub foreign: (u64, Vec<String>),
    /// [`SUMS_SQL`] over the source.
    pub source_sums: [i64; SUMS],
    /// [`SUMS_SQL`] over the table.
    pub table_sums: [i64; SUMS],
    /// [`SUMS_SQL`] over the duplicated rows (the source's rows of their keys).
    pub duplicate_sums: [i64; SUMS],
}

impl Comparison {
    /// "N rows stored of M, X lost, Y duplicates, Z foreign".
    pub fn summary(&self) -> String {
        format!(
            "{} rows stored of {}, {} lost, {} duplicates, {} foreign",
            self.stored_rows, self.source_rows, self.missing, self.duplicates, self.foreign.0
        )
    }

    /// Exactly the source: nothing lost, duplicated or foreign, and every
    /// checksum equal. `what` names the scenario in the failure.
    pub fn assert_exact(&self, what: &str) {
        self.assert_no_foreign(what);
        assert_eq!(
            (self.missing, self.duplicates),
            (0, 0),
            "{what}: {}: rows lost and duplicated",
            self.table
        );
        self.assert_sums(&self.source_sums, what);
    }

    /// At least the source: nothing lost or foreign, and the checksums equal
    /// the source's plus those of the duplicated rows (a duplicate is a
    /// whole source row again, not an altered one). Returns the duplicates.
    pub fn assert_nothing_lost(&self, what: &str) -> u64 {
        self.assert_no_foreign(what);
        assert_eq!(self.missing, 0, "{what}: {}: rows lost", self.table);
        let mut want = self.source_sums;
        for (w, d) in want.iter_mut().zip(self.duplicate_sums) {
            *w += d;
        }
        self.assert_sums(&want, what);
        self.duplicates
    }

    fn assert_no_foreign(&self, what: &str) {
        assert!(
            self.foreign.0 == 0,
            "{what}: {} rows of {} have keys the source does not have, e.g. {:?}",
            self.foreign.0,
            self.table,
            self.foreign.1
        );
    }

    fn assert_sums(&self, want: &[i64; SUMS], what: &str) {
        let differ: Vec<String> = SUM_NAMES
            .iter()
            .zip(want.iter().zip(&self.table_sums))
            .filter(|(_, (w, g))| w != g)
            .map(|(name, (w, g))| format!("{name}: expected {w}, table has {g}"))
            .collect();
        assert!(
            differ.is_empty(),
            "{what}: checksums of {} differ ({}):\n{}",
            self.table,
            self.summary(),
            differ.join("\n")
        );
    }
}

/// Compares `table` on the ClickHouse at `url` with the rows of `batches`.
pub fn compare_taxi(url: &str, table: &str, batches: &[RecordBatch]) -> Comparison {
    let source = SourceRows::of(batches);
    let stored = table_keys(url, table);
    let table_sums = table_sums(url, table);
    let (mut missing, mut duplicates) = (0, 0);
    let mut duplicate_sums = [0i64; SUMS];
    for (key, row) in &source.keys {
        let got = stored.get(key).copied().unwrap_or(0);
        missing += row.count.saturating_sub(got);
        let extra = got.saturating_sub(row.count);
        duplicates += extra;
        for (d, s) in duplicate_sums.iter_mut().zip(row.sums) {
            // Rows sharing a key are equal in practice; the mean is exact then.
            *d += extra as i64 * s / row.count as i64;
        }
    }
    let foreign: Vec<&String> = stored
        .keys()
        .filter(|k| !source.keys.contains_key(*k))
        .collect();
    Comparison {
        table: table.to_string(),
        source_rows: source.sums[0] as u64,
        stored_rows: table_sums[0] as u64,
        missing,
        duplicates,
        foreign: (
            foreign.iter().map(|k| stored[*k]).sum(),
            foreign.iter().take(3).map(|k| k.to_string()).collect(),
        ),
        source_sums: source.sums,
        table_sums,
        duplicate_sums,
    }
}

/// The rows of a key in the source: how many, and their summed checksums.
#[derive(Debug, Default)]
struct KeyRows {
    count: u64,
    sums: [i64; SUMS],
}

/// The source indexed by row key, with its total checksums.
struct SourceRows {
    keys: HashMap<String, KeyRows>,
    sums: [i64; SUMS],
}

impl SourceRows {
    fn of(batches: &[RecordBatch]) -> SourceRows {
        let mut keys: HashMap<String, KeyRows> = HashMap::new();
        let mut sums = [0i64; SUMS];
        for b in batches {
            for i in 0..b.num_rows() {
                let row = row_sums(b, i);
                let entry = keys.entry(row_key(b, i)).or_default();
                entry.count += 1;
                for j in 0..SUMS {
                    entry.sums[j] += row[j];
                    sums[j] += row[j];
                }
            }
        }
        SourceRows { keys, sums }
    }
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> &'a dyn Array {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("source has no column {name}"))
        .as_ref()
}

fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

/// [`KEY_SQL`] of row `i` of `b`.
fn row_key(b: &RecordBatch, i: usize) -> String {
    let pickup = column(b, "tpep_pickup_datetime").as_primitive::<TimestampMicrosecondType>();
    let pass = column(b, "passenger_count").as_primitive::<Int64Type>();
    let p = if pass.is_null(i) {
        "\\N".to_string()
    } else {
        pass.value(i).to_string()
    };
    format!(
        "{}\t{}\t{}\t{}\t{}\t{p}",
        pickup.value(i).div_euclid(1_000_000),
        column(b, "PULocationID")
            .as_primitive::<Int32Type>()
            .value(i),
        column(b, "DOLocationID")
            .as_primitive::<Int32Type>()
            .value(i),
        cents(
            column(b, "total_amount")
                .as_primitive::<Float64Type>()
                .value(i)
        ),
        cents(
            column(b, "trip_distance")
                .as_primitive::<Float64Type>()
                .value(i)
        ),
    )
}

/// [`SUMS_SQL`] of the single row `i` of `b` (a null adds nothing to a
/// sum, as in ClickHouse).
fn row_sums(b: &RecordBatch, i: usize) -> [i64; SUMS] {
    let int = |n: &str| -> i64 {
        let c = column(b, n);
        if c.is_null(i) {
            return 0;
        }
        match c.data_type() {
            arrow_schema::DataType::Int32 => c.as_primitive::<Int32Type>().value(i).into(),
            _ => c.as_primitive::<Int64Type>().value(i),
        }
    };
    let cents_of = |n: &str| {
        let c = column(b, n).as_primitive::<Float64Type>();
        if c.is_null(i) {
            0
        } else {
            cents(c.value(i))
        }
    };
    let dropoff = column(b, "tpep_dropoff_datetime").as_primitive::<TimestampMicrosecondType>();
    let mut s = [0i64; SUMS];
    s[0] = 1;
    s[1] = int("VendorID");
    s[2] = int("PULocationID");
    s[3] = int("DOLocationID");
    s[4] = int("payment_type");
    s[5] = cents_of("fare_amount");
    s[6] = cents_of("total_amount");
    s[7] = dropoff.value(i).div_euclid(1_000_000);
    for (j, n) in [
        "passenger_count",
        "RatecodeID",
        "congestion_surcharge",
        "airport_fee",
        "store_and_fwd_flag",
    ]
    .iter()
    .enumerate()
    {
        s[8 + j] = i64::from(column(b, n).is_null(i));
    }
    s
}

fn table_sums(url: &str, table: &str) -> [i64; SUMS] {
    let text = ch_query(url, &format!("SELECT {SUMS_SQL} FROM {table} FORMAT TSV"));
    let values: Vec<i64> = text
        .trim()
        .split('\t')
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("sum {v:?} from {table}: {text}"))
        })
        .collect();
    values
        .try_into()
        .unwrap_or_else(|v: Vec<i64>| panic!("{} sums from {table}: {text}", v.len()))
}

fn table_keys(url: &str, table: &str) -> HashMap<String, u64> {
    let text = ch_query(
        url,
        &format!("SELECT {KEY_SQL}, count() FROM {table} GROUP BY {KEY_SQL} FORMAT TSV"),
    );
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (key, n) = line.rsplit_once('\t').expect("key and count");
            (key.to_string(), n.parse::<u64>().expect("count"))
        })
        .collect()
}
