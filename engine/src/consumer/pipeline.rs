//! Start-up of the insert side once the input schema is known: plan the
//! transform, create or check the table, start the lanes.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::SchemaRef;
use tokio::sync::mpsc;
use velostream_sql::Transform;

use super::config::{ConsumerConfig, LANE_DEPTH};
use super::core::batcher::FlushPolicy;
use super::dlq::DeadLetters;
use super::item::{Event, LaneMsg};
use super::lane::{Lane, LaneShared};
use super::shared::{lock, Shared};
use super::table;
use super::target::Target;
use crate::producer::MessageFormat;
use crate::Result;

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
        shared: &Shared,
        input_schema: Option<SchemaRef>,
        dead_letters: Option<Arc<DeadLetters>>,
        events: &std_mpsc::Sender<Event>,
    ) -> Result<Pipeline> {
        let cfg = &shared.cfg;
        let (plan, transform) = plan(shared, cfg, input_schema.as_ref()).await?;
        let budget = shared.memory.budget();
        // Lane l serves shard l mod shards (see Topology::lanes_for).
        let lanes = cfg.topology.lanes_for(cfg.lanes);
        let policy = FlushPolicy::new(
            cfg.insert_rows,
            cfg.insert_bytes.min(budget.insert_bytes_per_lane(lanes)),
            cfg.max_delay,
        );
        let lane_shared = Arc::new(LaneShared {
            table: cfg.table.clone(),
            topic: cfg.topic.clone(),
            plan,
            transform,
            dead_letters,
            policy,
            ownership: Arc::clone(&shared.ownership),
            memory: Arc::clone(&shared.memory),
            insert_settings: cfg.insert_settings.clone(),
            caught_up: Arc::clone(&shared.caught_up),
            behind: Arc::clone(&shared.behind),
            inserts: Arc::clone(&shared.inserts),
        });
        let mut senders = Vec::new();
        let mut tasks = Vec::new();
        for id in 0..lanes {
            let (tx, rx) = mpsc::channel(LANE_DEPTH);
            let shard = id % shared.shards.len();
            let target = Target {
                shard: Arc::clone(&shared.shards[shard]),
                eo: shared.eo.as_ref().map(|eo| eo[shard].clone()),
            };
            let lane = Lane::new(id, Arc::clone(&lane_shared), target, rx, events.clone());
            tasks.push(tokio::spawn(lane.run()));
            senders.push(tx);
        }
        Ok(Pipeline {
            input_schema,
            lanes: senders,
            tasks,
        })
    }

    /// Waits until the lanes have inserted everything they hold (the
    /// stored offsets are then applied), and stops them.
    pub fn stop(self, shared: &Shared) -> Result<()> {
        let flushed = shared
            .flush_lanes(Duration::from_secs(24 * 3600))
            .map(|_| ());
        lock(&shared.lanes).clear();
        drop(self.lanes);
        for t in self.tasks {
            let _ = shared.rt.block_on(t);
        }
        flushed.and(shared.apply_events())
    }

    /// The lane of `partition`.
    pub fn lane_of(&self, partition: i32) -> usize {
        partition.unsigned_abs() as usize % self.lanes.len()
    }
}

/// The table plan and the transform for the input schema.
async fn plan(
    shared: &Shared,
    cfg: &ConsumerConfig,
    input_schema: Option<&SchemaRef>,
) -> Result<(Option<table::TablePlan>, Option<Transform>)> {
    match (&cfg.format, input_schema) {
        (MessageFormat::Arrow, Some(schema)) => {
            let transform = match &cfg.transform {
                Some(path) => Some(Transform::from_file(path, Arc::clone(schema))?),
                None => None,
            };
            let out_schema = transform
                .as_ref()
                .map_or_else(|| Arc::clone(schema), Transform::output_schema);
            let plan = table::prepare(&shared.shards, cfg, &out_schema).await?;
            Ok((Some(plan), transform))
        }
        _ => {
            let ch = &shared.shards[0].replicas()[0];
            if ch.table_columns(&cfg.table).await?.is_none() {
                return Err(crate::Error::Config(format!(
                    "table {} does not exist (the JSON-rows baseline does not create tables)",
                    cfg.table
                )));
            }
            Ok((None, None))
        }
    }
}
