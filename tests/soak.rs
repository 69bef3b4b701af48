//! Soak under oversubscription: many more threads than cores hammer one semaphore for a while,
//! with random request sizes, hold times and timeouts, while a watchdog checks that every
//! thread keeps making progress.
//!
//! - `soak` (`#[ignore]`; `.ci/soak` runs it with the crate and this test at opt-level 3, overflow
//!   checks on): 64 threads for `FUTEX_SEMAPHORE_SOAK_SECS` seconds (default 60). 48 threads take
//!   one permit at a time, 16 take two to four; all use blocking, timed and `try_` acquires.
//! - `soak_briefly`: the same for 3 seconds with 16 threads and a tighter single-permit bound
//!   ([`BRIEF_SINGLE_BOUND`]), in every `cargo test` and under ThreadSanitizer.
//!
//! What fails the test:
//! - more permits held at once than exist (checked inside every critical section);
//! - a plain (non-atomic) counter, guarded by a one-permit semaphore, losing an update: its
//!   accesses are ordered only by the semaphore's release/acquire, which is also what TSan checks;
//! - any thread, of any request size, blocking or async, that completes no acquire for
//!   [`SINGLE_BOUND`] while the others complete at least [`OTHERS_PROGRESS`] (starvation; a
//!   machine stalled as a whole is not);
//! - no acquire at all, by anyone, for [`HANG_BOUND`] (a hang, a lost wakeup);
//! - threads that do not finish within [`HANG_BOUND`] once told to stop;
//! - at the end: a permit count other than the initial one, or a waiter still queued.
//!
//! The bound. Every waiter is protected by the reservation (the queue's head, once it has waited
//! 1 ms, gets priority over later arrivals: `Semaphore`'s "Fairness"): the worst gaps measured
//! here are tens of milliseconds with 64 threads on 2 loaded cores, for single- and multi-permit
//! threads alike, so [`SINGLE_BOUND`] leaves about two orders of magnitude. One thread in eight
//! makes its blocking acquires as a task (`acquire_many_async` on `pollster`). The worst gaps are
//! printed by every run and recorded in `docs/reliability.md`.

#![cfg(not(loom))] // the loom models are in tests/loom.rs; these run on real threads

mod common;

use common::Rng;
use futex_semaphore::Semaphore;
use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

/// Permits of the semaphore under test.
const PERMITS: usize = 8;
/// The largest request of a multi-permit thread.
const MAX_MANY: u64 = 4;
/// A thread that completes no acquire for this long while others progress starves.
const SINGLE_BOUND: Duration = Duration::from_secs(2);
/// [`SINGLE_BOUND`] for `soak_briefly`, which is too short for a 2 s gap to show.
const BRIEF_SINGLE_BOUND: Duration = Duration::from_millis(500);
/// "Others progress": at least this many acquires by other threads during the gap. A machine
/// stalled as a whole (another job hogging both cores) does not count as starvation.
const OTHERS_PROGRESS: u64 = 1000;
/// No acquire by anyone for this long is a hang.
const HANG_BOUND: Duration = Duration::from_secs(20);
/// How often the watchdog looks.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// A counter that only the holder of `Shared::gate`'s single permit touches, without atomics.
struct Guarded(UnsafeCell<u64>);

// SAFETY: every access is made while holding the only permit of `Shared::gate`, whose release
// happens-before the next acquire (the semaphore's documented memory ordering).
unsafe impl Sync for Guarded {}

/// Per-thread progress, written by the thread and read by the watchdog.
#[derive(Default)]
struct Progress {
    /// Nanoseconds since the start at the last completed acquire (or the start).
    last_ok: AtomicU64,
    /// The global acquire count right after that acquire.
    total_then: AtomicU64,
    acquires: AtomicU64,
    timeouts: AtomicU64,
    /// The longest a single blocking acquire took, in nanoseconds.
    longest_block: AtomicU64,
}

struct Shared {
    sem: Arc<Semaphore>,
    gate: Semaphore,
    guarded: Guarded,
    gate_entries: AtomicU64,
    inside: AtomicUsize,
    total: AtomicU64,
    stop: AtomicBool,
    start: Instant,
    progress: Vec<Progress>,
}

