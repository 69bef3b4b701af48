//! The one shim through which the crate touches atomics and the futex.
//!
//! Everything else in the crate names `crate::sync::*` and never `core::sync::atomic`,
//! `loom`, `atomic_wait` or a system call. Under `--cfg loom` the atomics are loom's and the
//! futex is modelled by a loom `Mutex` + `Condvar` (see `loom_futex.rs`), so that the same
//! engine code is model-checked.
//!
//! # The futex contract used by the engine
//! - [`Park::wait`] blocks while the futex word equals `expected`. It may return early for any
//!   reason (a wake, a signal, a spurious return): callers loop and re-check their state.
//!   The comparison and the sleep are atomic with respect to [`Park::wake`].
//! - A timed wait returns [`WaitOutcome::TimedOut`] only once its deadline has passed.
//! - [`Park::wake`] wakes up to `n` threads blocked on the word ([`WAKE_ALL`]: all of them).

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use std::time::Instant;

#[cfg(not(loom))]
mod futex;
#[cfg(loom)]
#[path = "loom_futex.rs"]
mod futex;

#[cfg(all(not(loom), any(target_os = "linux", target_os = "android")))]
#[allow(unused_imports)] // used by the cross-process semaphore
pub(crate) use futex::Shared;
pub(crate) use futex::{Futex, Private};

/// Passed to [`Park::wake`] to wake every thread blocked on the word.
pub(crate) const WAKE_ALL: u32 = u32::MAX;

/// How many rounds of exponential spinning (`1, 2, 4, ... 64` spin hints, about 130 in all) a
/// contended acquire makes, re-reading the state between rounds, before it goes to sleep.
/// Loom explores every interleaving anyway, so the model does not spin.
#[cfg(not(loom))]
pub(crate) const SPIN_ROUNDS: u32 = 7;
#[cfg(loom)]
pub(crate) const SPIN_ROUNDS: u32 = 0;

pub(crate) use crossbeam_utils::Backoff;

/// Why a [`Park::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitOutcome {
    /// Woken, interrupted, or the word no longer held `expected`: re-check the state.
    Woken,
    /// The deadline has passed.
    TimedOut,
}

/// Blocking on and waking a [`Futex`]: process-private ([`Private`]) or, on Linux,
/// process-shared ([`Shared`], for a futex in shared memory).
pub(crate) trait Park {
    /// Blocks while `futex` holds `expected`, until woken or until `deadline` (if any).
    fn wait(futex: &Futex, expected: u32, deadline: Option<Instant>) -> WaitOutcome;
    /// Wakes up to `n` blocked threads; [`WAKE_ALL`] wakes all of them.
    fn wake(futex: &Futex, n: u32);
}
