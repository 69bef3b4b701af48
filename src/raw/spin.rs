//! Spinning before a contended acquire queues: a short spin of fixed length
//! ([`RawSemaphore::spin`]), then a long one whose length each semaphore learns
//! ([`RawSemaphore::long_spin`], [`SpinEstimate`]); in both, while the thread has a core to
//! itself, runs of looks one spin hint apart before and between the yields (rule 5).
//!
//! Why a long spin: when two threads pass permits back and forth, once one of them sleeps, its
//! partner's short spin ends long before the sleeper has woken and passed the permit back, so the
//! partner sleeps too, and from then on every pass is a futex wake and a wake-up (the bimodal
//! handoff of `docs/benchmarks.md`). A spin as long as the partner's wake-up keeps both awake.
//!
//! | field of [`SpinEstimate`] | values |
//! |---|---|
//! | `estimate_ns` | how long a long spin may last, in ns: 0 (no long spin) to [`LONG_SPIN_MAX`] |
//! | `spinning` | 1 while one thread long-spins or makes hint looks on this semaphore, else 0 |
//!
//! # Rules
//! 1. **Learn.** A thread that slept in the queue and then took its permits feeds
//!    `2 × slept` (at most [`LONG_SPIN_MAX`]) into the estimate, a moving average of weight
//!    1/2^[`LEARN_SHIFT`]; a sleep longer than `LONG_SPIN_MAX` feeds 0 (no spin within the cap
//!    would have caught its permits).
//! 2. **Decay.** A long spin that lasted the whole estimate without permits halves it, and an
//!    estimate below [`LONG_SPIN_MIN`] (what the short spin covers) is 0: where spinning does not
//!    pay (one CPU, long holds), it stops after a few misses.
//! 3. **One spinner.** Only the thread holding the `spinning` flag ([`Turn`]) long-spins or makes
//!    hint looks (rule 5); the others queue or yield, so threads that outnumber the cores do not
//!    burn them.
//! 4. **Only a lone waiter.** The long spin runs only while nobody is queued, no reservation
//!    holds and the request is short by at most one permit (`worth_a_yield`): it does not barge
//!    past sleepers, and it leaves drains to the queue, as the short spin's yields do.
//! 5. **Hint looks while the core is free.** A thread whose last timed yield came back within
//!    [`QUICK_YIELD`] had no other thread wanting its CPU ([`YIELDS`], per thread; while yields
//!    run others, one in [`YIELD_SAMPLE`] is timed). Such a thread, if it gets the turn of rule 3,
//!    first makes hint looks, and again after each yield that came back at once, in both spins: a
//!    partner on the other core passes a permit back within them, where a yield's system call
//!    would only delay its being seen. The first look comes after [`FIRST_LOOK_AFTER`] spin
//!    hints and the next at gaps of 1, 2, 4, ... hints, up to [`HINT_SPINS`] in all (7 looks,
//!    about 0.8 µs on the benchmark machine): a look takes the holder's cache line, which its
//!    release must take back, so fewer looks early in a hold make the release quicker (2t-1p
//!    about a tenth faster than with a look every hint: `docs/design.md`, "Hint looks"). Rule 4
//!    holds for them (a queue, a reservation or a drain ends them). Every [`RECHECK_AFTER`]
//!    spins it yields first (timed), so that a thread that catches every permit in its looks
//!    still learns when another wants its CPU. Where threads outnumber cores or
//!    share one CPU, yields run others, and nothing changes. The turn lives in the queue, so a
//!    semaphore on which nobody has queued yet makes no hint looks (as it makes no long spin).
//! 6. **A timed acquire does not yield past its deadline**, nor within [`YIELD_SLICE`] of it
//!    unless its thread's yields come back at once ([`may_yield_before`]): a yield that runs
//!    another thread lasts that thread's time slice, and eight of them took a 50 µs
//!    `try_acquire_for` 20-24 ms (median) where threads outnumbered the cores. It queues instead,
//!    and its sleep ends at the deadline.
//!
//! # Correctness
//! Both fields and rule 5's per-thread flag are hints: they decide how long a thread looks, never
//! what it may take. Every spin takes permits only with the `Acquire` CAS of every lock-free
//! taker, under `can_take`, so the queue's invariants and the memory-ordering notes of [`super`]
//! hold unchanged, and both fields are read and written `Relaxed`. Under loom [`LONG_SPIN_MAX`]
//! and [`HINT_SPINS`] are zero: no long spin, no learning, no hint looks, and the models see the
//! engine as before.

