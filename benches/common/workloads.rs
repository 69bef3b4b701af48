//! The workloads every scenario shares: the work unit, T threads on P permits (fixed count and
//! timed), the two-thread handoff, the wait-time sampler, and the counters read around a run.

use super::gates::Gate;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Work units a thread does while it holds a permit (see [`work`]).
pub const HOLD: u32 = 20;
/// Work units a thread does between giving a permit back and asking for the next.
pub const BETWEEN: u32 = 60;

/// A value on a 128-byte block of its own (two cache lines: the adjacent-line prefetcher moves
/// lines in pairs), so that a word the harness touches in every loop (a stop flag, the other
/// gate of a handoff) never shares a line with the gate under test. Without it the stack's layout,
/// which changes with any code change, put some gates' counter on the stop flag's line and not
/// others': one more line transfer per pair for those, and a different set in every build.
#[repr(align(128))]
pub struct Padded<T>(pub T);

/// A little CPU work the optimizer cannot remove: `units` dependent multiply-adds.
#[inline]
pub fn work(units: u32) {
    let mut x = 1u64;
    for i in 0..units {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(u64::from(i)));
    }
    black_box(x);
}

/// Nanoseconds one unit of [`work`] takes on this machine (a median of a few short runs).
pub fn work_unit_ns() -> f64 {
    let mut runs: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            work(100_000);
            start.elapsed().as_nanos() as f64 / 100_000.0
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

/// `threads` threads share `gate`; each takes a permit `ops` times, holds it for [`HOLD`] units
/// of work and does [`BETWEEN`] units before the next. Returns the time from the first thread's
/// start to the last thread's end; spawning and the start barrier are outside it.
pub fn contend<G: Gate>(gate: &G, threads: usize, ops: u64) -> Duration {
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..ops {
                        let permit = gate.acquire();
                        work(HOLD);
                        drop(permit);
                        work(BETWEEN);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let end = spans.iter().map(|s| s.1).max().unwrap();
    end.saturating_duration_since(start)
}

/// Checks that `G` admits at most `permits` holders at once and loses no permit, over a short
/// run of `threads` threads.
pub fn check_gate<G: Gate>(threads: usize, permits: usize) {
    let gate = G::new(permits);
    let inside = AtomicUsize::new(0);
    let most = AtomicUsize::new(0);
    let barrier = Barrier::new(threads);
    thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..2_000 {
                    let _permit = gate.acquire();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    work(HOLD);
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            });
        }
    });
    let most = most.into_inner();
    assert!(most <= permits, "{}: {most} holders at once with {permits} permits", G::NAME);
    let mut back = Vec::new();
    while let Some(permit) = gate.try_acquire() {
        back.push(permit);
    }
    assert_eq!(back.len(), permits, "{}: permits lost or made up", G::NAME);
    // A failed attempt must not make up a permit either (a guard built and dropped for it would).
    assert!(gate.try_acquire().is_none(), "{}: a failed try_acquire gave a permit back", G::NAME);
}

/// Two threads pass one token `round_trips` times there and back through `ping` and `pong`,
/// which start with no permits. With `one_cpu`, both threads are pinned to the same CPU, as when
/// the other cores are busy. Returns the time of the loop on the thread that starts the token.
pub fn handoff<G: Gate>(ping: &G, pong: &G, round_trips: u64, one_cpu: bool) -> Duration {
    let cpu = if one_cpu { Some(first_cpu().expect("sched_getaffinity")) } else { None };
    let barrier = Barrier::new(2);
    thread::scope(|s| {
        s.spawn(|| {
            if let Some(cpu) = cpu {
                pin_to(cpu);
            }
            barrier.wait();
            for _ in 0..round_trips {
                G::forget(ping.acquire());
                pong.release();
            }
        });
        s.spawn(|| {
            if let Some(cpu) = cpu {
                pin_to(cpu);
            }
            barrier.wait();
            let start = Instant::now();
            for _ in 0..round_trips {
                ping.release();
                G::forget(pong.acquire());
            }
            start.elapsed()
        })
        .join()
        .unwrap()
    })
}

/// The lowest-numbered CPU the calling thread may run on.
fn first_cpu() -> Option<usize> {
    // SAFETY: an all-zero `cpu_set_t` is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live `cpu_set_t` and the size passed is its size; pid 0 is this thread.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } != 0 {
        return None;
    }
    // SAFETY: every index is below CPU_SETSIZE, the number of CPUs a `cpu_set_t` holds.
    (0..libc::CPU_SETSIZE as usize).find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) {
    // SAFETY: an all-zero `cpu_set_t` is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` came from `first_cpu`, so it is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a live `cpu_set_t` and the size passed is its size; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    assert_eq!(rc, 0, "sched_setaffinity: {}", std::io::Error::last_os_error());
}

