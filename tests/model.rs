//! The semaphore against a reference model, on random sequences of every operation.
//!
//! - `sequential_results_match_the_model`: one thread; after every operation the result (which
//!   acquire succeeds, which error, how many permits `forget_permits` removed, what `split` gave)
//!   and the available count must equal the model's exactly, and permits are conserved:
//!   `available + held + forgotten == initial + added - removed`.
//! - `bounded_results_match_the_model`: the same for `BoundedSemaphore`, whose `release` and
//!   `add_permits` refuse to pass the initial count.
//! - `concurrent_operations_keep_the_model_invariants`: two to four threads run their own random
//!   sequences on one semaphore and check each operation against a mutex-protected model as it
//!   completes (see [`Model`] for why the checks cannot give false alarms): nobody holds a permit
//!   that does not exist, `close` means closed, a timed acquire never gives up before its
//!   deadline, and at the end the count is exact and no waiter is left registered.
//!
//! Cases: `FUTEX_SEMAPHORE_MODEL_CASES` per test (default 512 for each sequential test, 256 for
//! the concurrent one: a few seconds in a debug build; one or two under Miri). Each test
//! prints what it checked.
#![cfg(not(loom))]

use futex_semaphore::{
    AcquireError, BoundedSemaphore, OwnedPermit, Permit, ReleaseError, Semaphore, TryAcquireError,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Once, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// A broken semaphore that hangs a case fails it after this long instead of hanging CI.
const PATIENCE: Duration = Duration::from_secs(20);

/// Largest request the generated operations make.
const MAX_REQUEST: u32 = 3;

// ---------------------------------------------------------------------------------------------
// Operations.

/// How an acquire waits.
#[derive(Debug, Clone, Copy)]
enum How {
    /// `acquire`, `acquire_many`, `acquire_owned`, `acquire_many_owned`.
    Block,
    /// `try_acquire`, `try_acquire_many`, and their `_owned` forms.
    Try,
    /// `try_acquire_for` / `try_acquire_many_for` with this many microseconds.
    For(u16),
    /// `try_acquire_until` / `try_acquire_many_until`, the deadline this many microseconds from
    /// now (negative: in the past).
    Until(i16),
}

#[derive(Debug, Clone)]
enum Op {
    /// Acquire `n` permits (`n == 1` uses the single-permit method).
    Acquire {
        n: u32,
        how: How,
        owned: bool,
    },
    /// Drop one held permit: its permits go back.
    Drop(Index),
    /// `forget` one held permit.
    Forget(Index),
    /// `split(k)` one held permit.
    Split(Index, usize),
    /// `merge` two held permits (of the same kind).
    Merge(Index, Index),
    /// `add_permits(k)`; `k == 1` uses `release()`.
    Add(usize),
    /// `forget_permits(k)`.
    ForgetPermits(usize),
    Close,
    /// Hand an `OwnedPermit` to another thread (concurrent runs only).
    Give(Index),
    /// Hold what is held for a while (concurrent runs only): yield, or sleep this many µs.
    Hold(u16),
    /// `add_permits` one past `MAX_PERMITS`: must panic and change nothing (sequential only).
    AddTooMany,
    /// A request above `MAX_PERMITS`: must panic (sequential only).
    RequestTooLarge,
}

fn how() -> impl Strategy<Value = How> {
    prop_oneof![
        3 => Just(How::Block),
        3 => Just(How::Try),
        2 => (0u16..1500).prop_map(How::For),
        2 => (-500i16..1500).prop_map(How::Until),
    ]
}

fn acquire() -> impl Strategy<Value = Op> {
    (0..=MAX_REQUEST, how(), any::<bool>()).prop_map(|(n, how, owned)| {
        // Owned permits come only from `acquire_*owned` and `try_acquire_*owned`.
        let owned = owned && matches!(how, How::Block | How::Try);
        Op::Acquire { n, how, owned }
    })
}

/// The operations of one thread, with weights per mille. Operations that only one kind of run
/// uses are rare (and no-ops) in the other: proptest refuses a weight of zero.
fn ops(len: std::ops::Range<usize>, concurrent: bool) -> impl Strategy<Value = Vec<Op>> {
    let (close, give, hold, too_many) = if concurrent { (5, 60, 120, 1) } else { (15, 1, 1, 10) };
    let op = prop_oneof![
        400 => acquire(),
        200 => any::<Index>().prop_map(Op::Drop),
        40 => any::<Index>().prop_map(Op::Forget),
        50 => (any::<Index>(), 0usize..4).prop_map(|(i, k)| Op::Split(i, k)),
        50 => (any::<Index>(), any::<Index>()).prop_map(|(i, j)| Op::Merge(i, j)),
        60 => (0usize..4).prop_map(Op::Add),
        40 => (0usize..4).prop_map(Op::ForgetPermits),
        close => Just(Op::Close),
        give => any::<Index>().prop_map(Op::Give),
        hold => (0u16..300).prop_map(Op::Hold),
        too_many => Just(Op::AddTooMany),
        too_many => Just(Op::RequestTooLarge),
    ];
    prop::collection::vec(op, len)
}

// ---------------------------------------------------------------------------------------------
// Held permits of either kind.

enum Held<'a> {
    Borrowed(Permit<'a>),
    Owned(OwnedPermit),
}

impl<'a> Held<'a> {
    fn num(&self) -> u64 {
        match self {
            Held::Borrowed(p) => p.num_permits() as u64,
            Held::Owned(p) => p.num_permits() as u64,
        }
    }

    fn forget(self) {
        match self {
            Held::Borrowed(p) => p.forget(),
            Held::Owned(p) => p.forget(),
        }
    }

    fn split(&mut self, k: usize) -> Option<Held<'a>> {
        match self {
            Held::Borrowed(p) => p.split(k).map(Held::Borrowed),
            Held::Owned(p) => p.split(k).map(Held::Owned),
        }
    }

    /// Merges `other` into `self` if both are of one kind; gives `other` back otherwise.
    fn merge(&mut self, other: Held<'a>) -> Option<Held<'a>> {
        match (self, other) {
            (Held::Borrowed(a), Held::Borrowed(b)) => a.merge(b),
            (Held::Owned(a), Held::Owned(b)) => a.merge(b),
            (_, other) => return Some(other),
        }
        None
    }
}

fn total_held(held: &[Held<'_>]) -> u64 {
    held.iter().map(Held::num).sum()
}

/// Why an acquire failed, from either error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    Closed,
    NoPermits,
}

impl From<AcquireError> for Fail {
    fn from(_: AcquireError) -> Fail {
        Fail::Closed
    }
}

impl From<TryAcquireError> for Fail {
    fn from(e: TryAcquireError) -> Fail {
        match e {
            TryAcquireError::Closed => Fail::Closed,
            TryAcquireError::NoPermits => Fail::NoPermits,
        }
    }
}

fn deadline(offset_micros: i16) -> Instant {
    let now = Instant::now();
    let offset = Duration::from_micros(u64::from(offset_micros.unsigned_abs()));
    if offset_micros >= 0 { now + offset } else { now.checked_sub(offset).unwrap_or(now) }
}

/// Runs one acquire on `sem`, through the method that `n`, `how` and `owned` name.
fn do_acquire<'a>(sem: &'a Arc<Semaphore>, n: u32, how: How, owned: bool) -> Result<Held<'a>, Fail> {
    let one = n == 1;
    let got = match (how, owned) {
        (How::Block, false) if one => sem.acquire().map(Held::Borrowed)?,
        (How::Block, false) => sem.acquire_many(n).map(Held::Borrowed)?,
        (How::Block, true) if one => Arc::clone(sem).acquire_owned().map(Held::Owned)?,
        (How::Block, true) => Arc::clone(sem).acquire_many_owned(n).map(Held::Owned)?,
        (How::Try, false) if one => sem.try_acquire().map(Held::Borrowed)?,
        (How::Try, false) => sem.try_acquire_many(n).map(Held::Borrowed)?,
        (How::Try, true) if one => Arc::clone(sem).try_acquire_owned().map(Held::Owned)?,
        (How::Try, true) => Arc::clone(sem).try_acquire_many_owned(n).map(Held::Owned)?,
        (How::For(us), _) => {
            let timeout = Duration::from_micros(u64::from(us));
            if one {
                sem.try_acquire_for(timeout).map(Held::Borrowed)?
            } else {
                sem.try_acquire_many_for(n, timeout).map(Held::Borrowed)?
            }
        }
        (How::Until(offset), _) => {
            let deadline = deadline(offset);
            if one {
                sem.try_acquire_until(deadline).map(Held::Borrowed)?
            } else {
                sem.try_acquire_many_until(n, deadline).map(Held::Borrowed)?
            }
        }
    };
    assert_eq!(got.num(), u64::from(n), "an acquire of {n} gave another number of permits");
    Ok(got)
}

