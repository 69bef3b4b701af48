//! Every waiter queue of this process, so that a `fork` finds none of their locks held by a
//! thread the child does not have.
//!
//! A child made by `fork` has a copy of each queue's lock as it was at the fork: held, if another
//! thread was inside a section then, and held for ever there, since that thread is not copied.
//! The child's first section on that semaphore (an acquire that queues, a release to a queue with
//! waiters) would wait for it for ever: in `tests/process.rs`'s
//! `a_fork_in_the_middle_of_a_section_leaves_the_childs_queue_usable` (three threads passing one
//! permit, 200 forks), 9 children hung in a release's section before this module.
//!
//! So a queue is registered here before any section runs on it (`Queue::lock`: a thread that
//! finds its `registered` flag clear registers it before taking its lock) until it is dropped,
//! and the forking thread takes every registered queue's lock just before each `fork` and
//! releases them just after it, in the parent and in the child (`sync::fork::guard_forks`, which
//! takes the timer's locks after these, the order in which a section takes them). The fork waits
//! for the sections under way: they are short, run no executor code but a waker's `clone`, and
//! never wait for [`LIVE`] (a queue registers before its first section and unregisters when its
//! semaphore is dropped, outside every section), and no thread forks inside one.
//!
//! The cost: a load of the flag per section; a process-wide lock and a set insert when a
//! semaphore's queue is first used (its first wait), the same and a removal when it is dropped;
//! and at each `fork` one lock per live queue.

use super::{Inner, Queue};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Release;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The registered queues.
static LIVE: Mutex<BTreeSet<Registered>> = Mutex::new(BTreeSet::new());

/// A registered queue: where it stays (on the heap, behind its semaphore's `OnceBox`) until it is
/// dropped; ordered by address.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Registered(*const Queue);

// SAFETY: a pointer to a `Queue` (which is `Sync`), dereferenced only by `hold`, under `LIVE`,
// while the queue is registered; moving it between threads moves no ownership.
unsafe impl Send for Registered {}

/// [`LIVE`]; no code that can panic runs under it, so poisoning is ignored.
fn live() -> MutexGuard<'static, BTreeSet<Registered>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn address(queue: &Queue) -> Registered {
    Registered(std::ptr::from_ref(queue))
}

/// Registers `queue` (on the heap, where it stays), before this thread's first section on it:
/// from now until its drop the forking thread takes its lock across each `fork`. Threads that
/// find it unregistered at once each insert it; the set keeps it once.
#[cold]
pub(super) fn register(queue: &Queue) {
    crate::sync::fork::guard_forks(); // with no lock held (see there)
    live().insert(address(queue));
    // Release: pairs with the Acquire load in `Queue::lock`; a thread that sees the flag finds
    // the queue in the set.
    queue.registered.store(true, Release);
}

/// Takes `queue` out, as it is dropped. Waits while a `fork` is under way (its forking thread
/// holds [`LIVE`] and this queue's lock until the fork returns).
pub(super) fn unregister(queue: &Queue) {
    live().remove(&address(queue));
}

/// What the forking thread holds across a `fork`: every registered queue's lock, then [`LIVE`]
/// (fields drop in order: the queues' locks are released first).
struct Held {
    _queues: Vec<MutexGuard<'static, Inner>>,
    _live: MutexGuard<'static, BTreeSet<Registered>>,
}

thread_local! {
    /// The locks the forking thread holds across its `fork`.
    static HELD: Cell<Option<Held>> = const { Cell::new(None) };
}

/// Just before a `fork`, in the forking thread: takes [`LIVE`] and then every registered queue's
/// lock. If this thread's locals are gone (it is exiting), the locks are released at once and the
/// fork goes unguarded, as before this module.
pub(crate) fn hold() {
    let live = live();
    let queues = live
        .iter()
        .map(|&Registered(at)| {
            // SAFETY: a registered queue lives, where it was, until its drop has unregistered it,
            // which waits for `LIVE`, held from here until `release`; so it outlives the guard.
            let queue: &'static Queue = unsafe { &*at };
            // A poisoned lock still holds a consistent queue (`Queue::lock`).
            queue.inner.lock().unwrap_or_else(PoisonError::into_inner)
        })
        .collect();
    let held = Held { _queues: queues, _live: live };
    let _ = HELD.try_with(|slot| slot.set(Some(held)));
}

/// Just after a `fork`, in the parent and in the child: releases what [`hold`] took.
pub(crate) fn release() {
    let _ = HELD.try_with(Cell::take);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::RawSemaphore;

    fn registered(queue: &Queue) -> bool {
        live().contains(&address(queue))
    }

    #[test]
    fn a_semaphores_queue_is_registered_from_its_making_until_its_drop() {
        let sem = RawSemaphore::new(0);
        assert!(sem.queue.get().is_none(), "no queue before the first wait");
        drop(sem.lock()); // a section: the queue is made, and registered before it
        assert!(registered(sem.queue.get().expect("made by the section")));
        // The drop, with the queue where no other test's can be made meanwhile (on this stack:
        // a freed heap block may hold another test's queue at once).
        let state = crate::sync::AtomicU64::new(0);
        let mut queue = Some(Queue::default());
        let at = address(queue.as_ref().unwrap());
        drop(queue.as_ref().unwrap().lock(&state));
        assert!(live().contains(&at));
        queue = None; // dropped in place
        assert!(queue.is_none() && !live().contains(&at), "unregistered when dropped");
    }

    #[test]
    fn hold_takes_every_registered_queues_lock_until_release() {
        let sem = RawSemaphore::new(0);
        drop(sem.lock());
        let queue = sem.queue.get().unwrap();
        hold();
        // Another thread: this one's `LIVE` guard would make a `try_lock` of `LIVE` here
        // meaningless, and a queue's lock is not reentrant.
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(queue.inner.try_lock().is_err(), "held across the fork");
                assert!(LIVE.try_lock().is_err(), "so is the set: no queue leaves meanwhile");
            });
        });
        release();
        assert!(queue.inner.try_lock().is_ok(), "this test's queue: nobody else takes its lock");
        // Other tests' semaphores register and leave in parallel, each holding `LIVE` briefly.
        let free = (0..1_000_000).any(|_| LIVE.try_lock().is_ok() || (std::thread::yield_now(), false).1);
        assert!(free, "the set is released too");
    }
}
