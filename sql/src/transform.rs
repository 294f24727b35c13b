//! [`Transform`]: a SELECT planned once, then applied to every incoming batch.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryExec;
use datafusion::physical_plan::{displayable, ExecutionPlan, ExecutionPlanProperties};
use datafusion::prelude::SQLOptions;
use futures::TryStreamExt;

use crate::error::{Error, Result};
use crate::locate;
use crate::session;
use crate::source::BatchSourceExec;
use crate::validate::{parse_single_select, INLINE_ORIGIN, INPUT_TABLE};

/// A SQL transform over the table `input`, planned once against the input schema and
/// then applied to every record batch without planning again.
///
/// Cheap to clone (one `Arc`); `apply` may run concurrently from many tasks.
#[derive(Clone)]
pub struct Transform {
    inner: Arc<Inner>,
}

struct Inner {
    /// File path or `<inline sql>`, for messages.
    origin: String,
    input_schema: SchemaRef,
    output_schema: SchemaRef,
    /// The physical plan over an unbound [`BatchSourceExec`]. There is deliberately no
    /// session state here: `apply` has nothing it could plan with.
    plan: Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
    /// Output partitions of `plan` (more than 1 only for UNION and similar); executed
    /// in order, so the output order is deterministic.
    partitions: usize,
    /// Serialises executions of plans whose operators share mutable state between
    /// copies (scalar sub-queries, recursive CTEs); `None` for everything else.
    exclusive: Option<tokio::sync::Mutex<()>>,
    /// Physical planning passes run for this transform (1 after construction).
    plans_built: Arc<AtomicU64>,
    /// Batches executed so far.
    batches_applied: AtomicU64,
}

impl fmt::Debug for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transform")
            .field("origin", &self.inner.origin)
            .field("output_schema", &self.inner.output_schema)
            .field("exclusive", &self.inner.exclusive.is_some())
            .finish_non_exhaustive()
    }
}

impl Transform {
    /// Reads, validates and plans the SELECT in `path` against `input_schema`.
    /// Errors name the file and, where known, the `line:column`.
    pub fn from_file(path: &Path, input_schema: SchemaRef) -> Result<Transform> {
        let sql = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::compile(&sql, &path.display().to_string(), input_schema)
    }

    /// Validates and plans `sql` against `input_schema`.
    pub fn from_sql(sql: &str, input_schema: SchemaRef) -> Result<Transform> {
        Self::compile(sql, INLINE_ORIGIN, input_schema)
    }

    /// The schema batches given to [`Transform::apply`] must have.
    pub fn input_schema(&self) -> SchemaRef {
        Arc::clone(&self.inner.input_schema)
    }

    /// The schema of every batch [`Transform::apply`] returns; fixed at planning time.
    pub fn output_schema(&self) -> SchemaRef {
        Arc::clone(&self.inner.output_schema)
    }

    /// The physical plan, indented, for logs and debugging.
    pub fn explain(&self) -> String {
        displayable(self.inner.plan.as_ref())
            .indent(false)
            .to_string()
    }

    /// Number of physical planning passes this transform has run. It is 1 once the
    /// transform exists and stays 1: [`Transform::apply`] never plans.
    pub fn planning_passes(&self) -> u64 {
        self.inner.plans_built.load(Ordering::Relaxed)
    }

    /// Number of batches executed by [`Transform::apply`] so far (all clones together).
    pub fn batches_applied(&self) -> u64 {
        self.inner.batches_applied.load(Ordering::Relaxed)
    }

    /// Runs the planned SELECT over `batch` (as the whole table `input`).
    ///
    /// The batch must carry the input schema's columns (matched by name, same types).
    /// Every returned batch has exactly [`Transform::output_schema`]; empty batches
    /// are dropped, so a filter that removes every row returns an empty `Vec`.
    /// Results may be split into several batches of at most 8192 rows.
    pub async fn apply(&self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let inner = &*self.inner;
        let batch = self.conform_input(batch)?;
        let _guard = match &inner.exclusive {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let plan = bind(&inner.plan, &batch).map_err(|e| self.exec_error(e))?;
        inner.batches_applied.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        for partition in 0..inner.partitions {
            let stream = plan
                .execute(partition, Arc::clone(&inner.task_ctx))
                .map_err(|e| self.exec_error(e))?;
            let batches: Vec<RecordBatch> =
                stream.try_collect().await.map_err(|e| self.exec_error(e))?;
            for batch in batches.into_iter().filter(|b| b.num_rows() > 0) {
                out.push(self.conform_output(batch)?);
            }
        }
        Ok(out)
    }

    fn compile(sql: &str, origin: &str, input_schema: SchemaRef) -> Result<Transform> {
        let statement = parse_single_select(sql, origin)?;
        let plans_built = Arc::new(AtomicU64::new(0));
        let plan_error = |e: DataFusionError| locate::plan_error(e, sql, origin);
        let state = session::planning_state(Arc::clone(&input_schema), Arc::clone(&plans_built))
            .map_err(plan_error)?;

        // Planning is in-memory only (no I/O, no spawned tasks), so it runs to
        // completion on the calling thread; from_file/from_sql stay synchronous.
        let logical =
            futures::executor::block_on(state.statement_to_plan(statement)).map_err(plan_error)?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&logical)
            .map_err(|e| Error::Rejected {
                origin: origin.to_string(),
                position: None,
                message: e.strip_backtrace(),
            })?;
        let plan = futures::executor::block_on(state.create_physical_plan(&logical))
            .map_err(plan_error)?;

        let shape = inspect(&plan);
        let plan_rejected = |message: String| Error::Plan {
            origin: origin.to_string(),
            position: None,
            message,
        };
        if shape.leaves == 0 {
            return Err(plan_rejected(format!(
                "the query does not read the table `{INPUT_TABLE}`, so it would return the same rows for every batch"
            )));
        }
        if shape.repartitions {
            // Never expected with target_partitions = 1; partitions are executed one
            // after the other, which a RepartitionExec could deadlock on.
            return Err(plan_rejected(format!(
                "internal: the plan repartitions its input:\n{}",
                displayable(plan.as_ref()).indent(false)
            )));
        }
        let partitions = plan.output_partitioning().partition_count();
        let output_schema = plan.schema();
        let mut seen = HashSet::new();
        for field in output_schema.fields() {
            if !seen.insert(field.name().as_str()) {
                return Err(Error::Plan {
                    origin: origin.to_string(),
                    position: None,
                    message: format!(
                        "output column \"{}\" appears more than once; give each output column a distinct alias",
                        field.name()
                    ),
                });
            }
        }

        Ok(Transform {
            inner: Arc::new(Inner {
                origin: origin.to_string(),
                input_schema,
                output_schema,
                plan,
                task_ctx: state.task_ctx(),
                partitions,
                exclusive: shape.stateful.then(|| tokio::sync::Mutex::new(())),
                plans_built,
                batches_applied: AtomicU64::new(0),
            }),
        })
    }