/// A timed acquire that failed with `NoPermits` must not have returned before its deadline.
fn check_gave_up_late(how: How, start: Instant, result: &Result<Held<'_>, Fail>) {
    if !matches!(result, Err(Fail::NoPermits)) {
        return;
    }
    match how {
        How::For(us) => {
            let waited = start.elapsed();
            assert!(waited >= Duration::from_micros(u64::from(us)), "gave up after {waited:?} of {us} µs");
        }
        How::Until(offset) => {
            // `deadline(offset)` was computed inside `do_acquire`, after `start`.
            let earliest = start + Duration::from_micros(u64::from(offset.max(0) as u16));
            assert!(Instant::now() >= earliest, "gave up before its deadline");
        }
        How::Block => panic!("a blocking acquire failed with NoPermits"),
        How::Try => {}
    }
}

static SEQUENTIAL_OPS: AtomicU64 = AtomicU64::new(0);
static BOUNDED_OPS: AtomicU64 = AtomicU64::new(0);
static CONCURRENT_OPS: AtomicU64 = AtomicU64::new(0);
static CONCURRENT_THREADS: AtomicU64 = AtomicU64::new(0);
/// Concurrent acquires that succeeded, that failed `Closed`, that timed out, and that waited
/// (took more than 100 µs and succeeded).
static CONCURRENT_OUTCOMES: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

