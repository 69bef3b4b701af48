//! Waiting from asyncio: the crate's `acquire_async` future, driven from the event loop.
//!
//! An async acquire (`acquire()`, `__aenter__`) returns an [`Acquiring`], an awaitable with a
//! coroutine's life, as `asyncio.Semaphore.acquire` is a coroutine: nothing happens when it is
//! made. To spare an allocation per call, a semaphore keeps the last one it made ([`Spare`]) and
//! hands it out again when nothing else refers to it (so nobody can tell it from a new one). Its
//! first step tries the engine's fast path, and finishes if that takes a permit. Otherwise it
//! asks for the running loop and makes a [`Waiter`], which holds the crate's
//! [`Acquire`] future, and polls it once, so that the engine knows a task waits; then it yields
//! an asyncio future to the task, which sleeps on it. Closed, thrown into or freed before it
//! finished, it gives back what it took; once finished, a step raises `RuntimeError` as a
//! coroutine's does.
//!
//! # Wakes
//! The engine wakes a waiter through its `Waker`, from whichever thread gives a permit back, and
//! possibly while it holds its own locks. So the waker runs no Python: it queues the waiter
//! (`QUEUE`, a leaf lock, held by the forking thread across a `fork`: `forks.rs`). The queue is
//! emptied right after every engine call this module makes with the GIL ([`deliver_wakes`]). A
//! waiter whose event loop runs one of its tasks on the delivering thread (a release or a cancel in
//! a task of that loop, the usual case) is polled there at once: if that took the permit, its
//! asyncio future is resolved, as `asyncio.Semaphore.release` resolves its waiter's, and the task
//! runs on the loop's next turn. For any other waiter, its loop is asked with
//! `call_soon_threadsafe` to run a [`Wake`], which does the same on the loop's thread. A waker
//! called on a thread without the GIL (a blocking acquire that timed out and passed a wake on) or
//! on one Python does not know (the crate's timer thread) rouses a helper thread that empties the
//! queue with the GIL, through one Python thread state kept for its life (`helper::run` says why).
//!
//! # Invariants
//! 1. A [`Waiter`]'s state lock is only taken with the GIL held, and no Python code runs while
//!    it is held (Python calls happen after it is released): it is never contended, and a
//!    thread holding the GIL never blocks on a thread that needs it.
//! 2. A permit the engine gave a waiter is either handed to its task (the awaitable finishes) or
//!    given back with `release` (the task was cancelled, or dropped the awaitable): never both,
//!    never neither (`State::acquired`).
//! 3. A waiter that stops waiting without a permit drops the engine future, which passes a wake
//!    it had taken on to the next async waiter (the crate's cancel-safety).
//! 4. An [`Acquiring`] takes a permit only in a step, and a step that takes one finishes it (the
//!    fast path) or hands it to the waiter (invariant 2).
//!
//! That is the whole of cancel-safety: a task cancelled before it ran, while it waits, or after
//! its permit came but before it ran, leaves the count as it was and the next waiter woken
//! (gh-90155's bug class).
//!
//! # Garbage collection
//! A waiting task is kept alive by the semaphore, as `asyncio.Semaphore`'s list of waiters keeps
//! it: the engine holds the [`Waiter`] (through the waker it registered), and the waiter holds
//! the asyncio future whose callback is the task's, from Rust, where the collector cannot see
//! it. So the [`Acquiring`] shows the collector nothing (no `__traverse__`): were it to report
//! the waiter's future and loop as its own, the collector would take a waiting task that only
//! asyncio refers to for garbage, and end its wait (tried, and reverted: such a task was
//! destroyed by the next collection). The price: a task left waiting on a loop that is closed
//! or dropped stays, with its loop, until the semaphore's wait ends (asyncio's keeps it too).