    /// Re-labels `batch` with the planned input schema, matching columns by name.
    fn conform_input(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let want = &self.inner.input_schema;
        let have = batch.schema();
        if Arc::ptr_eq(&have, want) {
            return Ok(batch);
        }
        let mismatch = |message: String| Error::InputSchema {
            origin: self.inner.origin.clone(),
            message,
        };
        let mut columns = Vec::with_capacity(want.fields().len());
        for (i, field) in want.fields().iter().enumerate() {
            // Fast path: same position; otherwise look the column up by name.
            let index = if have.fields().get(i).map(|f| f.name()) == Some(field.name()) {
                i
            } else {
                have.index_of(field.name()).map_err(|_| {
                    mismatch(format!(
                        "column \"{}\" is missing from the batch",
                        field.name()
                    ))
                })?
            };
            let column = batch.column(index);
            if column.data_type() != field.data_type() {
                return Err(mismatch(format!(
                    "column \"{}\" is {} in the batch but {} in the planned schema",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                )));
            }
            columns.push(Arc::clone(column));
        }
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(Arc::clone(want), columns, &options)
            .map_err(|e| mismatch(e.to_string()))
    }

    /// Guarantees the promised output schema (field metadata/nullability labels).
    fn conform_output(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let want = &self.inner.output_schema;
        if Arc::ptr_eq(&batch.schema(), want) || batch.schema() == *want {
            return Ok(batch);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(Arc::clone(want), batch.columns().to_vec(), &options)
            .map_err(|e| Error::Execution {
                origin: self.inner.origin.clone(),
                message: format!("result batch does not match the planned output schema: {e}"),
            })
    }

    fn exec_error(&self, e: DataFusionError) -> Error {
        Error::Execution {
            origin: self.inner.origin.clone(),
            message: e.strip_backtrace(),
        }
    }
}

/// What the executor needs to know about a freshly planned tree.
struct PlanShape {
    /// Number of [`BatchSourceExec`] leaves (scans of `input`).
    leaves: usize,
    /// Whether some operator shares mutable state between copies of itself.
    stateful: bool,
    /// Whether a RepartitionExec is present.
    repartitions: bool,
}

fn inspect(plan: &Arc<dyn ExecutionPlan>) -> PlanShape {
    let mut shape = PlanShape {
        leaves: 0,
        stateful: false,
        repartitions: false,
    };
    let mut stack = vec![Arc::clone(plan)];
    while let Some(node) = stack.pop() {
        if node.is::<BatchSourceExec>() {
            shape.leaves += 1;
        }
        if node.is::<ScalarSubqueryExec>() || node.is::<RecursiveQueryExec>() {
            shape.stateful = true;
        }
        if node.is::<RepartitionExec>() {
            shape.repartitions = true;
        }
        stack.extend(node.children().into_iter().cloned());
    }
    shape
}

/// Copies `plan` with every `input` leaf bound to `batch` and every operator's run-time
/// state (join build sides, sub-query results, metrics) reset. Plan properties are
/// reused, so this is a cheap tree copy, not planning.
fn bind(
    plan: &Arc<dyn ExecutionPlan>,
    batch: &RecordBatch,
) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    if let Some(leaf) = plan.downcast_ref::<BatchSourceExec>() {
        return Ok(Arc::new(leaf.with_batch(batch.clone())));
    }
    let children = plan
        .children()
        .into_iter()
        .map(|child| bind(child, batch))
        .collect::<datafusion::common::Result<Vec<_>>>()?;
    let node = if children.is_empty() {
        Arc::clone(plan)
    } else {
        replace_children_if_necessary(Arc::clone(plan), children)?
    };
    node.reset_state()
}