fn cases(default: u32) -> u32 {
    // Under Miri a case takes seconds (and Miri hides the environment unless told with
    // `-Zmiri-env-forward`): one or two cases, a smoke test.
    let default = if cfg!(miri) { default / 256 } else { default };
    std::env::var("FUTEX_SEMAPHORE_MODEL_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

thread_local! {
    /// Set while this thread runs code that is expected to panic.
    static EXPECTING_PANIC: Cell<bool> = const { Cell::new(false) };
}

/// Asserts that `f` panics, without printing the panic (other panics print as usual).
fn assert_panics(what: &str, f: impl FnOnce()) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !EXPECTING_PANIC.get() {
                default(info);
            }
        }));
    });
    EXPECTING_PANIC.set(true);
    let result = catch_unwind(AssertUnwindSafe(f));
    EXPECTING_PANIC.set(false);
    assert!(result.is_err(), "{what} did not panic");
}

// ---------------------------------------------------------------------------------------------
// Sequential: exact results.

#[test]
fn sequential_results_match_the_model() {
    let strategy = (0usize..=4, ops(0..80, false));
    runner(cases(512))
        .run(&strategy, |(initial, ops)| {
            run_sequential(initial, &ops);
            Ok(())
        })
        .unwrap();
    eprintln!("sequential: {} operations checked", SEQUENTIAL_OPS.load(Relaxed));
}

