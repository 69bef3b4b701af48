//! The async waiter: the task's side of the engine, driven by the public futures' `poll` and
//! `Drop`.
//!
//! An [`AsyncWaiter`] is in one of three states:
//!
//! | state        | counted in `waiters` | holds                  | next                                |
//! |--------------|----------------------|------------------------|-------------------------------------|
//! | `Idle`       | no                   | nothing                | poll: take, or register and listen  |
//! | `Registered` | yes                  | one listener in a list | notified: re-check; drop: leave     |
//! | `Done`       | no                   | nothing                | (the permits belong to the caller)  |
//!
//! The order of steps is what rules out a lost wakeup (invariants 4 and 5 in [`super`]):
//! - **Register**: try the permits without a listener (the common barging case needs no
//!   allocation); if they are short, register in a CAS that re-checks them (waiters + 1,
//!   [`ASYNC`], [`ASYNC_MANY`] if n > 1), *then* listen, and re-check once more. If that finds
//!   the permits after all, the waiter takes them (deregistering in the same CAS) and drops the
//!   listener, which passes on anything it was notified of.
//!
//!   Registering *before* listening matters for multi-permit waiters: a listener is in the list
//!   only while its waiter is counted with its flags, so a release never spends a `min(k, waiters)`
//!   notification on the listener of a 2-permit task that it did not know about (it would be
//!   notifying all of them had it seen `ASYNC_MANY`), which would leave a 1-permit task waiting
//!   beside a free permit. A release between the registering CAS and the listen notifies others
//!   or nobody, and the re-check after the listen sees its permits (invariant 4).
//! - **Wake**: polling the listener to `Ready` takes its notification out of the list. The same
//!   poll then re-checks (taking the permits and deregistering in one CAS); if they are short,
//!   it *listens again first*, re-checks again, and only then returns `Pending` (the fresh
//!   listener is polled once more to store the waker and to catch a notification that came
//!   in between).
//! - **Drop** while registered: deregister (waiters - 1), then drop the listener. If it had been
//!   notified and not yet polled, `event-listener`'s `Drop` notifies the next listener that was not
//!   notified yet, in its place. Blocking threads need nothing from it: every release wakes them
//!   with their own budget.
//!
//! A task never claims [`HANDOFF`] (it cannot be made to run promptly to use a reservation), and
//! while another waiter owns it, a task leaves the permits alone ([`can_take`]).

use super::state::*;
use super::{Failure, RawSemaphore};
use crate::sync::EventListener;
use crate::sync::{Ordering::Acquire, Ordering::Relaxed};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// One async acquire of `n` permits: the state a public future keeps between polls.
pub(crate) struct AsyncWaiter {
    n: u32,
    state: State,
}

enum State {
    Idle,
    Registered(EventListener),
    Done,
}

impl AsyncWaiter {
    #[inline]
    pub(crate) const fn new(n: u32) -> AsyncWaiter {
        AsyncWaiter { n, state: State::Idle }
    }

    /// The permits this waiter asks for.
    #[inline]
    pub(crate) fn permits(&self) -> u32 {
        self.n
    }

