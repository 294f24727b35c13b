//! One row group of synthetic yellow-taxi trips, built column-wise.
//!
//! Each row group has its own random stream (derived from the seed and the
//! row group's global index), so row groups can be generated on any thread
//! in any order and the output stays the same.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::NullBuffer;
use arrow_schema::SchemaRef;

use super::clock::{hour_and_weekend, span_days, MonthClock, MONTH_START};
use super::rng::{derive_seed, Rng, Weighted};
use super::zones::{is_manhattan, Zones, EWR, JFK, LGA, MANHATTAN};
use crate::{Error, Result};

/// Share of rows whose driver-entered fields are missing (the TLC files null
/// passenger_count, RatecodeID, store_and_fwd_flag, congestion_surcharge and
/// airport_fee together on such rows and set payment_type 0).
pub const MISSING_SHARE: f64 = 0.04;

/// Where a row group sits in the data set.
#[derive(Clone, Copy, Debug)]
pub struct Chunk {
    /// Global index of the row group (its random stream).
    pub index: u64,
    /// Global index of its first row.
    pub first_row: u64,
    /// Rows in the row group.
    pub rows: usize,
    /// Rows in the whole data set (pickup times span the month over these).
    pub total_rows: u64,
}

/// Shared, read-only tables for generating rows.
#[derive(Debug)]
pub struct TaxiModel {
    schema: SchemaRef,
    zones: Zones,
    clock: MonthClock,
    passengers: Weighted,
    payment: Weighted,
    tip_pct: Weighted,
}

const PASSENGERS: [i64; 7] = [0, 1, 2, 3, 4, 5, 6];
const PAYMENTS: [i64; 4] = [1, 2, 3, 4];
const TIP_PCTS: [f64; 6] = [0.15, 0.18, 0.20, 0.22, 0.25, 0.30];

/// Column vectors of one row group before they become Arrow arrays.
#[derive(Default)]
struct Columns {
    vendor: Vec<i32>,
    pickup: Vec<i64>,
    dropoff: Vec<i64>,
    passengers: Vec<i64>,
    distance: Vec<f64>,
    ratecode: Vec<i64>,
    flag: Vec<Option<&'static str>>,
    pu: Vec<i32>,
    do_: Vec<i32>,
    payment: Vec<i64>,
    fare: Vec<f64>,
    extra: Vec<f64>,
    mta: Vec<f64>,
    tip: Vec<f64>,
    tolls: Vec<f64>,
    improvement: Vec<f64>,
    total: Vec<f64>,
    congestion: Vec<f64>,
    airport: Vec<f64>,
    present: Vec<bool>,
}

impl TaxiModel {
    /// The model for `schema` (which must be [`super::taxi_schema`]) and a
    /// data set of `total_rows` trips.
    pub fn new(schema: SchemaRef, total_rows: u64) -> TaxiModel {
        TaxiModel {
            schema,
            zones: Zones::new(),
            clock: MonthClock::new(span_days(total_rows)),
            passengers: Weighted::new(&[0.015, 0.75, 0.15, 0.035, 0.02, 0.018, 0.012]),
            payment: Weighted::new(&[0.80, 0.16, 0.01, 0.03]),
            tip_pct: Weighted::new(&[0.10, 0.15, 0.30, 0.15, 0.20, 0.10]),
        }
    }

    /// Generates the row group `chunk` for `seed`.
    pub fn batch(&self, seed: u64, chunk: &Chunk) -> Result<RecordBatch> {
        let mut rng = Rng::new(derive_seed(seed, chunk.index));
        let n = chunk.rows;
        let mut c = Columns::with_capacity(n);
        let total = chunk.total_rows.max(1) as f64;
        for i in 0..n {
            let u = ((chunk.first_row + i as u64) as f64 + rng.f64()) / total;
            self.row(&mut rng, self.clock.seconds_at(u), &mut c);
        }
        c.into_batch(self.schema.clone())
    }