fn run_sequential(initial: usize, ops: &[Op]) {
    let sem = Arc::new(Semaphore::new(initial));
    let (mut available, mut added, mut removed, mut forgotten) = (initial as u64, 0u64, 0u64, 0u64);
    let mut closed = false;
    let mut held: Vec<Held<'_>> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Acquire { n, how, owned } => {
                let expected = if closed {
                    Err(Fail::Closed)
                } else if available >= u64::from(n) {
                    Ok(())
                } else {
                    Err(Fail::NoPermits)
                };
                // A blocking acquire that the model says must wait would wait for ever here:
                // make it a non-blocking attempt at a deadline already passed instead.
                let how = match how {
                    How::Block if expected == Err(Fail::NoPermits) => How::Until(-1),
                    how => how,
                };
                let start = Instant::now();
                let result = do_acquire(&sem, n, how, owned);
                check_gave_up_late(how, start, &result);
                assert_eq!(result.as_ref().map(drop).map_err(|e| *e), expected, "step {step}: {op:?}");
                if let Ok(permit) = result {
                    available -= u64::from(n);
                    held.push(permit);
                }
            }
            Op::Drop(i) if !held.is_empty() => {
                available += held.swap_remove(i.index(held.len())).num();
            }
            Op::Forget(i) if !held.is_empty() => {
                let permit = held.swap_remove(i.index(held.len()));
                forgotten += permit.num();
                permit.forget();
            }
            Op::Split(i, k) if !held.is_empty() => {
                let i = i.index(held.len());
                let before = held[i].num();
                match held[i].split(k) {
                    Some(part) => {
                        assert!(k as u64 <= before, "split {k} off {before}");
                        assert_eq!((held[i].num(), part.num()), (before - k as u64, k as u64));
                        held.push(part);
                    }
                    None => assert!(k as u64 > before, "split {k} off {before} refused"),
                }
            }
            Op::Merge(i, j) if held.len() >= 2 => {
                let (i, j) = (i.index(held.len()), j.index(held.len()));
                if i != j {
                    let sum = held[i].num() + held[j].num();
                    let other = held.swap_remove(j);
                    let i = if i == held.len() { j } else { i };
                    match held[i].merge(other) {
                        None => assert_eq!(held[i].num(), sum),
                        Some(other) => held.push(other),
                    }
                }
            }
            Op::Add(k) => {
                if k == 1 {
                    sem.release();
                } else {
                    sem.add_permits(k);
                }
                available += k as u64;
                added += k as u64;
            }
            Op::ForgetPermits(k) => {
                let got = sem.forget_permits(k) as u64;
                assert_eq!(got, (k as u64).min(available), "step {step}: forget_permits({k})");
                available -= got;
                removed += got;
            }
            Op::Close => {
                sem.close();
                closed = true;
            }
            Op::AddTooMany => {
                let k = Semaphore::MAX_PERMITS - available as usize + 1;
                assert_panics("add_permits past MAX_PERMITS", || sem.add_permits(k));
            }
            Op::RequestTooLarge => {
                assert_panics("try_acquire_many(u32::MAX)", || drop(sem.try_acquire_many(u32::MAX)));
                assert_panics("acquire_many(u32::MAX)", || drop(sem.acquire_many(u32::MAX)));
            }
            Op::Drop(_) | Op::Forget(_) | Op::Split(..) | Op::Merge(..) | Op::Give(_) | Op::Hold(_) => {}
        }
        SEQUENTIAL_OPS.fetch_add(1, Relaxed);
        assert_eq!(sem.available_permits() as u64, available, "step {step}: {op:?}");
        assert_eq!(sem.is_closed(), closed, "step {step}: {op:?}");
        assert_eq!(
            available + total_held(&held) + forgotten,
            initial as u64 + added - removed,
            "step {step}: permits not conserved"
        );
    }
    drop(held);
    assert_eq!(sem.available_permits() as u64, initial as u64 + added - removed - forgotten);
    assert_eq!(sem.queued_waiters(), 0, "{sem:?}");
}

