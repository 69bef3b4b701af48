//! The holder table: how many permits each process holds, so that the permits of a process that
//! died can be given back exactly.
//!
//! # Protocol
//! 1. **Claim.** The first time a process uses a handle it looks for the slot that is its own
//!    (`owner` is its identity, pid + start time, *and* `nonce` is its incarnation's nonce), else
//!    claims a free slot with a CAS `0 -> id` and then writes its nonce. Threads of one process
//!    claim one at a time ([`CLAIM_LOCK`], a process-local lock keyed by the nonce, so a child
//!    made by `fork` while a thread held it finds it free), so a process has at most one slot.
//!    It keeps the slot until it dies: its threads share it, each operation in one of the slot's
//!    lanes. When no slot is free, it first recovers the slots of dead processes; if the table is
//!    still full, the process is *untracked*: its acquires work, but what it holds is not given
//!    back if it dies.
//! 2. **Record.** Every take and give-back of a tracked process is an announce/complete
//!    operation in one of its lanes (`protocol.rs`): announced in the lane, published in the
//!    state word together with a tag naming the lane, completed in the lane's `held`. Whoever
//!    next changes the state word completes a tagged operation that is not complete yet. A
//!    thread announces in its own lane where it has one (plain stores), else in a shared one
//!    (`lease.rs`).
//! 3. **Recover.** A process that suspects a dead holder (a waiter after each ~100 ms without
//!    permits, or anyone through `ProcessSemaphore::recover`) reads each taken slot's owner and
//!    asks the kernel whether that process still exists (`kill(pid, 0)`, then
//!    `/proc/<pid>/stat`: another start time means the pid was reused; a zombie is dead). For a
//!    dead owner it claims the slot with a CAS `id -> its own id | RECOVERING`: exactly one
//!    recoverer wins, the others move on. The winner then re-reads the nonce it read with the
//!    owner before asking: if it changed, the slot was freed and claimed again meanwhile by a
//!    process with the dead one's pid and start time (pid reuse within one clock tick), and the
//!    winner puts the owner word back (`owners.rs`, invariant 2). The winner settles each lane (an announced operation
//!    is completed if it reached the state word, dropped if not: `State::resolve`), gives the
//!    slot's total back as an announced operation of its own in lane 0, takes the slot's sleep
//!    lane off the region's sleepers (settled the same way), and frees the slot (`Release`). A slot left `RECOVERING` by a
//!    recoverer that itself died is recovered again like any dead owner's, and its half-done
//!    give-back is settled like any other.
//!
//! # Crash windows
//! None: a take or give-back killed at any instruction either happened (and is completed by the
//! next process to touch the state, or by the recoverer) or did not, and so does a sleeper's
//! registration on `sleepers` (`parking.rs`).

use super::Holder;
use super::lease::{self, Pick};
use super::protocol::owners;
use super::protocol::{Announced, GIVE, Lane, Refused, SHARED_LANES, TAKE, held_total};
use super::region::{Region, Slot, View};
use super::sys::{self, Identity};
use crate::sync::{AtomicU64, Backoff, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

/// The slot index of a process that has no slot: its permits are not recoverable.
pub(crate) const UNTRACKED: u32 = u32::MAX;

/// Whether `slot` is the process incarnation's of owner word `id` and nonce `nonce`.
#[inline]
pub(crate) fn is_mine(slot: &Slot, id: u64, nonce: u64) -> bool {
    // Relaxed: the nonce is written by this process (under the claim lock, which orders it for
    // its other threads) or by others, who never write ours.
    slot.nonce.load(Relaxed) == nonce && slot.owner.load(Relaxed) == id
}

/// Which slots a recovery looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Only slots that hold permits or sleepers: what a waiter scans, to keep the scan cheap.
    Holding,
    /// Every taken slot, freeing those of dead processes.
    All,
}

/// Held by the thread of this process that is claiming a slot: the nonce of its process, or
/// anything else when free (0, or the nonce of the parent this process was forked from while one
/// of the parent's threads held it: that thread does not exist here).
static CLAIM_LOCK: AtomicU64 = AtomicU64::new(0);

struct ClaimGuard;

