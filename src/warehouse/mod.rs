//! The only code that talks to an engine: opening the warehouse and running the generated SQL.

mod duckdb;
mod scan;
mod sql;

pub use self::duckdb::{ColumnKind, DuckDb, WarehouseError};
pub use scan::{floor_to, BatchRow, ScanPlan, ScanResult, BEGINNING_US};
pub use sql::{aggregation, canonical_variant, Unmatched};

/// What training needs from an engine: the aggregates of a scan plan (DESIGN §4.2), and a version
/// for the run record. The embedded DuckDB is the engine of every warehouse; the simulator's fast
/// path brings its own.
pub trait Engine {
    fn aggregate(&self, plan: &ScanPlan<'_>) -> Result<ScanResult, WarehouseError>;
    fn version(&self) -> String;
}

impl Engine for DuckDb {
    fn aggregate(&self, plan: &ScanPlan<'_>) -> Result<ScanResult, WarehouseError> {
        DuckDb::aggregate(self, plan)
    }

    fn version(&self) -> String {
        DuckDb::version(self)
    }
}
