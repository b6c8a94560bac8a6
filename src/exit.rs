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

/// Why a command failed: the error, and its kind, which says what the caller can do about it.
/// [`Failure::status`] is the one place a failure becomes an exit code (the table above); below
/// the commands, errors are typed per module, and each converts into its kind here.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub error: anyhow::Error,
}

/// What a failure means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The command line, or a value given on it, is wrong.
    Usage,
    /// The definitions file is invalid (also: an exposure source without its holdout column).
    Definition,
    /// The warehouse, a query, a file or the state store failed.
    Data,
    /// Another levered process holds the state store's lock.
    Locked,
    /// A signal stopped the command.
    Stopped { signal: i32 },
}

impl Failure {
    pub fn new(kind: Kind, error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            kind,
            error: error.into(),
        }
    }

    pub fn usage(message: impl std::fmt::Display) -> Failure {
        Failure::new(Kind::Usage, anyhow::anyhow!("{message}"))
    }

    pub fn data(error: impl Into<anyhow::Error>) -> Failure {
        Failure::new(Kind::Data, error)
    }

    /// The exit code of this failure.
    pub fn status(&self) -> ExitStatus {
        match self.kind {
            Kind::Usage => ExitStatus::Usage,
            Kind::Definition => ExitStatus::InvalidDefinition,
            Kind::Data => ExitStatus::Data,
            Kind::Locked => ExitStatus::Locked,
            Kind::Stopped { signal } => ExitStatus::stopped_by(signal),
        }
    }

    /// The failure of one optimization's training run: a definition error when its exposure source
    /// lacks the holdout column the definition needs, else a data error.
    pub fn of_training(error: anyhow::Error) -> Failure {
        let kind = match error.downcast_ref::<crate::warehouse::WarehouseError>() {
            Some(crate::warehouse::WarehouseError::MissingHoldout { .. }) => Kind::Definition,
            _ => Kind::Data,
        };
        Failure::new(kind, error)
    }
}

impl From<crate::config::ConfigError> for Failure {
    fn from(error: crate::config::ConfigError) -> Failure {
        Failure::new(Kind::Definition, error)
    }
}

impl From<crate::state::StateError> for Failure {
    fn from(error: crate::state::StateError) -> Failure {
        Failure::new(Kind::Data, error)
    }
}

impl From<crate::state::LockError> for Failure {
    /// A busy store is the lock's failure; a lock file that cannot be created is a data error; a
    /// signal while waiting is the signal's.
    fn from(error: crate::state::LockError) -> Failure {
        let kind = match error {
            crate::state::LockError::Busy { .. } => Kind::Locked,
            crate::state::LockError::Io { .. } => Kind::Data,
            crate::state::LockError::Stopped { signal, .. } => Kind::Stopped { signal },
        };
        Failure::new(kind, error)
    }
}
