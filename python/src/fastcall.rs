//! The hot methods that take arguments (`acquire`, `release`, `__exit__`, `__aexit__`) as
//! vectorcall (`METH_FASTCALL | METH_KEYWORDS`) methods.
//!
//! For an abi3 module that supports Python 3.9, PyO3 defines methods with arguments as
//! `METH_VARARGS | METH_KEYWORDS` (the limited API names `METH_FASTCALL` from 3.10 on), and
//! parsing them costs more than the semaphore: about 150 ns of a 250 ns `acquire()`. CPython
//! has understood `METH_FASTCALL | METH_KEYWORDS` since 3.7, so after the classes are made,
//! these methods replace PyO3's in the class dictionaries (PyO3's stay if that fails). The
//! bodies are the same `*_impl` functions PyO3's methods call.

use crate::aio;
use crate::asyncio::AsyncSemaphore;
use crate::process::ProcessSemaphore;
use crate::threading::Semaphore;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyTuple, PyType};
use std::ffi::{CStr, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

/// `METH_FASTCALL` (Python 3.7+; not in the limited API's headers before 3.10).
const METH_FASTCALL: c_int = 0x0080;

type FastCall = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *const *mut ffi::PyObject,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

/// Runs a method body: a Python exception or a panic becomes a raised exception (NULL).
///
/// # Safety
/// Only from a method CPython calls (with the GIL held).
unsafe fn trampoline(body: impl FnOnce(Python<'_>) -> PyResult<PyObject>) -> *mut ffi::PyObject {
    // SAFETY: CPython calls methods with the GIL held (the caller's contract).
    let py = unsafe { Python::assume_gil_acquired() };
    match catch_unwind(AssertUnwindSafe(|| body(py))) {
        Ok(Ok(obj)) => obj.into_ptr(),
        Ok(Err(err)) => {
            err.restore(py);
            ptr::null_mut()
        }
        Err(_) => {
            PyRuntimeError::new_err("futex_semaphore: a method panicked").restore(py);
            ptr::null_mut()
        }
    }
}

/// Sorts a vectorcall's arguments into `names`' slots: positional first, then by keyword.
///
/// # Safety
/// `args`, `nargs` and `kwnames` as CPython passes them to a `METH_FASTCALL | METH_KEYWORDS`
/// method, with the GIL held.
unsafe fn parse<'py, const N: usize>(
    py: Python<'py>,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    names: [&str; N],
    method: &str,
) -> PyResult<[Option<Bound<'py, PyAny>>; N]> {
    let mut out: [Option<Bound<'py, PyAny>>; N] = std::array::from_fn(|_| None);
    // The flag CPython may set in `nargs` for a vectorcall (PY_VECTORCALL_ARGUMENTS_OFFSET) is
    // not passed to METH_FASTCALL methods; still, mask it.
    let nargs = (nargs as usize) & !(1usize << (usize::BITS - 1));
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
                    "{method}() got an unexpected keyword argument {name}"
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
fn truth(arg: &Option<Bound<'_, PyAny>>) -> PyResult<bool> {
    arg.as_ref().map_or(Ok(true), |b| b.is_truthy())
}

/// `timeout`: `None` or a number of seconds.
fn seconds(arg: &Option<Bound<'_, PyAny>>) -> PyResult<Option<f64>> {
    match arg {
        Some(t) if !t.is_none() => t.extract().map(Some),
        _ => Ok(None),
    }
}

fn py_bool(py: Python<'_>, b: bool) -> PyObject {
    PyBool::new(py, b).to_owned().into_any().unbind()
}

/// Defines a vectorcall method on `$cls` from `|py, self, [args]| body`.
macro_rules! fast_method {
    ($name:ident, $cls:ty, $method:literal, [$($arg:literal),*], |$py:ident, $slf:ident, $a:ident| $body:expr) => {
        unsafe extern "C" fn $name(
            slf: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: CPython calls this as a METH_FASTCALL | METH_KEYWORDS method of `$cls`.
            unsafe {
                trampoline(|$py| {
                    let slf = Bound::from_borrowed_ptr($py, slf);
                    let $slf = slf.downcast::<$cls>()?.get();
                    let $a = parse($py, args, nargs, kwnames, [$($arg),*], $method)?;
                    $body
                })
            }
        }
    };
}

fast_method!(semaphore_acquire, Semaphore, "acquire", ["blocking", "timeout"], |py, sem, a| {
    sem.acquire_impl(py, truth(&a[0])?, seconds(&a[1])?).map(|b| py_bool(py, b))
});
fast_method!(semaphore_release, Semaphore, "release", ["n"], |py, sem, a| {
    let n = a[0].as_ref().map_or(Ok(1), |n| n.extract::<i64>())?;
    sem.release_impl(py, n).map(|()| py.None())
});
fast_method!(semaphore_exit, Semaphore, "__exit__", ["exc_type", "exc", "tb"], |py, sem, _a| {
    sem.release_impl(py, 1).map(|()| py.None())
});
fast_method!(semaphore_aexit, Semaphore, "__aexit__", ["exc_type", "exc", "tb"], |py, sem, _a| {
    sem.release_impl(py, 1)?;
    aio::ready(py, false)
});
fast_method!(async_aexit, AsyncSemaphore, "__aexit__", ["exc_type", "exc", "tb"], |py, sem, _a| {
    sem.release_impl(py)?;
    aio::ready(py, false)
});
fast_method!(process_acquire, ProcessSemaphore, "acquire", ["block", "timeout"], |py, sem, a| {
    sem.acquire_impl(py, truth(&a[0])?, seconds(&a[1])?).map(|b| py_bool(py, b))
});
fast_method!(process_exit, ProcessSemaphore, "__exit__", ["exc_type", "exc", "tb"], |py, sem, _a| {
    sem.release_impl(py).map(|()| py.None())
});

/// Puts `f` in `ty`'s dictionary as the method `name`, with the docstring PyO3's had.
fn install(ty: &Bound<'_, PyType>, name: &'static CStr, f: FastCall) -> PyResult<()> {
    let py = ty.py();
    let attr = name.to_str().expect("method names are ASCII");
    let doc: Option<String> = ty.getattr(attr)?.getattr("__doc__")?.extract()?;
    let doc = doc.map(|d| &*Box::leak(std::ffi::CString::new(d).unwrap_or_default().into_boxed_c_str()));
    // CPython keeps a pointer to the definition for the life of the descriptor: leaked, once
    // per method at import.
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            // SAFETY: the union holds a function pointer whichever variant; `ml_flags` tells
            // CPython to call it with the vectorcall signature `f` has.
            PyCFunctionWithKeywords: unsafe {
                std::mem::transmute::<FastCall, ffi::PyCFunctionWithKeywords>(f)
            },
        },
        ml_flags: METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: doc.map_or(ptr::null(), |d| d.as_ptr()),
    }));
    // SAFETY: `ty` is a type object and `def` outlives the descriptor (leaked).
    let descr = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_ptr().cast(), def))? };
    ty.setattr(attr, descr)
}

/// Replaces PyO3's methods with the vectorcall ones; on failure PyO3's stay.
pub(crate) fn install_all(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let sem = py.get_type::<Semaphore>();
    let process = py.get_type::<ProcessSemaphore>();
    let asem = py.get_type::<AsyncSemaphore>();
    let methods: [(&Bound<'_, PyType>, &'static CStr, FastCall); 7] = [
        (&sem, c"acquire", semaphore_acquire),
        (&sem, c"release", semaphore_release),
        (&sem, c"__exit__", semaphore_exit),
        (&sem, c"__aexit__", semaphore_aexit),
        (&asem, c"__aexit__", async_aexit),
        (&process, c"acquire", process_acquire),
        (&process, c"__exit__", process_exit),
    ];
    for (ty, name, f) in methods {
        install(ty, name, f)?;
    }
    Ok(())
}
