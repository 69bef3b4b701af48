//! Loom models of every state transition of the engine.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom`.
//!
//! Under loom the futex is a loom `Mutex` + `Condvar` whose wake takes the lock, so a lost wakeup
//! leaves a thread blocked forever and loom fails the model with a deadlock. A timed wait times
//! out exactly where it would block. Time does not pass, so the queue's head counts as starving
//! once a walk has passed it over, and the next walk gives it a reservation (the "handoff" in
//! some model names below). `docs/design.md` maps each claim to the model that checks it.
#![cfg(loom)]

use futex_semaphore::{BoundedSemaphore, Semaphore, TryAcquireError};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
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
                assert_eq!(data.with(unsafe_read), 42);
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
/// third thread barging in does not strand it: the sleeper that wakes to nothing gets a
/// reservation and the next permit.
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

/// Two fast-path takes from one guess (the word the last release left, here `new`'s): the loser's
/// CAS fails and its second, from the word that CAS returned, takes the other permit; neither
/// makes nor loses one.
#[test]
fn fast_path_takes_from_a_stale_guess_conserve_permits() {
    model(|| {
        let sem = Arc::new(Semaphore::new(2));
        let other = {
            let sem = sem.clone();
            thread::spawn(move || sem.try_acquire().map(|p| p.forget()).is_ok())
        };
        let mine = sem.try_acquire().map(|p| p.forget()).is_ok();
        let theirs = other.join().unwrap();
        assert!(mine && theirs, "two permits for two takes: {mine} {theirs}");
        assert_eq!(sem.available_permits(), 0, "each take took its own permit");
        sem.add_permits(2);
        assert_eq!(sem.available_permits(), 2);
    });
}

/// Releases of a `BoundedSemaphore` that race one permit below its bound: exactly one is
/// accepted, and the count never passes the bound (its check and its add are one CAS).
#[test]
fn racing_bounded_releases_never_pass_the_bound() {
    model(|| {
        let sem = Arc::new(BoundedSemaphore::new(2));
        sem.acquire().unwrap().forget();
        let other = {
            let sem = sem.clone();
            thread::spawn(move || sem.release().is_ok())
        };
        let mine = sem.release().is_ok();
        let theirs = other.join().unwrap();
        assert!(mine ^ theirs, "exactly one release fits below the bound: {mine} {theirs}");
        assert_eq!(sem.available_permits(), 2);
    });
}

/// A reservation's owner is served while more permits came in: the walk that serves it wakes the
/// other sleepers for what is left.
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

/// A timed single-permit waiter that owns a reservation and gives up ends it, so a blocking
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

/// A waiter whose check ends its wait (`try_acquire_many_while`) leaves the queue like a timed-out
/// one: the wake a release sent it, if any, passes to the blocking waiter beside it, and no permit
/// is lost, whether the release came before, during or after the check.
#[test]
fn a_checked_waiter_that_gives_up_strands_no_one() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let checked = {
            let sem = sem.clone();
            thread::spawn(move || {
                sem.try_acquire_many_while(1, None, LONG, || false).map(|p| p.forget()).is_ok()
            })
        };
        let blocking = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire().unwrap().forget())
        };
        sem.release();
        if checked.join().unwrap() {
            sem.release(); // the blocking waiter still needs one
        }
        blocking.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
    });
}

/// A waiter whose check says to go on waits on, still queued: a release that comes before or
/// after its check serves it, and if its second check ends the wait first, the permit stays free.
#[test]
fn a_checked_waiter_waits_on_across_a_check() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let checked = {
            let sem = sem.clone();
            thread::spawn(move || {
                let mut checks = 0;
                let keep_waiting = || {
                    checks += 1;
                    checks < 2
                };
                sem.try_acquire_many_while(1, None, LONG, keep_waiting).map(|p| p.forget()).is_ok()
            })
        };
        sem.release();
        let got = checked.join().unwrap();
        assert_eq!(sem.available_permits(), if got { 0 } else { 1 });
        assert_eq!(sem.queued_waiters(), 0);
    });
}

