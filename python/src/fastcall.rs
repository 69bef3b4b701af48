//! The hot methods as the package's own C methods, installed over PyO3's.
//!
//! A call costs more in PyO3's generated methods than in the semaphore: for an abi3 module that
//! supports Python 3.9, PyO3 defines methods with arguments as `METH_VARARGS | METH_KEYWORDS`
//! (the limited API names `METH_FASTCALL` from 3.10 on), whose parsing cost about 150 ns of a
//! 250 ns `acquire()`; and every method, with arguments or not, counts itself into PyO3's
//! thread-local GIL state, looks its type object up and checks `self` against it, and takes a
//! reference to `self`. Here, after the classes are made, each hot method is replaced in its
//! class dictionary (PyO3's stays if that fails) by a method that does none of that:
//!
//! | kind | `ml_flags` | methods | a call without arguments |
//! |---|---|---|---|
//! | no arguments | `METH_NOARGS` | `__enter__`, `acquire_async`, `__aenter__`, `AsyncSemaphore.acquire`/`release`/`locked`, `ProcessSemaphore.release`/`get_value` | CPython refuses any argument itself |
//! | optional arguments | `METH_FASTCALL \| METH_KEYWORDS` (CPython 3.7+) | `acquire`, `Semaphore.release` | skips [`parse`]: the defaults |
//! | ignored arguments | the same | `__exit__`, `__aexit__` | positional ones only counted; keywords go through [`parse`] |
//!
//! The methods that CPython's classes make call the instance's own `acquire` or `release`
//! (`__exit__`, `__aenter__`, `__aexit__`) take their fast path only for an instance of exactly
//! the package's classes, and dispatch through `self` for a Python subclass's (see "Subclasses
//! that override what a method calls" below).
//!
//! Without PyO3's count of the GIL, a `Py` these methods drop is not decref'd but left to
//! PyO3's pool of deferred decrefs, which only a PyO3-made method or `with_gil` empties: so
//! whatever drops Python objects (an error raised, a wake delivered, a subclass's dispatch) is
//! on a cold path that counts the GIL with `with_gil` (with the GIL held, a count and no lock),
//! or drops them as `Bound`s, which decref at once.
//!
//! The bodies are the functions PyO3's methods call (the `#[pymethods]` functions or their
//! `*_impl`), so the two kinds of method cannot drift apart; the docstrings and text signatures
//! are copied from PyO3's.
//!
//! # Why `self` needs no check
//! [`install`] makes each method with `PyDescr_NewMethod(ty, def)`, a method descriptor of the
//! class `ty`. CPython calls a method descriptor's function only with a `self` that is an
//! instance of `ty` or of a subclass: a call through the class (`Semaphore.acquire(x)`), a bound
//! method's creation (`descriptor.__get__(x)`, which `x.acquire` and `LOAD_METHOD` go through),
//! each checks `PyObject_TypeCheck(x, ty)` and raises `TypeError` otherwise (the interpreter's
//! specialised calls of a method descriptor check `Py_IS_TYPE(x, ty)`). The classes are
//! PyO3 classes, `frozen` and `Sync`, whose objects (subclasses' too: `BoundedSemaphore`, Python
//! subclasses) start with `ty`'s PyO3 layout, so `self` can be read as `&T` as PyO3's own
//! methods read it after their check ([`call`]).

