//! YAML definitions → validated domain types.

mod definition;
mod duration;
mod load;
mod raw;

pub use definition::*;
pub use duration::Span;
pub use load::{load, name_problem, parse, ConfigError, Problem};
