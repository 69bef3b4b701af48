//! The async acquires' behaviour, driven by hand (a waker that records its wake) where the order
//! of events matters, and by `pollster` otherwise: no runtime needed.

#![cfg(not(loom))] // the loom models are in tests/loom.rs; these run on real threads

mod common;

use common::{PATIENCE, wait_for_waiters};
use futex_semaphore::{AcquireError, BoundedSemaphore, Semaphore};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Instant;

/// A waker that counts its wakes.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A future under test, with its own counting waker.
struct Driven<F> {
    fut: F,
    wakes: Arc<Count>,
}

impl<F: Future + Unpin> Driven<F> {
    fn new(fut: F) -> Self {
        Driven { fut, wakes: Arc::default() }
    }

    fn poll(&mut self) -> Poll<F::Output> {
        let waker = Waker::from(Arc::clone(&self.wakes));
        Pin::new(&mut self.fut).poll(&mut Context::from_waker(&waker))
    }

    fn woken(&self) -> bool {
        self.wakes.0.load(SeqCst) > 0
    }

    /// Whether it is woken within [`PATIENCE`]: for a wake that another thread's locked section
    /// chose and sends after it unlocks, which may be after the release that caused it returned.
    fn woken_soon(&self) -> bool {
        let start = Instant::now();
        while !self.woken() && start.elapsed() < PATIENCE {
            thread::yield_now();
        }
        self.woken()
    }
}

#[test]
fn acquire_async_takes_a_free_permit_at_once() {
    let sem = Semaphore::new(2);
    let mut fut = Driven::new(sem.acquire_async());
    let Poll::Ready(Ok(permit)) = fut.poll() else { panic!("a free permit was not taken at once") };
    assert_eq!(permit.num_permits(), 1);
    assert_eq!(sem.available_permits(), 1);
    drop(permit);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn a_release_wakes_a_pending_acquire() {
    let sem = Semaphore::new(0);
    let mut fut = Driven::new(sem.acquire_async());
    assert!(fut.poll().is_pending());
    assert_eq!(sem.queued_waiters(), 1);
    assert!(!fut.woken());
    sem.release();
    assert!(fut.woken());
    assert!(matches!(fut.poll(), Poll::Ready(Ok(_))));
    drop(fut);
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.queued_waiters(), 0);
}

/// Two releases while the first woken task has not run yet: the second must wake the second task
/// (a plain "make sure n are notified" would count the first and notify nobody).
#[test]
fn each_release_wakes_another_task_even_before_the_first_woken_runs() {
    let sem = Semaphore::new(0);
    let mut a = Driven::new(sem.acquire_async());
    let mut b = Driven::new(sem.acquire_async());
    assert!(a.poll().is_pending());
    assert!(b.poll().is_pending());
    sem.release();
    sem.release();
    assert!(a.woken() && b.woken(), "two releases, two waiting tasks: both must be woken");
    assert!(matches!(a.poll(), Poll::Ready(Ok(_))));
    assert!(matches!(b.poll(), Poll::Ready(Ok(_))));
}

/// The same when the first task has waited past the starvation bound, so that the first release
/// is granted to it: the second release still wakes the second task (a served waiter that has
/// not run yet is not counted again).
#[test]
fn a_release_after_a_grant_wakes_the_next_task() {
    let sem = Semaphore::new(0);
    let mut a = Driven::new(sem.acquire_async());
    assert!(a.poll().is_pending());
    std::thread::sleep(std::time::Duration::from_millis(5)); // past the starvation bound: a has priority
    let mut b = Driven::new(sem.acquire_async());
    assert!(b.poll().is_pending());
    sem.release(); // granted to a
    sem.release(); // for b
    assert!(a.woken() && b.woken(), "two releases, two waiting tasks: both must be woken");
    assert!(matches!(a.poll(), Poll::Ready(Ok(_))));
    assert!(matches!(b.poll(), Poll::Ready(Ok(_))));
}

