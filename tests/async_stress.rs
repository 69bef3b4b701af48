//! Stress: many tasks (and threads) on few permits, checking the holder bound all along and the
//! permit count at the end.

#![cfg(not(loom))] // the loom models are in tests/loom.rs; these run on real threads

mod common;

use common::PATIENCE;
use futex_semaphore::Semaphore;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::thread;

const PERMITS: usize = 3;

/// Counts holders; panics if more than `PERMITS` hold at once.
#[derive(Default)]
struct Inside(AtomicUsize);

impl Inside {
    fn enter(&self, n: usize) {
        let now = self.0.fetch_add(n, SeqCst) + n;
        assert!(now <= PERMITS, "{now} permits held of {PERMITS}");
    }

    fn leave(&self, n: usize) {
        self.0.fetch_sub(n, SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_keep_the_bound_and_the_count() {
    let sem = Arc::new(Semaphore::new(PERMITS));
    let inside = Arc::new(Inside::default());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000u32 {
        let (sem, inside) = (Arc::clone(&sem), Arc::clone(&inside));
        tasks.spawn(async move {
            for round in 0..20u32 {
                // Mostly single permits, with a few tasks asking for two now and then: while one
                // of those waits, every release wakes every waiting task, and a mix of half and
                // half would make this test quadratic (see `acquire_many_async`).
                let n = if i % 50 == 0 { 1 + round % 2 } else { 1 };
                if round % 2 == 0 {
                    let permit = Arc::clone(&sem).acquire_many_owned_async(n).await.unwrap();
                    inside.enter(n as usize);
                    tokio::task::yield_now().await;
                    inside.leave(n as usize);
                    drop(permit);
                } else {
                    let permit = sem.acquire_many_async(n).await.unwrap();
                    inside.enter(n as usize);
                    tokio::task::yield_now().await;
                    inside.leave(n as usize);
                    drop(permit);
                }
            }
        });
    }
    tokio::time::timeout(PATIENCE * 3, async {
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
    })
    .await
    .expect("tasks waited for ever: a wakeup was lost");
    assert_eq!(sem.available_permits(), PERMITS);
    assert_eq!(sem.queued_waiters(), 0);
}

/// Threads with the blocking acquire and tasks with the async one, on one semaphore at once.
#[test]
fn threads_and_tasks_together_keep_the_bound_and_the_count() {
    let sem = Arc::new(Semaphore::new(PERMITS));
    let inside = Arc::new(Inside::default());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let (sem, inside, done_tx) = (Arc::clone(&sem), Arc::clone(&inside), done_tx.clone());
            thread::spawn(move || {
                for round in 0..3_000u32 {
                    let n = 1 + (t + round) % 2;
                    let permit = sem.acquire_many(n).unwrap();
                    inside.enter(n as usize);
                    std::hint::spin_loop();
                    inside.leave(n as usize);
                    drop(permit);
                }
                done_tx.send(()).unwrap();
            })
        })
        .collect();
    for i in 0..200u32 {
        let (sem, inside, done_tx) = (Arc::clone(&sem), Arc::clone(&inside), done_tx.clone());
        rt.spawn(async move {
            for round in 0..60u32 {
                // Threads alternate sizes; a tenth of the tasks do (see the 1000-task test).
                let n = if i % 10 == 0 { 1 + round % 2 } else { 1 };
                let permit = sem.acquire_many_async(n).await.unwrap();
                inside.enter(n as usize);
                tokio::task::yield_now().await;
                inside.leave(n as usize);
                drop(permit);
            }
            done_tx.send(()).unwrap();
        });
    }
    for _ in 0..204 {
        done_rx.recv_timeout(PATIENCE * 3).expect("a waiter waited for ever: a wakeup was lost");
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(sem.available_permits(), PERMITS);
    assert_eq!(sem.queued_waiters(), 0);
}

/// A second executor: several OS threads, each running many acquires at once with
/// `futures-lite`'s `block_on` over a `zip` tree.
#[test]
fn futures_lite_executors_keep_the_bound_and_the_count() {
    use futures_lite::future;
    let sem = Semaphore::new(PERMITS);
    let inside = Inside::default();
    let worker = |id: u32| {
        let (sem, inside) = (&sem, &inside);
        async move {
            for round in 0..500u32 {
                let n = 1 + (id + round) % 2;
                let permit = sem.acquire_many_async(n).await.unwrap();
                inside.enter(n as usize);
                future::yield_now().await;
                inside.leave(n as usize);
                drop(permit);
            }
        }
    };
    thread::scope(|s| {
        for t in 0..4u32 {
            let worker = &worker;
            s.spawn(move || {
                let base = t * 4;
                future::block_on(future::zip(
                    future::zip(worker(base), worker(base + 1)),
                    future::zip(worker(base + 2), worker(base + 3)),
                ));
            });
        }
    });
    assert_eq!(sem.available_permits(), PERMITS);
    assert_eq!(inside.0.load(SeqCst), 0);
}

/// Many tasks wait, then permits come one by one faster than the woken tasks can run: each
/// release must wake a task not woken yet, or some task waits for ever.
#[test]
fn a_burst_of_releases_wakes_every_waiting_task() {
    const TASKS: usize = 200;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let sem = Arc::new(Semaphore::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    for _ in 0..TASKS {
        let (sem, done_tx) = (Arc::clone(&sem), done_tx.clone());
        rt.spawn(async move {
            sem.acquire_async().await.unwrap().forget();
            done_tx.send(()).unwrap();
        });
    }
    common::wait_for_waiters(&sem, TASKS);
    for _ in 0..TASKS {
        sem.release();
    }
    for _ in 0..TASKS {
        done_rx.recv_timeout(PATIENCE).expect("a task was never woken: a release's wake was lost");
    }
    assert_eq!(sem.available_permits(), 0);
}
