//! Executors' wakers that do more than wake. A task's waker whose `wake` panics (an executor's
//! bug): the queue sends its wakes after its lock, in whichever thread's section chose them, and
//! such a panic must not escape into that thread (a release, a drop, another task's poll, a
//! blocking wait), where it would strand the permits the section took or the thread's queue
//! entry, nor stop the wakes sent after it. And a waker whose drop frees its task, and with it a
//! permit of the same semaphore (an executor whose waker owns its task, which owns its future):
//! the queue drops the wakers it lets go of after its lock, or that permit's release would lock
//! it again in the same thread.
use futex_semaphore::{OwnedPermit, Semaphore};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(10);

/// A waker whose `clone` and `drop` are fine and whose `wake` panics.
fn panicking_wake_waker() -> Waker {
    fn clone(_: *const ()) -> RawWaker {
        RawWaker::new(std::ptr::null(), &VTABLE)
    }
    fn wake(_: *const ()) {
        panic!("this executor's wake panics")
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, noop);
    // SAFETY: the vtable's functions ignore the data pointer, which is never read.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, SeqCst);
    }
}

fn flag() -> (Arc<Flag>, Waker) {
    let f = Arc::new(Flag(AtomicBool::new(false)));
    (Arc::clone(&f), Waker::from(f))
}

fn poll<F: Future + Unpin>(f: &mut F, w: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(w))
}

/// Silences the expected panics' messages (the hook is the process's: every test here sets it).
fn quiet() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

/// Waits past a reservation's lapse (2 ms for a first reservation), or past `STARVE_AFTER`.
fn past_the_lapse() {
    thread::sleep(Duration::from_millis(20));
}

#[test]
fn a_release_that_wakes_a_panicking_waker_first_still_wakes_the_next() {
    quiet();
    let sem = Semaphore::new(0);
    let bad = panicking_wake_waker();
    let (b_flag, b_waker) = flag();
    let mut a = sem.acquire_async();
    let mut b = sem.acquire_async();
    assert!(poll(&mut a, &bad).is_pending());
    assert!(poll(&mut b, &b_waker).is_pending());
    let released = catch_unwind(AssertUnwindSafe(|| sem.add_permits(2)));
    assert!(released.is_ok(), "the executor's panic escaped into add_permits");
    assert!(b_flag.0.load(SeqCst), "the wake after the panicking one was not sent");
    assert!(poll(&mut b, &b_waker).is_ready());
    drop(a);
}

#[test]
fn a_thread_behind_a_panicking_waker_is_woken() {
    quiet();
    let sem = Arc::new(Semaphore::new(0));
    let bad = panicking_wake_waker();
    let mut a = sem.acquire_async();
    assert!(poll(&mut a, &bad).is_pending());
    let (done_tx, done) = mpsc::channel();
    let t = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            drop(sem.acquire().unwrap());
            done_tx.send(()).unwrap();
        })
    };
    while sem.queued_waiters() < 2 {
        thread::yield_now();
    }
    let released = catch_unwind(AssertUnwindSafe(|| sem.add_permits(2)));
    assert!(released.is_ok(), "the executor's panic escaped into add_permits");
    let served = done.recv_timeout(PATIENCE);
    if served.is_err() {
        sem.add_permits(1); // free the thread before failing
    }
    t.join().unwrap();
    assert!(served.is_ok(), "a thread slept on with permits free (its futex wake was not sent)");
    drop(a);
}

/// A task whose poll sees a reservation out and takes its permit, in a section whose walk then
/// wakes the panicking task: the permit is the caller's, not lost in a panic.
#[test]
fn a_poll_whose_section_wakes_a_panicking_waker_keeps_its_permit() {
    quiet();
    let sem = Semaphore::new(0);
    let (b_flag, b_waker) = flag();
    let bad = panicking_wake_waker();
    let mut owner = sem.acquire_many_async(3); // the head: it gets a reservation
    let mut b = sem.acquire_async();
    let mut a = sem.acquire_async();
    assert!(poll(&mut owner, Waker::noop()).is_pending());
    assert!(poll(&mut b, &b_waker).is_pending());
    assert!(poll(&mut a, &bad).is_pending());
    thread::sleep(Duration::from_millis(3)); // the owner starves
    sem.add_permits(2); // held for the owner (3 > 2); B, held back, watches
    let start = Instant::now();
    while !b_flag.0.load(SeqCst) {
        assert!(start.elapsed() < PATIENCE, "the timer wakes the watcher at the lapse");
        thread::yield_now();
    }
    let polled = catch_unwind(AssertUnwindSafe(|| poll(&mut b, &b_waker)));
    assert!(matches!(&polled, Ok(Poll::Ready(Ok(_)))), "B's poll takes its permit");
    drop(polled);
    drop((a, b, owner));
    assert_eq!(sem.available_permits(), 2, "a permit was lost");
}