#[test]
fn bounded_results_match_the_model() {
    #[derive(Debug, Clone)]
    enum B {
        Acquire(u32, How),
        Drop(Index),
        Forget(Index),
        Release,
        Add(usize),
        ForgetPermits(usize),
        Close,
    }
    let op = prop_oneof![
        4 => (0..=MAX_REQUEST, how()).prop_map(|(n, how)| B::Acquire(n, how)),
        2 => any::<Index>().prop_map(B::Drop),
        1 => any::<Index>().prop_map(B::Forget),
        2 => Just(B::Release),
        2 => (0usize..4).prop_map(B::Add),
        1 => (0usize..4).prop_map(B::ForgetPermits),
        1 => prop_oneof![9 => Just(B::ForgetPermits(0)), 1 => Just(B::Close)],
    ];
    let strategy = (0usize..=4, prop::collection::vec(op, 0..60));
    runner(cases(512))
        .run(&strategy, |(initial, ops)| {
            let sem = BoundedSemaphore::new(initial);
            let (mut available, mut closed) = (initial as u64, false);
            let mut held: Vec<Permit<'_>> = Vec::new();
            for (step, op) in ops.iter().enumerate() {
                match *op {
                    B::Acquire(n, how) => {
                        let expected = if closed {
                            Err(Fail::Closed)
                        } else if available >= u64::from(n) {
                            Ok(())
                        } else {
                            Err(Fail::NoPermits)
                        };
                        let result: Result<Permit<'_>, Fail> = match how {
                            How::Block if expected != Err(Fail::NoPermits) => {
                                sem.acquire_many(n).map_err(Fail::from)
                            }
                            How::Block | How::Try => sem.try_acquire_many(n).map_err(Fail::from),
                            How::For(us) => {
                                let timeout = Duration::from_micros(u64::from(us));
                                sem.try_acquire_many_for(n, timeout).map_err(Fail::from)
                            }
                            How::Until(offset) => {
                                sem.try_acquire_many_until(n, deadline(offset)).map_err(Fail::from)
                            }
                        };
                        assert_eq!(
                            result.as_ref().map(drop).map_err(|e| *e),
                            expected,
                            "step {step}: {op:?}"
                        );
                        if let Ok(permit) = result {
                            assert_eq!(permit.num_permits() as u32, n);
                            available -= u64::from(n);
                            held.push(permit);
                        }
                    }
                    B::Drop(i) if !held.is_empty() => {
                        available += held.swap_remove(i.index(held.len())).num_permits() as u64;
                    }
                    B::Forget(i) if !held.is_empty() => held.swap_remove(i.index(held.len())).forget(),
                    B::Release | B::Add(_) => {
                        let k = if let B::Add(k) = *op { k } else { 1 };
                        let fits = available + k as u64 <= initial as u64;
                        let result = if k == 1 { sem.release() } else { sem.add_permits(k) };
                        assert_eq!(
                            result,
                            if fits { Ok(()) } else { Err(ReleaseError) },
                            "step {step}: {op:?}"
                        );
                        if fits {
                            available += k as u64;
                        }
                    }
                    B::ForgetPermits(k) => {
                        let got = sem.forget_permits(k) as u64;
                        assert_eq!(got, (k as u64).min(available));
                        available -= got;
                    }
                    B::Close => {
                        sem.close();
                        closed = true;
                    }
                    B::Drop(_) | B::Forget(_) => {}
                }
                BOUNDED_OPS.fetch_add(1, Relaxed);
                assert_eq!(sem.available_permits() as u64, available, "step {step}: {op:?}");
                assert_eq!(sem.is_closed(), closed);
            }
            Ok(())
        })
        .unwrap();
    eprintln!("bounded: {} operations checked", BOUNDED_OPS.load(Relaxed));
}

