//! `AsyncSemaphore` and `AsyncBoundedSemaphore`: `asyncio.Semaphore`'s API, on the crate's
//! semaphores; cancel-safe, and safe to `release()` from any thread.

use crate::aio;
use crate::args;
use crate::engine::Engine;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};
use std::sync::Arc;

/// A semaphore for asyncio: `asyncio.Semaphore`'s API (`await acquire()`, `release()`,
/// `locked()`, `async with`), on futex-semaphore's engine.
///
/// Unlike `asyncio.Semaphore` it is thread-safe: `release()` may be called from any thread, and
/// tasks of several event loops (in several threads) may wait on it at once. Subclasses and
/// weak references work as with `asyncio.Semaphore` (the value is read when the object is made).
#[pyclass(module = "futex_semaphore", subclass, weakref, frozen)]
pub struct AsyncSemaphore {
    engine: Arc<Engine>,
    /// The awaitable its async acquires hand out again.
    spare: aio::Spare,
    /// The value it was made with, for `__init__`'s check.
    made_with: i64,
}

/// The message of CPython's `asyncio.BoundedSemaphore.release` past the initial value.
const RELEASED_TOO_MANY: &str = "BoundedSemaphore released too many times";

impl AsyncSemaphore {
    fn with_engine(value: i64, bounded: bool) -> PyResult<AsyncSemaphore> {
        Ok(AsyncSemaphore {
            engine: Arc::new(Engine::new(value, bounded, "Semaphore")?),
            spare: aio::Spare::new(),
            made_with: value,
        })
    }

    #[inline]
    pub(crate) fn release_impl(&self, py: Python<'_>) -> PyResult<()> {
        self.engine.release(1, RELEASED_TOO_MANY)?;
        aio::deliver_wakes(py);
        Ok(())
    }
}

#[pymethods]
impl AsyncSemaphore {
    #[new]
    #[classmethod]
    #[pyo3(signature = (*args, **kwargs), text_signature = "(value=1)")]
    fn new(
        cls: &Bound<'_, PyType>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let own = cls.py().get_type::<AsyncSemaphore>();
        let [value] = args::new_args(cls, &own, args, kwargs, ["value"])?;
        AsyncSemaphore::with_engine(args::count(value.as_ref())?, false)
    }

    /// Takes the arguments `__new__` took (`super().__init__(value)` in a subclass).
    #[pyo3(signature = (value = None), text_signature = "($self, value=1)")]
    fn __init__(slf: &Bound<'_, Self>, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let class = slf.get_type().name()?;
        args::check_init(&class.to_cow()?, args::count(value)?, Some(slf.get().made_with))
    }

    /// Takes a permit, waiting while there is none: `await sem.acquire()` returns `True`.
    pub(crate) fn acquire(&self, py: Python<'_>) -> PyResult<PyObject> {
        aio::acquire(py, &self.engine, &self.spare, true)
    }

    /// Gives a permit back, waking a waiting task (of any loop, from any thread).
    pub(crate) fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.release_impl(py)
    }

    /// Whether an acquire would have to wait now.
    pub(crate) fn locked(&self) -> bool {
        self.engine.available() == 0
    }

    /// `async with sem:` takes a permit, as `await sem.acquire()` does.
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
        self.release_impl(py)?;
        aio::ready(py)
    }

    /// The number of free permits (CPython's private `_value`).
    #[getter]
    fn _value(&self) -> usize {
        self.engine.available()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let cls = slf.get_type();
        let value = slf.get().engine.available();
        let extra = if value == 0 { "locked".to_string() } else { format!("unlocked, value:{value}") };
        Ok(format!(
            "<{}.{} object at {:#x} [{extra}]>",
            cls.module()?,
            cls.qualname()?,
            slf.as_ptr() as usize
        ))
    }
}

/// An `AsyncSemaphore` that refuses to be released above its initial value (`ValueError`):
/// `asyncio.BoundedSemaphore`'s API.
#[pyclass(module = "futex_semaphore", extends = AsyncSemaphore, subclass, frozen)]
pub struct AsyncBoundedSemaphore;

#[pymethods]
impl AsyncBoundedSemaphore {
    #[new]
    #[classmethod]
    #[pyo3(signature = (*args, **kwargs), text_signature = "(value=1)")]
    fn new(
        cls: &Bound<'_, PyType>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let own = cls.py().get_type::<AsyncBoundedSemaphore>();
        let [value] = args::new_args(cls, &own, args, kwargs, ["value"])?;
        let engine = AsyncSemaphore::with_engine(args::count(value.as_ref())?, true)?;
        Ok(PyClassInitializer::from(engine).add_subclass(AsyncBoundedSemaphore))
    }
}
