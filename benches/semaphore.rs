//! `cargo bench --bench semaphore`: futex-semaphore beside its peers on threads.
//!
//! Every scenario runs the same code over each implementation behind the [`Gate`] trait in
//! `common/gates.rs` (futex-semaphore, std and parking_lot `Mutex` + `Condvar`, glibc `sem_t`,
//! tokio, async-lock; the floor and the spinning gate as references):
//!
//! - `uncontended` (criterion): acquire + release, and try_acquire + release, on one thread.
//! - `handoff` (criterion): two threads pass a token through two semaphores that start empty:
//!   round-trip time, with the spinning gate beside them; `round_trip_one_cpu` pins both threads
//!   to one CPU, as when the other cores are busy.
//! - `contended` (timed runs, interleaved, medians): T threads on P permits (2/1, 8/2, 32/4,
//!   64/8), each holding a permit for `inside` work units and doing `outside` between, for a fixed
//!   time: throughput, voluntary context switches per acquire (`getrusage`), and the slowest and
//!   fastest thread's share of the pairs; the spinning gate too where every thread has a core
//!   (2/1 on two cores).
//! - `wait_tail` (fixed runs): every wait from calling `acquire` to holding the permit, for 4
//!   threads on 1 permit, 4 threads on 2 permits with two of them asking for 2, and 4 async tasks
//!   on 1 permit; p50 to p99.9 and max. The first is also written to
//!   `target/criterion/wait_tail/latency.{json,csv}` for `tools/bench-report`.
//!
//! `FUTEX_SEMAPHORE_BENCH_QUICK=1` shortens every run. The system-call counts are
//! `benches/syscalls.rs`; the fairness scenarios `benches/fairness.rs`. Results and method:
//! `docs/benchmarks.md`.

#[macro_use]
mod common;

bench_main!();

/// The bench (Linux only, as every bench: see `common`).
#[cfg(all(target_os = "linux", not(loom)))]
mod bench {
    use crate::common;
    use common::report::{criterion_ns, median, quantile};
    use common::workloads::{Padded, TimedRun, check_gate, contend_for, wait_times, wait_times_with};
    use common::{Args, BETWEEN, Better, Floor, Gate, HOLD, ManyGate, Mode, Report, Row, SpinGate};
    use criterion::measurement::WallTime;
    use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
    use std::fmt::Write as _;
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    /// The contended shapes: (threads, permits, work units inside, work units outside).
    const SHAPES: [(usize, usize, u32, u32); 4] =
        [(2, 1, 50, 50), (8, 2, 200, 200), (32, 4, 500, 100), (64, 8, 500, 100)];

    /// The wait-tail shape: threads (or tasks) asking again at once after a hold of [`HOLD`] units.
    const TAIL_THREADS: usize = 4;

    pub(super) fn main() {
        let args = Args::parse();
        let started = SystemTime::now();
        let mut report = Report::new("semaphore", args.mode);
        println!(
            "\nwork unit: {:.2} ns (contended: the shape's inside/outside units; wait_tail: hold {HOLD}; \
         {BETWEEN} between in the syscall counts)\n",
            common::workloads::work_unit_ns()
        );
        // Criterion's defaults but 10,000 bootstrap resamples instead of 100,000: the analysis of each
        // benchmark then takes a fraction of a second instead of three.
        let mut c = Criterion::default().nresamples(10_000).configure_from_args();
        uncontended(&mut c, args.mode);
        handoff(&mut c, args.mode);
        c.final_summary();
        record_criterion(&mut report, started);
        contended(&args, &mut report);
        wait_tail(&args, &mut report);
        report.finish();
    }

    fn uncontended(c: &mut Criterion, mode: Mode) {
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

        let (warm_up, measurement) =
            mode.criterion_times(Duration::from_millis(300), Duration::from_millis(800));
        let mut group = c.benchmark_group("uncontended");
        group
            .warm_up_time(warm_up)
            .measurement_time(measurement)
            .sample_size(mode.pick(30, 10, 10))
            .throughput(Throughput::Elements(1));
        one::<Floor>(&mut group);
        for_each_gate!(G => { one::<G>(&mut group); });
        group.finish();
    }

