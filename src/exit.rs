//! The exit codes of every command: one table, shown in `--help` and the README.

/// What a process run of levered ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything selected ran and was written.
    Success = 0,
    /// Some optimizations failed; the others were written.
    Partial = 1,
    /// The command line could not be understood.
    Usage = 2,
    /// The YAML definitions are invalid.
    InvalidDefinition = 3,
    /// A data, SQL or engine error (the warehouse could not be read, a query failed).
    Data = 4,
    /// The state store is locked by another levered process.
    Locked = 5,
    /// SIGINT stopped the run between writes (128 + 2).
    Interrupted = 130,
    /// SIGTERM stopped the run between writes (128 + 15).
    Terminated = 143,
}

impl ExitStatus {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The status of a run stopped by `signal` (SIGINT or SIGTERM).
    pub fn stopped_by(signal: i32) -> ExitStatus {
        if signal == libc::SIGINT {
            ExitStatus::Interrupted
        } else {
            ExitStatus::Terminated
        }
    }
}

/// The table printed under `--help`.
pub const TABLE: &str = "\
Exit codes:
  0  success
  1  partial failure: some optimizations failed, the others were written
  2  usage error
  3  invalid definition (YAML file)
  4  data, SQL or engine error (also: warehouse unreachable)
  5  state store locked by another levered run
  130, 143  train stopped by SIGINT or SIGTERM: runs written before it stand, the one in progress
            wrote nothing";

/// An error that knows which exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub status: ExitStatus,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(status: ExitStatus, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            status,
            error: error.into(),
        }
    }
}

impl From<crate::state::LockError> for Failure {
    /// A busy store is the lock code; a lock file that cannot be created is a data error; a signal
    /// while waiting is the signal's code.
    fn from(error: crate::state::LockError) -> Failure {
        let status = match error {
            crate::state::LockError::Busy { .. } => ExitStatus::Locked,
            crate::state::LockError::Io { .. } => ExitStatus::Data,
            crate::state::LockError::Stopped { signal, .. } => ExitStatus::stopped_by(signal),
        };
        Failure::new(status, error)
    }
}
