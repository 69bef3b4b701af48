//! The cross-process sleep protocol on the region's words: `sleepers`, the `wake` futex word and
//! each slot's sleep lane. Atomic words and the futex only, through `crate::sync`, so that it
//! builds under loom (`tests/loom_process.rs` models it; `sleep.rs` drives it for
//! `ProcessSemaphore`).
//!
//! # The words
//! | word       | where          | meaning                                                               |
//! |------------|----------------|-----------------------------------------------------------------------|
//! | `sleepers` | region         | a tagged word of `protocol.rs`'s encoding: registered sleepers, all in bits 0..=15 and those for more than one permit in 16..=30 (bit 31 is the state word's flag bit, unused here), then the tag of the last registration |
//! | `wake`     | region         | the futex word sleepers wait on; a waking release bumps it            |
//! | `sleep`    | each slot      | a [`Lane`]: the slot's registrations, counted as in `sleepers`, announced and completed like a take |
//!
//! # Registering is an announced operation
//! A sleeper registers (and unregisters) exactly as a take (a give-back) is made on the state
//! word (`protocol.rs`, the four steps), with `sleepers` in place of the state word and its
//! slot's sleep lane in place of a permit lane: announce [`REGISTER`] (or [`UNREGISTER`]) of its
//! unit in the sleep lane, publish it on `sleepers` with the tag `(slot, 0, seq)` (helping the
//! tag it overwrites), complete it in the lane's `held`, finish. So a process killed at any
//! instruction leaves its registrations decidable: its recoverer settles the lane
//! ([`State::resolve`]) and takes the lane's total off `sleepers` as an announced operation of
//! its own ([`Parking::take_off_dead`]). No registration is left counted, and none is taken off
//! twice (layout version 3; version 2 used two plain adds and leaked one when killed between them).
//!
//! The sleep lane is one per slot: the threads of a process register one at a time (a few
//! instructions each). A registration that does not get the lane within a bounded spin, or that
//! would overflow a 16-bit count, is not made: that sleeper polls, as an untracked one does.
//!
//! # Invariants
//! 1. `sleepers` counts exactly the registrations that reached it, and each slot's sleep lane (once
//!    settled) exactly its process's among them: the protocol's invariants 1-3 on these words.
//! 2. No lost wakeup, on one word: a sleeper registers, then sets [`SLEEPING`] in the state word
//!    (a read-modify-write, `AcqRel`), then reads `wake`, then tries once more; a release changes
//!    the state word (its publishing CAS) and wakes if the word it replaced had `SLEEPING`. The two
//!    RMWs are ordered in the state word's modification order: if the release's comes later, it
//!    sees the flag, and (acquiring it) the registration, and bumps `wake` after the sleeper read
//!    it, so the sleeper's `futex_wait`, which compares the word atomically, returns at once or is
//!    queued before the wake; if it comes earlier, the sleeper's last try sees the permits. A
//!    release that sees the flag with nobody registered clears it and looks at `sleepers` again
//!    (`wake_slow`): a sleeper whose mark came before the clear is seen then (the clear acquired
//!    the mark), and one whose mark comes after sees the permits. Acquire/release on one word: loom
//!    models it exactly (the `SeqCst` fences of layout 2 cost a locked instruction per release).

use super::{Announced, Lane, Lanes, Refused, SLEEPING, State};
use super::{GIVE, TAKE};
use crate::sync::{Backoff, Futex, Ordering::Acquire, Ordering::Release};
use crate::sync::{Park, WAKE_ALL};
use std::time::{Duration, Instant};

/// The futex of the region: process-shared (no `FUTEX_PRIVATE_FLAG`); under loom, loom's.
#[cfg(not(loom))]
type Parker = crate::sync::Shared;
#[cfg(loom)]
type Parker = crate::sync::Private;

/// The lane operation that counts a sleeper (the lane's count goes up, as for a take).
pub const REGISTER: u64 = TAKE;
/// The lane operation that takes one off.
pub const UNREGISTER: u64 = GIVE;

/// The count of an acquire for one permit...
pub const ONE_SLEEPER: u32 = 1;
/// ... and of an acquire for more than one (it counts in both halves).
pub const ONE_MANY_SLEEPER: u32 = 1 | 1 << 16;
const HALF: u64 = 0xFFFF;

/// How long a sleeper that could not register sleeps at most before it re-checks: no release
/// wakes it.
pub const POLL: Duration = Duration::from_millis(2);

/// All sleeping acquires in a `sleepers` word.
#[inline]
pub const fn sleepers(s: u64) -> u64 {
    s & HALF
}

/// Whether a `sleepers` word counts an acquire for more than one permit.
#[inline]
pub const fn has_many_sleepers(s: u64) -> bool {
    (s >> 16) & HALF != 0
}

