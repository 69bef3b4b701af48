//! `cargo bench --bench async`: the async acquire beside tokio's and async-lock's semaphores,
//! all on one tokio multi-thread runtime (2 worker threads), one criterion group per scenario.
//!
//! - `async_uncontended`: one task, acquire + release.
//! - `async_contended`: T tasks on P permits; each holds its permit across a `yield_now` (so that
//!   holders are descheduled and the others really wait) plus [`HOLD`] work units, and does
//!   [`BETWEEN`] units between: throughput in acquire/release pairs per second.
//! - `async_mixed` (futex-semaphore only, since the peers have no blocking acquire that a thread
//!   may call beside tasks): the contended shape with 2 extra OS threads acquiring with the
//!   blocking `acquire` on the same semaphore.
//!
//! Every figure has its peers beside it; the blocking scenarios are `benches/semaphore.rs`.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Work units (spin hints) done while holding a permit, and between two acquires.
const HOLD: u32 = 20;
const BETWEEN: u32 = 20;

/// The contended shapes: (tasks, permits).
const SHAPES: [(usize, usize); 2] = [(8, 2), (64, 4)];

/// Acquires per task in one criterion iteration of the contended groups.
const OPS_PER_ITER: u64 = 50;

/// An async counting semaphore as these benchmarks see it.
trait AsyncGate: Send + Sync + 'static {
    const NAME: &'static str;
    type Permit<'a>: Send
    where
        Self: 'a;
    fn new(permits: usize) -> Self;
    fn acquire(&self) -> impl Future<Output = Self::Permit<'_>> + Send;
}

impl AsyncGate for futex_semaphore::Semaphore {
    const NAME: &'static str = "futex-semaphore";
    type Permit<'a> = futex_semaphore::Permit<'a>;
    fn new(permits: usize) -> Self {
        futex_semaphore::Semaphore::new(permits)
    }
    async fn acquire(&self) -> Self::Permit<'_> {
        self.acquire_async().await.unwrap()
    }
}

impl AsyncGate for tokio::sync::Semaphore {
    const NAME: &'static str = "tokio";
    type Permit<'a> = tokio::sync::SemaphorePermit<'a>;
    fn new(permits: usize) -> Self {
        tokio::sync::Semaphore::new(permits)
    }
    async fn acquire(&self) -> Self::Permit<'_> {
        tokio::sync::Semaphore::acquire(self).await.unwrap()
    }
}

impl AsyncGate for async_lock::Semaphore {
    const NAME: &'static str = "async-lock";
    type Permit<'a> = async_lock::SemaphoreGuard<'a>;
    fn new(permits: usize) -> Self {
        async_lock::Semaphore::new(permits)
    }
    async fn acquire(&self) -> Self::Permit<'_> {
        async_lock::Semaphore::acquire(self).await
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("tokio runtime")
}

fn work(units: u32) {
    for _ in 0..units {
        std::hint::spin_loop();
    }
}

/// `tasks` tasks on `gate`, each taking and giving back `ops` permits; returns the elapsed time.
async fn contend<G: AsyncGate>(gate: &Arc<G>, tasks: usize, ops: u64) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let gate = Arc::clone(gate);
            tokio::spawn(async move {
                for _ in 0..ops {
                    let permit = gate.acquire().await;
                    tokio::task::yield_now().await;
                    work(HOLD);
                    drop(black_box(permit));
                    work(BETWEEN);
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("benchmark task panicked");
    }
    start.elapsed()
}

fn uncontended(c: &mut Criterion) {
    fn one<G: AsyncGate>(group: &mut BenchmarkGroup<'_, WallTime>, rt: &tokio::runtime::Runtime) {
        let gate = G::new(1);
        group.bench_function(BenchmarkId::new("acquire_release", G::NAME), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        drop(black_box(&gate).acquire().await);
                    }
                    start.elapsed()
                })
            })
        });
    }

    let rt = runtime();
    let mut group = c.benchmark_group("async_uncontended");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .throughput(Throughput::Elements(1));
    one::<futex_semaphore::Semaphore>(&mut group, &rt);
    one::<tokio::sync::Semaphore>(&mut group, &rt);
    one::<async_lock::Semaphore>(&mut group, &rt);
    group.finish();
}

fn contended(c: &mut Criterion) {
    fn one<G: AsyncGate>(
        group: &mut BenchmarkGroup<'_, WallTime>,
        rt: &tokio::runtime::Runtime,
        tasks: usize,
        permits: usize,
    ) {
        let gate = Arc::new(G::new(permits));
        group.throughput(Throughput::Elements(tasks as u64 * OPS_PER_ITER));
        group.bench_function(BenchmarkId::new(format!("{tasks}t-{permits}p"), G::NAME), |b| {
            b.iter_custom(|iters| rt.block_on(contend(&gate, tasks, iters * OPS_PER_ITER)))
        });
    }

    let rt = runtime();
    let mut group = c.benchmark_group("async_contended");
    group
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(800))
        .sample_size(10);
    for (tasks, permits) in SHAPES {
        one::<futex_semaphore::Semaphore>(&mut group, &rt, tasks, permits);
        one::<tokio::sync::Semaphore>(&mut group, &rt, tasks, permits);
        one::<async_lock::Semaphore>(&mut group, &rt, tasks, permits);
    }
    group.finish();
}

fn mixed(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("async_mixed");
    group
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(800))
        .sample_size(10);
    let (tasks, permits) = SHAPES[0];
    let gate = Arc::new(futex_semaphore::Semaphore::new(permits));
    group.throughput(Throughput::Elements(tasks as u64 * OPS_PER_ITER));
    group.bench_function(BenchmarkId::new(format!("{tasks}t-{permits}p+2threads"), "futex-semaphore"), |b| {
        // Two threads keep acquiring with the blocking API for as long as the tasks run; the
        // figure counts the tasks' acquires only.
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                let (gate, stop) = (&gate, &stop);
                s.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let permit = gate.acquire().unwrap();
                        work(HOLD);
                        drop(permit);
                        work(BETWEEN);
                    }
                });
            }
            b.iter_custom(|iters| rt.block_on(contend(&gate, tasks, iters * OPS_PER_ITER)));
            stop.store(true, Ordering::Relaxed);
        });
    });
    group.finish();
}

criterion_group!(benches, uncontended, contended, mixed);
criterion_main!(benches);