use super::RawSemaphore;
use super::state::*;
use crate::TryAcquireError;
use crate::sync::{AtomicU32, Backoff, FIRST_LOOK_AFTER, HINT_SPINS, LONG_SPIN_MAX, QUICK_YIELD};
use crate::sync::{Ordering::Acquire, Ordering::Relaxed};
use crate::sync::{SPIN_ROUNDS, YIELD_ROUNDS};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// The weight of a new sample in the estimate: 1/2^`LEARN_SHIFT` (1/4).
pub(crate) const LEARN_SHIFT: u32 = 2;

/// Estimates below this are 0: the short spin already covers about this long (its yields included).
pub(crate) const LONG_SPIN_MIN: Duration = Duration::from_micros(1);

/// How long a long spin of one semaphore may last, learnt from how long its waiters slept.
#[derive(Default)]
pub(crate) struct SpinEstimate {
    estimate_ns: AtomicU32,
    spinning: AtomicU32,
}

/// The turn to long-spin on a semaphore (rule 3); given back on drop.
pub(crate) struct Turn<'a>(&'a SpinEstimate);

impl SpinEstimate {
    /// How long a long spin may last now (zero: do not spin).
    pub(crate) fn budget(&self) -> Duration {
        // Relaxed: a hint (module docs, "Correctness").
        Duration::from_nanos(u64::from(self.estimate_ns.load(Relaxed)))
    }

    /// Rule 1: a waiter slept `slept` and then took its permits.
    pub(crate) fn learn(&self, slept: Duration) {
        let sample =
            if slept > LONG_SPIN_MAX { Duration::ZERO } else { slept.saturating_mul(2).min(LONG_SPIN_MAX) };
        let old = self.estimate_ns.load(Relaxed);
        let sample = u32::try_from(sample.as_nanos()).unwrap_or(u32::MAX);
        // A racing learner's sample may be lost: the estimate is a hint.
        self.store(old - (old >> LEARN_SHIFT) + (sample >> LEARN_SHIFT));
    }

    /// Rule 2: a long spin lasted the whole estimate and found no permits.
    pub(crate) fn missed(&self) {
        self.store(self.estimate_ns.load(Relaxed) / 2);
    }

    fn store(&self, ns: u32) {
        let ns = if u64::from(ns) < LONG_SPIN_MIN.as_nanos() as u64 { 0 } else { ns };
        self.estimate_ns.store(ns, Relaxed);
    }

    /// Rule 3: the turn to long-spin, unless another thread has it.
    pub(crate) fn turn(&self) -> Option<Turn<'_>> {
        // Relaxed: the flag guards no data, only how many threads spin.
        // `then`, not `then_some`: a `Turn` built for a refused attempt would, dropped, end the
        // holder's turn.
        (self.spinning.swap(1, Relaxed) == 0).then(|| Turn(self))
    }

    /// In a child made by `fork` (the queue's first section there): the turn may be held by a
    /// thread of the parent, which is not in the child and would never give it back; so it is
    /// free again. A child thread that took it meanwhile spins beside another at worst.
    pub(crate) fn after_fork(&self) {
        self.spinning.store(0, Relaxed);
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.spinning.store(0, Relaxed);
    }
}

thread_local! {
    /// Rule 5, for this thread: whether its last timed yield came back at once (bit 0), and a
    /// count (the rest): while that was not so, of its yields since the last timed one (one in
    /// [`YIELD_SAMPLE`] is timed); while it was, of its spins that began with hint looks since
    /// then (at most [`RECHECK_AFTER`]).
    static YIELDS: Cell<u32> = const { Cell::new(0) };
}

/// While yields run other threads, one yield in this many is timed (a clock read costs about a
/// tenth of a yield), to notice when the thread has a core to itself again.
const YIELD_SAMPLE: u32 = 8;

/// At most this many spins in a row begin with hint looks; the next yields first, timed, so that
/// a thread that catches every permit in its looks still notices when another thread wants its
/// CPU.
const RECHECK_AFTER: u32 = 32;

/// Rule 5, at the start of a spin: whether it begins with hint looks (counting it if so).
// Under loom `HINT_SPINS` is 0, which clippy finds absurd in the comparison below.
#[cfg_attr(loom, allow(clippy::absurd_extreme_comparisons))]
fn begin_with_hint_looks() -> bool {
    let yields = YIELDS.with(Cell::get);
    let begin = HINT_SPINS > 0 && yields & 1 != 0 && yields >> 1 < RECHECK_AFTER;
    if begin {
        YIELDS.with(|y| y.set(yields + 2));
    }
    begin
}

