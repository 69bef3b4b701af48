//! What the benchmarks share: the [`Gate`] trait every compared implementation sits behind, the
//! implementations, and the workloads (one thread, T threads on P permits, a two-thread handoff,
//! the wait-time sampler), so that every scenario runs the same code over each of them.
//!
//! | name              | what it is                                                            |
//! |-------------------|-----------------------------------------------------------------------|
//! | `futex-semaphore` | this crate's [`Semaphore`], through its RAII [`Permit`]                |
//! | `std`             | `std::sync::Mutex<usize>` + `Condvar` (`notify_one` on every release)  |
//! | `parking_lot`     | `parking_lot::Mutex<usize>` + `Condvar`, the same code                 |
//! | `sem_t`           | glibc's POSIX semaphore through `libc` (`sem_wait`/`sem_post`)         |
//! | `tokio`           | `tokio::sync::Semaphore`: `try_acquire`, else `blocking_acquire`       |
//! | `async-lock`      | `async_lock::Semaphore`: `try_acquire`, else `acquire_blocking`        |
//! | `floor`           | one `fetch_sub` + one `fetch_add` on an `AtomicUsize`: not a semaphore, |
//! |                   | the cost of the two atomic operations; only meaningful on one thread   |
#![allow(dead_code)] // each bench target uses a part of this module

use futex_semaphore::{Permit, Semaphore};
use std::cell::UnsafeCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A counting semaphore as the benchmarks see it.
pub trait Gate: Sync + Sized {
    /// The name in benchmark ids, tables and the chart.
    const NAME: &'static str;

    /// The guard that gives the permit back when dropped.
    type Permit<'a>
    where
        Self: 'a;

    fn new(permits: usize) -> Self;

    /// Takes one permit, blocking until there is one.
    fn acquire(&self) -> Self::Permit<'_>;

    /// Takes one permit if there is one now.
    fn try_acquire(&self) -> Option<Self::Permit<'_>>;

    /// Adds one permit: the other half of [`Gate::forget`], for a permit that moves between
    /// threads (the handoff).
    fn release(&self);

    /// Keeps a permit out for good, with the implementation's own `forget` where it has one.
    fn forget(permit: Self::Permit<'_>) {
        std::mem::forget(permit);
    }
}

// ---------------------------------------------------------------------------------------------
// futex-semaphore

impl Gate for Semaphore {
    const NAME: &'static str = "futex-semaphore";
    type Permit<'a> = Permit<'a>;

    fn new(permits: usize) -> Self {
        Semaphore::new(permits)
    }

    #[inline]
    fn acquire(&self) -> Permit<'_> {
        Semaphore::acquire(self).expect("the benchmarks never close a semaphore")
    }

    #[inline]
    fn try_acquire(&self) -> Option<Permit<'_>> {
        Semaphore::try_acquire(self).ok()
    }

    #[inline]
    fn release(&self) {
        Semaphore::release(self);
    }

    #[inline]
    fn forget(permit: Permit<'_>) {
        permit.forget();
    }
}

// ---------------------------------------------------------------------------------------------
// std and parking_lot: a count under a mutex, a condition variable for the waiters. This is the
// textbook semaphore (and what std's own, long removed, `Semaphore` was): every release notifies.

/// `std::sync::Mutex<usize>` + `Condvar`.
pub struct StdSem {
    count: Mutex<usize>,
    cond: Condvar,
}

/// Gives one permit back to a [`StdSem`] when dropped.
pub struct StdPermit<'a>(&'a StdSem);

impl Drop for StdPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Gate for StdSem {
    const NAME: &'static str = "std";
    type Permit<'a> = StdPermit<'a>;

    fn new(permits: usize) -> Self {
        StdSem { count: Mutex::new(permits), cond: Condvar::new() }
    }

    #[inline]
    fn acquire(&self) -> StdPermit<'_> {
        let count = self.count.lock().unwrap();
        let mut count = self.cond.wait_while(count, |count| *count == 0).unwrap();
        *count -= 1;
        StdPermit(self)
    }

    #[inline]
    fn try_acquire(&self) -> Option<StdPermit<'_>> {
        let mut count = self.count.lock().unwrap();
        if *count == 0 {
            return None;
        }
        *count -= 1;
        Some(StdPermit(self))
    }

    #[inline]
    fn release(&self) {
        *self.count.lock().unwrap() += 1;
        self.cond.notify_one();
    }
}

