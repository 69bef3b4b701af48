//! `ProcessSemaphore`: `multiprocessing.Semaphore`'s API on the crate's `ProcessSemaphore`,
//! which gives back the permits of a process that dies holding them.
//!
//! # Lifetime of the shared region
//! Each `ProcessSemaphore(value)` creates a named region (a file in `/dev/shm`). Children get it
//! by inheritance under `fork`, and by pickling under `spawn` and `forkserver`, where they open it
//! by name: so the name must exist until they have. The creating process unlinks it when its
//! last handle goes, and at exit for handles still alive then: by `atexit`, and by a
//! `multiprocessing.util.Finalize` (what `multiprocessing` runs when one of its children ends,
//! through `os._exit`, which skips `atexit`), whichever comes first (`CREATED` lists the names
//! still to unlink). It also registers the name with `multiprocessing`'s resource tracker, which
//! unlinks it should the creator be killed.
//! Processes that opened it keep their mapping after the unlink.
//!
//! # Who holds a permit
//! Python's `acquire()` returns no guard, so the handle keeps the crate's `ProcessPermit`s that
//! this process took, merged into one (`Held`: one per semaphore per process, shared by its
//! handles and threads), and `release()` gives one of those back (`ProcessPermit::release_one`);
//! a process that holds none adds a permit instead (a semaphore used as a signal between
//! processes). The permits a process holds are recorded in
//! the region, so when it dies, even by `SIGKILL`, they come back (see the crate's
//! `ProcessSemaphore`). `ProcessSemaphore(value, recover=False)` records nothing: acquire and
//! release are then plain counts, as in `multiprocessing` (the crate's unrecorded take and
//! `release`; a permit that waiting got is taken recorded, then forgotten).
//!
//! # A normal end keeps the permits taken
//! Only a process that dies (killed, crashed, or `os._exit` called by its own code) has its
//! permits given back. One that ends normally keeps them taken, as `multiprocessing` does: the
//! consumer of a producer/consumer pair acquires `full` and never releases it (the producer does),
//! and its "held" permits must not come back as phantom items when it returns. So what a process
//! holds is forgotten (`ProcessPermit::forget`: still taken, no longer recorded) when its last
//! handle of the semaphore goes (`Held`'s drop), and at its normal end, for every semaphore it
//! has open (`_forget_held`, over `OPEN`): by `atexit`, and by a `multiprocessing.util.Finalize`
//! (a `multiprocessing` child ends through `os._exit`, after `multiprocessing` has run its
//! finalizers, also when the target raised). That `Finalize` is registered when a handle is made
//! or opened (`arm`, `LIFE`); `multiprocessing` empties its registry when a child starts (after
//! `fork`, and after unpickling the arguments under `spawn`), and then runs its after-fork hooks,
//! where `_rearm` registers it again. After `_forget_held` (`LIFE` is `ENDING`) a permit taken is
//! forgotten at once: a thread still running then (one the child's end waits for) counts as under
//! `recover=False`.
//!
//! # Recovery while polling
//! The crate recovers dead holders' permits within one wait, after each `RECOVERY_INTERVAL` of
//! it: a process that only polls (`acquire(False)`, or short timeouts) would never wait that
//! long. So a failed acquire (an attempt, or a timed wait at its end) scans itself when this
//! process's last scan of the semaphore (`Shared::last_scan`, shared with the main thread's
//! waits in slices) is older than that, and then tries once more. Only the failure path: the
//! successful one is as before.

