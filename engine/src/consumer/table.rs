//! The target table: created from the (transformed) schema or checked
//! against it before anything is consumed. In exactly-once mode the table
//! must also have the bookkeeping columns and an engine the protocol covers.

use std::sync::Arc;

use arrow_schema::{Field, Schema};
use velostream_codecs::chtype::ChType;
use velostream_codecs::ddl::{self, CreateTable, TableEngine};
use velostream_codecs::mapping::{self, MappingOptions};
use velostream_codecs::native::NativeEncoder;

use super::config::ConsumerConfig;
use super::exactly_once;
use crate::clickhouse::{ClickHouse, Shard, TableRef};
use crate::{Error, Result};

/// How batches of one schema are written into the table.
#[derive(Clone, Debug)]
pub struct TablePlan {
    /// The schema of the batches handed to the encoder (with the
    /// exactly-once columns appended in exactly-once mode).
    pub batch_schema: Arc<Schema>,
    pub encoder: NativeEncoder,
    pub exactly_once: bool,
    /// The insert's column list when the table has columns the batches do
    /// not fill (`--evolve`: nullable columns this schema lacks read NULL).
    pub insert_columns: Option<Vec<String>>,
}

/// Creates the table where it is missing (if allowed) or checks the
/// existing one against `schema`, on every server of every shard. Every
/// mismatch is reported by column name (and server URL).
pub async fn prepare(
    shards: &[Arc<Shard>],
    cfg: &ConsumerConfig,
    schema: &Schema,
) -> Result<TablePlan> {
    refuse_empty_names(cfg, schema)?;
    let caps = shards[0].replicas()[0].server_version().await?.caps();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    if cfg.exactly_once {
        fields.extend(exactly_once::fields());
    }
    let batch_schema = Arc::new(Schema::new(fields));
    if cfg.evolve {
        super::evolve::apply(shards, cfg, &batch_schema, caps).await?;
    }
    let mut reference: Option<(String, Vec<(String, ChType)>)> = None;
    for shard in shards {
        for ch in shard.replicas() {
            let columns = columns_on(ch, shard, cfg, &batch_schema, caps).await?;
            if cfg.exactly_once {
                check_exactly_once_columns(&cfg.table, &columns)?;
                check_exactly_once_engine(ch, &cfg.table).await?;
            }
            match &reference {
                None => reference = Some((ch.config().url.clone(), columns)),
                Some((url, cols)) => {
                    same_columns(&cfg.table, url, cols, &ch.config().url, &columns)?
                }
            }
        }
    }
    if let (true, Some(cluster)) = (cfg.create_table, &cfg.cluster) {
        create_distributed(shards, cfg, cluster).await?;
    }
    let (_, columns) = reference.expect("a topology has at least one server");
    let (columns, insert_columns) = filled_columns(cfg, columns, &batch_schema)?;
    let encoder = NativeEncoder::new(
        &batch_schema,
        &columns,
        MappingOptions {
            allow_truncation: cfg.allow_truncation,
        },
    )
    .map_err(|e| match e {
        velostream_codecs::CodecError::SchemaMismatch(m) => Error::Config(format!(
            "table {} does not fit the incoming data: {m}",
            cfg.table
        )),
        other => Error::Codec(other),
    })?;
    Ok(TablePlan {
        batch_schema,
        encoder,
        exactly_once: cfg.exactly_once,
        insert_columns,
    })
}

/// A table's columns, as (name, type).
type Columns = Vec<(String, ChType)>;

/// With `--evolve`, the table's columns the batches fill, and the insert's
/// column list when some (nullable) columns are left out; without it every
/// column must be filled (the encoder says which are not).
fn filled_columns(
    cfg: &ConsumerConfig,
    columns: Columns,
    batch_schema: &Schema,
) -> Result<(Columns, Option<Vec<String>>)> {
    if !cfg.evolve {
        return Ok((columns, None));
    }
    let omitted = velostream_codecs::evolve::omitted_columns(&columns, batch_schema)
        .map_err(|e| Error::SchemaChange(format!("table {}: {e}", cfg.table)))?;
    if omitted.is_empty() {
        return Ok((columns, None));
    }
    let filled: Vec<(String, ChType)> = columns
        .into_iter()
        .filter(|(n, _)| !omitted.contains(n))
        .collect();
    let list = filled.iter().map(|(n, _)| n.clone()).collect();
    Ok((filled, Some(list)))
}

