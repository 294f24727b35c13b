//! `velostream verify`: does a ClickHouse table hold exactly the rows of some
//! Parquet files?

use std::path::PathBuf;
use std::sync::Arc;

use super::consume::ClickHouseArgs;
use crate::bench::shards::Servers;
use crate::bench::{checksum, expected};
use crate::clickhouse::TableRef;
use crate::source::{self, ParquetSource, SourceOptions};
use crate::{Error, Result};

/// Compare a ClickHouse table with the Parquet files it was loaded from.
///
/// Reads every row group (transformed by --transform when the consumer used
/// one), and compares the row count and, per column, the null count and a
/// sum (integers exactly, floats within 1e-9 relative, strings by byte
/// length, timestamps by seconds) with the same figures computed by
/// ClickHouse. Columns the table has beyond the source (such as the
/// exactly-once `_velostream_*` columns) are ignored. Exits non-zero and
/// lists every difference when the table does not match.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,

    /// The table to check: `db.table` or `table`.
    #[arg(long)]
    pub table: String,

    /// SQL transform the consumer applied.
    #[arg(long, value_name = "FILE")]
    pub transform: Option<PathBuf>,

    /// Parquet files, directories or globs that were produced.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
}

/// What `verify` found.
#[derive(Debug)]
pub struct Verified {
    pub rows: u64,
    pub columns: usize,
    /// Rows per shard (one entry for a single server).
    pub rows_per_shard: Vec<u64>,
}

/// Compares; an error lists the differences.
pub async fn verify(args: &VerifyArgs) -> Result<Verified> {
    let topology = args.clickhouse.topology()?;
    let servers = Servers::new(&topology, &args.clickhouse.config())?;
    let ch = servers.first().clone();
    let table = TableRef::parse(&args.table)?;
    let files = source::discover(&args.paths)?;
    let src = Arc::new(ParquetSource::open(&files, &SourceOptions::default())?);
    let transform = expected::plan_transform(&src, args.transform.as_deref())?;
    let schema = expected::output_schema(&src, transform.as_ref());
    let Some(table_columns) = ch.table_columns(&table).await? else {
        return Err(Error::Validation(format!("table {table} does not exist")));
    };
    // The table's own types decide how ClickHouse computes each sum.
    let mut columns = Vec::new();
    let mut missing = Vec::new();
    for f in schema.fields() {
        match table_columns.iter().find(|(n, _)| n == f.name()) {
            Some(c) => columns.push(c.clone()),
            None => missing.push(f.name().clone()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Validation(format!(
            "table {table} has no column(s) {missing:?} of the source"
        )));
    }
    let want = expected::prepare(&src, transform.as_ref(), &schema, &columns, None)
        .await?
        .checksum;
    let mut got = checksum::Checksum::default();
    let mut rows_per_shard = Vec::new();
    for part in servers.checksums(&table, &columns).await? {
        rows_per_shard.push(part.rows);
        got.merge(&part);
    }
    let diffs = checksum::differences(&want, &got);
    if diffs.is_empty() {
        Ok(Verified {
            rows: got.rows,
            columns: want.columns.len(),
            rows_per_shard,
        })
    } else {
        Err(Error::Validation(format!(
            "table {table} does not match {} file(s):\n  {}",
            files.len(),
            diffs.join("\n  ")
        )))
    }
}

/// Runs `velostream verify`.
pub fn run(args: VerifyArgs) -> Result<()> {
    let rt = super::produce::runtime()?;
    let v = rt.block_on(verify(&args))?;
    let shards = if v.rows_per_shard.len() > 1 {
        let per: Vec<String> = v.rows_per_shard.iter().map(u64::to_string).collect();
        format!(" (rows per shard: {})", per.join(", "))
    } else {
        String::new()
    };
    println!(
        "verified {}: {} rows, {} columns checksummed, all equal to the source{shards}",
        args.table, v.rows, v.columns
    );
    Ok(())
}
