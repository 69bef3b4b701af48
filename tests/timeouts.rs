//! Timed acquires: they give up near their deadline, lose no permit, and succeed when a permit
//! comes in time. Timing bounds are loose: the machine is shared.

#![cfg(not(loom))] // the loom models are in tests/loom.rs; these run on real threads

mod common;

use common::wait_for_waiters;
use futex_semaphore::{Semaphore, TryAcquireError};
use std::thread;
use std::time::{Duration, Instant};

const SHORT: Duration = Duration::from_millis(50);
/// Far more than any scheduling delay on a loaded machine should add.
const SLACK: Duration = Duration::from_secs(5);

#[test]
fn timeout_returns_no_permits_near_the_deadline() {
    let sem = Semaphore::new(0);
    let mut took = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        assert_eq!(sem.try_acquire_for(SHORT).unwrap_err(), TryAcquireError::NoPermits);
        took.push(start.elapsed());
    }
    assert!(took.iter().all(|&t| t >= SHORT), "returned early: {took:?}");
    assert!(took.iter().all(|&t| t < SHORT + SLACK), "returned late: {took:?}");
    // Near the deadline: the quickest of three within 250 ms of it (a loaded machine delays a
    // wake by milliseconds; a wait that sleeps past its deadline, by a clock or rounding error,
    // by far more).
    let quickest = took.iter().min().unwrap();
    assert!(*quickest < SHORT + Duration::from_millis(250), "none returned near the deadline: {took:?}");
    assert_eq!(sem.available_permits(), 0);
}

#[test]
fn deadline_returns_no_permits_after_the_deadline() {
    let sem = Semaphore::new(1);
    let _held = sem.acquire().unwrap();
    let deadline = Instant::now() + SHORT;
    assert_eq!(sem.try_acquire_many_until(1, deadline).unwrap_err(), TryAcquireError::NoPermits);
    assert!(Instant::now() >= deadline);
}

#[test]
fn timed_many_waits_for_all_permits_and_takes_none_on_timeout() {
    let sem = Semaphore::new(2);
    assert_eq!(sem.try_acquire_many_for(3, SHORT).unwrap_err(), TryAcquireError::NoPermits);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn a_timed_waiter_gets_a_permit_released_before_its_deadline() {
    let sem = Semaphore::new(0);
    thread::scope(|s| {
        let w = s.spawn(|| sem.try_acquire_for(Duration::from_secs(60)).map(|p| p.forget()));
        wait_for_waiters(&sem, 1);
        sem.release();
        assert_eq!(w.join().unwrap(), Ok(()));
    });
    assert_eq!(sem.available_permits(), 0);
}

#[test]
fn duration_max_waits_until_released() {
    let sem = Semaphore::new(0);
    thread::scope(|s| {
        let w = s.spawn(|| sem.try_acquire_many_for(2, Duration::MAX).map(|p| p.num_permits()));
        wait_for_waiters(&sem, 1);
        sem.add_permits(2);
        assert_eq!(w.join().unwrap(), Ok(2));
    });
}

#[test]
fn timeouts_racing_releases_lose_no_permit() {
    let sem = Semaphore::new(0);
    let mut got = 0usize;
    thread::scope(|s| {
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut got = 0;
                    for _ in 0..200 {
                        if let Ok(p) = sem.try_acquire_for(Duration::from_micros(200)) {
                            p.forget();
                            got += 1;
                        }
                    }
                    got
                })
            })
            .collect();
        s.spawn(|| {
            for _ in 0..400 {
                sem.release();
                thread::yield_now();
            }
        });
        for w in waiters {
            got += w.join().unwrap();
        }
    });
    // Every released permit was either taken (and counted) or is still there.
    assert_eq!(got + sem.available_permits(), 400);
}

#[test]
fn a_timed_out_waiter_does_not_strand_a_blocking_one() {
    // The timed waiter queues behind the blocking one and gives up. On a loaded machine it may
    // time out before it is ever queued, which tests nothing: such rounds are tried again.
    let mut queued_rounds = 0;
    for _ in 0..20 {
        let sem = Semaphore::new(0);
        thread::scope(|s| {
            let blocking = s.spawn(|| sem.acquire().unwrap().forget());
            wait_for_waiters(&sem, 1);
            let timed = s.spawn(|| sem.try_acquire_for(SHORT).is_ok());
            let mut seen_queued = false;
            while !timed.is_finished() {
                seen_queued |= sem.queued_waiters() == 2;
                thread::yield_now();
            }
            assert!(!timed.join().unwrap());
            queued_rounds += usize::from(seen_queued);
            sem.release();
            blocking.join().unwrap();
        });
        if queued_rounds > 0 {
            break;
        }
    }
    assert!(queued_rounds > 0, "in 20 rounds the timed waiter never queued before its deadline");
}

// ---- `try_acquire_many_while`: a wait that asks between its sleeps whether to go on. ----------