use crate::engine::Engine;
use futex_semaphore::Acquire;
use pyo3::exceptions::{PyBaseException, PyRuntimeError, PyStopIteration, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::{GILOnceCell, GILProtected};
use pyo3::types::{PyTraceback, PyTuple, PyType};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

/// Locks, ignoring poisoning (nothing here panics while holding a lock).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Finished awaitables.

/// An awaitable that is done already: what `__aexit__` returns (its release is done by then, as
/// a plain `release()` would be). It finishes with `None`; one is shared by all semaphores.
/// Having `send`, `throw` and `close`, it counts as a coroutine for asyncio
/// (`asyncio.create_task` takes it).
#[pyclass(module = "futex_semaphore", frozen)]
pub(crate) struct Ready {}

static READY: GILOnceCell<Py<Ready>> = GILOnceCell::new();

/// The shared finished awaitable (it gives `None`).
#[inline]
pub(crate) fn ready(py: Python<'_>) -> PyResult<PyObject> {
    let ready = READY.get_or_try_init(py, || Py::new(py, Ready {}))?;
    Ok(ready.clone_ref(py).into_any())
}

/// Ends an awaitable with `True` (a `StopIteration(True)`) or `None` (`StopIteration`).
#[inline]
fn finish(value: bool) -> PyResult<Option<PyObject>> {
    if value { Err(PyStopIteration::new_err((true,))) } else { Ok(None) }
}

/// The exception `throw(typ, val, tb)` raises, as a generator's `throw` makes it: an exception
/// instance `typ` (then `val` must be `None`); or an exception class `typ`, with `val` its
/// instance (or a subclass's), or else the argument(s) to make one (`None`: none; a tuple:
/// those); `tb`, if not `None`, becomes its traceback.
///
/// A `StopIteration` thrown in comes out as a coroutine's does (PEP 479): a `RuntimeError` caused
/// by it, so that it cannot pass for the awaitable's end.
fn thrown(typ: Bound<'_, PyAny>, val: Option<Bound<'_, PyAny>>, tb: Option<Bound<'_, PyAny>>) -> PyErr {
    let py = typ.py();
    match throw_value(typ, val, tb) {
        Ok(exc) if exc.is_instance_of::<PyStopIteration>() => {
            let err = PyRuntimeError::new_err("coroutine raised StopIteration");
            err.set_cause(py, Some(PyErr::from_value(exc)));
            err
        }
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

fn throw_value<'py>(
    typ: Bound<'py, PyAny>,
    val: Option<Bound<'py, PyAny>>,
    tb: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let val = val.filter(|v| !v.is_none());
    let tb = tb.filter(|t| !t.is_none());
    if let Some(tb) = &tb {
        if !tb.is_instance_of::<PyTraceback>() {
            return Err(PyTypeError::new_err("throw() third argument must be a traceback object"));
        }
    }
    let is_class =
        typ.downcast::<PyType>().is_ok_and(|t| t.is_subclass_of::<PyBaseException>().unwrap_or(false));
    let exc = if is_class {
        match val {
            Some(v) if v.get_type().is_subclass(&typ)? => v,
            Some(v) => instantiate(&typ, v)?,
            None => typ.call0()?,
        }
    } else if typ.is_instance_of::<PyBaseException>() {
        if val.is_some() {
            return Err(PyTypeError::new_err("instance exception may not have a separate value"));
        }
        typ
    } else {
        return Err(not_an_exception(&typ));
    };
    if let Some(tb) = tb {
        exc.setattr("__traceback__", tb)?;
    }
    Ok(exc)
}

/// `typ(*val)` for a tuple, else `typ(val)`, which must make an exception.
fn instantiate<'py>(typ: &Bound<'py, PyAny>, val: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let made = match val.downcast::<PyTuple>() {
        Ok(args) => typ.call1(args)?,
        Err(_) => typ.call1((val,))?,
    };
    if !made.is_instance_of::<PyBaseException>() {
        return Err(PyTypeError::new_err(format!(
            "calling {} should have returned an instance of BaseException, not {}",
            typ.repr()?,
            made.get_type().name()?
        )));
    }
    Ok(made)
}

fn not_an_exception(typ: &Bound<'_, PyAny>) -> PyErr {
    let name = typ.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    PyTypeError::new_err(format!(
        "exceptions must be classes or instances deriving from BaseException, not {name}"
    ))
}

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self) -> Option<PyObject> {
        None
    }

    /// Finished already: `StopIteration`, as a finished coroutine step raises it.
    fn send(&self, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(PyStopIteration::new_err(()))
    }

    /// Raises the exception thrown in (it is done already).
    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        &self,
        typ: Bound<'_, PyAny>,
        val: Option<Bound<'_, PyAny>>,
        tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        Err(thrown(typ, val, tb))
    }

    /// Nothing to do: it is done already.
    fn close(&self) {}
}

// ---------------------------------------------------------------------------------------------
// Waiting.

/// The crate's future, kept beside the `Arc` of the engine it borrows.
struct PendingAcquire {
    // Declared first, so dropped (and so cancelled) before `_engine`.
    future: Acquire<'static>,
    _engine: Arc<Engine>,
}

impl PendingAcquire {
    fn new(engine: Arc<Engine>) -> PendingAcquire {
        // SAFETY: the engine lives in the `Arc`'s allocation, which never moves and which
        // `_engine` keeps alive for as long as `future` exists (`future` is dropped first).
        let borrowed: &'static Engine = unsafe { &*Arc::as_ptr(&engine) };
        PendingAcquire { future: borrowed.acquire_async(), _engine: engine }
    }
}

