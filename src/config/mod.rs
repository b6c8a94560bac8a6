//! YAML definitions → validated domain types.

mod definition;
mod load;
mod raw;

pub use definition::*;
pub use load::{load, name_problem, parse, ConfigError, Problem, MAX_SCAN_PARTS};
