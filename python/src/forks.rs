//! The package's own process-wide locks across a `fork`.
//!
//! A child made by `fork` has a copy of each lock as it was at the fork, and only the forking
//! thread: a lock another thread held then stays held there for ever. The wake queue's locks
//! (`aio::WakeLocks`) are taken by threads without the GIL (a blocking acquire that passes a wake
//! on as it times out, the crate's timer thread, the helper thread), so `os.fork` in a thread
//! holding the GIL does not keep them out; the child's first async wake would hang on a copy held
//! by such a thread.
//!
//! So, as the crate does for its own locks (`futex_semaphore`'s `raw::queue::fork_locks`), the
//! forking thread takes them just before each `fork` and releases them just after it, in the
//! parent and in the child (`pthread_atfork`, so any `fork` of the process, not only `os.fork`).
//! The handlers are registered at import, before the crate registers its own on the first wait:
//! `fork` runs prepare handlers in the reverse order of registration, so the crate's locks are
//! taken first, and these after them, the order in which a thread may take them (a waker the
//! crate drops may free a waiter, which takes `ORPHANS`). The fork waits only for sections that
//! end without the GIL (see `aio::WakeLocks`).
//!
//! `test_hooks.rs` has what the tests use to make a thread hold the locks until a `fork` begins.

use crate::aio;
use pyo3::prelude::*;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    /// The locks the forking thread holds across its `fork`.
    static HELD: Cell<Option<aio::WakeLocks>> = const { Cell::new(None) };
}

/// How many forks have begun (prepare handlers run) in this process: what a test hook's thread
/// waits for (`test_hooks::_hold_wake_locks`).
static FORKS_BEGUN: AtomicU64 = AtomicU64::new(0);

/// [`FORKS_BEGUN`].
pub(crate) fn forks_begun() -> u64 {
    // Relaxed: a count the test hook polls; the lock it then releases orders the rest.
    FORKS_BEGUN.load(Ordering::Relaxed)
}

extern "C" fn before() {
    // Relaxed: see `forks_begun`.
    FORKS_BEGUN.fetch_add(1, Ordering::Relaxed);
    let locks = aio::wake_locks();
    // If this thread's locals are gone (it is exiting) the locks go at once: an unguarded fork.
    let _ = HELD.try_with(|held| held.set(Some(locks)));
}

extern "C" fn after() {
    let _ = HELD.try_with(Cell::take);
}

/// Registers the handlers, once in the process; at import, with none of the locks held.
pub(crate) fn guard() -> PyResult<()> {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    let mut failed = 0;
    // SAFETY: three functions of the signature `pthread_atfork` takes, which live as long as the
    // process (an extension module is never unloaded).
    REGISTERED.call_once(|| failed = unsafe { libc::pthread_atfork(Some(before), Some(after), Some(after)) });
    if failed != 0 {
        return Err(pyo3::exceptions::PyOSError::new_err((failed, "pthread_atfork failed")));
    }
    Ok(())
}