/// Yields, timing the yield while this thread has had its core to itself and one in
/// [`YIELD_SAMPLE`] otherwise; returns (and remembers, rule 5) whether it came back at once.
// Under loom `HINT_SPINS` is 0, which clippy finds absurd in the comparison below.
#[cfg_attr(loom, allow(clippy::absurd_extreme_comparisons))]
fn yield_and_time() -> bool {
    #[cfg(all(test, not(loom)))]
    tests::YIELDS_MADE.with(|c| c.set(c.get() + 1));
    let yields = YIELDS.with(Cell::get);
    if yields & 1 == 0 && (yields >> 1) % YIELD_SAMPLE != 0 {
        crate::sync::yield_now();
        YIELDS.with(|y| y.set(yields.wrapping_add(2)));
        return false;
    }
    let start = Instant::now();
    crate::sync::yield_now();
    let alone = HINT_SPINS > 0 && start.elapsed() < QUICK_YIELD;
    // Either count starts over: the next timed yield is `YIELD_SAMPLE` yields away, or
    // `RECHECK_AFTER` spins.
    YIELDS.with(|y| y.set(if alone { 1 } else { 2 }));
    alone
}

/// `hints` spin hints, reading nothing.
#[inline]
fn spin_hints(hints: u32) {
    for _ in 0..hints {
        std::hint::spin_loop();
    }
}

/// A yield that runs another thread lasts about that thread's time slice (a few ms where threads
/// outnumber cores): a timed acquire whose deadline is nearer does not make one (rule 6).
const YIELD_SLICE: Duration = Duration::from_millis(4);

/// Rule 6: whether a spin of an acquire that ends at `deadline` (if any) may yield now: never past
/// it, and within [`YIELD_SLICE`] of it only while this thread's yields come back at once
/// ([`YIELDS`]). The deadline is looked at only between yields; otherwise the acquire queues, and
/// its sleep ends at the deadline.
fn may_yield_before(deadline: Option<Instant>) -> bool {
    deadline.is_none_or(|d| {
        let left = d.saturating_duration_since(Instant::now());
        left > YIELD_SLICE || (!left.is_zero() && YIELDS.with(Cell::get) & 1 != 0)
    })
}

/// What one look at the state found for a spinner of `n` permits.
enum Look {
    /// The spin is over: the permits are taken (`Ok`), or the semaphore is closed.
    Done(Result<(), TryAcquireError>),
    /// The permits cannot be taken in this state (`can_take` is false): spin on, or stop.
    Short(u64),
}

impl RawSemaphore {
    /// One step of both spins: loads the state and takes `n` permits if `can_take` allows,
    /// retrying the CAS (on a fresh load) while it fails.
    #[inline]
    fn look(&self, n: u64) -> Look {
        loop {
            let s = self.state.load(Relaxed);
            if is_closed(s) {
                return Look::Done(Err(TryAcquireError::Closed));
            }
            if !can_take(s, n) {
                return Look::Short(s);
            }
            // Acquire: pairs with the Release RMW of the release that gave these permits back.
            if self.state.compare_exchange_weak(s, s - n, Acquire, Relaxed).is_ok() {
                return Look::Done(Ok(()));
            }
        }
    }

    /// Spins on loads for at most [`SPIN_ROUNDS`] rounds, then, if it is short by one permit, yields
    /// for at most [`YIELD_ROUNDS`], while no reservation holds; before the rounds and after each
    /// quick yield, hint looks if the thread has its core to itself (rule 5). Returns `None` when
    /// it is time to long-spin or queue. A timed acquire (`deadline`) yields only while this
    /// thread's yields come back at once (rule 6).
    /// Queued waiters do not stop the rounds (unlike the hint looks): a permit that comes back
    /// within them saves this thread a sleep and a wake, and the reservation bounds what that
    /// barging costs the queue.
    // Under loom both round counts are 0, which clippy finds absurd in the comparisons below.
    #[cfg_attr(loom, allow(clippy::absurd_extreme_comparisons))]
    pub(super) fn spin(&self, n: u64, deadline: Option<Instant>) -> Option<Result<(), TryAcquireError>> {
        if begin_with_hint_looks() {
            if let Some(result) = self.hint_spin(n) {
                return Some(result);
            }
        }
        let backoff = Backoff::new();
        let mut rounds = 0;
        loop {
            let s = match self.look(n) {
                Look::Done(result) => return Some(result),
                Look::Short(s) => s,
            };
            // A reservation means the permits will not come to a spinner first.
            if is_reserved(s) || rounds >= SPIN_ROUNDS + YIELD_ROUNDS {
                return None;
            }
            if rounds < SPIN_ROUNDS {
                backoff.spin();
            } else if !worth_a_yield(s, n) || !may_yield_before(deadline) {
                // A yield gives the core to one thread, which likely gives back one permit: a
                // request short by more (a drain of several holders) would only wait out other
                // threads' time slices in its yields, so it queues.
                return None;
            } else if yield_and_time() {
                if let Some(result) = self.hint_spin(n) {
                    return Some(result);
                }
            }
            rounds += 1;
        }
    }

