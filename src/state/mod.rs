//! levered's own store (runs, aggregates, arms, allocation history) and its lock.

mod columns;
mod lock;
mod memory;
mod schema;
mod store;

use std::collections::BTreeMap;

use crate::domain::{ArmId, ContextKey};
use crate::time::Instant;
use crate::warehouse::BatchRow;

pub use lock::{acquire, lock_path, LockError, StateLock};
pub use memory::MemoryStore;
pub use store::{
    snapshot_path, FailedRun, LastRun, RunWrite, Served, StateError, StateStore, StoredArm,
};

/// What a training run reads from and writes to the state: [`StateStore`] (the DuckDB file) or
/// [`MemoryStore`] (the simulator's fast path, which records no failed runs: a failure ends the
/// simulation).
pub trait Store: Send {
    /// What the previous successful run of `optimization` left behind.
    fn last_run(&self, optimization: &str) -> Result<Option<LastRun>, StateError>;
    /// The next run sequence number (failed runs count too).
    fn next_seq(&self, optimization: &str) -> Result<i64, StateError>;
    /// Every arm with its lifecycle, by arm id.
    fn arms(&self, optimization: &str) -> Result<Vec<StoredArm>, StateError>;
    /// Stored batch aggregates that start before `before` (all when `None`), by batch start,
    /// context, arm id and holdout.
    fn batches(
        &self,
        optimization: &str,
        before: Option<Instant>,
    ) -> Result<Vec<BatchRow>, StateError>;
    /// The weights of the latest allocation, by context and arm id.
    fn last_weights(
        &self,
        optimization: &str,
    ) -> Result<BTreeMap<(ContextKey, ArmId), f64>, StateError>;
    /// The weights every successful run published, by `as_of` (see [`StateStore::served`]).
    fn served(&self, optimization: &str, recent_from: Instant) -> Result<Vec<Served>, StateError>;
    /// Writes a successful run, whole or not at all.
    fn commit(&mut self, w: &RunWrite<'_>) -> Result<(), StateError>;
}

impl Store for StateStore {
    fn last_run(&self, optimization: &str) -> Result<Option<LastRun>, StateError> {
        StateStore::last_run(self, optimization)
    }

    fn next_seq(&self, optimization: &str) -> Result<i64, StateError> {
        StateStore::next_seq(self, optimization)
    }

    fn arms(&self, optimization: &str) -> Result<Vec<StoredArm>, StateError> {
        StateStore::arms(self, optimization)
    }

    fn batches(
        &self,
        optimization: &str,
        before: Option<Instant>,
    ) -> Result<Vec<BatchRow>, StateError> {
        StateStore::batches(self, optimization, before)
    }

    fn last_weights(
        &self,
        optimization: &str,
    ) -> Result<BTreeMap<(ContextKey, ArmId), f64>, StateError> {
        StateStore::last_weights(self, optimization)
    }

    fn served(&self, optimization: &str, recent_from: Instant) -> Result<Vec<Served>, StateError> {
        StateStore::served(self, optimization, recent_from)
    }

    fn commit(&mut self, w: &RunWrite<'_>) -> Result<(), StateError> {
        StateStore::commit(self, w)
    }
}
