//! `velostream provision`: create the topic and the table of a pipeline
//! before anything runs (what an orchestrator's first step does).

use std::path::PathBuf;
use std::sync::Arc;

use velostream_sql::Transform;

use super::consume::ClickHouseArgs;
use crate::clickhouse::TableRef;
use crate::consumer::{table, ConsumerConfig};
use crate::kafka::{admin, KafkaArgs};
use crate::source::{ParquetSource, SourceOptions};
use crate::{Error, Result};

/// Create the topic and the ClickHouse table of a pipeline (idempotent).
///
/// The topic is created with --partitions when it does not exist (an
/// existing topic is kept as is). The table is created from the schema of
/// --schema-from (transformed by --transform, with the offset columns of
/// `consume --exactly-once` when --exactly-once is given), the same way
/// `consume --create-table` would; an existing table is checked against that
/// schema and every mismatch is named.
#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,

    /// Topic to create.
    #[arg(long, env = "VELOSTREAM_TOPIC")]
    pub topic: String,

    /// Partitions of a created topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: usize,

    /// Table to create, [DATABASE.]TABLE (the database is created too).
    #[arg(long)]
    pub table: String,

    /// Parquet file whose schema the table gets.
    #[arg(long, value_name = "FILE")]
    pub schema_from: PathBuf,

    /// SQL transform the consumer will apply (the table gets its output schema).
    #[arg(long, value_name = "FILE")]
    pub transform: Option<PathBuf>,

    /// ORDER BY columns of a created table (comma separated; default tuple()).
    #[arg(long, value_delimiter = ',')]
    pub order_by: Vec<String>,

    /// Add the offset columns of `consume --exactly-once`.
    #[arg(long)]
    pub exactly_once: bool,
}

/// Creates (or checks) the topic and the table.
pub async fn provision(args: &ProvisionArgs) -> Result<usize> {
    if args.partitions == 0 {
        return Err(Error::Config("--partitions must be at least 1".into()));
    }
    let partitions = admin::ensure_topic(&args.kafka, &args.topic, Some(args.partitions)).await?;
    let src = ParquetSource::open(
        std::slice::from_ref(&args.schema_from),
        &SourceOptions::default(),
    )?;
    let schema = src.schema();
    let out_schema = match &args.transform {
        Some(path) => Transform::from_file(path, Arc::clone(&schema))?.output_schema(),
        None => schema,
    };
    let mut cfg = ConsumerConfig::new(
        args.kafka.clone(),
        &args.topic,
        "velostream-provision",
        args.clickhouse.config(),
        TableRef::parse(&args.table)?,
    );
    cfg.topology = args.clickhouse.topology()?;
    cfg.cluster = args.clickhouse.cluster.clone();
    cfg.create_table = true;
    cfg.order_by = args.order_by.clone();
    cfg.exactly_once = args.exactly_once;
    cfg.transform = args.transform.clone();
    let shards = crate::consumer::connect(&cfg).await?;
    table::prepare(&shards, &cfg, &out_schema).await?;
    Ok(partitions)
}

/// Runs `velostream provision`.
pub fn run(args: ProvisionArgs) -> Result<()> {
    let rt = super::produce::runtime()?;
    let partitions = rt.block_on(provision(&args))?;
    println!(
        "provisioned topic {} ({partitions} partitions) and table {}{}",
        args.topic,
        args.table,
        if args.exactly_once {
            " (with exactly-once offset columns)"
        } else {
            ""
        }
    );
    Ok(())
}