/// `parking_lot::Mutex<usize>` + `Condvar`.
pub struct ParkingLotSem {
    count: parking_lot::Mutex<usize>,
    cond: parking_lot::Condvar,
}

/// Gives one permit back to a [`ParkingLotSem`] when dropped.
pub struct ParkingLotPermit<'a>(&'a ParkingLotSem);

impl Drop for ParkingLotPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Gate for ParkingLotSem {
    const NAME: &'static str = "parking_lot";
    type Permit<'a> = ParkingLotPermit<'a>;

    fn new(permits: usize) -> Self {
        ParkingLotSem { count: parking_lot::Mutex::new(permits), cond: parking_lot::Condvar::new() }
    }

    #[inline]
    fn acquire(&self) -> ParkingLotPermit<'_> {
        let mut count = self.count.lock();
        while *count == 0 {
            self.cond.wait(&mut count);
        }
        *count -= 1;
        ParkingLotPermit(self)
    }

    #[inline]
    fn try_acquire(&self) -> Option<ParkingLotPermit<'_>> {
        let mut count = self.count.lock();
        if *count == 0 {
            return None;
        }
        *count -= 1;
        Some(ParkingLotPermit(self))
    }

    #[inline]
    fn release(&self) {
        *self.count.lock() += 1;
        self.cond.notify_one();
    }
}

// ---------------------------------------------------------------------------------------------
// glibc's sem_t

/// A POSIX unnamed semaphore (`sem_init` with `pshared = 0`). Boxed: a `sem_t` must not move
/// after `sem_init`.
pub struct PosixSem {
    sem: Box<UnsafeCell<libc::sem_t>>,
}

// SAFETY: a `sem_t` is made to be used from many threads at once through a pointer to it: every
// access goes through `sem_wait`/`sem_trywait`/`sem_post`, which synchronize internally, and the
// box keeps its address fixed from `sem_init` to `sem_destroy`.
unsafe impl Sync for PosixSem {}
// SAFETY: as above; the semaphore is not tied to the thread that created it.
unsafe impl Send for PosixSem {}

/// Posts one permit back to a [`PosixSem`] when dropped.
pub struct PosixPermit<'a>(&'a PosixSem);

impl Drop for PosixPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Gate for PosixSem {
    const NAME: &'static str = "sem_t";
    type Permit<'a> = PosixPermit<'a>;

    fn new(permits: usize) -> Self {
        // SAFETY: an all-zero `sem_t` is a valid value to overwrite; `sem_init` below initializes
        // it before any other use.
        let sem = Box::new(UnsafeCell::new(unsafe { std::mem::zeroed::<libc::sem_t>() }));
        let value = libc::c_uint::try_from(permits).expect("permits fit in a C unsigned int");
        // SAFETY: the pointer is to a live, boxed (so never moving) `sem_t`, initialized once,
        // here, before it is shared; `pshared = 0` for a semaphore shared by threads only.
        let rc = unsafe { libc::sem_init(sem.get(), 0, value) };
        assert_eq!(rc, 0, "sem_init failed: {}", std::io::Error::last_os_error());
        PosixSem { sem }
    }

    #[inline]
    fn acquire(&self) -> PosixPermit<'_> {
        loop {
            // SAFETY: `self.sem` was initialized by `sem_init` in `new` and is destroyed only in
            // `drop`, which cannot run while `&self` is borrowed.
            if unsafe { libc::sem_wait(self.sem.get()) } == 0 {
                return PosixPermit(self);
            }
            let err = std::io::Error::last_os_error();
            assert_eq!(err.raw_os_error(), Some(libc::EINTR), "sem_wait failed: {err}");
        }
    }

    #[inline]
    fn try_acquire(&self) -> Option<PosixPermit<'_>> {
        // SAFETY: as in `acquire`.
        if unsafe { libc::sem_trywait(self.sem.get()) } == 0 { Some(PosixPermit(self)) } else { None }
    }

    #[inline]
    fn release(&self) {
        // SAFETY: as in `acquire`.
        let rc = unsafe { libc::sem_post(self.sem.get()) };
        debug_assert_eq!(rc, 0, "sem_post failed");
    }
}

