//! Loom models of every state transition of the engine.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom`.
//!
//! Under loom the futex is a loom `Mutex` + `Condvar` whose wake takes the lock, so a lost wakeup
//! leaves a thread blocked forever and loom fails the model with a deadlock. A timed wait times
//! out exactly where it would block, and the starvation bound is zero, so a waiter that wakes and
//! finds no permits claims the handoff on its next pass. `docs/design.md` maps each claim to the
//! model that checks it.
#![cfg(loom)]

use futex_semaphore::{Semaphore, TryAcquireError};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;
use std::time::Duration;

/// A long timeout: under loom the modelled futex decides when it fires, not the clock.
const LONG: Duration = Duration::from_secs(3600);

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

/// Two threads contend for one permit: never both inside, and the permit comes back.
#[test]
fn acquire_release_excludes_and_conserves() {
    model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let inside = Arc::new(AtomicUsize::new(0));
        let worker = {
            let (sem, inside) = (sem.clone(), inside.clone());
            thread::spawn(move || {
                let _p = sem.acquire().unwrap();
                assert_eq!(inside.fetch_add(1, SeqCst), 0);
                inside.fetch_sub(1, SeqCst);
            })
        };
        {
            let _p = sem.acquire().unwrap();
            assert_eq!(inside.fetch_add(1, SeqCst), 0);
            inside.fetch_sub(1, SeqCst);
        }
        worker.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
    });
}

/// Data written before a permit is given back is seen by the thread that takes it next.
#[test]
fn release_happens_before_acquire() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let data = Arc::new(loom::cell::UnsafeCell::new(0));
        let reader = {
            let (sem, data) = (sem.clone(), data.clone());
            thread::spawn(move || {
                let p = sem.acquire().unwrap();
                // Loom checks that this read is ordered after the write: a data race fails the model.
                assert_eq!(data.with(|v| unsafe_read(v)), 42);
                p.forget();
            })
        };
        data.with_mut(|v| unsafe_write(v, 42));
        sem.release();
        reader.join().unwrap();
    });
}

#[allow(clippy::undocumented_unsafe_blocks)]
fn unsafe_read(v: *const i32) -> i32 {
    // SAFETY: loom's UnsafeCell hands out a valid pointer and checks the access for races.
    unsafe { *v }
}

fn unsafe_write(v: *mut i32, x: i32) {
    // SAFETY: as above.
    unsafe { *v = x }
}

/// Two sleepers, two releases of one permit each: both wake (no lost wakeup, pitfall 1).
#[test]
fn two_waiters_two_releases_both_wake() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let sem = sem.clone();
                thread::spawn(move || sem.acquire().unwrap().forget())
            })
            .collect();
        sem.release();
        sem.release();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(sem.available_permits(), 0);
    });
}

/// A waiter for two permits and a waiter for one, fed one permit at a time: both finish.
/// A wake meant for the single-permit waiter is never spent on the two-permit one (pitfall 2).
#[test]
fn acquire_many_and_single_waiters_both_finish() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let many = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire_many(2).unwrap().forget())
        };
        let one = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire().unwrap().forget())
        };
        sem.release();
        sem.add_permits(2);
        many.join().unwrap();
        one.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
    });
}

/// A permit given back by a dropped guard wakes a sleeper (the `fetch_add` release path), and a
/// third thread barging in does not strand it: the sleeper that wakes to nothing claims the
/// handoff and gets the next permit.
#[test]
fn barging_and_handoff_do_not_strand_a_sleeper() {
    model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let holder = sem.acquire().unwrap();
        let sleeper = {
            let sem = sem.clone();
            thread::spawn(move || drop(sem.acquire().unwrap()))
        };
        let barger = {
            let sem = sem.clone();
            thread::spawn(move || drop(sem.acquire().unwrap()))
        };
        drop(holder);
        sleeper.join().unwrap();
        barger.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
    });
}

/// A timed waiter racing a release: whether it times out or not, no permit is lost, and a
/// blocking waiter beside it is not stranded by a wake the timed one swallowed (pitfall 6).
#[test]
fn timeout_racing_release_loses_nothing() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let timed = {
            let sem = sem.clone();
            thread::spawn(move || match sem.try_acquire_for(LONG) {
                Ok(p) => {
                    p.forget();
                    1
                }
                Err(e) => {
                    assert_eq!(e, TryAcquireError::NoPermits);
                    0
                }
            })
        };
        let blocking = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire().unwrap().forget())
        };
        sem.release();
        let timed_got = timed.join().unwrap();
        if timed_got == 1 {
            sem.release(); // the blocking waiter still needs one
        }
        blocking.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
    });
}

