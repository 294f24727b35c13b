//! The locked-down DataFusion session used to plan a transform.
//!
//! Built from an empty [`SessionStateBuilder`] (not the defaults): scalar, aggregate and
//! window functions plus the expression planners are registered, but **no table
//! functions, no file formats, no table factories, no URL tables and no
//! information_schema**. The only table is `input`. Nothing in it can open a file.
//! One partition, no repartitioning, no dynamic filters: one batch in, its results out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SessionState, SessionStateBuilder, SessionStateDefaults};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::SessionConfig;

use crate::source::InputTable;
use crate::validate::INPUT_TABLE;

/// Output batch size used by operators that coalesce (filters, sorts, aggregates).
pub(crate) const BATCH_SIZE: usize = 8192;

/// Session configuration for single-partition, one-batch-at-a-time execution.
pub(crate) fn config() -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(BATCH_SIZE)
        .with_information_schema(false)
        .with_repartition_joins(false)
        .with_repartition_aggregations(false)
        .with_repartition_windows(false)
        .with_repartition_sorts(false)
        .with_repartition_file_scans(false)
        .with_round_robin_repartition(false)
        .with_coalesce_batches(false);
    let options = config.options_mut();
    // Report parse/plan errors with their spans.
    options.sql_parser.collect_spans = true;
    // Dynamic filters are shared mutable state between operators; the plan is
    // executed many times (also concurrently), so keep every operator stateless.
    options.optimizer.enable_dynamic_filter_pushdown = false;
    options.optimizer.enable_topk_dynamic_filter_pushdown = false;
    options.optimizer.enable_join_dynamic_filter_pushdown = false;
    options.optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    options.optimizer.enable_topk_repartition = false;
    config
}

/// Physical planner that counts how often it ran (planning must happen once).
#[derive(Debug)]
struct CountingPlanner {
    count: Arc<AtomicU64>,
}

#[async_trait]
impl QueryPlanner for CountingPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.count.fetch_add(1, Ordering::Relaxed);
        DefaultPhysicalPlanner::default()
            .create_physical_plan(logical_plan, session)
            .await
    }
}

/// Builds the planning session with `input` registered over `input_schema`.
/// Every physical planning pass increments `plan_count`.
pub(crate) fn planning_state(
    input_schema: SchemaRef,
    plan_count: Arc<AtomicU64>,
) -> Result<SessionState> {
    let mut state = SessionStateBuilder::new()
        .with_config(config())
        .with_expr_planners(SessionStateDefaults::default_expr_planners())
        .with_scalar_functions(SessionStateDefaults::default_scalar_functions())
        .with_aggregate_functions(SessionStateDefaults::default_aggregate_functions())
        .with_window_functions(SessionStateDefaults::default_window_functions())
        .with_query_planner(Arc::new(CountingPlanner { count: plan_count }))
        .build();
    // Fixes the query start time that now() / current_date are folded to.
    state.mark_start_execution();
    state.schema_for_ref(INPUT_TABLE)?.register_table(
        INPUT_TABLE.to_string(),
        Arc::new(InputTable::new(input_schema)),
    )?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field, Schema};

    fn state() -> SessionState {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        planning_state(schema, Arc::new(AtomicU64::new(0))).unwrap()
    }

    /// The planning session itself (below the statement validator) cannot reach files.
    #[test]
    fn session_has_no_file_access() {
        let state = state();
        assert!(
            state.table_functions().is_empty(),
            "{:?}",
            state.table_functions().keys()
        );
        assert!(state.table_factories().is_empty());
        for sql in [
            "SELECT * FROM read_parquet('/etc/passwd')",
            "SELECT * FROM read_csv('/etc/passwd')",
            "SELECT * FROM '/etc/passwd'",
            "SELECT * FROM generate_series(1, 3)",
            "SELECT * FROM information_schema.tables",
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
        ] {
            let planned = futures::executor::block_on(async {
                let plan = state.create_logical_plan(sql).await?;
                state.create_physical_plan(&plan).await
            });
            assert!(planned.is_err(), "{sql} planned: {planned:?}");
        }
        // The only table is `input`.
        let plan = futures::executor::block_on(state.create_logical_plan("SELECT a FROM input"));
        assert!(plan.is_ok(), "{plan:?}");
    }
}