    /// Appends one trip picked up at `secs` after the month start.
    /// Long: one trip's columns in schema order, a line or two each; split up, the same dozen locals would be passed around.
    #[inline]
    fn row(&self, rng: &mut Rng, secs: i64, c: &mut Columns) {
        let missing = rng.chance(MISSING_SHARE);
        let vendor = if rng.chance(0.27) { 1 } else { 2 };
        let (hour, weekend) = hour_and_weekend(secs);
        let pu = self.zones.pickup(rng);
        let mut dropoff_zone = self.zones.dropoff(rng);
        let airport_pickup = pu == JFK || pu == LGA;
        let mut distance = if airport_pickup {
            if rng.chance(0.75) {
                dropoff_zone = MANHATTAN[rng.range(0, 29) as usize];
            }
            let median = if pu == JFK { 17.5 } else { 10.0 };
            (median + rng.normal() * median * 0.2).clamp(0.5, 40.0)
        } else if dropoff_zone == JFK || dropoff_zone == LGA || dropoff_zone == EWR {
            let median = match dropoff_zone {
                JFK => 17.0,
                LGA => 9.5,
                _ => 18.0,
            };
            (median + rng.normal() * median * 0.2).clamp(0.5, 40.0)
        } else if rng.chance(0.015) {
            0.0
        } else {
            let far = !is_manhattan(dropoff_zone) && is_manhattan(pu);
            let median = if far { 3.8 } else { 1.55 };
            rng.lognormal(median, 0.7).min(60.0)
        };
        distance = cents(distance);

        // Duration: slower at rush hour, faster at night and on long trips.
        let rush = !weekend && (7..19).contains(&hour);
        let night = !(6..22).contains(&hour);
        let mut mph = rng.lognormal(
            if rush {
                8.5
            } else if night {
                14.0
            } else {
                10.5
            },
            0.28,
        );
        if distance > 8.0 {
            mph *= 1.6;
        }
        let duration = if distance == 0.0 {
            rng.range(20, 900)
        } else {
            ((distance / mph * 3600.0) as i64 + rng.range(40, 200)).min(6 * 3600)
        };
        let minutes = duration as f64 / 60.0;

        let touches_manhattan = is_manhattan(pu) || is_manhattan(dropoff_zone);
        let ratecode = if (pu == JFK && is_manhattan(dropoff_zone))
            || (dropoff_zone == JFK && is_manhattan(pu))
        {
            if rng.chance(0.9) {
                2
            } else {
                1
            }
        } else if dropoff_zone == EWR {
            3
        } else {
            let r = rng.f64();
            if r < 0.006 {
                5
            } else if r < 0.011 {
                99
            } else if r < 0.013 {
                4
            } else {
                1
            }
        };
        let payment = if missing {
            0
        } else {
            PAYMENTS[self.payment.sample(rng)]
        };
        let passengers = PASSENGERS[self.passengers.sample(rng)];

        let fare = match ratecode {
            2 => 70.0,
            5 => rng.range(15, 120) as f64,
            _ => {
                let metered = 3.0 + 2.5 * distance + 0.25 * minutes + 0.4 * rng.normal();
                let surcharge = if ratecode == 3 { 20.0 } else { 0.0 };
                tenths(metered.max(3.0)) + surcharge
            }
        };
        let mut extra = if !weekend && (16..20).contains(&hour) {
            2.5
        } else if night {
            1.0
        } else {
            0.0
        };
        if pu == LGA {
            extra += 5.0;
        }
        let mta = if rng.chance(0.985) { 0.5 } else { 0.0 };
        let improvement = if rng.chance(0.995) { 1.0 } else { 0.0 };
        let congestion = if touches_manhattan { 2.5 } else { 0.0 };
        let airport_fee = if airport_pickup { 1.75 } else { 0.0 };
        let airport_trip = airport_pickup || matches!(dropoff_zone, JFK | LGA | EWR);
        let tolls = if rng.chance(if airport_trip { 0.45 } else { 0.03 }) {
            6.94
        } else if rng.chance(0.004) {
            cents(2.0 + rng.f64() * 23.0)
        } else {
            0.0
        };
        let tipped = payment == 1 || (payment == 0 && rng.chance(0.5));
        let tip = if !tipped || rng.chance(0.13) {
            0.0
        } else {
            let base = fare + extra + mta + improvement + congestion;
            if rng.chance(0.3) {
                rng.range(1, (base * 0.25) as i64 + 1) as f64
            } else {
                cents(base * TIP_PCTS[self.tip_pct.sample(rng)])
            }
        };
        let (congestion, airport_fee) = if missing {
            (0.0, 0.0)
        } else {
            (congestion, airport_fee)
        };
        let total =
            cents(fare + extra + mta + tip + tolls + improvement + congestion + airport_fee);

        let pickup_us = (MONTH_START + secs) * 1_000_000;
        c.vendor.push(vendor);
        c.pickup.push(pickup_us);
        c.dropoff.push(pickup_us + duration * 1_000_000);
        c.passengers.push(if missing { 0 } else { passengers });
        c.distance.push(distance);
        c.ratecode.push(if missing { 0 } else { ratecode });
        c.flag.push(if missing {
            None
        } else if rng.chance(0.005) {
            Some("Y")
        } else {
            Some("N")
        });
        c.pu.push(pu);
        c.do_.push(dropoff_zone);
        c.payment.push(payment);
        c.fare.push(fare);
        c.extra.push(extra);
        c.mta.push(mta);
        c.tip.push(tip);
        c.tolls.push(tolls);
        c.improvement.push(improvement);
        c.total.push(total);
        c.congestion.push(congestion);
        c.airport.push(airport_fee);
        c.present.push(!missing);
    }
}