use crate::aio;
use crate::asyncio::{AsyncBoundedSemaphore, AsyncSemaphore};
use crate::process::ProcessSemaphore;
use crate::threading::{BoundedSemaphore, Semaphore};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::pyclass::boolean_struct::True;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::{Borrowed, IntoPyObjectExt, PyClass};
use pyo3::{ffi, intern, prelude::*};
use std::ffi::{CStr, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// `METH_FASTCALL` (Python 3.7+; not in the limited API's headers before 3.10).
const METH_FASTCALL: c_int = 0x0080;

type FastCall = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *const *mut ffi::PyObject,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

/// A method as CPython calls it.
#[derive(Clone, Copy)]
enum Method {
    /// `METH_NOARGS`: `f(self, NULL)`.
    NoArgs(ffi::PyCFunction),
    /// `METH_FASTCALL | METH_KEYWORDS`: `f(self, args, nargs, kwnames)`.
    FastCall(FastCall),
}

/// What a method body returns, as Python gets it.
trait Return {
    fn into_return(self, py: Python<'_>) -> PyResult<PyObject>;
}

impl Return for () {
    /// `None`, as from PyO3's methods (PyO3 converts a `()` value to an empty tuple).
    #[inline]
    fn into_return(self, py: Python<'_>) -> PyResult<PyObject> {
        Ok(py.None())
    }
}

impl Return for bool {
    #[inline]
    fn into_return(self, py: Python<'_>) -> PyResult<PyObject> {
        self.into_py_any(py)
    }
}

impl Return for usize {
    #[inline]
    fn into_return(self, py: Python<'_>) -> PyResult<PyObject> {
        self.into_py_any(py)
    }
}

impl Return for PyObject {
    #[inline]
    fn into_return(self, _py: Python<'_>) -> PyResult<PyObject> {
        Ok(self)
    }
}

/// Runs a method body on `self`: the result becomes a new reference, a Python exception or a
/// panic a raised exception (NULL).
///
/// # Safety
/// Only from a method of `T`'s class made by [`install`], with the `self` CPython passed it (an
/// instance of `T`'s class or a subclass: see the module header), with the GIL held.
#[inline(always)]
unsafe fn call<T, R>(
    slf: *mut ffi::PyObject,
    body: impl FnOnce(Python<'_>, &T) -> PyResult<R>,
) -> *mut ffi::PyObject
where
    T: PyClass<Frozen = True> + Sync,
    R: Return,
{
    // SAFETY: CPython calls methods with the GIL held (the caller's contract).
    let py = unsafe { Python::assume_gil_acquired() };
    // SAFETY: `slf` is an object CPython holds a reference to for the whole call.
    let slf = unsafe { Borrowed::from_ptr(py, slf) };
    // SAFETY: `slf` is a `T` or a subclass's object, which starts with `T`'s layout (the
    // caller's contract; the module header); `T` is frozen, so `get` needs no borrow flag.
    let this: &T = unsafe { slf.downcast_unchecked::<T>() }.get();
    match catch_unwind(AssertUnwindSafe(|| body(py, this).and_then(|r| r.into_return(py)))) {
        Ok(Ok(obj)) => obj.into_ptr(),
        Ok(Err(err)) => raise(Some(err)),
        Err(_) => raise(None),
    }
}

/// Raises `err` (`None`: a panic's `RuntimeError`); returns NULL, a method's failure.
///
/// These methods run without PyO3's count of the GIL (see the module header): a `Py` dropped
/// there goes to PyO3's pool of deferred decrefs, emptied only by the next PyO3-made method or
/// `with_gil`, so that a loop of failing calls kept every error's type and message alive (33 MB
/// for 300,000 `ValueError`s). `with_gil` with the GIL held counts it (no lock is taken): the
/// error's objects are then freed with the exception. The cold path only. `with_gil_unchecked`,
/// not `with_gil`: the first `with_gil` of a process asserts that the interpreter is
/// initialized, which it no longer says while it shuts down, when a `__del__` may still call
/// these methods (the assertion's panic, here, aborted the process).
#[cold]
#[inline(never)]
fn raise(err: Option<PyErr>) -> *mut ffi::PyObject {
    let restore = |py: Python<'_>| {
        err.unwrap_or_else(|| PyRuntimeError::new_err("futex_semaphore: a method panicked")).restore(py);
    };
    // SAFETY: called by the fast methods, which CPython calls with the GIL held.
    unsafe { Python::with_gil_unchecked(restore) };
    ptr::null_mut()
}

/// Runs `body` on the `self` of a method called on an instance of a Python subclass (which may
/// override what the method dispatches to), counted by PyO3 as holding the GIL (`raise`): the
/// objects it makes and drops are freed at once.
///
/// # Safety
/// As [`call`]'s: with the `self` CPython passed the method, with the GIL held.
#[cold]
#[inline(never)]
unsafe fn call_subclass(
    slf: *mut ffi::PyObject,
    body: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<PyObject>,
) -> *mut ffi::PyObject {
    let run = |py: Python<'_>| {
        // SAFETY: `slf` is an object CPython holds a reference to for the whole call.
        let slf = unsafe { Borrowed::from_ptr(py, slf) };
        match catch_unwind(AssertUnwindSafe(|| body(&slf))) {
            Ok(Ok(obj)) => obj.into_ptr(),
            Ok(Err(err)) => raise(Some(err)),
            Err(_) => raise(None),
        }
    };
    // SAFETY: the caller's contract: the GIL is held (unchecked: see `raise`).
    unsafe { Python::with_gil_unchecked(run) }
}

/// The number of positional arguments in a vectorcall's `nargs`.
#[inline]
fn positional(nargs: ffi::Py_ssize_t) -> usize {
    // The flag CPython may set in `nargs` for a vectorcall (PY_VECTORCALL_ARGUMENTS_OFFSET) is
    // not passed to METH_FASTCALL methods; still, mask it.
    (nargs as usize) & !(1usize << (usize::BITS - 1))
}

/// Sorts a vectorcall's arguments into `names`' slots: positional first, then by keyword.
///
/// # Safety
/// `args`, `nargs` and `kwnames` as CPython passes them to a `METH_FASTCALL | METH_KEYWORDS`
/// method, with the GIL held.
#[cold]
unsafe fn parse<'py, const N: usize>(
    py: Python<'py>,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    names: [&str; N],
    method: &str,
) -> PyResult<[Option<Bound<'py, PyAny>>; N]> {
    let mut out: [Option<Bound<'py, PyAny>>; N] = std::array::from_fn(|_| None);
    let nargs = positional(nargs);
    if nargs > N {
        return Err(PyTypeError::new_err(format!("{method}() takes at most {N} arguments ({nargs} given)")));
    }
    for (i, slot) in out.iter_mut().enumerate().take(nargs) {
        // SAFETY: CPython passes `nargs` valid borrowed references at `args`.
        *slot = Some(unsafe { Bound::from_borrowed_ptr(py, *args.add(i)) });
    }
    if !kwnames.is_null() {
        // SAFETY: a non-NULL `kwnames` is a tuple of str (borrowed), whose values follow the
        // positional arguments in `args`.
        let kwnames = unsafe { Bound::from_borrowed_ptr(py, kwnames) }.downcast_into::<PyTuple>()?;
        for (j, name) in kwnames.iter().enumerate() {
            let Some(k) = names.iter().position(|n| name.eq(n).unwrap_or(false)) else {
                return Err(PyTypeError::new_err(format!(
                    "{method}() got an unexpected keyword argument '{name}'"
                )));
            };
            if out[k].is_some() {
                return Err(PyTypeError::new_err(format!(
                    "{method}() got multiple values for argument '{}'",
                    names[k]
                )));
            }
            // SAFETY: see above: value `j` is at `nargs + j`.
            out[k] = Some(unsafe { Bound::from_borrowed_ptr(py, *args.add(nargs + j)) });
        }
    }
    Ok(out)
}

/// `blocking`/`block`: any object, by its truth (default `True`).
#[inline]
fn truth(arg: &Option<Bound<'_, PyAny>>) -> PyResult<bool> {
    arg.as_ref().map_or(Ok(true), |b| b.is_truthy())
}

/// `timeout`: `None` or a number of seconds.
#[inline]
fn seconds(arg: &Option<Bound<'_, PyAny>>) -> PyResult<Option<f64>> {
    match arg {
        Some(t) if !t.is_none() => t.extract().map(Some),
        _ => Ok(None),
    }
}

/// Defines a `METH_NOARGS` method on `$cls` from `|py, self| body`.
macro_rules! noargs_method {
    ($name:ident, $cls:ty, |$py:ident, $slf:ident| $body:expr) => {
        unsafe extern "C" fn $name(slf: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
            // SAFETY: CPython calls this as a METH_NOARGS method of `$cls`, installed by
            // `install_all`, with the GIL.
            unsafe { call(slf, |$py, $slf: &$cls| $body) }
        }
    };
}

/// Defines a `METH_FASTCALL | METH_KEYWORDS` method on `$cls` from `|py, self, [args]| body`:
/// with arguments `[args]` (all optional; a call without any skips `parse`), or with arguments
/// the body ignores (`ignores [args]`; a call with at most that many, none by keyword, skips it).
macro_rules! fast_method {
    ($name:ident, $cls:ty, $method:literal, [$($arg:literal),*], |$py:ident, $slf:ident, $a:ident| $body:expr) => {
        unsafe extern "C" fn $name(
            slf: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: CPython calls this as a METH_FASTCALL | METH_KEYWORDS method of `$cls`,
            // installed by `install_all`, with the GIL; `parse` gets its arguments as passed.
            // The call without arguments is a body of its own, with the defaults as constants
            // (one body for both kept them in memory, to be tested and dropped after).
            unsafe {
                if positional(nargs) == 0 && kwnames.is_null() {
                    call(slf, |$py, $slf: &$cls| {
                        let $a: [Option<Bound<'_, PyAny>>; [$($arg),*].len()] = Default::default();
                        $body
                    })
                } else {
                    call(slf, |$py, $slf: &$cls| {
                        let $a = parse($py, args, nargs, kwnames, [$($arg),*], $method)?;
                        $body
                    })
                }
            }
        }
    };
    ($name:ident, $cls:ty, $method:literal, ignores $names:expr, |$py:ident, $slf:ident| $body:expr) => {
        unsafe extern "C" fn $name(
            slf: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: as in the first arm.
            unsafe {
                call(slf, |$py, $slf: &$cls| {
                    let names = $names;
                    if positional(nargs) > names.len() || !kwnames.is_null() {
                        // Raises the TypeError of a wrong call, or accepts the keywords.
                        parse($py, args, nargs, kwnames, names, $method)?;
                    }
                    $body
                })
            }
        }
    };
}

/// `__exit__`'s and `__aexit__`'s arguments.
const EXIT_ARGS: [&str; 3] = ["exc_type", "exc", "tb"];

// ---------------------------------------------------------------------------------------------
// Subclasses that override what a method calls.
//
// CPython's context managers call the instance's own methods: threading's `__exit__` is
// `self.release()`, asyncio's `__aenter__` awaits `self.acquire()` and its `__aexit__` calls
// `self.release()` (threading's `__enter__` is `acquire` itself, bound to the base class's
// function, and `multiprocessing`'s go to the lock: those dispatch nothing, nor do these). So
// a Python subclass that overrides `acquire` or `release` (to count or log, say) sees them
// called by `with` and `async with`. These methods take their fast path for an instance of
// exactly the package's classes, whose `acquire` and `release` are these (one type-pointer
// comparison, or two), and dispatch through `self` for any other: the subclass's override,
// or these methods again through the descriptor.

/// The classes `Semaphore` and `BoundedSemaphore`, and `AsyncSemaphore` and
/// `AsyncBoundedSemaphore`: set by [`install_all`] (until then null, so that everything
/// dispatches). The type objects live as long as the module (PyO3 keeps them).
static SEMAPHORES: [AtomicPtr<ffi::PyTypeObject>; 2] = [const { AtomicPtr::new(ptr::null_mut()) }; 2];
static ASYNC_SEMAPHORES: [AtomicPtr<ffi::PyTypeObject>; 2] = [const { AtomicPtr::new(ptr::null_mut()) }; 2];

/// Whether `slf`'s class is exactly one of `own`.
///
/// # Safety
/// `slf` is a live object.
#[inline(always)]
unsafe fn exact(slf: *mut ffi::PyObject, own: &[AtomicPtr<ffi::PyTypeObject>; 2]) -> bool {
    // SAFETY: `slf` is live (the caller's contract).
    let ty = unsafe { ffi::Py_TYPE(slf) };
    // Relaxed: set once at import, which happens-before any call of these methods.
    ty == own[0].load(Ordering::Relaxed) || ty == own[1].load(Ordering::Relaxed)
}

/// `__exit__` or `__aexit__` of a subclass's instance: the arguments checked as the fast
/// method checks them, then `self.release()`, then `done` (what the method returns).
///
/// # Safety
/// As [`call`]'s, with the arguments CPython passed a `METH_FASTCALL | METH_KEYWORDS` method.
#[cold]
unsafe fn exit_subclass(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    method: &str,
    done: fn(Python<'_>) -> PyResult<PyObject>,
) -> *mut ffi::PyObject {
    // SAFETY: the caller's contract.
    unsafe {
        call_subclass(slf, |slf| {
            let py = slf.py();
            if positional(nargs) > EXIT_ARGS.len() || !kwnames.is_null() {
                parse(py, args, nargs, kwnames, EXIT_ARGS, method)?;
            }
            slf.call_method0(intern!(py, "release"))?;
            done(py)
        })
    }
}

/// What threading's `__exit__` returns.
fn none(py: Python<'_>) -> PyResult<PyObject> {
    Ok(py.None())
}

/// `__aenter__` of a subclass's instance: a coroutine, as asyncio's `__aenter__` is, that
/// awaits `self.<acquire>()` and gives `None`.
///
/// # Safety
/// As [`call`]'s.
#[cold]
unsafe fn aenter_subclass(slf: *mut ffi::PyObject, acquire: &'static CStr) -> *mut ffi::PyObject {
    // SAFETY: the caller's contract.
    unsafe { call_subclass(slf, |slf| Ok(aenter_coroutine(slf.py(), acquire)?.call1((slf,))?.unbind())) }
}

/// The coroutine functions of [`aenter_subclass`], by the name of the method they await.
static AENTERS: GILOnceCell<Py<PyDict>> = GILOnceCell::new();

/// Python, to be a coroutine as asyncio's `__aenter__` is (named as the method in a task's
/// `repr`).
const AENTER_SOURCE: &CStr = c"
async def acquire(self):
    await self.acquire()

async def acquire_async(self):
    await self.acquire_async()

for f, cls in ((acquire, 'AsyncSemaphore'), (acquire_async, 'Semaphore')):
    f.__name__, f.__qualname__, f.__module__ = '__aenter__', cls + '.__aenter__', 'futex_semaphore'
del f, cls
";

fn aenter_coroutine<'py>(py: Python<'py>, acquire: &'static CStr) -> PyResult<Bound<'py, PyAny>> {
    let functions = AENTERS.get_or_try_init(py, || {
        let namespace = PyDict::new(py);
        py.run(AENTER_SOURCE, Some(&namespace), None)?;
        Ok::<_, PyErr>(namespace.unbind())
    })?;
    let name = acquire.to_str().expect("method names are ASCII");
    functions
        .bind(py)
        .get_item(name)?
        .ok_or_else(|| PyRuntimeError::new_err("futex_semaphore: no __aenter__"))
}

/// Defines `$name`: `$fast` (a `METH_FASTCALL | METH_KEYWORDS` `__exit__` or `__aexit__`) for an
/// instance of exactly `$own`, else [`exit_subclass`] returning `$done`.
macro_rules! dispatching_exit {
    ($name:ident, $fast:ident, $own:ident, $method:literal, $done:path) => {
        unsafe extern "C" fn $name(
            slf: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: CPython calls this as a METH_FASTCALL | METH_KEYWORDS method, installed by
            // `install_all`, with the GIL; `$fast` and `exit_subclass` take the call as it came.
            unsafe {
                if exact(slf, &$own) {
                    $fast(slf, args, nargs, kwnames)
                } else {
                    exit_subclass(slf, args, nargs, kwnames, $method, $done)
                }
            }
        }
    };
}

/// Defines `$name`: `$fast` (a `METH_NOARGS` `__aenter__`) for an instance of exactly `$own`,
/// else [`aenter_subclass`] awaiting `self.$acquire()`.
macro_rules! dispatching_aenter {
    ($name:ident, $fast:ident, $own:ident, $acquire:literal) => {
        unsafe extern "C" fn $name(
            slf: *mut ffi::PyObject,
            unused: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: CPython calls this as a METH_NOARGS method, installed by `install_all`,
            // with the GIL.
            unsafe { if exact(slf, &$own) { $fast(slf, unused) } else { aenter_subclass(slf, $acquire) } }
        }
    };
}

fast_method!(semaphore_acquire, Semaphore, "acquire", ["blocking", "timeout"], |py, sem, a| {
    sem.acquire_impl(py, truth(&a[0])?, seconds(&a[1])?)
});
fast_method!(semaphore_release, Semaphore, "release", ["n"], |py, sem, a| {
    let n = a[0].as_ref().map_or(Ok(1), |n| n.extract::<i64>())?;
    sem.release_impl(py, n)
});
noargs_method!(semaphore_enter, Semaphore, |py, sem| sem.__enter__(py));
fast_method!(semaphore_exit_fast, Semaphore, "__exit__", ignores EXIT_ARGS, |py, sem| {
    sem.release_impl(py, 1)
});
noargs_method!(semaphore_acquire_async, Semaphore, |py, sem| sem.acquire_async(py));
noargs_method!(semaphore_aenter_fast, Semaphore, |py, sem| sem.__aenter__(py));
fast_method!(semaphore_aexit_fast, Semaphore, "__aexit__", ignores EXIT_ARGS, |py, sem| {
    sem.release_impl(py, 1)?;
    aio::ready(py)
});
dispatching_exit!(semaphore_exit, semaphore_exit_fast, SEMAPHORES, "__exit__", none);
dispatching_aenter!(semaphore_aenter, semaphore_aenter_fast, SEMAPHORES, c"acquire_async");
dispatching_exit!(semaphore_aexit, semaphore_aexit_fast, SEMAPHORES, "__aexit__", aio::ready);

noargs_method!(async_acquire, AsyncSemaphore, |py, sem| sem.acquire(py));
noargs_method!(async_release, AsyncSemaphore, |py, sem| sem.release(py));
noargs_method!(async_locked, AsyncSemaphore, |_py, sem| Ok(sem.locked()));
noargs_method!(async_aenter_fast, AsyncSemaphore, |py, sem| sem.__aenter__(py));
fast_method!(async_aexit_fast, AsyncSemaphore, "__aexit__", ignores EXIT_ARGS, |py, sem| {
    sem.release_impl(py)?;
    aio::ready(py)
});
dispatching_aenter!(async_aenter, async_aenter_fast, ASYNC_SEMAPHORES, c"acquire");
dispatching_exit!(async_aexit, async_aexit_fast, ASYNC_SEMAPHORES, "__aexit__", aio::ready);

fast_method!(process_acquire, ProcessSemaphore, "acquire", ["block", "timeout"], |py, sem, a| {
    sem.acquire_impl(py, truth(&a[0])?, seconds(&a[1])?)
});
noargs_method!(process_release, ProcessSemaphore, |py, sem| sem.release(py));
noargs_method!(process_get_value, ProcessSemaphore, |_py, sem| Ok(sem.get_value()));
noargs_method!(process_enter, ProcessSemaphore, |py, sem| sem.__enter__(py));
fast_method!(process_exit, ProcessSemaphore, "__exit__", ignores EXIT_ARGS, |py, sem| {
    sem.release_impl(py)
});

/// Puts `f` in `ty`'s dictionary as the method `name`, with PyO3's docstring and signature.
fn install(ty: &Bound<'_, PyType>, name: &'static CStr, f: Method) -> PyResult<()> {
    let py = ty.py();
    let attr = name.to_str().expect("method names are ASCII");
    let pyo3s = ty.getattr(attr)?;
    let doc: Option<String> = pyo3s.getattr("__doc__")?.extract()?;
    let signature: Option<String> = pyo3s.getattr("__text_signature__")?.extract()?;
    // CPython takes a docstring that starts with `name(...)\n--\n\n` as the text signature
    // followed by the docstring.
    let doc = match signature {
        Some(sig) => Some(format!("{attr}{sig}\n--\n\n{}", doc.unwrap_or_default())),
        None => doc,
    };
    let doc = doc.map(|d| &*Box::leak(std::ffi::CString::new(d).unwrap_or_default().into_boxed_c_str()));
    let (ml_meth, ml_flags) = match f {
        Method::NoArgs(f) => (ffi::PyMethodDefPointer { PyCFunction: f }, ffi::METH_NOARGS),
        Method::FastCall(f) => (
            ffi::PyMethodDefPointer {
                // SAFETY: the union holds a function pointer whichever variant; `ml_flags`
                // tells CPython to call it with the vectorcall signature `f` has.
                PyCFunctionWithKeywords: unsafe {
                    std::mem::transmute::<FastCall, ffi::PyCFunctionWithKeywords>(f)
                },
            },
            METH_FASTCALL | ffi::METH_KEYWORDS,
        ),
    };
    // CPython keeps a pointer to the definition for the life of the descriptor: leaked, once
    // per method at import.
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth,
        ml_flags,
        ml_doc: doc.map_or(ptr::null(), |d| d.as_ptr()),
    }));
    // SAFETY: `ty` is a type object and `def` outlives the descriptor (leaked).
    let descr = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_ptr().cast(), def))? };
    ty.setattr(attr, descr)
}