/// A timed multi-permit waiter that gives up while a single-permit waiter sleeps.
#[test]
fn timed_acquire_many_gives_up_without_stranding_single() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let timed = {
            let sem = sem.clone();
            thread::spawn(move || sem.try_acquire_many_for(2, LONG).map(|p| p.num_permits()).unwrap_or(0))
        };
        let one = {
            let sem = sem.clone();
            thread::spawn(move || drop(sem.acquire().unwrap()))
        };
        sem.release();
        one.join().unwrap();
        let got = timed.join().unwrap();
        // Either the timed waiter got nothing, or it got both after the single one gave its back.
        assert!(got == 0 || got == 2);
        assert_eq!(sem.available_permits(), 1);
    });
}

/// `close` racing a blocked acquire: the waiter wakes with an error, whatever the interleaving.
#[test]
fn close_wakes_blocked_acquires() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let waiters: Vec<_> = [1, 2]
            .into_iter()
            .map(|n| {
                let sem = sem.clone();
                thread::spawn(move || sem.acquire_many(n).is_err())
            })
            .collect();
        sem.close();
        for w in waiters {
            assert!(w.join().unwrap());
        }
        assert!(sem.try_acquire().is_err());
    });
}

/// `close` racing a release and a waiter: the waiter either got the permit before the close or
/// fails; the permit count stays exact.
#[test]
fn close_racing_release_and_acquire() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let waiter = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire().map(|p| p.forget()).is_ok())
        };
        let closer = {
            let sem = sem.clone();
            thread::spawn(move || sem.close())
        };
        sem.release();
        let got = waiter.join().unwrap();
        closer.join().unwrap();
        assert_eq!(sem.available_permits(), if got { 0 } else { 1 });
    });
}

/// Permits are conserved across try, many, forget_permits and add_permits from three threads.
#[test]
fn permits_are_conserved() {
    model(|| {
        let sem = Arc::new(Semaphore::new(2));
        let forgotten = Arc::new(AtomicUsize::new(0));
        let a = {
            let sem = sem.clone();
            thread::spawn(move || drop(sem.acquire_many(2).unwrap()))
        };
        let b = {
            let (sem, forgotten) = (sem.clone(), forgotten.clone());
            thread::spawn(move || {
                if let Ok(p) = sem.try_acquire() {
                    drop(p);
                }
                forgotten.fetch_add(sem.forget_permits(1), SeqCst);
            })
        };
        sem.add_permits(1);
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(sem.available_permits() + forgotten.load(SeqCst), 3);
    });
}

/// The handoff owner takes its permit while more came in: releases skipped the single-permit
/// sleepers meanwhile, so the owner wakes them for what is left.
#[test]
fn handoff_owner_wakes_sleepers_for_leftover_permits() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let sem = sem.clone();
                thread::spawn(move || sem.acquire().unwrap().forget())
            })
            .collect();
        sem.release();
        let barged = sem.try_acquire().ok(); // may take the permit a woken waiter wanted
        sem.release();
        sem.release();
        let barged = barged.map(|p| p.forget()).is_some();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(sem.available_permits(), if barged { 0 } else { 1 });
    });
}

/// A timed single-permit waiter that owns the handoff and gives up clears it, so a blocking
/// waiter is not held back by a reservation nobody will use.
#[test]
fn handoff_owner_timing_out_clears_the_handoff() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let timed = {
            let sem = sem.clone();
            thread::spawn(move || sem.try_acquire_for(LONG).map(|p| p.forget()).is_ok())
        };
        sem.release();
        let barged = sem.try_acquire().ok(); // may take the permit the timed waiter woke for
        let timed_got = timed.join().unwrap();
        assert!(!(timed_got && barged.is_some()), "one permit, two holders");
        let barged = barged.map(|p| p.forget()).is_some();
        if timed_got || barged {
            sem.release();
        }
        // No reservation is left behind: a free permit is free for anyone.
        sem.try_acquire().unwrap().forget();
    });
}
