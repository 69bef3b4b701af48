//! A holder slot's `owner` and `nonce` words: claiming a free slot, taking over a dead owner's
//! slot to recover it, and freeing it. Atomic words only, through `crate::sync`, so that it
//! builds under loom (`tests/loom_process.rs` models it); whether a process is alive is a system
//! call, the caller's (`holders.rs`), passed in.
//!
//! # The words
//! `owner`: 0 (`FREE`), or a process identity (pid and start time, `region.rs`), with
//! `RECOVERING` set while the process it names recovers the slot. `nonce`: the owning process
//! incarnation's nonce (never 0), or 0 while the slot is free or its claimer has not written it
//! yet.
//!
//! # Transitions
//! 1. **Claim** (`claim`): CAS `owner` from free to the claimer's identity, then store its
//!    nonce.
//! 2. **Take over** (`take_over`): a recoverer that judged the owner dead CASes `owner` from
//!    the word it judged to its own identity with `RECOVERING`; exactly one recoverer wins.
//! 3. **Free** (`free`): the recoverer, once done, stores `nonce = 0`, then `owner = 0`.
//!
//! # Invariants
//! 1. A slot freed and claimed again has passed through `nonce = 0`: the free stores it before
//!    the `owner` store that lets the next claim in.
//! 2. An identity names one process only up to pid reuse: a process with the pid of a dead one,
//!    started within the same clock tick, has the same identity. So the CAS of a take-over also
//!    succeeds if, between the recoverer's look and its CAS, another recoverer freed the slot and
//!    such a process claimed it: it would take a live process's slot. The nonce tells them
//!    apart (invariant 1), so a take-over re-reads it after winning, and gives the slot back if
//!    it changed (`take_over`). Where the look found no nonce (0: the claimer had not written it,
//!    or the slot was freed between the look's two reads), the nonce cannot tell, and the owner
//!    is asked about again after the CAS: a re-claimer exists by then. A dead claimer's own nonce
//!    seen only after the CAS also gives the slot back; the next scan recovers it. (Until
//!    2026-12-06 the nonce was not looked at.)
//!
//! # Memory ordering
//! The free's `owner` store is `Release`, and a claim's CAS reads it `Acquire` (the claimer sees
//! the settled lanes). A take-over's CAS is `AcqRel`: `Acquire` to read the lanes after the
//! owner's last writes, and so that its re-read of the nonce is ordered after the free that
//! came before a re-claim: the re-claim's CAS is a read-modify-write, so it continues the release
//! sequence headed by the free's `Release` store, and the take-over's CAS, which read the
//! re-claim's word, synchronises with that store; so the free's `nonce = 0` happens-before the
//! re-read, which finds 0 or the new claimer's nonce, never the old one.
//!
//! A recoverer must never judge dead a claimer it has seen: a look that found a claimer's nonce,
//! or a take-over whose CAS read a claimer's word (and then found no nonce), asks about the
//! owner after that claimer exists. The kernel ensures that (a process exists before it runs,
//! and the question is a system call made after the read), but loom cannot model it, so the
//! orderings carry it too, at no cost off the fast path: the claim's CAS is `AcqRel` and its
//! nonce store `Release`, and the look's nonce load `Acquire`. The loom model
//! (`a_recoverer_never_takes_over_a_slot_claimed_again_by_the_same_identity`) stands for "the
//! claimer exists" by a flag stored before the claim.

use crate::sync::{AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

/// A free slot.
pub const FREE: u64 = 0;
/// Set in `owner` while the process it names gives back a dead holder's permits.
pub const RECOVERING: u64 = 1 << 63;

/// What a recoverer saw of a slot before it asked whether its owner is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The `owner` word.
    pub owner: u64,
    /// The `nonce` word, read after `owner`.
    pub nonce: u64,
}

impl Seen {
    /// The process named by the owner word (without [`RECOVERING`]).
    #[inline]
    pub const fn subject(&self) -> u64 {
        self.owner & !RECOVERING
    }

    /// Whether the slot was free.
    #[inline]
    pub const fn is_free(&self) -> bool {
        self.owner == FREE
    }
}

/// Reads a slot's words for a recoverer, before it asks whether the owner is dead.
#[inline]
pub fn look(owner: &AtomicU64, nonce: &AtomicU64) -> Seen {
    // Acquire: pairs with the Release of `free` (through the release sequence the claim that
    // followed it continues), so that the nonce read next is not older than that free's 0.
    let seen = owner.load(Acquire);
    // Acquire: pairs with the Release store of `claim`: a look that finds a claimer's nonce
    // comes after that claimer exists (see the module's *Memory ordering*).
    Seen { owner: seen, nonce: nonce.load(Acquire) }
}

