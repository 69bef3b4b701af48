//! The holder table: how many permits each process holds, so that the permits of a process that
//! died can be given back.
//!
//! # Protocol
//! 1. **Claim.** The first time a process uses a handle it looks for the slot whose `owner` is
//!    its own identity (pid + start time; another handle or an earlier `exec` of the same
//!    process may have claimed it), else claims a free slot with a CAS `0 -> id`. It keeps the
//!    slot until it dies: its threads share it. When no slot is free, it first recovers the slots
//!    of dead processes; if the table is still full, the process is *untracked*: its acquires
//!    work, but what it holds is not given back if it dies.
//! 2. **Record.** An acquire takes permits from the engine *first*, then adds them to the
//!    slot's `held`. A release subtracts them from `held` *first*, then gives them to the engine.
//!    So `held` never counts more than the process took: a crash between the two steps leaves
//!    fewer permits in circulation, never more (see "Crash windows" below).
//! 3. **Recover.** A process that suspects a dead holder (a waiter after each ~100 ms without
//!    permits, or anyone through `ProcessSemaphore::recover`) reads each taken slot's owner and
//!    asks the kernel whether that process still exists (`kill(pid, 0)`, then
//!    `/proc/<pid>/stat`: another start time means the pid was reused; a zombie is dead). For a
//!    dead owner it claims the slot with a CAS `id -> its own id | RECOVERING`: exactly one
//!    recoverer wins, the others move on. The winner swaps `held` and `sleeping` to 0, gives the
//!    held permits back to the engine, takes the sleeping count off the region's sleepers, and
//!    frees the slot (`Release`, so that the next claimer sees the zeros). A slot left
//!    `RECOVERING` by a recoverer that itself died is recovered again like any dead owner's.
//!
//! # Crash windows
//! A process killed between the engine's CAS and its `held += n` (a few instructions), or between
//! `held -= n` and the engine's add (likewise), or a recoverer killed between its swap of `held`
//! and its add, loses those permits: nobody can give them back. Recording *before* taking would
//! close the first window but open a worse one: the engine's state word does not say who took
//! what, so a recoverer could not tell "died just before the CAS" from "died just after", and
//! would hand out permits that were never taken (more holders than permits). This design errs
//! toward fewer permits, never toward more. `add_permits` restores lost permits.

use super::region::{Region, Slot, owner};
use super::sys::{self, Identity};
use crate::raw::MAX_PERMITS;
use crate::sync::{Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

/// The slot index of a process that has no slot: its permits are not recoverable.
pub(crate) const UNTRACKED: u32 = u32::MAX;

/// Which slots a recovery looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Only slots that hold permits or sleepers: what a waiter scans, to keep the scan cheap.
    Holding,
    /// Every taken slot, freeing those of dead processes.
    All,
}

impl Region {
    /// Whether this process can use the holder table: its pids mean what the creator's mean.
    /// A process in another pid namespace is untracked and never judges who is alive.
    #[inline]
    pub(crate) fn tracks(&self, me: &Identity) -> bool {
        self.header.pid_ns.load(Relaxed) == me.pid_ns
    }

    /// This process's slot: the one it has, or a free one claimed now, or [`UNTRACKED`].
    pub(crate) fn claim_slot(&self, me: &Identity) -> u32 {
        if !self.tracks(me) {
            return UNTRACKED;
        }
        if let Some(own) = self.slots.iter().position(|s| s.owner.load(Acquire) == me.id) {
            return own as u32;
        }
        if let Some(free) = self.claim_free(me) {
            return free;
        }
        // Full: free the slots of the dead, then try once more.
        self.recover(me, Scope::All);
        self.claim_free(me).unwrap_or(UNTRACKED)
    }

    fn claim_free(&self, me: &Identity) -> Option<u32> {
        for (i, slot) in self.slots.iter().enumerate() {
            // Acquire: pairs with the Release store that freed the slot, so the zeros are seen.
            if slot.owner.load(Relaxed) == owner::FREE
                && slot.owner.compare_exchange(owner::FREE, me.id, Acquire, Relaxed).is_ok()
            {
                // `held` and `sleeping` are 0: recovery zeroed them before it freed the slot. (Not
                // zeroed again here: another thread of this process may find the slot by its
                // owner and record permits in it from the moment of the CAS.)
                return Some(i as u32);
            }
        }
        None
    }

    /// Records `n` permits taken by this process (after the engine gave them).
    #[inline]
    pub(crate) fn record(&self, slot: u32, n: u32) {
        if let Some(slot) = self.slot(slot) {
            // Relaxed: read by this process's threads (one modification order) and, after its
            // death, by a recoverer, which learnt of the death from the kernel.
            slot.held.fetch_add(u64::from(n), Relaxed);
        }
    }

    /// Un-records `n` permits this process gives back or forgets (before the engine gets them).
    #[inline]
    pub(crate) fn unrecord(&self, slot: u32, n: u32) {
        if let Some(slot) = self.slot(slot) {
            // Relaxed: as in `record`. Wraps (never panics) if a corrupt region says less is held.
            slot.held.fetch_sub(u64::from(n), Relaxed);
        }
    }

    /// Gives back the permits of dead holders; returns how many went back. The caller wakes
    /// sleepers for them.
    pub(crate) fn recover(&self, me: &Identity, scope: Scope) -> u64 {
        if !self.tracks(me) {
            return 0;
        }
        self.slots.iter().map(|slot| self.recover_slot(slot, me, scope)).sum()
    }

    fn recover_slot(&self, slot: &Slot, me: &Identity, scope: Scope) -> u64 {
        let seen = slot.owner.load(Acquire);
        let subject = seen & !owner::RECOVERING;
        if seen == owner::FREE || subject == me.id {
            return 0;
        }
        if scope == Scope::Holding && slot.held.load(Relaxed) == 0 && slot.sleeping.load(Relaxed) == 0 {
            return 0;
        }
        if !sys::is_dead(subject) {
            return 0;
        }
        // Exactly once: of all who saw this owner dead, one CAS succeeds. AcqRel: Acquire to
        // read `held` after the owner's last write to it, Release for a recoverer that finds
        // this one dead in turn.
        if slot.owner.compare_exchange(seen, me.id | owner::RECOVERING, AcqRel, Relaxed).is_err() {
            return 0;
        }
        let held = slot.held.swap(0, Relaxed);
        // More than can exist: the slot is corrupt (or was cleared while in use). Giving back
        // nothing errs toward fewer permits, as everywhere here.
        let held = if held > MAX_PERMITS { 0 } else { held };
        let sleeping = slot.sleeping.swap(0, Relaxed);
        if sleeping != 0 {
            // Their registrations: the slot's count never exceeds what is in the total (it is
            // added second and taken off first), so this never takes off a live sleeper.
            self.sleepers.fetch_sub(sleeping, Relaxed);
        }
        let returned = if held != 0 && self.sem.add_permits(held, MAX_PERMITS).is_ok() { held } else { 0 };
        // Release: pairs with the Acquire CAS of the next claimer (it must see the zeros).
        slot.owner.store(owner::FREE, Release);
        returned
    }
}
