//! The interpreter's exit, for threads that take the GIL back inside the package's own frames.
//!
//! Before Python 3.14, a thread other than the main one that takes the GIL back once the
//! interpreter has begun to finalize is ended with `pthread_exit`, whose forced unwind cannot
//! pass the package's Rust frames: the process aborts ("FATAL: exception not rethrown"). A daemon
//! thread woken from a blocking acquire at exit did that, and so did one that woke another
//! event loop's task (`call_soon_threadsafe` writes to the loop's socket without the GIL).
//!
//! So the package closes a gate at exit, from an `atexit` hook ([`_close_at_exit`]), which Python
//! runs before it begins to finalize. A thread about to take the GIL back in the package's frames
//! passes the gate first ([`enter`]): once it is closed, a thread other than the main one does not
//! take the GIL back: a blocking wait leaves its thread asleep for good, as Python 3.14 leaves such
//! threads, and a wake for another loop is dropped (that loop is at its end too). The hook waits,
//! with the GIL released, until the threads that passed before it closed have the GIL back
//! (a `SeqCst` pair: a thread counts itself in, then looks at the gate; the hook closes it, then
//! looks at the count, so one of the two sees the other).

use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// Closed by the exit hook.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// Threads that passed the gate and do not have the GIL back yet.
static PASSING: AtomicUsize = AtomicUsize::new(0);

/// The longest the exit hook waits for threads that passed before it closed the gate.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// A thread's pass through the gate: drop it once the GIL is held again.
#[must_use = "the pass counts until dropped, after the GIL is taken back"]
pub(crate) struct Pass(());

impl Drop for Pass {
    fn drop(&mut self) {
        PASSING.fetch_sub(1, SeqCst);
    }
}

/// Before this thread takes the GIL back in the package's frames (with or without it now):
/// a [`Pass`], or `None` once the gate is closed, in any thread but the main one (which
/// finalizes the interpreter, and is never ended by it).
pub(crate) fn enter() -> Option<Pass> {
    PASSING.fetch_add(1, SeqCst);
    if CLOSED.load(SeqCst) && !crate::blocking::in_main_thread() {
        PASSING.fetch_sub(1, SeqCst);
        return None;
    }
    Some(Pass(()))
}

/// As [`enter`], for a thread without the GIL that must not go on without it: past the closed
/// gate it sleeps until the process ends.
pub(crate) fn enter_or_sleep() -> Pass {
    match enter() {
        Some(pass) => pass,
        None => loop {
            std::thread::park();
        },
    }
}

/// The exit hook (`atexit`, registered at import): closes the gate, then lets the threads that
/// passed it before take the GIL back and finish what they were doing with it.
#[pyfunction]
pub(crate) fn _close_at_exit(py: Python<'_>) {
    CLOSED.store(true, SeqCst);
    py.allow_threads(|| {
        let start = Instant::now();
        while PASSING.load(SeqCst) != 0 && start.elapsed() < DRAIN_LIMIT {
            std::thread::sleep(Duration::from_micros(200));
        }
    });
}

/// Registers [`_close_at_exit`] with `atexit`.
pub(crate) fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let hook = wrap_pyfunction!(_close_at_exit, m)?;
    m.py().import("atexit")?.call_method1("register", (hook,))?;
    Ok(())
}