/// A thread in its check (`keep_waiting`: user code, which may run long) is not chosen to watch a
/// reservation: the thread held back after it becomes the watcher and sees the lapse. Chosen, the
/// checker was woken to watch, the other slept without a timeout, and the check here waits for
/// that other thread to get in: a loom livelock.
#[test]
fn a_thread_in_its_check_is_not_chosen_to_watch() {
    model(|| {
        let sem = Arc::new(Semaphore::new(2));
        let (first, second) = (sem.acquire().unwrap(), sem.acquire().unwrap());
        let owner = spawn_acquire_many(&sem, 2);
        wait_for_waiters(&sem, 1);
        let (in_check, got_in) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let checked = {
            let (sem, in_check, got_in) = (sem.clone(), in_check.clone(), got_in.clone());
            thread::spawn(move || {
                let keep_waiting = || {
                    in_check.store(true, SeqCst);
                    while !got_in.load(SeqCst) {
                        thread::yield_now();
                    }
                    false
                };
                sem.try_acquire_many_while(1, None, LONG, keep_waiting).map(drop).is_ok()
            })
        };
        while !in_check.load(SeqCst) {
            thread::yield_now();
        }
        sem.add_permits(0); // passes the owner over: the next walk claims for it
        drop(second); // claims for it, and holds the permit for it
        let third = sem.acquire().unwrap(); // held back: it watches, and sees the lapse
        got_in.store(true, SeqCst);
        drop((first, third));
        let _ = checked.join().unwrap();
        assert_eq!(owner.join().unwrap(), 2);
        assert!(no_waiters(&sem));
    });
}

/// A child made by `fork` finds the parent's queued threads in its copy of the queue; they never
/// run there. Its first section takes them out, so a release in the child serves the child's own
/// waiter (or leaves the permit free), never a ghost: no wake and no permit spent on one.
#[test]
fn a_fork_child_serves_its_own_waiters_not_the_parents() {
    model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let held = sem.acquire().unwrap();
        sem.__loom_queue_a_ghost(1); // a parent's thread, asleep in `acquire` at the fork
        sem.__loom_fork();
        let waiter = {
            let sem = sem.clone();
            thread::spawn(move || drop(sem.acquire().unwrap()))
        };
        drop(held);
        waiter.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(sem.queued_waiters(), 0);
    });
}

/// The forking thread itself may be queued (it forked inside its `keep_waiting`): the child's
/// first section takes its entry out with the others, and its wait queues again rather than
/// take the missing entry for a served one (which would make a permit from nothing).
#[test]
fn a_waiter_that_forks_inside_its_check_queues_again() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let checked = {
            let sem = sem.clone();
            thread::spawn(move || {
                let mut checks = 0;
                let keep_waiting = || {
                    checks += 1;
                    if checks == 1 {
                        sem.__loom_fork();
                    }
                    checks < 2
                };
                sem.try_acquire_many_while(1, None, LONG, keep_waiting).map(drop).is_ok()
            })
        };
        sem.release();
        checked.join().unwrap();
        assert_eq!(sem.available_permits(), 1, "a permit made or lost");
        assert_eq!(sem.queued_waiters(), 0);
    });
}

// ---- Async waiters: tasks in the queue beside threads. ------------------------------------------
//
// A task is a loom thread running `loom::future::block_on`, which parks the thread until the
// task's waker is called: a notification that never comes leaves it parked, and loom reports the
// deadlock, as for a lost futex wake.

/// Polls a future once with a waker that does nothing, as an executor that then drops the task
/// would: returns whether it completed (dropping the output).
fn poll_once<F: std::future::Future + Unpin>(fut: &mut F) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(fut).poll(&mut cx).is_ready()
}

/// Whether no waiter is queued.
fn no_waiters(sem: &Semaphore) -> bool {
    sem.queued_waiters() == 0
}

/// A task and a thread wait for one permit, which each gives back when done: both finish.
/// The release wakes whichever of them the queue serves first; the other gets the permit back.
#[test]
fn async_and_blocking_waiters_share_one_permit() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let task = {
            let sem = sem.clone();
            thread::spawn(move || drop(loom::future::block_on(sem.acquire_async()).unwrap()))
        };
        let blocking = {
            let sem = sem.clone();
            thread::spawn(move || drop(sem.acquire().unwrap()))
        };
        sem.release();
        task.join().unwrap();
        blocking.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
        assert!(no_waiters(&sem));
    });
}

/// Two tasks, two releases of one permit each: both tasks finish. The second release must not be
/// absorbed by the first task's wake when that task has not run yet (the walk counts it in
/// `inflight` and wakes the next one).
#[test]
fn two_async_waiters_two_releases_both_finish() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let sem = sem.clone();
                thread::spawn(move || loom::future::block_on(sem.acquire_async()).unwrap().forget())
            })
            .collect();
        sem.release();
        sem.release();
        for t in tasks {
            t.join().unwrap();
        }
        assert_eq!(sem.available_permits(), 0);
    });
}

