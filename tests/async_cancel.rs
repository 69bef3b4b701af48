//! Cancel safety: dropping a pending `acquire_async` future, before or after a release woke it,
//! loses no permit and strands no other waiter. Each test fails (a wrong count, or a waiter that
//! never finishes within `PATIENCE`) if a permit or a wakeup went missing.

#![cfg(not(loom))] // the loom models are in tests/loom.rs; these run on real threads

mod common;

use common::{PATIENCE, wait_for_waiters};
use futex_semaphore::Semaphore;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, SeqCst);
    }
}

/// Polls once with a waker that raises `flag`.
fn poll_with<F: Future + Unpin>(fut: &mut F, flag: &Arc<Flag>) -> Poll<F::Output> {
    let waker = Waker::from(Arc::clone(flag));
    Pin::new(fut).poll(&mut Context::from_waker(&waker))
}

fn no_waiters(sem: &Semaphore) -> bool {
    format!("{sem:?}").contains("waiters: 0,")
}

/// The first waiting task is woken by a release and then dropped without running: the wake
/// passes to the second task.
#[test]
fn a_woken_then_dropped_future_passes_the_wake_on() {
    let sem = Semaphore::new(0);
    let (first_flag, second_flag) = (Arc::default(), Arc::default());
    let mut first = sem.acquire_async();
    let mut second = sem.acquire_async();
    assert!(poll_with(&mut first, &first_flag).is_pending());
    assert!(poll_with(&mut second, &second_flag).is_pending());
    sem.release();
    assert!(first_flag.0.load(SeqCst), "the release woke the first waiter");
    assert!(!second_flag.0.load(SeqCst), "one permit, one wake");
    drop(first);
    assert!(second_flag.0.load(SeqCst), "the dropped waiter's wake was not passed on");
    assert!(matches!(poll_with(&mut second, &second_flag), Poll::Ready(Ok(_))));
}

/// A pending future dropped while a thread waits too: the next release still reaches the thread.
#[test]
fn a_dropped_pending_future_does_not_strand_a_thread() {
    let sem = Semaphore::new(0);
    thread::scope(|s| {
        let (done_tx, done_rx) = mpsc::channel();
        let sem = &sem;
        s.spawn(move || {
            sem.acquire().unwrap().forget();
            done_tx.send(()).unwrap();
        });
        wait_for_waiters(sem, 1);
        let mut fut = sem.acquire_async();
        assert!(poll_with(&mut fut, &Arc::default()).is_pending());
        sem.release(); // wakes the thread, and notifies the future
        drop(fut); // ... which never uses it
        done_rx.recv_timeout(PATIENCE).expect("the blocked thread was stranded");
    });
    assert_eq!(sem.available_permits(), 0);
    assert!(no_waiters(&sem));
}

/// Tasks that time out while waiting, racing releases: at the end every permit is back and the
/// tasks that never gave up all got theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_racing_releases_lose_no_permit() {
    const PERMITS: usize = 2;
    let sem = Arc::new(Semaphore::new(PERMITS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64u64 {
        let sem = Arc::clone(&sem);
        tasks.spawn(async move {
            for round in 0..50u64 {
                if (i + round) % 3 == 0 {
                    // Patient: must always get its permit.
                    let _p = sem.acquire_async().await.unwrap();
                    tokio::task::yield_now().await;
                } else {
                    let wait = Duration::from_micros((i * 7 + round * 13) % 200);
                    if let Ok(p) = tokio::time::timeout(wait, sem.acquire_async()).await {
                        let _p = p.unwrap();
                        tokio::task::yield_now().await;
                    }
                }
            }
        });
    }
    tokio::time::timeout(PATIENCE, async {
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
    })
    .await
    .expect("a task waited for ever: a wakeup was lost");
    assert_eq!(sem.available_permits(), PERMITS);
    assert!(no_waiters(&sem));
}

/// `select!` drops the acquire branch whenever the other branch wins: the dropped acquires pass on
/// whatever wakes they had, so the patient tasks all finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_dropping_acquires_strands_nobody() {
    let sem = Arc::new(Semaphore::new(1));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32usize {
        let sem = Arc::clone(&sem);
        tasks.spawn(async move {
            for _ in 0..100 {
                if i % 4 == 0 {
                    let _p = sem.acquire_async().await.unwrap();
                    tokio::task::yield_now().await;
                } else {
                    tokio::select! {
                        p = sem.acquire_async() => {
                            let _p = p.unwrap();
                            tokio::task::yield_now().await;
                        }
                        () = tokio::task::yield_now() => {}
                    }
                }
            }
        });
    }
    tokio::time::timeout(PATIENCE, async {
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
    })
    .await
    .expect("a task waited for ever: a wakeup was lost");
    assert_eq!(sem.available_permits(), 1);
    assert!(no_waiters(&sem));
}

/// The same with another executor: `futures-lite`'s `or` drops the losing acquire, on several OS
/// threads at once, beside threads using the blocking acquire.
#[test]
fn racing_acquires_dropped_by_futures_lite_strand_nobody() {
    use futures_lite::future;
    let sem = Semaphore::new(1);
    thread::scope(|s| {
        let (done_tx, done_rx) = mpsc::channel();
        for t in 0..6 {
            let (sem, done_tx) = (&sem, done_tx.clone());
            s.spawn(move || {
                for _ in 0..2_000 {
                    match t % 3 {
                        0 => drop(sem.acquire().unwrap()),
                        1 => drop(future::block_on(sem.acquire_async()).unwrap()),
                        _ => future::block_on(future::or(
                            async { drop(sem.acquire_async().await.unwrap()) },
                            future::yield_now(),
                        )),
                    }
                }
                done_tx.send(()).unwrap();
            });
        }
        for _ in 0..6 {
            done_rx.recv_timeout(PATIENCE).expect("a thread waited for ever: a wakeup was lost");
        }
    });
    assert_eq!(sem.available_permits(), 1);
    assert!(no_waiters(&sem));
}

/// Tasks that registered first are aborted right after the release that woke them, before they
/// can run: each abort drops a woken future, whose wake must go on to the patient tasks queued
/// behind. Every patient task gets its permit.
#[test]
fn aborted_woken_tasks_pass_their_wakes_to_the_patient_ones() {
    const CANCELLED: usize = 16;
    const PATIENT: usize = 16;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let sem = Arc::new(Semaphore::new(0));
    // First in the queue: tasks that give back at once whatever they get, then wait for ever
    // (until aborted).
    let cancelled: Vec<_> = (0..CANCELLED)
        .map(|_| {
            let sem = Arc::clone(&sem);
            rt.spawn(async move {
                drop(sem.acquire_async().await);
                std::future::pending::<()>().await;
            })
        })
        .collect();
    wait_for_waiters(&sem, CANCELLED);
    let (done_tx, done_rx) = mpsc::channel();
    for _ in 0..PATIENT {
        let (sem, done_tx) = (Arc::clone(&sem), done_tx.clone());
        rt.spawn(async move {
            sem.acquire_async().await.unwrap().forget();
            done_tx.send(()).unwrap();
        });
    }
    wait_for_waiters(&sem, CANCELLED + PATIENT);
    for task in &cancelled {
        sem.release(); // wakes the first not-yet-woken waiter: a task about to be aborted
        task.abort();
    }
    for _ in 0..PATIENT - CANCELLED.min(PATIENT) {
        sem.release();
    }
    for _ in 0..PATIENT {
        done_rx.recv_timeout(PATIENCE).expect("a patient task was stranded: a wakeup was lost");
    }
    assert_eq!(sem.available_permits(), 0);
    drop(rt);
    assert!(no_waiters(&sem));
}
