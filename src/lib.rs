//! levered: keeps product decisions optimized with multi-armed bandits, using data already in the
//! warehouse. The pipeline: `config` → `warehouse` → `model` → `allocation` → `report` → `state`,
//! driven by the commands in `train` and `synth`.

pub mod allocation;
pub mod cli;
mod commands;
pub mod config;
pub mod domain;
pub mod exit;
mod generator;
pub mod interrupt;
pub mod model;
pub mod output;
pub mod report;
pub mod simulate;
pub mod state;
pub mod synth;
pub mod time;
pub mod train;
pub mod validate;
pub mod warehouse;

pub use commands::run;