use crate::args;
use crate::blocking::{self, timeout_from};
use crate::threading::Truthy;
use futex_semaphore::{ProcessPermit, ProcessSemaphore as Region};
use pyo3::exceptions::{PyOSError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILProtected;
use pyo3::types::{PyDict, PyTuple, PyType};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One semaphore as this process sees it: the mapping and the permits this process holds.
struct Shared {
    // Declared first, so dropped (and so forgotten) before the region they borrow. Only
    // touched with the GIL held: no atomic read-modify-write on the fast path.
    held: GILProtected<RefCell<Held>>,
    region: Region,
    name: String,
    /// Keep permits recorded (and so recoverable); else `forget` them.
    recover: bool,
    /// The creator's `multiprocessing.util.Finalize` that unlinks the name at exit: cancelled
    /// when the last handle unlinks it first.
    finalizer: Option<PyObject>,
    /// When this process last scanned for dead holders from Python (none yet: `None`).
    last_scan: GILProtected<Cell<Option<Instant>>>,
}

impl Shared {
    fn region(&self) -> &'static Region {
        // SAFETY: `self` lives in an `Arc` allocation, which never moves; the `'static`
        // reference is only put in `ProcessPermit`s kept in `self.held`, which is dropped before
        // `self.region` (field order) and never hands them out.
        unsafe { &*(&self.region as *const Region) }
    }

    /// Recovers dead holders' permits if this process's last scan is older than
    /// `RECOVERY_INTERVAL` (see the module header); returns whether it scanned.
    #[cold]
    fn recover_if_due(&self, py: Python<'_>) -> bool {
        let last_scan = self.last_scan.get(py);
        let now = Instant::now();
        if last_scan.get().is_some_and(|t| now.duration_since(t) < Region::RECOVERY_INTERVAL) {
            return false;
        }
        last_scan.set(Some(now));
        // An error is a process in another pid namespace: it cannot tell who is alive.
        let _ = self.region().recover();
        true
    }

    /// Keeps a permit taken for this process (or forgets it without recovery, or once this
    /// process is ending).
    #[inline]
    fn keep(&self, py: Python<'_>, permit: ProcessPermit<'static>) {
        if self.recover && LIFE.load(Ordering::Relaxed) == ARMED {
            self.held.get(py).borrow_mut().keep(permit);
        } else {
            self.keep_cold(py, permit);
        }
    }

    /// `keep` without recovery, in a process that is ending, or in one not armed (a `fork`
    /// child, outside `multiprocessing`).
    #[cold]
    fn keep_cold(&self, py: Python<'_>, permit: ProcessPermit<'static>) {
        if !self.recover || LIFE.load(Ordering::Relaxed) == ENDING {
            permit.forget();
            return;
        }
        self.held.get(py).borrow_mut().keep(permit);
        arm(py);
    }
}

/// Where this process is in its life, for `Shared::keep` (the module header, "A normal end keeps
/// the permits taken"): `ARMED` once `arm` registered the `Finalize` that calls `_forget_held`
/// (`UNARMED` again in a `fork` child, and re-armed there), `ENDING` once `_forget_held` ran.
static LIFE: AtomicU8 = AtomicU8::new(UNARMED);
const UNARMED: u8 = 0;
const ARMED: u8 = 1;
const ENDING: u8 = 2;
/// Whether `_rearm` is registered with `multiprocessing.util.register_after_fork` (inherited by a
/// `fork` child with the registry: not reset there).
static AFTER_FORKER: AtomicBool = AtomicBool::new(false);

/// Registers `multiprocessing.util.Finalize(None, _forget_held, exitpriority=0)` once in this
/// process: run at the normal end of a `multiprocessing` child, before its `os._exit` (and at the
/// main process's exit, where `atexit` calls `_forget_held` too). Called when a handle is made or
/// opened (so also before a child's target runs, even one that takes its first permit in a thread
/// after the target returned) and by the first permit kept in a process `fork` made outside
/// `multiprocessing`. A `multiprocessing` child empties the `Finalize` registry as it starts (its
/// `_after_fork`, also under `spawn`, after the arguments were unpickled): the `_rearm` that this
/// registers with `register_after_fork` then registers it again. Best effort: without it, a
/// `multiprocessing` child that ends normally has its permits given back.
#[cold]
#[inline(never)]
fn arm(_gil: Python<'_>) {
    if LIFE.compare_exchange(UNARMED, ARMED, Ordering::Relaxed, Ordering::Relaxed).is_err() {
        return;
    }
    let register = |py: Python<'_>| -> PyResult<()> {
        let util = py.import("multiprocessing.util")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("exitpriority", 0)?;
        util.getattr("Finalize")?.call((py.None(), wrap_pyfunction!(_forget_held, py)?), Some(&kwargs))?;
        if !AFTER_FORKER.swap(true, Ordering::Relaxed) {
            // Keyed by an object that lives as long as the process: the module.
            let module = py.import("futex_semaphore")?;
            util.call_method1("register_after_fork", (module, wrap_pyfunction!(_rearm, py)?))?;
        }
        Ok(())
    };
    // `with_gil_unchecked` with the GIL held (the callers hold it): counted, so that an error's
    // objects are freed here even when a fast method (`fastcall.rs`) called, which runs outside
    // PyO3's count; unchecked, as the interpreter may be shutting down.
    // SAFETY: the GIL is held.
    unsafe {
        Python::with_gil_unchecked(|py| {
            crate::keeping_exception(py, || {
                let _ = register(py);
            })
        })
    };
}