/// What a waiting task's acquire has come to. Behind a lock taken only with the GIL (invariant 1).
struct State {
    /// The engine future, until it completes or the wait ends.
    acquire: Option<PendingAcquire>,
    /// The engine gave a permit that the task has not taken yet (invariant 2).
    acquired: bool,
    /// The asyncio future the task sleeps on, once it has been yielded.
    future: Option<PyObject>,
    /// The awaitable finished or was abandoned.
    done: bool,
}

/// One waiting async acquire: shared by its awaitable, its waker and the wake queue.
pub(crate) struct Waiter {
    state: Mutex<State>,
    /// Queued or scheduled for a poll, not yet polled: a second wake adds nothing.
    scheduled: AtomicBool,
    engine: Arc<Engine>,
    /// Dropped by hand (`Drop`): it may have to wait for the GIL.
    event_loop: std::mem::ManuallyDrop<PyObject>,
}

/// The Python objects of waiters freed on a thread in a blocking wait (the last reference to a
/// waker dropped by a wake its engine section sent), where PyO3 counts the GIL as held though
/// it is not (`shutdown::Detached`) and would free them without it: freed by the next delivery.
static ORPHANS: Mutex<Vec<PyObject>> = Mutex::new(Vec::new());

impl Drop for Waiter {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and never used after.
        let event_loop = unsafe { std::mem::ManuallyDrop::take(&mut self.event_loop) };
        if crate::blocking::detached() {
            let future =
                self.state.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).future.take();
            let mut orphans = lock(&ORPHANS);
            orphans.push(event_loop);
            orphans.extend(future);
            // Release: the next delivery, which looks at QUEUED, sees the orphans.
            QUEUED.store(true, Ordering::Release);
        }
    }
}

impl std::task::Wake for Waiter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // AcqRel: a wake after the `Wake` callback cleared the flag must queue again.
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            queue_wake(Arc::clone(self));
        }
    }
}

/// What polling the engine future came to.
enum Polled {
    /// Still waiting (or nothing to do).
    Pending,
    /// The permit is taken: resolve this asyncio future (if the task sleeps on one).
    Acquired(Option<PyObject>),
}

impl Waiter {
    /// Polls the engine future (GIL held). Runs no Python (invariant 1).
    fn poll(self: &Arc<Self>, py: Python<'_>) -> Polled {
        let mut state = lock(&self.state);
        if state.done || state.acquired {
            return Polled::Pending;
        }
        let Some(pending) = state.acquire.as_mut() else {
            return Polled::Pending;
        };
        let waker = Waker::from(Arc::clone(self));
        let mut cx = Context::from_waker(&waker);
        match Pin::new(&mut pending.future).poll(&mut cx) {
            Poll::Pending => Polled::Pending,
            Poll::Ready(taken) => {
                // The engine is never closed from Python, so this is a permit.
                if let Ok(permit) = taken {
                    permit.forget();
                }
                let finished = state.acquire.take();
                state.acquired = true;
                let future = state.future.as_ref().map(|f| f.clone_ref(py));
                drop(state);
                drop(finished);
                Polled::Acquired(future)
            }
        }
    }

    /// Ends the wait without handing a permit over: gives back one taken for the task
    /// (invariant 2) and drops the engine future (invariant 3); then delivers the wakes that
    /// passed on.
    fn abandon(&self, py: Python<'_>) {
        self.give_up();
        deliver_wakes(py);
    }

    /// [`abandon`](Self::abandon), leaving the wakes it passed on queued for the caller's
    /// delivery.
    fn give_up(&self) {
        let (give_back, pending, future) = {
            let mut state = lock(&self.state);
            if state.done {
                return;
            }
            state.done = true;
            let give_back = std::mem::take(&mut state.acquired);
            (give_back, state.acquire.take(), state.future.take())
        };
        // Dropped outside the lock: cancelling may wake another waiter (queued, not run).
        drop(pending);
        if give_back {
            // Cannot pass a bound: this permit was taken from the semaphore.
            let _ = self.engine.release(1, "");
        }
        drop(future);
    }