impl ClaimGuard {
    fn lock(me: &Identity) -> ClaimGuard {
        let backoff = Backoff::new();
        loop {
            let seen = CLAIM_LOCK.load(Relaxed);
            // Acquire: pairs with the Release in `drop`: the slot the last claimer wrote is seen.
            if seen != me.nonce && CLAIM_LOCK.compare_exchange(seen, me.nonce, Acquire, Relaxed).is_ok() {
                return ClaimGuard;
            }
            // Another thread of this process is claiming (a few loads and one CAS per slot).
            backoff.snooze();
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        // Release: pairs with the Acquire in `lock`.
        CLAIM_LOCK.store(0, Release);
    }
}

impl<'a> View<'a> {
    /// Whether this process can use the holder table: its pids mean what the creator's mean.
    /// A process in another pid namespace is untracked and never judges who is alive.
    #[inline]
    pub(crate) fn tracks(&self, me: &Identity) -> bool {
        self.header.pid_ns.load(Relaxed) == me.pid_ns
    }

    /// Whether slot `index` is this process incarnation's.
    #[inline]
    pub(crate) fn is_mine(&self, index: u32, me: &Identity) -> bool {
        self.slot(index).is_some_and(|slot| is_mine(slot, me.id, me.nonce))
    }

    /// Whether slot `index` was claimed by an earlier image of this process, before an `exec`:
    /// its pid and start time, another nonce (a nonce is drawn per image). Nothing of that
    /// image runs any more: it is dead for recovery, whatever `/proc` says of the pid.
    fn is_earlier_image(&self, index: u32, me: &Identity) -> bool {
        // Relaxed: a hint; `recover_slot` looks again, with the orderings of `owners.rs`.
        self.slot(index).is_some_and(|s| {
            let nonce = s.nonce.load(Relaxed);
            s.owner.load(Relaxed) == me.id && nonce != 0 && nonce != me.nonce
        })
    }

    /// This process's slot: the one it has, or a free one claimed now, or [`UNTRACKED`].
    pub(crate) fn claim_slot(&self, me: &Identity) -> u32 {
        if !self.tracks(me) {
            return UNTRACKED;
        }
        let _claiming = ClaimGuard::lock(me);
        let slots = 0..self.slots.len() as u32;
        if let Some(own) = slots.clone().find(|&i| self.is_mine(i, me)) {
            return own;
        }
        // The slots of this process's images before an `exec`: what they held comes back now,
        // and the slots are free again (else each image took one more, until the table was full
        // and the process untracked).
        let earlier =
            slots.filter(|&i| self.is_earlier_image(i, me)).map(|i| self.recover_slot(i, me, Scope::All));
        self.wake_for_recovered(earlier.sum());
        if let Some(free) = self.claim_free(me) {
            return free;
        }
        // Full: free the slots of the dead, then try once more.
        self.wake_for_recovered(self.recover(me, Scope::All));
        self.claim_free(me).unwrap_or(UNTRACKED)
    }

    /// Wakes sleepers for `n` permits recovery gave back (`recover`'s caller's duty).
    fn wake_for_recovered(&self, n: u64) {
        if n > 0 {
            self.parking.wake(&self.state, n);
        }
    }

    fn claim_free(&self, me: &Identity) -> Option<u32> {
        for (i, slot) in self.slots.iter().enumerate() {
            if owners::claim(&slot.owner, &slot.nonce, me.id, me.nonce) {
                // The lanes sum to 0 and are idle: recovery settled them before it freed the
                // slot (they are not zeroed one by one: only their sum means anything).
                return Some(i as u32);
            }
        }
        None
    }

    /// Announces `op` of `n` permits in slot `index`, for the process incarnation `nonce`: in
    /// this thread's own lane if it has one (`lease.rs`), else in a free shared lane
    /// ([`announce_shared`](View::announce_shared)). For `forget`; a take and a give-back
    /// write the owned lane's path out themselves.
    #[inline]
    fn announce(&self, index: u32, slot: &'a Slot, nonce: u64, op: u64, n: u32) -> (&'a Lane, Announced) {
        match lease::pick(nonce) {
            Pick::Owned(i) => {
                let lane = &slot.lanes[i as usize];
                (lane, lane.announce_owned(index, i, op, n))
            }
            Pick::Shared(i) => self.announce_shared(index, slot, nonce, i, op, n),
        }
    }

