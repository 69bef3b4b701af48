//! The engine: a counting semaphore on one 64-bit state word, two 32-bit futex words for
//! blocked threads and a list of wakers for async tasks.
//!
//! The public types wrap [`RawSemaphore`]; the cross-process semaphore places one in shared memory
//! and parks with [`Shared`](crate::sync::Shared) futexes (and has no waker list). The state
//! layout is in [`state`]; the async waiter's side of the protocol is in [`task`].
//!
//! # Paths
//! - **Acquire, fast** ([`RawSemaphore::try_take`]): one load and one CAS that subtracts `n`
//!   when no flag blocks it and enough permits are there.
//! - **Release** ([`RawSemaphore::release`]): one `fetch_add`. Only if the old state had waiters
//!   (or the count passed the limit) does it go to the cold path, which bumps a futex word and
//!   wakes. No waiter, no system call.
//! - **Acquire, contended** ([`RawSemaphore::acquire_slow`]): spin on loads for a bounded number
//!   of rounds while nobody sleeps; then register (waiters + 1 and [`THREADS`], in a CAS that
//!   re-checks that the permits are still missing) and sleep on a futex word, re-checking after
//!   every return.
//!   A registered waiter leaves (waiters - 1) in the same CAS that takes its permits, or that gives
//!   up on a timeout or on close.
//!
//! # Who sleeps where, and who is woken
//! - Single-permit waiters sleep on `ones`. A release of `k` permits wakes `min(k, waiters)` of
//!   them: one permit, one wake, no herd. They are interchangeable, so whichever wakes can use it.
//! - Multi-permit threads (they set [`MANY`]) and the handoff owner sleep on `many`. While `MANY`
//!   or `HANDOFF` is set, a release wakes all of `many`: with mixed request sizes nobody can know
//!   which sleeper the new permits satisfy, so all of that (rarer) queue re-checks, and a wake
//!   meant for a 1-permit waiter is never spent on a 5-permit one.
//! - Starvation guard: a single-permit waiter that has slept and still finds no permit after
//!   [`STARVE_AFTER`] sets [`HANDOFF`] and moves to `many`. While it is set, the fast path and
//!   every other waiter leave permits alone (they register and sleep) and releases wake only
//!   `many`. The owner clears it in the CAS that takes its permit (or gives up), and then wakes
//!   `ones` for any permits left over, since releases skipped `ones` meanwhile. Since the owner
//!   needs one permit, the next release serves it: the reservation lasts microseconds and can
//!   never hold back others while permits sit unused. Multi-permit waiters do not claim it:
//!   reserving permits until a large request is complete would make single-permit waiters wait
//!   on free permits (and deadlock code where those waiters must finish first), so a large
//!   request competes by barging and can be overtaken by a stream of small ones.
//! - Async waiters (tasks, [`task::AsyncWaiter`]) wait in the waker list (`wakers`, an
//!   `event-listener` `Event`). They register in the state word like threads (waiters + 1), but
//!   set [`ASYNC`] (and [`ASYNC_MANY`] if n > 1) instead of `THREADS` (and `MANY`). A release that
//!   sees `ASYNC` (and no `HANDOFF`) notifies `min(k, waiters)` listeners *not yet notified*
//!   (all of them if `ASYNC_MANY`: one list cannot tell which task the permits serve, so while a
//!   multi-permit task waits, every task re-checks, as every thread on `many` does), in addition to the
//!   futex wakes above: each kind of waiter gets the wakes it would get if it were alone, so one
//!   kind never has to pass a wake on to the other. Async waiters never claim `HANDOFF`; while it
//!   is set they leave permits alone, releases do not notify them, and the owner's leftover wake
//!   notifies them too. Without `ASYNC` a release touches no list and takes no lock; without
//!   [`THREADS`] (only tasks wait) it bumps no futex word and makes no system call.
//! - `close` sets [`CLOSED`] and wakes everyone on both words and in the list.
//!
//! # Invariants
//! 1. `waiters` counts threads and tasks between their registering CAS and their leaving CAS.
//!    `THREADS` (`ASYNC`) is set while a thread (a task) is counted, and `MANY` (`ASYNC_MANY`)
//!    while a multi-permit one is: they are set in the registering CAS and cleared only with the
//!    last waiter.
//! 2. Only the thread that set `HANDOFF` clears it; at most one thread owns it.
//! 3. A waiter decides to sleep on a state value read *after* it read the futex word it sleeps on
//!    with `Acquire`; a release bumps that word with `Release` *after* its own RMW on the state.
//! 4. An async waiter has a listener in the list only while it is registered (it registers, then
//!    listens), and decides to wait on a state value read *after* its listener was in the list;
//!    a release notifies the list *after* its own RMW on the state.
//! 5. An async waiter holds exactly one listener while it is registered and not being polled; a
//!    notification it has taken out of its listener is acted on (a re-check) in the same poll.
//!    A dropped waiter that was notified but did not act passes the notification on.
//!
//! # Notes about memory ordering
//! - Permits: a release's RMW is `Release` and the CAS that takes a permit is `Acquire`,
//!   so whatever a holder did before giving a permit back happens-before whatever the next holder
//!   does with it (tokio makes the same promise).
//! - No lost wakeup (invariant 3): let a waiter W read futex word value `e` (`Acquire`), then
//!   state `s` without enough permits, then sleep on `e`; let a release R add permits with an RMW
//!   on the state and then bump the word (`Release`). If W's load of the word had seen R's bump,
//!   R's RMW would happen-before W's read of `s`, and `s` would show R's permits. So W read `e`
//!   before R's bump, and the kernel either finds the word changed (the wait returns at once) or
//!   has W queued before R's wake. R knows that W is there because R's RMW comes after W's
//!   registering CAS in the state's modification order (if it came before, W's CAS would have
//!   failed or seen the permits), and `THREADS` is set in the state R's RMW read (invariant 1).
//!   The same acquire/release pair on the word is all this needs: the
//!   registering CAS and the release's RMW need no ordering of their own for it, because an RMW
//!   always reads the latest value (loom checks this; weakening the word's `Acquire` fails it).
//! - No lost wakeup for tasks (invariant 4): the list's lock plays the futex word's part. Let a
//!   task T register, put listener L in the list (lock, insert, unlock), then read state `s`
//!   without enough permits, and let a release R add permits with an RMW and then notify (lock).
//!   If R's lock came first, R's RMW happens-before T's read (through the lock), and `s` would
//!   show R's permits; so R's notify finds L. R knows to notify because T's registering CAS
//!   precedes R's RMW in the state's order (if it came after, it would have seen R's permits) and
//!   `ASYNC` stays set while T is registered (invariant 1). R notifies
//!   listeners *not yet notified*: one notified by an earlier release whose task has not run yet
//!   must not absorb R's wake, since that task will take only one release's worth of permits.
//!   Whoever gets R's notification either re-checks after R's RMW (invariant 5) or, if dropped
//!   first, hands it to the next listener, which re-checks in turn, or else was put in the list
//!   after R's notify and re-checks after it anyway.
//! - Listeners nobody counted on: R notifies `min(k, waiters)` listeners in list order, unless
//!   it saw `ASYNC_MANY`. A 2-permit task M that registered *after* R's RMW has a listener R did
//!   not count on, and a notification spent on it is wasted on a task the permit does not
//!   satisfy. That is harmless because a task registers *before* it listens: M's listener enters
//!   the list after M's registering CAS, which comes after R's RMW in the state's order.
//!   Listeners ahead of M's come first in R's order. Listeners behind it were put in after M's
//!   (the list's lock orders them), so their owners' re-checks happen-after M's CAS and, by
//!   coherence, read M's CAS or a later value of the state, which has R's permits. (Loom found the
//!   lost wakeup this prevents, when tasks listened before registering:
//!   `async_acquire_many_and_single_waiters_both_finish`.)
//! - Loads of the state that only decide what to try next are `Relaxed`: every decision is
//!   confirmed by a CAS.
//!
//! The loom models in `tests/loom.rs` check these claims; `docs/design.md` maps claim to model.