    /// Asks the waiter's event loop to poll it (a wake came): at once where that loop runs this
    /// call in one of its tasks (a release or a cancel there), else through
    /// `call_soon_threadsafe`.
    fn schedule(self: Arc<Self>, py: Python<'_>) {
        if self.loop_runs_here(py) {
            if let Err(err) = self.poll_woken(py) {
                // Not expected: the loop runs, so it is not closed. The task would never learn
                // of the permit: it goes to the next waiter.
                err.write_unraisable(py, None);
                self.abandon(py);
            }
            return;
        }
        let wake = match Py::new(py, Wake { waiter: Arc::clone(&self), ran: AtomicBool::new(false) }) {
            Ok(wake) => wake,
            Err(_) => return self.abandon(py),
        };
        // `call_soon_threadsafe` lets the GIL go and takes it back: once the interpreter
        // finalizes, Python may end this thread there (`shutdown`).
        let event_loop = self.event_loop.bind(py);
        let args = match PyTuple::new(py, [wake]) {
            Ok(args) => args,
            Err(_) => return self.abandon(py),
        };
        if crate::shutdown::call_method_sleeping_at_exit(event_loop, "call_soon_threadsafe", args).is_err() {
            // The loop is closed: its task will never run. Pass the wake on.
            self.abandon(py);
        } else if event_loop
            .call_method0(intern!(py, "is_closed"))
            .is_ok_and(|c| c.is_truthy().unwrap_or(false))
        {
            // Closed by another thread meanwhile: asyncio's `close` marks the loop closed, then
            // clears its queue, and `call_soon_threadsafe` checks, then queues, so a callback
            // queued in between never runs (nor is freed). Pass the wake on; if the callback did
            // run first, the wait is over and this does nothing.
            self.abandon(py);
        }
    }
}

impl Waiter {
    /// Whether this thread runs the waiter's event loop now, inside one of its tasks: then a wake
    /// can poll at once, as `asyncio.Semaphore.release` resolves its waiter's future, and the
    /// task runs on the loop's next turn, not one turn later after a callback. asyncio's loops
    /// keep the thread that runs them in `_thread_id` (`None` while stopped): one attribute read.
    /// For another loop, `asyncio._get_running_loop()`, which costs a `getpid` system call (about
    /// 150 ns here).
    fn loop_runs_here(&self, py: Python<'_>) -> bool {
        let event_loop = self.event_loop.bind(py);
        let here = if let Ok(id) = event_loop.getattr(intern!(py, "_thread_id")) {
            // SAFETY: no preconditions; it reads the calling thread's id.
            let me = unsafe { PyThread_get_thread_ident() };
            id.extract::<std::ffi::c_ulong>().is_ok_and(|id| id == me)
        } else {
            let running = RUNNING_LOOP.get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import("asyncio")?.getattr("_get_running_loop")?.unbind())
            });
            running.and_then(|f| f.call0(py)).is_ok_and(|running| running.is(event_loop))
        };
        // And one of its tasks runs: the loop then goes on to its ready callbacks without a wake.
        // Elsewhere on its thread (a `signal.signal` handler run while the loop waits in
        // `select`, say) a callback queued with `call_soon` alone would wait for the loop's next
        // event, where `call_soon_threadsafe` wakes it.
        here && {
            let current = CURRENT_TASK.get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import("asyncio")?.getattr("current_task")?.unbind())
            });
            current.and_then(|f| f.call1(py, (event_loop,))).is_ok_and(|task| !task.is_none(py))
        }
    }

    /// On the waiter's loop: polls the engine future and, if it took the permit, resolves the
    /// asyncio future the task sleeps on. If that future was cancelled, the task's step will
    /// only raise: the permit goes back at once and the wake on to the next waiter (asyncio's
    /// `release` passes over a cancelled waiter), queued for the caller's delivery.
    fn poll_woken(self: &Arc<Self>, py: Python<'_>) -> PyResult<()> {
        // Release: a wake from now on queues again; it pairs with the swap in `wake_by_ref`.
        self.scheduled.store(false, Ordering::Release);
        if let Polled::Acquired(Some(future)) = self.poll(py) {
            let future = future.bind(py);
            if future.call_method0("done")?.is_truthy()? {
                self.give_up();
            } else {
                // `set_result` runs the loop's `call_soon` (see `shutdown`).
                crate::shutdown::call_method_sleeping_at_exit(
                    future,
                    "set_result",
                    PyTuple::new(py, [py.None()])?,
                )?;
            }
        }
        Ok(())
    }
}

static RUNNING_LOOP: GILOnceCell<PyObject> = GILOnceCell::new();
static CURRENT_TASK: GILOnceCell<PyObject> = GILOnceCell::new();

unsafe extern "C" {
    /// CPython's id of the calling thread (`threading.get_ident()`; the stable ABI has it).
    fn PyThread_get_thread_ident() -> std::ffi::c_ulong;
}

/// The callback a wake schedules on the waiter's event loop: polls the engine future and, if it
/// took the permit, resolves the asyncio future the task sleeps on. Freed without having run
/// (the loop was closed with it queued), it ends the wait as `Waiter::schedule` does for a
/// loop closed already. Not in the module: Python sees it only as `_Wake`, a callback in a loop.
#[pyclass(module = "futex_semaphore", name = "_Wake", frozen)]
pub(crate) struct Wake {
    waiter: Arc<Waiter>,
    /// It was called. Relaxed: set and read with the GIL held.
    ran: AtomicBool,
}