/// A future polled once and dropped, before or after the release woke it, racing a blocked
/// thread: the thread gets the permit, and the dropped future leaves no waiter behind.
#[test]
fn dropped_async_waiter_does_not_strand_a_blocking_waiter() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let blocking = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire().unwrap().forget())
        };
        let dropper = {
            let sem = sem.clone();
            thread::spawn(move || {
                let mut fut = sem.acquire_async();
                let got = poll_once(&mut fut); // a permit it got goes straight back
                drop(fut);
                got
            })
        };
        sem.release();
        dropper.join().unwrap();
        blocking.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
        assert!(no_waiters(&sem));
    });
}

/// A future that was woken and then dropped without being polled again passes the wake on to
/// another task: the waiting task gets the permit.
#[test]
fn woken_then_dropped_async_waiter_passes_the_wake_on() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let dropper = {
            let sem = sem.clone();
            thread::spawn(move || {
                let mut fut = sem.acquire_async();
                poll_once(&mut fut);
                drop(fut);
            })
        };
        let task = {
            let sem = sem.clone();
            thread::spawn(move || loom::future::block_on(sem.acquire_async()).unwrap().forget())
        };
        sem.release();
        dropper.join().unwrap();
        task.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
        assert!(no_waiters(&sem));
    });
}

/// `close` wakes waiting tasks, single- and multi-permit, with an error.
#[test]
fn close_wakes_async_waiters() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let tasks: Vec<_> = [1, 2]
            .into_iter()
            .map(|n| {
                let sem = sem.clone();
                thread::spawn(move || loom::future::block_on(sem.acquire_many_async(n)).is_err())
            })
            .collect();
        sem.close();
        for t in tasks {
            assert!(t.join().unwrap());
        }
        assert!(no_waiters(&sem));
    });
}

/// A task woken for a permit that a barging thread takes first is woken again when the barger
/// gives it back: after it finds nothing, it listens again *before* its last re-check, so a
/// release in between is not lost. (The future is registered before its thread starts, an owned
/// one, so that the losing interleaving fits in two preemptions.)
#[test]
fn async_waiter_robbed_by_a_barger_is_woken_again() {
    model(|| {
        let sem = std::sync::Arc::new(Semaphore::new(0));
        let mut fut = std::sync::Arc::clone(&sem).acquire_owned_async();
        assert!(!poll_once(&mut fut));
        let task = thread::spawn(move || loom::future::block_on(fut).unwrap().forget());
        sem.release();
        if let Ok(p) = sem.try_acquire() {
            drop(p); // gives it back: the task must hear of it
        }
        task.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
    });
}

/// A blocked thread owns a reservation while a task waits: the walk that serves the owner must
/// wake the task for the permits left over.
#[test]
fn handoff_owner_notifies_async_waiters_for_leftover_permits() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let blocking = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire().unwrap().forget())
        };
        let task = {
            let sem = sem.clone();
            thread::spawn(move || loom::future::block_on(sem.acquire_async()).unwrap().forget())
        };
        sem.release();
        let barged = sem.try_acquire().ok(); // may take the permit a woken waiter wanted
        sem.release();
        sem.release();
        let barged = barged.map(|p| p.forget()).is_some();
        blocking.join().unwrap();
        task.join().unwrap();
        assert_eq!(sem.available_permits(), if barged { 0 } else { 1 });
    });
}

/// A task for two permits and a task for one, fed one permit at a time: both finish. While a
/// release wakes only the waiters its permits serve, so the wake a single-permit task needs is
/// never spent on the two-permit one.
#[test]
fn async_acquire_many_and_single_waiters_both_finish() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let many = {
            let sem = sem.clone();
            thread::spawn(move || loom::future::block_on(sem.acquire_many_async(2)).unwrap().forget())
        };
        let one = {
            let sem = sem.clone();
            thread::spawn(move || loom::future::block_on(sem.acquire_async()).unwrap().forget())
        };
        sem.release();
        one.join().unwrap(); // one permit is there: the single-permit task must get it
        sem.add_permits(2);
        many.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
    });
}

// ---- The reservation: priority for a starving waiter, and its lapse. --------------------------
//
// Under loom a queue's head is starving once a walk has passed it over (`Entry::starving`), so
// `add_permits(0)` (a walk that serves nobody) followed by a release claims a reservation for it.
// The clock never lapses one; a held-back thread's timed wait does, wherever it would block, and
// a held-back task after one yield.