/// The unit a sleeper for `n` permits counts itself with.
#[inline]
pub const fn unit(n: u32) -> u32 {
    if n > 1 { ONE_MANY_SLEEPER } else { ONE_SLEEPER }
}

/// Both halves of `count` plus (`add`) or minus `unit`; `None` if a half would leave 0..=0xFFFF.
#[inline]
fn moved(count: u64, unit: u32, add: bool) -> Option<u64> {
    let (u_all, u_many) = (u64::from(unit) & HALF, u64::from(unit) >> 16);
    let (all, many) = (count & HALF, (count >> 16) & HALF);
    let (all, many) =
        if add { (all + u_all, many + u_many) } else { (all.checked_sub(u_all)?, many.checked_sub(u_many)?) };
    // The multi-permit half has 15 bits: bit 31 of a tagged word is a flag.
    (all <= HALF && many <= HALF >> 1).then_some(many << 16 | all)
}

/// The region's sleep words: `sleepers` and `wake` (offsets 72 and 80 of the region).
#[repr(C)]
pub struct Parking {
    /// Registered sleepers (see the module header), a tagged word.
    pub sleepers: State,
    wake: Futex,
}

impl Parking {
    crate::loom_const_fn! {
        /// Nobody sleeping.
        #[cfg_attr(not(loom), allow(dead_code))]
        pub fn new() -> Parking {
            Parking { sleepers: State::new(0), wake: Futex::new() }
        }
    }

    /// Registers a sleeper of `unit` for slot `slot`, whose sleep lane is `lane` (`lanes` are the
    /// sleep lanes); `false` if not registered (the lane stayed busy, or a count is full).
    #[inline]
    pub fn register(&self, lanes: &(impl Lanes + ?Sized), slot: u32, lane: &Lane, unit: u32) -> bool {
        let backoff = Backoff::new();
        let op = loop {
            if let Some(op) = lane.announce(slot, 0, REGISTER, unit) {
                break op;
            }
            if backoff.is_completed() {
                return false;
            }
            backoff.snooze();
        };
        self.settle(lanes, lane, op, unit, true)
    }

    /// Takes a registration of `unit` off again (it must have been made: [`register`] said `true`).
    ///
    /// [`register`]: Parking::register
    #[inline]
    pub fn unregister(&self, lanes: &(impl Lanes + ?Sized), slot: u32, lane: &Lane, unit: u32) {
        let backoff = Backoff::new();
        let op = loop {
            // Another thread of this process holds the lane for a few instructions.
            if let Some(op) = lane.announce(slot, 0, UNREGISTER, unit) {
                break op;
            }
            backoff.snooze();
        };
        self.settle(lanes, lane, op, unit, false);
    }

    /// Step 2 of a registration (`add`) or unregistration of `unit` announced as `op`: publishes
    /// it on `sleepers`. A registration fails if a count is full; an unregistration never (a
    /// corrupt count that would go below zero is left as it is).
    #[inline]
    pub fn publish(
        &self,
        lanes: &(impl Lanes + ?Sized),
        op: &Announced,
        unit: u32,
        add: bool,
    ) -> Result<(), Refused> {
        self.sleepers.publish_with(lanes, op, |s| {
            let count = State::count_of(s);
            moved(count, unit, add).or((!add).then_some(count)).ok_or(Refused::NoPermits)
        })
    }

    /// Steps 2-4 of a (un)registration announced in `lane`.
    #[inline]
    fn settle(
        &self,
        lanes: &(impl Lanes + ?Sized),
        lane: &Lane,
        op: Announced,
        unit: u32,
        add: bool,
    ) -> bool {
        if self.publish(lanes, &op, unit, add).is_ok() {
            op.complete(lane);
            op.finish(lane);
            true
        } else {
            op.withdraw(lane);
            false
        }
    }

    /// One round of a sleeper: registers (if it has a slot: `me` is its index and sleep lane),
    /// tries once more with `attempt`, and if that finds no permits, sleeps on `wake` until woken
    /// or `until` (at most [`POLL`] if it could not register); then unregisters. Returns the
    /// attempt. A sleeper without a slot does not register (nobody could take it off if it died).
    #[inline]
    pub fn round(
        &self,
        state: &State,
        lanes: &(impl Lanes + ?Sized),
        me: Option<(u32, &Lane)>,
        unit: u32,
        mut until: Option<Instant>,
        attempt: impl FnOnce() -> Result<(), Refused>,
    ) -> Result<(), Refused> {
        let registered = me.filter(|&(slot, lane)| self.register(lanes, slot, lane, unit));
        if registered.is_some() {
            // After the registration: invariant 2.
            state.mark_sleeping();
        } else {
            let poll = Instant::now() + POLL;
            until = Some(until.map_or(poll, |u| u.min(poll)));
        }
        // Acquire: pairs with the Release bump in `wake_slow`.
        let seen = self.wake.load(Acquire);
        let attempted = attempt();
        if attempted == Err(Refused::NoPermits) {
            // Whatever the outcome, the caller re-checks the state and the clock.
            let _ = Parker::wait(&self.wake, seen, until);
        }
        if let Some((slot, lane)) = registered {
            self.unregister(lanes, slot, lane, unit);
        }
        attempted
    }