    /// Announces `op` of `n` permits in a free shared lane of slot `index`, shared lane `first`
    /// first (spinning, then yielding, while all of them are in use by other threads of this
    /// process: each is held for a few instructions).
    #[inline]
    fn announce_shared(
        &self,
        index: u32,
        slot: &'a Slot,
        nonce: u64,
        first: u32,
        op: u64,
        n: u32,
    ) -> (&'a Lane, Announced) {
        let lane = &slot.lanes[first as usize];
        match lane.announce(index, first, op, n) {
            Some(done) => (lane, done),
            None => self.announce_slow(index, slot, nonce, op, n),
        }
    }

    #[cold]
    fn announce_slow(
        &self,
        index: u32,
        slot: &'a Slot,
        nonce: u64,
        op: u64,
        n: u32,
    ) -> (&'a Lane, Announced) {
        let backoff = Backoff::new();
        loop {
            // The shared lanes only: an owned lane is its owner's even while idle.
            for (i, lane) in slot.lanes[..SHARED_LANES].iter().enumerate() {
                if let Some(done) = lane.announce(index, i as u32, op, n) {
                    lease::prefer_shared(nonce, i as u32);
                    return (lane, done);
                }
            }
            backoff.snooze();
        }
    }

    /// Takes `n` permits for `me` (untagged for [`UNTRACKED`]).
    #[inline]
    pub(crate) fn take(&self, me: Holder, n: u32) -> Result<(), Refused> {
        self.take_in(me, self.slot(me.slot), lease::lane_word(), n)
    }

    /// [`take`](View::take) for `me`, whose slot is `slot` (`self.slot(me.slot)`: `None` for
    /// [`UNTRACKED`]), by the thread whose lane word is `lane` (`lease::lane_word`).
    #[inline(always)]
    pub(crate) fn take_in(
        &self,
        me: Holder,
        slot: Option<&'a Slot>,
        lane: u64,
        n: u32,
    ) -> Result<(), Refused> {
        let Holder { slot: index, nonce } = me;
        let Some(slot) = slot else {
            return self.state.take_untagged(self.slots, n);
        };
        // Nothing to take: fail without touching the lanes (a spinning waiter comes here often).
        let seen = self.state.check_take(n)?;
        // The thread's own lane is the path written out here, a shared one a call: on one path
        // from announcement to finish, the operation (a take) is a constant the compiler folds
        // into every step, where two paths joined made it a value tested at run time.
        let i = match lease::pick_from(lane, nonce) {
            Pick::Owned(i) => i,
            Pick::Shared(first) => {
                return View::take_shared(self.region, self.slots, me, slot, first, n, seen);
            }
        };
        let lane = &slot.lanes[i as usize];
        self.settle_take(lane, lane.announce_owned(index, i, TAKE, n), seen)
    }

    /// [`take`](View::take) in a shared lane (a thread without a lane of its own). Not a method:
    /// a `View` passed to a call is written to the stack on the fast path too.
    #[inline(never)]
    fn take_shared(
        region: &'a Region,
        slots: &'a [Slot],
        me: Holder,
        slot: &'a Slot,
        first: u32,
        n: u32,
        seen: u64,
    ) -> Result<(), Refused> {
        let this = View { region, slots };
        let (lane, op) = this.announce_shared(me.slot, slot, me.nonce, first, TAKE, n);
        this.settle_take(lane, op, seen)
    }

    /// Steps 2-4 of a take announced as `op` in `lane`, its CAS from the state word `seen`.
    #[inline(always)]
    fn settle_take(&self, lane: &Lane, op: Announced, seen: u64) -> Result<(), Refused> {
        match self.state.publish_from(self.slots, &op, seen) {
            Ok(_) => {
                op.complete(lane);
                op.finish(lane);
                Ok(())
            }
            Err(refused) => {
                op.withdraw(lane);
                Err(refused)
            }
        }
    }

    /// Gives back `n` permits that `me` holds (untagged for [`UNTRACKED`]) and wakes sleepers
    /// they can serve, by the thread whose lane word is `lane` (`lease::lane_word`). Past
    /// `MAX_PERMITS` (`add_permits` while permits were out, or a corrupt region) they are
    /// dropped.
    #[inline]
    pub(crate) fn give(&self, me: Holder, lane: u64, n: u32) {
        let Holder { slot: index, nonce } = me;
        let Some(slot) = self.slot(index) else {
            if let Some(old) = self.state.add_untagged(self.slots, u64::from(n)) {
                self.parking.wake_after(&self.state, old, u64::from(n));
            }
            return;
        };
        // As in `take`: the owned lane's path written out.
        let i = match lease::pick_from(lane, nonce) {
            Pick::Owned(i) => i,
            Pick::Shared(first) => {
                return View::give_shared(self.region, self.slots, me, slot, first, n);
            }
        };
        let lane = &slot.lanes[i as usize];
        self.settle_give(lane, lane.announce_owned(index, i, GIVE, n), n);
    }

