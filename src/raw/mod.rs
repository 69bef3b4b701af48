//! The engine: a counting semaphore on one 64-bit state word, with a queue of waiters (threads
//! and tasks alike) behind a lock that only waiting touches.
//!
//! - **Acquire, fast** ([`RawSemaphore::try_take`]): one CAS that subtracts `n` when no flag
//!   stands in the way and enough permits are there (layout in [`state`]), from the word as the
//!   last release left it (a guess kept beside the state, [`RawSemaphore::first_look`], so that
//!   no load of the state word waits for the locked instruction that last wrote it); a stale
//!   guess costs a second CAS, from the word the first returned.
//! - **Release** ([`RawSemaphore::release`]): one `fetch_add`, and a plain store of the word it
//!   left as the next acquire's guess. Only if the old state said that
//!   someone is queued does it take the queue's lock and wake whom the permits serve
//!   ([`queue`]). No waiter, no lock and no system call.
//! - **Acquire, contended** ([`RawSemaphore::acquire_slow`]): spin on loads and yield for a
//!   bounded number of rounds unless a reservation holds, and, while it is the lone waiter, yield
//!   for as long as the semaphore has learnt that its sleeps last ([`spin`]); then queue
//!   ([`queue::Locked::take_or_queue`]) and sleep on the thread's own futex word until a walk
//!   wakes it, re-checking under the lock each time. Tasks do the same with a waker ([`task`]),
//!   without the spins.
//!
//! Who is woken, the reservation that bounds every wait and its lapse, the invariants and the
//! no-lost-wakeup argument are in [`queue`] and `docs/design.md`; the loom models in
//! `tests/loom.rs` check them.
//!
//! # Notes about memory ordering
//! - Permits: a release's RMW is `Release` and every CAS that takes permits is `Acquire`, so
//!   whatever a holder did before giving a permit back happens-before whatever its next holder
//!   does with it.
//! - Waking: a sleeper's last look and a walk that could wake it are both under the queue's lock,
//!   and a release's walk comes after its RMW; the lock orders the rest (`docs/design.md`).
//! - Loads of the state that only decide what to try next are `Relaxed`: every decision is
//!   confirmed by a CAS, or made under the lock.

pub(crate) mod queue;
mod spin;
pub(crate) mod state;
pub(crate) mod task;

use crate::TryAcquireError;
use crate::sync::{Arc, AtomicU64, GuessWord, LONG_SPIN_MAX, OnceBox, Park, Private, WaitOutcome};
use crate::sync::{Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use queue::{Locked, Queue, Slot, Take, Wake};
use state::*;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

pub(crate) use state::MAX_PERMITS;

/// What a waiter of [`RawSemaphore::acquire_while`] asks between its sleeps: `keep_waiting`,
/// called by the waiting thread, without the queue's lock, each time it has slept `every` since
/// the last call (or since it began to wait); `false` ends the wait as its deadline would. The
/// waiter stays queued across the calls, so its starvation clock runs on (a loop of timed
/// acquires would start it over each time).
pub(crate) struct Check<'a> {
    pub(crate) every: std::time::Duration,
    pub(crate) keep_waiting: &'a mut dyn FnMut() -> bool,
}

/// The engine.
pub(crate) struct RawSemaphore {
    state: AtomicU64,
    /// The state word as the last release left it: the fast path's guess of it
    /// ([`first_look`](Self::first_look)).
    guess: GuessWord,
    /// The waiters; allocated by the first one.
    queue: OnceBox<Queue>,
}

impl RawSemaphore {
    crate::loom_const_fn! {
        pub(crate) fn new(permits: u64) -> RawSemaphore {
            RawSemaphore { state: AtomicU64::new(permits), guess: GuessWord::new(permits), queue: OnceBox::new() }
        }
    }

    /// The fast path: takes `n` permits if nothing stands in the way. One CAS, from the word the
    /// last release left ([`first_look`](Self::first_look)); where that guess is stale, a second
    /// from the word the first returned, as a load would have found it.
    #[inline]
    pub(crate) fn try_take(&self, n: u32) -> bool {
        let n = u64::from(n);
        let s = self.first_look(|s| can_take(s, n));
        // Acquire: pairs with the Release RMW of the release that gave these permits back.
        can_take(s, n)
            && match self.state.compare_exchange(s, s - n, Acquire, Relaxed) {
                Ok(_) => true,
                Err(actual) => {
                    can_take(actual, n)
                        && self.state.compare_exchange(actual, actual - n, Acquire, Relaxed).is_ok()
                }
            }
    }

