//! `cargo bench --bench async`: the async acquire beside tokio's and async-lock's semaphores,
//! all on one tokio multi-thread runtime (2 worker threads).
//!
//! - `async_uncontended` (criterion): one task, acquire + release.
//! - `async_contended` (criterion): T tasks on P permits; each holds its permit across a
//!   `yield_now` (so that holders are descheduled and the others really wait) plus [`HOLD`] work
//!   units, and does [`BETWEEN`] units between: throughput in acquire/release pairs per second.
//! - `async_mixed` (criterion; futex-semaphore only, since the peers have no blocking acquire that
//!   a thread may call beside tasks): the contended shape with 2 extra OS threads acquiring with
//!   the blocking `acquire` on the same semaphore.
//! - `async_herd` (timed runs, interleaved, medians): 1000 tasks, 4 permits, 20 acquires each,
//!   holding across a `yield_now` plus [`HOLD`] units; all asking for 1 permit, and half of them
//!   asking for 2 (async-lock has no `acquire_many`, so it is only in the first): the time until
//!   every task is done.
//!
//! The work unit is `common::work`, the same in every bench. `FUTEX_SEMAPHORE_BENCH_QUICK=1`
//! shortens every run. The blocking scenarios are `benches/semaphore.rs`.

#[macro_use]
mod common;

bench_main!();