    /// [`give`](View::give) in a shared lane (a thread without a lane of its own); not a method,
    /// as [`take_shared`](View::take_shared).
    #[inline(never)]
    fn give_shared(region: &'a Region, slots: &'a [Slot], me: Holder, slot: &'a Slot, first: u32, n: u32) {
        let this = View { region, slots };
        let (lane, op) = this.announce_shared(me.slot, slot, me.nonce, first, GIVE, n);
        this.settle_give(lane, op, n);
    }

    /// Steps 2-4 of a give-back of `n` announced as `op` in `lane`, and the wake.
    #[inline(always)]
    fn settle_give(&self, lane: &Lane, op: Announced, n: u32) {
        let given = self.state.publish_give(self.slots, &op);
        // Recorded as given back either way: past MAX_PERMITS they are dropped (and the
        // operation published with the permits unchanged).
        op.complete(lane);
        op.finish(lane);
        if let Some(old) = given {
            self.parking.wake_after(&self.state, old, u64::from(n));
        }
    }

    /// Un-records `n` permits `me` holds without giving them back (`forget`).
    pub(crate) fn unrecord(&self, me: Holder, n: u32) {
        if let Some(slot) = self.slot(me.slot) {
            let (lane, op) = self.announce(me.slot, slot, me.nonce, GIVE, n);
            // Published with the permits unchanged, so that the state word's tag keeps up with
            // the lane (invariant 1; unpublished, 2^14 - 1 forgets in a row made the lane's next
            // operation alias the tag of its last published one). Killed before this CAS, the
            // forget did not happen (recovery gives the permits back); after it, it did (the
            // recoverer completes it).
            self.state.publish_unchanged(self.slots, &op);
            op.complete(lane);
            op.finish(lane);
        }
    }

    /// Gives back the permits of dead holders; returns how many went back. The caller wakes
    /// sleepers for them.
    pub(crate) fn recover(&self, me: &Identity, scope: Scope) -> u64 {
        if !self.tracks(me) {
            return 0;
        }
        (0..self.slots.len() as u32).map(|i| self.recover_slot(i, me, scope)).sum()
    }

    fn recover_slot(&self, index: u32, me: &Identity, scope: Scope) -> u64 {
        let slot = &self.slots[index as usize];
        // The owner word and the nonce of the incarnation judged (`owners.rs`, invariant 2).
        let seen = owners::look(&slot.owner, &slot.nonce);
        let subject = seen.subject();
        // A slot of this process's pid and start time is its own, unless another nonce says an
        // earlier image claimed it (before an `exec`, or a namesake of the same clock tick, dead).
        // No nonce yet: a thread of this process is claiming it now. Under `RECOVERING`, the nonce
        // is the dead holder's, and the recoverer may be a thread of this image: left alone.
        let earlier_image = seen.owner == me.id && seen.nonce != 0 && seen.nonce != me.nonce;
        if seen.is_free() || (subject == me.id && !earlier_image) {
            return 0;
        }
        if scope == Scope::Holding
            && held_total(&slot.lanes) == 0
            && !slot.lanes.iter().any(Lane::is_busy)
            && slot.sleep.held() == 0
            && !slot.sleep.is_busy()
        {
            return 0;
        }
        if !earlier_image && !sys::is_dead(subject) {
            return 0;
        }
        // Exactly once: of all who saw this owner dead, one takes the slot over, unless it was
        // freed and claimed again meanwhile by a process of the same pid and start time (the
        // nonce tells; where the look found none, the owner is asked about again).
        if !owners::take_over(&slot.owner, &slot.nonce, seen, me.id, || sys::is_dead(subject)) {
            return 0;
        }
        // Settle every lane (what reached the state word is completed, the rest dropped), then
        // give the total back, itself as an announced operation.
        let returned = self.state.recover_lanes(self.slots, index, &slot.lanes);
        // Its sleepers' registrations, exactly (`parking.rs`).
        self.parking.take_off_dead(&self.sleep_lanes(), index, &slot.sleep);
        // The next claimer sees the settled lanes (`owners.rs`, Memory ordering).
        owners::free(&slot.owner, &slot.nonce);
        returned
    }
}