impl Drop for PosixSem {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`; `&mut self` means no thread is using it, and nothing uses
        // it after this.
        unsafe { libc::sem_destroy(self.sem.get()) };
    }
}

// ---------------------------------------------------------------------------------------------
// The async semaphores, from plain threads

impl Gate for tokio::sync::Semaphore {
    const NAME: &'static str = "tokio";
    type Permit<'a> = tokio::sync::SemaphorePermit<'a>;

    fn new(permits: usize) -> Self {
        tokio::sync::Semaphore::new(permits)
    }

    #[inline]
    fn acquire(&self) -> Self::Permit<'_> {
        match tokio::sync::Semaphore::try_acquire(self) {
            Ok(permit) => permit,
            Err(_) => self.blocking_acquire().expect("the benchmarks never close a semaphore"),
        }
    }

    #[inline]
    fn try_acquire(&self) -> Option<Self::Permit<'_>> {
        tokio::sync::Semaphore::try_acquire(self).ok()
    }

    #[inline]
    fn release(&self) {
        self.add_permits(1);
    }

    #[inline]
    fn forget(permit: Self::Permit<'_>) {
        permit.forget();
    }
}

impl Gate for async_lock::Semaphore {
    const NAME: &'static str = "async-lock";
    type Permit<'a> = async_lock::SemaphoreGuard<'a>;

    fn new(permits: usize) -> Self {
        async_lock::Semaphore::new(permits)
    }

    #[inline]
    fn acquire(&self) -> Self::Permit<'_> {
        match async_lock::Semaphore::try_acquire(self) {
            Some(permit) => permit,
            None => self.acquire_blocking(),
        }
    }

    #[inline]
    fn try_acquire(&self) -> Option<Self::Permit<'_>> {
        async_lock::Semaphore::try_acquire(self)
    }

    #[inline]
    fn release(&self) {
        self.add_permits(1);
    }

    #[inline]
    fn forget(permit: Self::Permit<'_>) {
        permit.forget();
    }
}

// ---------------------------------------------------------------------------------------------
// The floor

/// One `fetch_sub` to "take", one `fetch_add` to "give back": what two atomic read-modify-writes
/// on one uncontended cache line cost. It never blocks, so it is no semaphore: it is only
/// measured on one thread.
pub struct Floor(AtomicUsize);

/// Does the floor's `fetch_add` when dropped.
pub struct FloorPermit<'a>(&'a Floor);

impl Drop for FloorPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Gate for Floor {
    const NAME: &'static str = "floor";
    type Permit<'a> = FloorPermit<'a>;

    fn new(permits: usize) -> Self {
        Floor(AtomicUsize::new(permits))
    }

    #[inline]
    fn acquire(&self) -> FloorPermit<'_> {
        // Acquire/Release: the orderings a semaphore's take and give-back need.
        self.0.fetch_sub(1, Ordering::Acquire);
        FloorPermit(self)
    }

    #[inline]
    fn try_acquire(&self) -> Option<FloorPermit<'_>> {
        Some(self.acquire())
    }

    #[inline]
    fn release(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// Runs `$body` once for each implementation (all but the floor), with `$gate` naming the type.
macro_rules! for_each_gate {
    ($gate:ident => $body:block) => {{
        {
            type $gate = futex_semaphore::Semaphore;
            $body
        }
        {
            type $gate = $crate::common::StdSem;
            $body
        }
        {
            type $gate = $crate::common::ParkingLotSem;
            $body
        }
        {
            type $gate = $crate::common::PosixSem;
            $body
        }
        {
            type $gate = tokio::sync::Semaphore;
            $body
        }
        {
            type $gate = async_lock::Semaphore;
            $body
        }
    }};
}

// ---------------------------------------------------------------------------------------------
// Workloads

/// Work units a thread does while it holds a permit (see [`work`]).
pub const HOLD: u32 = 20;
/// Work units a thread does between giving a permit back and asking for the next.
pub const BETWEEN: u32 = 60;

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
    let barrier = Barrier::new(threads);
    let runs: Vec<(Vec<u64>, Instant, Instant)> = thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut waits = Vec::with_capacity(ops);
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..ops {
                        let asked = Instant::now();
                        let permit = gate.acquire();
                        waits.push(asked.elapsed().as_nanos() as u64);
                        work(HOLD);
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

/// Where criterion writes its reports, found the way criterion finds it: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `criterion/` in the target directory that holds this
/// benchmark's executable (`target/release/deps/<bench>` is three levels below it).
pub fn criterion_dir() -> std::path::PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return std::path::PathBuf::from(target).join("criterion");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| "target/criterion".into())
}