// ---------------------------------------------------------------------------------------------
// Concurrent: invariants checked as each operation completes.

/// The fewest live permits (created and not forgotten) a concurrent run keeps. Since no request
/// is larger, a blocking acquire by a thread that holds nothing can always be served once the
/// others finish: no generated program can deadlock, so a hang is the semaphore's fault.
const FLOOR: u64 = MAX_REQUEST as u64;

/// How long a thread that holds permits waits when its program says "block": a thread never
/// waits without limit while it holds permits (two such threads could deadlock).
const HOLDING_WAIT: Duration = Duration::from_millis(2);

/// What the threads did, as far as the model knows.
///
/// Every operation that *gives* permits (drop, `Permit::forget`, `add_permits`,
/// `forget_permits`) runs while the thread holds this lock, together with its update of the
/// model. An acquire cannot (it may block), so it updates `held` after it has the permits.
/// The model's `held` can therefore be *lower* than the truth (by acquires that have their
/// permits but have not recorded them yet), never higher, and the checks
/// `available + held + forgotten <= initial + added - removed` (and `held <= ...`) can only fail
/// if the semaphore handed out permits it did not have. Once every thread is done the count must
/// be exact.
struct Model {
    initial: u64,
    added: u64,
    removed: u64,
    held: u64,
    forgotten: u64,
    closed: bool,
    /// `OwnedPermit`s given to each thread, which takes them at its next operation. They count
    /// as held.
    mailbox: Vec<Vec<OwnedPermit>>,
    /// Threads that are done (their mailbox is closed) or in a blocking acquire (nobody gives
    /// them permits then: those could be the ones they wait for).
    unreachable: Vec<bool>,
}

impl Model {
    /// Permits created and not removed by `forget_permits`.
    fn created(&self) -> u64 {
        self.initial + self.added - self.removed
    }

    /// Permits that can still be held or taken.
    fn live(&self) -> u64 {
        self.created() - self.forgotten
    }

    fn check(&self, sem: &Semaphore, what: &dyn std::fmt::Debug) {
        let available = sem.available_permits() as u64;
        assert!(
            available + self.held + self.forgotten <= self.created(),
            "after {what:?}: {available} available + {} held + {} forgotten > {} created: \
             the semaphore handed out permits it did not have ({sem:?})",
            self.held,
            self.forgotten,
            self.created()
        );
    }
}

struct Shared {
    sem: Arc<Semaphore>,
    model: Mutex<Model>,
}

