//! The implementations every scenario compares, behind one trait ([`Gate`]; [`ManyGate`] adds
//! `acquire_many` where an implementation has it), so each one runs exactly the same loop.
//!
//! | name              | what it is                                                            |
//! |-------------------|-----------------------------------------------------------------------|
//! | `futex-semaphore` | this crate's [`Semaphore`], through its RAII [`Permit`]                |
//! | `std`             | `std::sync::Mutex<usize>` + `Condvar` (`notify_one` on every release)  |
//! | `parking_lot`     | `parking_lot::Mutex` + `Condvar`, the same code                        |
//! | `sem_t`           | glibc's POSIX semaphore through `libc` (`sem_wait`/`sem_post`)         |
//! | `tokio`           | `tokio::sync::Semaphore`: `try_acquire`, else `blocking_acquire`       |
//! | `async-lock`      | `async_lock::Semaphore`: `try_acquire`, else `acquire_blocking`        |
//! | `floor`           | one `fetch_sub` + one `fetch_add` on an `AtomicUsize`: never waits and |
//! |                   | ignores the limit, so no semaphore can beat it (a reference, no peer)  |
//! | `spin`            | a spinning gate: load + CAS to take, `fetch_add` to give back; never   |
//! |                   | sleeps (a reference for the handoff, no peer)                          |

use super::posix::PosixSemaphore;
use futex_semaphore::{Permit, Semaphore};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

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

/// The guard of the gates that give one permit back with [`Gate::release`] (std, sem_t, the floor,
/// the spinning gate): it calls it when dropped.
pub struct GiveBack<'a, G: Gate>(&'a G);

impl<G: Gate> Drop for GiveBack<'_, G> {
    #[inline]
    fn drop(&mut self) {
        self.0.release();
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

impl Gate for StdSem {
    const NAME: &'static str = "std";
    type Permit<'a> = GiveBack<'a, Self>;

    fn new(permits: usize) -> Self {
        StdSem { count: Mutex::new(permits), cond: Condvar::new() }
    }

    #[inline]
    fn acquire(&self) -> GiveBack<'_, Self> {
        let count = self.count.lock().unwrap();
        let mut count = self.cond.wait_while(count, |count| *count == 0).unwrap();
        *count -= 1;
        GiveBack(self)
    }

    #[inline]
    fn try_acquire(&self) -> Option<GiveBack<'_, Self>> {
        let mut count = self.count.lock().unwrap();
        if *count == 0 {
            return None;
        }
        *count -= 1;
        Some(GiveBack(self))
    }

    #[inline]
    fn release(&self) {
        *self.count.lock().unwrap() += 1;
        self.cond.notify_one();
    }
}

/// `parking_lot::Mutex` + `Condvar`: the same code as [`StdSem`], and also the multi-permit
/// [`ManyGate`] peer: a release notifies every waiter while a multi-permit request waits (a
/// `notify_one` could wake a waiter the permit cannot serve and leave one it can asleep).
pub struct ParkingLotSem {
    count: parking_lot::Mutex<Count>,
    cond: parking_lot::Condvar,
}

/// The state under [`ParkingLotSem`]'s mutex.
struct Count {
    free: usize,
    /// Waiters asking for more than one permit.
    many: usize,
}

/// Gives its permits back to a [`ParkingLotSem`] when dropped.
pub struct ParkingLotPermit<'a>(&'a ParkingLotSem, usize);

impl Drop for ParkingLotPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.release_n(self.1);
    }
}

impl ParkingLotSem {
    fn take(&self, n: usize) -> ParkingLotPermit<'_> {
        let mut count = self.count.lock();
        if count.free < n {
            let many = n > 1;
            count.many += usize::from(many);
            while count.free < n {
                self.cond.wait(&mut count);
            }
            count.many -= usize::from(many);
        }
        count.free -= n;
        ParkingLotPermit(self, n)
    }

    fn release_n(&self, n: usize) {
        let many = {
            let mut count = self.count.lock();
            count.free += n;
            count.many > 0
        };
        if many || n > 1 {
            self.cond.notify_all();
        } else {
            self.cond.notify_one();
        }
    }
}

impl Gate for ParkingLotSem {
    const NAME: &'static str = "parking_lot";
    type Permit<'a> = ParkingLotPermit<'a>;

    fn new(permits: usize) -> Self {
        ParkingLotSem {
            count: parking_lot::Mutex::new(Count { free: permits, many: 0 }),
            cond: parking_lot::Condvar::new(),
        }
    }