#[pymethods]
impl Wake {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        self.ran.store(true, Ordering::Relaxed);
        self.waiter.poll_woken(py)?;
        deliver_wakes(py);
        Ok(())
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        if !*self.ran.get_mut() {
            // The loop will never run it, nor the task: pass the permit or the wake on (a
            // finished or abandoned wait ignores this). Freed by a loop's `close`, or when
            // `schedule` failed, possibly while an exception propagates: kept aside.
            let waiter = &self.waiter;
            Python::with_gil(|py| crate::keeping_exception(py, || waiter.abandon(py)));
        }
    }
}

impl Waiter {
    /// A task's step while it waits: finish if the permit is here, else sleep on a new asyncio
    /// future.
    fn step(&self, py: Python<'_>) -> PyResult<Stepped> {
        {
            let mut state = lock(&self.state);
            if state.done {
                return Err(reused());
            }
            if state.acquired {
                state.acquired = false;
                state.done = true;
                let future = state.future.take();
                drop(state);
                drop(future);
                return Ok(Stepped::Finished);
            }
        }
        // A second task stepping it while the first sleeps on its future (one awaitable awaited
        // twice): refused, as a coroutine refuses it; the first waits on. The first task is
        // resumed by `send` only once its future has a result (a cancelled one resumes it with
        // `throw`), so a `send` while that future is pending or cancelled is another task's.
        let sleeping = lock(&self.state).future.as_ref().map(|f| f.clone_ref(py));
        if let Some(sleeping) = sleeping {
            let pending = !sleeping.call_method0(py, intern!(py, "done"))?.is_truthy(py)?;
            if pending || sleeping.call_method0(py, intern!(py, "cancelled"))?.is_truthy(py)? {
                return Ok(Stepped::Busy);
            }
        }
        // A new future each time the task sleeps (the first time, or after a spurious resume).
        let future = crate::shutdown::call_method_sleeping_at_exit(
            self.event_loop.bind(py),
            "create_future",
            PyTuple::empty(py),
        )?
        .unbind();
        future.setattr(py, "_asyncio_future_blocking", true)?;
        let mut state = lock(&self.state);
        if state.acquired {
            // The wake came in between (only if stepped off the loop's thread): finish now.
            state.acquired = false;
            state.done = true;
            drop(state);
            return Ok(Stepped::Finished);
        }
        let old = state.future.replace(future.clone_ref(py));
        drop(state);
        drop(old);
        Ok(Stepped::Sleep(future))
    }
}

/// What a waiting step came to.
enum Stepped {
    /// The permit is the task's: the awaitable finishes.
    Finished,
    /// The task sleeps on this asyncio future.
    Sleep(PyObject),
    /// Another task sleeps on its future: this step is refused, and that wait goes on.
    Busy,
}

/// The error of a step of a finished awaitable: a coroutine's.
fn reused() -> PyErr {
    PyRuntimeError::new_err("cannot reuse already awaited coroutine")
}

/// [`Acquiring::step`]: made, not run yet; it holds nothing.
const CREATED: u8 = 0;
/// Waiting: `Acquiring::waiter` is set.
const WAITING: u8 = 1;
/// Finished, failed, closed or thrown into: it holds nothing.
const DONE: u8 = 2;

// The module header has the design; no `weakref`, as a weak reference would tell a reused one
// from a new one ([`Spare`]). The doc below is the class's `__doc__`.
/// The awaitable of an async acquire, with a coroutine's life: it takes its permit when first
/// run and finishes with `True` (`None` for `__aenter__`); closed, thrown into or freed before
/// that, it takes nothing (a permit that reached it meanwhile is passed on). Having `send`,
/// `throw` and `close`, it counts as a coroutine for asyncio (`asyncio.create_task`, `gather`,
/// `wait_for` and `run_coroutine_threadsafe` take it). It takes no weak references: its
/// semaphore may hand it out again once nothing else refers to it.
#[pyclass(module = "futex_semaphore", frozen)]
pub(crate) struct Acquiring {
    engine: Arc<Engine>,
    /// The semaphore's [`Spare`] slot, which this may be in.
    slot: Arc<Slot>,
    /// Finish with `True` (`acquire`) rather than `None` (`__aenter__`). Relaxed, as `step`.
    value: AtomicBool,
    /// `CREATED`, `WAITING` or `DONE`. Read and written with the GIL held, which orders them
    /// (Relaxed); atomic only so that the object is `Sync`, as a frozen class must be.
    step: AtomicU8,
    /// The waiter, from the first step that had to wait on.
    waiter: OnceLock<Arc<Waiter>>,
}

impl Acquiring {
    /// One step of the task (`send(None)` or `__next__`).
    #[inline]
    fn step(&self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        match self.step.load(Ordering::Relaxed) {
            CREATED => {
                // From here a failure (no running loop, say) ends it, as it ends a coroutine.
                self.step.store(DONE, Ordering::Relaxed);
                if self.engine.try_acquire() {
                    return finish(self.value.load(Ordering::Relaxed));
                }
                self.start(py)
            }
            WAITING => self.wait(py),
            _ => Err(reused()),
        }
    }