    /// After a change that added `added` permits to `state` and replaced the word `old`: wakes
    /// the sleepers they can serve if `old` had [`SLEEPING`] (invariant 2). The fast path: no
    /// fence, no other word read.
    #[inline]
    pub fn wake_after(&self, state: &State, old: u64, added: u64) {
        if old & SLEEPING != 0 {
            self.wake_slow(state, added);
        }
    }

    /// After `added` permits were added to `state` by a change whose replaced word the caller
    /// did not keep (recovery): the same, reading the flag by [`State::probe`].
    #[inline]
    pub fn wake(&self, state: &State, added: u64) {
        self.wake_after(state, state.probe(), added);
    }

    #[cold]
    fn wake_slow(&self, state: &State, added: u64) {
        // Relaxed: the change that saw SLEEPING acquired it from the `mark_sleeping` of every
        // sleeper it must wake, which came after that sleeper's registration.
        let mut s = self.sleepers.word();
        let mut n_all = false;
        if sleepers(s) == 0 {
            // Nobody registered now: clear the flag, then look again. A sleeper that marked the
            // flag before the clear is seen by this look (the clear acquired its mark); one that
            // marks it after sees the permits in its last try.
            state.clear_sleeping();
            s = self.sleepers.load(Acquire);
            if sleepers(s) == 0 {
                return;
            }
            // Someone registered meanwhile, and releases between the clear and this mark did not
            // wake: mark again and wake everyone, for their permits too.
            state.mark_sleeping();
            n_all = true;
        }
        // Release: pairs with the Acquire load of the word in `round`.
        self.wake.bump(Release);
        let n = if n_all || has_many_sleepers(s) {
            // Sizes differ: nobody knows which sleeper the permits satisfy.
            WAKE_ALL
        } else {
            u32::try_from(added.min(sleepers(s))).unwrap_or(WAKE_ALL)
        };
        Parker::wake(&self.wake, n);
    }

    /// Wakes every sleeper (closing).
    pub fn wake_all(&self) {
        // Release: pairs with the Acquire load of the word in `round`.
        self.wake.bump(Release);
        Parker::wake(&self.wake, WAKE_ALL);
    }

    /// For a recoverer that owns the dead process's slot `slot`, whose sleep lane is `lane`:
    /// settles its half-done (un)registration, then takes what the lane counts off `sleepers`, as
    /// an announced operation of its own (a recoverer killed half-way leaves it to the next).
    pub fn take_off_dead(&self, lanes: &(impl Lanes + ?Sized), slot: u32, lane: &Lane) {
        self.sleepers.resolve(lanes, slot, 0);
        let dead = lane.held();
        if dead == 0 {
            return;
        }
        // The recoverer owns the slot and the lane is settled, so idle.
        if let Some(op) = lane.announce(slot, 0, UNREGISTER, dead) {
            self.settle(lanes, lane, op, dead, false);
        }
    }
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::offset_of!(Parking, wake) == 8 && std::mem::size_of::<Parking>() == 16);

impl std::fmt::Debug for Parking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parking")
            .field("sleepers", &self.sleepers.word())
            .field("wake", &self.wake.load(crate::sync::Ordering::Relaxed))
            .finish()
    }
}

impl Default for Parking {
    fn default() -> Parking {
        Parking::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_move_in_both_halves_and_stop_at_their_limits() {
        assert_eq!(moved(0, ONE_MANY_SLEEPER, true), Some(u64::from(ONE_MANY_SLEEPER)));
        assert_eq!(moved(u64::from(ONE_MANY_SLEEPER), ONE_SLEEPER, true), Some(2 | 1 << 16));
        assert_eq!(moved(2 | 1 << 16, ONE_MANY_SLEEPER, false), Some(1));
        // Full: 0xFFFF sleepers in all, 0x7FFF for more than one permit (bit 31 is a flag's).
        assert_eq!(moved(HALF, ONE_SLEEPER, true), None);
        assert_eq!(moved(0x7FFF << 16 | 0x7FFF, ONE_MANY_SLEEPER, true), None);
        assert_eq!(moved(0, ONE_SLEEPER, false), None);
        let s = 3 | 1 << 16;
        assert_eq!((sleepers(s), has_many_sleepers(s), has_many_sleepers(3)), (3, true, false));
    }
}