    #[inline]
    fn acquire(&self) -> ParkingLotPermit<'_> {
        self.take(1)
    }

    #[inline]
    fn try_acquire(&self) -> Option<ParkingLotPermit<'_>> {
        let mut count = self.count.lock();
        if count.free == 0 {
            return None;
        }
        count.free -= 1;
        Some(ParkingLotPermit(self, 1))
    }

    #[inline]
    fn release(&self) {
        self.release_n(1);
    }
}

// ---------------------------------------------------------------------------------------------
// glibc's sem_t

impl Gate for PosixSemaphore {
    const NAME: &'static str = "sem_t";
    type Permit<'a> = GiveBack<'a, Self>;

    fn new(permits: usize) -> Self {
        PosixSemaphore::unnamed(permits)
    }

    #[inline]
    fn acquire(&self) -> GiveBack<'_, Self> {
        self.wait();
        GiveBack(self)
    }

    #[inline]
    fn try_acquire(&self) -> Option<GiveBack<'_, Self>> {
        self.try_wait().then(|| GiveBack(self))
    }

    #[inline]
    fn release(&self) {
        self.post();
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
/// cost. It never blocks and ignores the permit limit, so it is no semaphore: on one thread it is
/// the cost of the two operations, on many the throughput no semaphore can pass.
pub struct Floor(AtomicUsize);

impl Gate for Floor {
    const NAME: &'static str = "floor";
    type Permit<'a> = GiveBack<'a, Self>;

    fn new(permits: usize) -> Self {
        Floor(AtomicUsize::new(permits))
    }

    #[inline]
    fn acquire(&self) -> GiveBack<'_, Self> {
        // Acquire/Release: the orderings a semaphore's take and give-back need.
        self.0.fetch_sub(1, Ordering::Acquire);
        GiveBack(self)
    }

    #[inline]
    fn try_acquire(&self) -> Option<GiveBack<'_, Self>> {
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
            type $gate = $crate::common::PosixSemaphore;
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
// The spinning gate

/// A semaphore that never sleeps: a load and a compare-and-swap to take a permit, spinning (with
/// `spin_loop` hints) until one is free, and a `fetch_add` to give it back. What a handoff costs
/// when both threads have a core and nobody enters the kernel; on one CPU it spins away the
/// releaser's time slice.
pub struct SpinGate(AtomicUsize);

impl Gate for SpinGate {
    const NAME: &'static str = "spin";
    type Permit<'a> = GiveBack<'a, Self>;

    fn new(permits: usize) -> Self {
        SpinGate(AtomicUsize::new(permits))
    }

    #[inline]
    fn acquire(&self) -> GiveBack<'_, Self> {
        loop {
            if let Some(permit) = self.try_acquire() {
                return permit;
            }
            std::hint::spin_loop();
        }
    }

    #[inline]
    fn try_acquire(&self) -> Option<GiveBack<'_, Self>> {
        let free = self.0.load(Ordering::Relaxed);
        // Acquire: pairs with the Release `fetch_add` that gave this permit back. (`then`, not
        // `then_some`: a guard built for a failed attempt would give back a permit when dropped.)
        (free > 0 && self.0.compare_exchange(free, free - 1, Ordering::Acquire, Ordering::Relaxed).is_ok())
            .then(|| GiveBack(self))
    }

    #[inline]
    fn release(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------------------------
// Several permits at once

/// A [`Gate`] that can take several permits in one request (the fairness scenarios and the
/// mixed-size wait tail). sem_t and async-lock have no such call, and two single acquires are not
/// one request.
pub trait ManyGate: Gate {
    /// Takes `n` permits at once, blocking until there are `n`.
    fn acquire_many(&self, n: u32) -> Self::Permit<'_>;
}

impl ManyGate for Semaphore {
    fn acquire_many(&self, n: u32) -> Permit<'_> {
        Semaphore::acquire_many(self, n).expect("the benchmarks never close a semaphore")
    }
}

impl ManyGate for tokio::sync::Semaphore {
    fn acquire_many(&self, n: u32) -> Self::Permit<'_> {
        match tokio::sync::Semaphore::try_acquire_many(self, n) {
            Ok(permit) => permit,
            Err(_) => self.blocking_acquire_many(n).expect("the benchmarks never close a semaphore"),
        }
    }
}

impl ManyGate for ParkingLotSem {
    fn acquire_many(&self, n: u32) -> ParkingLotPermit<'_> {
        self.take(n as usize)
    }
}

/// Runs `$body` once for each [`ManyGate`], with `$gate` naming the type.
macro_rules! for_each_many_gate {
    ($gate:ident => $body:block) => {{
        {
            type $gate = futex_semaphore::Semaphore;
            $body
        }
        {
            type $gate = $crate::common::ParkingLotSem;
            $body
        }
        {
            type $gate = tokio::sync::Semaphore;
            $body
        }
    }};
}
