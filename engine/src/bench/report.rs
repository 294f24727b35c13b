//! The bench report: one typed document, written as JSON with fixed keys
//! (`--report-json`) and read back through the same types (tests, the
//! targets check), so a misspelt figure is a compile error, not a silent 0.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::decode::DecodeResult;
use super::freshness::Freshness;
use super::native_file::NativeFileResult;
use super::parts::PartActivity;
use super::pipeline::RunResult;

/// The whole report of one `velostream bench` run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub rows_source: u64,
    pub rows_clickhouse: u64,
    /// Row count and every column's checksum equal to the source.
    pub validated: bool,
    pub differences: Vec<String>,
    /// The table VeloStream filled (`db.table`; kept with `--keep-tables`).
    pub table: String,
    /// The VeloStream run's figures (at the top level of the JSON).
    #[serde(flatten)]
    pub run: RunFigures,
    pub machine: Machine,
    /// What the measured CPU costs allow (local services only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_budget: Option<CpuBudget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Compared>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratios: Option<Ratios>,
    /// Rows per shard when the bench ran against several shards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRows>,
    /// `--rate`: end-to-end latency of a steady stream after the backlog run.
    #[serde(default)]
    pub freshness: Option<Freshness>,
}

/// Throughput and cost figures of one pipeline run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFigures {
    pub rows: u64,
    pub producer: ProducerFigures,
    pub consumer: ConsumerFigures,
    pub kafka_client_cpu_seconds_per_million_rows: f64,
    /// CPU seconds per million rows of each watched service process.
    pub services_cpu_seconds_per_million_rows: BTreeMap<String, f64>,
    /// Average busy cores of the whole machine during the run.
    pub machine_busy_cores: f64,
    pub end_to_end_rows_per_s: f64,
    pub end_to_end_seconds: f64,
    pub wire_bytes_per_row: f64,
    pub peak_lag_rows: u64,
    pub peak_lag_messages: u64,
    /// Parts ClickHouse created and merges it completed for the table
    /// (`system.part_log`; absent when the server keeps no part log).
    #[serde(default)]
    pub clickhouse_parts: Option<PartActivity>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProducerFigures {
    pub rows_per_s: f64,
    pub mb_per_s: f64,
    pub messages_per_s: f64,
    pub messages: u64,
    pub seconds: f64,
    pub cpu_seconds_per_million_rows: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumerFigures {
    pub rows_per_s: f64,
    pub rows_inserted: u64,
    pub seconds: f64,
    pub cpu_seconds_per_million_rows: f64,
    /// Inserts sent over all consumers, by what ended them (`rows`,
    /// `caught_up`, ...): which deadline of the insert policy made the parts.
    #[serde(default)]
    pub inserts_by_reason: BTreeMap<String, u64>,
}

/// The settings and machine the figures were measured with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub clickhouse_version: String,
    pub partitions: usize,
    pub consumers: usize,
    pub insert_streams_per_consumer: usize,
    pub transform: Option<String>,
    pub exactly_once: bool,
    pub ipc_compression: String,
    /// With LZ4: the ratio a buffer had to shrink by to be compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lz4_min_ratio: Option<f64>,
    pub kafka_compression: String,
    pub insert_compression: String,
    pub insert_rows: usize,
    /// ClickHouse shards the pipeline inserted into.
    #[serde(default = "one")]
    pub shards: usize,
    /// The `--cluster` name, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

fn one() -> usize {
    1
}

/// CPU seconds per million rows of every process of the pipeline, and the
/// end-to-end rate they allow on `cpus` cores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuBudget {
    pub cpus: f64,
    pub producer: f64,
    pub consumer: f64,
    pub kafka_client: f64,
    pub tansu: f64,
    pub clickhouse: f64,
    pub total: f64,
    pub end_to_end_ceiling_rows_per_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_file_clickhouse: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_to_end_vs_native_file_ceiling: Option<f64>,
}

/// The side-by-side measurements (`--compare`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Compared {
    #[serde(rename = "json-rows", default, skip_serializing_if = "Option::is_none")]
    pub json_rows: Option<RunFigures>,
    #[serde(
        rename = "native-file",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub native_file: Option<NativeFileResult>,
    #[serde(
        rename = "parquet-decode",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub parquet_decode: Option<DecodeResult>,
}

/// Ratios measured in one run (the performance targets are stated on them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_to_end_vs_json_rows: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_bytes_per_row_vs_json_rows: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_cpu_vs_json_rows: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_to_end_vs_native_file: Option<f64>,
    /// What the JSON ratio would be if the pipeline ran exactly as fast as
    /// ClickHouse's own insert of the same rows: no pipeline can beat it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_file_vs_json_rows: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_vs_parquet_decode: Option<f64>,
}