/// `threads` threads share `gate` (one permit for the wait-tail scenario); each takes a permit
/// `ops` times, holds it for [`HOLD`] units and asks again at once. Returns the nanoseconds from
/// calling `acquire` to holding the permit, for every acquire, and the wall time of the run.
pub fn wait_times<G: Gate>(gate: &G, threads: usize, ops: usize) -> (Vec<u64>, Duration) {
    wait_times_with(threads, ops, HOLD, |_| gate.acquire())
}

/// The voluntary context switches of the whole process so far (`getrusage(RUSAGE_SELF)`, which
/// sums every thread, those that have exited included): a thread that blocks in the kernel (a
/// futex wait, a `sched_yield` that gives the core away does not count) makes one.
pub fn voluntary_switches() -> u64 {
    // SAFETY: an all-zero `rusage` is a valid value for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live `rusage`; RUSAGE_SELF is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    usage.ru_nvcsw as u64
}

/// What one timed run of [`contend_for`] measured.
pub struct TimedRun {
    /// Acquire/release pairs per thread.
    pub per_thread: Vec<u64>,
    /// From the first worker's start to the last worker's end.
    pub elapsed: Duration,
    /// Voluntary context switches of the process from before the start barrier to the stop
    /// signal (the barrier's own wakes included: at most one per thread).
    pub switches: u64,
}

impl TimedRun {
    pub fn ops(&self) -> u64 {
        self.per_thread.iter().sum()
    }

    /// Million acquire/release pairs per second.
    pub fn mops(&self) -> f64 {
        self.ops() as f64 / self.elapsed.as_secs_f64() / 1e6
    }

    pub fn switches_per_acquire(&self) -> f64 {
        self.switches as f64 / self.ops().max(1) as f64
    }

    /// The slowest and fastest thread's pairs as a share of the mean (1.0: a fair share).
    pub fn progress_spread(&self) -> (f64, f64) {
        let mean = self.ops() as f64 / self.per_thread.len() as f64;
        let min = *self.per_thread.iter().min().unwrap() as f64;
        let max = *self.per_thread.iter().max().unwrap() as f64;
        (min / mean.max(1.0), max / mean.max(1.0))
    }
}

/// `threads` threads share `gate` for about `duration`; each, in a loop, takes a permit, holds it
/// for `inside` work units and does `outside` units before asking again. Counts every thread's
/// pairs and the process's voluntary context switches while they run.
///
/// The span runs from the first worker's start to the last worker's end, as the workers see them:
/// on a loaded machine the main thread may run long after the start barrier has released the
/// workers, and a span it measured would miss their first pairs.
pub fn contend_for<G: Gate>(
    gate: &G,
    threads: usize,
    inside: u32,
    outside: u32,
    duration: Duration,
) -> TimedRun {
    let barrier = Barrier::new(threads + 1);
    let stop = Padded(AtomicBool::new(false));
    let stop = &stop.0;
    thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    let mut ops = 0u64;
                    // Relaxed: the flag only ends the loop; the counts go back through `join`.
                    while !stop.load(Ordering::Relaxed) {
                        let permit = gate.acquire();
                        work(inside);
                        drop(permit);
                        work(outside);
                        ops += 1;
                    }
                    (ops, start, Instant::now())
                })
            })
            .collect();
        let switches = voluntary_switches();
        barrier.wait();
        thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        // Read before joining: a sleeper counted its switch when it went to sleep, and the exits
        // and the join are no part of the run.
        let switches = voluntary_switches() - switches;
        let runs: Vec<(u64, Instant, Instant)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        let start = runs.iter().map(|r| r.1).min().unwrap();
        let end = runs.iter().map(|r| r.2).max().unwrap();
        TimedRun { per_thread: runs.iter().map(|r| r.0).collect(), elapsed: end - start, switches }
    })
}

/// Like [`wait_times`], but each thread asks through `take(thread index)`, which returns the
/// guard (so that some threads can ask for several permits).
pub fn wait_times_with<P>(
    threads: usize,
    ops: usize,
    hold: u32,
    take: impl Fn(usize) -> P + Sync,
) -> (Vec<u64>, Duration) {
    let barrier = Barrier::new(threads);
    let runs: Vec<(Vec<u64>, Instant, Instant)> = thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let (barrier, take) = (&barrier, &take);
                s.spawn(move || {
                    let mut waits = Vec::with_capacity(ops);
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..ops {
                        let asked = Instant::now();
                        let permit = take(i);
                        waits.push(asked.elapsed().as_nanos() as u64);
                        work(hold);
                        drop(permit);
                    }
                    (waits, start, Instant::now())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let start = runs.iter().map(|r| r.1).min().unwrap();
    let end = runs.iter().map(|r| r.2).max().unwrap();
    let waits = runs.into_iter().flat_map(|r| r.0).collect();
    (waits, end.saturating_duration_since(start))
}