/// `multiprocessing.util.register_after_fork`'s callback, run as a `multiprocessing` child starts
/// (after it emptied the `Finalize` registry): registers `arm`'s `Finalize` again.
#[pyfunction]
fn _rearm(py: Python<'_>, _module: &Bound<'_, PyAny>) {
    LIFE.store(UNARMED, Ordering::Relaxed);
    arm(py);
}

/// The normal end of this process (`atexit`, and the `Finalize` that `arm` registers): forgets
/// the permits it holds of every semaphore it has open, so that they stay taken, as in
/// `multiprocessing`, and forgets any taken after (see the module header).
#[pyfunction]
fn _forget_held(py: Python<'_>) {
    LIFE.store(ENDING, Ordering::Relaxed);
    let open: Vec<_> = lock(&OPEN).iter().filter_map(|(_, weak)| weak.upgrade()).collect();
    for shared in &open {
        if let Ok(mut held) = shared.held.get(py).try_borrow_mut() {
            held.forget_all();
        }
    }
}

/// The permits this process holds of one semaphore, as counts: each permit taken is merged
/// (`ProcessPermit::merge`) into the last entry, and a release gives one back from the last entry
/// that holds any (`ProcessPermit::release_one`); emptied entries stay. So an acquire/release pair
/// neither allocates nor moves a permit, and the entry is in `Shared` itself, not behind a
/// pointer. `more` takes a permit recorded unlike the last one (this process's slot lost and
/// claimed again): in practice empty.
#[derive(Default)]
struct Held {
    first: Option<ProcessPermit<'static>>,
    more: Vec<ProcessPermit<'static>>,
}

impl Held {
    #[inline]
    fn keep(&mut self, permit: ProcessPermit<'static>) {
        let unlike = match (&mut self.first, self.more.is_empty()) {
            (Some(first), true) => first.merge(permit).err(),
            (None, true) => {
                self.first = Some(permit);
                None
            }
            (_, false) => self.more.last_mut().and_then(|last| last.merge(permit).err()),
        };
        if let Some(unlike) = unlike {
            self.keep_unlike(unlike);
        }
    }

    #[cold]
    fn keep_unlike(&mut self, permit: ProcessPermit<'static>) {
        self.more.push(permit);
    }

    /// Gives one back; `false` if none is held.
    #[inline]
    fn release_one(&mut self) -> bool {
        if self.more.is_empty() {
            return self.first.as_mut().is_some_and(ProcessPermit::release_one);
        }
        self.release_one_of_more()
    }

    #[cold]
    fn release_one_of_more(&mut self) -> bool {
        self.more.iter_mut().rev().chain(&mut self.first).any(ProcessPermit::release_one)
    }

    /// Forgets all it holds: taken for good, and not given back by recovery either (the module
    /// header, "A normal end keeps the permits taken"). A `fork` child's copy of a parent's
    /// permit: nothing done (the crate checks the process incarnation).
    fn forget_all(&mut self) {
        for permit in self.first.take().into_iter().chain(self.more.drain(..)) {
            permit.forget();
        }
    }
}

