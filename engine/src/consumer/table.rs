//! The target table: created from the (transformed) schema or checked
//! against it before anything is consumed, and, in exactly-once mode, the
//! offsets stored with the data.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use velostream_codecs::chtype::ChType;
use velostream_codecs::ddl::{self, CreateTable};
use velostream_codecs::mapping::{self, MappingOptions};
use velostream_codecs::native::NativeEncoder;

use super::config::{ConsumerConfig, OFFSET_COLUMN, PARTITION_COLUMN};
use crate::clickhouse::{ClickHouse, TableRef};
use crate::{Error, Result};

/// How batches of one schema are written into the table.
#[derive(Clone, Debug)]
pub struct TablePlan {
    /// The schema of the batches handed to the encoder (with the offset
    /// columns appended in exactly-once mode).
    pub batch_schema: SchemaRef,
    pub encoder: NativeEncoder,
    pub exactly_once: bool,
}

fn offset_fields() -> [Field; 2] {
    [
        Field::new(PARTITION_COLUMN, DataType::UInt32, false),
        Field::new(OFFSET_COLUMN, DataType::UInt64, false),
    ]
}

/// Creates the table when missing (if allowed) or checks the existing one
/// against `schema`. Every mismatch is reported by column name.
pub async fn prepare(ch: &ClickHouse, cfg: &ConsumerConfig, schema: &Schema) -> Result<TablePlan> {
    if let Some(i) = schema.fields().iter().position(|f| f.name().is_empty()) {
        return Err(Error::Config(format!(
            "table {}: column {} of the {} schema has an empty name, which ClickHouse \
             identifiers must not be; rename it in the source",
            cfg.table,
            i + 1,
            if cfg.transform.is_some() {
                "transform's output"
            } else {
                "topic's"
            }
        )));
    }
    let caps = ch.server_version().await?.caps();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    if cfg.exactly_once {
        fields.extend(offset_fields());
    }
    let batch_schema = Arc::new(Schema::new(fields));
    let columns = match ch.table_columns(&cfg.table).await? {
        Some(cols) => cols,
        None if cfg.create_table => {
            let columns = mapping::table_columns(&batch_schema, caps)?;
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
            .to_sql_with_comments(&mapping::table_comments(&batch_schema))?;
            ch.execute(&sql).await?;
            tracing::info!(table = %cfg.table, "created table");
            columns
        }
        None => {
            return Err(Error::Config(format!(
                "table {} does not exist; pass --create-table to create it from the {} schema",
                cfg.table,
                if cfg.transform.is_some() {
                    "transform's output"
                } else {
                    "topic's"
                }
            )))
        }
    };
    if cfg.exactly_once {
        for (name, want) in [
            (PARTITION_COLUMN, ChType::UInt32),
            (OFFSET_COLUMN, ChType::UInt64),
        ] {
            match columns.iter().find(|(n, _)| n == name) {
                Some((_, t)) if *t == want => {}
                Some((_, t)) => {
                    return Err(Error::Config(format!(
                        "table {}: exactly-once column {name} is {t}, expected {want}",
                        cfg.table
                    )))
                }
                None => {
                    return Err(Error::Config(format!(
                        "table {} has no {name} column, which --exactly-once stores offsets in; \
                         add it with ALTER TABLE … ADD COLUMN {name} {want}",
                        cfg.table
                    )))
                }
            }
        }
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

/// Next offset to consume per partition according to the data stored in
/// ClickHouse (exactly-once mode). Partitions without rows are absent.
pub async fn stored_offsets(ch: &ClickHouse, table: &TableRef) -> Result<HashMap<i32, i64>> {
    if ch.table_columns(table).await?.is_none() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT {p}, max({o}) FROM {t} GROUP BY {p} FORMAT TSV",
        p = ddl::quote_ident(PARTITION_COLUMN)?,
        o = ddl::quote_ident(OFFSET_COLUMN)?,
        t = table.sql()?
    );
    let text = ch.query_tsv(&sql).await?;
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.split('\t');
        let (Some(p), Some(o)) = (parts.next(), parts.next()) else {
            continue;
        };
        let p: i32 = p.parse().map_err(|_| bad_tsv(table, line))?;
        let o: i64 = o.parse().map_err(|_| bad_tsv(table, line))?;
        out.insert(p, o + 1);
    }
    Ok(out)
}

/// Whether rows of `partition` with offsets in `first..=last` are stored:
/// an insert is atomic, so any row means the whole insert landed.
pub async fn range_stored(
    ch: &ClickHouse,
    table: &TableRef,
    partition: i32,
    first: i64,
    last: i64,
) -> Result<bool> {
    let sql = format!(
        "SELECT count() FROM {t} WHERE {p} = {partition} AND {o} BETWEEN {first} AND {last} FORMAT TSV",
        p = ddl::quote_ident(PARTITION_COLUMN)?,
        o = ddl::quote_ident(OFFSET_COLUMN)?,
        t = table.sql()?
    );
    let text = ch.query_tsv(&sql).await?;
    Ok(text.trim().parse::<u64>().unwrap_or(0) > 0)
}

fn bad_tsv(table: &TableRef, line: &str) -> Error {
    Error::ClickHouse {
        context: format!("reading stored offsets of {table}"),
        message: format!("unexpected row {line:?}"),
        code: None,
        transient: false,
    }
}
