//! The one shim through which the crate touches atomics and the futex.
//!
//! Everything else in the crate names `crate::sync::*` and never `core::sync::atomic`,
//! `loom`, `atomic_wait` or a system call. Under `--cfg loom` the atomics are loom's and the
//! futex is modelled by a loom `Mutex` + `Condvar` (see `loom_futex.rs`), so that the same
//! engine code is model-checked. One word is `core`'s atomic under loom too, on purpose:
//! [`GuessWord`], whose every value is safe (its doc has the argument).
//!
//! # The futex contract used by the engine
//! - [`Park::wait`] blocks while the futex word equals `expected`. It may return early for any
//!   reason (a wake, a signal, a spurious return): callers loop and re-check their state.
//!   The comparison and the sleep are atomic with respect to [`Park::wake`].
//! - A timed wait returns [`WaitOutcome::TimedOut`] only once its deadline has passed.
//! - [`Park::wake`] wakes up to `n` threads blocked on the word ([`WAKE_ALL`]: all of them).
//!
//! # Locks and shared nodes
//! The waiter queue sits behind a [`Mutex`] and its thread nodes are shared through [`Arc`]: std's
//! under a normal build, loom's under `--cfg loom` (so loom sees every lock and every node).
//! [`OnceBox`] allocates the queue on first use, so that an uncontended semaphore owns no heap
//! memory and `Semaphore::new` stays `const`.

/// A word that only guesses: the engine's guess of its state word
/// (`raw::RawSemaphore::first_look`). Any value it holds is safe, since a CAS on the state word
/// confirms it, so it is `core`'s atomic under loom too, where a modelled one made every model
/// branch on each of its loads and stores (the engine's models took 113-118 s, against 36 s
/// before the guess and 19 s with this) without reaching any state the state word's own
/// interleavings do not: a stale guess is one the schedule leaves (another thread took permits
/// after the release that stored it), and the model
/// `fast_path_takes_from_a_stale_guess_conserve_permits` reaches the second CAS so.
pub(crate) use core::sync::atomic::AtomicU64 as GuessWord;
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

pub(crate) mod fork;
#[cfg(not(loom))]
mod timer;
#[cfg(not(loom))]
pub(crate) use timer::{Token, cancel, wake_at};

/// Under loom there is no timer: a task that watches a reservation is woken to yield instead
/// (`raw::task`), so the models see its every step.
#[cfg(loom)]
pub(crate) fn wake_at(_at: Instant, _waker: &std::task::Waker) -> Option<Token> {
    None
}
#[cfg(loom)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token;
#[cfg(loom)]
pub(crate) fn cancel(_token: Token) -> Option<std::task::Waker> {
    None
}

/// Passed to [`Park::wake`] to wake every thread blocked on the word.
pub(crate) const WAKE_ALL: u32 = u32::MAX;

/// How many rounds of exponential spinning (`1, 2, 4` spin hints, 7 in all: about 0.1 µs on a
/// recent x86 core) a contended acquire makes, re-reading the state between rounds, before it
/// yields. Longer spins lost when the releasing thread needed the spinner's core: the benchmark's
/// one-CPU handoff round trip took 10.6 µs with 127 hints and 3.2 µs with 7 hints + yields.
/// Loom explores every interleaving anyway, so the model neither spins nor yields.
#[cfg(not(loom))]
pub(crate) const SPIN_ROUNDS: u32 = 3;
#[cfg(loom)]
pub(crate) const SPIN_ROUNDS: u32 = 0;

/// After spinning, how many times a contended acquire yields its core (and re-reads the state)
/// before it sleeps, if it is short by one permit: a release by a thread waiting for this core then
/// costs no system call. Eight, not three, since 2026-12-04: where threads outnumber cores, three
/// yields often ended before a permit came back, and the thread slept (`docs/design.md`,
/// "Spinning").
#[cfg(not(loom))]
pub(crate) const YIELD_ROUNDS: u32 = 8;
#[cfg(loom)]
pub(crate) const YIELD_ROUNDS: u32 = 0;

