//! `cargo bench --bench syscalls`: how many `futex` system calls each implementation makes, counted
//! by `strace -f -c -e trace=futex`, next to the time of the same run without strace.
//!
//! The benchmark re-runs its own executable as a child (`--child <implementation> <scenario>`)
//! for each row: three times plain, for the time (the median), and once under strace, for the
//! counts. The scenarios:
//!
//! - `uncontended`: 1,000,000 acquire/release pairs on one thread.
//! - `contended`: 8 threads on 2 permits, 5,000 pairs each (the `contended/8t-2p` workload).
//! - `handoff`: 5,000 round trips of a token between two threads (the `handoff` workload);
//!   `handoff-1cpu` with both threads pinned to one CPU.
//!
//! The `harness` row runs the same scenario through a gate that does nothing: the calls that
//! spawning, the start barrier and joining make by themselves. Without strace it prints
//! `SKIPPED` and succeeds. Results go to stdout, the summary, and
//! `target/criterion/syscalls/futex.{json,csv}`. `FUTEX_SEMAPHORE_BENCH_QUICK=1`: one plain run
//! per row instead of three, and runs 10 times smaller.

#[macro_use]
mod common;

bench_main!();

/// The bench (Linux only, as every bench: see `common`).
#[cfg(all(target_os = "linux", not(loom)))]
mod bench {
    use crate::common;
    use common::{Args, Better, Floor, Gate, Mode, Report};
    use std::fmt::Write as _;
    use std::process::Command;
    use std::time::{Duration, Instant};

    const UNCONTENDED_PAIRS: u64 = 1_000_000;
    const CONTENDED_THREADS: usize = 8;
    const CONTENDED_PERMITS: usize = 2;
    const CONTENDED_PAIRS_PER_THREAD: u64 = 5_000;
    const HANDOFF_ROUND_TRIPS: u64 = 5_000;

    const SCENARIOS: [&str; 4] = ["uncontended", "contended", "handoff", "handoff-1cpu"];

    /// A gate that never waits: runs the harness of a scenario without a semaphore.
    struct Harness;

    impl Gate for Harness {
        const NAME: &'static str = "harness";
        type Permit<'a> = ();

        fn new(_: usize) -> Self {
            Harness
        }
        fn acquire(&self) {}
        fn try_acquire(&self) -> Option<()> {
            Some(())
        }
        fn release(&self) {}
    }

    /// Acquire/release pairs (or round trips) that `scenario` makes, `scale` times smaller.
    fn operations(scenario: &str, scale: u64) -> u64 {
        match scenario {
            "uncontended" => UNCONTENDED_PAIRS / scale,
            "contended" => CONTENDED_PAIRS_PER_THREAD / scale * CONTENDED_THREADS as u64,
            "handoff" | "handoff-1cpu" => HANDOFF_ROUND_TRIPS / scale,
            _ => panic!("unknown scenario {scenario:?}"),
        }
    }

    /// How much smaller than the real run the children run: 10 in quick mode (the children inherit
    /// the environment variable).
    fn child_scale() -> u64 {
        if std::env::var(common::report::QUICK_VAR).is_ok_and(|v| !v.is_empty() && v != "0") { 10 } else { 1 }
    }

    /// Runs `scenario` over `G`, `scale` times smaller than the real run; returns its time.
    fn run<G: Gate>(scenario: &str, scale: u64) -> Duration {
        match scenario {
            "uncontended" => {
                let gate = G::new(1);
                let start = Instant::now();
                for _ in 0..UNCONTENDED_PAIRS / scale {
                    let _permit = std::hint::black_box(&gate).acquire();
                }
                start.elapsed()
            }
            "contended" => common::workloads::contend(
                &G::new(CONTENDED_PERMITS),
                CONTENDED_THREADS,
                CONTENDED_PAIRS_PER_THREAD / scale,
            ),
            "handoff" => {
                common::workloads::handoff(&G::new(0), &G::new(0), HANDOFF_ROUND_TRIPS / scale, false)
            }
            "handoff-1cpu" => {
                common::workloads::handoff(&G::new(0), &G::new(0), HANDOFF_ROUND_TRIPS / scale, true)
            }
            _ => panic!("unknown scenario {scenario:?}"),
        }
    }

