//! `cargo bench --bench fairness`: how long a waiter that barging can starve waits to be served,
//! beside tokio's FIFO semaphore (and the parking_lot gate, a barging peer). Each scenario runs a
//! few rounds, interleaved across implementations, and reports the worst and the median round.
//! A round that reaches the cap is ended by the others stopping, and reported as the cap.
//!
//! - `large_acquire` (Go's `TestLargeAcquireDoesntStarve`, restated): 2 permits; 2 threads each
//!   hold one, sleep 1 ms, release and re-acquire at once; the main thread calls
//!   `acquire_many(2)`: the time until it is served.
//! - `drain`: 4 permits; 4 threads hold one each for [`DRAIN_HOLD`] work units, release and
//!   re-acquire at once; the main thread calls `acquire_many(4)` (the shutdown pattern "wait for
//!   in-flight work"). `drain_async`: the same with tasks on a 2-worker tokio runtime, which hold
//!   their permit across one `yield_now`.
//! - `behind_holder_async`: 1 permit; a thread holds it, sleeps 1 ms, releases and re-acquires at
//!   once; a task calls the async acquire: the time until it gets in. `ref:thread waiter` is the
//!   same with a thread calling futex-semaphore's blocking `acquire` instead.

#[macro_use]
mod common;

bench_main!();

