//! `cargo bench`: futex-semaphore beside its peers, one criterion group per scenario.
//!
//! Every scenario runs the same code over each implementation behind the [`Gate`] trait in
//! `common/mod.rs` (futex-semaphore, std and parking_lot `Mutex` + `Condvar`, glibc `sem_t`,
//! tokio, async-lock, and on one thread the two-atomic floor):
//!
//! - `uncontended`: acquire + release, and try_acquire + release, on one thread.
//! - `contended`: T threads on P permits, each holding a permit for [`HOLD`] work units and doing
//!   [`BETWEEN`] units between: throughput in acquire/release pairs per second.
//! - `handoff`: two threads pass a token through two semaphores that start empty: round-trip time;
//!   `round_trip_one_cpu` pins both threads to one CPU, as when the other cores are busy.
//! - `wait_tail`: 4 threads, 1 permit, short hold, asking again at once. Criterion times the run;
//!   a fixed run per implementation then measures each wait from calling `acquire` to holding the
//!   permit, prints p50/p90/p99/p99.9/max and writes them to
//!   `target/criterion/wait_tail/latency.{json,csv}` for `examples/bench_chart.rs`.
//!
//! The system-call counts are `benches/syscalls.rs`. Results: `docs/benchmarks.md`.

#[macro_use]
mod common;

use common::{BETWEEN, Floor, Gate, HOLD};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::fmt::Write as _;
use std::time::Duration;

/// The contended shapes: (threads, permits).
const SHAPES: [(usize, usize); 3] = [(2, 1), (8, 2), (32, 4)];

/// Acquires per thread in one criterion iteration of the threaded groups: enough that even the
/// first warm-up iteration runs long enough to reach the steady state (a lock convoy, say), so
/// that criterion's estimate of the run time holds.
const OPS_PER_ITER: u64 = 100;

/// The wait-tail shape and the size of its fixed run.
const TAIL_THREADS: usize = 4;
const TAIL_ACQUIRES_PER_THREAD: usize = 25_000;

fn uncontended(c: &mut Criterion) {
    fn one<G: Gate>(group: &mut BenchmarkGroup<'_, WallTime>) {
        let gate = G::new(1);
        group.bench_function(BenchmarkId::new("acquire_release", G::NAME), |b| {
            b.iter(|| {
                let _permit = std::hint::black_box(&gate).acquire();
            })
        });
        group.bench_function(BenchmarkId::new("try_acquire_release", G::NAME), |b| {
            b.iter(|| {
                let permit = std::hint::black_box(&gate).try_acquire();
                assert!(permit.is_some(), "{}: try_acquire failed on one thread", G::NAME);
            })
        });
    }

    let mut group = c.benchmark_group("uncontended");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(800))
        .sample_size(30)
        .throughput(Throughput::Elements(1));
    one::<Floor>(&mut group);
    for_each_gate!(G => { one::<G>(&mut group); });
    group.finish();
}

fn contended(c: &mut Criterion) {
    fn one<G: Gate>(group: &mut BenchmarkGroup<'_, WallTime>, threads: usize, permits: usize) {
        common::check_gate::<G>(threads, permits);
        let gate = G::new(permits);
        let id = BenchmarkId::new(format!("{threads}t-{permits}p"), G::NAME);
        // One iteration: every thread takes and gives back OPS_PER_ITER permits.
        group.throughput(Throughput::Elements(threads as u64 * OPS_PER_ITER));
        group.bench_function(id, |b| {
            b.iter_custom(|iters| common::contend(&gate, threads, iters * OPS_PER_ITER))
        });
    }

    let mut group = c.benchmark_group("contended");
    group
        .warm_up_time(Duration::from_millis(400))
        .measurement_time(Duration::from_millis(1200))
        .sample_size(10);
    for (threads, permits) in SHAPES {
        for_each_gate!(G => { one::<G>(&mut group, threads, permits); });
    }
    group.finish();
}

fn handoff(c: &mut Criterion) {
    fn one<G: Gate>(group: &mut BenchmarkGroup<'_, WallTime>, one_cpu: bool) {
        let (ping, pong) = (G::new(0), G::new(0));
        let function = if one_cpu { "round_trip_one_cpu" } else { "round_trip" };
        group.bench_function(BenchmarkId::new(function, G::NAME), |b| {
            b.iter_custom(|iters| common::handoff(&ping, &pong, iters, one_cpu))
        });
    }

    let mut group = c.benchmark_group("handoff");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1000))
        .sample_size(10)
        .throughput(Throughput::Elements(1));
    for one_cpu in [false, true] {
        for_each_gate!(G => { one::<G>(&mut group, one_cpu); });
    }
    group.finish();
}