impl Shared {
    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[test]
fn concurrent_operations_keep_the_model_invariants() {
    let programs = prop::collection::vec(ops(1..60, true), 2..=4);
    let strategy = (FLOOR as usize..=5, programs);
    let mut runner = TestRunner::new(Config {
        cases: cases(256),
        failure_persistence: None,
        // Shrinking re-runs a racy case (and a hung one takes PATIENCE each time): keep it short.
        max_shrink_iters: 32,
        max_shrink_time: 60_000,
        ..Config::default()
    });
    runner
        .run(&strategy, |(initial, programs)| {
            run_concurrent(initial, programs);
            Ok(())
        })
        .unwrap();
    let [ok, closed, timed_out, waited] = CONCURRENT_OUTCOMES.each_ref().map(|c| c.load(Relaxed));
    eprintln!(
        "concurrent: {} operations on {} threads checked; acquires: {ok} succeeded ({waited} after \
         waiting), {closed} failed closed, {timed_out} timed out",
        CONCURRENT_OPS.load(Relaxed),
        CONCURRENT_THREADS.load(Relaxed)
    );
}

fn run_concurrent(initial: usize, programs: Vec<Vec<Op>>) {
    let threads = programs.len();
    let shared = Arc::new(Shared {
        sem: Arc::new(Semaphore::new(initial)),
        model: Mutex::new(Model {
            initial: initial as u64,
            added: 0,
            removed: 0,
            held: 0,
            forgotten: 0,
            closed: false,
            mailbox: (0..threads).map(|_| Vec::new()).collect(),
            unreachable: vec![false; threads],
        }),
    });
    let (done_tx, done_rx) = mpsc::channel();
    // Not scoped: a hung thread must not hang the test, which fails after PATIENCE instead.
    let handles: Vec<_> = programs
        .into_iter()
        .enumerate()
        .map(|(me, program)| {
            let (shared, done) = (Arc::clone(&shared), done_tx.clone());
            thread::spawn(move || {
                let _done = Done(done);
                run_thread(&shared, me, threads, &program);
            })
        })
        .collect();
    CONCURRENT_THREADS.fetch_add(threads as u64, Relaxed);
    let start = Instant::now();
    for _ in 0..threads {
        let left = PATIENCE.saturating_sub(start.elapsed());
        if done_rx.recv_timeout(left).is_err() {
            // Threads still running hold nothing while they block without a deadline: either
            // permits are missing, or enough are there and a waiter was not woken.
            let model = shared.model();
            let available = shared.sem.available_permits() as u64;
            let why = if available + model.held + model.forgotten < model.created() {
                "permits were lost"
            } else {
                "a waiter was not woken (lost wakeup)"
            };
            panic!(
                "a thread hung for {PATIENCE:?}: {why}: {available} available + {} held + {} forgotten \
                 of {} created ({:?})",
                model.held,
                model.forgotten,
                model.created(),
                shared.sem
            );
        }
    }
    for handle in handles {
        if let Err(panic) = handle.join() {
            std::panic::resume_unwind(panic);
        }
    }
    // Quiescent: everything is given back, and the count is exact.
    let sem = &shared.sem;
    let model = shared.model();
    assert_eq!(model.held, 0);
    assert_eq!(
        sem.available_permits() as u64 + model.forgotten,
        model.created(),
        "permits leaked or duplicated: {sem:?}"
    );
    assert_eq!(sem.queued_waiters(), 0, "a waiter is still registered: {sem:?}");
    assert_eq!(sem.is_closed(), model.closed);
    let available = sem.available_permits();
    if model.closed {
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
    } else {
        // Exactly `available` can be taken, and then none.
        let all = sem.try_acquire_many(available as u32).expect("the available permits are takeable");
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
        drop(all);
    }
}

/// Tells the main thread that a worker is done (also when it panicked).
struct Done(mpsc::Sender<()>);

impl Drop for Done {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

fn run_thread(shared: &Shared, me: usize, threads: usize, program: &[Op]) {
    let sem = &shared.sem;
    let mut held: Vec<Held<'_>> = Vec::new();
    for op in program {
        // Collect what others gave this thread; decide how to wait.
        let (closed_before, how_now) = {
            let mut model = shared.model();
            held.extend(model.mailbox[me].drain(..).map(Held::Owned));
            let how_now = match *op {
                Op::Acquire { how: How::Block, .. } if !held.is_empty() => {
                    How::For(HOLDING_WAIT.as_micros() as u16)
                }
                Op::Acquire { how: How::Block, .. } => {
                    model.unreachable[me] = true;
                    How::Block
                }
                Op::Acquire { how, .. } => how,
                _ => How::Try,
            };
            (model.closed, how_now)
        };
        match *op {
            Op::Acquire { n, owned, .. } => {
                let start = Instant::now();
                let result = do_acquire(sem, n, how_now, owned);
                check_gave_up_late(how_now, start, &result);
                let outcome = match result {
                    Ok(_) if start.elapsed() > Duration::from_micros(100) => 3,
                    Ok(_) => 0,
                    Err(Fail::Closed) => 1,
                    Err(Fail::NoPermits) => 2,
                };
                CONCURRENT_OUTCOMES[outcome].fetch_add(1, Relaxed);
                let mut model = shared.model();
                model.unreachable[me] = false;
                if closed_before {
                    assert_eq!(result.as_ref().err(), Some(&Fail::Closed), "{op:?} after close");
                }
                match result {
                    Ok(permit) => {
                        model.held += permit.num();
                        assert!(
                            model.held + model.forgotten <= model.created(),
                            "{op:?}: {} held + {} forgotten of {} created",
                            model.held,
                            model.forgotten,
                            model.created()
                        );
                        held.push(permit);
                    }
                    Err(Fail::Closed) => assert!(model.closed, "{op:?} failed Closed, but nobody closed"),
                    Err(Fail::NoPermits) => {}
                }
                model.check(sem, op);
            }
            Op::Drop(i) if !held.is_empty() => {
                let permit = held.swap_remove(i.index(held.len()));
                let mut model = shared.model();
                model.held -= permit.num();
                drop(permit);
                model.check(sem, op);
            }
            Op::Forget(i) if !held.is_empty() => {
                let permit = held.swap_remove(i.index(held.len()));
                let mut model = shared.model();
                model.held -= permit.num();
                if model.live() - permit.num() >= FLOOR {
                    model.forgotten += permit.num();
                    permit.forget();
                } else {
                    drop(permit);
                }
                model.check(sem, op);
            }
            Op::Split(i, k) if !held.is_empty() => {
                let i = i.index(held.len());
                let before = held[i].num();
                match held[i].split(k) {
                    Some(part) => {
                        assert_eq!((held[i].num(), part.num()), (before - k as u64, k as u64));
                        held.push(part);
                    }
                    None => assert!(k as u64 > before),
                }
            }
            Op::Merge(i, j) if held.len() >= 2 => {
                let (i, j) = (i.index(held.len()), j.index(held.len()));
                if i != j {
                    let sum = held[i].num() + held[j].num();
                    let other = held.swap_remove(j);
                    let i = if i == held.len() { j } else { i };
                    match held[i].merge(other) {
                        None => assert_eq!(held[i].num(), sum),
                        Some(other) => held.push(other),
                    }
                }
            }
            Op::Give(i) if !held.is_empty() => {
                let i = i.index(held.len());
                if let Held::Owned(_) = held[i] {
                    let Held::Owned(permit) = held.swap_remove(i) else { unreachable!() };
                    let to = (me + 1) % threads;
                    let mut model = shared.model();
                    if model.unreachable[to] {
                        model.held -= permit.num_permits() as u64;
                        drop(permit);
                    } else {
                        model.mailbox[to].push(permit);
                    }
                    model.check(sem, op);
                }
            }
            Op::Add(k) => {
                let mut model = shared.model();
                if k == 1 {
                    sem.release();
                } else {
                    sem.add_permits(k);
                }
                model.added += k as u64;
                model.check(sem, op);
            }
            Op::ForgetPermits(k) => {
                let mut model = shared.model();
                let allowed = (k as u64).min(model.live() - FLOOR);
                let got = sem.forget_permits(allowed as usize) as u64;
                assert!(got <= allowed);
                model.removed += got;
                model.check(sem, op);
            }
            Op::Close => {
                let mut model = shared.model();
                sem.close();
                model.closed = true;
                assert!(sem.is_closed());
            }
            Op::Hold(us) => {
                if us < 100 {
                    thread::yield_now();
                } else {
                    thread::sleep(Duration::from_micros(u64::from(us)));
                }
            }
            Op::Drop(_)
            | Op::Forget(_)
            | Op::Split(..)
            | Op::Merge(..)
            | Op::Give(_)
            | Op::AddTooMany
            | Op::RequestTooLarge => {}
        }
        CONCURRENT_OPS.fetch_add(1, Relaxed);
    }
    // Done: close the mailbox and give everything back.
    let mut model = shared.model();
    held.extend(model.mailbox[me].drain(..).map(Held::Owned));
    model.unreachable[me] = true;
    model.held -= total_held(&held);
    drop(held);
    model.check(sem, &"the end of a thread");
}