/// Its deadline ends it as a timed acquire's does; the check ran between sleeps, and the waiter
/// left the queue.
#[test]
fn a_checked_wait_ends_at_its_deadline_and_leaves_the_queue() {
    // A check that would fall after the deadline is not made, so a waiter that a loaded machine
    // kept from its first sleep until then makes none, rightly: such rounds are tried again.
    let mut checked = false;
    for _ in 0..10 {
        let sem = Semaphore::new(0);
        let mut checks = 0;
        let start = Instant::now();
        let result = sem.try_acquire_many_while(1, Some(start + SHORT), SHORT / 10, || {
            checks += 1;
            true
        });
        let took = start.elapsed();
        assert_eq!(result.unwrap_err(), TryAcquireError::NoPermits);
        assert!(took >= SHORT && took < SHORT + SLACK, "returned after {took:?}");
        assert_eq!((sem.available_permits(), sem.queued_waiters()), (0, 0));
        checked = checks >= 1;
        if checked {
            break;
        }
    }
    assert!(checked, "in 10 waits of {SHORT:?}, no check of those due every {:?} ran", SHORT / 10);
}

/// A check that says to stop ends the wait at once, without the permits, and the waiter leaves;
/// a permit released afterwards is free.
#[test]
fn a_check_that_says_stop_ends_the_wait() {
    let sem = Semaphore::new(0);
    let mut checks = 0;
    let result = sem.try_acquire_many_while(2, None, Duration::from_millis(1), || {
        checks += 1;
        checks < 3
    });
    assert_eq!(result.unwrap_err(), TryAcquireError::NoPermits);
    assert_eq!(checks, 3, "the wait ended at the first `false`");
    assert_eq!(sem.queued_waiters(), 0);
    sem.add_permits(2);
    assert_eq!(sem.try_acquire_many(2).unwrap().num_permits(), 2);
}

/// Permits that come while the check runs are taken, even by a check that then says stop: they
/// are not left behind (the end of a wait looks once more, as at a deadline).
#[test]
fn permits_released_during_a_check_are_taken() {
    let sem = Semaphore::new(0);
    let permit = sem.try_acquire_many_while(1, None, Duration::from_millis(1), || {
        sem.release(); // from the check itself: the semaphore may be used there
        false
    });
    let permit = permit.unwrap();
    assert_eq!(permit.num_permits(), 1);
    assert_eq!((sem.available_permits(), sem.queued_waiters()), (0, 0));
}

/// A close wakes a checked waiter with an error, as any waiter.
#[test]
fn close_ends_a_checked_wait() {
    let sem = Semaphore::new(0);
    thread::scope(|s| {
        let waiter = s.spawn(|| sem.try_acquire_many_while(1, None, SLACK, || true).map(|p| p.num_permits()));
        wait_for_waiters(&sem, 1);
        sem.close();
        assert_eq!(waiter.join().unwrap().unwrap_err(), TryAcquireError::Closed);
    });
    assert_eq!(sem.try_acquire_many_while(0, None, SLACK, || true).unwrap_err(), TryAcquireError::Closed);
}

/// A release serves a checked waiter between its checks, as any waiter, and an empty request
/// on an open semaphore is granted at once, without a check.
#[test]
fn a_release_serves_a_checked_waiter() {
    let sem = Semaphore::new(0);
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            sem.try_acquire_many_while(1, None, SLACK, || panic!("no check within {SLACK:?}")).map(drop)
        });
        wait_for_waiters(&sem, 1);
        sem.release();
        assert!(waiter.join().unwrap().is_ok());
    });
    assert_eq!(
        sem.try_acquire_many_while(0, None, SLACK, || panic!("an empty request waits for nothing"))
            .unwrap()
            .num_permits(),
        0
    );
}

/// A check that panics ends the wait with its panic, out of the queue: no entry is left behind
/// to be served one day (its permits lost with it, and the next waiter stranded), and a permit
/// released while the check ran is given back, not kept by the unwinding waiter.
#[test]
fn a_check_that_panics_leaves_the_queue_and_loses_no_permit() {
    for release_in_the_check in [false, true] {
        let sem = Semaphore::new(0);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sem.try_acquire_many_while(1, None, Duration::from_millis(1), || {
                if release_in_the_check {
                    sem.release();
                }
                std::panic::panic_any("the check failed")
            })
        }));
        let payload = unwound.expect_err("the check's panic goes on");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"the check failed"));
        assert_eq!(sem.queued_waiters(), 0, "the panicking waiter left the queue");
        assert_eq!(sem.available_permits(), usize::from(release_in_the_check));
        // An entry left behind would have been the starving head by now, and served.
        thread::sleep(Duration::from_millis(3));
        sem.release();
        let expected = 1 + usize::from(release_in_the_check);
        assert_eq!(sem.available_permits(), expected, "the release went to nobody");
        assert!(sem.try_acquire_many_for(expected as u32, SLACK).is_ok());
    }
}