impl Drop for Held {
    /// The last handle of the semaphore in this process went: what it holds stays taken.
    fn drop(&mut self) {
        self.forget_all();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if take_created(&self.name) {
            unlink(&self.name);
            if let Some(finalizer) = &self.finalizer {
                // Out of `multiprocessing`'s registry, which would keep it to the end.
                Python::with_gil(|py| {
                    crate::keeping_exception(py, || {
                        let _ = finalizer.call_method0(py, "cancel");
                    })
                });
            }
        }
    }
}

/// The semaphores this process has open, by name: a handle unpickled here joins the list of
/// permits of the one already open (so a permit taken through one handle can be released
/// through another).
static OPEN: Mutex<Vec<(String, Weak<Shared>)>> = Mutex::new(Vec::new());
/// The names this process created and has not unlinked yet.
static CREATED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn register(shared: &Arc<Shared>) {
    let mut open = lock(&OPEN);
    open.retain(|(_, w)| w.strong_count() > 0);
    open.push((shared.name.clone(), Arc::downgrade(shared)));
}

fn take_created(name: &str) -> bool {
    let mut created = lock(&CREATED);
    let before = created.len();
    created.retain(|n| n != name);
    created.len() != before
}

/// Unlinks a name this process created, and tells the resource tracker it need not. Runs from
/// `Shared`'s drop, so possibly while an exception propagates: kept aside.
fn unlink(name: &str) {
    let _ = Region::unlink(name);
    Python::with_gil(|py| {
        crate::keeping_exception(py, || {
            let _ = tracker(py, "unregister", name);
        })
    });
}

/// `multiprocessing.resource_tracker.register/unregister("/name", "shared_memory")`: the
/// tracker process unlinks a registered name if this process dies without unlinking it.
fn tracker(py: Python<'_>, what: &str, name: &str) -> PyResult<()> {
    py.import("multiprocessing.resource_tracker")?
        .call_method1(what, (format!("/{name}"), "shared_memory"))?;
    Ok(())
}

/// `multiprocessing.util.Finalize(None, _unlink_if_created, (name,), exitpriority=-1)`: run at
/// the end of a `multiprocessing` child (its `os._exit` skips `atexit`), and at the main
/// process's exit. Priority -1: after `multiprocessing` has joined the children, which may not
/// have opened the name yet (0 and above run before).
fn finalize_at_exit(py: Python<'_>, name: &str) -> PyResult<PyObject> {
    let unlink = wrap_pyfunction!(_unlink_if_created, py)?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("exitpriority", -1)?;
    let finalize = py.import("multiprocessing.util")?.getattr("Finalize")?;
    Ok(finalize.call((py.None(), unlink, (name,)), Some(&kwargs))?.unbind())
}

/// A fresh name: the pid, a count, and the clock, so that a reused pid does not collide.
fn fresh_name() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("futex-semaphore-py-{}-{n}-{nanos:x}", std::process::id())
}

/// A semaphore shared between processes: `multiprocessing.Semaphore`'s API (`acquire(block=True,
/// timeout=None)`, `release()`, `get_value()`, `with`), on futex-semaphore's `ProcessSemaphore`.
///
/// Pass it to `multiprocessing.Process` children (under `fork`, `spawn` or `forkserver`; it
/// pickles to its name). If a process dies holding permits (killed, even with `SIGKILL`, or by
/// its own `os._exit`), they come back: a waiter recovers them within about 0.1 s. A process
/// that ends normally keeps them taken, as `multiprocessing` does. Subclasses and weak references work
/// (the value is read when the object is made, from the first positional argument or
/// `value=`: a subclass whose `__init__` takes it elsewhere passes it as `value=`).
#[pyclass(module = "futex_semaphore", subclass, weakref, frozen)]
pub struct ProcessSemaphore {
    shared: Arc<Shared>,
    /// The value it was made with, for `__init__`'s check (`None`: opened by name).
    made_with: Option<i64>,
}

impl ProcessSemaphore {
    #[inline]
    pub(crate) fn acquire_impl(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let shared = &*self.shared;
        if !shared.recover {
            // A bare count, as `sem_trywait`: one CAS and no store to the holder slot.
            if shared.region().try_acquire_unrecorded().is_ok() {
                return Ok(true);
            }
        } else if let Ok(permit) = shared.region().try_acquire() {
            shared.keep(py, permit);
            return Ok(true);
        }
        if !block {
            return Ok(self.acquire_failed(py));
        }
        self.acquire_slow(py, timeout)
    }