    /// The state word to try a CAS from first: the guess, if `would_do` says a CAS from it would
    /// change it as wanted, else the word itself. The guess is the word as the last release left
    /// it, kept beside the state in a plain store: a load of the state word just after a locked
    /// instruction wrote it costs more than that CAS on some hosts ("The guessed CAS" in
    /// `docs/design.md`), and a right guess needs none. Only a guess: no decision is made on it
    /// but which word the CAS expects, and a stale one costs that CAS, which fails and returns
    /// the word.
    #[inline]
    fn first_look(&self, would_do: impl Fn(u64) -> bool) -> u64 {
        let guess = self.guess.load(Relaxed);
        if would_do(guess) { guess } else { self.state.load(Relaxed) }
    }

    /// Keeps `s`, the state word a release left, as the next [`first_look`](Self::first_look)'s
    /// guess.
    #[inline]
    fn keep_guess(&self, s: u64) {
        // Relaxed: only a guess, which a CAS confirms.
        self.guess.store(s, Relaxed);
    }

    /// A section under the queue's lock.
    fn lock(&self) -> Locked<'_> {
        self.queue.get_or_init(Queue::default).lock(&self.state)
    }

    /// A non-blocking acquire: fails only when the permits are not there for it (or it is
    /// closed), not because another thread changed the state at the same moment.
    #[inline]
    pub(crate) fn try_acquire(&self, n: u32) -> Result<(), TryAcquireError> {
        if self.try_take(n) { Ok(()) } else { self.try_acquire_slow(n) }
    }

    #[cold]
    fn try_acquire_slow(&self, n: u32) -> Result<(), TryAcquireError> {
        self.try_barge(n).unwrap_or_else(|| {
            // Only the lock knows how many permits the reservation holds back.
            match self.lock().take(None, u64::from(n)) {
                Take::Taken => Ok(()),
                Take::Closed => Err(TryAcquireError::Closed),
                Take::Short { .. } => Err(TryAcquireError::NoPermits),
            }
        })
    }

    /// A non-blocking acquire without the lock: `None` if a reservation holds, when only the
    /// queue's lock can say whether the permits may be taken.
    pub(crate) fn try_barge(&self, n: u32) -> Option<Result<(), TryAcquireError>> {
        let n = u64::from(n);
        let mut s = self.state.load(Relaxed);
        loop {
            if is_closed(s) {
                return Some(Err(TryAcquireError::Closed));
            }
            if is_reserved(s) {
                return None;
            }
            if permits(s) < n {
                return Some(Err(TryAcquireError::NoPermits));
            }
            // Acquire: pairs with the Release RMW of the release that gave these permits back.
            match self.state.compare_exchange_weak(s, s - n, Acquire, Relaxed) {
                Ok(_) => return Some(Ok(())),
                Err(actual) => s = actual,
            }
        }
    }

    /// A blocking acquire of `n` permits, until `deadline` if there is one.
    #[inline]
    pub(crate) fn acquire(&self, n: u32, deadline: Option<Instant>) -> Result<(), TryAcquireError> {
        if self.try_take(n) { Ok(()) } else { self.acquire_slow(n, deadline) }
    }

    #[cold]
    fn acquire_slow(&self, n: u32, deadline: Option<Instant>) -> Result<(), TryAcquireError> {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return self.try_acquire_slow(n);
        }
        if let Some(result) =
            self.spin(u64::from(n), deadline).or_else(|| self.long_spin(u64::from(n), deadline))
        {
            return result;
        }
        self.wait(u64::from(n), deadline)
    }

    /// A blocking acquire of `n` permits, until `deadline` if there is one, that asks `check`
    /// whether to go on waiting between its sleeps ([`Check`]).
    #[cold]
    pub(crate) fn acquire_while(
        &self,
        n: u32,
        deadline: Option<Instant>,
        check: Check<'_>,
    ) -> Result<(), TryAcquireError> {
        if self.try_take(n) {
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return self.try_acquire_slow(n);
        }
        if let Some(result) =
            self.spin(u64::from(n), deadline).or_else(|| self.long_spin(u64::from(n), deadline))
        {
            return result;
        }
        let slot = Slot::fresh();
        let result = self.wait_on(&slot, u64::from(n), deadline, Some(check));
        Slot::recycle(slot);
        result
    }

    /// Queues, sleeps and re-checks until `n` permits are taken, the deadline passes or the
    /// semaphore closes.
    fn wait(&self, n: u64, deadline: Option<Instant>) -> Result<(), TryAcquireError> {
        let slot = Slot::fresh();
        let result = self.wait_on(&slot, n, deadline, None);
        Slot::recycle(slot);
        result
    }

    /// [`wait`](Self::wait) with this waiter's slot, and a [`Check`] between sleeps if given.
    fn wait_on(
        &self,
        slot: &Arc<Slot>,
        n: u64,
        deadline: Option<Instant>,
        mut check: Option<Check<'_>>,
    ) -> Result<(), TryAcquireError> {
        let word = &slot.futex;
        let mut me = None;
        // When it first slept, for the spin estimate (`spin`, rule 1); no clock under loom.
        let mut asleep_since = None;
        let mut next_check = check.as_ref().and_then(|c| Instant::now().checked_add(c.every));
        let mut locked = self.lock();
        loop {
            // Acquire: pairs with the Release bump of a walk that wakes this thread. Read under
            // the lock, before the last look: a wake after this section changes the word.
            let seen = word.load(Acquire);
            let held_back_until = match locked.take_or_queue(&mut me, n, slot, || Wake::Thread) {
                Take::Taken => {
                    drop(locked);
                    self.learn(asleep_since);
                    return Ok(());
                }
                Take::Closed => return Err(TryAcquireError::Closed),
                // Invariant 7: no longer than a grant to a task that may not run before this
                // thread does (its executor's only worker), which it then takes back.
                Take::Short { held_back_until } => {
                    held_back_until.into_iter().chain(locked.unclaimed_grant_lapse()).min()
                }
            };
            drop(locked);
            // Held back by a reservation: sleep no longer than it lasts (queue: "The reservation").
            let lapse_first = held_back_until.filter(|&u| deadline.is_none_or(|d| u < d));
            if asleep_since.is_none() && !LONG_SPIN_MAX.is_zero() {
                asleep_since = Some(Instant::now());
            }
            // A check due before the lapse and the deadline wakes this thread first.
            let check_due = next_check.filter(|&c| lapse_first.or(deadline).is_none_or(|d| c <= d));
            let outcome = Private::wait(word, seen, check_due.or(lapse_first).or(deadline));
            if slot.granted() {
                self.learn(asleep_since);
                return Ok(()); // served by a walk: out of the queue, the permits are this thread's
            }
            if outcome == WaitOutcome::TimedOut && check_due.is_some() {
                let check = check.as_mut().expect("a check is due only where there is one");
                // Without the lock (user code), still queued: its place and its starvation clock
                // stay. Permits a walk grants meanwhile are found by the look below. It watches
                // no reservation meanwhile (invariant 5): user code may run long. A panic leaves
                // the queue first (giving back permits granted meanwhile): an entry left behind
                // would be served one day, and those permits lost.
                self.lock().checking(me, true);
                let keep_waiting = match panic::catch_unwind(AssertUnwindSafe(&mut *check.keep_waiting)) {
                    Ok(keep_waiting) => keep_waiting,
                    Err(payload) => {
                        let mut locked = self.lock();
                        locked.checking(me, false);
                        locked.leave(&mut me, n);
                        drop(locked);
                        panic::resume_unwind(payload);
                    }
                };
                next_check = Instant::now().checked_add(check.every);
                locked = self.lock();
                locked.checking(me, false);
                if keep_waiting {
                    continue;
                }
                return self.give_up(locked, &mut me, n, asleep_since);
            }
            locked = self.lock();
            if outcome == WaitOutcome::TimedOut {
                if let Some(until) = lapse_first {
                    // Seen out: end it, and look again in this same section, before its walk can
                    // give the owner a new one.
                    locked.lapse_at(until);
                    continue;
                }
                return self.give_up(locked, &mut me, n, asleep_since);
            }
        }
    }

    /// The end of a wait that its deadline (or its [`Check`]) ended: takes the permits if they
    /// came after all, or leaves the queue.
    fn give_up(
        &self,
        mut locked: Locked<'_>,
        me: &mut Option<queue::Id>,
        n: u64,
        asleep_since: Option<Instant>,
    ) -> Result<(), TryAcquireError> {
        locked.forgotten(me);
        match locked.take(*me, n) {
            Take::Taken => {
                drop(locked);
                self.learn(asleep_since);
                Ok(())
            }
            Take::Closed => Err(TryAcquireError::Closed),
            Take::Short { .. } => {
                locked.leave(me, n);
                Err(TryAcquireError::NoPermits)
            }
        }
    }

    /// See `Semaphore::__loom_queue_a_ghost`.
    #[cfg(loom)]
    pub(crate) fn queue_a_ghost(&self, n: u32) {
        let (slot, mut me) = (Slot::fresh(), None);
        let taken = self.lock().take_or_queue(&mut me, u64::from(n), &slot, || Wake::Thread);
        assert!(matches!(taken, Take::Short { .. }), "a ghost must wait");
    }

    /// See `Semaphore::__loom_fork`.
    #[cfg(loom)]
    pub(crate) fn pretend_forked(&self) {
        self.lock().pretend_forked();
    }

    /// Gives `n` permits back. One `fetch_add`; the cold path only if someone waits.
    #[inline]
    pub(crate) fn release(&self, n: u32) {
        let n = u64::from(n);
        // Release: pairs with the Acquire CAS of the next taker of these permits.
        let old = self.state.fetch_add(n, Release);
        self.keep_guess(old + n);
        if release_is_slow(old, n) {
            self.release_slow(old, n);
        }
    }

    #[cold]
    fn release_slow(&self, old: u64, n: u64) {
        let past_max = permits(old) + n > MAX_PERMITS;
        if past_max {
            // Kept out (taken back from what is available), so that the count never stays past
            // the limit, where further give-backs could carry into the flags.
            self.forget_permits(n);
        }
        if is_queued(old) {
            self.lock().gave_back(); // the section's walk wakes whom the permits serve
        }
        if past_max && !std::thread::panicking() {
            panic!(
                "futex-semaphore: returning {n} permits took the count past MAX_PERMITS ({MAX_PERMITS}); \
                 more permits were added than the semaphore can hold"
            );
        }
    }

    /// Adds `n` permits unless that would take the available count past `limit`.
    pub(crate) fn add_permits(&self, n: u64, limit: u64) -> Result<(), ()> {
        let fits = |s: u64| n <= limit && permits(s) <= limit - n;
        // A refusal is decided on the word itself, never on the guess.
        let mut s = self.first_look(fits);
        loop {
            if !fits(s) {
                return Err(());
            }
            // Release: as for `release`.
            match self.state.compare_exchange_weak(s, s + n, Release, Relaxed) {
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        self.keep_guess(s + n);
        if is_queued(s) {
            self.lock().gave_back();
        }
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

    /// Permits available now.
    #[inline]
    pub(crate) fn available(&self) -> u64 {
        permits(self.state.load(Acquire))
    }

    /// Waiters in the queue now.
    pub(crate) fn waiters(&self) -> u64 {
        match self.queue.get() {
            Some(_) => self.lock().len() as u64,
            None => 0,
        }
    }

    /// Closes: every acquire from now on fails, and every waiter wakes to fail.
    pub(crate) fn close(&self) {
        // Release: pairs with the Acquire load in `is_closed`, so whoever sees the semaphore
        // closed also sees what the closer did before closing.
        let old = self.state.fetch_or(CLOSED, Release);
        if !is_closed(old) && is_queued(old) {
            drop(self.lock()); // the walk of a closed semaphore wakes every waiter
        }
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        is_closed(self.state.load(Acquire))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_release_keeps_the_word_it_left_as_the_guess() {
        let sem = RawSemaphore::new(2);
        assert!(sem.try_take(2));
        sem.release(1);
        assert_eq!(sem.guess.load(Relaxed), sem.state.load(Relaxed), "the next acquire is one CAS");
        sem.add_permits(1, 2).unwrap();
        assert_eq!(sem.guess.load(Relaxed), sem.state.load(Relaxed));
    }

    #[test]
    fn a_stale_guess_takes_only_what_the_word_allows() {
        // Each change below leaves the guess (3 permits, no flag) stale.
        let sem = RawSemaphore::new(3);
        sem.state.fetch_sub(1, Relaxed); // another taker
        assert!(sem.try_take(2), "a stale guess with enough permits: the second CAS takes them");
        assert_eq!(sem.available(), 0);
        assert!(!sem.try_take(1), "the guess's permits are not there");
        assert_eq!(sem.state.load(Relaxed), 0, "and nothing was taken");

        let sem = RawSemaphore::new(3);
        sem.state.fetch_or(RESERVED, Relaxed);
        assert!(!sem.try_take(1), "a reservation stands in the way, whatever the guess says");
        let sem = RawSemaphore::new(3);
        sem.close();
        assert!(!sem.try_take(1), "closed, whatever the guess says");
        assert_eq!(sem.try_acquire(1), Err(TryAcquireError::Closed));
        let sem = RawSemaphore::new(3);
        assert_eq!(sem.forget_permits(3), 3);
        assert!(!sem.try_take(1), "forgotten permits are gone, whatever the guess says");
    }

    #[test]
    fn add_permits_decides_its_limit_on_the_word_not_on_a_stale_guess() {
        // The guess says the count is at the limit; it is not.
        let sem = RawSemaphore::new(2);
        assert!(sem.try_take(1) && sem.try_take(1));
        assert_eq!(sem.add_permits(1, 2), Ok(()));
        // The guess says there is room; there is not.
        let sem = RawSemaphore::new(0);
        sem.state.fetch_add(1, Relaxed);
        assert_eq!(sem.add_permits(1, 1), Err(()));
        assert_eq!(sem.available(), 1);
    }
}