    /// Rule 5, for a thread that has its core to itself: takes the semaphore's turn to spin
    /// (rule 3) and makes the hint looks; `None` if they found nothing (or were not made).
    fn hint_spin(&self, n: u64) -> Option<Result<(), TryAcquireError>> {
        let _turn = self.queue.get()?.spin.turn()?;
        self.hint_looks(n)
    }

    /// Rule 5's looks, by the thread that has the turn: the first after [`FIRST_LOOK_AFTER`] spin
    /// hints, the next 1, 2, 4, ... hints apart, while the gaps add up to at most [`HINT_SPINS`]
    /// (7 looks) and this is a lone waiter short by at most one permit (rule 4).
    // Under loom `HINT_SPINS` is 0, which clippy finds absurd in the comparison below.
    #[cfg_attr(loom, allow(clippy::absurd_extreme_comparisons))]
    fn hint_looks(&self, n: u64) -> Option<Result<(), TryAcquireError>> {
        if HINT_SPINS == 0 {
            return None; // loom: the models see no looks
        }
        spin_hints(FIRST_LOOK_AFTER);
        let (mut gap, mut spent) = (1, 0);
        loop {
            #[cfg(all(test, not(loom)))]
            tests::HINT_LOOKS.with(|c| c.set(c.get() + 1));
            match self.look(n) {
                Look::Done(result) => return Some(result),
                Look::Short(s) if is_queued(s) || is_reserved(s) || !worth_a_yield(s, n) => return None,
                Look::Short(_) => {}
            }
            if spent + gap > HINT_SPINS {
                return None;
            }
            spin_hints(gap);
            spent += gap;
            gap *= 2;
        }
    }

    /// After [`spin`](Self::spin): spins and yields for up to the learnt estimate, until
    /// `deadline` at the latest, under the module's rules. Returns `None` when it is time to queue.
    pub(super) fn long_spin(&self, n: u64, deadline: Option<Instant>) -> Option<Result<(), TryAcquireError>> {
        if LONG_SPIN_MAX.is_zero() {
            return None; // loom: the models see no long spin
        }
        let estimate = &self.queue.get()?.spin; // no queue yet: nobody has slept, nothing learnt
        let budget = estimate.budget();
        if budget.is_zero() {
            return None;
        }
        let _turn = estimate.turn()?;
        let start = Instant::now();
        let until = deadline.map_or(start + budget, |d| d.min(start + budget));
        // A yield a round: on a shared core it gives the releaser the core instead of spinning
        // its time away (measured against `Backoff::snooze` and against hints alone:
        // `docs/design.md`, Spinning); after a yield that came back at once, hints (rule 5).
        loop {
            let s = match self.look(n) {
                Look::Done(result) => return Some(result),
                Look::Short(s) => s,
            };
            // Rule 4: not a lone waiter any more; no verdict on the estimate.
            if is_queued(s) || is_reserved(s) || !worth_a_yield(s, n) {
                return None;
            }
            if Instant::now() >= until {
                if deadline.is_none_or(|d| d > until) {
                    estimate.missed(); // rule 2 (a deadline that cut the spin short is no verdict)
                }
                return None;
            }
            if !may_yield_before(deadline) {
                return None;
            }
            if yield_and_time() {
                if let Some(result) = self.hint_looks(n) {
                    return Some(result);
                }
            }
        }
    }

