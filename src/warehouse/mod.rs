//! The only code that talks to an engine: opening the warehouse and running the generated SQL.
//! Two engines implement the seam: the embedded DuckDB (`duckdb.rs`, the default) and Apache Spark
//! through Spark Connect (`spark.rs`, cargo feature `spark`). What the SQL says is decided once, in
//! `sql.rs` (per [`Dialect`]), and what its rows mean once, in `query.rs`.

pub mod contract;
mod duckdb;
mod parquet;
mod query;
mod scan;
#[cfg(feature = "spark")]
mod spark;
mod split;
mod sql;
mod statement;
mod template;

use crate::config::{Optimization, Warehouse, WarehouseSource};
use crate::time::Instant;

pub use self::duckdb::DuckDb;
pub use query::{hint_for, AggregateRow, Backend, Param, Params, TextPair};
pub use scan::{
    batch_rows, final_until, BatchRow, CellKey, CellSums, GuardrailSums, MetricMicros, ScanPlan,
    ScanResult,
};
#[cfg(feature = "spark")]
pub use spark::Spark;
pub use split::Split;
pub use sql::{aggregation, canonical_variant, Dialect, Unmatched};

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("cannot open the warehouse {location}: {message}\n  hint: {hint}")]
    Open {
        /// The path or the endpoint.
        location: String,
        message: String,
        hint: &'static str,
    },
    #[error("optimization `{optimization}`: the aggregation over exposures and metric `{metric}` failed: {message}\n  hint: {hint}")]
    Query {
        optimization: String,
        metric: String,
        message: String,
        hint: String,
    },
    /// The definition asks for something the data cannot give (an invalid definition, exit 3).
    #[error("optimization `{optimization}` has a holdout, but its exposures have no `{column}` column\n  hint: add a BOOLEAN `{column}` column (true for visitors held out on the baseline), map it under exposures.columns.holdout, or remove model.holdout")]
    MissingHoldout {
        optimization: String,
        column: String,
    },
}

/// Why an engine did not answer a query: a `$name` levered does not bind, or the engine's own
/// message (one line, with the table and file behind it where a Parquet folder can tell).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("the SQL uses the parameter `${0}`; only $start and $end are bound")]
    UnknownParameter(String),
    #[error("{0}")]
    Failed(String),
    /// The engine answered with something other than the rows levered asked for.
    #[error("{0}")]
    Unexpected(String),
}

/// The kind of a column, as far as the warehouse contract cares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ColumnKind {
    Text,
    Timestamp,
    Numeric,
    Boolean,
    Other(String),
}

/// What training needs from an engine: the aggregates of a scan plan (docs/design.md §2.9), and a version
/// for the run record. The warehouse's engines and the simulator's in-memory fast path implement it.
pub trait Engine {
    fn aggregate(&self, plan: &ScanPlan<'_>) -> Result<ScanResult, WarehouseError>;
    fn version(&self) -> String;
    /// Cancels the query running on another thread, where the engine can (a signal stops a run).
    fn canceller(&self) -> Option<Cancel> {
        None
    }
}

/// Cancels an engine's running query from another thread.
pub type Cancel = std::sync::Arc<dyn Fn() + Send + Sync>;

/// An engine that runs SQL: what `validate` needs besides.
pub trait SqlEngine: Engine {
    /// The columns of a user relation (`exposures.table`/`exposures.sql` or a metric's SQL as a
    /// subquery), bound by the engine without reading data; `$start`/`$end` are bound to the range.
    fn columns(
        &self,
        relation: &str,
        start: Instant,
        end: Instant,
    ) -> Result<Vec<(String, ColumnKind)>, EngineError>;
    /// The relation of an optimization's exposure source, as the aggregation reads it.
    fn exposure_relation(&self, optimization: &Optimization) -> String;
}

impl<B: Backend> Engine for B {
    fn aggregate(&self, plan: &ScanPlan<'_>) -> Result<ScanResult, WarehouseError> {
        query::aggregate(self, plan)
    }

    fn version(&self) -> String {
        Backend::version(self)
    }

    fn canceller(&self) -> Option<Cancel> {
        Backend::canceller(self)
    }
}

impl<B: Backend> SqlEngine for B {
    fn columns(
        &self,
        relation: &str,
        start: Instant,
        end: Instant,
    ) -> Result<Vec<(String, ColumnKind)>, EngineError> {
        query::columns(self, relation, start, end)
    }

    fn exposure_relation(&self, optimization: &Optimization) -> String {
        query::exposure_relation(self, optimization)
    }
}

/// Opens the warehouse's engine: the embedded DuckDB for a path, Spark Connect for `engine: spark`.
pub fn open(warehouse: &Warehouse) -> Result<Box<dyn SqlEngine>, WarehouseError> {
    match &warehouse.source {
        WarehouseSource::DuckDbFile(_) | WarehouseSource::ParquetFolder(_) => {
            Ok(Box::new(DuckDb::open(warehouse)?))
        }
        #[cfg(feature = "spark")]
        WarehouseSource::Spark { remote } => Ok(Box::new(Spark::open(remote, warehouse)?)),
        #[cfg(not(feature = "spark"))]
        WarehouseSource::Spark { remote } => Err(WarehouseError::Open {
            location: remote.clone(),
            message: "this build of levered has no Spark engine".into(),
            hint: "build levered with `cargo build --release --features spark` (needs protoc)",
        }),
    }
}
