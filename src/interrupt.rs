//! SIGINT and SIGTERM during `train`: the write in progress completes (each is atomic), nothing new
//! starts, a running warehouse query is cancelled, the lock is released on the way out, and the
//! process exits 130 or 143 (README "Security and operations").

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

/// The signal received, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // An atomic store and signal(2), both async-signal-safe: a second signal ends the process.
    RECEIVED.store(signal, Ordering::SeqCst);
    // SAFETY: restores the default action of the signal being handled; no memory is touched.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
    }
}

/// From now on the first SIGINT or SIGTERM is recorded instead of ending the process; a second one
/// ends it (an operator who presses Ctrl-C twice means it).
pub fn catch() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that performs a single atomic store (async-signal-safe).
        unsafe {
            libc::signal(
                signal,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

/// The signal received since `catch`, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// The signal's name, for messages.
pub fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Runs `work`; once a signal arrives meanwhile, calls `cancel` on every tick until `work` returns
/// (an engine forgets a cancel when its next statement starts), so that a long query ends early.
pub fn cancellable<T>(cancel: Option<&(dyn Fn() + Send + Sync)>, work: impl FnOnce() -> T) -> T {
    let Some(cancel) = cancel else {
        return work();
    };
    /// Stops the watcher however `work` ends, a panic included.
    struct Done<'a>(&'a AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if received().is_some() {
                    cancel();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let _done = Done(&done);
        work()
    })
}
