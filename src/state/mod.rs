//! levered's own store (runs, aggregates, arms, allocation history) and its lock.

mod columns;
mod lock;
mod schema;
mod store;

pub use lock::{acquire, lock_path, LockError, StateLock};
pub use store::{
    snapshot_path, FailedRun, LastRun, RunWrite, Served, StateError, StateStore, StoredArm,
};