    /// The first step found no permit free: wait, on the loop running this step.
    #[cold]
    fn start(&self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        // Out of the semaphore's slot: a waiting one must be freed, and so stop waiting, when
        // its task lets go of it (the caller of this step holds it meanwhile).
        let slot = self.slot.get(py);
        if let Some(kept) = slot.take() {
            if !std::ptr::eq(kept.get(), self) {
                slot.set(Some(kept));
            }
        }
        let get_running_loop = GET_RUNNING_LOOP.get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
        })?;
        let event_loop = get_running_loop.call0(py)?;
        let waiter = Arc::new(Waiter {
            state: Mutex::new(State {
                acquire: Some(PendingAcquire::new(Arc::clone(&self.engine))),
                acquired: false,
                future: None,
                done: false,
            }),
            scheduled: AtomicBool::new(false),
            engine: Arc::clone(&self.engine),
            event_loop: std::mem::ManuallyDrop::new(event_loop),
        });
        // The first poll registers the waiter with the engine (or takes a permit freed meanwhile).
        if let Polled::Acquired(_) = waiter.poll(py) {
            lock(&waiter.state).done = true;
            return finish(self.value.load(Ordering::Relaxed));
        }
        if self.waiter.set(waiter).is_err() {
            // Not reached: the first step is the only one that sets it, and it runs once.
            return Err(reused());
        }
        self.step.store(WAITING, Ordering::Relaxed);
        self.wait(py)
    }

    /// A step while waiting.
    #[cold]
    fn wait(&self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        let Some(waiter) = self.waiter.get() else { return Err(reused()) };
        match waiter.step(py) {
            Ok(Stepped::Sleep(future)) => Ok(Some(future)),
            Ok(Stepped::Busy) => Err(PyRuntimeError::new_err("coroutine is being awaited already")),
            Ok(Stepped::Finished) => {
                self.step.store(DONE, Ordering::Relaxed);
                finish(self.value.load(Ordering::Relaxed))
            }
            Err(err) => {
                // The step failed (the loop's `create_future`, say): end as a coroutine that
                // raised, giving back what came meanwhile.
                self.stop(py);
                Err(err)
            }
        }
    }

    /// Ends it without a permit for the task: gives back a permit that came, passes a wake on.
    fn stop(&self, py: Python<'_>) {
        if self.step.swap(DONE, Ordering::Relaxed) == WAITING {
            if let Some(waiter) = self.waiter.get() {
                waiter.abandon(py);
            }
        }
    }
}

#[pymethods]
impl Acquiring {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        self.step(py)
    }

    /// A step, as `__next__`, except that a step that finishes raises `StopIteration` (where
    /// `__next__` may return nothing: `None` for `__aenter__`).
    fn send(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        if !value.is_none() && self.step.load(Ordering::Relaxed) == CREATED {
            return Err(PyTypeError::new_err("can't send non-None value to a just-started coroutine"));
        }
        self.step(py)?.ok_or_else(|| PyStopIteration::new_err(()))
    }

    /// The task was cancelled (or another exception thrown in): stop (before the first step,
    /// nothing was taken), give back a permit that came meanwhile, pass a wake on, and raise the
    /// exception.
    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        &self,
        py: Python<'_>,
        typ: Bound<'_, PyAny>,
        val: Option<Bound<'_, PyAny>>,
        tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.stop(py);
        Err(thrown(typ, val, tb))
    }

    /// Ends the acquire, as a coroutine's `close()`: a permit that came meanwhile is passed on.
    fn close(&self, py: Python<'_>) {
        self.stop(py);
    }

    /// The name in a task's `repr`.
    #[getter]
    fn __name__(&self) -> &'static str {
        if self.value.load(Ordering::Relaxed) { "acquire" } else { "__aenter__" }
    }

    /// The qualified name in a task's `repr`: the same.
    #[getter]
    fn __qualname__(&self) -> &'static str {
        self.__name__()
    }
}

impl Drop for Acquiring {
    fn drop(&mut self) {
        // Freed while waiting (the task was destroyed, or the awaitable dropped after a step):
        // as if cancelled. Possibly while an exception propagates, and passing a wake on calls
        // `call_soon_threadsafe`: kept aside. Made and never run, or finished: nothing to do.
        if *self.step.get_mut() == WAITING {
            if let Some(waiter) = self.waiter.get() {
                Python::with_gil(|py| crate::keeping_exception(py, || waiter.abandon(py)));
            }
        }
    }
}

static GET_RUNNING_LOOP: GILOnceCell<PyObject> = GILOnceCell::new();