/// Waits until `n` waiters are queued (a spin loop loom can schedule).
fn wait_for_waiters(sem: &Semaphore, n: usize) {
    while sem.queued_waiters() != n {
        thread::yield_now();
    }
}

/// Spawns a thread that takes `n` permits with a blocking acquire and keeps them.
fn spawn_acquire_many(sem: &Arc<Semaphore>, n: u32) -> thread::JoinHandle<u32> {
    let sem = sem.clone();
    thread::spawn(move || {
        let p = sem.acquire_many(n).unwrap();
        let got = p.num_permits() as u32;
        p.forget();
        got
    })
}

/// A reservation for two permits holds back the permit its owner needs from a `try_acquire`, but
/// not the permits beyond what it needs; its owner is served once enough are there.
#[test]
fn reservation_for_many_holds_back_only_what_its_owner_needs() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let owner = spawn_acquire_many(&sem, 2);
        wait_for_waiters(&sem, 1);
        sem.add_permits(0);
        sem.release(); // claims the reservation: 1 free, the owner needs 2
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits, "took a reserved permit");
        sem.add_permits(2); // 3 free: the owner's 2 and one for anyone
        sem.try_acquire().expect("a permit beyond the reservation").forget();
        assert_eq!(owner.join().unwrap(), 2);
        assert_eq!(sem.available_permits(), 0);
    });
}

/// The same with a task as the reservation's owner.
#[test]
fn a_task_owns_a_reservation_and_is_served() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let owner = {
            let sem = sem.clone();
            thread::spawn(move || loom::future::block_on(sem.acquire_many_async(2)).unwrap().forget())
        };
        wait_for_waiters(&sem, 1);
        sem.add_permits(0);
        sem.release();
        assert!(sem.try_acquire().is_err(), "took a permit reserved for the task");
        sem.release();
        owner.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
    });
}

/// A holder that needs a second permit before it gives back its first, behind a reservation that
/// holds the free permit back: the reservation lapses (the held-back waiter sees it out), so the
/// program still finishes, as it would under plain barging. `second` is how the holder asks.
fn holder_needing_more_finishes_behind_a_reservation(second: fn(&Semaphore) -> futex_semaphore::Permit<'_>) {
    model(move || {
        let sem = Arc::new(Semaphore::new(2));
        let (first, other) = (sem.acquire().unwrap(), sem.acquire().unwrap());
        let owner = spawn_acquire_many(&sem, 2);
        wait_for_waiters(&sem, 1);
        sem.add_permits(0);
        drop(other); // claims the reservation; the free permit is the owner's
        let second = second(&sem); // held back until the lapse
        drop((first, second));
        assert_eq!(owner.join().unwrap(), 2);
    });
}

/// A thread held back: its timed sleep sees the lapse.
#[test]
fn a_reservation_lapses_for_a_held_back_thread() {
    holder_needing_more_finishes_behind_a_reservation(|sem| sem.acquire().unwrap());
}

/// A task held back: it has no timer, so it yields until the lapse.
#[test]
fn a_reservation_lapses_for_a_held_back_task() {
    holder_needing_more_finishes_behind_a_reservation(|sem| {
        loom::future::block_on(sem.acquire_async()).unwrap()
    });
}

/// A task held back first becomes the watcher, and is then never polled again (leaked, or its
/// executor stopped): a thread held back after it takes the watch over and sees the lapse, so
/// the holder that needs a second permit still finishes.
#[test]
fn a_thread_takes_the_watch_over_from_a_task_never_polled_again() {
    model(|| {
        let sem = Arc::new(Semaphore::new(2));
        let (first, other) = (sem.acquire().unwrap(), sem.acquire().unwrap());
        let owner = spawn_acquire_many(&sem, 2);
        wait_for_waiters(&sem, 1);
        sem.add_permits(0);
        drop(other); // claims the reservation; the free permit is the owner's
        let mut stalled = sem.acquire_async();
        assert!(!poll_once(&mut stalled), "held back"); // the watcher, never polled again
        let second = sem.acquire().unwrap(); // held back until the lapse
        drop((first, second));
        assert_eq!(owner.join().unwrap(), 2);
        drop(stalled);
        assert_eq!(sem.available_permits(), 0);
    });
}