/// The table's columns on one server, creating the table there if allowed.
async fn columns_on(
    ch: &ClickHouse,
    shard: &Shard,
    cfg: &ConsumerConfig,
    batch_schema: &Schema,
    caps: mapping::ServerCaps,
) -> Result<Vec<(String, ChType)>> {
    match ch.table_columns(&cfg.table).await? {
        Some(cols) => Ok(cols),
        None if cfg.create_table => {
            create(ch, cfg, batch_schema, caps, &engine_for(shard, cfg)?).await
        }
        None => Err(Error::Config(format!(
            "table {} does not exist on {}; pass --create-table to create it from the {} schema",
            cfg.table,
            ch.config().url,
            schema_origin(cfg)
        ))),
    }
}

/// `MergeTree` on a single-server shard; `ReplicatedMergeTree` (paths and
/// replica names from each server's macros) where the shard has replicas,
/// which needs `--cluster` to say the servers are set up for it.
fn engine_for(shard: &Shard, cfg: &ConsumerConfig) -> Result<TableEngine> {
    match (shard.replicas().len(), &cfg.cluster) {
        (1, _) => Ok(TableEngine::MergeTree),
        (_, Some(_)) => Ok(TableEngine::ReplicatedMergeTree),
        (n, None) => Err(Error::Config(format!(
            "shard {} has {n} replicas: pass --cluster NAME (the servers' remote_servers) so that \
             --create-table can create {} as a ReplicatedMergeTree on each, or create it yourself",
            shard.index + 1,
            cfg.table
        ))),
    }
}

/// The same columns (names and types, in any order) on two servers.
fn same_columns(
    table: &TableRef,
    url_a: &str,
    a: &[(String, ChType)],
    url_b: &str,
    b: &[(String, ChType)],
) -> Result<()> {
    let sorted = |c: &[(String, ChType)]| {
        let mut v: Vec<String> = c.iter().map(|(n, t)| format!("{n} {t}")).collect();
        v.sort();
        v
    };
    let (sa, sb) = (sorted(a), sorted(b));
    if sa == sb {
        return Ok(());
    }
    let only_a: Vec<&String> = sa.iter().filter(|c| !sb.contains(c)).collect();
    let only_b: Vec<&String> = sb.iter().filter(|c| !sa.contains(c)).collect();
    Err(Error::Config(format!(
        "table {table} differs between servers: {url_a} has {only_a:?} where {url_b} has {only_b:?}"
    )))
}

/// `<table>_distributed` on every server, reading across the cluster.
async fn create_distributed(
    shards: &[Arc<Shard>],
    cfg: &ConsumerConfig,
    cluster: &str,
) -> Result<()> {
    let db = cfg
        .table
        .database
        .clone()
        .unwrap_or_else(|| "default".into());
    let sql = ddl::create_distributed(
        cluster,
        &db,
        &cfg.table.table,
        &distributed_name(&cfg.table),
    )?;
    for shard in shards {
        for ch in shard.replicas() {
            ch.execute(&sql).await?;
        }
    }
    tracing::info!(table = %cfg.table, "created {} for reads across the cluster", distributed_name(&cfg.table));
    Ok(())
}

/// The name of the Distributed table created with `--cluster`.
pub fn distributed_name(table: &TableRef) -> String {
    format!("{}_distributed", table.table)
}

fn schema_origin(cfg: &ConsumerConfig) -> &'static str {
    if cfg.transform.is_some() {
        "transform's output"
    } else {
        "topic's"
    }
}

fn refuse_empty_names(cfg: &ConsumerConfig, schema: &Schema) -> Result<()> {
    match schema.fields().iter().position(|f| f.name().is_empty()) {
        Some(i) => Err(Error::Config(format!(
            "table {}: column {} of the {} schema has an empty name, which ClickHouse \
             identifiers must not be; rename it in the source",
            cfg.table,
            i + 1,
            schema_origin(cfg)
        ))),
        None => Ok(()),
    }
}

