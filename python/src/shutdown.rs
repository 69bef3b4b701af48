//! The interpreter's end, for threads that take the GIL back inside the package's own frames.
//!
//! Before Python 3.14, a thread other than the main one that takes the GIL once the interpreter
//! has begun to finalize is ended with `pthread_exit`, a forced unwind. Through a call that
//! cannot unwind (PyO3's `allow_threads` takes the GIL back so, and calls into Python are
//! declared so) it aborted the process ("FATAL: exception not rethrown"): a daemon thread woken
//! from a blocking acquire at exit did it, and so did one that woke another event loop's task
//! (`call_soon_threadsafe` writes to the loop's socket without the GIL).
//!
//! So where a thread other than the main one takes the GIL back in the package's frames, it does
//! so through a declaration that may unwind, with [`SleepOnUnwind`] on its stack: the forced
//! unwind runs its destructor, which sleeps until the process ends, as Python 3.14 leaves such
//! threads (and as PyO3 guards its own `PyGILState_Ensure`). A blocking wait lets the GIL go and
//! takes it back itself ([`Detached`]); a wake for another loop calls it through
//! [`call_method1_sleeping_at_exit`].
//!
//! An earlier form (2026-12-07, the same day) closed a gate from an `atexit` hook instead, which
//! closed it too early: hooks registered before the package's import run after the package's,
//! with the interpreter fully alive, and threads woken then slept for good (a program whose exit
//! joins a thread it wakes, or `multiprocessing`'s hook joining a child that waits for a permit
//! such a thread took, hung).

use pyo3::ffi;
use pyo3::prelude::*;

/// Dropped only by the forced unwind of `pthread_exit` (a call that returns forgets it): the
/// thread sleeps until the process ends instead of unwinding on through Rust frames.
struct SleepOnUnwind;

impl Drop for SleepOnUnwind {
    fn drop(&mut self) {
        loop {
            std::thread::park();
        }
    }
}

unsafe extern "C-unwind" {
    /// `PyEval_RestoreThread`, declared as able to unwind (see the module's docs).
    #[link_name = "PyEval_RestoreThread"]
    fn restore_thread_unwinding(tstate: *mut ffi::PyThreadState);

    /// `PyObject_Call`, declared as able to unwind: a call that lets the GIL go takes it back
    /// inside.
    #[link_name = "PyObject_Call"]
    fn object_call_unwinding(
        callable: *mut ffi::PyObject,
        args: *mut ffi::PyObject,
        kwargs: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
}

/// This thread without the GIL, from [`new`](Detached::new) until dropped; the drop takes it
/// back, or sleeps for good if Python ends the thread there. For threads other than the main
/// one, and for code that calls no Python meanwhile: PyO3 still counts the GIL as held (unlike
/// `allow_threads`), so a Python object dropped meanwhile would be freed without it.
pub(crate) struct Detached(*mut ffi::PyThreadState);

impl Detached {
    pub(crate) fn new(_py: Python<'_>) -> Detached {
        // SAFETY: the GIL is held (`_py`); the drop takes it back with the state returned.
        Detached(unsafe { ffi::PyEval_SaveThread() })
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        let guard = SleepOnUnwind;
        // SAFETY: the thread state `PyEval_SaveThread` returned, on the thread that saved it.
        unsafe { restore_thread_unwinding(self.0) };
        std::mem::forget(guard);
    }
}

/// `obj.name(arg)`, for a call that may let the GIL go and take it back: where Python ends the
/// thread there, it sleeps instead of aborting the process.
pub(crate) fn call_method1_sleeping_at_exit<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    arg: Bound<'py, PyAny>,
) -> PyResult<()> {
    let py = obj.py();
    let method = obj.getattr(name)?;
    let args = pyo3::types::PyTuple::new(py, [arg])?;
    let guard = SleepOnUnwind;
    // SAFETY: the GIL is held (`py`); `method` and `args` are live objects; no keywords.
    let result = unsafe { object_call_unwinding(method.as_ptr(), args.as_ptr(), std::ptr::null_mut()) };
    std::mem::forget(guard);
    // SAFETY: a new reference, or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, result) }.map(drop)
}
