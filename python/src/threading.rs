//! `Semaphore` and `BoundedSemaphore`: `threading`'s API, on the crate's semaphores, also
//! usable from asyncio (`async with`, `await acquire_async()`).

use crate::aio;
use crate::args;
use crate::blocking::{self, timeout_from};
use crate::engine::Engine;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};
use std::sync::Arc;

/// `blocking` as Python takes it: any object, by its truth.
pub(crate) struct Truthy(pub(crate) bool);

impl<'py> FromPyObject<'py> for Truthy {
    #[inline]
    fn extract_bound(ob: &Bound<'py, PyAny>) -> PyResult<Self> {
        ob.is_truthy().map(Truthy)
    }
}

/// The message of CPython's `BoundedSemaphore.release` past the initial value.
const RELEASED_TOO_MANY: &str = "Semaphore released too many times";

/// A counting semaphore: `threading.Semaphore`'s API, on futex-semaphore's engine.
///
/// `acquire(blocking=True, timeout=None)` takes a permit (a blocked acquire releases the GIL
/// and is interrupted by Ctrl-C), `release(n=1)` gives permits back, `with sem:` does both.
/// The same object serves asyncio tasks: `async with sem:` and `await sem.acquire_async()`,
/// woken by releases from threads or tasks. Subclasses and weak references work as with
/// `threading.Semaphore` (the value is read when the object is made, from the first positional argument or
/// `value=`: a subclass whose `__init__` takes it elsewhere passes it as `value=`).
#[pyclass(module = "futex_semaphore", subclass, weakref, frozen)]
pub struct Semaphore {
    pub(crate) engine: Arc<Engine>,
    /// The awaitable its async acquires hand out again.
    spare: aio::Spare,
    /// The value it was made with, for `__init__`'s check.
    made_with: i64,
}

impl Semaphore {
    pub(crate) fn with_engine(value: i64, bounded: bool) -> PyResult<Semaphore> {
        Ok(Semaphore {
            engine: Arc::new(Engine::new(value, bounded, "semaphore")?),
            spare: aio::Spare::new(),
            made_with: value,
        })
    }

    #[inline]
    pub(crate) fn acquire_impl(
        &self,
        py: Python<'_>,
        blocking: bool,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        if !blocking && timeout.is_some() {
            return Err(non_blocking_timeout());
        }
        if self.engine.try_acquire() {
            return Ok(true);
        }
        if !blocking {
            return Ok(false);
        }
        self.acquire_slow(py, timeout)
    }

    #[cold]
    fn acquire_slow(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let engine = &*self.engine;
        let taken = blocking::wait_in_place(
            py,
            timeout_from(timeout)?,
            |t| engine.acquire_for(t),
            |deadline, every, keep_waiting| engine.acquire_while(deadline, every, keep_waiting),
            |_| engine.release(1, "a permit taken while a signal handler raised could not be given back"),
        );
        // A timed wait that ended may have passed a wake on to a task.
        aio::deliver_wakes(py);
        taken
    }

    #[inline]
    pub(crate) fn release_impl(&self, py: Python<'_>, n: i64) -> PyResult<()> {
        if n < 1 {
            return Err(PyValueError::new_err("n must be one or more"));
        }
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        self.engine.release(n, RELEASED_TOO_MANY)?;
        aio::deliver_wakes(py);
        Ok(())
    }
}

fn non_blocking_timeout() -> PyErr {
    PyValueError::new_err("can't specify timeout for non-blocking acquire")
}

#[pymethods]
impl Semaphore {
    #[new]
    #[classmethod]
    #[pyo3(signature = (*args, **kwargs), text_signature = "(value=1)")]
    fn new(
        cls: &Bound<'_, PyType>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let own = cls.py().get_type::<Semaphore>();
        let [value] = args::new_args(cls, &own, args, kwargs, ["value"])?;
        Semaphore::with_engine(args::count(value.as_ref())?, false)
    }