/// Replaces PyO3's methods with these; on failure PyO3's stay.
pub(crate) fn install_all(m: &Bound<'_, PyModule>) -> PyResult<()> {
    use Method::{FastCall, NoArgs};
    let py = m.py();
    let sem = py.get_type::<Semaphore>();
    let asem = py.get_type::<AsyncSemaphore>();
    let process = py.get_type::<ProcessSemaphore>();
    let own = [
        (&SEMAPHORES, [sem.as_type_ptr(), py.get_type::<BoundedSemaphore>().as_type_ptr()]),
        (&ASYNC_SEMAPHORES, [asem.as_type_ptr(), py.get_type::<AsyncBoundedSemaphore>().as_type_ptr()]),
    ];
    for (statics, types) in own {
        for (slot, ty) in statics.iter().zip(types) {
            slot.store(ty, Ordering::Relaxed);
        }
    }
    let methods: [(&Bound<'_, PyType>, &'static CStr, Method); 17] = [
        (&sem, c"acquire", FastCall(semaphore_acquire)),
        (&sem, c"release", FastCall(semaphore_release)),
        (&sem, c"__enter__", NoArgs(semaphore_enter)),
        (&sem, c"__exit__", FastCall(semaphore_exit)),
        (&sem, c"acquire_async", NoArgs(semaphore_acquire_async)),
        (&sem, c"__aenter__", NoArgs(semaphore_aenter)),
        (&sem, c"__aexit__", FastCall(semaphore_aexit)),
        (&asem, c"acquire", NoArgs(async_acquire)),
        (&asem, c"release", NoArgs(async_release)),
        (&asem, c"locked", NoArgs(async_locked)),
        (&asem, c"__aenter__", NoArgs(async_aenter)),
        (&asem, c"__aexit__", FastCall(async_aexit)),
        (&process, c"acquire", FastCall(process_acquire)),
        (&process, c"release", NoArgs(process_release)),
        (&process, c"get_value", NoArgs(process_get_value)),
        (&process, c"__enter__", NoArgs(process_enter)),
        (&process, c"__exit__", FastCall(process_exit)),
    ];
    for (ty, name, f) in methods {
        install(ty, name, f)?;
    }
    Ok(())
}