    /// An attempt or a timed wait failed: recover dead holders' permits if it is time to (the
    /// module header), and if so try once more.
    #[cold]
    fn acquire_failed(&self, py: Python<'_>) -> bool {
        let shared = &*self.shared;
        if !shared.recover_if_due(py) {
            return false;
        }
        if !shared.recover {
            return shared.region().try_acquire_unrecorded().is_ok();
        }
        match shared.region().try_acquire() {
            Ok(permit) => {
                shared.keep(py, permit);
                true
            }
            Err(_) => false,
        }
    }

    #[cold]
    fn acquire_slow(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let shared = &*self.shared;
        let region = shared.region();
        // Taken without the GIL, kept with it.
        let taken = Mutex::new(None);
        let attempt = |t| {
            let permit = match t {
                None => region.acquire().ok(),
                Some(t) => region.try_acquire_for(t).ok(),
            };
            let got = permit.is_some();
            *lock(&taken) = permit;
            got
        };
        // Waiting in slices, the main thread recovers dead holders' permits itself (the crate
        // does it after each RECOVERY_INTERVAL of one wait).
        let between = || {
            shared.recover_if_due(py);
        };
        // A signal handler that raised as the permit came: the permit goes back (dropped).
        let give_back = |_: Python<'_>| {
            drop(lock(&taken).take());
            Ok(())
        };
        let got = blocking::wait(py, timeout_from(timeout)?, attempt, between, give_back)?;
        if let Some(permit) = lock(&taken).take() {
            shared.keep(py, permit);
        }
        // A timed wait ended: it may have been too short for the crate's own recovery.
        Ok(got || self.acquire_failed(py))
    }

    #[inline]
    pub(crate) fn release_impl(&self, py: Python<'_>) -> PyResult<()> {
        if self.shared.recover && self.shared.held.get(py).borrow_mut().release_one() {
            return Ok(());
        }
        self.shared
            .region()
            .release()
            .map_err(|_| PyValueError::new_err("semaphore or lock released too many times"))
    }
}

#[pymethods]
impl ProcessSemaphore {
    #[new]
    #[classmethod]
    #[pyo3(signature = (*args, **kwargs), text_signature = "(value=1, *, recover=True)")]
    fn new(
        cls: &Bound<'_, PyType>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let py = cls.py();
        if let Some(opened) = UNPICKLING.get(py).take() {
            // `open_pickled` makes an instance of a subclass.
            return Ok(opened);
        }
        let own = py.get_type::<ProcessSemaphore>();
        let [value, recover] = args::new_args(cls, &own, args, kwargs, ["value", "recover"])?;
        // As `multiprocessing.Semaphore`: an int (no float), `OverflowError` past the limit.
        let value: i64 = value.map_or(Ok(1), |v| v.extract())?;
        let recover = recover.map_or(Ok(true), |r| r.is_truthy())?;
        if value < 0 {
            // `multiprocessing` raises `OSError(EINVAL)` from `sem_open`; a `ValueError` that
            // says why, as `threading`'s (docs/python.md, What differs).
            return Err(PyValueError::new_err("semaphore initial value must be >= 0"));
        }
        let permits =
            u32::try_from(value).ok().filter(|&v| v as usize <= Region::MAX_PERMITS).ok_or_else(|| {
                PyOverflowError::new_err(format!(
                    "value must be at most {} (futex_semaphore's limit)",
                    Region::MAX_PERMITS
                ))
            })?;
        let name = fresh_name();
        let region = Region::create(&name, permits).map_err(PyErr::from)?;
        lock(&CREATED).push(name.clone());
        // Best effort: without the tracker, only a killed creator leaves the file behind.
        let _ = tracker(py, "register", &name);
        // Best effort too: without it, `atexit` still unlinks in all but `multiprocessing`'s
        // children.
        let finalizer = finalize_at_exit(py, &name).ok();
        let shared = Arc::new(Shared {
            held: GILProtected::new(RefCell::new(Held::default())),
            region,
            name,
            recover,
            finalizer,
            last_scan: GILProtected::new(Cell::new(None)),
        });
        register(&shared);
        arm(py);
        Ok(ProcessSemaphore { shared, made_with: Some(value) })
    }

