//! One levered process at a time writes a state store: an advisory lock on a file beside it
//! (`File::try_lock`, an flock on Unix). The kernel releases it when the process dies, so a killed
//! run never blocks the next one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the state store {state} is locked by another levered run ({holder}); waited {waited:?}\n  hint: wait for it to finish, or raise --lock-timeout")]
    Busy {
        state: PathBuf,
        holder: String,
        waited: Duration,
    },
    #[error("cannot create the lock file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stopped by {} while waiting for the lock of the state store {state}: nothing ran", crate::interrupt::name(*.signal))]
    Stopped { state: PathBuf, signal: i32 },
}

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    state.with_file_name(name)
}

/// Takes the lock of `state`, waiting up to `timeout`.
pub fn acquire(state: &Path, timeout: Duration) -> Result<StateLock, LockError> {
    let path = lock_path(state);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    let started = Instant::now();
    loop {
        let taken = match file.try_lock() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => false,
            Err(TryLockError::Error(error)) => return Err(io(error)),
        };
        if taken {
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            let holder = format!(
                "pid {} since {}",
                std::process::id(),
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
            );
            file.write_all(holder.as_bytes()).map_err(io)?;
            file.flush().map_err(io)?;
            return Ok(StateLock { _file: file });
        }
        if let Some(signal) = crate::interrupt::received() {
            return Err(LockError::Stopped {
                state: state.to_path_buf(),
                signal,
            });
        }
        if started.elapsed() >= timeout {
            let mut holder = String::new();
            let _ = file.rewind();
            let _ = file.read_to_string(&mut holder);
            return Err(LockError::Busy {
                state: state.to_path_buf(),
                holder: if holder.trim().is_empty() {
                    "unknown holder".into()
                } else {
                    holder.trim().to_string()
                },
                waited: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
