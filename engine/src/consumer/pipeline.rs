//! Start-up of the insert side once the input schema is known: plan the
//! transform, create or check the table, start the lanes.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use tokio::sync::mpsc;
use velostream_sql::Transform;

use super::config::{ConsumerConfig, LANE_DEPTH_ARROW, LANE_DEPTH_JSON};
use super::dlq::DeadLetters;
use super::lane::{Event, Lane, LaneMsg, LaneShared};
use super::table;
use crate::clickhouse::ClickHouse;
use crate::producer::MessageFormat;
use crate::Result;

/// Largest insert threshold in exactly-once mode (see `Pipeline::start`).
const EXACTLY_ONCE_MAX_INSERT_ROWS: usize = 900_000;

/// The running insert side.
#[derive(Debug)]
pub(super) struct Pipeline {
    /// The schema every message must have (`None` for JSON rows).
    pub input_schema: Option<SchemaRef>,
    pub lanes: Vec<mpsc::Sender<LaneMsg>>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Pipeline {
    /// Plans and starts everything; all configuration errors surface here,
    /// before a single message is inserted.
    pub async fn start(
        cfg: &ConsumerConfig,
        ch: &ClickHouse,
        input_schema: Option<SchemaRef>,
        dead_letters: Option<Arc<DeadLetters>>,
        events: &std_mpsc::Sender<Event>,
    ) -> Result<Pipeline> {
        let (plan, transform) = match (&cfg.format, &input_schema) {
            (MessageFormat::Arrow, Some(schema)) => {
                let transform = match &cfg.transform {
                    Some(path) => Some(Transform::from_file(path, Arc::clone(schema))?),
                    None => None,
                };
                let out_schema = transform
                    .as_ref()
                    .map_or_else(|| Arc::clone(schema), Transform::output_schema);
                (Some(table::prepare(ch, cfg, &out_schema).await?), transform)
            }
            _ => {
                if ch.table_columns(&cfg.table).await?.is_none() {
                    return Err(crate::Error::Config(format!(
                        "table {} does not exist (the JSON-rows baseline does not create tables)",
                        cfg.table
                    )));
                }
                (None, None)
            }
        };
        let shared = Arc::new(LaneShared {
            ch: ch.clone(),
            table: cfg.table.clone(),
            topic: cfg.topic.clone(),
            plan,
            transform,
            dead_letters,
            // ClickHouse stores a Native block atomically only up to
            // max_insert_block_size rows (1,048,576 by default); exactly-once
            // relies on that, so inserts stay below it (a message may add up
            // to 65,536 rows after the threshold).
            insert_rows: if cfg.exactly_once {
                cfg.insert_rows.clamp(1, EXACTLY_ONCE_MAX_INSERT_ROWS)
            } else {
                cfg.insert_rows.max(1)
            },
            insert_bytes: cfg.insert_bytes.max(1),
            max_delay: cfg.max_delay,
        });
        let mut lanes = Vec::new();
        let mut tasks = Vec::new();
        for id in 0..cfg.lanes.max(1) {
            let depth = match cfg.format {
                MessageFormat::Arrow => LANE_DEPTH_ARROW,
                MessageFormat::JsonRows => LANE_DEPTH_JSON,
            };
            let (tx, rx) = mpsc::channel(depth);
            let lane = Lane {
                id,
                shared: Arc::clone(&shared),
                data: rx,
                events: events.clone(),
                spare: None,
            };
            tasks.push(tokio::spawn(lane.run()));
            lanes.push(tx);
        }
        Ok(Pipeline {
            input_schema,
            lanes,
            tasks,
        })
    }

    /// The lane of `partition`.
    pub fn lane_of(&self, partition: i32) -> usize {
        partition.unsigned_abs() as usize % self.lanes.len()
    }
}
