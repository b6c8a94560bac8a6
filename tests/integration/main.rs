//! The one integration-test binary: statistics against oracles, allocation properties, SQL semantics
//! on hand-built warehouses, incremental = full, the CLI and the bundled example.

mod allocation_properties;
mod cli;
mod contextual;
mod dynamics;
mod example;
mod guardrails;
mod hostile_input;
mod incremental;
mod operations;
mod oracles;
mod reference;
mod report;
mod schema;
mod serving;
mod simulate;
#[cfg(feature = "spark")]
mod spark;
mod split;
mod sql_semantics;
mod support;
mod validate;