/// The bench (Linux only, as every bench: see `common`).
#[cfg(all(target_os = "linux", not(loom)))]
mod bench {
    use crate::common;
    use common::report::median;
    use common::{Args, AsyncGate, Better, Gate, ManyGate, Report, Row};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier};
    use std::thread;
    use std::time::{Duration, Instant};

    /// Work units a drain worker holds its permit for (about 1 µs).
    const DRAIN_HOLD: u32 = 1_000;
    const DRAIN_PERMITS: usize = 4;

    /// The time until the request is served in one round, and whether it reached the cap.
    type Round = (Duration, bool);

    /// One round of one implementation's scenario.
    type RoundRun<'a> = Box<dyn Fn() -> Round + 'a>;

    pub(super) fn main() {
        let args = Args::parse();
        let mut report = Report::new("fairness", args.mode);
        let rounds = args.mode.pick(5, 5, 1);
        let cap = Duration::from_millis(args.mode.pick(1_000, 250, 20));

        if args.selected("fairness/large_acquire") {
            let mut runs: Vec<(&str, RoundRun<'_>)> = Vec::new();
            for_each_many_gate!(G => { runs.push((<G as Gate>::NAME, Box::new(move || large_acquire::<G>(cap)))); });
            let results = interleave(rounds, &runs);
            print_and_record(
                &mut report,
                "fairness large_acquire",
                "2 permits; 2 threads hold 1 each, sleep 1 ms, release, re-acquire at once; acquire_many(2) waits",
                cap,
                &results,
            );
        }
        if args.selected("fairness/drain") {
            let mut runs: Vec<(&str, RoundRun<'_>)> = Vec::new();
            for_each_many_gate!(G => { runs.push((<G as Gate>::NAME, Box::new(move || drain::<G>(cap)))); });
            let results = interleave(rounds, &runs);
            print_and_record(
                &mut report,
                "fairness drain 4p",
                "4 permits; 4 threads hold 1 each for 1000 units, release, re-acquire at once; acquire_many(4) waits",
                cap,
                &results,
            );
        }
        let rt = common::async_gates::runtime();
        let rt = &rt;
        if args.selected("fairness/drain_async") {
            let mut runs: Vec<(&str, RoundRun<'_>)> = Vec::new();
            for_each_async_gate!(G => {
                if G::MANY {
                    runs.push((<G as AsyncGate>::NAME, Box::new(move || rt.block_on(drain_async::<G>(cap)))));
                }
            });
            let results = interleave(rounds, &runs);
            print_and_record(
                &mut report,
                "fairness drain_async 4p",
                "4 permits; 4 tasks (2 workers) hold 1 each across a yield, release, re-acquire at once; a task's \
             acquire_many(4) waits",
                cap,
                &results,
            );
        }
        if args.selected("fairness/behind_holder_async") {
            fn with<G: Gate + AsyncGate>(rt: &tokio::runtime::Runtime, cap: Duration) -> Round {
                behind_holder::<G>(cap, |gate| {
                    let gate = Arc::clone(gate);
                    rt.block_on(async move {
                        tokio::spawn(async move {
                            let asked = Instant::now();
                            drop(AsyncGate::acquire(&*gate).await);
                            asked.elapsed()
                        })
                        .await
                        .expect("the waiting task panicked")
                    })
                })
            }
            let mut runs: Vec<(&str, RoundRun<'_>)> = Vec::new();
            for_each_async_gate!(G => { runs.push((<G as AsyncGate>::NAME, Box::new(move || with::<G>(rt, cap)))); });
            runs.push((
                "ref:thread waiter",
                Box::new(move || {
                    behind_holder::<futex_semaphore::Semaphore>(cap, |gate| {
                        let asked = Instant::now();
                        drop(Gate::acquire(&**gate));
                        asked.elapsed()
                    })
                }),
            ));
            let results = interleave(rounds, &runs);
            print_and_record(
                &mut report,
                "fairness behind_holder_async 1p",
                "1 permit; a thread holds it, sleeps 1 ms, releases, re-acquires at once; a task's acquire waits",
                cap,
                &results,
            );
        }
        report.finish();
    }

    /// `rounds` rounds of every run, round r of each before round r + 1 of any.
    fn interleave<'a>(rounds: usize, runs: &[(&'a str, RoundRun<'_>)]) -> Vec<(&'a str, Vec<Round>)> {
        let mut out: Vec<(&str, Vec<Round>)> = runs.iter().map(|(name, _)| (*name, Vec::new())).collect();
        for _ in 0..rounds {
            for ((_, run), (_, results)) in runs.iter().zip(&mut out) {
                results.push(run());
            }
        }
        out
    }

    fn print_and_record(
        report: &mut Report,
        scenario: &str,
        what: &str,
        cap: Duration,
        results: &[(&str, Vec<Round>)],
    ) {
        println!("\n{scenario}: {what}; time until served, per round (ms; cap {cap:?})");
        for (name, rounds) in results {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let list: Vec<String> = rounds
                .iter()
                .map(|(d, capped)| format!("{}{:.2}", if *capped { ">=" } else { "" }, ms(*d)))
                .collect();
            let worst = rounds.iter().map(|r| ms(r.0)).fold(0.0, f64::max);
            let med = median(&mut rounds.iter().map(|r| ms(r.0)).collect::<Vec<_>>());
            let capped = rounds.iter().filter(|r| r.1).count();
            println!("  {name:<18} worst {worst:>9.2}  median {med:>9.2}  rounds: {}", list.join(" "));
            let note = if capped > 0 {
                format!("median {med:.2} ms; {capped} of {} rounds hit the {cap:?} cap", rounds.len())
            } else {
                format!("median {med:.2} ms over {} rounds", rounds.len())
            };
            report.add(Row::new(format!("{scenario} worst"), name, worst, "ms", Better::Lower).note(note));
        }
    }

    /// The holder of `large_acquire` and `behind_holder`: takes a permit, meets the waiter at
    /// `barrier`, then holds it 1 ms, releases and re-acquires at once, until `done` or `cap`.
    fn hold_and_reacquire<G: Gate>(gate: &G, barrier: &Barrier, done: &AtomicBool, cap: Duration) {
        let mut permit = gate.acquire();
        barrier.wait();
        let deadline = Instant::now() + cap;
        loop {
            thread::sleep(Duration::from_millis(1));
            drop(permit);
            // Relaxed: the flag only ends the loop.
            if done.load(Ordering::Relaxed) || Instant::now() >= deadline {
                return;
            }
            permit = gate.acquire();
        }
    }

    /// Go's shape: see the module docs.
    fn large_acquire<G: ManyGate>(cap: Duration) -> Round {
        let gate = G::new(2);
        let done = AtomicBool::new(false);
        let barrier = Barrier::new(3);
        thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| hold_and_reacquire(&gate, &barrier, &done, cap));
            }
            barrier.wait();
            let asked = Instant::now();
            let permit = gate.acquire_many(2);
            let waited = asked.elapsed();
            done.store(true, Ordering::Relaxed);
            drop(permit);
            (waited, waited >= cap)
        })
    }

    /// The blocking drain: see the module docs.
    fn drain<G: ManyGate>(cap: Duration) -> Round {
        let gate = G::new(DRAIN_PERMITS);
        let done = AtomicBool::new(false);
        let barrier = Barrier::new(DRAIN_PERMITS + 1);
        // The workers stop re-acquiring at the deadline; a request served after it hit the cap.
        let deadline = Instant::now() + cap;
        thread::scope(|s| {
            for _ in 0..DRAIN_PERMITS {
                s.spawn(|| {
                    barrier.wait();
                    while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let permit = gate.acquire();
                        common::work(DRAIN_HOLD);
                        drop(permit);
                    }
                });
            }
            barrier.wait();
            // Let the stream of acquires form first.
            thread::sleep(Duration::from_millis(2));
            let asked = Instant::now();
            let permit = gate.acquire_many(DRAIN_PERMITS as u32);
            let waited = asked.elapsed();
            done.store(true, Ordering::Relaxed);
            drop(permit);
            (waited, Instant::now() >= deadline)
        })
    }

    /// The async drain: see the module docs.
    async fn drain_async<G: AsyncGate>(cap: Duration) -> Round {
        let gate = Arc::new(G::new(DRAIN_PERMITS));
        let done = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + cap;
        let workers: Vec<_> = (0..DRAIN_PERMITS)
            .map(|_| {
                let (gate, done) = (Arc::clone(&gate), Arc::clone(&done));
                tokio::spawn(async move {
                    while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let permit = gate.acquire().await;
                        tokio::task::yield_now().await;
                        common::work(DRAIN_HOLD);
                        drop(permit);
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let drainer = {
            let (gate, done) = (Arc::clone(&gate), Arc::clone(&done));
            tokio::spawn(async move {
                let asked = Instant::now();
                let permit = gate.acquire_many(DRAIN_PERMITS as u32).await;
                let waited = asked.elapsed();
                done.store(true, Ordering::Relaxed);
                drop(permit);
                // The workers stop re-acquiring at the deadline; a request served after it hit the cap.
                (waited, Instant::now() >= deadline)
            })
        };
        let round = drainer.await.expect("the drainer panicked");
        for w in workers {
            w.await.expect("a drain worker panicked");
        }
        round
    }

    /// A thread holds the only permit, sleeps 1 ms, releases and re-acquires at once, until `wait`
    /// (the waiter, given the gate) returns or the cap passes.
    fn behind_holder<G: Gate + Send + Sync + 'static>(
        cap: Duration,
        wait: impl FnOnce(&Arc<G>) -> Duration,
    ) -> Round {
        let gate = Arc::new(G::new(1));
        let done = AtomicBool::new(false);
        let barrier = Barrier::new(2);
        thread::scope(|s| {
            s.spawn(|| hold_and_reacquire(&*gate, &barrier, &done, cap));
            barrier.wait();
            let waited = wait(&gate);
            done.store(true, Ordering::Relaxed);
            (waited, waited >= cap)
        })
    }
}
