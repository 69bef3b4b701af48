//! The in-process semaphore behind every threading and asyncio class: the crate's `Semaphore` or
//! `BoundedSemaphore`, with Python's count-based acquire and release.
//!
//! Python has no guards: `acquire()` takes a permit and `release()` gives one back, from any
//! thread. So a permit the crate hands out is `forget`-ed at once and `release` adds one back
//! (`add_permits`, which for the bounded kind refuses to pass the initial count, atomically).

use futex_semaphore::{Acquire, BoundedSemaphore, Permit, Semaphore};
use pyo3::PyResult;
use pyo3::exceptions::{PyOverflowError, PyValueError};
use std::time::{Duration, Instant};

/// One of the crate's two in-process semaphores.
#[derive(Debug)]
pub(crate) enum Engine {
    Plain(Semaphore),
    Bounded(BoundedSemaphore),
}

impl Engine {
    /// A new semaphore of `value` permits, checked as Python checks it.
    pub(crate) fn new(value: i64, bounded: bool, what: &str) -> PyResult<Engine> {
        if value < 0 {
            return Err(PyValueError::new_err(format!("{what} initial value must be >= 0")));
        }
        let permits =
            usize::try_from(value).ok().filter(|&v| v <= Semaphore::MAX_PERMITS).ok_or_else(|| {
                PyOverflowError::new_err(format!(
                    "{what} initial value must be at most {} (futex_semaphore's limit)",
                    Semaphore::MAX_PERMITS
                ))
            })?;
        Ok(if bounded {
            Engine::Bounded(BoundedSemaphore::new(permits))
        } else {
            Engine::Plain(Semaphore::new(permits))
        })
    }

    /// Takes a permit if one is free now (one CAS: the engine's fast path).
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let taken = match self {
            Engine::Plain(s) => s.try_acquire(),
            Engine::Bounded(s) => s.try_acquire(),
        };
        taken.map(Permit::forget).is_ok()
    }

    /// Takes a permit, waiting at most `timeout` (`None`: without limit). Call without the GIL.
    pub(crate) fn acquire_for(&self, timeout: Option<Duration>) -> bool {
        let taken = match (self, timeout) {
            (Engine::Plain(s), None) => s.acquire().map_err(drop),
            (Engine::Bounded(s), None) => s.acquire().map_err(drop),
            (Engine::Plain(s), Some(t)) => s.try_acquire_for(t).map_err(drop),
            (Engine::Bounded(s), Some(t)) => s.try_acquire_for(t).map_err(drop),
        };
        taken.map(Permit::forget).is_ok()
    }

    /// Takes a permit, waiting until `deadline` (`None`: without limit) for as long as
    /// `keep_waiting`, asked every `every` while the wait sleeps, says so. The waiter keeps its
    /// place in the queue across the asks (`Semaphore::try_acquire_many_while`). Call without the
    /// GIL.
    pub(crate) fn acquire_while(
        &self,
        deadline: Option<Instant>,
        every: Duration,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> bool {
        let taken = match self {
            Engine::Plain(s) => s.try_acquire_many_while(1, deadline, every, keep_waiting),
            Engine::Bounded(s) => s.try_acquire_many_while(1, deadline, every, keep_waiting),
        };
        taken.map(Permit::forget).is_ok()
    }

    /// The crate's async acquire of one permit.
    pub(crate) fn acquire_async(&self) -> Acquire<'_> {
        match self {
            Engine::Plain(s) => s.acquire_async(),
            Engine::Bounded(s) => s.acquire_async(),
        }
    }

    /// Gives `n` permits back; `message` is the `ValueError`'s for a bounded one past its start.
    #[inline]
    pub(crate) fn release(&self, n: usize, message: &'static str) -> PyResult<()> {
        match self {
            Engine::Plain(s) => {
                // `add_permits` panics past the limit: refuse first (CPython's count is unbounded).
                if n > Semaphore::MAX_PERMITS - s.available_permits().min(Semaphore::MAX_PERMITS) {
                    return Err(PyOverflowError::new_err(format!(
                        "release({n}) would take the semaphore past {} permits (futex_semaphore's limit)",
                        Semaphore::MAX_PERMITS
                    )));
                }
                s.add_permits(n);
                Ok(())
            }
            Engine::Bounded(s) => s.add_permits(n).map_err(|_| PyValueError::new_err(message)),
        }
    }

    #[inline]
    pub(crate) fn available(&self) -> usize {
        match self {
            Engine::Plain(s) => s.available_permits(),
            Engine::Bounded(s) => s.available_permits(),
        }
    }

    /// The bound of a bounded semaphore.
    pub(crate) fn initial(&self) -> Option<usize> {
        match self {
            Engine::Plain(_) => None,
            Engine::Bounded(s) => Some(s.initial_permits()),
        }
    }
}
