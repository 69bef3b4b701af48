//! Sleeping and waking across processes, on the region's own futex word.
//!
//! The engine's blocking path is not used: a waiter registered in a shared state word and killed
//! there could never be taken off. Instead:
//!
//! - A tracked sleeper adds itself to the region's `sleepers` word (and to its slot's
//!   `sleeping`, so that recovery can take it off if it dies), then a `SeqCst` fence, reads the
//!   `wake` futex word (`Acquire`), tries to take once more, and sleeps on `wake` for at most
//!   [`ProcessSemaphore::RECOVERY_INTERVAL`] (or until its deadline). Whatever woke it, it takes
//!   itself off again and loops.
//! - An untracked sleeper (no slot: the table was full, or another pid namespace) does not
//!   register at all, since nobody could take it off if it died: it polls, sleeping on `wake`
//!   for at most [`UNTRACKED_POLL`] at a time.
//! - A release adds its permits to the state word (`Release`), then a `SeqCst` fence, then reads
//!   `sleepers`. Only if that is not zero does it bump `wake` (`Release`) and wake: as many
//!   sleepers as permits, or all of them while someone waits for more than one permit.
//! - No lost wakeup: of the two fences, the one first in the single total order makes its side's
//!   write visible to the other side's read after the other fence. Either the release sees the
//!   sleeper (and bumps the word, which the sleeper's `futex_wait` compares atomically with
//!   `wake`), or the sleeper's attempt sees the permits. Should a count ever be wrong (a process
//!   killed between its two counter updates, a corrupt region), every sleeper still re-checks at
//!   least every [`ProcessSemaphore::RECOVERY_INTERVAL`].
//! - After each interval without permits, a sleeper recovers the permits of dead holders.

use super::holders::Scope;
use super::protocol::Refused;
use super::region::{ONE_MANY_SLEEPER, ONE_SLEEPER, has_many_sleepers, sleepers};
use super::{Holder, ProcessSemaphore, sys};
use crate::sync::{Backoff, Ordering::Acquire, Ordering::Relaxed, Ordering::Release, SPIN_ROUNDS};
use crate::sync::{Ordering::SeqCst, Park, Shared, WAKE_ALL, fence};
use std::time::{Duration, Instant};

/// How long an untracked sleeper sleeps at most before it re-checks: it is not counted in
/// `sleepers`, so no release wakes it.
pub(crate) const UNTRACKED_POLL: Duration = Duration::from_millis(2);

impl ProcessSemaphore {
    #[cold]
    pub(super) fn acquire_slow(&self, n: u32, deadline: Option<Instant>, me: Holder) -> Result<(), Refused> {
        let region = self.region();
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return region.take(me.slot, n);
        }
        // Spin on attempts for a bounded time while nobody sleeps.
        let backoff = Backoff::new();
        for _ in 0..SPIN_ROUNDS {
            match region.take(me.slot, n) {
                Err(Refused::NoPermits) => {}
                done => return done,
            }
            if sleepers(region.sleepers.load(Relaxed)) != 0 {
                break;
            }
            backoff.spin();
        }
        let unit = if n > 1 { ONE_MANY_SLEEPER } else { ONE_SLEEPER };
        let slot = region.slot(me.slot);
        let mut next_scan = Instant::now() + ProcessSemaphore::RECOVERY_INTERVAL;
        loop {
            let mut until = deadline.map_or(next_scan, |d| d.min(next_scan));
            if let Some(slot) = slot {
                // Register: the total first, then the slot, so that the slot never counts more
                // than the total holds for it (see `recover_slot`).
                region.sleepers.fetch_add(unit, Relaxed);
                slot.sleeping.fetch_add(unit, Relaxed);
            } else {
                until = until.min(Instant::now() + UNTRACKED_POLL);
            }
            // SeqCst: pairs with the fence in `wake` (see the module header: no lost wakeup).
            fence(SeqCst);
            // Acquire: pairs with the Release bump in `wake_slow`.
            let seen = region.wake.load(Acquire);
            let attempt = region.take(me.slot, n);
            if attempt == Err(Refused::NoPermits) {
                // Whatever the outcome, the loop re-checks the state and the clock.
                let _ = Shared::wait(&region.wake, seen, Some(until));
            }
            if let Some(slot) = slot {
                slot.sleeping.fetch_sub(unit, Relaxed);
                region.sleepers.fetch_sub(unit, Relaxed);
            }
            if attempt != Err(Refused::NoPermits) {
                return attempt;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return region.take(me.slot, n);
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
        // SeqCst: pairs with the fence in `acquire_slow`: either this load sees a sleeper's
        // registration, or that sleeper's attempt sees the permits just added.
        fence(SeqCst);
        let s = region.sleepers.load(Relaxed);
        if sleepers(s) != 0 {
            self.wake_slow(s, added);
        }
    }

    #[cold]
    fn wake_slow(&self, s: u64, added: u64) {
        let region = self.region();
        // Release: pairs with the Acquire load of the word by a sleeper.
        region.wake.bump(Release);
        let n = if has_many_sleepers(s) {
            // Sizes differ: nobody knows which sleeper the permits satisfy.
            WAKE_ALL
        } else {
            u32::try_from(added.min(sleepers(s))).unwrap_or(WAKE_ALL)
        };
        Shared::wake(&region.wake, n);
    }

    /// Wakes every sleeper (closing).
    pub(super) fn wake_all(&self) {
        let region = self.region();
        // Release: pairs with the Acquire load of the word by a sleeper.
        region.wake.bump(Release);
        Shared::wake(&region.wake, WAKE_ALL);
    }
}
