//! The futex as loom sees it: a word, and a `Mutex` + `Condvar` standing in for the kernel's
//! hash-bucket lock and wait queue.
//!
//! `wait` compares the word under the lock and then waits on the condvar, which releases the lock
//! atomically; `wake` takes the same lock before notifying. So a waker that bumped the word either
//! runs before the waiter's comparison (which then fails) or after the waiter sleeps (which is
//! then notified): a protocol that can lose a wakeup leaves a thread blocked forever, and loom
//! reports that as a deadlock instead of passing silently.
//!
//! A timed wait models the deadline passing while asleep: it returns `TimedOut` exactly where an
//! untimed wait would block, so every interleaving of "the timeout fires" with the other threads'
//! operations is explored.

use super::{AtomicU32, Ordering, Park, WAKE_ALL, WaitOutcome};
use loom::sync::{Condvar, Mutex};
use std::time::Instant;

pub(crate) struct Futex {
    word: AtomicU32,
    bucket: Mutex<()>,
    queue: Condvar,
}

impl Futex {
    pub(crate) fn new() -> Futex {
        Futex { word: AtomicU32::new(0), bucket: Mutex::new(()), queue: Condvar::new() }
    }

    pub(crate) fn load(&self, order: Ordering) -> u32 {
        self.word.load(order)
    }

    pub(crate) fn bump(&self, order: Ordering) {
        self.word.fetch_add(1, order);
    }
}

pub(crate) enum Private {}

impl Park for Private {
    fn wait(futex: &Futex, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
        let bucket = futex.bucket.lock().expect("loom futex bucket poisoned");
        if futex.word.load(Ordering::Relaxed) != expected {
            return WaitOutcome::Woken;
        }
        if deadline.is_some() {
            return WaitOutcome::TimedOut;
        }
        drop(futex.queue.wait(bucket).expect("loom futex bucket poisoned"));
        WaitOutcome::Woken
    }

    fn wake(futex: &Futex, n: u32) {
        let _bucket = futex.bucket.lock().expect("loom futex bucket poisoned");
        match n {
            WAKE_ALL => futex.queue.notify_all(),
            n => (0..n).for_each(|_| futex.queue.notify_one()),
        }
    }
}
