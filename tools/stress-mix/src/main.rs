//! stress-mix: a randomized stress harness of the semaphore: never more holders inside than the
//! permits that exist ("oversub"), no permit made or lost ("conservation"), no hang
//! (`docs/reliability.md` records its runs).
//!
//! Each run builds a random shape from its seed (xorshift; the seed is printed with any
//! failure): 1-3 permits; 0-3 plain threads (blocking, timed, many, owned, polled-once owned
//! futures); 0-8 tasks on a tokio current-thread runtime (borrowed and owned futures, timeouts,
//! futures polled once and dropped, owned futures polled once and sent to another thread);
//! 0-6 tasks on a `futures::executor::ThreadPool` of 2 threads (async acquires, and blocking
//! `acquire()` / `try_acquire_many_for` on the pool thread); a "finisher" thread that receives
//! owned futures polled once elsewhere and drops them, finishes them, or drops them later
//! (cancellation from another thread); a "manager" thread (probability 0.7) that forgets
//! permits and later adds back what it forgot, or takes a permit, forgets it while held and
//! gives it back later with `release`; and `close()` at a random moment (probability 0.5).
//!
//! # Accounting
//! One `AtomicU64` holds both counters: `cap` (high 32 bits: permits that exist, never below the
//! real number: the manager raises it BEFORE `add_permits` and lowers it by what
//! `forget_permits` RETURNED, AFTER the forget) and `inside` (low 32 bits: raised by `n` right
//! after an acquire returns `n` permits, lowered right before they are dropped). Every RMW on
//! that word is SeqCst, so the holder's `fetch_add` returns a consistent snapshot of both at one
//! instant, and `inside <= cap` must hold at that instant:
//! inside <= permits really held <= permits that exist <= cap.
//! That is the authoritative check ("FAIL oversub", exit 1).
//!
//! The check with two separate atomics (`inside.fetch_add(n)`, THEN `cap.load()`) is NOT sound
//! with a manager that forgets permits: between the holder's `fetch_add` and its `cap.load`,
//! another holder can leave and give its permit back, and the manager can forget that permit and
//! lower `cap`, so the holder sees e.g. "2 held of cap 1" on a correct semaphore. This harness
//! also evaluates that check (the `cap` it reads after its `fetch_add`) and reports where it
//! alone fires as a "NAIVE" line (not a failure); `F_GAP=1` widens that window (a
//! `yield_now` between the two) to show it.
//!
//! At the end of each run (all workers, runtimes and the finisher joined, the manager stopped
//! having added back everything), `available_permits()` must equal the initial permits, closed
//! or not ("FAIL conservation", exit 2). A run taking longer than F_WATCHDOG seconds (default
//! 20) is reported as "FAIL hang" (exit 3); a panic anywhere as "FAIL panic" (exit 4).
//!
//! # Environment
//! SEED_START (default 1), RUNS (default 1000), SCALE (iterations multiplier, default 1),
//! forced shape: F_PERMITS (1-3), F_MAXK (1-2, largest request), F_THREADS, F_TASKS (tokio),
//! F_POOL (pool tasks), F_MGR (0/1), CLOSE_MID (0/1); F_GAP (0/1), F_WATCHDOG (seconds),
//! VERBOSE=1 prints every run's shape. F_SELFTEST=oversub|leak|hang checks that the harness
//! reports each kind of failure (the ledger believes in one permit fewer / a permit is forgotten
//! at the end / all permits are forgotten at the start and never given back).
//!
//! `cargo build --release -p stress-mix && SEED_START=1 RUNS=200 target/release/stress-mix`

