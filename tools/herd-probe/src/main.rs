//! herd-probe: the async herd of `benches/async.rs` (`async_herd`) alone, for profiling: 1000 tasks
//! on a 2-worker tokio runtime share 4 permits, 20 acquires each, each holding its permit across a
//! `yield_now` and 20 work units; every other task asks for 2 permits with `2` as the third
//! argument. This semaphore (`a`), tokio's (`b`) and, where all ask for 1, async-lock's (`c`: it
//! has no `acquire_many`) run in turns, round by round; it prints the medians (ms) and each
//! peer's time over ours (above 1: ours is faster).
//!
//! `cargo run --release -p herd-probe -- [a|b|c|ab|abc] [ROUNDS] [1|2]`; under `/usr/bin/time -f
//! %w` (voluntary context switches), `perf stat -e task-clock` (CPU time, and so how much of the
//! herd a worker sat parked) or `perf record` with one side alone.
//!
//! With `HERD_STATS=1` it also counts, for each side, per herd: how often a tokio worker parked
//! (found nothing to run), the process's voluntary context switches (and how many of them were
//! the crate's timer thread's, from `/proc/self/task`), polls per acquire and the
//! share of acquires ready at their first poll (barged), and, at each park, how many tasks held
//! permits (past their acquire, before their release): 4 means the parked worker's peer had every
//! holder. The counters are shared atomics, so they slow both sides; compare times without them.
//!
//! `HERD_WORKERS=N` runs the runtime with `N` workers instead of 2. `HERD_JOIN=last` ends a herd
//! when its last task says so (one wake of the thread that waits) instead of joining its tasks in
//! the order they were spawned, which wakes that thread once for each task still running when it
//! comes to it: more often where tasks finish out of that order (barging) than in FIFO order.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// `HERD_JOIN=last`: the herd waits for [`LEFT`] to say that its last task is done.
static JOIN_LAST: AtomicBool = AtomicBool::new(false);
/// The herd's tasks still running, and the notice the last one gives.
static LEFT: (AtomicU64, tokio::sync::Notify) = (AtomicU64::new(0), tokio::sync::Notify::const_new());

/// `HERD_STATS` was set: count (below) while a herd runs.
static STATS: AtomicBool = AtomicBool::new(false);
/// A herd is running: parks count.
static IN_HERD: AtomicBool = AtomicBool::new(false);
static PARKS: AtomicU64 = AtomicU64::new(0);
static POLLS: AtomicU64 = AtomicU64::new(0);
static FIRST_POLL_READY: AtomicU64 = AtomicU64::new(0);
static ACQUIRES: AtomicU64 = AtomicU64::new(0);
/// Tasks past their acquire and before their release, now.
static HOLDERS: AtomicU64 = AtomicU64::new(0);
/// Parks by how many tasks held permits at the time (0, 1, 2, 3, 4 or more).
static PARKED_WITH_HOLDERS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// A worker is about to park (the runtime's `on_thread_park`).
fn parked() {
    if IN_HERD.load(Relaxed) {
        PARKS.fetch_add(1, Relaxed);
        let holders = usize::try_from(HOLDERS.load(Relaxed)).unwrap_or(usize::MAX).min(4);
        PARKED_WITH_HOLDERS[holders].fetch_add(1, Relaxed);
    }
}

/// `acquire`, counting its polls when `HERD_STATS` is set.
async fn counted<F: Future>(acquire: F) -> F::Output {
    if !STATS.load(Relaxed) {
        return acquire.await;
    }
    let mut acquire = std::pin::pin!(acquire);
    let mut polls = 0;
    let out = std::future::poll_fn(|cx| {
        polls += 1;
        acquire.as_mut().poll(cx)
    })
    .await;
    POLLS.fetch_add(polls, Relaxed);
    ACQUIRES.fetch_add(1, Relaxed);
    FIRST_POLL_READY.fetch_add(u64::from(polls == 1), Relaxed);
    HOLDERS.fetch_add(1, Relaxed);
    out
}

/// Voluntary context switches of the process so far (`getrusage`), or 0 where it fails.
fn voluntary_switches() -> i64 {
    // SAFETY: `getrusage` writes the struct it is given; zeroed is a valid `rusage`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a `rusage` for the call's duration.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    usage.ru_nvcsw
}

