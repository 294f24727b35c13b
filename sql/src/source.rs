//! The `input` table: a planning-time table provider whose scan is a one-batch leaf.
//!
//! At start-up the physical plan is built over a [`BatchSourceExec`] without a batch.
//! For every incoming batch the executor rebuilds only the path from the root to that
//! leaf, with a leaf bound to the new batch; nothing is planned again.

use std::fmt;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_err, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions, SendableRecordBatchStream,
};

/// Table provider registered as `input`; only used while planning.
#[derive(Debug)]
pub(crate) struct InputTable {
    schema: SchemaRef,
}

impl InputTable {
    pub(crate) fn new(schema: SchemaRef) -> Self {
        Self { schema }
    }
}

#[async_trait]
impl TableProvider for InputTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Filters are not pushed down (the default) and the limit is only a hint: the
        // plan keeps its FilterExec / limit nodes above this leaf.
        Ok(Arc::new(BatchSourceExec::new(
            &self.schema,
            projection.cloned(),
        )?))
    }
}

/// Leaf node yielding (a projection of) exactly one bound record batch, in one partition.
///
/// Reports unknown statistics so that no optimizer rule can fold the placeholder's
/// contents into the plan.
#[derive(Debug, Clone)]
pub(crate) struct BatchSourceExec {
    /// Column indices of the table schema this leaf outputs (`None`: all).
    projection: Option<Vec<usize>>,
    /// The batch of the current execution, already in the table schema.
    batch: Option<RecordBatch>,
    /// Shared so that ancestors see identical properties and skip recomputation.
    properties: Arc<PlanProperties>,
}

impl BatchSourceExec {
    fn new(table_schema: &SchemaRef, projection: Option<Vec<usize>>) -> Result<Self> {
        let schema = match &projection {
            Some(p) => Arc::new(table_schema.project(p)?),
            None => Arc::clone(table_schema),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            projection,
            batch: None,
            properties: Arc::new(properties),
        })
    }

    /// A copy of this leaf bound to `batch` (which must be in the table schema).
    pub(crate) fn with_batch(&self, batch: RecordBatch) -> Self {
        Self {
            projection: self.projection.clone(),
            batch: Some(batch),
            properties: Arc::clone(&self.properties),
        }
    }
}

impl DisplayAs for BatchSourceExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "BatchSourceExec: projection={:?}", self.projection)
    }
}

impl ExecutionPlan for BatchSourceExec {
    fn name(&self) -> &str {
        "BatchSourceExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return internal_err!("BatchSourceExec has no children");
        }
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(
                datafusion::physical_plan::ChildrenPropertiesMode::Recompute,
            ),
        )
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("BatchSourceExec has one partition, asked for {partition}");
        }
        let Some(batch) = &self.batch else {
            return internal_err!("BatchSourceExec executed without a bound batch");
        };
        let batch = match &self.projection {
            Some(p) => batch.project(p)?,
            None => batch.clone(),
        };
        let schema = Arc::clone(self.properties.eq_properties.schema());
        Ok(Box::pin(MemoryStream::try_new(vec![batch], schema, None)?))
    }
}