/// A task woken to watch a reservation and then never polled again (leaked, or its executor
/// stopped) still counts as on its way to take its permit: a thread needing that permit too,
/// held back by the reservation once more come back, must count as held back all the same
/// (invariant 2: choosing a watcher, a thread is held back by what is free but for threads'
/// wakes), so that it is given the
/// watch and sees the lapse; it slept on without a timeout, and the owner behind it for ever.
#[test]
fn a_thread_does_not_wait_for_a_woken_task_never_polled_again() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let owner = spawn_acquire_many(&sem, 3);
        wait_for_waiters(&sem, 1);
        let mut stalled = sem.acquire_async();
        assert!(!poll_once(&mut stalled)); // queued, never polled again
        let sleeper = spawn_acquire_many(&sem, 2);
        wait_for_waiters(&sem, 3);
        sem.add_permits(0);
        sem.add_permits(1); // claims for the owner; the task, held back, is woken to watch
        sem.add_permits(1); // the sleeper is held back too: given the watch, it sees the lapse
        assert_eq!(sleeper.join().unwrap(), 2);
        drop(stalled);
        sem.add_permits(3);
        assert_eq!(owner.join().unwrap(), 3);
        assert!(no_waiters(&sem));
    });
}

/// A task with priority at the head, never polled again (its executor's only worker may be this
/// very thread, blocked in the acquire), when a release brings back all it asked for while a
/// thread waits behind it: the permits are held for the task, which is woken, not granted to it,
/// so the thread, held back, watches, sees the lapse and takes one. Granted, the thread slept on
/// for good. (Without a priority, the release wakes the thread for the permits free: the unit
/// test `a_release_wakes_a_thread_behind_a_woken_task_for_the_same_permits`; under loom the
/// clock claims a priority before any release here.)
#[test]
fn a_task_with_priority_is_not_granted_permits_while_a_thread_waits() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let mut stalled = sem.acquire_many_async(2);
        assert!(!poll_once(&mut stalled)); // queued, never polled again
        let sleeper = spawn_acquire_many(&sem, 1);
        wait_for_waiters(&sem, 2);
        sem.add_permits(0); // passes the head over: the next walk claims for it
        sem.add_permits(2); // claims for the task and holds both for it; the sleeper watches
        assert_eq!(sleeper.join().unwrap(), 1); // and kept
        drop(stalled);
        assert!(no_waiters(&sem));
        assert_eq!(sem.available_permits(), 1);
    });
}

/// Spawns a thread that passes the queue's head over and then releases one permit: the walk of
/// that release claims the priority for the head and serves it.
fn spawn_release_with_priority(sem: &Arc<Semaphore>) -> thread::JoinHandle<()> {
    let sem = sem.clone();
    thread::spawn(move || {
        sem.add_permits(0); // passes the head over: the next walk claims for it
        sem.add_permits(1);
    })
}

/// A task with priority whose permits come back while this thread (its executor's only worker,
/// say) is busy, and that then asks for one with a blocking acquire, before or after the
/// release: queued before, it holds the permits back for the task (the rule of the model below);
/// after, they were granted to the task, and the thread, short, sleeps until the grant's lapse and
/// takes them back (invariant 7), as under plain barging it would have taken them. Not taken back,
/// they never came back (the task runs only after this acquire returns): a loom livelock.
#[test]
fn a_task_with_priority_is_not_granted_permits_a_thread_may_ask_for_before_it_runs() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let mut task = sem.acquire_async();
        assert!(!poll_once(&mut task)); // queued
        let releaser = spawn_release_with_priority(&sem);
        let permit = sem.acquire().unwrap();
        releaser.join().unwrap();
        drop(permit);
        assert!(poll_once(&mut task), "the task did not get the permit back");
        assert!(no_waiters(&sem));
    });
}

/// As the model above, for a grant made in the walk that found the task starving, where the
/// permits covered it and no thread waited: served at once, with no reservation and no clock
/// read for it, so its lapse starts when a thread first looks at it (`queue::Lapse::After`). The
/// thread that then asks (the task's executor's only worker, say) sleeps until that lapse and
/// takes the permit back. Given no lapse, it slept untimed, and the task never ran: a loom
/// deadlock.
#[test]
fn a_grant_made_at_once_lapses_from_a_threads_look() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let mut task = sem.acquire_async();
        // Queued; its section's walk passed it over, so the next walk finds it starving (loom's
        // clock: `Entry::starving`), with nothing reserved for it yet.
        assert!(!poll_once(&mut task));
        sem.add_permits(1); // served at once
        let permit = sem.acquire().unwrap();
        drop(permit);
        assert!(poll_once(&mut task), "the task did not get the permit back");
        assert!(no_waiters(&sem));
        assert_eq!(sem.available_permits(), 1, "a permit made or lost"); // the task's, given back
    });
}

