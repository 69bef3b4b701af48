//! `futex_semaphore` for Python: the crate's semaphores behind the APIs Python users know.
//!
//! | Python class | stands in for | wraps |
//! |---|---|---|
//! | `Semaphore`, `BoundedSemaphore` | `threading.Semaphore`, `threading.BoundedSemaphore` | [`futex_semaphore::Semaphore`], [`futex_semaphore::BoundedSemaphore`] |
//! | `AsyncSemaphore`, `AsyncBoundedSemaphore` | `asyncio.Semaphore`, `asyncio.BoundedSemaphore` | the same two |
//! | `ProcessSemaphore` | `multiprocessing.Semaphore` | [`futex_semaphore::ProcessSemaphore`] |
//!
//! - `engine`: the two in-process semaphores behind one enum, Python's count-based acquire and
//!   release on top of the crate's guards (a taken permit is `forget`-ed; `release` adds it back).
//! - `blocking`: waiting with the GIL released, in slices in the main thread so that Ctrl-C
//!   interrupts it.
//! - `aio`: waiting from asyncio: the crate's `acquire_async` future, driven from the event loop.
//! - `threading`, `asyncio`, `process`: the Python classes.
//! - `args`: the constructors' arguments, as Python classes (and their subclasses) take them.
//! - `forks`: the package's own process-wide locks (the wake queue's) held across each `fork`.
//! - `test_hooks`: functions for the package's tests, attached only where the environment asks.
//! - `shutdown`: once the interpreter finalizes, threads other than the main one do not take the
//!   GIL back in the package's frames (before 3.14, Python ends such a thread in a way that
//!   aborts the process when Rust frames are on its stack).
//! - `fastcall`: their hot methods as the package's own C methods, installed over PyO3's
//!   (`METH_NOARGS`, or vectorcall with a branch for a call without arguments): PyO3's
//!   abi3-py39 methods cost more than the semaphore.
//!
//! Nothing here counts permits itself: every count lives in the crate's types.
//!
//! Destructors that call Python (a region's unlink, an abandoned wait's wake) may run while an
//! exception propagates (the object freed during unwinding): they go through
//! [`keeping_exception`].

mod aio;
mod args;
mod asyncio;
mod blocking;
mod engine;
mod fastcall;
mod forks;
mod process;
mod shutdown;
mod test_hooks;
mod threading;

use pyo3::prelude::*;

/// Runs `f`, which calls Python, keeping aside an exception that is being raised meanwhile.
///
/// For destructors and other code that runs when an object is freed, which may be while an
/// exception propagates: Python code must not run with one set, and PyO3 would take it for the
/// error of the first call that fails and drop it (the caller then raised nothing, or crashed).
pub(crate) fn keeping_exception<T>(py: Python<'_>, f: impl FnOnce() -> T) -> T {
    let pending = PyErr::take(py);
    let out = f();
    if let Some(err) = pending {
        err.restore(py);
    }
    out
}

/// Semaphores on the futex-semaphore engine, for threads, asyncio tasks and processes:
///
/// - `Semaphore`, `BoundedSemaphore`: `threading`'s API, also awaitable from asyncio
///   (`async with sem:`, `await sem.acquire_async()`);
/// - `AsyncSemaphore`, `AsyncBoundedSemaphore`: `asyncio`'s API, thread-safe;
/// - `ProcessSemaphore`: `multiprocessing.Semaphore`'s API; a killed holder's permits come back.
///
/// The in-process classes wait in one queue that bounds every wait (a waiter that has waited
/// 1 ms gets priority over later arrivals).
#[pymodule]
fn futex_semaphore(m: &Bound<'_, PyModule>) -> PyResult<()> {
    forks::guard()?; // first: before any of the crate's own fork handlers (forks.rs says why)
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<threading::Semaphore>()?;
    m.add_class::<threading::BoundedSemaphore>()?;
    m.add_class::<asyncio::AsyncSemaphore>()?;
    m.add_class::<asyncio::AsyncBoundedSemaphore>()?;
    m.add_class::<process::ProcessSemaphore>()?;
    m.add_class::<aio::Ready>()?;
    m.add_class::<aio::Acquiring>()?;
    blocking::init(m.py())?;
    process::install_hooks(m.py())?;
    fastcall::install_all(m)?;
    test_hooks::attach(m)?;
    Ok(())
}