    fn handoff(c: &mut Criterion, mode: Mode) {
        fn one<G: Gate>(group: &mut BenchmarkGroup<'_, WallTime>, one_cpu: bool) {
            // Each on lines of its own, as every gate is measured (`Padded`): side by side, two small
            // gates would share a line and two large ones not.
            let (ping, pong) = (Padded(G::new(0)), Padded(G::new(0)));
            let function = if one_cpu { "round_trip_one_cpu" } else { "round_trip" };
            group.bench_function(BenchmarkId::new(function, G::NAME), |b| {
                b.iter_custom(|iters| common::workloads::handoff(&ping.0, &pong.0, iters, one_cpu))
            });
        }

        let (warm_up, measurement) =
            mode.criterion_times(Duration::from_millis(300), Duration::from_millis(1000));
        let mut group = c.benchmark_group("handoff");
        group
            .warm_up_time(warm_up)
            .measurement_time(measurement)
            .sample_size(10)
            .throughput(Throughput::Elements(1));
        for one_cpu in [false, true] {
            for_each_gate!(G => { one::<G>(&mut group, one_cpu); });
            one::<SpinGate>(&mut group, one_cpu);
        }
        group.finish();
    }

    /// The criterion figures, read back from criterion's estimates, for the summary.
    fn record_criterion(report: &mut Report, since: SystemTime) {
        let mut names = vec![Floor::NAME, SpinGate::NAME];
        for_each_gate!(G => { names.push(G::NAME); });
        for (group, function, scenario, unit, scale) in [
            ("uncontended", "acquire_release", "uncontended acquire+release", "ns", 1.0),
            ("uncontended", "try_acquire_release", "uncontended try_acquire+release", "ns", 1.0),
            ("handoff", "round_trip", "handoff round trip, 2 CPUs", "us", 1e-3),
            ("handoff", "round_trip_one_cpu", "handoff round trip, 1 CPU", "us", 1e-3),
        ] {
            for name in &names {
                if let Some(ns) = criterion_ns(group, function, name, since) {
                    report.add(Row::new(scenario, name, ns * scale, unit, Better::Lower));
                }
            }
        }
    }

    /// One implementation's timed contended run on a fresh gate.
    fn contend_fresh<G: Gate>(
        threads: usize,
        permits: usize,
        inside: u32,
        outside: u32,
        time: Duration,
    ) -> TimedRun {
        contend_for(&Padded(G::new(permits)).0, threads, inside, outside, time)
    }

    type ContendFn = fn(usize, usize, u32, u32, Duration) -> TimedRun;