/// A grant to a task, its claim by the task's poll and a thread that takes it back at its lapse,
/// racing: exactly one of the two has the permit (the task's claim and the revocation are each
/// one RMW of the grant; a task that finds its entry gone under the lock claims it there), the
/// other gets it when it comes back, and none is made.
#[test]
fn a_tasks_claim_of_its_grant_races_a_thread_taking_it_back() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let mut task = sem.acquire_async();
        assert!(!poll_once(&mut task)); // queued
        let releaser = spawn_release_with_priority(&sem);
        let thread = {
            let sem = sem.clone();
            thread::spawn(move || drop(sem.acquire().unwrap()))
        };
        while !poll_once(&mut task) {
            thread::yield_now(); // its permit, once it has it, is given back at once
        }
        releaser.join().unwrap();
        thread.join().unwrap();
        assert!(no_waiters(&sem));
        assert_eq!(sem.available_permits(), 1, "a permit made or lost");
    });
}

/// As the model below, with a task queued before the sleeper: a walk that chooses the watcher
/// among them chooses the thread, sure to see the lapse, over the task, which is never polled
/// again.
#[test]
fn a_walk_chooses_a_thread_to_watch_before_a_task() {
    model(|| {
        let sem = Arc::new(Semaphore::new(2));
        let (first, other) = (sem.acquire().unwrap(), sem.acquire().unwrap());
        let owner = spawn_acquire_many(&sem, 2);
        wait_for_waiters(&sem, 1);
        let mut stalled = sem.acquire_async();
        assert!(!poll_once(&mut stalled)); // queued, never polled again
        let sleeper = spawn_acquire_many(&sem, 1);
        wait_for_waiters(&sem, 3);
        sem.add_permits(0);
        drop(other); // claims for the owner; the task and the sleeper are held back
        assert_eq!(sleeper.join().unwrap(), 1);
        drop(first);
        sem.release();
        assert_eq!(owner.join().unwrap(), 2);
        drop(stalled);
    });
}

/// A thread that went to sleep before it was held back (it needed more than was free), held back
/// only after a task that is never polled again became the watcher: the walk that holds it back
/// gives it the watch (it is woken to become it), so it sees the lapse. (4 permits: under loom
/// the task is woken rather than timed, so its request counts as on its way.)
#[test]
fn a_sleeper_held_back_after_a_task_became_the_watcher_takes_the_watch() {
    model(|| {
        let sem = Arc::new(Semaphore::new(4));
        sem.acquire_many(4).unwrap().forget();
        let owner = spawn_acquire_many(&sem, 4);
        wait_for_waiters(&sem, 1);
        let mut stalled = sem.acquire_async();
        assert!(!poll_once(&mut stalled)); // queued, never polled again
        let sleeper = spawn_acquire_many(&sem, 2);
        wait_for_waiters(&sem, 3);
        sem.add_permits(0); // passes the head over: the next walk claims for it
        sem.add_permits(1); // claims for the owner; only the task is held back: its watcher
        sem.add_permits(2); // the sleeper is held back now too
        assert_eq!(sleeper.join().unwrap(), 2);
        sem.add_permits(3);
        assert_eq!(owner.join().unwrap(), 4);
        drop(stalled);
    });
}

/// A waiter that was already asleep when a reservation began holding back the permit it needs is
/// woken to see the reservation out (queue invariant 5): it does not sleep on beside it.
#[test]
fn a_sleeper_held_back_by_a_new_reservation_is_woken_to_see_it_out() {
    model(|| {
        let sem = Arc::new(Semaphore::new(2));
        let (first, other) = (sem.acquire().unwrap(), sem.acquire().unwrap());
        let owner = spawn_acquire_many(&sem, 2);
        wait_for_waiters(&sem, 1);
        let sleeper = spawn_acquire_many(&sem, 1);
        wait_for_waiters(&sem, 2);
        sem.add_permits(0);
        drop(other); // claims for the owner (head); the sleeper is held back from the free permit
        assert_eq!(sleeper.join().unwrap(), 1);
        drop(first);
        sem.release();
        assert_eq!(owner.join().unwrap(), 2);
    });
}

