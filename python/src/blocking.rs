//! Blocking acquires from Python: the GIL is released while waiting, and Ctrl-C interrupts a wait
//! in the main thread.
//!
//! Python runs signal handlers only in the main thread, and only when that thread runs Python
//! code: a wait that never returns would make Ctrl-C wait with it. So the main thread looks for
//! signals at least every [`SLICE`] while it waits, and once more when the wait ends, and
//! `KeyboardInterrupt` is raised at most [`SLICE`] after Ctrl-C, with no permit lost (a permit
//! the wait took meanwhile goes back). `Semaphore` and `BoundedSemaphore` wait in one
//! piece, asked between sleeps whether to go on ([`wait_in_place`], on the crate's
//! `try_acquire_many_while`), so the main thread keeps its place in the queue and the crate's
//! starvation bound covers its whole wait; `ProcessSemaphore`, which has no queue order to keep,
//! waits in slices of the crate's timed acquire ([`wait`]; a slice that ends takes nothing).
//! Other threads get no signals; they wait in one piece, and one woken once the interpreter
//! finalizes does not take the GIL back (it stays asleep: `shutdown`).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest the main thread waits between two looks for signals.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// Python's `timeout` in seconds as a wait: `None` is without limit, a negative timeout is an
/// attempt (as in CPython), and one too large for a deadline is without limit too.
pub(crate) fn timeout_from(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() => Err(PyValueError::new_err("timeout must be a number, not NaN")),
        Some(t) if t <= 0.0 => Ok(Some(Duration::ZERO)),
        // About 31 years: beyond it, a deadline is of no use (and `Instant` may overflow).
        Some(t) if t >= 1e9 => Ok(None),
        Some(t) => Ok(Some(Duration::from_secs_f64(t))),
    }
}

thread_local! {
    /// Set while this thread waits in [`wait`] without the GIL: the only place the engine is
    /// called without it.
    static DETACHED: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is inside [`wait`] without the GIL.
pub(crate) fn detached() -> bool {
    DETACHED.with(Cell::get)
}

/// Runs `f` without the GIL, marked as [`detached`]. A thread other than the main one that
/// Python would end on taking the GIL back (the interpreter finalizing) stays asleep instead
/// (`shutdown`): it lets the GIL go and takes it back itself, where PyO3's `allow_threads` takes
/// it back at a call that cannot unwind. `f` calls no Python there (only the main thread's wait
/// looks for signals), and what the engine's wakes drop meanwhile keeps its Python objects for
/// the next delivery (`aio`'s `Waiter`).
fn detach<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    if in_main_thread() {
        return py.allow_threads(|| detached_run(f));
    }
    let _attached_again = crate::shutdown::Detached::new(py);
    detached_run(f)
}

fn detached_run<T>(f: impl FnOnce() -> T) -> T {
    /// Clears the mark however `f` ends (a panic too).
    struct Unmark;
    impl Drop for Unmark {
        fn drop(&mut self) {
            DETACHED.with(|d| d.set(false));
        }
    }
    DETACHED.with(|d| d.set(true));
    let _unmark = Unmark;
    f()
}

/// The `pthread_t` of the thread Python runs signal handlers in (`threading.main_thread()`;
/// after `fork`, the thread that forked, which Python makes the child's main thread). Set at
/// import by [`init`] and in a child by [`after_fork_in_child`]; 0 until then.
static MAIN_THREAD: AtomicU64 = AtomicU64::new(0);

/// Records Python's main thread (at import, from any thread).
pub(crate) fn init(py: Python<'_>) -> PyResult<()> {
    // Python's thread ident is the thread's `pthread_self()`, as `PyThread_get_thread_ident`.
    let ident: u64 = py.import("threading")?.call_method0("main_thread")?.getattr("ident")?.extract()?;
    // Relaxed: a plain value; the import happens-before any call that reads it.
    MAIN_THREAD.store(ident, Ordering::Relaxed);
    Ok(())
}

/// In a forked child (`os.register_at_fork(after_in_child=...)` runs in the thread that forked):
/// that thread is now the main one.
pub(crate) fn after_fork_in_child() {
    // SAFETY: `pthread_self` cannot fail.
    MAIN_THREAD.store(unsafe { libc::pthread_self() } as u64, Ordering::Relaxed);
}

