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
//! so through a call that may unwind, with [`SleepOnUnwind`] on its stack: the forced unwind runs
//! its destructor, which sleeps until the process ends, as Python 3.14 leaves such threads (and
//! as PyO3 guards its own `PyGILState_Ensure`). A blocking wait lets the GIL go and takes it back
//! itself ([`Detached`]), as does the helper thread that delivers wakes (`aio.rs`), which is not
//! started once finalization has begun; the calls into asyncio that may let it go (a wake for a
//! loop, a future's `set_result`, a loop's `create_future`) go through
//! [`call_method_sleeping_at_exit`].
//! Not covered: `ProcessSemaphore`'s calls into `multiprocessing` (its resource tracker writes a
//! pipe) from a thread other than the main one at exit.
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

/// `f`, an `extern "C"` function of Python's, as one that may unwind, behind a pointer the
/// optimizer cannot see through. Not a second declaration of the symbol as `"C-unwind"`: LLVM
/// keeps one declaration per symbol in a unit, and where PyO3's `"C"` one (which cannot unwind)
/// shares it, the call loses its landing pad and the guard with it (a review built the package
/// with one codegen unit: aborts again in 6-12 of 40 runs).
fn unwinding<F: Copy>(f: F) -> F {
    std::hint::black_box(f)
}

/// `PyEval_RestoreThread`, callable as able to unwind (see the module's docs).
type RestoreThread = unsafe extern "C-unwind" fn(*mut ffi::PyThreadState);

fn restore_thread_unwinding() -> RestoreThread {
    let f: unsafe extern "C" fn(*mut ffi::PyThreadState) = ffi::PyEval_RestoreThread;
    // SAFETY: the same function and calling convention; "C-unwind" only lets it unwind.
    unwinding(unsafe {
        std::mem::transmute::<unsafe extern "C" fn(*mut ffi::PyThreadState), RestoreThread>(f)
    })
}

/// The unwinding form of a call `PyObject_Call(callable, args, kwargs)`: a call that lets the
/// GIL go takes it back inside.
type ObjectCall = unsafe extern "C-unwind" fn(
    *mut ffi::PyObject,
    *mut ffi::PyObject,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;
type ObjectCallC =
    unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject, *mut ffi::PyObject) -> *mut ffi::PyObject;

fn object_call_unwinding() -> ObjectCall {
    let f: ObjectCallC = ffi::PyObject_Call;
    // SAFETY: as above.
    unwinding(unsafe { std::mem::transmute::<ObjectCallC, ObjectCall>(f) })
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
        let restore = restore_thread_unwinding();
        let guard = SleepOnUnwind;
        // SAFETY: the thread state `PyEval_SaveThread` returned, on the thread that saved it.
        unsafe { restore(self.0) };
        std::mem::forget(guard);
    }
}

/// `obj.name(*args)`, for a call into asyncio that may let the GIL go and take it back (a write
/// to a loop's socket, or whatever a loop's `call_soon` runs): where Python ends the thread
/// there, it sleeps instead of aborting the process.
pub(crate) fn call_method_sleeping_at_exit<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    args: Bound<'py, pyo3::types::PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let method = obj.getattr(name)?;
    let call = object_call_unwinding();
    let guard = SleepOnUnwind;
    // SAFETY: the GIL is held (`py`); `method` and `args` are live objects; no keywords.
    let result = unsafe { call(method.as_ptr(), args.as_ptr(), std::ptr::null_mut()) };
    std::mem::forget(guard);
    // SAFETY: a new reference, or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, result) }
}