pub(crate) mod state;
pub(crate) mod task;

use crate::sync::{AtomicU64, Backoff, Futex, Park, Private, SPIN_ROUNDS, WAKE_ALL, Wakers, YIELD_ROUNDS};
use crate::sync::{Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use state::*;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

pub(crate) use state::MAX_PERMITS;

/// How long a waiter waits before it claims [`HANDOFF`]. Under loom it is zero, so that the
/// models reach the handoff paths on the second sleep.
#[cfg(not(loom))]
pub(crate) const STARVE_AFTER: Duration = Duration::from_millis(1);
#[cfg(loom)]
pub(crate) const STARVE_AFTER: Duration = Duration::ZERO;

/// Why a blocking acquire failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Closed,
    /// No permits now (a try), or none before the deadline (a timed acquire).
    NoPermits,
}

/// The engine. `P` chooses process-private or process-shared futexes.
#[repr(C)]
pub(crate) struct RawSemaphore<P: Park = Private> {
    state: AtomicU64,
    /// Futex of single-permit sleepers.
    ones: Futex,
    /// Futex of multi-permit sleepers and of the handoff owner.
    many: Futex,
    /// Wakers of async waiters (none for a process-shared semaphore). Lazily allocated: a pointer.
    wakers: P::Wakers,
    _park: PhantomData<fn() -> P>,
}

