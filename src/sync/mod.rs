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
//!
//! # Async waiters
//! Tasks do not block: they wait in a list of wakers, `event-listener`'s [`Event`] (loom's build
//! of it under `--cfg loom`). [`Park::Wakers`] says which list a semaphore has: an `Event` for a
//! process-private one, nothing for a process-shared one (a waker cannot cross processes, and the
//! shared layout stays 16 bytes). The contract used by the engine:
//! - [`Event::listen`] puts a new listener at the tail of the list before it returns, under the
//!   list's lock.
//! - [`Wakers::notify_additional`]`(n)` takes the same lock and notifies the first `n` listeners
//!   that were *not yet notified* (`event-listener`'s `additional` notification): a listener
//!   notified earlier whose task has not run yet does not count towards `n`.
//! - A listener dropped while notified passes its notification on to the next listener that was
//!   not yet notified (`event-listener` does this in its `Drop`, as an `additional` one again).

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
// The fence of the cross-process sleep protocol (`src/process/sleep.rs`).
#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use core::sync::atomic::fence;
#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::fence;

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

/// How many rounds of exponential spinning (`1, 2, 4` spin hints, 7 in all: about 0.2 µs on a
/// recent x86 core) a contended acquire makes, re-reading the state between rounds, before it
/// yields. Longer spins lost when the releasing thread needed the spinner's core: the benchmark's
/// one-CPU handoff round trip took 10.6 µs with 127 hints and 3.2 µs with 7 hints + yields.
/// Loom explores every interleaving anyway, so the model neither spins nor yields.
#[cfg(not(loom))]
pub(crate) const SPIN_ROUNDS: u32 = 3;
#[cfg(loom)]
pub(crate) const SPIN_ROUNDS: u32 = 0;

/// After spinning, how many times a contended acquire yields its core (and re-reads the state)
/// before it sleeps: a release by a thread waiting for this core then costs no system call.
#[cfg(not(loom))]
pub(crate) const YIELD_ROUNDS: u32 = 3;
#[cfg(loom)]
pub(crate) const YIELD_ROUNDS: u32 = 0;

/// Gives up the rest of this thread's time slice.
#[inline]
pub(crate) fn yield_now() {
    std::thread::yield_now();
}

pub(crate) use crossbeam_utils::Backoff;

// `event-listener` switches to loom's atomics and locks itself under `--cfg loom` (with its
// `loom` feature, which Cargo.toml turns on there).
pub(crate) use event_listener::{Event, EventListener};

/// A list of async waiters' wakers, for [`Park::Wakers`].
pub(crate) trait Wakers {
    /// An empty list, for the `const` constructor.
    #[cfg(not(loom))]
    const EMPTY: Self;
    /// An empty list (loom's types have no `const` constructors).
    #[cfg(loom)]
    fn empty() -> Self;
    /// Notifies the first `n` listeners that were not notified yet (`u64::MAX`: all of them).
    fn notify_additional(&self, n: u64);
}

impl Wakers for Event {
    // A `const` of a type with interior mutability: each use is a fresh, empty list, which is
    // what the constructor wants (as with `AtomicU32::new` in a `const`).
    #[cfg(not(loom))]
    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Event = Event::new();

    #[cfg(loom)]
    fn empty() -> Event {
        Event::new()
    }

    #[inline]
    fn notify_additional(&self, n: u64) {
        use event_listener::IntoNotification;
        // Not `notify(n)`: that only makes sure that `n` listeners are notified *in all*, and a
        // listener notified by an earlier release whose task has not run yet would absorb this
        // release's wake. The `SeqCst` fence that `notify` emits is kept (no `.relaxed()`): the
        // engine's argument rests on the list's lock, but the fence is `event-listener`'s
        // documented contract and costs nothing next to the lock.
        self.notify(usize::try_from(n).unwrap_or(usize::MAX).additional());
    }
}

/// The waker list of a semaphore that has no async waiters: the process-shared one.
#[cfg(all(not(loom), any(target_os = "linux", target_os = "android")))]
#[allow(dead_code)] // used by the cross-process semaphore
pub(crate) struct NoWakers;

#[cfg(all(not(loom), any(target_os = "linux", target_os = "android")))]
impl Wakers for NoWakers {
    const EMPTY: NoWakers = NoWakers;

    #[inline]
    fn notify_additional(&self, _n: u64) {
        // Nobody sets `ASYNC` on a shared semaphore, so the engine never calls this.
    }
}

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
    /// Where async waiters of a semaphore with this kind of futex wait.
    type Wakers: Wakers;
    /// Blocks while `futex` holds `expected`, until woken or until `deadline` (if any).
    fn wait(futex: &Futex, expected: u32, deadline: Option<Instant>) -> WaitOutcome;
    /// Wakes up to `n` blocked threads; [`WAKE_ALL`] wakes all of them.
    fn wake(futex: &Futex, n: u32);
}