/// A blocking wait whose own section (its arrival reads the clock, and so sees a lapse) wakes
/// the panicking task: it must not panic out of `try_acquire_many_for` with its entry still
/// queued (served later, its permits would be lost).
#[test]
fn a_blocking_wait_whose_section_wakes_a_panicking_waker_leaves_nothing_behind() {
    quiet();
    let sem = Arc::new(Semaphore::new(0));
    let bad = panicking_wake_waker();
    let mut owner = sem.acquire_many_async(3);
    let mut a = sem.acquire_async();
    assert!(poll(&mut owner, Waker::noop()).is_pending());
    assert!(poll(&mut a, &bad).is_pending());
    thread::sleep(Duration::from_millis(3)); // the owner starves
    sem.add_permits(2); // held for the owner (3 > 2); A watches through the timer
    past_the_lapse();
    let waited = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.try_acquire_many_for(3, Duration::from_millis(200)).is_ok()).join()
    };
    assert!(waited.is_ok(), "the executor's panic escaped into try_acquire_many_for");
    drop((a, owner));
    assert_eq!(sem.queued_waiters(), 0, "an entry of a wait that has ended is still queued");
    assert_eq!(sem.available_permits(), 2);
}

/// A task whose last reference is its waker and that owns a permit of the semaphore: when the
/// last clone of its waker goes, the permit is given back.
struct TaskOwningAPermit(#[allow(dead_code)] Mutex<Option<OwnedPermit>>); // held, for its drop

impl Wake for TaskOwningAPermit {
    fn wake(self: Arc<Self>) {}
}

/// Runs `f` (a scenario whose failure is a hang) on a thread, failing after [`PATIENCE`].
fn within_patience(f: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let runner = thread::spawn(move || {
        f();
        done.send(()).unwrap();
    });
    let outcome = finished.recv_timeout(PATIENCE);
    assert_ne!(
        outcome,
        Err(mpsc::RecvTimeoutError::Timeout),
        "hung: a waker dropped under the queue's lock?"
    );
    runner.join().unwrap(); // a panic of `f` comes out here
}

/// A future queued by one task and then, its waker the last reference to that task, polled by
/// another (`set_waker` replaces the waker) or dropped (its entry leaves): in both, the task's
/// permit comes back through the semaphore's queue, in the same thread (a review reproduced
/// both hangs 5/5).
fn a_waker_let_go_of_frees_a_task_holding_a_permit(then_poll: bool) {
    within_patience(move || {
        let sem = Arc::new(Semaphore::new(1));
        let permit = Arc::clone(&sem).acquire_owned().unwrap();
        let task = Arc::new(TaskOwningAPermit(Mutex::new(Some(permit))));
        let mut fut = Arc::clone(&sem).acquire_owned_async();
        assert!(poll(&mut fut, &Waker::from(Arc::clone(&task))).is_pending());
        drop(task); // the queue's clone of its waker is the last reference to it
        if then_poll {
            // Moved to another task: the waker is replaced, the old one's drop gives the permit back.
            let (_, waker) = flag();
            assert!(poll(&mut fut, &waker).is_pending());
            let (_, waker) = flag();
            assert!(matches!(poll(&mut fut, &waker), Poll::Ready(Ok(_))), "the permit given back");
        } else {
            drop(fut);
        }
        assert_eq!(sem.available_permits(), 1);
    });
}

#[test]
fn a_waker_replaced_under_the_lock_is_dropped_after_it() {
    a_waker_let_go_of_frees_a_task_holding_a_permit(true);
}

#[test]
fn a_leaving_entrys_waker_is_dropped_after_the_lock() {
    a_waker_let_go_of_frees_a_task_holding_a_permit(false);
}