    fn contended(args: &Args, report: &mut Report) {
        let mut gates: Vec<(&'static str, ContendFn)> = Vec::new();
        for_each_gate!(G => { gates.push((G::NAME, contend_fresh::<G>)); });
        gates.push((Floor::NAME, contend_fresh::<Floor>));
        // The spinning gate only where every thread has a core: with more threads than cores its
        // spinners would burn the holders' time slices.
        let spin: (&'static str, ContendFn) = (SpinGate::NAME, contend_fresh::<SpinGate>);
        let rounds = args.mode.pick(5, 3, 1);
        let time = Duration::from_millis(args.mode.pick(200, 50, 5));
        let mut checked = false;
        for (threads, permits, inside, outside) in SHAPES {
            let id = format!("contended/{threads}t-{permits}p");
            if !args.selected(&id) {
                continue;
            }
            if !checked {
                // Every gate admits at most P holders and loses no permit, before it is timed.
                for_each_gate!(G => { check_gate::<G>(8, 2); });
                checked = true;
            }
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let gates: Vec<_> = gates.iter().chain((threads <= cores).then_some(&spin)).collect();
            // Interleaved: round r of every implementation before round r + 1 of any.
            let mut runs: Vec<Vec<TimedRun>> = gates.iter().map(|_| Vec::new()).collect();
            for _ in 0..rounds {
                for ((_, run), out) in gates.iter().zip(&mut runs) {
                    out.push(run(threads, permits, inside, outside, time));
                }
            }
            let scenario = format!("contended {threads}t-{permits}p {inside}/{outside}");
            println!(
                "\n{scenario}: {threads} threads, {permits} permits, {inside} work units inside, {outside} outside; \
             {rounds} interleaved runs of {time:?}, medians"
            );
            println!(
                "  {:<16} {:>10} {:>16} {:>13} {:>22}",
                "implementation", "Mpairs/s", "(min-max)", "csw/acquire", "thread share min-max"
            );
            for ((name, _), runs) in gates.iter().zip(&runs) {
                let mut mops: Vec<f64> = runs.iter().map(TimedRun::mops).collect();
                let (lo, hi) =
                    (mops.iter().copied().fold(f64::MAX, f64::min), mops.iter().copied().fold(0.0, f64::max));
                let mops = median(&mut mops);
                let switches =
                    median(&mut runs.iter().map(TimedRun::switches_per_acquire).collect::<Vec<_>>());
                let share_min = runs.iter().map(|r| r.progress_spread().0).fold(f64::MAX, f64::min);
                let share_max = runs.iter().map(|r| r.progress_spread().1).fold(0.0, f64::max);
                println!(
                    "  {name:<16} {mops:>10.2} {:>16} {switches:>13.4} {:>22}",
                    format!("({lo:.2}-{hi:.2})"),
                    format!("{share_min:.2}-{share_max:.2}")
                );
                report.add(
                    Row::new(&scenario, name, mops, "Mpairs/s", Better::Higher)
                        .switches(switches)
                        .note(format!("thread share {share_min:.2}-{share_max:.2}")),
                );
            }
        }
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
        /// Acquires per second over the runs.
        rate: f64,
    }

    impl Tail {
        fn new(name: &'static str, mut waits: Vec<u64>, wall: Duration) -> Tail {
            waits.sort_unstable();
            Tail {
                name,
                p50: quantile(&waits, 0.50),
                p90: quantile(&waits, 0.90),
                p99: quantile(&waits, 0.99),
                p999: quantile(&waits, 0.999),
                max: *waits.last().unwrap(),
                mean: waits.iter().sum::<u64>() as f64 / waits.len() as f64,
                rate: waits.len() as f64 / wall.as_secs_f64(),
            }
        }
    }

    /// One fixed wait-tail run of one implementation: every wait, and the wall time.
    type TailRun<'a> = Box<dyn Fn() -> (Vec<u64>, Duration) + 'a>;

    /// `rounds` fixed runs of `run` per implementation, interleaved; every wait of every round.
    fn tails(rounds: usize, runs: &[(&'static str, TailRun<'_>)]) -> Vec<Tail> {
        let mut all: Vec<(Vec<u64>, Duration)> = runs.iter().map(|_| (Vec::new(), Duration::ZERO)).collect();
        for _ in 0..rounds {
            for ((_, run), out) in runs.iter().zip(&mut all) {
                let (waits, wall) = run();
                out.0.extend(waits);
                out.1 += wall;
            }
        }
        runs.iter().zip(all).map(|((name, _), (waits, wall))| Tail::new(name, waits, wall)).collect()
    }

    fn wait_tail(args: &Args, report: &mut Report) {
        let rounds = args.mode.pick(3, 1, 1);
        let ops = args.mode.pick(25_000, 5_000, 100);

        if args.selected("wait_tail/4t-1p") {
            let mut runs: Vec<(&'static str, TailRun<'_>)> = Vec::new();
            for_each_gate!(G => {
                runs.push((G::NAME, Box::new(move || wait_times(&G::new(1), TAIL_THREADS, ops))));
            });
            let t = tails(rounds, &runs);
            let title =
                format!("{TAIL_THREADS} threads, 1 permit, hold {HOLD} work units, ask again at once");
            print_tails(&format!("wait_tail 4t-1p: {title}, {rounds} x {ops} acquires per thread"), &t);
            record_tails(report, "wait_tail 4t-1p", &t);
            if args.mode != Mode::Smoke {
                write_tails(&t, ops * rounds);
            }
        }

        if args.selected("wait_tail/4t-2p-mixed") {
            fn mixed<G: ManyGate>(ops: usize) -> (Vec<u64>, Duration) {
                let gate = G::new(2);
                // Threads 0 and 1 ask for 2 permits, threads 2 and 3 for 1.
                wait_times_with(TAIL_THREADS, ops, HOLD, |i| {
                    if i < 2 { gate.acquire_many(2) } else { gate.acquire() }
                })
            }
            let mut runs: Vec<(&'static str, TailRun<'_>)> = Vec::new();
            for_each_many_gate!(G => { runs.push((G::NAME, Box::new(move || mixed::<G>(ops)))); });
            let t = tails(rounds, &runs);
            print_tails(
                &format!(
                    "wait_tail 4t-2p mixed: {TAIL_THREADS} threads, 2 permits, two threads ask for 2 and two for 1, \
                 hold {HOLD} units; {rounds} x {ops} acquires per thread"
                ),
                &t,
            );
            record_tails(report, "wait_tail 4t-2p mixed", &t);
        }

        if args.selected("wait_tail/async-4t-1p") {
            let rt = common::async_gates::runtime();
            let rt = &rt;
            let mut runs: Vec<(&'static str, TailRun<'_>)> = Vec::new();
            for_each_async_gate!(G => {
                runs.push((<G as common::AsyncGate>::NAME, Box::new(move || rt.block_on(async_wait_times(Arc::new(G::new(1)), ops)))));
            });
            let t = tails(rounds, &runs);
            print_tails(
                &format!(
                    "wait_tail async 4t-1p: {TAIL_THREADS} tasks on a 2-worker tokio runtime, 1 permit, hold {HOLD} \
                 units, yield once after the release; {rounds} x {ops} acquires per task"
                ),
                &t,
            );
            record_tails(report, "wait_tail async 4t-1p", &t);
        }
    }

    /// The async wait-tail run: [`TAIL_THREADS`] tasks, each taking a permit `ops` times, holding it
    /// for [`HOLD`] units and yielding once after giving it back (without the yield a task whose
    /// acquire never waits would keep its worker, and the figure would measure tokio's scheduling
    /// instead of the semaphore).
    async fn async_wait_times<G: common::AsyncGate>(gate: Arc<G>, ops: usize) -> (Vec<u64>, Duration) {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TAIL_THREADS)
            .map(|_| {
                let gate = Arc::clone(&gate);
                tokio::spawn(async move {
                    let mut waits = Vec::with_capacity(ops);
                    for _ in 0..ops {
                        let asked = Instant::now();
                        let permit = gate.acquire().await;
                        waits.push(asked.elapsed().as_nanos() as u64);
                        common::work(HOLD);
                        drop(permit);
                        tokio::task::yield_now().await;
                    }
                    waits
                })
            })
            .collect();
        let mut waits = Vec::new();
        for t in tasks {
            waits.extend(t.await.expect("a wait-tail task panicked"));
        }
        (waits, start.elapsed())
    }

    fn print_tails(title: &str, tails: &[Tail]) {
        let us = |ns: u64| ns as f64 / 1000.0;
        let mut table = format!(
            "\n{title}\ntime from calling acquire to holding the permit (µs)\n\
         {:<16} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>12}\n",
            "implementation", "p50", "p90", "p99", "p99.9", "max", "mean", "Macq/s"
        );
        for t in tails {
            let _ = writeln!(
                table,
                "{:<16} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.1} {:>9.2} {:>12.2}",
                t.name,
                us(t.p50),
                us(t.p90),
                us(t.p99),
                us(t.p999),
                us(t.max),
                t.mean / 1000.0,
                t.rate / 1e6
            );
        }
        println!("{table}");
    }

    fn record_tails(report: &mut Report, scenario: &str, tails: &[Tail]) {
        for t in tails {
            report.add(Row::new(
                format!("{scenario} p99.9"),
                t.name,
                t.p999 as f64 / 1000.0,
                "us",
                Better::Lower,
            ));
            report.add(
                Row::new(format!("{scenario} max"), t.name, t.max as f64 / 1000.0, "us", Better::Lower)
                    .note(format!("p50 {:.2} us, {:.2} Macq/s", t.p50 as f64 / 1000.0, t.rate / 1e6)),
            );
        }
    }

    /// Writes the 4t-1p wait tails as JSON and CSV beside criterion's reports, for `tools/bench-report`.
    fn write_tails(tails: &[Tail], acquires_per_thread: usize) {
        let mut csv = String::from("name,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,mean_ns,rate_per_s\n");
        let mut rows = Vec::new();
        for t in tails {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{:.1},{:.0}",
                t.name, t.p50, t.p90, t.p99, t.p999, t.max, t.mean, t.rate
            );
            rows.push(format!(
            "    {{\"name\": \"{}\", \"p50_ns\": {}, \"p90_ns\": {}, \"p99_ns\": {}, \"p999_ns\": {}, \"max_ns\": {}, \
             \"mean_ns\": {:.1}, \"rate_per_s\": {:.0}}}",
            t.name, t.p50, t.p90, t.p99, t.p999, t.max, t.mean, t.rate
        ));
        }
        let json = format!(
            "{{\n  \"threads\": {TAIL_THREADS},\n  \"permits\": 1,\n  \"acquires_per_thread\": {acquires_per_thread},\n  \
         \"hold_units\": {HOLD},\n  \"results\": [\n{}\n  ]\n}}\n",
            rows.join(",\n")
        );
        let dir = common::criterion_dir().join("wait_tail");
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("latency.csv"), csv))
            .and_then(|()| std::fs::write(dir.join("latency.json"), json));
        match written {
            Ok(()) => println!("wait_tail: wrote {}/latency.{{json,csv}}", dir.display()),
            Err(e) => eprintln!("wait_tail: could not write {}: {e}", dir.display()),
        }
    }
}