/// The bench (Linux only, as every bench: see `common`).
#[cfg(all(target_os = "linux", not(loom)))]
mod bench {
    use crate::common;
    use common::async_gates::runtime;
    use common::report::{criterion_ns, median};
    use common::{Args, AsyncGate, BETWEEN, Better, HOLD, Mode, Report, Row, work};
    use criterion::measurement::WallTime;
    use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
    use std::hint::black_box;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant, SystemTime};

    /// The contended shapes: (tasks, permits).
    const SHAPES: [(usize, usize); 2] = [(8, 2), (64, 4)];

    /// Acquires per task in one criterion iteration of the contended groups.
    const OPS_PER_ITER: u64 = 50;

    /// The herd: tasks, permits, acquires per task.
    const HERD: (usize, usize, usize) = (1000, 4, 20);

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

    fn uncontended(c: &mut Criterion, mode: Mode) {
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
        let (warm_up, measurement) = mode.criterion_times(Duration::from_millis(300), Duration::from_secs(1));
        let mut group = c.benchmark_group("async_uncontended");
        group
            .warm_up_time(warm_up)
            .measurement_time(measurement)
            .sample_size(mode.pick(30, 10, 10))
            .throughput(Throughput::Elements(1));
        one::<futex_semaphore::Semaphore>(&mut group, &rt);
        one::<tokio::sync::Semaphore>(&mut group, &rt);
        one::<async_lock::Semaphore>(&mut group, &rt);
        group.finish();
    }

    fn contended(c: &mut Criterion, mode: Mode) {
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
        let (warm_up, measurement) =
            mode.criterion_times(Duration::from_millis(200), Duration::from_millis(800));
        let mut group = c.benchmark_group("async_contended");
        group.warm_up_time(warm_up).measurement_time(measurement).sample_size(10);
        for (tasks, permits) in SHAPES {
            one::<futex_semaphore::Semaphore>(&mut group, &rt, tasks, permits);
            one::<tokio::sync::Semaphore>(&mut group, &rt, tasks, permits);
            one::<async_lock::Semaphore>(&mut group, &rt, tasks, permits);
        }
        group.finish();
    }

    fn mixed(c: &mut Criterion, mode: Mode) {
        let rt = runtime();
        let (warm_up, measurement) =
            mode.criterion_times(Duration::from_millis(200), Duration::from_millis(800));
        let mut group = c.benchmark_group("async_mixed");
        group.warm_up_time(warm_up).measurement_time(measurement).sample_size(10);
        let (tasks, permits) = SHAPES[0];
        let gate = Arc::new(futex_semaphore::Semaphore::new(permits));
        group.throughput(Throughput::Elements(tasks as u64 * OPS_PER_ITER));
        group.bench_function(
            BenchmarkId::new(format!("{tasks}t-{permits}p+2threads"), "futex-semaphore"),
            |b| {
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
            },
        );
        group.finish();
    }

    pub(super) fn main() {
        let args = Args::parse();
        let started = SystemTime::now();
        let mut report = Report::new("async", args.mode);
        let mut c = Criterion::default().nresamples(10_000).configure_from_args();
        uncontended(&mut c, args.mode);
        contended(&mut c, args.mode);
        mixed(&mut c, args.mode);
        c.final_summary();
        let mut names = Vec::new();
        for_each_async_gate!(G => { names.push(G::NAME); });
        for name in &names {
            if let Some(ns) = criterion_ns("async_uncontended", "acquire_release", name, started) {
                report.add(Row::new("async uncontended acquire+release", name, ns, "ns", Better::Lower));
            }
            for (tasks, permits) in SHAPES {
                let id = format!("{tasks}t-{permits}p");
                if let Some(ns) = criterion_ns("async_contended", &id, name, started) {
                    let mops = (tasks as u64 * OPS_PER_ITER) as f64 / ns * 1e3;
                    report.add(Row::new(
                        format!("async contended {id}"),
                        name,
                        mops,
                        "Mpairs/s",
                        Better::Higher,
                    ));
                }
            }
        }
        if args.selected("async_herd") {
            herd(&args, &mut report);
        }
        report.finish();
    }

    /// The herd: `tasks` tasks on `permits` permits, `acquires` each, every other task asking for 2
    /// permits when `half_two`; the time until all are done.
    async fn herd_once<G: AsyncGate>(
        tasks: usize,
        permits: usize,
        acquires: usize,
        half_two: bool,
    ) -> Duration {
        let gate = Arc::new(G::new(permits));
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let gate = Arc::clone(&gate);
                tokio::spawn(async move {
                    for _ in 0..acquires {
                        let permit = if half_two && i % 2 == 0 {
                            gate.acquire_many(2).await
                        } else {
                            gate.acquire().await
                        };
                        tokio::task::yield_now().await;
                        work(HOLD);
                        drop(black_box(permit));
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("a herd task panicked");
        }
        start.elapsed()
    }

    type HerdRun<'a> = (&'static str, bool, Box<dyn Fn() -> Duration + 'a>);

    fn herd(args: &Args, report: &mut Report) {
        let rt = runtime();
        let rt = &rt;
        let (tasks, permits, acquires) = HERD;
        let tasks = args.mode.pick(tasks, tasks, 50);
        let rounds = args.mode.pick(5, 3, 1);
        let mut runs: Vec<HerdRun<'_>> = Vec::new();
        for half_two in [false, true] {
            for_each_async_gate!(G => {
                if G::MANY || !half_two {
                    runs.push((G::NAME, half_two, Box::new(move || {
                        rt.block_on(herd_once::<G>(tasks, permits, acquires, half_two))
                    })));
                }
            });
        }
        // Interleaved: round r of every implementation and shape before round r + 1 of any.
        let mut times: Vec<Vec<f64>> = runs.iter().map(|_| Vec::new()).collect();
        for _ in 0..rounds {
            for ((_, _, run), out) in runs.iter().zip(&mut times) {
                out.push(run().as_secs_f64() * 1e3);
            }
        }
        println!(
        "
async_herd: {tasks} tasks on a 2-worker tokio runtime, {permits} permits, {acquires} acquires each;          time until all are done (ms), median of {rounds} interleaved runs"
    );
        for ((name, half_two, _), mut times) in runs.iter().zip(times) {
            let (lo, hi) =
                (times.iter().copied().fold(f64::MAX, f64::min), times.iter().copied().fold(0.0, f64::max));
            let med = median(&mut times);
            let shape = if *half_two { "half ask for 2" } else { "all ask for 1" };
            println!("  {shape:<15} {name:<16} {med:>9.2}  ({lo:.2}-{hi:.2})");
            report.add(
                Row::new(format!("async herd {tasks}t-{permits}p, {shape}"), name, med, "ms", Better::Lower)
                    .note(format!("range {lo:.2}-{hi:.2} ms")),
            );
        }
    }
}