/// Voluntary context switches so far of the crate's timer thread (`futex-sem-timer`, which
/// wakes tasks held back by a reservation at its lapse), from `/proc`; 0 where it has not
/// started or `/proc` says nothing.
fn timer_switches() -> i64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            (comm.trim_end() == "futex-sem-timer")
                .then(|| std::fs::read_to_string(path.join("status")).ok())?
        })
        .flat_map(|status| {
            let line = status.lines().find(|l| l.starts_with("voluntary_ctxt_switches:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<i64>().ok()
        })
        .sum()
}

/// What the counters say for one side, summed over its herds.
#[derive(Default)]
struct Counts {
    herds: u64,
    parks: u64,
    switches: i64,
    timer_switches: i64,
    polls: u64,
    first_poll_ready: u64,
    acquires: u64,
    parked_with_holders: [u64; 5],
}

impl Counts {
    /// Runs `herd` and adds what the counters saw during it.
    fn add(&mut self, herd: impl FnOnce() -> f64) -> f64 {
        for c in [&PARKS, &POLLS, &FIRST_POLL_READY, &ACQUIRES, &HOLDERS] {
            c.store(0, Relaxed);
        }
        let held_before = PARKED_WITH_HOLDERS.each_ref().map(|c| c.load(Relaxed));
        let (switches, timer) = (voluntary_switches(), timer_switches());
        IN_HERD.store(true, Relaxed);
        let ms = herd();
        IN_HERD.store(false, Relaxed);
        self.herds += 1;
        self.switches += voluntary_switches() - switches;
        self.timer_switches += timer_switches() - timer;
        self.parks += PARKS.load(Relaxed);
        self.polls += POLLS.load(Relaxed);
        self.first_poll_ready += FIRST_POLL_READY.load(Relaxed);
        self.acquires += ACQUIRES.load(Relaxed);
        for (sum, (c, before)) in
            self.parked_with_holders.iter_mut().zip(PARKED_WITH_HOLDERS.iter().zip(held_before))
        {
            *sum += c.load(Relaxed) - before;
        }
        ms
    }

    fn print(&self, name: &str) {
        if self.herds == 0 {
            return;
        }
        let per_herd = |x: f64| x / self.herds as f64;
        println!(
            "  {name}: per herd {:.0} parks, {:.0} voluntary context switches ({:.0} of the crate's timer \
             thread); {:.2} polls per acquire, {:.1} % ready at the first poll; parks with 0/1/2/3/4+ \
             holders: {:?}",
            per_herd(self.parks as f64),
            per_herd(self.switches as f64),
            per_herd(self.timer_switches as f64),
            self.polls as f64 / self.acquires.max(1) as f64,
            100.0 * self.first_poll_ready as f64 / self.acquires.max(1) as f64,
            self.parked_with_holders,
        );
    }
}

/// The bench's work unit (`benches/common/workloads.rs`).
fn work(units: u32) {
    let mut x = 1u64;
    for i in 0..units {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(u64::from(i)));
    }
    black_box(x);
}

/// One herd on `sem`, whose tasks take permits with `acquire` (its `bool`: whether that task asks
/// for 2).
async fn herd<S, P, F>(sem: Arc<S>, half_two: bool, acquire: fn(Arc<S>, bool) -> F) -> Duration
where
    S: Send + Sync + 'static,
    P: Send + 'static,
    F: Future<Output = P> + Send + 'static,
{
    const TASKS: u64 = 1000;
    LEFT.0.store(TASKS, Relaxed);
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let sem = Arc::clone(&sem);
            tokio::spawn(async move {
                for _ in 0..20 {
                    let permit = counted(acquire(Arc::clone(&sem), half_two && i % 2 == 0)).await;
                    tokio::task::yield_now().await;
                    work(20);
                    if STATS.load(Relaxed) {
                        HOLDERS.fetch_sub(1, Relaxed);
                    }
                    drop(black_box(permit));
                }
                if LEFT.0.fetch_sub(1, Relaxed) == 1 {
                    LEFT.1.notify_one(); // kept for `notified` if it comes first
                }
            })
        })
        .collect();
    if JOIN_LAST.load(Relaxed) {
        LEFT.1.notified().await;
    }
    for task in tasks {
        task.await.expect("a herd task panicked");
    }
    start.elapsed()
}

async fn ours(sem: Arc<futex_semaphore::Semaphore>, many: bool) -> futex_semaphore::OwnedPermit {
    sem.acquire_many_owned_async(if many { 2 } else { 1 }).await.expect("never closed")
}

async fn tokios(sem: Arc<tokio::sync::Semaphore>, many: bool) -> tokio::sync::OwnedSemaphorePermit {
    sem.acquire_many_owned(if many { 2 } else { 1 }).await.expect("never closed")
}

/// async-lock's semaphore has no `acquire_many`: it runs only the shape where all ask for 1.
async fn async_locks(sem: Arc<async_lock::Semaphore>, _many: bool) -> async_lock::SemaphoreGuardArc {
    sem.acquire_arc().await
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map_or("ab", String::as_str);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(11);
    let half_two = args.get(3).is_some_and(|s| s == "2");
    let stats = std::env::var_os("HERD_STATS").is_some_and(|v| v == "1");
    STATS.store(stats, Relaxed);
    JOIN_LAST.store(std::env::var_os("HERD_JOIN").is_some_and(|v| v == "last"), Relaxed);
    let workers = std::env::var("HERD_WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .on_thread_park(parked)
        .build()
        .expect("runtime");
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let (mut counts_a, mut counts_b, mut counts_c) =
        (Counts::default(), Counts::default(), Counts::default());
    let with_async_lock = which.contains('c') && !half_two;
    if which.contains('c') && half_two {
        println!("async-lock has no acquire_many: it runs only where all ask for 1");
    }
    for _ in 0..rounds {
        if which.contains('a') {
            let sem = Arc::new(futex_semaphore::Semaphore::new(4));
            a.push(counts_a.add(|| rt.block_on(herd(sem, half_two, ours)).as_secs_f64() * 1e3));
        }
        if which.contains('b') {
            let sem = Arc::new(tokio::sync::Semaphore::new(4));
            b.push(counts_b.add(|| rt.block_on(herd(sem, half_two, tokios)).as_secs_f64() * 1e3));
        }
        if with_async_lock {
            let sem = Arc::new(async_lock::Semaphore::new(4));
            c.push(counts_c.add(|| rt.block_on(herd(sem, false, async_locks)).as_secs_f64() * 1e3));
        }
    }
    let (a, b) = (median(a), median(b));
    let shape = if half_two { "half ask for 2" } else { "all ask for 1" };
    println!("{shape}: futex-semaphore {a:.2} ms, tokio {b:.2} ms, tokio's time over ours {:.2}", b / a);
    if with_async_lock {
        let c = median(c);
        println!("  async-lock {c:.2} ms, its time over ours {:.2}", c / a);
    }
    if stats {
        counts_a.print("futex-semaphore");
        counts_b.print("tokio");
        counts_c.print("async-lock");
    }
}