    /// The implementations measured in `scenario`, by name.
    fn names(scenario: &str) -> Vec<&'static str> {
        let mut names = vec![Harness::NAME];
        if scenario == "uncontended" {
            names.push(Floor::NAME);
        }
        for_each_gate!(G => { names.push(G::NAME); });
        names
    }

    /// Runs `scenario` over the implementation called `name`.
    fn run_named(name: &str, scenario: &str, scale: u64) -> Duration {
        if name == Harness::NAME {
            return run::<Harness>(scenario, scale);
        }
        if name == Floor::NAME {
            return run::<Floor>(scenario, scale);
        }
        for_each_gate!(G => {
            if name == G::NAME {
                return run::<G>(scenario, scale);
            }
        });
        panic!("unknown implementation {name:?}")
    }

    /// One row of the report.
    struct Row {
        scenario: &'static str,
        name: &'static str,
        ops: u64,
        time: Duration,
        calls: u64,
        errors: u64,
    }

    pub(super) fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if let Some(at) = args.iter().position(|a| a == "--child") {
            let (name, scenario) = (&args[at + 1], &args[at + 2]);
            println!("{}", run_named(name, scenario, child_scale()).as_nanos());
            return;
        }
        let parsed = Args::parse();
        // `cargo bench -- FILTER` passes the filter to every benchmark: run only if it matches.
        if let Some(filter) = args.iter().find(|a| !a.starts_with('-')) {
            if !"syscalls".contains(filter.as_str()) && !filter.contains("syscalls") {
                return;
            }
        }
        if parsed.mode == Mode::Smoke {
            // `cargo test --benches`: a quick run of every workload, no strace.
            for scenario in SCENARIOS {
                for name in names(scenario) {
                    run_named(name, scenario, 1000);
                }
            }
            println!("syscalls: every workload ran (smoke test); `cargo bench` counts the calls");
            return;
        }
        if Command::new("strace").arg("-V").output().is_err() {
            println!("SKIPPED: syscalls (strace is not installed; `apt-get install strace`)");
            return;
        }
        let exe = std::env::current_exe().expect("the path of this benchmark");
        let out_dir = common::criterion_dir().join("syscalls");
        std::fs::create_dir_all(&out_dir).expect("create the output directory");
        let trace = out_dir.join("strace.txt");

        let mut rows = Vec::new();
        for scenario in SCENARIOS {
            for name in names(scenario) {
                let child = || {
                    let mut cmd = Command::new(&exe);
                    cmd.args(["--child", name, scenario]);
                    cmd
                };
                // The time: the median of three plain runs (one in quick mode).
                let plain_runs = parsed.mode.pick(3, 1, 1);
                let mut times: Vec<u64> = (0..plain_runs)
                    .map(|_| {
                        let timed = child().output().expect("run the child");
                        assert!(timed.status.success(), "{name} {scenario}: the child failed");
                        String::from_utf8_lossy(&timed.stdout).trim().parse().expect("the child's time")
                    })
                    .collect();
                times.sort_unstable();
                let nanos = times[times.len() / 2];
                let traced = Command::new("strace")
                    .args(["-f", "-c", "-e", "trace=futex", "-o"])
                    .arg(&trace)
                    .arg(&exe)
                    .args(["--child", name, scenario])
                    .output()
                    .expect("run strace");
                assert!(traced.status.success(), "strace {name} {scenario} failed: {traced:?}");
                let summary = std::fs::read_to_string(&trace).unwrap_or_default();
                let (calls, errors) = futex_calls(&summary);
                let row = Row {
                    scenario,
                    name,
                    ops: operations(scenario, child_scale()),
                    time: Duration::from_nanos(nanos),
                    calls,
                    errors,
                };
                eprintln!("syscalls: {scenario:<12} {name:<16} {calls:>9} futex calls");
                rows.push(row);
            }
        }
        let _ = std::fs::remove_file(&trace);
        report(&rows, &out_dir);
        let mut summary = Report::new("syscalls", parsed.mode);
        for r in rows.iter().filter(|r| r.name != Harness::NAME) {
            let scenario = match r.scenario {
                "contended" => {
                    format!("futex calls per 1000 ops, contended {CONTENDED_THREADS}t-{CONTENDED_PERMITS}p")
                }
                other => format!("futex calls per 1000 ops, {other}"),
            };
            let per_1000 = r.calls as f64 * 1000.0 / r.ops as f64;
            summary.add(common::Row::new(scenario, r.name, per_1000, "calls", Better::Lower));
        }
        summary.finish();
    }

    /// The `calls` and `errors` columns of the `futex` line of an `strace -c` summary; an empty
    /// summary (no call made) is zero.
    fn futex_calls(summary: &str) -> (u64, u64) {
        for line in summary.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.last() == Some(&"futex") && fields.len() >= 5 {
                let calls = fields[3].parse().unwrap_or(0);
                let errors = if fields.len() == 6 { fields[4].parse().unwrap_or(0) } else { 0 };
                return (calls, errors);
            }
        }
        (0, 0)
    }

    fn report(rows: &[Row], out_dir: &std::path::Path) {
        let mut table = format!(
            "\nfutex system calls (strace -f -c -e trace=futex) and time of the same run without strace\n\
         uncontended: {UNCONTENDED_PAIRS} pairs on 1 thread; contended: {CONTENDED_THREADS} threads, \
         {CONTENDED_PERMITS} permits, {CONTENDED_PAIRS_PER_THREAD} pairs each; handoff: \
         {HANDOFF_ROUND_TRIPS} round trips\n\
         {:<12} {:<16} {:>10} {:>12} {:>11} {:>11} {:>12}\n",
            "scenario", "implementation", "ops", "ns per op", "futex", "(errors)", "per 1000 ops"
        );
        let mut csv = String::from("scenario,name,ops,time_ns,ns_per_op,futex_calls,futex_errors\n");
        let mut json = Vec::new();
        for r in rows {
            let per_op = r.time.as_nanos() as f64 / r.ops as f64;
            let _ = writeln!(
                table,
                "{:<12} {:<16} {:>10} {:>12.1} {:>11} {:>11} {:>12.2}",
                r.scenario,
                r.name,
                r.ops,
                per_op,
                r.calls,
                r.errors,
                r.calls as f64 * 1000.0 / r.ops as f64
            );
            let _ = writeln!(
                csv,
                "{},{},{},{},{per_op:.2},{},{}",
                r.scenario,
                r.name,
                r.ops,
                r.time.as_nanos(),
                r.calls,
                r.errors
            );
            json.push(format!(
            "  {{\"scenario\": \"{}\", \"name\": \"{}\", \"ops\": {}, \"time_ns\": {}, \"ns_per_op\": {per_op:.2}, \
             \"futex_calls\": {}, \"futex_errors\": {}}}",
            r.scenario,
            r.name,
            r.ops,
            r.time.as_nanos(),
            r.calls,
            r.errors
        ));
        }
        println!("{table}");
        let written = std::fs::write(out_dir.join("futex.csv"), csv).and_then(|()| {
            std::fs::write(out_dir.join("futex.json"), format!("[\n{}\n]\n", json.join(",\n")))
        });
        match written {
            Ok(()) => println!("syscalls: wrote {}/futex.{{json,csv}}", out_dir.display()),
            Err(e) => eprintln!("syscalls: could not write to {}: {e}", out_dir.display()),
        }
    }
}