/// How many spin hints the gaps between the looks of a contended acquire's hint looks add up to
/// at most (`raw::spin`, rule 5: before its backoff rounds and after each yield that came back
/// at once, while its thread has a core to itself): with the first look's
/// [`FIRST_LOOK_AFTER`], about 0.8 µs of looks on the benchmark machine, long enough to see a
/// partner on another core pass a permit back without a yield's system call in between. Zero
/// under loom, as the other spins: no looks.
#[cfg(not(loom))]
pub(crate) const HINT_SPINS: u32 = 64;
#[cfg(loom)]
pub(crate) const HINT_SPINS: u32 = 0;

/// Spin hints before the first of the hint looks (`raw::spin`, rule 5): the acquire has just
/// found the permits taken, and a look at once would only pull the holder's cache line away
/// from it, which its release must then pull back.
pub(crate) const FIRST_LOOK_AFTER: u32 = 16;

/// A yield that comes back sooner than this found no other thread that wanted its CPU: on the
/// benchmark machine (a 2-vCPU VM) a `sched_yield` that switches nothing takes 0.17-0.28 µs (p10
/// to p99), and one that runs another thread and comes back at least 0.93 µs (two context
/// switches, measured with a partner that only yields).
pub(crate) const QUICK_YIELD: std::time::Duration = std::time::Duration::from_nanos(500);

/// The longest a contended acquire spins after the short spin, once its semaphore has learnt that
/// such spins pay (`raw::spin`): a little more than the wake-up of a sleeper on an idle core of a
/// virtual machine, so that two threads passing permits back and forth stay awake. Zero under
/// loom: the models neither spin nor learn.
#[cfg(not(loom))]
pub(crate) const LONG_SPIN_MAX: std::time::Duration = std::time::Duration::from_micros(100);
#[cfg(loom)]
pub(crate) const LONG_SPIN_MAX: std::time::Duration = std::time::Duration::ZERO;

/// Gives up the rest of this thread's time slice.
#[inline]
pub(crate) fn yield_now() {
    std::thread::yield_now();
}

pub(crate) use crossbeam_utils::Backoff;

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// A value allocated on first use, in one word: `once_cell`'s race-to-set box, where
/// `std::sync::OnceLock<Box<T>>` takes two (its `Once` beside the pointer), which with the
/// fast path's guess would take `Semaphore` past 24 bytes. Threads that find it empty at once
/// may each make a value; the first to publish it wins, and the others drop theirs unused (an
/// empty queue: no waiter has seen it).
#[cfg(not(loom))]
pub(crate) struct OnceBox<T>(once_cell::race::OnceBox<T>);

#[cfg(not(loom))]
impl<T> OnceBox<T> {
    pub(crate) const fn new() -> OnceBox<T> {
        OnceBox(once_cell::race::OnceBox::new())
    }

    /// The value, made by `init` if this is the first use.
    #[inline]
    pub(crate) fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(|| Box::new(init()))
    }

    /// The value, if it was made.
    #[inline]
    pub(crate) fn get(&self) -> Option<&T> {
        self.0.get()
    }
}

/// Under loom the value is made at once (loom has no `OnceLock`, and the models need no `const`).
#[cfg(loom)]
pub(crate) struct OnceBox<T>(T);

#[cfg(loom)]
impl<T: Default> OnceBox<T> {
    pub(crate) fn new() -> OnceBox<T> {
        OnceBox(T::default())
    }

    pub(crate) fn get_or_init(&self, _init: impl FnOnce() -> T) -> &T {
        &self.0
    }

    pub(crate) fn get(&self) -> Option<&T> {
        Some(&self.0)
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
    /// Blocks while `futex` holds `expected`, until woken or until `deadline` (if any).
    fn wait(futex: &Futex, expected: u32, deadline: Option<Instant>) -> WaitOutcome;
    /// Wakes up to `n` blocked threads; [`WAKE_ALL`] wakes all of them.
    fn wake(futex: &Futex, n: u32);
}