/// Whether this is the thread Python runs signal handlers in. A thread-local read (no system
/// call, unlike comparing `gettid` with `getpid`): it runs before every blocking wait.
pub(crate) fn in_main_thread() -> bool {
    // SAFETY: `pthread_self` cannot fail.
    (unsafe { libc::pthread_self() } as u64) == MAIN_THREAD.load(Ordering::Relaxed)
}

/// As [`wait`], for a semaphore whose wait can ask between its sleeps whether to go on
/// (`Semaphore::try_acquire_many_while`): the main thread waits in one piece, queued from start to
/// end, and looks for signals every [`SLICE`] it sleeps (taking the GIL for the look). So its wait
/// counts whole toward the crate's starvation bound, as another thread's does; in slices it would
/// start over every [`SLICE`] and could be passed over for ever by threads that wait longer.
/// `attempt` is the wait of other threads; `give_back` returns a permit that the wait took as a
/// signal handler raised (the exception wins, and the permit is not lost).
pub(crate) fn wait_in_place<F, G>(
    py: Python<'_>,
    timeout: Option<Duration>,
    attempt: F,
    attempt_asking: G,
    give_back: impl FnOnce(Python<'_>) -> PyResult<()>,
) -> PyResult<bool>
where
    F: Fn(Option<Duration>) -> bool + Sync,
    G: Fn(Option<Instant>, Duration, &mut dyn FnMut() -> bool) -> bool + Sync,
{
    if !in_main_thread() {
        return Ok(detach(py, || attempt(timeout)));
    }
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut raised = None;
    let got = detach(py, || {
        let mut keep_waiting = || {
            // Unchecked: PyO3's first `with_gil` of a process asserts that the interpreter is
            // initialized, which a wait made during finalization (a `__del__`) is not any more.
            // SAFETY: this thread is in a call from Python, which goes on after this wait.
            unsafe {
                Python::with_gil_unchecked(|py| match py.check_signals() {
                    Ok(()) => true,
                    Err(e) => {
                        raised = Some(e);
                        false
                    }
                })
            }
        };
        attempt_asking(deadline, SLICE, &mut keep_waiting)
    });
    // A signal that came while the wait was being served is handled now, before the permit is
    // handed over: its handler's exception wins and the permit goes back, as when a handler
    // raises during the wait (`threading` runs the handler inside the wait it interrupts). Left
    // for the caller's next bytecode, the exception would come after `acquire()` had returned
    // `True`, outside the `try` that gives the permit back.
    let raised = raised.or_else(|| py.check_signals().err());
    if let Some(e) = raised {
        if got {
            // Refused only by a `BoundedSemaphore` already at its bound (the handler released a
            // permit it did not hold): every permit is free then, and the one taken is surplus.
            // The handler's exception is what the caller sees either way.
            let _ = give_back(py);
        }
        return Err(e);
    }
    Ok(got)
}

/// Waits with `attempt(timeout)` (which takes a permit, waiting at most `timeout` or without
/// limit for `None`) without the GIL, until it succeeds (`true`) or `timeout` passes (`false`).
/// In the main thread, waits in slices and raises what a signal handler raises (a permit taken
/// meanwhile goes back through `give_back`, as in [`wait_in_place`]); `between` runs between
/// slices.
pub(crate) fn wait<F>(
    py: Python<'_>,
    timeout: Option<Duration>,
    attempt: F,
    mut between: impl FnMut(),
    give_back: impl FnOnce(Python<'_>) -> PyResult<()>,
) -> PyResult<bool>
where
    F: Fn(Option<Duration>) -> bool + Sync,
{
    if !in_main_thread() {
        return Ok(detach(py, || attempt(timeout)));
    }
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let slice = deadline.map_or(SLICE, |d| d.saturating_duration_since(Instant::now()).min(SLICE));
        if detach(py, || attempt(Some(slice))) {
            // As in `wait_in_place`: a signal that came during the slice wins over the permit.
            if let Err(e) = py.check_signals() {
                give_back(py)?;
                return Err(e);
            }
            return Ok(true);
        }
        py.check_signals()?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
        between();
    }
}