    /// Takes the arguments `__new__` took (`super().__init__(value)` in a subclass).
    #[pyo3(signature = (value = None), text_signature = "($self, value=1)")]
    fn __init__(slf: &Bound<'_, Self>, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let class = slf.get_type().name()?;
        args::check_init(&class.to_cow()?, args::count(value)?, Some(slf.get().made_with))
    }

    /// Takes a permit. Blocks while there is none if `blocking`, at most `timeout` seconds if
    /// given; returns whether it took one.
    #[pyo3(signature = (blocking = Truthy(true), timeout = None))]
    #[pyo3(text_signature = "($self, blocking=True, timeout=None)")]
    fn acquire(&self, py: Python<'_>, blocking: Truthy, timeout: Option<f64>) -> PyResult<bool> {
        self.acquire_impl(py, blocking.0, timeout)
    }

    /// Gives `n` permits back, waking waiting threads and tasks.
    #[pyo3(signature = (n = 1))]
    fn release(&self, py: Python<'_>, n: i64) -> PyResult<()> {
        self.release_impl(py, n)
    }

    /// `with sem:` takes a permit, waiting as `acquire()` does; returns `True`.
    pub(crate) fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire_impl(py, true, None)
    }

    // The arguments fastcall.rs takes (`EXIT_ARGS`): optional, by position or keyword.
    /// The end of `with sem:` gives the permit back.
    #[pyo3(text_signature = "($self, exc_type=None, exc=None, tb=None)")]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.release_impl(py, 1)
    }

    /// Takes a permit from asyncio: `await sem.acquire_async()` returns `True`.
    pub(crate) fn acquire_async(&self, py: Python<'_>) -> PyResult<PyObject> {
        aio::acquire(py, &self.engine, &self.spare, true)
    }

    /// `async with sem:` takes a permit, as `await sem.acquire_async()` does.
    pub(crate) fn __aenter__(&self, py: Python<'_>) -> PyResult<PyObject> {
        aio::acquire(py, &self.engine, &self.spare, false)
    }

    // The arguments fastcall.rs takes (`EXIT_ARGS`): optional, by position or keyword.
    /// The end of `async with sem:` gives the permit back (done when called).
    #[pyo3(text_signature = "($self, exc_type=None, exc=None, tb=None)")]
    fn __aexit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<PyObject> {
        self.release_impl(py, 1)?;
        aio::ready(py)
    }

    /// The number of free permits (CPython's private `_value`).
    #[getter]
    fn _value(&self) -> usize {
        self.engine.available()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let cls = slf.get_type();
        let engine = &slf.get().engine;
        let value = match engine.initial() {
            None => engine.available().to_string(),
            Some(initial) => format!("{}/{initial}", engine.available()),
        };
        Ok(format!("<{}.{} at {:#x}: value={value}>", cls.module()?, cls.qualname()?, slf.as_ptr() as usize))
    }
}

/// A semaphore that refuses to be released above its initial value (`ValueError`):
/// `threading.BoundedSemaphore`'s API, on futex-semaphore's engine.
#[pyclass(module = "futex_semaphore", extends = Semaphore, subclass, frozen)]
pub struct BoundedSemaphore;

#[pymethods]
impl BoundedSemaphore {
    #[new]
    #[classmethod]
    #[pyo3(signature = (*args, **kwargs), text_signature = "(value=1)")]
    fn new(
        cls: &Bound<'_, PyType>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let own = cls.py().get_type::<BoundedSemaphore>();
        let [value] = args::new_args(cls, &own, args, kwargs, ["value"])?;
        let engine = Semaphore::with_engine(args::count(value.as_ref())?, true)?;
        Ok(PyClassInitializer::from(engine).add_subclass(BoundedSemaphore))
    }

    /// The initial value, which is also the bound (CPython's private `_initial_value`).
    #[getter]
    fn _initial_value(slf: &Bound<'_, Self>) -> usize {
        slf.as_super().get().engine.initial().unwrap_or(0)
    }
}