/// Claims a free slot for the process `id` of nonce `nonce` (transition 1); `false` if it is
/// not free.
#[inline]
pub fn claim(owner: &AtomicU64, nonce: &AtomicU64, id: u64, my_nonce: u64) -> bool {
    // AcqRel: Acquire pairs with the Release store of `free`: the settled lanes are seen.
    // Release: see the module's *Memory ordering*.
    if owner.load(Relaxed) != FREE || owner.compare_exchange(FREE, id, AcqRel, Relaxed).is_err() {
        return false;
    }
    // Release: pairs with the Acquire load of `look` (module docs). A take-over that read
    // `owner` before this store tells the re-claim by the 0 the free stored (invariant 1).
    nonce.store(my_nonce, Release);
    true
}

/// For a recoverer `me` that saw `seen` (by [`look`]) and then found its owner dead: takes the
/// slot over (transition 2); `false` if another recoverer did, or if the slot was freed and
/// claimed again meanwhile (invariant 2: then the owner word is put back). `still_dead` asks
/// again whether the owner is dead; it is called only when `seen` had no nonce (its claimer had
/// not written it yet, or the slot was freed between the two reads of `look`), so that the
/// nonce cannot tell.
#[inline]
pub fn take_over(
    owner: &AtomicU64,
    nonce: &AtomicU64,
    seen: Seen,
    me: u64,
    still_dead: impl FnOnce() -> bool,
) -> bool {
    // AcqRel: see the module's *Memory ordering*. Exactly once: of all who saw this owner dead,
    // one CAS succeeds.
    if owner.compare_exchange(seen.owner, me | RECOVERING, AcqRel, Relaxed).is_err() {
        return false;
    }
    // Relaxed: the CAS above acquired the free that came before any re-claim (module docs).
    let now = nonce.load(Relaxed);
    if now == seen.nonce && (seen.nonce != 0 || still_dead()) {
        return true;
    }
    // Freed and claimed again by a process of the same identity, alive: its slot. Release: the
    // next recoverer whose CAS reads this word sees what this one's CAS acquired.
    owner.store(seen.owner, Release);
    false
}

/// Frees a slot taken over and settled (transition 3).
#[inline]
pub fn free(owner: &AtomicU64, nonce: &AtomicU64) {
    // Relaxed: ordered before the next claim by the Release store below (invariant 1).
    nonce.store(0, Relaxed);
    // Release: pairs with the Acquire of the next claim's CAS (it must see settled lanes), and
    // of a take-over's CAS that reads a re-claim's word.
    owner.store(FREE, Release);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const DEAD: u64 = 42 | 7 << 32;
    const ME: u64 = 43 | 7 << 32;

    #[test]
    fn a_dead_owners_slot_is_taken_over_once() {
        let (owner, nonce) = (AtomicU64::new(FREE), AtomicU64::new(0));
        assert!(claim(&owner, &nonce, DEAD, 0xAB));
        assert!(!claim(&owner, &nonce, ME, 0xCD), "taken");
        let seen = look(&owner, &nonce);
        assert_eq!((seen.subject(), seen.nonce), (DEAD, 0xAB));
        assert!(take_over(&owner, &nonce, seen, ME, || unreachable!("the nonce tells")));
        assert!(!take_over(&owner, &nonce, seen, ME + 1, || true), "a second recoverer");
        assert_eq!(owner.load(Relaxed), ME | RECOVERING);
        free(&owner, &nonce);
        assert_eq!((owner.load(Relaxed), nonce.load(Relaxed)), (FREE, 0));
    }

    #[test]
    fn a_slot_freed_and_claimed_again_by_the_same_identity_is_not_taken_over() {
        // A recoverer looks and finds the owner dead; before its CAS, another recoverer frees
        // the slot and a process with the dead one's pid and start time claims it.
        let (owner, nonce) = (AtomicU64::new(FREE), AtomicU64::new(0));
        assert!(claim(&owner, &nonce, DEAD, 0xAB));
        let seen = look(&owner, &nonce);
        free(&owner, &nonce);
        assert!(claim(&owner, &nonce, DEAD, 0xEF));
        assert!(!take_over(&owner, &nonce, seen, ME, || unreachable!("the nonce tells")));
        assert_eq!((owner.load(Relaxed), nonce.load(Relaxed)), (DEAD, 0xEF), "given back");
        // The same when the look found no nonce yet (the claimer had not written it): the
        // owner is asked about again, and is alive.
        free(&owner, &nonce);
        assert!(owner.compare_exchange(FREE, DEAD, AcqRel, Relaxed).is_ok());
        let unfinished = look(&owner, &nonce);
        assert_eq!(unfinished.nonce, 0);
        assert!(!take_over(&owner, &nonce, unfinished, ME, || false));
        assert_eq!(owner.load(Relaxed), DEAD);
        // And dead: a claimer killed before it wrote its nonce leaves a slot recovered as usual.
        assert!(take_over(&owner, &nonce, unfinished, ME, || true));
    }
}
