//! The only code that talks to an engine: opening the warehouse and running the generated SQL.

mod duckdb;
mod scan;
mod sql;

pub use self::duckdb::{ColumnKind, DuckDb, WarehouseError};
pub use scan::{floor_to, BatchRow, ScanPlan, ScanResult, BEGINNING_US};
pub use sql::{aggregation, canonical_variant, Unmatched};
