//! Sleeping and waking across processes: the loop of a contended acquire, on the protocol of
//! `parking.rs` (the words, the invariants and the no-lost-wakeup argument are there; it builds
//! under loom, and `tests/loom_process.rs` models it).
//!
//! The engine's blocking path is not used: a waiter registered in a shared state word and killed
//! there could never be taken off. Instead a contended acquire spins a bounded number of rounds
//! while nobody sleeps, then loops on [`Parking::round`](super::protocol::parking::Parking::round): a tracked sleeper registers (so that a
//! release wakes it, and recovery takes it off if it dies), tries once more, and sleeps on `wake`
//! for at most [`ProcessSemaphore::RECOVERY_INTERVAL`] (or until its deadline). An untracked one
//! (no slot: the table was full, or another pid namespace) does not register, since nobody could
//! take it off if it died: it polls, sleeping at most [`UNTRACKED_POLL`] at a time. After each
//! interval without permits, a sleeper recovers the permits of dead holders.

use super::holders::Scope;
use super::protocol::Refused;
use super::protocol::parking::{sleepers, unit};
use super::{Holder, ProcessSemaphore, sys};
use crate::sync::{Backoff, SPIN_ROUNDS};
use std::time::{Duration, Instant};

/// How long an untracked sleeper sleeps at most before it re-checks: it is not counted in
/// `sleepers`, so no release wakes it.
pub(crate) const UNTRACKED_POLL: Duration = super::protocol::parking::POLL;

impl ProcessSemaphore {
    #[cold]
    pub(super) fn acquire_slow(&self, n: u32, deadline: Option<Instant>, me: Holder) -> Result<(), Refused> {
        let region = self.region();
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return region.take(me, n);
        }
        // Spin on attempts for a bounded time while nobody sleeps.
        let backoff = Backoff::new();
        for _ in 0..SPIN_ROUNDS {
            match region.take(me, n) {
                Err(Refused::NoPermits) => {}
                done => return done,
            }
            if sleepers(region.parking.sleepers.word()) != 0 {
                break;
            }
            backoff.spin();
        }
        let unit = unit(n);
        let sleeping = region.slot(me.slot).map(|slot| (me.slot, &slot.sleep));
        let mut next_scan = Instant::now() + ProcessSemaphore::RECOVERY_INTERVAL;
        loop {
            let mut until = deadline.map_or(next_scan, |d| d.min(next_scan));
            if sleeping.is_none() {
                until = until.min(Instant::now() + UNTRACKED_POLL);
            }
            let lanes = region.sleep_lanes();
            let attempt = region
                .parking
                .round(&region.state, &lanes, sleeping, unit, Some(until), || region.take(me, n));
            if attempt != Err(Refused::NoPermits) {
                return attempt;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return region.take(me, n);
            }
            if now >= next_scan {
                let recovered = region.recover(&sys::identity(), Scope::Holding);
                if recovered > 0 {
                    self.wake(recovered);
                }
                next_scan = now + ProcessSemaphore::RECOVERY_INTERVAL;
            }
        }
    }

    /// After `added` permits were added: wakes sleepers they can serve, if there are any.
    #[inline]
    pub(super) fn wake(&self, added: u64) {
        let region = self.region();
        region.parking.wake(&region.state, added);
    }

    /// Wakes every sleeper (closing).
    pub(super) fn wake_all(&self) {
        self.region().parking.wake_all();
    }
}