#[test]
fn a_multi_permit_acquire_waits_for_all_its_permits() {
    let sem = Semaphore::new(1);
    let mut many = Driven::new(sem.acquire_many_async(3));
    let mut one = Driven::new(sem.acquire_async());
    assert!(many.poll().is_pending());
    // The single-permit acquire barges past the larger request.
    let Poll::Ready(Ok(p1)) = one.poll() else { panic!("the free permit was not taken") };
    sem.add_permits(2);
    assert!(many.poll().is_pending(), "2 of 3 permits are not enough");
    drop(p1);
    assert!(many.woken());
    let Poll::Ready(Ok(p3)) = many.poll() else { panic!("3 permits were there") };
    assert_eq!(p3.num_permits(), 3);
}

#[test]
fn zero_permits_are_ready_at_once_unless_closed() {
    let sem = Semaphore::new(0);
    let permit = pollster::block_on(sem.acquire_many_async(0)).unwrap();
    assert_eq!(permit.num_permits(), 0);
    sem.close();
    assert_eq!(pollster::block_on(sem.acquire_many_async(0)).unwrap_err(), AcquireError);
}

#[test]
fn close_fails_pending_and_later_acquires() {
    let sem = Semaphore::new(0);
    let mut one = Driven::new(sem.acquire_async());
    let mut many = Driven::new(sem.acquire_many_async(2));
    // More waiters than a section keeps wakes for inline: the close's walk wakes every one.
    let mut more: Vec<_> = (1..=4).map(|n| Driven::new(sem.acquire_many_async(n))).collect();
    assert!(one.poll().is_pending());
    assert!(many.poll().is_pending());
    assert!(more.iter_mut().all(|f| f.poll().is_pending()));
    sem.close();
    assert!(one.woken() && many.woken());
    assert!(more.iter().all(Driven::woken), "a waiter was not woken by the close");
    assert!(matches!(one.poll(), Poll::Ready(Err(AcquireError))));
    assert!(matches!(many.poll(), Poll::Ready(Err(AcquireError))));
    assert!(more.iter_mut().all(|f| matches!(f.poll(), Poll::Ready(Err(AcquireError)))));
    assert!(pollster::block_on(sem.acquire_async()).is_err());
    assert_eq!(sem.queued_waiters(), 0);
}

#[test]
#[should_panic(expected = "MAX_PERMITS")]
fn a_request_above_max_permits_panics_at_the_call() {
    let sem = Semaphore::new(1);
    // Never polled: the panic comes from the call itself.
    let _fut = sem.acquire_many_async(u32::MAX);
}

#[test]
#[should_panic(expected = "polled after it completed")]
fn polling_after_completion_panics() {
    let sem = Semaphore::new(1);
    let mut fut = Driven::new(sem.acquire_async());
    let _permit = fut.poll();
    let _ = fut.poll();
}