/// A reservation's owner that gives up (a dropped future, a timed-out thread) passes it on: a
/// blocked thread gets the permit, and no permit is lost.
#[test]
fn a_cancelled_reservation_owner_passes_it_on() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let owner = {
            let sem = sem.clone();
            thread::spawn(move || {
                let mut fut = sem.acquire_many_async(2);
                assert!(!poll_once(&mut fut));
                sem.add_permits(0); // a walk passes it over: the next one reserves for it
                assert!(!poll_once(&mut fut));
                drop(fut);
            })
        };
        let blocked = spawn_acquire_many(&sem, 1);
        sem.release();
        owner.join().unwrap();
        assert_eq!(blocked.join().unwrap(), 1);
        assert_eq!(sem.available_permits(), 0);
        assert!(no_waiters(&sem));
    });
}

/// The same with a timed thread as the owner that times out.
#[test]
fn a_timed_out_reservation_owner_passes_it_on() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let owner = {
            let sem = sem.clone();
            thread::spawn(move || sem.try_acquire_many_for(2, LONG).map(|p| p.forget()).is_ok())
        };
        // No waiting for it to queue: its modelled timeout may fire first, and it leaves.
        sem.add_permits(0);
        let blocked = spawn_acquire_many(&sem, 1);
        sem.release();
        let owner_got = owner.join().unwrap();
        if owner_got {
            sem.add_permits(2); // it took the first permit and one more: as if it never came
        }
        assert_eq!(blocked.join().unwrap(), 1);
    });
}

/// `close` while a reservation holds: its owner and a held-back waiter fail (or the held-back one
/// saw the reservation out first and took the permit); nothing is left reserved.
#[test]
fn close_while_a_reservation_holds() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let owner = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire_many(2).map(|p| p.forget()).is_ok())
        };
        wait_for_waiters(&sem, 1);
        sem.add_permits(0);
        sem.release();
        let other = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire().map(|p| p.forget()).is_ok())
        };
        sem.close();
        assert!(!owner.join().unwrap(), "the owner got 2 permits of 1");
        let other_got = other.join().unwrap();
        assert_eq!(sem.available_permits(), if other_got { 0 } else { 1 });
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
        assert!(no_waiters(&sem));
    });
}

/// Permits beyond what a reservation's owner needs are free for anyone at every moment, also
/// between a release's RMW and the walk that serves the owner.
#[test]
fn permits_beyond_a_reservation_are_free_before_it_is_served() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let owner = spawn_acquire_many(&sem, 2);
        wait_for_waiters(&sem, 1);
        sem.add_permits(0);
        sem.release(); // the owner has priority: 1 free, it needs 2
        let added = Arc::new(AtomicUsize::new(0));
        let taker = {
            let (sem, added) = (sem.clone(), added.clone());
            thread::spawn(move || {
                // Once 3 are free (before the walk serves the owner) or the walk is done (2 went
                // to the owner): one permit is free for anyone.
                while sem.available_permits() < 3 && added.load(SeqCst) == 0 {
                    thread::yield_now();
                }
                sem.try_acquire().map(|p| p.forget()).is_ok()
            })
        };
        sem.add_permits(2);
        added.store(1, SeqCst);
        assert!(taker.join().unwrap(), "a permit beyond the reservation was held back");
        assert_eq!(owner.join().unwrap(), 2);
        assert_eq!(sem.available_permits(), 0);
    });
}

/// A waiter woken for a permit that a barger took gives the wake back when it re-checks (queue
/// invariant 2): the next release still wakes a waiter, and both waiters finish.
#[test]
fn a_robbed_waiter_does_not_cost_the_next_one_its_wake() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let first = spawn_acquire_many(&sem, 1);
        let second = spawn_acquire_many(&sem, 1);
        wait_for_waiters(&sem, 2);
        sem.release();
        let robbed = sem.try_acquire().map(|p| p.forget()).is_ok();
        sem.release();
        if robbed {
            sem.release();
        }
        first.join().unwrap();
        second.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
    });
}

// `forget_permits` racing the paths that hand permits to a waiter with priority. The permits
// that exist and the permits held are one word (`Ledger`), so that a holder's check sees both at
// one instant: with two words, a holder between its count and its look at the capacity could
// see a permit that another holder gave back, and the forgetter then removed, as one it holds
// ("2 held of 1" on a correct semaphore: `docs/reliability.md`).

/// Permits held (low half) and permits that exist (high half), in one word.
struct Ledger {
    sem: Semaphore,
    word: AtomicUsize,
}