impl Shared {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// Counts a worker as finished when dropped, also when the worker panicked.
struct Done(Arc<AtomicUsize>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Whether thread `t` of `threads` is of the multi-permit class (one in four).
fn is_many(t: usize) -> bool {
    t % 4 == 3
}

/// Whether thread `t` makes its blocking acquires as a task (one in eight: single- and
/// multi-permit ones alike).
fn is_async(t: usize) -> bool {
    t % 8 == 3 || t % 8 == 6
}

#[derive(Debug)]
struct Report {
    acquires: u64,
    timeouts: u64,
    gate_entries: u64,
    worst_gap_single: Duration,
    worst_gap_many: Duration,
    worst_gap_async: Duration,
    /// Acquires by all multi-permit threads, and by the least served of them.
    many_acquires: u64,
    fewest_many_acquires: u64,
    longest_block_single: Duration,
    longest_block_many: Duration,
}

fn run(threads: usize, duration: Duration, single_bound: Duration) -> Report {
    let shared = Arc::new(Shared {
        sem: Arc::new(Semaphore::new(PERMITS)),
        gate: Semaphore::new(1),
        guarded: Guarded(UnsafeCell::new(0)),
        gate_entries: AtomicU64::new(0),
        inside: AtomicUsize::new(0),
        total: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        start: Instant::now(),
        progress: (0..threads).map(|_| Progress::default()).collect(),
    });
    let done = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (shared, done) = (Arc::clone(&shared), Arc::clone(&done));
            thread::spawn(move || {
                let _done = Done(done);
                worker(&shared, t);
            })
        })
        .collect();

    // The watchdog.
    let mut worst = [Duration::ZERO; 3];
    let mut last_total = (0, Instant::now());
    // A worker that ends before the stop has panicked: stop and report its panic.
    while shared.start.elapsed() < duration && done.load(SeqCst) == 0 {
        thread::sleep(WATCH_EVERY);
        let now = shared.now();
        let total = shared.total.load(SeqCst);
        for (t, p) in shared.progress.iter().enumerate() {
            let gap = Duration::from_nanos(now.saturating_sub(p.last_ok.load(SeqCst)));
            let others = total.saturating_sub(p.total_then.load(SeqCst));
            let class = if is_async(t) { 2 } else { usize::from(is_many(t)) };
            worst[class] = worst[class].max(gap);
            assert!(
                gap <= single_bound || others < OTHERS_PROGRESS,
                "thread {t} (many: {}, async: {}) completed no acquire for {gap:?} while the others completed \
                 {others}: starvation beyond {single_bound:?} ({:?})",
                is_many(t),
                is_async(t),
                shared.sem
            );
        }
        if total != last_total.0 {
            last_total = (total, Instant::now());
        }
        assert!(
            last_total.1.elapsed() < HANG_BOUND,
            "no thread completed an acquire for {HANG_BOUND:?}: hung ({:?})",
            shared.sem
        );
    }
    shared.stop.store(true, SeqCst);
    let stopping = Instant::now();
    while done.load(SeqCst) < threads {
        assert!(
            stopping.elapsed() < HANG_BOUND,
            "{} of {threads} threads did not finish within {HANG_BOUND:?} of the stop: hung ({:?})",
            threads - done.load(SeqCst),
            shared.sem
        );
        thread::sleep(Duration::from_millis(10));
    }
    for handle in handles {
        if let Err(panic) = handle.join() {
            std::panic::resume_unwind(panic);
        }
    }

    // Exact at the end.
    let sem = &shared.sem;
    assert_eq!(sem.available_permits(), PERMITS, "permits leaked or duplicated: {sem:?}");
    assert_eq!(sem.queued_waiters(), 0, "a waiter is still registered: {sem:?}");
    assert_eq!(shared.inside.load(SeqCst), 0);
    assert_eq!(shared.gate.available_permits(), 1);
    // SAFETY: every thread is joined; nobody else accesses the counter any more.
    let guarded = unsafe { *shared.guarded.0.get() };
    let gate_entries = shared.gate_entries.load(SeqCst);
    assert_eq!(guarded, gate_entries, "an update of the guarded counter was lost");
    let all = sem.try_acquire_many(PERMITS as u32).unwrap();
    assert!(sem.try_acquire().is_err());
    drop(all);

    let longest = |many: bool| {
        let nanos = (0..threads)
            .filter(|&t| is_many(t) == many)
            .map(|t| shared.progress[t].longest_block.load(SeqCst))
            .max()
            .unwrap_or(0);
        Duration::from_nanos(nanos)
    };
    let sum = |f: fn(&Progress) -> &AtomicU64| shared.progress.iter().map(|p| f(p).load(SeqCst)).sum();
    let acquires: u64 = sum(|p| &p.acquires);
    assert_eq!(acquires, shared.total.load(SeqCst));
    assert!(acquires > threads as u64, "almost nothing was acquired: the test tested nothing");
    let many = || (0..threads).filter(|&t| is_many(t)).map(|t| shared.progress[t].acquires.load(SeqCst));
    Report {
        many_acquires: many().sum(),
        fewest_many_acquires: many().min().unwrap_or(0),
        acquires,
        timeouts: sum(|p| &p.timeouts),
        gate_entries,
        worst_gap_single: worst[0],
        worst_gap_many: worst[1],
        worst_gap_async: worst[2],
        longest_block_single: longest(false),
        longest_block_many: longest(true),
    }
}

/// Permits held by a worker, of either kind.
enum Held<'a> {
    Borrowed(futex_semaphore::Permit<'a>),
    Owned(futex_semaphore::OwnedPermit),
}

