//! The async waiter: the task's side of the engine, driven by the public futures' `poll` and
//! `Drop`. A task waits in the same queue as threads ([`super::queue`]), with its waker in place of
//! a futex word.
//!
//! | state    | in the queue | next                                                            |
//! |----------|--------------|-----------------------------------------------------------------|
//! | `Idle`   | no           | poll: take without the lock (barging), or lock and take or queue |
//! | `Queued` | yes          | poll: lock, take or store the waker; drop: leave the queue       |
//! | `Done`   | no           | (the permits belong to the caller)                               |
//!
//! Every poll of a queued task is a locked section like a thread's wake-up: it un-marks the wake
//! it was sent and looks at the permits under the lock, so a wake spent on a task that finds
//! nothing is passed on by that section's walk (queue invariant 4); dropping a queued future
//! does the same. A task that watches a reservation (queue invariant 5) has no futex to sleep on
//! until the lapse, so the crate's timer thread wakes it then (`sync::timer`; where there is no
//! timer it yields to its executor until the lapse), and it ends the reservation when it sees it
//! out.

use super::RawSemaphore;
use super::queue::{Id, Slot, Take, Wake};
use crate::TryAcquireError;
use crate::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// One async acquire of `n` permits: the state a public future keeps between polls.
pub(crate) struct AsyncWaiter {
    n: u32,
    state: State,
}

enum State {
    Idle,
    /// In the queue (or just served by a walk, as `slot` says); `held_back` says that its last
    /// poll found a reservation in the way.
    Queued {
        id: Id,
        slot: Arc<Slot>,
        held_back: bool,
    },
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
            State::Queued { .. } => "waiting",
            State::Done => "done",
        }
    }

    /// Polls for the permits. `Ready(Ok(()))` means they are taken and belong to the caller.
    /// A request for zero permits is ready at once (with an error if closed).
    ///
    /// # Panics
    /// If polled again after it returned `Ready`.
    #[inline]
    pub(crate) fn poll(
        &mut self,
        sem: &RawSemaphore,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TryAcquireError>> {
        if matches!(self.state, State::Idle) && sem.try_take(self.n) {
            self.state = State::Done;
            return Poll::Ready(Ok(()));
        }
        self.poll_slow(sem, cx)
    }

    #[cold]
    fn poll_slow(&mut self, sem: &RawSemaphore, cx: &mut Context<'_>) -> Poll<Result<(), TryAcquireError>> {
        let n = u64::from(self.n);
        let (mut me, slot, was_held_back) = match &self.state {
            State::Done => panic!("futex-semaphore: an acquire future was polled after it completed"),
            State::Idle if n == 0 => {
                self.state = State::Done;
                return Poll::Ready(if sem.is_closed() { Err(TryAcquireError::Closed) } else { Ok(()) });
            }
            // Barging without the lock; under a reservation, straight to the locked look.
            State::Idle => match sem.try_barge(self.n) {
                None | Some(Err(TryAcquireError::NoPermits)) => (None, Slot::fresh(), false),
                Some(result) => {
                    self.state = State::Done;
                    return Poll::Ready(result);
                }
            },
            State::Queued { id, slot, .. } if slot.claim(*id) => {
                // Served by a walk: out of the queue, the permits are this task's. No lock.
                if let State::Queued { slot, .. } = std::mem::replace(&mut self.state, State::Done) {
                    Slot::recycle_claimed(slot);
                }
                return Poll::Ready(Ok(()));
            }
            State::Queued { id, slot, held_back } => (Some(*id), Arc::clone(slot), *held_back),
        };
        // The thread polling it now (its executor's, if it moved since it queued): read under
        // the queue's lock, which this section releases, so Relaxed.
        #[cfg(not(loom))]
        slot.polled_by.store(crate::sync::fork::this_thread(), crate::sync::Ordering::Relaxed);
        let mut locked = sem.lock();
        loop {
            let joins = me.is_none(); // this look queues it, with this poll's waker
            let take = locked.take_or_queue(&mut me, n, &slot, || Wake::Task(Some(cx.waker().clone())));
            let held_back_until = match take {
                Take::Taken => break,
                Take::Closed => {
                    self.state = State::Done;
                    return Poll::Ready(Err(TryAcquireError::Closed));
                }
                Take::Short { held_back_until } => held_back_until,
            };
            let id = me.expect("queued while short");
            if !joins {
                locked.set_waker(id, cx.waker());
            }
            if let Some(until) = held_back_until {
                // Under loom a task sees a reservation out after one yield (the clock never does).
                if Instant::now() >= until || (cfg!(loom) && was_held_back) {
                    locked.lapse_at(until);
                    continue;
                }
                // Sleep until the lapse, as a held-back thread does; yield if there is no timer
                // (woken after the lock: an executor may poll it from inside `wake_by_ref`).
                if !locked.watch_until(until, cx.waker()) {
                    self.state = State::Queued { id, slot, held_back: true };
                    drop(locked);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            self.state = State::Queued { id, slot, held_back: held_back_until.is_some() };
            return Poll::Pending;
        }
        self.state = State::Done;
        Slot::recycle(slot);
        Poll::Ready(Ok(()))
    }

    /// Gives up: a queued waiter leaves the queue, and a wake it was sent passes to others.
    /// Called by the futures' `Drop`; does nothing unless queued.
    pub(crate) fn cancel(&mut self, sem: &RawSemaphore) {
        if let State::Queued { id, slot, .. } = std::mem::replace(&mut self.state, State::Done) {
            if slot.claim(id) {
                sem.release(self.n); // served, and gone before it knew: the permits go back
            } else {
                sem.lock().leave(&mut Some(id), u64::from(self.n));
            }
        }
    }
}