impl Ratios {
    /// The ratios present, by name, in a fixed order.
    pub fn entries(&self) -> Vec<(&'static str, f64)> {
        [
            ("end_to_end_vs_json_rows", self.end_to_end_vs_json_rows),
            (
                "wire_bytes_per_row_vs_json_rows",
                self.wire_bytes_per_row_vs_json_rows,
            ),
            ("consumer_cpu_vs_json_rows", self.consumer_cpu_vs_json_rows),
            ("end_to_end_vs_native_file", self.end_to_end_vs_native_file),
            ("native_file_vs_json_rows", self.native_file_vs_json_rows),
            (
                "producer_vs_parquet_decode",
                self.producer_vs_parquet_decode,
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// Rows one shard stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardRows {
    /// 1-based, in the order of the `--clickhouse-url` flags.
    pub shard: usize,
    /// The shard's replicas (credentials redacted).
    pub replicas: Vec<String>,
    /// The Kafka partitions routed to it (`p mod shards`).
    pub partitions: Vec<i32>,
    pub rows: u64,
    /// `rows` over the consumer's insert time.
    pub rows_per_s: f64,
}

impl RunFigures {
    /// The figures of one pipeline run.
    pub fn of(r: &RunResult) -> RunFigures {
        let rows = r.produce.rows.max(1) as f64;
        let p = &r.produce;
        let per_million = |cpu: f64| cpu / rows * 1e6;
        RunFigures {
            rows: r.rows_clickhouse,
            producer: ProducerFigures {
                rows_per_s: p.rows as f64 / p.elapsed_secs.max(1e-9),
                mb_per_s: p.wire_bytes as f64 / p.elapsed_secs.max(1e-9) / 1e6,
                messages_per_s: p.messages as f64 / p.elapsed_secs.max(1e-9),
                messages: p.messages,
                seconds: p.elapsed_secs,
                cpu_seconds_per_million_rows: per_million(r.cpu.producer),
            },
            consumer: ConsumerFigures {
                rows_per_s: r.rows_clickhouse as f64 / r.consumer_secs.max(1e-9),
                rows_inserted: r.consumers.iter().map(|c| c.rows_inserted).sum(),
                seconds: r.consumer_secs,
                cpu_seconds_per_million_rows: per_million(r.cpu.consumer),
                inserts_by_reason: inserts_by_reason(&r.consumers),
            },
            kafka_client_cpu_seconds_per_million_rows: per_million(r.cpu.kafka_client),
            services_cpu_seconds_per_million_rows: r
                .services_cpu
                .iter()
                .map(|(k, v)| (k.clone(), per_million(*v)))
                .collect(),
            machine_busy_cores: r.machine_busy_cores,
            end_to_end_rows_per_s: r.rows_clickhouse as f64 / r.end_to_end_secs.max(1e-9),
            end_to_end_seconds: r.end_to_end_secs,
            wire_bytes_per_row: p.wire_bytes as f64 / rows,
            peak_lag_rows: r.timeline.peak_lag_rows(),
            peak_lag_messages: peak_lag_messages(r),
            clickhouse_parts: r.parts,
        }
    }
}

/// The consumers' inserts by reason, summed.
fn inserts_by_reason(consumers: &[crate::consumer::ConsumeSummary]) -> BTreeMap<String, u64> {
    let mut sum = BTreeMap::new();
    for (reason, n) in consumers.iter().flat_map(|c| &c.inserts_by_reason) {
        *sum.entry(reason.clone()).or_insert(0) += n;
    }
    sum
}

/// Lag in messages, from lag in rows and the run's rows per message.
fn peak_lag_messages(r: &RunResult) -> u64 {
    let per_msg = r.produce.rows as f64 / r.produce.messages.max(1) as f64;
    (r.timeline.peak_lag_rows() as f64 / per_msg.max(1.0)).ceil() as u64
}

/// The side-by-side measurements of one bench run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Comparisons<'a> {
    pub json_rows: Option<&'a RunResult>,
    pub native: Option<&'a NativeFileResult>,
    pub decode: Option<&'a DecodeResult>,
}

/// What was checked against the source.
#[derive(Clone, Debug, Default)]
pub struct Validation {
    /// The table checked.
    pub table: String,
    pub rows_source: u64,
    pub differences: Vec<String>,
}

impl Report {
    /// The report of a run, its comparisons and the shards it filled.
    pub fn new(
        main: &RunResult,
        validation: Validation,
        cmp: Comparisons<'_>,
        machine: Machine,
        shards: Vec<ShardRows>,
    ) -> Report {
        let run = RunFigures::of(main);
        let compared = Compared {
            json_rows: cmp.json_rows.map(RunFigures::of),
            native_file: cmp.native.cloned(),
            parquet_decode: cmp.decode.cloned(),
        };
        let any = compared != Compared::default();
        Report {
            rows_source: validation.rows_source,
            rows_clickhouse: main.rows_clickhouse,
            validated: validation.differences.is_empty(),
            differences: validation.differences,
            table: validation.table,
            cpu_budget: cpu_budget(&run, cmp.native, machine.cpus as f64),
            ratios: any.then(|| ratios(&run, &compared)),
            compare: any.then_some(compared),
            run,
            machine,
            shards,
            freshness: None,
        }
    }
}

fn ratios(run: &RunFigures, c: &Compared) -> Ratios {
    let over = |a: f64, b: f64| a / b.max(1e-9);
    let e2e = run.end_to_end_rows_per_s;
    let json = c.json_rows.as_ref();
    Ratios {
        end_to_end_vs_json_rows: json.map(|j| over(e2e, j.end_to_end_rows_per_s)),
        wire_bytes_per_row_vs_json_rows: json
            .map(|j| over(run.wire_bytes_per_row, j.wire_bytes_per_row)),
        consumer_cpu_vs_json_rows: json.map(|j| {
            over(
                run.consumer.cpu_seconds_per_million_rows,
                j.consumer.cpu_seconds_per_million_rows,
            )
        }),
        end_to_end_vs_native_file: c.native_file.as_ref().map(|n| over(e2e, n.rows_per_s)),
        native_file_vs_json_rows: c
            .native_file
            .as_ref()
            .zip(json)
            .map(|(n, j)| over(n.rows_per_s, j.end_to_end_rows_per_s)),
        producer_vs_parquet_decode: c
            .parquet_decode
            .as_ref()
            .map(|d| over(run.producer.rows_per_s, d.rows_per_s)),
    }
}

/// What the measured CPU costs allow on this machine: every process of the
/// pipeline (producer, consumer, librdkafka, tansu, ClickHouse) shares the
/// same cores, so `cores / total CPU per row` bounds the end-to-end rate even
/// with perfect overlap; divided by the native-file rate it bounds the
/// end-to-end / native-file ratio. Needs the services' CPU (local services).
fn cpu_budget(run: &RunFigures, native: Option<&NativeFileResult>, cpus: f64) -> Option<CpuBudget> {
    let services = &run.services_cpu_seconds_per_million_rows;
    let clickhouse = *services.get("clickhouse")?;
    let tansu = services.get("tansu").copied().unwrap_or(0.0);
    if cpus <= 0.0 {
        return None;
    }
    let (producer, consumer, kafka_client) = (
        run.producer.cpu_seconds_per_million_rows,
        run.consumer.cpu_seconds_per_million_rows,
        run.kafka_client_cpu_seconds_per_million_rows,
    );
    let total = producer + consumer + kafka_client + tansu + clickhouse;
    let ceiling = cpus * 1e6 / total.max(1e-9);
    Some(CpuBudget {
        cpus,
        producer,
        consumer,
        kafka_client,
        tansu,
        clickhouse,
        total,
        end_to_end_ceiling_rows_per_s: ceiling,
        native_file_clickhouse: native.and_then(|n| n.clickhouse_cpu_seconds_per_million_rows),
        end_to_end_vs_native_file_ceiling: native.map(|n| ceiling / n.rows_per_s.max(1e-9)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn sample_machine() -> Machine {
        Machine {
            cpus: 2,
            clickhouse_version: "18.16.1".into(),
            partitions: 4,
            consumers: 1,
            insert_streams_per_consumer: 2,
            transform: None,
            exactly_once: false,
            ipc_compression: "lz4".into(),
            lz4_min_ratio: Some(2.0),
            kafka_compression: "none".into(),
            insert_compression: "none".into(),
            insert_rows: 500_000,
            shards: 2,
            cluster: Some("velostream".into()),
        }
    }

    fn sample_freshness() -> Freshness {
        Freshness {
            rate_rows_per_s: 200_000.0,
            share_of_backlog: Some(0.25),
            seconds: 30.5,
            messages: 600,
            rows: 6_000_000,
            rows_clickhouse: 6_000_000,
            latency_p50_s: 0.41,
            latency_p99_s: 0.83,
            latency_max_s: 1.02,
            poll_interval_s: 0.05,
            peak_lag_rows: 190_000,
            lag: vec![(0.0, 0), (0.25, 50_000)],
        }
    }

    /// A report with every optional part present.
    pub(crate) fn sample() -> Report {
        let figures = |e2e: f64, cpu: f64, bpr: f64| RunFigures {
            rows: 1000,
            producer: ProducerFigures {
                rows_per_s: 2e6,
                mb_per_s: 50.0,
                messages_per_s: 100.0,
                messages: 10,
                seconds: 0.5,
                cpu_seconds_per_million_rows: 0.4,
            },
            consumer: ConsumerFigures {
                rows_per_s: e2e,
                rows_inserted: 1000,
                seconds: 1.0,
                cpu_seconds_per_million_rows: cpu,
                inserts_by_reason: [("rows".to_string(), 1), ("caught_up".to_string(), 1)].into(),
            },
            kafka_client_cpu_seconds_per_million_rows: 0.03,
            services_cpu_seconds_per_million_rows: [("clickhouse".to_string(), 1.6)].into(),
            machine_busy_cores: 1.9,
            end_to_end_rows_per_s: e2e,
            end_to_end_seconds: 1.0,
            wire_bytes_per_row: bpr,
            peak_lag_rows: 500,
            peak_lag_messages: 5,
            clickhouse_parts: Some(PartActivity::new(2, 1, 1000)),
        };
        let run = figures(800_000.0, 0.26, 30.0);
        let compared = Compared {
            json_rows: Some(figures(40_000.0, 5.0, 400.0)),
            native_file: Some(NativeFileResult {
                rows: 1000,
                bytes: 60_000,
                streams: 2,
                seconds: 0.001,
                rows_per_s: 1_600_000.0,
                clickhouse_cpu_seconds_per_million_rows: Some(1.06),
                machine_busy_cores: 1.2,
                clickhouse_parts: Some(PartActivity::new(1, 0, 1000)),
            }),
            parquet_decode: Some(DecodeResult {
                rows: 1000,
                threads: 2,
                seconds: 0.0004,
                rows_per_s: 2_500_000.0,
            }),
        };
        Report {
            rows_source: 1000,
            rows_clickhouse: 1000,
            validated: true,
            differences: vec![],
            table: "velostream_bench.arrow_1".into(),
            cpu_budget: cpu_budget(&run, compared.native_file.as_ref(), 2.0),
            ratios: Some(ratios(&run, &compared)),
            compare: Some(compared),
            run,
            machine: sample_machine(),
            shards: vec![ShardRows {
                shard: 1,
                replicas: vec!["http://127.0.0.1:1".into()],
                partitions: vec![0, 2],
                rows: 500,
                rows_per_s: 500.0,
            }],
            freshness: Some(sample_freshness()),
        }
    }

    #[test]
    fn the_json_keeps_its_keys_and_reads_back_equal() {
        let r = sample();
        let text = serde_json::to_string_pretty(&r).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        // The keys scripts and dashboards read, at the places they read them.
        for path in [
            "/rows_source",
            "/rows_clickhouse",
            "/validated",
            "/end_to_end_rows_per_s",
            "/producer/rows_per_s",
            "/consumer/cpu_seconds_per_million_rows",
            "/services_cpu_seconds_per_million_rows/clickhouse",
            "/machine/clickhouse_version",
            "/cpu_budget/end_to_end_vs_native_file_ceiling",
            "/compare/json-rows/end_to_end_rows_per_s",
            "/compare/native-file/rows_per_s",
            "/compare/parquet-decode/threads",
            "/ratios/end_to_end_vs_native_file",
            "/shards/0/rows",
        ] {
            assert!(v.pointer(path).is_some(), "{path} missing in {text}");
        }
        assert_eq!(serde_json::from_str::<Report>(&text).unwrap(), r);
    }

    #[test]
    fn ratios_are_computed_from_the_figures_of_the_same_run() {
        let r = sample();
        let ratios = r.ratios.unwrap();
        assert_eq!(ratios.end_to_end_vs_json_rows, Some(20.0));
        assert_eq!(ratios.end_to_end_vs_native_file, Some(0.5));
        assert_eq!(ratios.native_file_vs_json_rows, Some(40.0));
        assert_eq!(ratios.producer_vs_parquet_decode, Some(0.8));
        assert_eq!(ratios.wire_bytes_per_row_vs_json_rows, Some(0.075));
        assert_eq!(ratios.entries().len(), 6);
        let b = r.cpu_budget.unwrap();
        assert!((b.total - (0.4 + 0.26 + 0.03 + 1.6)).abs() < 1e-9);
        assert!((b.end_to_end_ceiling_rows_per_s - 2e6 / b.total).abs() < 1e-6);
    }

    #[test]
    fn a_report_without_comparisons_or_shards_omits_them_and_a_misspelt_key_is_refused() {
        let mut r = sample();
        r.compare = None;
        r.ratios = None;
        r.cpu_budget = None;
        r.shards.clear();
        let v = serde_json::to_value(&r).unwrap();
        for k in ["compare", "ratios", "cpu_budget", "shards"] {
            assert!(v.get(k).is_none(), "{k} present");
        }
        let mut broken = v.clone();
        broken["producer"]
            .as_object_mut()
            .unwrap()
            .remove("rows_per_s");
        assert!(serde_json::from_value::<Report>(broken).is_err());
    }
}