impl Held<'_> {
    fn num(&self) -> usize {
        match self {
            Held::Borrowed(p) => p.num_permits(),
            Held::Owned(p) => p.num_permits(),
        }
    }
}

fn worker(shared: &Shared, t: usize) {
    let sem = &shared.sem;
    let me = &shared.progress[t];
    let mut rng = Rng::new(t as u64);
    let many = is_many(t);
    while !shared.stop.load(Relaxed) {
        let n = if many { 2 + rng.below(MAX_MANY - 1) as u32 } else { 1 };
        let start = Instant::now();
        let held = match rng.below(10) {
            // Blocking (borrowed or owned).
            kind @ 0..=5 => {
                let held = if kind == 0 {
                    Held::Owned(Arc::clone(sem).acquire_many_owned(n).expect("not closed"))
                } else if is_async(t) {
                    Held::Borrowed(pollster::block_on(sem.acquire_many_async(n)).expect("not closed"))
                } else {
                    Held::Borrowed(sem.acquire_many(n).expect("not closed"))
                };
                me.longest_block.fetch_max(start.elapsed().as_nanos() as u64, Relaxed);
                held
            }
            // Timed, up to 2 ms.
            6..=8 => {
                let timeout = Duration::from_micros(rng.below(2000));
                match sem.try_acquire_many_for(n, timeout) {
                    Ok(permit) => Held::Borrowed(permit),
                    Err(_) => {
                        assert!(start.elapsed() >= timeout, "a timed acquire gave up early");
                        me.timeouts.fetch_add(1, Relaxed);
                        continue;
                    }
                }
            }
            _ => match sem.try_acquire_many(n) {
                Ok(permit) => Held::Borrowed(permit),
                Err(_) => continue,
            },
        };
        assert_eq!(held.num(), n as usize);
        let n = n as usize;
        let inside = shared.inside.fetch_add(n, SeqCst) + n;
        assert!(inside <= PERMITS, "{inside} permits held of {PERMITS}");
        hold(&mut rng);
        shared.inside.fetch_sub(n, SeqCst);
        // Give them back: dropped (one `fetch_add`), split and dropped in parts, or forgotten
        // and added back with `add_permits` (a CAS loop).
        match (held, rng.below(8)) {
            (Held::Borrowed(p), 0) => {
                p.forget();
                sem.add_permits(n);
            }
            (Held::Borrowed(mut p), 1) if n > 1 => {
                let part = p.split(1).unwrap();
                drop(p);
                drop(part);
            }
            (held, _) => drop(held),
        }
        let total = shared.total.fetch_add(1, SeqCst) + 1;
        me.acquires.fetch_add(1, Relaxed);
        me.total_then.store(total, SeqCst);
        me.last_ok.store(shared.now(), SeqCst);

        // Now and then, the guarded counter.
        if rng.below(16) == 0 {
            let _gate = shared.gate.acquire().unwrap();
            // SAFETY: this thread holds the gate's only permit (see `Guarded`).
            unsafe { *shared.guarded.0.get() += 1 };
            shared.gate_entries.fetch_add(1, Relaxed);
        }
    }
}

/// Holds for a random while: mostly nothing or a few spins, sometimes a yield or a short sleep.
fn hold(rng: &mut Rng) {
    match rng.below(100) {
        0..=69 => {
            for _ in 0..rng.below(200) {
                std::hint::spin_loop();
            }
        }
        70..=94 => thread::yield_now(),
        _ => thread::sleep(Duration::from_micros(rng.below(500))),
    }
}

fn print(what: &str, threads: usize, duration: Duration, r: &Report) {
    eprintln!(
        "{what}: {threads} threads, {duration:?}: {} acquires ({} by multi-permit threads, {} by the \
         least served of them; {} timeouts), {} guarded entries; \
         worst progress gap {:?} (single-permit threads), {:?} (multi-permit), {:?} (async); \
         longest blocking acquire {:?} (single), {:?} (multi)",
        r.acquires,
        r.many_acquires,
        r.fewest_many_acquires,
        r.timeouts,
        r.gate_entries,
        r.worst_gap_single,
        r.worst_gap_many,
        r.worst_gap_async,
        r.longest_block_single,
        r.longest_block_many
    );
}

#[test]
#[cfg_attr(miri, ignore = "seconds of 16 threads: too slow under Miri")]
fn soak_briefly() {
    let duration = Duration::from_secs(3);
    let report = run(16, duration, BRIEF_SINGLE_BOUND);
    print("soak_briefly", 16, duration, &report);
}

#[test]
#[ignore = "long: run by .ci/soak (FUTEX_SEMAPHORE_SOAK_SECS, default 60)"]
fn soak() {
    let secs = std::env::var("FUTEX_SEMAPHORE_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let duration = Duration::from_secs(secs);
    let report = run(64, duration, SINGLE_BOUND);
    print("soak", 64, duration, &report);
}