impl Columns {
    fn with_capacity(n: usize) -> Columns {
        Columns {
            vendor: Vec::with_capacity(n),
            pickup: Vec::with_capacity(n),
            dropoff: Vec::with_capacity(n),
            passengers: Vec::with_capacity(n),
            distance: Vec::with_capacity(n),
            ratecode: Vec::with_capacity(n),
            flag: Vec::with_capacity(n),
            pu: Vec::with_capacity(n),
            do_: Vec::with_capacity(n),
            payment: Vec::with_capacity(n),
            fare: Vec::with_capacity(n),
            extra: Vec::with_capacity(n),
            mta: Vec::with_capacity(n),
            tip: Vec::with_capacity(n),
            tolls: Vec::with_capacity(n),
            improvement: Vec::with_capacity(n),
            total: Vec::with_capacity(n),
            congestion: Vec::with_capacity(n),
            airport: Vec::with_capacity(n),
            present: Vec::with_capacity(n),
        }
    }

    fn into_batch(self, schema: SchemaRef) -> Result<RecordBatch> {
        let nulls = Some(NullBuffer::from(self.present));
        let f64s = |v: Vec<f64>| Arc::new(Float64Array::from(v)) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(self.vendor)),
            Arc::new(TimestampMicrosecondArray::from(self.pickup)),
            Arc::new(TimestampMicrosecondArray::from(self.dropoff)),
            Arc::new(Int64Array::new(self.passengers.into(), nulls.clone())),
            f64s(self.distance),
            Arc::new(Int64Array::new(self.ratecode.into(), nulls.clone())),
            Arc::new(StringArray::from(self.flag)),
            Arc::new(Int32Array::from(self.pu)),
            Arc::new(Int32Array::from(self.do_)),
            Arc::new(Int64Array::from(self.payment)),
            f64s(self.fare),
            f64s(self.extra),
            f64s(self.mta),
            f64s(self.tip),
            f64s(self.tolls),
            f64s(self.improvement),
            f64s(self.total),
            Arc::new(Float64Array::new(self.congestion.into(), nulls.clone())),
            Arc::new(Float64Array::new(self.airport.into(), nulls)),
        ];
        RecordBatch::try_new(schema, columns).map_err(|e| Error::Arrow {
            context: "building a generated taxi batch".into(),
            source: e,
        })
    }
}

/// Rounds to cents.
#[inline]
fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Rounds to multiples of ten cents (meter increments).
#[inline]
fn tenths(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