impl<P: Park> RawSemaphore<P> {
    crate::loom_const_fn! {
        pub(crate) fn new(permits: u64) -> RawSemaphore<P> {
            RawSemaphore {
                state: AtomicU64::new(permits),
                ones: Futex::new(),
                many: Futex::new(),
                #[cfg(not(loom))]
                wakers: P::Wakers::EMPTY,
                #[cfg(loom)]
                wakers: P::Wakers::empty(),
                _park: PhantomData,
            }
        }
    }

    /// The fast path: takes `n` permits if nothing stands in the way. One load and one CAS.
    #[inline]
    pub(crate) fn try_take(&self, n: u32) -> bool {
        let s = self.state.load(Relaxed);
        // Acquire: pairs with the Release RMW of the release that gave these permits back.
        can_take(s, u64::from(n))
            && self.state.compare_exchange(s, s - u64::from(n), Acquire, Relaxed).is_ok()
    }

    /// A non-blocking acquire: fails only when the permits are not there (or it is closed),
    /// not because another thread changed the state at the same moment.
    #[inline]
    pub(crate) fn try_acquire(&self, n: u32) -> Result<(), Failure> {
        if self.try_take(n) { Ok(()) } else { self.try_acquire_slow(n) }
    }

    #[cold]
    fn try_acquire_slow(&self, n: u32) -> Result<(), Failure> {
        let n = u64::from(n);
        let mut s = self.state.load(Relaxed);
        loop {
            if is_closed(s) {
                return Err(Failure::Closed);
            }
            if !can_take(s, n) {
                return Err(Failure::NoPermits);
            }
            // Acquire: pairs with the Release RMW of the release that gave these permits back.
            match self.state.compare_exchange_weak(s, s - n, Acquire, Relaxed) {
                Ok(_) => return Ok(()),
                Err(actual) => s = actual,
            }
        }
    }

    /// A blocking acquire of `n` permits, until `deadline` if there is one.
    #[inline]
    pub(crate) fn acquire(&self, n: u32, deadline: Option<Instant>) -> Result<(), Failure> {
        if self.try_take(n) { Ok(()) } else { self.acquire_slow(n, deadline) }
    }