#[test]
fn owned_futures_can_be_spawned_and_move_their_permit() {
    let sem = Arc::new(Semaphore::new(1));
    let fut = Arc::clone(&sem).acquire_many_owned_async(1);
    let permit = thread::spawn(move || pollster::block_on(fut).unwrap()).join().unwrap();
    assert!(Arc::ptr_eq(permit.semaphore(), &sem));
    assert_eq!(sem.available_permits(), 0);
    drop(permit);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn dropping_an_owned_future_deregisters_it() {
    let sem = Arc::new(Semaphore::new(0));
    let mut fut = Driven::new(Arc::clone(&sem).acquire_owned_async());
    assert!(fut.poll().is_pending());
    drop(fut);
    assert_eq!(sem.queued_waiters(), 0);
    sem.release();
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn bounded_semaphore_acquires_async() {
    let sem = BoundedSemaphore::new(2);
    pollster::block_on(async {
        let a = sem.acquire_async().await.unwrap();
        let b = sem.acquire_many_async(1).await.unwrap();
        assert_eq!(a.num_permits() + b.num_permits(), 2);
        assert_eq!(sem.available_permits(), 0);
    });
    assert_eq!(sem.available_permits(), 2);
    assert!(sem.release().is_err(), "the bound still holds");
}

#[test]
fn futures_show_their_request_and_state_in_debug() {
    let sem = Semaphore::new(0);
    let mut fut = Driven::new(sem.acquire_many_async(2));
    assert!(format!("{:?}", fut.fut).contains("permits: 2, state: \"idle\""));
    assert!(fut.poll().is_pending());
    assert!(format!("{:?}", fut.fut).contains("\"waiting\""));
    let owned = Arc::new(Semaphore::new(1)).acquire_owned_async();
    assert!(format!("{owned:?}").starts_with("AcquireOwned"));
}

/// A blocked thread and a waiting task on one semaphore: a release wakes the thread, another
/// wakes the task, whichever order they registered in.
#[test]
fn threads_and_tasks_wait_on_one_semaphore() {
    let sem = Semaphore::new(0);
    thread::scope(|s| {
        let thread = s.spawn(|| sem.acquire().unwrap().forget());
        wait_for_waiters(&sem, 1);
        let mut task = Driven::new(sem.acquire_async());
        assert!(task.poll().is_pending());
        sem.release();
        sem.release();
        // The releases woke the thread on its futex and notified the task, each on its own: two
        // permits, one each, whatever order they run in. The task's wake may be sent by the
        // thread (its section took one permit and chose the task for the other) after the second
        // release returned, so it is waited for.
        assert!(task.woken_soon(), "the task was not woken for the second permit");
        let Poll::Ready(Ok(p)) = task.poll() else { panic!("the task was not given a permit") };
        p.forget();
        thread.join().unwrap();
    });
    assert_eq!(sem.available_permits(), 0);
}

/// A 2-permit task queued before a 1-permit task: one released permit must reach the 1-permit
/// task, not be spent on waking the task it cannot serve.
#[test]
fn a_single_permit_task_is_woken_while_a_multi_permit_task_waits_ahead() {
    // A round where the release came 1 ms after queueing (a loaded or slow machine) has the
    // 2-permit task past the starvation bound, so the release rightly holds the permit back for
    // it (`tests/fairness.rs` covers that case): such rounds are tried again.
    for _ in 0..50 {
        let sem = Semaphore::new(0);
        let queued = std::time::Instant::now();
        let mut many = Driven::new(sem.acquire_many_async(2));
        let mut one = Driven::new(sem.acquire_async());
        assert!(many.poll().is_pending());
        assert!(one.poll().is_pending());
        sem.release();
        if queued.elapsed() >= std::time::Duration::from_millis(1) {
            continue;
        }
        assert!(one.woken(), "the 1-permit task was not woken for the free permit");
        assert!(matches!(one.poll(), Poll::Ready(Ok(_))));
        assert!(many.poll().is_pending());
        return;
    }
    common::say_skipped("in 50 rounds the release never came within 1 ms of queueing (a slow machine)");
}

/// What a leaked pending future costs (`Acquire`'s "Leaking it"): once it has waited 1 ms at
/// the head it gets priority, and the next permit to come back is taken for it and lost with it,
/// as a leaked permit's; after that it is out of the queue, and others are served as before.
#[test]
fn a_leaked_future_at_the_head_takes_the_next_permits_with_it() {
    let sem = Semaphore::new(0);
    let mut leaked = Box::pin(sem.acquire_async());
    assert!(leaked.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    std::mem::forget(leaked);
    thread::sleep(std::time::Duration::from_millis(3)); // its wait passes the 1 ms bound
    sem.release();
    assert_eq!((sem.available_permits(), sem.queued_waiters()), (0, 0), "served, and gone with it");
    sem.release();
    assert!(sem.try_acquire().is_ok(), "the next permit is anyone's");
}
