//! The target table: created from the (transformed) schema or checked
//! against it before anything is consumed. In exactly-once mode the table
//! must also have the bookkeeping columns and an engine the protocol covers.

use std::sync::Arc;

use arrow_schema::{Field, Schema};
use velostream_codecs::chtype::ChType;
use velostream_codecs::ddl::{self, CreateTable};
use velostream_codecs::mapping::{self, MappingOptions};
use velostream_codecs::native::NativeEncoder;

use super::config::ConsumerConfig;
use super::exactly_once;
use crate::clickhouse::{ClickHouse, TableRef};
use crate::{Error, Result};

/// How batches of one schema are written into the table.
#[derive(Clone, Debug)]
pub struct TablePlan {
    /// The schema of the batches handed to the encoder (with the
    /// exactly-once columns appended in exactly-once mode).
    pub batch_schema: Arc<Schema>,
    pub encoder: NativeEncoder,
    pub exactly_once: bool,
}

/// Creates the table when missing (if allowed) or checks the existing one
/// against `schema`. Every mismatch is reported by column name.
pub async fn prepare(ch: &ClickHouse, cfg: &ConsumerConfig, schema: &Schema) -> Result<TablePlan> {
    refuse_empty_names(cfg, schema)?;
    let caps = ch.server_version().await?.caps();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    if cfg.exactly_once {
        fields.extend(exactly_once::fields());
    }
    let batch_schema = Arc::new(Schema::new(fields));
    let columns = match ch.table_columns(&cfg.table).await? {
        Some(cols) => cols,
        None if cfg.create_table => create(ch, cfg, &batch_schema, caps).await?,
        None => {
            return Err(Error::Config(format!(
                "table {} does not exist; pass --create-table to create it from the {} schema",
                cfg.table,
                schema_origin(cfg)
            )))
        }
    };
    if cfg.exactly_once {
        check_exactly_once_columns(&cfg.table, &columns)?;
        check_exactly_once_engine(ch, &cfg.table).await?;
    }
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
    })
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
    .to_sql()?;
    ch.execute(&sql).await?;
    tracing::info!(table = %cfg.table, "created table");
    // Another member may have created it first, differently: use what exists.
    ch.table_columns(&cfg.table).await?.ok_or_else(|| {
        Error::Config(format!("table {} vanished right after CREATE", cfg.table))
    })
}

/// Every exactly-once column present with its type, or an error listing
/// the statements that add the missing ones.
pub(super) fn check_exactly_once_columns(table: &TableRef, columns: &[(String, ChType)]) -> Result<()> {
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
        assert!(engine_refusal("Distributed").unwrap().contains("--clickhouse-url"));
    }

    #[test]
    fn missing_columns_come_with_their_alter_statements() {
        let t = TableRef::new(Some("db"), "trips");
        let cols = vec![
            ("x".to_string(), ChType::Int64),
            (exactly_once::PARTITION_COLUMN.to_string(), ChType::UInt32),
            (exactly_once::OFFSET_COLUMN.to_string(), ChType::UInt64),
        ];
        let e = check_exactly_once_columns(&t, &cols).unwrap_err().to_string();
        assert!(
            e.contains("ALTER TABLE `db`.`trips` ADD COLUMN `_velostream_insert` UInt64")
                && e.contains("`_velostream_slice` UInt64")
                && !e.contains("ADD COLUMN `_velostream_offset`"),
            "{e}"
        );
        let wrong = vec![(exactly_once::PARTITION_COLUMN.to_string(), ChType::Int32)];
        let e = check_exactly_once_columns(&t, &wrong).unwrap_err().to_string();
        assert!(e.contains("is Int32, expected UInt32"), "{e}");
    }
}