/// The awaitable a semaphore hands out again: the last one it made.
type Slot = GILProtected<Cell<Option<Py<Acquiring>>>>;

/// A semaphore's [`Slot`]. Its awaitables refer to it (to leave it when they wait), and it to
/// the last of them: the semaphore empties it when it goes.
pub(crate) struct Spare(Arc<Slot>);

impl Spare {
    pub(crate) fn new() -> Spare {
        Spare(Arc::new(GILProtected::new(Cell::new(None))))
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        // The semaphore goes (with the GIL: a Python object's drop). Its awaitable, never
        // waiting while in the slot, calls no Python when freed.
        Python::with_gil(|py| drop(self.0.get(py).take()));
    }
}

/// An async acquire of one permit: an awaitable that takes it when first run. Finishes with
/// `True` if `value`, else `None`.
#[inline]
pub(crate) fn acquire(
    py: Python<'_>,
    engine: &Arc<Engine>,
    spare: &Spare,
    value: bool,
) -> PyResult<PyObject> {
    let slot = spare.0.get(py);
    if let Some(kept) = slot.take() {
        // Only the slot refers to it (finished, or never run), and it never waited: made anew.
        if kept.get_refcnt(py) == 1 {
            let acquiring = kept.get();
            acquiring.step.store(CREATED, Ordering::Relaxed);
            acquiring.value.store(value, Ordering::Relaxed);
            let out = kept.clone_ref(py).into_any();
            slot.set(Some(kept));
            return Ok(out);
        }
        // Still someone's: it stays theirs. Dropped as a `Bound`, which decrefs at once: from the
        // package's fast methods, without PyO3's count of the GIL, a `Py` would wait in PyO3's
        // pool of deferred decrefs (fastcall.rs, `raise`).
        drop(kept.into_bound(py));
    }
    acquire_new(py, engine, spare, value)
}

fn acquire_new(py: Python<'_>, engine: &Arc<Engine>, spare: &Spare, value: bool) -> PyResult<PyObject> {
    let acquiring = Acquiring {
        engine: Arc::clone(engine),
        slot: Arc::clone(&spare.0),
        value: AtomicBool::new(value),
        step: AtomicU8::new(CREATED),
        waiter: OnceLock::new(),
    };
    let new = Py::new(py, acquiring)?;
    spare.0.get(py).set(Some(new.clone_ref(py)));
    Ok(new.into_any())
}

// ---------------------------------------------------------------------------------------------
// The wake queue.

/// Waiters the engine woke, to be scheduled on their loops.
static QUEUE: Mutex<Vec<Arc<Waiter>>> = Mutex::new(Vec::new());
/// Whether `QUEUE` may be non-empty: the one load [`deliver_wakes`] costs when nobody waits.
static QUEUED: AtomicBool = AtomicBool::new(false);

fn queue_wake(waiter: Arc<Waiter>) {
    {
        let mut queue = lock(&QUEUE);
        queue.push(waiter);
        QUEUED.store(true, Ordering::Release);
    }
    if no_delivery_follows() {
        helper::rouse();
    }
}

/// Whether no [`deliver_wakes`] follows a wake queued on this thread, so that the helper thread
/// must deliver it: a blocking wait without the GIL ([`crate::blocking::detached`]), or a thread
/// Python does not know, the crate's timer thread (the lapse of a reservation a task watches).
/// Every other thread that wakes a waiter does so in an engine call it made with the GIL, and
/// delivers after it.
fn no_delivery_follows() -> bool {
    // SAFETY: callable on any thread, with or without the GIL; a thread without a Python thread
    // state (none made, or the interpreter gone) gets null.
    crate::blocking::detached() || unsafe { pyo3::ffi::PyGILState_GetThisThreadState() }.is_null()
}

/// Schedules the waiters the engine woke. Call after each engine call that can give a permit
/// back or pass a wake on, with the GIL and no lock held.
#[inline]
pub(crate) fn deliver_wakes(py: Python<'_>) {
    // Acquire: pairs with the Release store in `queue_wake` (from another thread).
    if QUEUED.load(Ordering::Acquire) {
        deliver_slow(py);
    }
}

#[cold]
fn deliver_slow(_py: Python<'_>) {
    // Called from the package's fast methods too, which run without PyO3's count of the GIL:
    // counted here, so that the objects a wake makes and drops (the loop's handle, a future) are
    // freed at once rather than left to PyO3's pool of deferred decrefs (fastcall.rs, `raise`,
    // which says why unchecked).
    // SAFETY: the GIL is held (`_py`).
    unsafe { Python::with_gil_unchecked(deliver_batches) };
}