const HALF: u32 = usize::BITS / 2;

impl Ledger {
    fn new(permits: usize) -> Arc<Ledger> {
        Arc::new(Ledger { sem: Semaphore::new(permits), word: AtomicUsize::new(permits << HALF) })
    }

    /// A holder of one permit enters (right after its acquire) and leaves (right before it gives
    /// the permit back): never more holders than permits.
    fn hold(&self) {
        let before = self.word.fetch_add(1, SeqCst);
        let (held, exist) = ((before & ((1 << HALF) - 1)) + 1, before >> HALF);
        assert!(held <= exist, "{held} permits held of {exist}");
        self.word.fetch_sub(1, SeqCst);
    }

    /// Forgets a permit if one is free and gives it back: the count of permits that exist falls
    /// after the forget and rises before the add.
    fn forget_one_and_add_it_back(&self) {
        let forgotten = self.sem.forget_permits(1);
        self.word.fetch_sub(forgotten << HALF, SeqCst);
        self.word.fetch_add(forgotten << HALF, SeqCst);
        self.sem.add_permits(forgotten);
    }
}

/// A thread that forgets a free permit and adds it back, racing the walk that serves a task with
/// priority: the walk's compare-and-swap takes the task's permit only if it is still there (a
/// forget between its look and its CAS leaves the task waiting for the add), so the task never
/// holds a permit that the forget removed, and the count comes back whole.
#[test]
fn forget_racing_the_walk_that_serves_a_task_with_priority() {
    a_task_with_priority_served_while_a_thread_forgets(false);
}

/// The same with `close` after the forget and its add-back: the task gets the permit (before the
/// close) or fails, and the count comes back whole.
#[test]
fn forget_and_close_racing_a_task_with_priority() {
    a_task_with_priority_served_while_a_thread_forgets(true);
}

/// A task waits behind a permit this thread holds; another thread forgets a free permit, adds it
/// back and, if `then_close`, closes; this thread gives the task priority and releases.
fn a_task_with_priority_served_while_a_thread_forgets(then_close: bool) {
    model(move || {
        let ledger = Ledger::new(1);
        let held = ledger.sem.acquire().unwrap();
        let task = {
            let ledger = ledger.clone();
            thread::spawn(move || match loom::future::block_on(ledger.sem.acquire_async()) {
                Ok(permit) => {
                    ledger.hold();
                    drop(permit);
                    true
                }
                Err(_) => false,
            })
        };
        wait_for_waiters(&ledger.sem, 1);
        let forgetter = {
            let ledger = ledger.clone();
            thread::spawn(move || {
                ledger.forget_one_and_add_it_back();
                if then_close {
                    ledger.sem.close();
                }
            })
        };
        ledger.sem.add_permits(0); // passes the task over: the release's walk gives it priority
        drop(held);
        forgetter.join().unwrap();
        let served = task.join().unwrap();
        assert!(served || then_close, "the task failed, and nothing closed");
        assert_eq!(ledger.sem.available_permits(), 1, "a permit made or lost");
    });
}

/// A thread that forgets a free permit and adds it back, racing a grant to a task and its
/// revocation by the task's own executor thread (invariant 7), and then the task's claim.
#[test]
fn forget_racing_a_grant_to_a_task_and_its_revocation() {
    model(|| {
        let ledger = Ledger::new(0);
        let executor = {
            let ledger = ledger.clone();
            thread::spawn(move || {
                let mut task = ledger.sem.acquire_async();
                assert!(!poll_once(&mut task)); // queued
                let permit = ledger.sem.acquire().unwrap(); // the grant's lapse takes it back
                ledger.hold();
                drop(permit);
                while !poll_once(&mut task) {
                    thread::yield_now(); // its permit, once it has it, is given back at once
                }
            })
        };
        while no_waiters(&ledger.sem) {
            thread::yield_now(); // the task queued (its thread may queue too, or not yet)
        }
        let forgetter = {
            let ledger = ledger.clone();
            thread::spawn(move || ledger.forget_one_and_add_it_back())
        };
        ledger.sem.add_permits(0); // passes the task over: the next walk gives it priority
        ledger.word.fetch_add(1 << HALF, SeqCst); // a permit comes to exist before it is added
        ledger.sem.add_permits(1);
        forgetter.join().unwrap();
        executor.join().unwrap();
        assert_eq!(ledger.sem.available_permits(), 1, "a permit made or lost");
    });
}