async fn create(
    ch: &ClickHouse,
    cfg: &ConsumerConfig,
    batch_schema: &Schema,
    caps: mapping::ServerCaps,
    engine: &TableEngine,
) -> Result<Vec<(String, ChType)>> {
    let columns = mapping::table_columns(batch_schema, caps)?;
    if let Some(db) = &cfg.table.database {
        ch.execute(&format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            ddl::quote_ident(db)?
        ))
        .await?;
    }
    let sql = CreateTable {
        database: cfg.table.database.as_deref(),
        table: &cfg.table.table,
        columns: &columns,
        order_by: &cfg.order_by,
        if_not_exists: true,
    }
    .render(engine, &mapping::table_comments(batch_schema))?;
    ch.execute(&sql).await?;
    tracing::info!(table = %cfg.table, server = %ch.config().url, ?engine, "created table");
    // Another member may have created it first, differently: use what exists.
    ch.table_columns(&cfg.table)
        .await?
        .ok_or_else(|| Error::Config(format!("table {} vanished right after CREATE", cfg.table)))
}

/// Every exactly-once column present with its type, or an error listing
/// the statements that add the missing ones.
pub(super) fn check_exactly_once_columns(
    table: &TableRef,
    columns: &[(String, ChType)],
) -> Result<()> {
    let mut missing = Vec::new();
    for (name, want) in exactly_once::COLUMNS {
        match columns.iter().find(|(n, _)| n == name) {
            Some((_, t)) if *t == want => {}
            Some((_, t)) => {
                return Err(Error::Config(format!(
                    "table {table}: exactly-once column {name} is {t}, expected {want}"
                )))
            }
            None => missing.push(format!(
                "ALTER TABLE {} ADD COLUMN {} {want}",
                table.sql()?,
                ddl::quote_ident(name)?
            )),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "table {table} lacks the columns --exactly-once stores its bookkeeping in; add them with: {}",
        missing.join("; ")
    )))
}

/// Whether the exactly-once protocol covers the table's engine: it needs
/// atomic parts, `ALTER TABLE … DELETE` and rows that merges never combine.
pub fn engine_refusal(engine: &str) -> Option<&'static str> {
    match engine {
        "MergeTree" | "ReplicatedMergeTree" => None,
        "Distributed" => Some(
            "a Distributed table forwards inserts to the shards later and in pieces; insert into \
             each shard's local table instead (one --clickhouse-url per shard, see README \"Clusters\")",
        ),
        "Buffer" => Some("a Buffer table flushes rows to its destination later, in pieces"),
        e if e.ends_with("MergeTree") => Some(
            "merges of this engine combine or drop rows, so stored rows cannot be counted \
             against what was sent; use MergeTree or ReplicatedMergeTree",
        ),
        "View" | "MaterializedView" => Some("insert into the view's target table instead"),
        _ => Some(
            "it has no atomic inserts and no ALTER TABLE … DELETE; use MergeTree or \
             ReplicatedMergeTree",
        ),
    }
}

async fn check_exactly_once_engine(ch: &ClickHouse, table: &TableRef) -> Result<()> {
    let engine = ch.table_engine(table).await?.unwrap_or_default();
    match engine_refusal(&engine) {
        None => Ok(()),
        Some(why) => Err(Error::Config(format!(
            "--exactly-once cannot cover table {table} (engine {engine}): {why}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_the_protocol_covers() {
        assert_eq!(engine_refusal("MergeTree"), None);
        assert_eq!(engine_refusal("ReplicatedMergeTree"), None);
        for e in [
            "Distributed",
            "Buffer",
            "ReplacingMergeTree",
            "ReplicatedSummingMergeTree",
            "CollapsingMergeTree",
            "AggregatingMergeTree",
            "Log",
            "Memory",
            "MaterializedView",
            "",
        ] {
            assert!(engine_refusal(e).is_some(), "{e} must be refused");
        }
        assert!(engine_refusal("Distributed")
            .unwrap()
            .contains("--clickhouse-url"));
    }

    #[test]
    fn missing_columns_come_with_their_alter_statements() {
        let t = TableRef::new(Some("db"), "trips");
        let cols = vec![
            ("x".to_string(), ChType::Int64),
            (exactly_once::PARTITION_COLUMN.to_string(), ChType::UInt32),
            (exactly_once::OFFSET_COLUMN.to_string(), ChType::UInt64),
        ];
        let e = check_exactly_once_columns(&t, &cols)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ALTER TABLE `db`.`trips` ADD COLUMN `_velostream_insert` UInt64")
                && e.contains("`_velostream_slice` UInt64")
                && !e.contains("ADD COLUMN `_velostream_offset`"),
            "{e}"
        );
        let wrong = vec![(exactly_once::PARTITION_COLUMN.to_string(), ChType::Int32)];
        let e = check_exactly_once_columns(&t, &wrong)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is Int32, expected UInt32"), "{e}");
    }
}