    /// A word for `Debug`: `"idle"`, `"waiting"` or `"done"`.
    pub(crate) fn phase(&self) -> &'static str {
        match self.state {
            State::Idle => "idle",
            State::Registered(_) => "waiting",
            State::Done => "done",
        }
    }

    /// Polls for the permits. `Ready(Ok(()))` means they are taken and belong to the caller.
    /// A request for zero permits is ready at once (with an error if closed).
    ///
    /// # Panics
    /// If polled again after it returned `Ready`.
    #[inline]
    pub(crate) fn poll(&mut self, sem: &RawSemaphore, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        if matches!(self.state, State::Idle) && sem.try_take(self.n) {
            self.state = State::Done;
            return Poll::Ready(Ok(()));
        }
        self.poll_slow(sem, cx)
    }

    #[cold]
    fn poll_slow(&mut self, sem: &RawSemaphore, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        let n = u64::from(self.n);
        loop {
            let result = match &mut self.state {
                State::Done => panic!("futex-semaphore: an acquire future was polled after it completed"),
                // Zero permits: ready at once unless closed (`try_take(0)` fails on HANDOFF too).
                State::Idle if n == 0 => {
                    if sem.is_closed() {
                        Err(Failure::Closed)
                    } else {
                        Ok(())
                    }
                }
                State::Idle => match sem.try_acquire(self.n) {
                    Err(Failure::NoPermits) => match sem.register_async(n) {
                        Some(result) => result,
                        None => {
                            // Registered: now listen, and re-check after that (invariant 4).
                            let listener = sem.wakers.listen();
                            match sem.retake_async(n) {
                                Some(result) => result, // dropping the listener passes on its notification
                                None => {
                                    self.state = State::Registered(listener);
                                    continue;
                                }
                            }
                        }
                    },
                    result => result,
                },
                State::Registered(listener) => {
                    if Pin::new(&mut *listener).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Notified, and the notification is out of the list: act on it now (invariant 5).
                    match sem.retake_async(n) {
                        Some(result) => result,
                        None => {
                            // Listen again before the re-check (invariant 4), then poll the fresh
                            // listener on the next turn of the loop, which stores the waker.
                            *listener = sem.wakers.listen();
                            match sem.retake_async(n) {
                                Some(result) => result, // dropping the fresh listener passes on its notification
                                None => continue,
                            }
                        }
                    }
                }
            };
            self.state = State::Done;
            return Poll::Ready(result);
        }
    }

    /// Gives up: a registered waiter deregisters and passes on a notification it did not act on.
    /// Called by the futures' `Drop`; does nothing unless registered.
    pub(crate) fn cancel(&mut self, sem: &RawSemaphore) {
        if let State::Registered(listener) = std::mem::replace(&mut self.state, State::Done) {
            sem.deregister_async();
            // If the listener was notified and not yet polled, its `Drop` notifies the next
            // listener that was not notified yet, with an `additional` notification like ours.
            drop(listener);
        }
    }
}

impl RawSemaphore {
    /// Registers an async waiter for `n` permits, in a CAS that re-checks them. `None`:
    /// registered; the caller listens and re-checks next. `Some`: done without registering (the
    /// permits were there after all, or the semaphore is closed).
    ///
    /// # Panics
    /// If [`MAX_WAITERS`] waiters are registered already.
    fn register_async(&self, n: u64) -> Option<Result<(), Failure>> {
        let many = if n > 1 { ASYNC_MANY } else { 0 };
        let mut s = self.state.load(Relaxed);
        loop {
            if is_closed(s) {
                return Some(Err(Failure::Closed));
            }
            if can_take(s, n) {
                // Acquire: pairs with the Release RMW of the release that gave these permits back.
                match self.state.compare_exchange_weak(s, s - n, Acquire, Relaxed) {
                    Ok(_) => return Some(Ok(())),
                    Err(actual) => s = actual,
                }
                continue;
            }
            if waiters_full(s) {
                too_many_waiters();
            }
            // Relaxed: a release whose RMW comes later in the state's order sees this waiter and
            // its flags (an RMW reads the latest value); one whose RMW came earlier is visible to
            // every re-check made after this waiter's listen, through the list's lock and the
            // state's coherence ("Listeners nobody counted on" in `super`).
            match self.state.compare_exchange_weak(s, (s + ONE_WAITER) | ASYNC | many, Relaxed, Relaxed) {
                Ok(_) => return None,
                Err(actual) => s = actual,
            }
        }
    }

    /// A registered async waiter re-checks: in one CAS it takes its `n` permits and deregisters,
    /// or deregisters because the semaphore is closed. `None`: still short, keep waiting.
    fn retake_async(&self, n: u64) -> Option<Result<(), Failure>> {
        let mut s = self.state.load(Relaxed);
        loop {
            let (new, result) = if is_closed(s) {
                (deregister(s, false), Err(Failure::Closed))
            } else if can_take(s, n) {
                (deregister(s - n, false), Ok(()))
            } else {
                return None;
            };
            // Acquire: pairs with the Release RMW of the release that gave these permits back
            // (or with the Release `fetch_or` of `close`).
            match self.state.compare_exchange_weak(s, new, Acquire, Relaxed) {
                Ok(_) => return Some(result),
                Err(actual) => s = actual,
            }
        }
    }

    /// A registered async waiter leaves without permits (its future was dropped).
    fn deregister_async(&self) {
        let mut s = self.state.load(Relaxed);
        // Relaxed: takes nothing and publishes nothing; waiters - 1 only makes later releases
        // wake less, and the listener's `Drop` passes on a notification this waiter received.
        while let Err(actual) = self.state.compare_exchange_weak(s, deregister(s, false), Relaxed, Relaxed) {
            s = actual;
        }
    }
}

#[cold]
#[track_caller]
fn too_many_waiters() -> ! {
    panic!("futex-semaphore: more than 2^26 - 1 waiters registered on one semaphore")
}