fn deliver_batches(py: Python<'_>) {
    loop {
        let batch = {
            let mut queue = lock(&QUEUE);
            QUEUED.store(false, Ordering::Relaxed);
            std::mem::take(&mut *queue)
        };
        // With the GIL: the Python objects of waiters freed without it (after QUEUED is
        // cleared, so that one freed from now on sets it again; freed after the lock).
        let orphans = std::mem::take(&mut *lock(&ORPHANS));
        drop(orphans);
        if batch.is_empty() {
            return;
        }
        for waiter in batch {
            waiter.schedule(py);
        }
    }
}

/// The wake queue's process-wide locks ([`QUEUE`], [`ORPHANS`], the helper's `STATE`), taken in
/// that order by the thread that forks, across the `fork` (`forks.rs`). No thread holds one of
/// them while it takes another, waits for the GIL or runs Python, so the forking thread, which
/// holds the GIL, waits only for short sections that end.
pub(crate) struct WakeLocks {
    _queue: MutexGuard<'static, Vec<Arc<Waiter>>>,
    _orphans: MutexGuard<'static, Vec<PyObject>>,
    _helper: MutexGuard<'static, (bool, u32)>,
}

/// Takes the [`WakeLocks`].
pub(crate) fn wake_locks() -> WakeLocks {
    WakeLocks { _queue: lock(&QUEUE), _orphans: lock(&ORPHANS), _helper: helper::state() }
}

/// Whether every one of the [`WakeLocks`] is free (each tried, none waited for).
pub(crate) fn wake_locks_free() -> bool {
    QUEUE.try_lock().is_ok() && ORPHANS.try_lock().is_ok() && helper::state_free()
}

/// The helper thread that delivers wakes queued by threads without the GIL.
mod helper {
    use super::{Condvar, Mutex, MutexGuard, lock};
    use pyo3::Python;

    /// Whether a wake waits for the helper, and the pid the helper runs in (0: none yet): after
    /// `fork` the child has no helper and starts its own.
    static STATE: Mutex<(bool, u32)> = Mutex::new((false, 0));
    static ROUSE: Condvar = Condvar::new();

    pub(super) fn state() -> MutexGuard<'static, (bool, u32)> {
        lock(&STATE)
    }

    pub(super) fn state_free() -> bool {
        STATE.try_lock().is_ok()
    }

    pub(super) fn rouse() {
        let pid = std::process::id();
        let mut state = lock(&STATE);
        state.0 = true;
        if state.1 != pid {
            if !interpreter_alive() {
                return; // nothing can be delivered any more, and a new thread must not try
            }
            state.1 = pid;
            let spawned = std::thread::Builder::new().name("futex_semaphore-wakes".into()).spawn(run);
            if spawned.is_err() {
                state.1 = 0;
            }
        }
        ROUSE.notify_one();
    }

    /// Delivers with one Python thread state for the thread's life: it lets the GIL go while it
    /// waits and takes it back to deliver ([`Detached`](crate::shutdown::Detached), which sleeps
    /// for good if the interpreter is ending). A `with_gil` per delivery made and freed a thread
    /// state each time, under the interpreter's lock of its thread states, about 60 times a
    /// second under a steady stream of such wakes; where CPython's gh-112275 is not fixed (3.11.7
    /// and others before 3.12 and its backports) a `fork` while that lock is held hangs the child
    /// in `PyOS_AfterFork_Child` (seen once in 12,000 forks here).
    ///
    /// Started only while the interpreter is alive, and it takes the GIL only if it still is: a
    /// thread that first takes it once finalization has begun panicked in PyO3 (the interpreter
    /// no longer counts as initialized), printing a panic at the program's end
    /// (`test_asyncio.py::test_a_wake_on_a_foreign_thread_at_the_end_is_quiet`).
    fn run() {
        if !interpreter_alive() {
            return;
        }
        // SAFETY: the interpreter was initialized just now; should it begin to finalize before
        // the GIL is taken, Python ends this thread there, which PyO3's `PyGILState_Ensure` turns
        // into a thread asleep for good (as `Detached` does).
        unsafe { Python::with_gil_unchecked(deliver_for_good) }
    }

    /// The helper's life: waits without the GIL for a wake to deliver, and delivers it with.
    fn deliver_for_good(py: Python<'_>) {
        loop {
            {
                let _detached = crate::shutdown::Detached::new(py);
                let mut state = lock(&STATE);
                while !state.0 {
                    state = ROUSE.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                state.0 = false;
            } // the lock is released, then the GIL taken back
            super::deliver_wakes(py);
        }
    }

    /// Whether the interpreter has not begun to finalize (`Py_IsInitialized`: cleared as
    /// finalization begins, before the threads Python will end are ended).
    fn interpreter_alive() -> bool {
        // SAFETY: a read of the runtime's flag, callable on any thread, with or without the GIL.
        unsafe { pyo3::ffi::Py_IsInitialized() != 0 }
    }
}