    /// Takes the arguments `__new__` took (`super().__init__(value)` in a subclass).
    #[pyo3(signature = (value = 1, *, recover = None), text_signature = "($self, value=1, *, recover=True)")]
    fn __init__(slf: &Bound<'_, Self>, value: i64, recover: Option<bool>) -> PyResult<()> {
        let this = slf.get();
        if recover.is_some_and(|r| r != this.shared.recover) {
            return Err(PyValueError::new_err(
                "ProcessSemaphore.__init__: recover differs from the one the semaphore was made with",
            ));
        }
        args::check_init(&slf.get_type().name()?.to_cow()?, value, this.made_with)
    }

    /// Takes a permit. Blocks while there is none if `block`, at most `timeout` seconds if given
    /// (a negative timeout is an attempt); returns whether it took one.
    #[pyo3(signature = (block = Truthy(true), timeout = None))]
    #[pyo3(text_signature = "($self, block=True, timeout=None)")]
    fn acquire(&self, py: Python<'_>, block: Truthy, timeout: Option<f64>) -> PyResult<bool> {
        self.acquire_impl(py, block.0, timeout)
    }

    /// Gives a permit back: one this process holds if it holds any, else a new one.
    pub(crate) fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.release_impl(py)
    }

    /// The number of free permits.
    pub(crate) fn get_value(&self) -> usize {
        self.shared.region.available_permits()
    }

    /// Gives back now the permits of processes that died holding them; returns how many.
    /// Waiting acquires do this by themselves.
    fn recover(&self) -> PyResult<usize> {
        self.shared.region.recover().map_err(PyErr::from)
    }

    /// The name of the region in `/dev/shm`.
    #[getter]
    fn name(&self) -> &str {
        &self.shared.name
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
        self.release_impl(py)
    }

    /// Pickles to the region's name: unpickled in another process, it opens the same semaphore.
    /// A subclass's instance is unpickled as one of its class, with its attributes.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        // A class method bound to the class pickles as `getattr(ProcessSemaphore, "_open")`.
        let open = py.get_type::<ProcessSemaphore>().getattr(pyo3::intern!(py, "_open"))?;
        let shared = &slf.get().shared;
        let (name, recover) = (shared.name.clone(), shared.recover);
        let cls = slf.get_type();
        if cls.is(py.get_type::<ProcessSemaphore>()) {
            return (open, (name, recover)).into_pyobject(py);
        }
        // Its state as `copyreg` takes it: `__getstate__` (Python 3.11+: the `__dict__` and the
        // `__slots__`, or the subclass's own), else the `__dict__`.
        let state = match slf.getattr(pyo3::intern!(py, "__getstate__")) {
            Ok(getstate) => Some(getstate.call0()?),
            Err(_) => slf.getattr(pyo3::intern!(py, "__dict__")).ok(),
        };
        (open, (name, recover, cls), state).into_pyobject(py)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Ok(format!("<{}(value={})>", slf.get_type().name()?, slf.get().shared.region.available_permits()))
    }

    /// Internal: what a pickled `ProcessSemaphore` is unpickled with (`__reduce__`); opens the
    /// semaphore named `name`, as an instance of `subclass` if given.
    #[classmethod]
    #[pyo3(signature = (name, recover, subclass = None))]
    fn _open<'py>(
        cls: &Bound<'py, PyType>,
        name: &str,
        recover: bool,
        subclass: Option<&Bound<'py, PyType>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        open_pickled(cls.py(), name, recover, subclass)
    }
}

/// A handle `open_pickled` opened for a subclass, for the base class's `__new__`
/// (PyO3 makes an instance of a subclass only there): set and taken with the GIL held, around
/// that one call.
static UNPICKLING: GILProtected<Cell<Option<ProcessSemaphore>>> = GILProtected::new(Cell::new(None));