    #[cold]
    fn acquire_slow(&self, n: u32, deadline: Option<Instant>) -> Result<(), Failure> {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return self.try_acquire_slow(n);
        }
        if let Some(result) = self.spin(u64::from(n)) {
            return result;
        }
        self.wait(n, deadline)
    }

    /// Spins on loads while nobody sleeps, for at most [`SPIN_ROUNDS`] rounds, then yields for
    /// at most [`YIELD_ROUNDS`]. Returns `None` when it is time to sleep.
    fn spin(&self, n: u64) -> Option<Result<(), Failure>> {
        let backoff = Backoff::new();
        let mut rounds = 0;
        loop {
            let s = self.state.load(Relaxed);
            if is_closed(s) {
                return Some(Err(Failure::Closed));
            }
            if can_take(s, n) {
                // Acquire: pairs with the Release RMW of the release that gave these permits back.
                if self.state.compare_exchange_weak(s, s - n, Acquire, Relaxed).is_ok() {
                    return Some(Ok(()));
                }
                continue;
            }
            // Sleepers or a handoff mean the permits will not come to a spinner first.
            if has_waiters(s) || is_handoff(s) || rounds >= SPIN_ROUNDS + YIELD_ROUNDS {
                return None;
            }
            if rounds < SPIN_ROUNDS {
                backoff.spin();
            } else {
                crate::sync::yield_now();
            }
            rounds += 1;
        }
    }

    /// Registers, sleeps and re-checks until `n` permits are taken, the deadline passes or the
    /// semaphore closes.
    fn wait(&self, n: u32, deadline: Option<Instant>) -> Result<(), Failure> {
        let n64 = u64::from(n);
        let many = if n > 1 { MANY } else { 0 };
        let mut registered_at: Option<Instant> = None;
        let mut owner = false;
        loop {
            let futex = if owner || n > 1 { &self.many } else { &self.ones };
            // Acquire: pairs with the Release bump in `wake` (invariant 3).
            let seen = futex.load(Acquire);
            let s = self.state.load(Relaxed);
            if is_closed(s) {
                return match registered_at {
                    Some(_) => self.leave(n64, owner),
                    None => Err(Failure::Closed),
                };
            }
            if permits(s) >= n64 && (owner || !is_handoff(s)) {
                let new = match registered_at {
                    Some(_) => deregister(s - n64, owner),
                    None => s - n64,
                };
                // Acquire: pairs with the Release RMW of the release that gave these permits back.
                if self.state.compare_exchange_weak(s, new, Acquire, Relaxed).is_ok() {
                    if owner {
                        self.wake_after_handoff(new);
                    }
                    return Ok(());
                }
                continue;
            }
            match registered_at {
                None => {
                    // Release: pairs with the Acquire RMW of a later release, which must see that
                    // this thread read `seen` before registering (invariant 3).
                    let new = (s + ONE_WAITER) | THREADS | many;
                    if self.state.compare_exchange_weak(s, new, Release, Relaxed).is_err() {
                        continue;
                    }
                    registered_at = Some(Instant::now());
                }
                Some(since) if n == 1 && !owner && !is_handoff(s) && since.elapsed() >= STARVE_AFTER => {
                    // Claim the next permits; a release that sees HANDOFF wakes `many`, where this
                    // thread sleeps from now on. Relaxed: as for registering.
                    if self.state.compare_exchange_weak(s, s | HANDOFF, Relaxed, Relaxed).is_ok() {
                        owner = true;
                    }
                    continue;
                }
                Some(_) => {}
            }
            if P::wait(futex, seen, deadline) == crate::sync::WaitOutcome::TimedOut {
                return self.leave(n64, owner);
            }
        }
    }

    /// A registered waiter leaves because its deadline passed or the semaphore closed: in the same
    /// CAS it takes the permits if they are there after all, or deregisters without them.
    fn leave(&self, n: u64, owner: bool) -> Result<(), Failure> {
        let mut s = self.state.load(Relaxed);
        loop {
            let (new, result) = if is_closed(s) {
                (deregister(s, owner), Err(Failure::Closed))
            } else if permits(s) >= n && (owner || !is_handoff(s)) {
                (deregister(s - n, owner), Ok(()))
            } else {
                (deregister(s, owner), Err(Failure::NoPermits))
            };
            // Acquire: pairs with the Release RMW of the release that gave these permits back.
            match self.state.compare_exchange_weak(s, new, Acquire, Relaxed) {
                Ok(_) => {
                    if owner {
                        self.wake_after_handoff(new);
                    }
                    return result;
                }
                Err(actual) => s = actual,
            }
        }
    }

    /// After the handoff owner cleared `HANDOFF` (leaving state `new`): releases meanwhile woke
    /// only `many`, so wake `ones` (and notify async waiters) for the permits that are left.
    fn wake_after_handoff(&self, new: u64) {
        if permits(new) > 0 && has_waiters(new) {
            self.wake(new, permits(new));
        }
    }

    /// Gives `n` permits back. One `fetch_add`; the cold path only if someone waits.
    #[inline]
    pub(crate) fn release(&self, n: u32) {
        let n = u64::from(n);
        // Release: pairs with the Acquire CAS of the next taker of these permits.
        let old = self.state.fetch_add(n, Release);
        if (old + n) & (WAITERS_MASK | PAST_MAX) != 0 {
            self.release_slow(old, n);
        }
    }

    #[cold]
    fn release_slow(&self, old: u64, n: u64) {
        self.wake(old, n);
        if permits(old) + n > MAX_PERMITS && !std::thread::panicking() {
            panic!(
                "futex-semaphore: returning {n} permits took the count past MAX_PERMITS ({MAX_PERMITS}); \
                 more permits were added than the semaphore can hold"
            );
        }
    }

    /// Adds `n` permits unless that would take the available count past `limit`.
    pub(crate) fn add_permits(&self, n: u64, limit: u64) -> Result<(), ()> {
        let mut s = self.state.load(Relaxed);
        loop {
            if n > limit || permits(s) > limit - n {
                return Err(());
            }
            // Release: as for `release`.
            match self.state.compare_exchange_weak(s, s + n, Release, Relaxed) {
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        self.wake(s, n);
        Ok(())
    }

    /// Removes up to `n` available permits; returns how many.
    pub(crate) fn forget_permits(&self, n: u64) -> u64 {
        let mut s = self.state.load(Relaxed);
        loop {
            let take = n.min(permits(s));
            if take == 0 {
                return 0;
            }
            // Acquire: these permits are taken like any others.
            match self.state.compare_exchange_weak(s, s - take, Acquire, Relaxed) {
                Ok(_) => return take,
                Err(actual) => s = actual,
            }
        }
    }

    /// After permits (`added` of them) were put into a state whose previous value was `old`:
    /// wakes whom they may serve.
    fn wake(&self, old: u64, added: u64) {
        if !has_waiters(old) {
            return;
        }
        let n = added.min(waiters(old));
        // `HANDOFF` implies `THREADS`: its owner is a registered thread.
        if has_threads(old) {
            if old & (MANY | HANDOFF) != 0 {
                // Release: pairs with the Acquire load of the word by a waiter (invariant 3).
                self.many.bump(Release);
                P::wake(&self.many, WAKE_ALL);
            }
            if !is_handoff(old) {
                // Release: as above.
                self.ones.bump(Release);
                P::wake(&self.ones, u32::try_from(n).unwrap_or(WAKE_ALL));
            }
        }
        if is_async(old) && !is_handoff(old) {
            // After the RMW on the state, under the list's lock (invariant 4). Not-yet-notified
            // listeners only: see "No lost wakeup for tasks".
            self.wakers.notify_additional(if is_async_many(old) { u64::MAX } else { n });
        }
    }

    /// Permits available now.
    #[inline]
    pub(crate) fn available(&self) -> u64 {
        permits(self.state.load(Acquire))
    }

    /// Registered waiters now.
    pub(crate) fn waiters(&self) -> u64 {
        waiters(self.state.load(Relaxed))
    }

    /// Closes: every acquire from now on fails, and every sleeper wakes to fail.
    pub(crate) fn close(&self) {
        // Release: pairs with the Acquire load in `is_closed`, so whoever sees the semaphore
        // closed also sees what the closer did before closing.
        let old = self.state.fetch_or(CLOSED, Release);
        if !is_closed(old) && has_waiters(old) {
            for futex in [&self.ones, &self.many] {
                // Release: pairs with the Acquire load of the word by a waiter (invariant 3).
                futex.bump(Release);
                P::wake(futex, WAKE_ALL);
            }
            if is_async(old) {
                self.wakers.notify_additional(u64::MAX);
            }
        }
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        is_closed(self.state.load(Acquire))
    }
}
