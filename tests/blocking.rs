//! Blocking acquires: who wakes a waiter, exclusion under many threads, panics and owned permits.

#![cfg(not(loom))] // the loom models are in tests/loom.rs; these run on real threads

mod common;

use common::{PATIENCE, wait_for_waiters};
use futex_semaphore::{AcquireError, Semaphore};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

#[test]
fn a_waiter_is_woken_by_release() {
    let sem = Semaphore::new(0);
    thread::scope(|s| {
        let w = s.spawn(|| sem.acquire().unwrap().forget());
        wait_for_waiters(&sem, 1);
        sem.release();
        w.join().unwrap();
    });
    assert_eq!(sem.available_permits(), 0);
}

#[test]
fn a_waiter_is_woken_by_add_permits() {
    let sem = Semaphore::new(0);
    thread::scope(|s| {
        let w = s.spawn(|| sem.acquire_many(3).unwrap().num_permits());
        wait_for_waiters(&sem, 1);
        sem.add_permits(3);
        assert_eq!(w.join().unwrap(), 3);
    });
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn a_waiter_is_woken_by_a_dropped_permit() {
    let sem = Semaphore::new(1);
    let held = sem.acquire().unwrap();
    thread::scope(|s| {
        let w = s.spawn(|| drop(sem.acquire().unwrap()));
        wait_for_waiters(&sem, 1);
        drop(held);
        w.join().unwrap();
    });
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn close_wakes_every_waiter_with_an_error() {
    let sem = Semaphore::new(0);
    thread::scope(|s| {
        let sem = &sem;
        let waiters: Vec<_> = (1..=4u32).map(|n| s.spawn(move || sem.acquire_many(n).map(drop))).collect();
        let timed = s.spawn(|| sem.try_acquire_for(Duration::from_secs(3600)).map(drop));
        wait_for_waiters(sem, 5);
        sem.close();
        // A waiter that close left asleep fails the test instead of hanging it: after PATIENCE,
        // permits wake it (it then sees the close) and the test fails.
        let start = std::time::Instant::now();
        while !(waiters.iter().all(|w| w.is_finished()) && timed.is_finished()) {
            if start.elapsed() > PATIENCE {
                sem.add_permits(100);
                panic!("close left a waiter asleep for {PATIENCE:?}");
            }
            thread::yield_now();
        }
        for w in waiters {
            assert_eq!(w.join().unwrap(), Err(AcquireError));
        }
        assert!(timed.join().unwrap().is_err());
    });
}

#[test]
fn each_release_wakes_one_of_several_waiters() {
    let sem = Semaphore::new(0);
    let done = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                sem.acquire().unwrap().forget();
                done.fetch_add(1, SeqCst);
            });
        }
        wait_for_waiters(&sem, 4);
        for i in 1..=4 {
            sem.release();
            // Exactly one more waiter finishes per permit.
            let start = std::time::Instant::now();
            while done.load(SeqCst) < i {
                assert!(start.elapsed() < PATIENCE, "release {i} woke nobody");
                thread::yield_now();
            }
            assert_eq!(done.load(SeqCst), i);
        }
    });
}

#[test]
fn acquire_many_waiters_are_not_stuck_while_enough_permits_are_free() {
    let sem = Semaphore::new(0);
    thread::scope(|s| {
        let big = s.spawn(|| sem.acquire_many(5).unwrap().forget());
        let small: Vec<_> = (0..3).map(|_| s.spawn(|| sem.acquire().unwrap().forget())).collect();
        wait_for_waiters(&sem, 4);
        // One permit at a time: the single-permit waiters must get theirs even though a
        // five-permit waiter sleeps too; then five more go to the big one.
        for _ in 0..3 {
            sem.release();
        }
        for w in small {
            w.join().unwrap();
        }
        sem.add_permits(5);
        big.join().unwrap();
    });
    assert_eq!(sem.available_permits(), 0);
}

#[test]
fn mixed_sizes_all_finish() {
    let sem = Semaphore::new(4);
    thread::scope(|s| {
        for t in 0..8u32 {
            let sem = &sem;
            s.spawn(move || {
                for i in 0..2000u32 {
                    let n = 1 + (t + i) % 4;
                    let _p = sem.acquire_many(n).unwrap();
                }
            });
        }
    });
    assert_eq!(sem.available_permits(), 4);
}

#[test]
fn at_most_n_holders_at_once() {
    const PERMITS: usize = 3;
    let sem = Semaphore::new(PERMITS);
    let inside = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                for _ in 0..2000 {
                    let _p = sem.acquire().unwrap();
                    let now = inside.fetch_add(1, SeqCst) + 1;
                    peak.fetch_max(now, SeqCst);
                    assert!(now <= PERMITS, "{now} holders of {PERMITS} permits");
                    std::hint::spin_loop();
                    inside.fetch_sub(1, SeqCst);
                }
            });
        }
    });
    assert_eq!(sem.available_permits(), PERMITS);
    assert!(peak.load(SeqCst) >= 1);
}

#[test]
fn panicking_while_holding_a_permit_gives_it_back() {
    let sem = Arc::new(Semaphore::new(1));
    let holder = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            let _p = sem.acquire().unwrap();
            panic!("boom while holding a permit");
        })
    };
    assert!(holder.join().is_err());
    assert_eq!(sem.available_permits(), 1);
    // Not poisoned: it still works.
    assert!(sem.try_acquire().is_ok());
}

#[test]
fn a_thread_exiting_with_an_owned_permit_gives_it_back() {
    let sem = Arc::new(Semaphore::new(2));
    let (tx, rx) = mpsc::channel();
    let permit = Arc::clone(&sem).acquire_owned().unwrap();
    let t = thread::spawn(move || {
        let _p = permit;
        tx.send(()).unwrap();
    });
    rx.recv().unwrap();
    t.join().unwrap();
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn owned_permits_pass_between_threads() {
    let sem = Arc::new(Semaphore::new(1));
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        let producer_sem = &sem;
        s.spawn(move || {
            for _ in 0..100 {
                tx.send(Arc::clone(producer_sem).acquire_owned().unwrap()).unwrap();
            }
        });
        s.spawn(move || {
            for permit in rx.iter().take(100) {
                assert_eq!(permit.num_permits(), 1);
                drop(permit); // lets the producer acquire the next one
            }
        });
    });
    assert_eq!(sem.available_permits(), 1);
}