    /// Rule 1: a waiter that slept since `asleep_since` has taken its permits.
    pub(super) fn learn(&self, asleep_since: Option<Instant>) {
        if let (Some(since), Some(queue)) = (asleep_since, self.queue.get()) {
            queue.spin.learn(since.elapsed());
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
    use std::thread;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// A turn held by a thread of the parent, which a fork's child does not have, is free there
    /// once the queue sees the fork (`Queue::lock`).
    #[test]
    fn a_turn_held_across_a_fork_is_free_after_it() {
        let e = SpinEstimate::default();
        std::mem::forget(e.turn().expect("free")); // held by a thread the child does not have
        assert!(e.turn().is_none(), "one spinner");
        e.after_fork();
        assert!(e.turn().is_some());
    }

    #[test]
    fn the_estimate_learns_twice_the_sleeps() {
        let e = SpinEstimate::default();
        assert_eq!(e.budget(), Duration::ZERO, "nothing learnt: no long spin");
        e.learn(us(10));
        assert_eq!(e.budget(), us(5), "a quarter of the first sample of 20 µs");
        for _ in 0..40 {
            e.learn(us(10));
        }
        let b = e.budget();
        assert!(b > us(19) && b <= us(20), "converges to 2 x 10 µs, got {b:?}");
    }

    #[test]
    fn the_estimate_is_capped() {
        let e = SpinEstimate::default();
        for _ in 0..100 {
            e.learn(LONG_SPIN_MAX * 3 / 4); // 2x would pass the cap
        }
        let b = e.budget();
        assert!(b <= LONG_SPIN_MAX && b > LONG_SPIN_MAX * 9 / 10, "{b:?}");
    }

    #[test]
    fn a_sleep_past_the_cap_teaches_not_to_spin() {
        let e = SpinEstimate::default();
        for _ in 0..100 {
            e.learn(us(20));
        }
        for _ in 0..40 {
            e.learn(LONG_SPIN_MAX + us(1));
        }
        assert_eq!(e.budget(), Duration::ZERO);
    }

    #[test]
    fn misses_decay_the_estimate_to_zero_quickly() {
        let e = SpinEstimate::default();
        for _ in 0..100 {
            e.learn(LONG_SPIN_MAX);
        }
        assert_eq!(e.budget(), LONG_SPIN_MAX);
        e.missed();
        assert_eq!(e.budget(), LONG_SPIN_MAX / 2, "a miss halves it");
        let mut misses = 1;
        while !e.budget().is_zero() {
            e.missed();
            misses += 1;
        }
        // 100 µs halved 7 times is below 1 µs: zero.
        assert!(misses <= 8, "{misses} misses to stop spinning");
    }

    #[test]
    fn one_spinner_at_a_time() {
        let e = SpinEstimate::default();
        let first = e.turn().expect("nobody spins");
        assert!(e.turn().is_none(), "a second spinner is refused while the first spins");
        assert!(e.turn().is_none(), "a refused attempt does not end the first one's turn");
        drop(first);
        let again = e.turn();
        assert!(again.is_some(), "the turn is given back on drop");
    }

    /// A waiter that sleeps in `wait` and is woken teaches the estimate (the releaser busy-waits
    /// 20 µs after the waiter has queued, well under the cap, before each release; a round slowed
    /// past the cap by a loaded machine teaches 0, so the test asks only that some round taught
    /// it).
    #[test]
    #[cfg_attr(miri, ignore = "timing: Miri's clock and threads are too slow for a 100 µs spin")]
    fn a_woken_sleeper_teaches_the_estimate() {
        const ROUNDS: usize = 200;
        let sem = RawSemaphore::new(0);
        let barrier = std::sync::Barrier::new(2);
        let learnt = thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    barrier.wait();
                    while sem.waiters() == 0 {
                        std::hint::spin_loop(); // until the acquire has queued
                    }
                    let start = Instant::now();
                    while start.elapsed() < us(20) {
                        std::hint::spin_loop();
                    }
                    sem.release(1);
                }
            });
            let mut learnt = false;
            for _ in 0..ROUNDS {
                barrier.wait();
                sem.acquire(1, None).unwrap();
                learnt |= sem.queue.get().is_some_and(|q| !q.spin.budget().is_zero());
            }
            learnt
        });
        assert!(learnt, "{ROUNDS} sleeps of about 20 µs taught nothing");
        assert_eq!(sem.available(), 0);
    }

    /// A semaphore whose waiters have learnt to long-spin (its queue exists, its estimate is the cap).
    fn trained(permits: u64) -> RawSemaphore {
        let sem = RawSemaphore::new(permits);
        drop(sem.lock()); // allocates the queue
        for _ in 0..100 {
            // Taught a sleep directly, not through the clock: a preemption between reading it
            // and learning (under qemu, on a loaded machine) would make the sleep pass the cap.
            sem.queue.get().unwrap().spin.learn(LONG_SPIN_MAX * 3 / 4);
        }
        assert!(sem.queue.get().unwrap().spin.budget() >= LONG_SPIN_MAX * 9 / 10);
        sem
    }

    #[test]
    #[cfg_attr(miri, ignore = "timing: Miri's clock and threads are too slow for a 100 µs spin")]
    fn a_long_spin_takes_a_permit_released_during_it() {
        // On a loaded machine the releaser may not run within the spin: then the spin takes
        // nothing and the permit stays. One of a few tries must catch it.
        let caught = (0..200).any(|_| {
            let sem = trained(0);
            let got = thread::scope(|s| {
                s.spawn(|| {
                    thread::sleep(us(10));
                    sem.release(1);
                });
                sem.long_spin(1, None)
            });
            match got {
                Some(Ok(())) => assert_eq!(sem.available(), 0, "the spinner took the one permit"),
                other => {
                    assert_eq!(other, None);
                    assert_eq!(sem.available(), 1, "a spin that missed took nothing");
                }
            }
            got.is_some()
        });
        assert!(caught, "no long spin caught a permit released 10 µs into it");
    }

    #[test]
    #[cfg_attr(miri, ignore = "timing: Miri's clock and threads are too slow for a 100 µs spin")]
    fn a_long_spin_that_gets_nothing_leaves_the_state_and_decays() {
        let sem = trained(0);
        let before = sem.queue.get().unwrap().spin.budget();
        let started = Instant::now();
        assert!(sem.long_spin(1, None).is_none());
        assert!(started.elapsed() >= before, "it spins for the whole estimate");
        assert_eq!(sem.state.load(Relaxed), 0, "and takes nothing");
        assert_eq!(sem.queue.get().unwrap().spin.budget(), before / 2);
    }

    #[test]
    fn a_long_spin_stops_for_a_close_a_queue_and_a_second_spinner() {
        let sem = trained(0);
        sem.close();
        assert_eq!(sem.long_spin(1, None), Some(Err(TryAcquireError::Closed)));
        let sem = trained(0);
        sem.state.fetch_or(QUEUED, Relaxed);
        let before = sem.queue.get().unwrap().spin.budget();
        assert_eq!(sem.long_spin(1, None), None);
        assert_eq!(sem.queue.get().unwrap().spin.budget(), before, "no verdict while others queue");
        let sem = trained(0);
        let before = sem.queue.get().unwrap().spin.budget();
        let turn = sem.queue.get().unwrap().spin.turn();
        assert_eq!(sem.long_spin(1, None), None);
        // A spin that ran would have lasted the estimate and halved it (rule 2); a refused one
        // leaves it. (Not a timing assertion: under qemu a refusal alone can take 50 µs.)
        assert_eq!(sem.queue.get().unwrap().spin.budget(), before, "a second spinner queues at once");
        drop(turn);
    }

    /// Rule 5 for this test thread: as if its last timed yield had come back at once, or not.
    fn set_core_to_itself(alone: bool) {
        YIELDS.with(|y| y.set(u32::from(alone)));
    }

    #[test]
    fn spins_begin_with_hint_looks_only_while_the_core_is_free_and_recheck_it() {
        set_core_to_itself(false);
        assert!(!begin_with_hint_looks(), "yields ran other threads: no hint looks");
        set_core_to_itself(true);
        for i in 0..RECHECK_AFTER {
            assert!(begin_with_hint_looks(), "spin {i} after a quick yield begins with hint looks");
        }
        assert!(!begin_with_hint_looks(), "then one yields first, to time the yield again");
        assert!(!begin_with_hint_looks(), "and none begins with them until it has");
        set_core_to_itself(false);
    }

    #[test]
    fn hint_looks_need_the_turn() {
        let sem = trained(1);
        let turn = sem.queue.get().unwrap().spin.turn();
        assert_eq!(sem.hint_spin(1), None, "another thread spins: no hint looks");
        assert_eq!(sem.available(), 1);
        drop(turn);
        assert_eq!(sem.hint_spin(1), Some(Ok(())), "with the turn it looks");
        assert_eq!(sem.available(), 0);
        assert!(sem.queue.get().unwrap().spin.turn().is_some(), "the turn is given back");
        let fresh = RawSemaphore::new(1);
        assert_eq!(fresh.hint_spin(1), None, "no queue yet: no turn to take");
        assert_eq!(fresh.available(), 1);
    }

    /// Tries hint looks for one permit on a semaphore of no permits, while another
    /// thread releases a permit about 0.2 µs after each try begins (within the looks, which last
    /// about a µs, but after their first); until one try catches the permit, at most `tries`
    /// tries or 5 s. Returns how many caught it, and how many were conclusive: the release began
    /// after the looks and was over soon enough to fall within them (on a loaded machine the
    /// releaser often runs too late).
    fn catches_of_a_late_release(tries: usize) -> (usize, usize) {
        let sems = [trained(0), trained(0)];
        let (round, released, stop) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
        // When the last release began and ended, in ns since `base`.
        let base = Instant::now();
        let (release_began, release_ended) = (AtomicU64::new(0), AtomicU64::new(0));
        let now = || base.elapsed().as_nanos() as u64;
        thread::scope(|s| {
            s.spawn(|| {
                for i in 0..tries {
                    while round.load(SeqCst) <= i {
                        if stop.load(SeqCst) != 0 {
                            return;
                        }
                        std::hint::spin_loop();
                    }
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_nanos(200) {
                        std::hint::spin_loop();
                    }
                    release_began.store(now(), SeqCst);
                    sems[i % 2].release(1);
                    release_ended.store(now(), SeqCst);
                    released.store(i + 1, SeqCst);
                }
            });
            let (mut caught, mut conclusive, start) = (0, 0, Instant::now());
            for i in 0..tries {
                if caught > 0 || start.elapsed() > Duration::from_secs(5) {
                    break;
                }
                let sem = &sems[i % 2];
                let looks_began = now();
                round.store(i + 1, SeqCst);
                let got = sem.hint_looks(1);
                while released.load(SeqCst) <= i {
                    std::hint::spin_loop(); // the release is in before the next try
                }
                // The looks last about a µs (0.8 µs measured on x86-64); a release over within
                // 0.75 µs of their start fell within them, however long they actually took.
                conclusive += usize::from(
                    looks_began < release_began.load(SeqCst)
                        && release_ended.load(SeqCst) < looks_began + 750,
                );
                match got {
                    Some(Ok(())) => caught += 1,
                    other => {
                        assert_eq!(other, None);
                        assert_eq!(sem.forget_permits(1), 1, "looks that missed took nothing");
                    }
                }
            }
            stop.store(1, SeqCst);
            (caught, conclusive)
        })
    }

    #[test]
    #[cfg_attr(miri, ignore = "timing: Miri's threads are too slow for a spin of a µs")]
    fn hint_looks_take_a_permit_released_during_them() {
        if thread::available_parallelism().map_or(1, usize::from) < 2 {
            return; // a releaser runs during the looks only on another CPU
        }
        // The window below assumes looks that last about a µs, as their 79 spin hints
        // (`FIRST_LOOK_AFTER` and the gaps) nearly do on the project's VM (0.8 µs); where they
        // are shorter (a cheaper `pause`), a release in the window may come after them, and
        // proves nothing. (How many looks there are is
        // `hint_looks_stop_for_a_queue_a_reservation_and_a_drain`'s to check.)
        let sem = trained(0);
        let shortest = (0..20)
            .map(|_| {
                let start = Instant::now();
                assert_eq!(sem.hint_looks(1), None);
                start.elapsed()
            })
            .min()
            .unwrap();
        if shortest < Duration::from_nanos(750) {
            println!("SKIPPED: hint looks: they last {shortest:?} here, less than the 0.75 µs window");
            return;
        }
        // On a loaded machine the releaser may not run in time: of the tries where it did (the
        // release began and ended within the looks), one of the first few must catch it. A release
        // that ends just as the last look is made may be missed, so one miss proves nothing.
        let (caught, conclusive) = catches_of_a_late_release(2_000);
        if caught == 0 && conclusive < 20 {
            println!(
                "SKIPPED: hint looks: the releaser ran within the looks {conclusive} times in 5 s (a loaded machine)"
            );
            return;
        }
        assert!(
            caught > 0,
            "no hint looks caught a permit released during them, in {conclusive} tries that could"
        );
    }

    thread_local! {
        /// How many hint looks this thread has made.
        pub(super) static HINT_LOOKS: Cell<u32> = const { Cell::new(0) };
        /// How many yields this thread's spins have made.
        pub(super) static YIELDS_MADE: Cell<u32> = const { Cell::new(0) };
    }

    /// Rule 6: a timed acquire's short spin does not yield past its deadline, nor within
    /// `YIELD_SLICE` of it while its thread's yields run other threads; with a later deadline, or
    /// none, it makes its `YIELD_ROUNDS` yields. (Before, a 50 µs `try_acquire_for` made them all:
    /// 20-24 ms, median, with threads outnumbering the cores.)
    #[test]
    fn a_timed_spin_yields_only_where_the_yield_cannot_outlast_its_deadline() {
        let sem = RawSemaphore::new(0); // short by one: the yield rounds are made
        let yields = |deadline: Option<Instant>, alone: bool| {
            YIELDS.with(|y| y.set(u32::from(alone))); // the last timed yield: quick, or not
            let before = YIELDS_MADE.with(Cell::get);
            assert_eq!(sem.spin(1, deadline), None);
            YIELDS_MADE.with(Cell::get) - before
        };
        let soon = || Some(Instant::now() + Duration::from_micros(50));
        let later = || Some(Instant::now() + Duration::from_secs(60));
        assert_eq!(yields(None, false), YIELD_ROUNDS, "untimed");
        assert_eq!(yields(later(), false), YIELD_ROUNDS, "a deadline a minute away");
        assert_eq!(yields(soon(), false), 0, "50 µs left, yields that run others");
        assert_eq!(yields(Some(Instant::now()), true), 0, "the deadline passed");
    }

    /// The hint looks `f` made on this thread.
    fn hint_looks_of(f: impl FnOnce()) -> u32 {
        let before = HINT_LOOKS.with(Cell::get);
        f();
        HINT_LOOKS.with(Cell::get) - before
    }

    #[test]
    fn hint_looks_stop_for_a_queue_a_reservation_and_a_drain() {
        // Rule 4: the first look that sees someone queued or a reservation ends them, and so does
        // a request short by more than one permit.
        let sem = trained(0);
        // The first look, and one after each gap of 1, 2, 4, ... hints while they add up to at most
        // `HINT_SPINS` (2^k - 1 for k gaps).
        let looks = 1 + (HINT_SPINS + 1).ilog2();
        assert_eq!(hint_looks_of(|| assert_eq!(sem.hint_looks(1), None)), looks, "nothing stops them");
        for (flags, n, why) in
            [(QUEUED, 1, "someone is queued"), (RESERVED, 1, "a reservation"), (0, 2, "a drain")]
        {
            let sem = trained(0);
            sem.state.fetch_or(flags, Relaxed);
            assert_eq!(hint_looks_of(|| assert_eq!(sem.hint_looks(n), None)), 1, "{why}: one look");
        }
    }

    /// Long spins never over-grant: threads that take permits through the long spin, beside
    /// threads that sleep in the queue, never hold more than there are, and none is lost.
    #[test]
    #[cfg_attr(miri, ignore = "timing: Miri's clock and threads are too slow for a 100 µs spin")]
    fn long_spinning_never_over_grants() {
        const PERMITS: u64 = 2;
        const THREADS: usize = 4;
        let sem = trained(PERMITS);
        let inside = AtomicUsize::new(0);
        let spun = AtomicUsize::new(0);
        thread::scope(|s| {
            for t in 0..THREADS {
                let (sem, inside, spun) = (&sem, &inside, &spun);
                s.spawn(move || {
                    for i in 0..3_000 {
                        // Half the threads go straight to the long spin, as after a missed short spin.
                        if t % 2 == 0 && sem.long_spin(1, None) == Some(Ok(())) {
                            spun.fetch_add(1, SeqCst);
                        } else {
                            sem.acquire(1, None).unwrap();
                        }
                        let now = inside.fetch_add(1, SeqCst) + 1;
                        assert!(now as u64 <= PERMITS, "{now} holders of {PERMITS} permits");
                        if i % 64 == 0 {
                            thread::yield_now();
                        }
                        inside.fetch_sub(1, SeqCst);
                        sem.release(1);
                        if sem.queue.get().unwrap().spin.budget().is_zero() {
                            sem.learn(Some(Instant::now() - us(30))); // keep it spinning
                        }
                    }
                });
            }
        });
        assert!(spun.load(SeqCst) > 0, "no acquire came through the long spin");
        assert_eq!(sem.forget_permits(u64::MAX), PERMITS, "permits lost or made up");
        assert_eq!(sem.state.load(Relaxed) & !(QUEUED | RESERVED), 0);
    }
}
