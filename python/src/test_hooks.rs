//! Functions for the package's own tests, attached to the extension module (in an installed
//! package `futex_semaphore.futex_semaphore`, whose public names the package re-exports) only
//! where the environment has `_FUTEX_SEMAPHORE_TEST_HOOKS` set at import (its names are otherwise
//! the public ones): each makes happen at once what a test could otherwise only wait for by luck.
//!
//! - `_hold_wake_locks()`: a thread without the GIL holds the wake queue's locks until a `fork`
//!   begins (`forks.rs`); `_wake_locks_free()` says whether they are free.
//! - `_release_elsewhere(sem, n)`: releases on a thread that Python does not know, as the crate's
//!   timer thread wakes a task (`aio.rs`, "Wakes"); `_release_when_finalizing(sem, n)` does so
//!   once the interpreter has begun to finalize (the program's end), and then writes
//!   `released while finalizing` to stderr.

use crate::{aio, forks, threading};
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use std::time::{Duration, Instant};

/// Attaches the hooks if the environment asks for them.
pub(crate) fn attach(m: &Bound<'_, PyModule>) -> PyResult<()> {
    if std::env::var_os("_FUTEX_SEMAPHORE_TEST_HOOKS").is_some() {
        // Attributes, not `add_function`: kept out of `__all__`.
        m.setattr("_hold_wake_locks", wrap_pyfunction!(_hold_wake_locks, m)?)?;
        m.setattr("_wake_locks_free", wrap_pyfunction!(_wake_locks_free, m)?)?;
        m.setattr("_release_elsewhere", wrap_pyfunction!(_release_elsewhere, m)?)?;
        m.setattr("_release_when_finalizing", wrap_pyfunction!(_release_when_finalizing, m)?)?;
    }
    Ok(())
}

/// Starts `f` on a new thread, which Python does not know.
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> PyResult<std::thread::JoinHandle<T>> {
    std::thread::Builder::new()
        .name("futex_semaphore-test".into())
        .spawn(f)
        .map_err(|e| PyOSError::new_err(e.to_string()))
}

/// Returns once a new thread, without the GIL, holds the wake queue's locks; it releases them as
/// soon as a `fork` begins (its prepare handler has run), or after 10 s.
#[pyfunction]
fn _hold_wake_locks(py: Python<'_>) -> PyResult<()> {
    let (held, told) = std::sync::mpsc::channel();
    let forks = forks::forks_begun();
    // Not joined: it ends by itself.
    spawn(move || {
        let locks = aio::wake_locks();
        let _ = held.send(());
        let deadline = Instant::now() + Duration::from_secs(10);
        while forks::forks_begun() == forks && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(100));
        }
        drop(locks);
    })?;
    py.allow_threads(move || told.recv()).map_err(|_| PyRuntimeError::new_err("the holding thread ended"))
}

/// Whether every one of the wake queue's locks is free.
#[pyfunction]
fn _wake_locks_free() -> bool {
    aio::wake_locks_free()
}

/// Releases `n` permits of `sem` on a new thread that Python does not know (no thread state), and
/// returns once it has.
#[pyfunction]
fn _release_elsewhere(py: Python<'_>, sem: PyRef<'_, threading::Semaphore>, n: usize) -> PyResult<()> {
    let engine = std::sync::Arc::clone(&sem.engine);
    let thread = spawn(move || engine.release(n, "released too many times"))?;
    py.allow_threads(move || thread.join())
        .map_err(|_| PyRuntimeError::new_err("the test thread panicked"))?
}

/// CPython's `Py_IsFinalizing` (3.13 and later) or `_Py_IsFinalizing` (before), looked up where it
/// runs: the package's limited API has neither.
fn is_finalizing_fn() -> PyResult<extern "C" fn() -> std::ffi::c_int> {
    for name in [c"Py_IsFinalizing", c"_Py_IsFinalizing"] {
        // SAFETY: a NUL-terminated name; `RTLD_DEFAULT` searches the symbols already loaded.
        let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        if !f.is_null() {
            // SAFETY: both are `int (void)`, callable on any thread (an atomic load).
            return Ok(unsafe {
                std::mem::transmute::<*mut libc::c_void, extern "C" fn() -> std::ffi::c_int>(f)
            });
        }
    }
    Err(PyRuntimeError::new_err("this Python has neither Py_IsFinalizing nor _Py_IsFinalizing"))
}

/// Releases `n` permits of `sem` on a new thread that Python does not know, once the interpreter
/// has begun to finalize; then writes `released while finalizing` to stderr (the file
/// descriptor: Python's `sys.stderr` may be gone).
#[pyfunction]
fn _release_when_finalizing(sem: PyRef<'_, threading::Semaphore>, n: usize) -> PyResult<()> {
    let is_finalizing = is_finalizing_fn()?;
    let engine = std::sync::Arc::clone(&sem.engine);
    // Not joined: the process ends around it.
    spawn(move || {
        while is_finalizing() == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
        if engine.release(n, "released too many times").is_ok() {
            eprintln!("released while finalizing");
        }
    })?;
    Ok(())
}
