//! `levered train`: for each selected optimization, scan the warehouse for what changed, update the
//! stored aggregates, fit the posteriors, decide the allocation and write everything at once.

mod decide;
mod diagnose;
mod evidence;
mod evolve;
mod fit;
#[cfg(test)]
mod fixture;
mod generation;
mod guard;
mod persist;
mod plan;
mod record;
mod roster;
mod run;
mod tally;

use fit::ArmComparison;
pub use run::{train, train_in, Outcome, TrainOptions};