/// Unpickles a `ProcessSemaphore` (an instance of `cls`, a subclass, if given): the handle this
/// process has open under that name, or the region opened by name.
fn open_pickled<'py>(
    py: Python<'py>,
    name: &str,
    recover: bool,
    cls: Option<&Bound<'py, PyType>>,
) -> PyResult<Bound<'py, PyAny>> {
    let handle = open_by_name(py, name, recover)?;
    let own = py.get_type::<ProcessSemaphore>();
    let Some(cls) = cls.filter(|cls| !cls.is(&own)) else {
        return Ok(Bound::new(py, handle)?.into_any());
    };
    if !cls.is_subclass(&own)? {
        return Err(PyTypeError::new_err(format!("{} is not a subclass of ProcessSemaphore", cls.name()?)));
    }
    // The base class's `__new__`, as `copyreg` makes objects: a subclass's own `__new__` and
    // `__init__` may take other arguments, and the state is set by pickle afterwards.
    UNPICKLING.get(py).set(Some(handle));
    let made = own.call_method1(pyo3::intern!(py, "__new__"), (cls,));
    UNPICKLING.get(py).take();
    made
}

/// The handle this process has open under `name`, or the region opened by name.
fn open_by_name(py: Python<'_>, name: &str, recover: bool) -> PyResult<ProcessSemaphore> {
    let existing = lock(&OPEN).iter().find(|(n, _)| n == name).and_then(|(_, w)| w.upgrade());
    if let Some(shared) = existing {
        return Ok(ProcessSemaphore { shared, made_with: None });
    }
    let region = Region::open(name).map_err(|e| {
        PyOSError::new_err(format!(
            "cannot open ProcessSemaphore {name:?} ({e}): was its creator's last handle dropped, or the creator gone?"
        ))
    })?;
    let shared = Arc::new(Shared {
        held: GILProtected::new(RefCell::new(Held::default())),
        region,
        name: name.to_owned(),
        recover,
        finalizer: None,
        last_scan: GILProtected::new(Cell::new(None)),
    });
    register(&shared);
    arm(py);
    Ok(ProcessSemaphore { shared, made_with: None })
}

/// `os.register_at_fork(after_in_child=...)`: the child holds none of the parent's permits,
/// created no region, has no `Finalize` of `arm`'s (the parent's does nothing in another
/// process, and `multiprocessing` empties the registry anyway), and its main thread is the one
/// that forked.
#[pyfunction]
pub fn _after_fork_in_child(py: Python<'_>) {
    blocking::after_fork_in_child();
    lock(&CREATED).clear();
    LIFE.store(UNARMED, Ordering::Relaxed);
    let open: Vec<_> = lock(&OPEN).iter().filter_map(|(_, weak)| weak.upgrade()).collect();
    for shared in open {
        // Forgetting a parent's permit in the child does nothing (the crate checks the
        // incarnation): the parent still holds it.
        drop(std::mem::take(&mut *shared.held.get(py).borrow_mut()));
    }
}

/// The `multiprocessing.util.Finalize` of a region this process created: unlinks it if no one
/// has yet.
#[pyfunction]
pub fn _unlink_if_created(name: &str) {
    if take_created(name) {
        unlink(name);
    }
}

/// `atexit`: unlinks the regions this process created that are still linked.
#[pyfunction]
pub fn _unlink_created() {
    let names = std::mem::take(&mut *lock(&CREATED));
    for name in names {
        unlink(&name);
    }
}

/// Registers the `atexit` and `fork` hooks, as function objects: none is a module attribute (the
/// module's names are the public ones, lib.rs's).
pub(crate) fn install_hooks(py: Python<'_>) -> PyResult<()> {
    let atexit = py.import("atexit")?;
    atexit.call_method1("register", (wrap_pyfunction!(_unlink_created, py)?,))?;
    atexit.call_method1("register", (wrap_pyfunction!(_forget_held, py)?,))?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("after_in_child", wrap_pyfunction!(_after_fork_in_child, py)?)?;
    py.import("os")?.call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}