use futex_semaphore::{AcquireOwned, Semaphore, TryAcquireError};
use futures::executor::ThreadPool;
use futures::task::SpawnExt;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Random numbers

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that seeds 0, 1, 2... start far apart and never at 0
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Inclusive range.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }

    fn fork(&mut self, salt: u64) -> Rng {
        Rng::new(self.next() ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

fn spin(n: u64) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------------------------
// Environment and shape

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    Some(v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

fn env_f64(name: &str) -> Option<f64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    Some(v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

#[derive(Clone)]
struct Forced {
    permits: Option<u64>,
    maxk: Option<u64>,
    threads: Option<u64>,
    tasks: Option<u64>,
    pool: Option<u64>,
    mgr: Option<u64>,
    close: Option<u64>,
    scale: f64,
    gap: bool,
    selftest: String,
}

impl Forced {
    fn from_env() -> Forced {
        Forced {
            permits: env_u64("F_PERMITS"),
            maxk: env_u64("F_MAXK"),
            threads: env_u64("F_THREADS"),
            tasks: env_u64("F_TASKS"),
            pool: env_u64("F_POOL"),
            mgr: env_u64("F_MGR"),
            close: env_u64("CLOSE_MID"),
            scale: env_f64("SCALE").unwrap_or(1.0),
            gap: env_u64("F_GAP").unwrap_or(0) != 0,
            selftest: std::env::var("F_SELFTEST").unwrap_or_default(),
        }
    }
}

#[derive(Clone)]
struct Shape {
    permits: u32,
    maxk: u32,
    threads: u32,
    tasks: u32,
    pool: u32,
    mgr: bool,
    close: bool,
    close_frac: f64,
    scale: f64,
}

impl Shape {
    fn draw(rng: &mut Rng, f: &Forced) -> Shape {
        let permits = f.permits.unwrap_or_else(|| rng.range(1, 3)).clamp(1, 1000) as u32;
        let maxk = (f.maxk.unwrap_or_else(|| rng.range(1, 2)).clamp(1, 2) as u32).min(permits);
        let threads = f.threads.unwrap_or_else(|| rng.range(0, 3)) as u32;
        let mut tasks = f.tasks.unwrap_or_else(|| rng.range(0, 8)) as u32;
        let pool = f.pool.unwrap_or_else(|| rng.range(0, 6)) as u32;
        let mgr = f.mgr.map(|v| v != 0).unwrap_or_else(|| rng.chance(0.7));
        let close = f.close.map(|v| v != 0).unwrap_or_else(|| rng.chance(0.5));
        let close_frac = rng.below(1000) as f64 / 1000.0;
        if threads + tasks + pool == 0 {
            tasks = 1; // someone must use the semaphore
        }
        Shape { permits, maxk, threads, tasks, pool, mgr, close, close_frac, scale: f.scale }
    }

    fn iters(&self, rng: &mut Rng) -> u64 {
        ((rng.range(50, 300) as f64 * self.scale).round() as u64).max(1)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "permits={} maxk={} threads={} tasks={} pool={} mgr={} close={}",
            self.permits, self.maxk, self.threads, self.tasks, self.pool, self.mgr as u8, self.close as u8
        )?;
        if self.close {
            write!(f, "@{:.3}", self.close_frac)?;
        }
        write!(f, " scale={}", self.scale)
    }
}

// ---------------------------------------------------------------------------------------------
// Process-wide state: the current run (for the watchdog and the panic hook) and totals

static CUR_SEED: AtomicU64 = AtomicU64::new(0);
static RUN_START_MS: AtomicU64 = AtomicU64::new(u64::MAX); // u64::MAX: no run in progress
static CUR_SHAPE: Mutex<String> = Mutex::new(String::new());
static CUR_SEM: Mutex<Option<Arc<Semaphore>>> = Mutex::new(None);
static CUR_LEDGER: Mutex<Option<Arc<Ledger>>> = Mutex::new(None);
static T0: OnceLock<Instant> = OnceLock::new();

static OK_ACQUIRES: AtomicU64 = AtomicU64::new(0);
static CANCELS: AtomicU64 = AtomicU64::new(0);
static XTHREAD: AtomicU64 = AtomicU64::new(0);
static CLOSED_ERRS: AtomicU64 = AtomicU64::new(0);
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);
static FORGOTTEN: AtomicU64 = AtomicU64::new(0);
static NAIVE: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    T0.get_or_init(Instant::now).elapsed().as_millis() as u64
}

fn shape_str() -> String {
    CUR_SHAPE.lock().map(|s| s.clone()).unwrap_or_else(|e| e.into_inner().clone())
}

fn fail_exit(code: i32, line: String) -> ! {
    // stdout is line-buffered; print to both so a runner capturing either sees it
    println!("{line}");
    eprintln!("{line}");
    std::process::exit(code);
}

// ---------------------------------------------------------------------------------------------
// The ledger: `cap` and `inside` in one word

const LOW: u64 = 0xffff_ffff;

struct Ledger {
    word: AtomicU64,
    gap: bool,
}

impl Ledger {
    fn new(permits: u32, gap: bool) -> Ledger {
        Ledger { word: AtomicU64::new(u64::from(permits) << 32), gap }
    }

    /// Right after an acquire returned `n` permits.
    fn enter(&self, seed: u64, n: u32, kind: &str) {
        let prev = self.word.fetch_add(u64::from(n), SeqCst);
        let inside = (prev & LOW) + u64::from(n);
        let cap = prev >> 32;
        if inside > cap {
            fail_exit(
                1,
                format!(
                    "FAIL oversub seed={seed} by={kind} n={n} inside={inside} cap={cap} shape=[{}]",
                    shape_str()
                ),
            );
        }
        // The check of two separate atomics (inside.fetch_add, then cap.load): not sound, see the
        // module docs. Reported, not fatal.
        if self.gap {
            thread::yield_now();
        }
        let cap_later = self.word.load(SeqCst) >> 32;
        if inside > cap_later {
            let k = NAIVE.fetch_add(1, SeqCst);
            if k < 20 {
                println!(
                    "NAIVE seed={seed} by={kind} n={n} inside={inside} cap_at_add={cap} cap_later={cap_later} \
                     (false positive of the two-atomics check; the exact check passed) shape=[{}]",
                    shape_str()
                );
            }
        }
        OK_ACQUIRES.fetch_add(1, SeqCst);
    }

    /// Right before `n` permits are dropped.
    fn leave(&self, n: u32) {
        self.word.fetch_sub(u64::from(n), SeqCst);
    }

    /// AFTER `forget_permits` returned `k`.
    fn cap_down(&self, k: u64) {
        self.word.fetch_sub(k << 32, SeqCst);
    }

    /// BEFORE `add_permits(k)`.
    fn cap_up(&self, k: u64) {
        self.word.fetch_add(k << 32, SeqCst);
    }

    fn parts(&self) -> (u64, u64) {
        let w = self.word.load(SeqCst);
        (w & LOW, w >> 32)
    }
}

// ---------------------------------------------------------------------------------------------
// Runs

struct Run {
    seed: u64,
    shape: Shape,
    sem: Arc<Semaphore>,
    ledger: Arc<Ledger>,
    ops: AtomicU64,
    workers_done: AtomicU64,
    stop_mgr: AtomicBool,
}

impl Run {
    fn enter(&self, n: u32, kind: &str) {
        self.ledger.enter(self.seed, n, kind);
    }

    fn leave(&self, n: u32) {
        self.ledger.leave(n);
    }

    fn request(&self, rng: &mut Rng) -> u32 {
        if self.shape.maxk >= 2 && rng.chance(0.3) { 2 } else { 1 }
    }

    /// A holder that never awaits: spins, or yields its thread.
    fn hold_sync(&self, rng: &mut Rng) {
        match rng.below(5) {
            0 => {}
            1 | 2 => spin(rng.range(20, 400)),
            3 => spin(rng.range(400, 3000)),
            _ => thread::yield_now(),
        }
    }

    /// Holds `permit` (`n` permits) without awaiting, then gives it back.
    fn held<P>(&self, permit: P, n: u32, kind: &str, rng: &mut Rng) {
        self.enter(n, kind);
        self.hold_sync(rng);
        self.leave(n);
        drop(permit);
    }

    /// [`held`](Self::held) for an acquire that returned `Ok`; an error is the semaphore closed.
    fn held_or_closed<P, E>(&self, acquired: Result<P, E>, n: u32, kind: &str, rng: &mut Rng) -> Step {
        match acquired {
            Ok(p) => {
                self.held(p, n, kind, rng);
                Step::Go
            }
            Err(_) => closed(),
        }
    }

    /// [`held`](Self::held) for a try or timed acquire that returned `Ok`.
    fn held_or_try_err<P>(
        &self,
        acquired: Result<P, TryAcquireError>,
        n: u32,
        kind: &str,
        rng: &mut Rng,
    ) -> Step {
        match acquired {
            Ok(p) => {
                self.held(p, n, kind, rng);
                Step::Go
            }
            Err(e) => on_try_err(e),
        }
    }

    fn between_sync(&self, rng: &mut Rng) {
        match rng.below(6) {
            0 => thread::yield_now(),
            1 => spin(rng.range(0, 500)),
            _ => {}
        }
    }
}

/// An owned future polled once somewhere, sent to the finisher thread.
struct Sent {
    fut: AcquireOwned,
    n: u32,
    origin: &'static str,
}

struct Unparker(thread::Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

fn thread_waker() -> Waker {
    Waker::from(Arc::new(Unparker(thread::current())))
}

/// Polls `fut` once with the current task's context.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

enum Step {
    Go,
    Closed,
}

fn on_try_err(e: TryAcquireError) -> Step {
    match e {
        TryAcquireError::Closed => {
            CLOSED_ERRS.fetch_add(1, SeqCst);
            Step::Closed
        }
        TryAcquireError::NoPermits => {
            TIMEOUTS.fetch_add(1, SeqCst);
            Step::Go
        }
    }
}

fn closed() -> Step {
    CLOSED_ERRS.fetch_add(1, SeqCst);
    Step::Closed
}

// ---------------------------------------------------------------------------------------------
// Plain threads

fn thread_worker(run: Arc<Run>, mut rng: Rng, fin: Sender<Sent>) {
    let iters = run.shape.iters(&mut rng);
    let sem = &*run.sem;
    for _ in 0..iters {
        let n = run.request(&mut rng);
        let step = match rng.below(10) {
            0..=2 => {
                run.held_or_closed(sem.acquire_many(n), n, if n == 1 { "thread" } else { "many" }, &mut rng)
            }
            3 | 4 => run.held_or_try_err(
                sem.try_acquire_many_for(n, Duration::from_micros(rng.range(0, 300))),
                n,
                "timed",
                &mut rng,
            ),
            5 => match sem.try_acquire_many(n) {
                Ok(p) => {
                    run.held(p, n, "thread-try", &mut rng);
                    Step::Go
                }
                Err(e) => {
                    if e == TryAcquireError::Closed {
                        closed()
                    } else {
                        Step::Go
                    }
                }
            },
            6 | 7 => run.held_or_closed(
                Arc::clone(&run.sem).acquire_many_owned(n),
                n,
                if n == 1 { "thread-owned" } else { "many-owned" },
                &mut rng,
            ),
            _ => {
                // An owned future polled once here, then sent to the finisher if pending.
                let mut fut = Arc::clone(&run.sem).acquire_many_owned_async(n);
                let waker = thread_waker();
                let mut cx = Context::from_waker(&waker);
                match Pin::new(&mut fut).poll(&mut cx) {
                    Poll::Ready(Ok(p)) => {
                        run.held(p, n, "thread-polled-owned", &mut rng);
                        Step::Go
                    }
                    Poll::Ready(Err(_)) => closed(),
                    Poll::Pending => {
                        if rng.chance(0.2) {
                            drop(fut); // cancelled where it was polled
                            CANCELS.fetch_add(1, SeqCst);
                        } else {
                            let _ = fin.send(Sent { fut, n, origin: "thread" });
                        }
                        Step::Go
                    }
                }
            }
        };
        run.ops.fetch_add(1, SeqCst);
        if let Step::Closed = step {
            break;
        }
        run.between_sync(&mut rng);
    }
    run.workers_done.fetch_add(1, SeqCst);
}

// ---------------------------------------------------------------------------------------------
// Tokio tasks (current-thread runtime)

async fn hold_async<P>(run: &Run, permit: P, n: u32, kind: &str, rng: &mut Rng) {
    run.enter(n, kind);
    match rng.below(5) {
        0 => {}
        1 | 2 => spin(rng.range(20, 400)),
        3 => spin(rng.range(400, 3000)),
        _ => tokio::task::yield_now().await, // holding across a yield: fine on this runtime
    }
    run.leave(n);
    drop(permit);
}

/// [`hold_async`] for an acquire that returned `Ok`; an error is the semaphore closed.
async fn hold_async_or_closed<P, E>(
    run: &Run,
    acquired: Result<P, E>,
    n: u32,
    kind: &str,
    rng: &mut Rng,
) -> Step {
    match acquired {
        Ok(p) => {
            hold_async(run, p, n, kind, rng).await;
            Step::Go
        }
        Err(_) => closed(),
    }
}

/// [`hold_async_or_closed`] for an acquire under a timeout; a timeout cancels it.
async fn hold_async_or_timed_out<P, E>(
    run: &Run,
    acquired: Result<Result<P, E>, tokio::time::error::Elapsed>,
    n: u32,
    kind: &str,
    rng: &mut Rng,
) -> Step {
    match acquired {
        Ok(acquired) => hold_async_or_closed(run, acquired, n, kind, rng).await,
        Err(_) => {
            CANCELS.fetch_add(1, SeqCst);
            Step::Go
        }
    }
}

async fn tokio_task(run: Arc<Run>, mut rng: Rng, fin: Sender<Sent>) {
    let iters = run.shape.iters(&mut rng);
    for _ in 0..iters {
        let n = run.request(&mut rng);
        let sem = &*run.sem;
        let step = match rng.below(12) {
            0..=2 => {
                hold_async_or_closed(&run, sem.acquire_many_async(n).await, n, "task-borrowed", &mut rng)
                    .await
            }
            3..=5 => {
                hold_async_or_closed(
                    &run,
                    Arc::clone(&run.sem).acquire_many_owned_async(n).await,
                    n,
                    "task-owned",
                    &mut rng,
                )
                .await
            }
            6 => {
                let t = Duration::from_micros(rng.range(0, 1500));
                let acquired = tokio::time::timeout(t, sem.acquire_many_async(n)).await;
                hold_async_or_timed_out(&run, acquired, n, "task-borrowed-timeout", &mut rng).await
            }
            7 => {
                let t = Duration::from_micros(rng.range(0, 1500));
                let acquired =
                    tokio::time::timeout(t, Arc::clone(&run.sem).acquire_many_owned_async(n)).await;
                hold_async_or_timed_out(&run, acquired, n, "task-owned-timeout", &mut rng).await
            }
            8 => {
                // borrowed: polled once, maybe a yield, then dropped or awaited
                let mut fut = sem.acquire_many_async(n);
                match poll_once(&mut fut).await {
                    Poll::Ready(Ok(p)) => {
                        hold_async(&run, p, n, "task-borrowed-polled", &mut rng).await;
                        Step::Go
                    }
                    Poll::Ready(Err(_)) => closed(),
                    Poll::Pending => {
                        if rng.chance(0.5) {
                            tokio::task::yield_now().await;
                        }
                        if rng.chance(0.5) {
                            drop(fut);
                            CANCELS.fetch_add(1, SeqCst);
                            Step::Go
                        } else {
                            hold_async_or_closed(&run, fut.await, n, "task-borrowed", &mut rng).await
                        }
                    }
                }
            }
            _ => {
                // owned: polled once here, then sent to the finisher thread if pending
                let mut fut = Arc::clone(&run.sem).acquire_many_owned_async(n);
                match poll_once(&mut fut).await {
                    Poll::Ready(Ok(p)) => {
                        hold_async(&run, p, n, "task-owned-polled", &mut rng).await;
                        Step::Go
                    }
                    Poll::Ready(Err(_)) => closed(),
                    Poll::Pending => {
                        if rng.chance(0.3) {
                            tokio::task::yield_now().await;
                        }
                        let _ = fin.send(Sent { fut, n, origin: "tokio" });
                        Step::Go
                    }
                }
            }
        };
        run.ops.fetch_add(1, SeqCst);
        if let Step::Closed = step {
            break;
        }
        match rng.below(4) {
            0 => tokio::task::yield_now().await,
            1 => spin(rng.range(0, 500)),
            _ => {}
        }
    }
    run.workers_done.fetch_add(1, SeqCst);
}

// ---------------------------------------------------------------------------------------------
// ThreadPool tasks: async acquires, and blocking acquires on the pool thread. A pool task never
// awaits while it holds permits (two pool threads blocked in acquire() would then wait for
// ever for a holder that cannot run: a deadlock of the program, not of the semaphore).

async fn pool_task(run: Arc<Run>, mut rng: Rng, fin: Sender<Sent>) {
    let iters = run.shape.iters(&mut rng);
    for _ in 0..iters {
        let n = run.request(&mut rng);
        let sem = &*run.sem;
        let step = match rng.below(12) {
            0..=2 => run.held_or_closed(sem.acquire_many(n), n, "pool-blocking", &mut rng),
            3 => run.held_or_try_err(
                sem.try_acquire_many_for(n, Duration::from_micros(rng.range(0, 300))),
                n,
                "pool-blocking-timed",
                &mut rng,
            ),
            4..=6 => run.held_or_closed(sem.acquire_many_async(n).await, n, "pool-task", &mut rng),
            7 | 8 => run.held_or_closed(
                Arc::clone(&run.sem).acquire_many_owned_async(n).await,
                n,
                "pool-task-owned",
                &mut rng,
            ),
            9 => {
                let mut fut = sem.acquire_many_async(n);
                match poll_once(&mut fut).await {
                    Poll::Ready(Ok(p)) => {
                        run.held(p, n, "pool-task-polled", &mut rng);
                        Step::Go
                    }
                    Poll::Ready(Err(_)) => closed(),
                    Poll::Pending => {
                        if rng.chance(0.5) {
                            YieldNow(false).await;
                        }
                        drop(fut);
                        CANCELS.fetch_add(1, SeqCst);
                        Step::Go
                    }
                }
            }
            _ => {
                let mut fut = Arc::clone(&run.sem).acquire_many_owned_async(n);
                match poll_once(&mut fut).await {
                    Poll::Ready(Ok(p)) => {
                        run.held(p, n, "pool-task-owned-polled", &mut rng);
                        Step::Go
                    }
                    Poll::Ready(Err(_)) => closed(),
                    Poll::Pending => {
                        let _ = fin.send(Sent { fut, n, origin: "pool" });
                        Step::Go
                    }
                }
            }
        };
        run.ops.fetch_add(1, SeqCst);
        if let Step::Closed = step {
            break;
        }
        match rng.below(4) {
            0 => YieldNow(false).await,
            1 => spin(rng.range(0, 500)),
            _ => {}
        }
    }
    run.workers_done.fetch_add(1, SeqCst);
}

// ---------------------------------------------------------------------------------------------
// The finisher: drops, finishes, or drops later the owned futures polled once elsewhere.

struct Held {
    fut: AcquireOwned,
    n: u32,
    kind: &'static str,
    deadline: Instant,
    poll: bool,
}

fn finisher(run: Arc<Run>, mut rng: Rng, rx: Receiver<Sent>) {
    let waker = thread_waker();
    let mut cx = Context::from_waker(&waker);
    let mut list: Vec<Held> = Vec::new();
    let mut disconnected = false;
    loop {
        let take = |s: Sent, list: &mut Vec<Held>, rng: &mut Rng| {
            XTHREAD.fetch_add(1, SeqCst);
            if rng.chance(0.35) {
                drop(s.fut); // cancelled on another thread than the one that polled it
                CANCELS.fetch_add(1, SeqCst);
            } else {
                let kind = match s.origin {
                    "thread" => "xthread-owned(from thread)",
                    "tokio" => "xthread-owned(from tokio)",
                    _ => "xthread-owned(from pool)",
                };
                let deadline = Instant::now() + Duration::from_micros(rng.range(0, 2000));
                let poll = rng.chance(0.75); // else: left unpolled until its deadline, then dropped
                list.push(Held { fut: s.fut, n: s.n, kind, deadline, poll });
            }
        };
        if list.is_empty() && !disconnected {
            match rx.recv_timeout(Duration::from_millis(1)) {
                Ok(s) => take(s, &mut list, &mut rng),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => disconnected = true,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(s) => take(s, &mut list, &mut rng),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        let now = Instant::now();
        let mut i = 0;
        while i < list.len() {
            let h = &mut list[i];
            // (finished, cancelled): a future dropped while still pending is a cancellation
            let (done, cancelled) = if h.poll {
                match Pin::new(&mut h.fut).poll(&mut cx) {
                    Poll::Ready(Ok(p)) => {
                        let (n, kind) = (h.n, h.kind);
                        run.held(p, n, kind, &mut rng);
                        (true, false)
                    }
                    Poll::Ready(Err(_)) => {
                        CLOSED_ERRS.fetch_add(1, SeqCst);
                        (true, false)
                    }
                    Poll::Pending => (now >= h.deadline, true),
                }
            } else {
                (now >= h.deadline, true)
            };
            if done {
                if cancelled {
                    CANCELS.fetch_add(1, SeqCst);
                }
                drop(list.swap_remove(i));
            } else {
                i += 1;
            }
        }
        if disconnected && list.is_empty() {
            break;
        }
        if !list.is_empty() {
            thread::park_timeout(Duration::from_micros(rng.range(10, 100)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The manager: forgets permits, later adds back what it forgot.

fn manager(run: Arc<Run>, mut rng: Rng) {
    let sem = &*run.sem;
    let permits = u64::from(run.shape.permits);
    while !run.stop_mgr.load(SeqCst) {
        if rng.chance(0.3) {
            // A permit taken, forgotten while held, and given back later by `release`.
            if let Ok(permit) = sem.try_acquire_for(Duration::from_micros(rng.range(1, 500))) {
                run.enter(1, "manager");
                run.leave(1);
                permit.forget();
                run.ledger.cap_down(1); // AFTER the permit is gone
                FORGOTTEN.fetch_add(1, SeqCst);
                spin(rng.range(0, 2000));
                run.ledger.cap_up(1); // BEFORE it comes back
                sem.release();
            }
            continue;
        }
        let k = rng.range(1, permits);
        let got = sem.forget_permits(k as usize) as u64;
        if got > 0 {
            run.ledger.cap_down(got); // AFTER the forget, by what it returned
            FORGOTTEN.fetch_add(got, SeqCst);
        }
        match rng.below(4) {
            0 => {}
            1 => spin(rng.range(0, 3000)),
            2 => thread::yield_now(),
            _ => thread::sleep(Duration::from_micros(rng.range(1, 200))),
        }
        if got > 0 {
            if got >= 2 && rng.chance(0.3) {
                // back in two pieces
                run.ledger.cap_up(1);
                sem.add_permits(1);
                spin(rng.range(0, 500));
                run.ledger.cap_up(got - 1);
                sem.add_permits((got - 1) as usize);
            } else {
                run.ledger.cap_up(got); // BEFORE the add
                sem.add_permits(got as usize);
            }
        }
        match rng.below(4) {
            0 => {}
            1 => spin(rng.range(0, 2000)),
            2 => thread::yield_now(),
            _ => thread::sleep(Duration::from_micros(rng.range(1, 300))),
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn one_run(seed: u64, forced: &Forced, verbose: bool) -> Duration {
    let start = Instant::now();
    let mut rng = Rng::new(seed);
    let shape = Shape::draw(&mut rng, forced);
    if verbose {
        println!("run seed={seed} {shape}");
    }
    let sem = Arc::new(Semaphore::new(shape.permits as usize));
    // F_SELFTEST=oversub: the ledger believes in one permit fewer than exist (must fail "oversub")
    let ledger_permits = if forced.selftest == "oversub" { shape.permits - 1 } else { shape.permits };
    let ledger = Arc::new(Ledger::new(ledger_permits, forced.gap));
    if forced.selftest == "hang" {
        sem.forget_permits(shape.permits as usize); // never added back: waiters wait until the watchdog
    }
    *CUR_SHAPE.lock().unwrap() = shape.to_string();
    *CUR_SEM.lock().unwrap() = Some(Arc::clone(&sem));
    *CUR_LEDGER.lock().unwrap() = Some(Arc::clone(&ledger));
    CUR_SEED.store(seed, SeqCst);
    RUN_START_MS.store(now_ms(), SeqCst);

    let run = Arc::new(Run {
        seed,
        shape: shape.clone(),
        sem: Arc::clone(&sem),
        ledger: Arc::clone(&ledger),
        ops: AtomicU64::new(0),
        workers_done: AtomicU64::new(0),
        stop_mgr: AtomicBool::new(false),
    });

    // Iteration counts are drawn inside the workers; for the close moment estimate the total.
    let n_workers = u64::from(shape.threads + shape.tasks + shape.pool);
    let expected_ops = n_workers * ((175.0 * shape.scale) as u64).max(1);

    let (fin_tx, fin_rx) = mpsc::channel::<Sent>();
    let fin = {
        let (run, rng) = (Arc::clone(&run), rng.fork(1));
        thread::Builder::new().name("finisher".into()).spawn(move || finisher(run, rng, fin_rx)).unwrap()
    };
    let mgr = shape.mgr.then(|| {
        let (run, rng) = (Arc::clone(&run), rng.fork(2));
        thread::Builder::new().name("manager".into()).spawn(move || manager(run, rng)).unwrap()
    });

    let pool = (shape.pool > 0).then(|| ThreadPool::builder().pool_size(2).create().expect("thread pool"));
    let mut pool_handles = Vec::new();
    if let Some(pool) = &pool {
        for i in 0..shape.pool {
            let (run, rng, tx) = (Arc::clone(&run), rng.fork(100 + u64::from(i)), fin_tx.clone());
            pool_handles.push(pool.spawn_with_handle(pool_task(run, rng, tx)).expect("spawn on pool"));
        }
    }

    let tokio_thread = (shape.tasks > 0).then(|| {
        let (run, mut rng, tx) = (Arc::clone(&run), rng.fork(3), fin_tx.clone());
        thread::Builder::new()
            .name("tokio-rt".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
                rt.block_on(async {
                    let mut hs = Vec::new();
                    for i in 0..run.shape.tasks {
                        let task_rng = rng.fork(200 + u64::from(i));
                        hs.push(tokio::spawn(tokio_task(Arc::clone(&run), task_rng, tx.clone())));
                    }
                    drop(tx);
                    for h in hs {
                        if let Err(e) = h.await {
                            fail_exit(
                                4,
                                format!(
                                    "FAIL panic seed={} tokio task: {e} shape=[{}]",
                                    run.seed,
                                    shape_str()
                                ),
                            );
                        }
                    }
                });
                drop(rt); // shut down
            })
            .unwrap()
    });

    let threads: Vec<_> = (0..shape.threads)
        .map(|i| {
            let (run, rng, tx) = (Arc::clone(&run), rng.fork(300 + u64::from(i)), fin_tx.clone());
            thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || thread_worker(run, rng, tx))
                .unwrap()
        })
        .collect();
    drop(fin_tx);

    if shape.close {
        let target = (expected_ops as f64 * shape.close_frac) as u64;
        while run.ops.load(SeqCst) < target && run.workers_done.load(SeqCst) < n_workers {
            thread::sleep(Duration::from_micros(20));
        }
        sem.close();
    }

    for t in threads {
        t.join()
            .unwrap_or_else(|_| fail_exit(4, format!("FAIL panic seed={seed} in a thread shape=[{shape}]")));
    }
    if let Some(t) = tokio_thread {
        t.join().unwrap_or_else(|_| {
            fail_exit(4, format!("FAIL panic seed={seed} in the tokio thread shape=[{shape}]"))
        });
    }
    for h in pool_handles {
        futures::executor::block_on(h);
    }
    drop(pool);
    fin.join()
        .unwrap_or_else(|_| fail_exit(4, format!("FAIL panic seed={seed} in the finisher shape=[{shape}]")));
    run.stop_mgr.store(true, SeqCst);
    if let Some(m) = mgr {
        m.join().unwrap_or_else(|_| {
            fail_exit(4, format!("FAIL panic seed={seed} in the manager shape=[{shape}]"))
        });
    }

    if forced.selftest == "leak" {
        sem.forget_permits(1); // a lost permit (must fail "conservation")
    }
    // Conservation: everything joined, everything forgotten added back.
    let available = sem.available_permits();
    let (inside, cap) = ledger.parts();
    if available != shape.permits as usize || inside != 0 || cap != u64::from(ledger_permits) {
        fail_exit(
            2,
            format!(
                "FAIL conservation seed={seed} available={available} initial={} closed={} ledger_inside={inside} \
                 ledger_cap={cap} queued={} shape=[{shape}]",
                shape.permits,
                sem.is_closed() as u8,
                sem.queued_waiters()
            ),
        );
    }
    RUN_START_MS.store(u64::MAX, SeqCst);
    *CUR_SEM.lock().unwrap() = None;
    *CUR_LEDGER.lock().unwrap() = None;
    start.elapsed()
}

fn watchdog(limit_s: u64) {
    loop {
        thread::sleep(Duration::from_millis(200));
        let started = RUN_START_MS.load(SeqCst);
        if started == u64::MAX {
            continue;
        }
        let now = now_ms();
        if now > started && now - started > limit_s * 1000 && RUN_START_MS.load(SeqCst) == started {
            let seed = CUR_SEED.load(SeqCst);
            let mut line = format!("FAIL hang seed={seed} after={limit_s}s shape=[{}]", shape_str());
            if let Ok(Some(l)) = CUR_LEDGER.try_lock().map(|g| g.clone()) {
                let (inside, cap) = l.parts();
                let _ = write!(line, " ledger_inside={inside} ledger_cap={cap}");
            }
            if let Ok(Some(s)) = CUR_SEM.try_lock().map(|g| g.clone()) {
                let _ = write!(line, " available={} closed={}", s.available_permits(), s.is_closed() as u8);
            }
            // queued_waiters() takes the queue's lock, which a hang may hold: print first.
            println!("{line}");
            eprintln!("{line}");
            std::process::exit(3);
        }
    }
}

fn main() {
    T0.get_or_init(Instant::now);
    std::panic::set_hook(Box::new(|info| {
        let seed = CUR_SEED.load(SeqCst);
        let msg = format!("{info}").replace('\n', " | ");
        fail_exit(4, format!("FAIL panic seed={seed} {msg} shape=[{}]", shape_str()));
    }));
    let first = env_u64("SEED_START").unwrap_or(1);
    let runs = env_u64("RUNS").unwrap_or(1000);
    let verbose = env_u64("VERBOSE").unwrap_or(0) != 0;
    let limit = env_u64("F_WATCHDOG").unwrap_or(20);
    let forced = Forced::from_env();
    thread::Builder::new().name("watchdog".into()).spawn(move || watchdog(limit)).unwrap();

    let t = Instant::now();
    let mut max_run = Duration::ZERO;
    let mut total_run = Duration::ZERO;
    for seed in first..first + runs {
        let d = one_run(seed, &forced, verbose);
        max_run = max_run.max(d);
        total_run += d;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "ok runs={runs} seeds={first}..{} elapsed={secs:.1}s runs_per_min={:.0} mean_run_ms={:.1} max_run_ms={:.1} \
         acquires={} cancels={} sent_xthread={} timeouts={} closed_errs={} forgotten={} naive_false_positives={}",
        first + runs - 1,
        runs as f64 * 60.0 / secs.max(1e-9),
        total_run.as_secs_f64() * 1000.0 / runs.max(1) as f64,
        max_run.as_secs_f64() * 1000.0,
        OK_ACQUIRES.load(SeqCst),
        CANCELS.load(SeqCst),
        XTHREAD.load(SeqCst),
        TIMEOUTS.load(SeqCst),
        CLOSED_ERRS.load(SeqCst),
        FORGOTTEN.load(SeqCst),
        NAIVE.load(SeqCst),
    );
}