/// Percentiles of one implementation's waits, in nanoseconds.
struct Tail {
    name: &'static str,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
    wall: Duration,
}

impl Tail {
    fn new(name: &'static str, mut waits: Vec<u64>, wall: Duration) -> Tail {
        waits.sort_unstable();
        let at = |q: f64| waits[((waits.len() - 1) as f64 * q).round() as usize];
        Tail {
            name,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: *waits.last().unwrap(),
            mean: waits.iter().sum::<u64>() as f64 / waits.len() as f64,
            wall,
        }
    }
}

fn wait_tail(c: &mut Criterion) {
    fn one<G: Gate>(group: &mut BenchmarkGroup<'_, WallTime>, tails: &mut Vec<Tail>) {
        let gate = G::new(1);
        let mut measured = false;
        group.bench_function(BenchmarkId::new(format!("{TAIL_THREADS}t-1p"), G::NAME), |b| {
            // Criterion calls this for the warm-up and the samples; the fixed run is made once,
            // and only when criterion selected this benchmark.
            if !measured {
                measured = true;
                let (waits, wall) = common::wait_times(&gate, TAIL_THREADS, TAIL_ACQUIRES_PER_THREAD);
                tails.push(Tail::new(G::NAME, waits, wall));
            }
            b.iter_custom(|iters| common::wait_times(&gate, TAIL_THREADS, (iters * OPS_PER_ITER) as usize).1)
        });
    }

    let mut group = c.benchmark_group("wait_tail");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200))
        .sample_size(10)
        .throughput(Throughput::Elements(TAIL_THREADS as u64 * OPS_PER_ITER));
    let mut tails = Vec::new();
    for_each_gate!(G => { one::<G>(&mut group, &mut tails); });
    group.finish();
    if !tails.is_empty() {
        report_tails(&tails);
    }
}

/// Prints the wait-tail table and writes it as JSON and CSV beside criterion's reports.
fn report_tails(tails: &[Tail]) {
    let us = |ns: u64| ns as f64 / 1000.0;
    let mut table = format!(
        "\nwait_tail: {TAIL_THREADS} threads, 1 permit, hold {HOLD} work units, {TAIL_ACQUIRES_PER_THREAD} \
         acquires per thread; time from calling acquire to holding the permit (µs)\n\
         {:<16} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9}\n",
        "implementation", "p50", "p90", "p99", "p99.9", "max", "mean", "run ms"
    );
    let mut csv = String::from("name,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,mean_ns,wall_ms\n");
    let mut rows = Vec::new();
    for t in tails {
        let _ = writeln!(
            table,
            "{:<16} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.1} {:>9.2} {:>9.1}",
            t.name,
            us(t.p50),
            us(t.p90),
            us(t.p99),
            us(t.p999),
            us(t.max),
            t.mean / 1000.0,
            t.wall.as_secs_f64() * 1e3
        );
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{:.1},{:.3}",
            t.name,
            t.p50,
            t.p90,
            t.p99,
            t.p999,
            t.max,
            t.mean,
            t.wall.as_secs_f64() * 1e3
        );
        rows.push(serde_json::json!({
            "name": t.name, "p50_ns": t.p50, "p90_ns": t.p90, "p99_ns": t.p99, "p999_ns": t.p999,
            "max_ns": t.max, "mean_ns": t.mean, "wall_ms": t.wall.as_secs_f64() * 1e3,
        }));
    }
    println!("{table}");
    let json = serde_json::json!({
        "threads": TAIL_THREADS,
        "permits": 1,
        "acquires_per_thread": TAIL_ACQUIRES_PER_THREAD,
        "hold_units": HOLD,
        "results": rows,
    });
    let dir = common::criterion_dir().join("wait_tail");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("latency.csv"), csv))
        .and_then(|()| std::fs::write(dir.join("latency.json"), format!("{json:#}\n")));
    match written {
        Ok(()) => println!("wait_tail: wrote {}/latency.{{json,csv}}", dir.display()),
        Err(e) => eprintln!("wait_tail: could not write {}: {e}", dir.display()),
    }
}

fn work_units(_: &mut Criterion) {
    println!(
        "\nwork unit: {:.2} ns (contended: hold {HOLD} units, {BETWEEN} between; wait_tail: hold {HOLD})\n",
        common::work_unit_ns()
    );
}

/// Criterion's defaults but 10,000 bootstrap resamples instead of 100,000: the analysis of each
/// benchmark then takes a fraction of a second instead of three, which keeps the whole suite
/// within five minutes on two cores. Each group sets its own warm-up, measurement and samples.
fn config() -> Criterion {
    Criterion::default().nresamples(10_000)
}

criterion_group! {
    name = benches;
    config = config();
    targets = work_units, uncontended, contended, handoff, wait_tail
}
criterion_main!(benches);
