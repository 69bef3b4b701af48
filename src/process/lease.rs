//! Which lane of its process's holder slot a thread announces in: its own, or a shared one.
//!
//! A slot has [`LANES`] lanes (`protocol.rs`). Lanes [`SHARED_LANES`]`..LANES` are *owned*:
//! lane `i` of every slot this process has (one per region) belongs to the one thread of the
//! process that holds lease `i`, from its first recorded operation until it exits. Nobody else
//! writes that lane's `announce` while the process lives, so its owner announces with a plain
//! store ([`Lane::announce_owned`](super::protocol::Lane::announce_owned)): a recorded take or
//! give-back is then one read-modify-write (the state word's CAS), as an unrecorded one is.
//! Lanes `0..SHARED_LANES` are *shared*: a thread without a lease (more threads than owned
//! lanes, or one whose lease could not be kept) reserves one for each operation with a CAS
//! ([`Lane::announce`](super::protocol::Lane::announce)), and never touches an owned lane.
//!
//! # The leases
//! [`LEASES`] is a process-local word: the low 32 bits of the nonce of the process incarnation
//! it speaks for (`sys::Identity::nonce`) in bits 32..64, and in bits 0..32 one bit per leased
//! lane. A thread's [`LANE`] names its lane under a nonce. Invariants, for the process's nonce `c`:
//! 1. A thread's `LANE` names owned lane `i` under `c` only while bit `i` of `LEASES` is set under
//!    `c` on its behalf: it sets the bit (a CAS) before it names the lane, and at exit (the
//!    [`Lease`] guard's drop) names a shared lane before it clears the bit.
//! 2. Hence no two threads name one owned lane under `c`.
//! 3. After `fork` the child's nonce is another: every `LANE` copied from the parent names the
//!    parent's nonce and is not used (the fast path compares the nonce), and `LEASES` under the
//!    parent's nonce reads as empty. The child's threads lease again; the parent's bits, of
//!    threads the child does not have, are not leaked into it.
//!
//! A lease left behind (a thread that exited without running its thread-local destructors) is
//! harmless: the lane stays owned by nobody, and threads use the rest or the shared lanes.
//! Nothing here is async-signal-safe (README): a signal handler that operated on the semaphore
//! in the middle of its thread's operation would announce over it.

use super::protocol::{LANES, SHARED_LANES};
use crate::sync::{AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed};
use std::cell::Cell;

/// The leases of this process: see the module docs.
static LEASES: AtomicU64 = AtomicU64::new(0);

/// Spreads threads without a lease over the shared lanes.
static NEXT_SHARED: AtomicU64 = AtomicU64::new(0);

/// In a [`LANE`] value: the lane is owned (leased), not shared.
const OWNED: u64 = 1 << 8;
/// In a [`LANE`] value: the lane index.
const INDEX: u64 = 0xFF;
/// How many lanes of a slot are owned.
const OWNED_LANES: u64 = (LANES - SHARED_LANES) as u64;
/// The bits of [`LEASES`] that can be leased: one per owned lane.
const LEASABLE: u32 = ((1u32 << LANES) - 1) & !((1u32 << SHARED_LANES) - 1);

thread_local! {
    /// This thread's lane: `nonce32 << 32 | OWNED? | index`, or 0 before its first operation.
    static LANE: Cell<u64> = const { Cell::new(0) };
    /// Gives this thread's lease back when it exits.
    static LEASE: Lease = const { Lease { mine: Cell::new(0), leases: Cell::new(None) } };
}

/// Where a thread announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// Its own lane: announce with a plain store.
    Owned(u32),
    /// A shared lane to try first: reserve it with a CAS (another if it is busy).
    Shared(u32),
}

#[inline]
const fn nonce32(nonce: u64) -> u64 {
    nonce & 0xFFFF_FFFF
}

/// The lane this thread announces in, for the process incarnation `nonce` (the caller's
/// `Holder`'s: this process's).
#[inline]
pub(crate) fn pick(nonce: u64) -> Pick {
    pick_in(&LEASES, nonce)
}

/// This thread's [`LANE`] word, for [`pick_from`]: an operation reads it first, before its
/// other values are live, as in a shared library the read is a call (`__tls_get_addr`) around
/// which the caller saves every value it keeps.
#[inline]
pub(crate) fn lane_word() -> u64 {
    LANE.get()
}

/// [`pick`], from this thread's [`LANE`] word `v` as [`lane_word`] read it.
#[inline]
pub(crate) fn pick_from(v: u64, nonce: u64) -> Pick {
    pick_with(v, &LEASES, nonce)
}

/// [`pick`] with the leases in `leases` (the tests' own).
#[inline]
fn pick_in(leases: &'static AtomicU64, nonce: u64) -> Pick {
    pick_with(LANE.get(), leases, nonce)
}

/// The lane that [`LANE`] word `v` names for `nonce`, or one leased from `leases` now.
#[inline]
fn pick_with(v: u64, leases: &'static AtomicU64, nonce: u64) -> Pick {
    // `v` with its nonce field cleared if it is this incarnation's (else bits 32.. stay set).
    let mine = v ^ nonce32(nonce) << 32;
    // Owned lane `i` is the word `OWNED | i`: one compare checks the nonce, the flag and the
    // range, and the index it gives is known to be below `LANES` (no bounds check after it).
    let owned = mine.wrapping_sub(OWNED | SHARED_LANES as u64);
    if owned < OWNED_LANES {
        return Pick::Owned(owned as u32 + SHARED_LANES as u32);
    }
    if mine & !INDEX == 0 {
        return Pick::Shared(mine as u32);
    }
    choose(leases, nonce)
}

/// The first operation of this thread under `nonce`: leases a lane if one is free.
#[cold]
fn choose(leases: &'static AtomicU64, nonce: u64) -> Pick {
    let tag = nonce32(nonce) << 32;
    if let Some(index) = lease_in(leases, nonce) {
        let mine = tag | OWNED | u64::from(index);
        // Registers the guard's destructor. Fails while this thread's thread-locals are being
        // destroyed: then no lease (it would never be given back).
        let kept = LEASE.try_with(|lease| {
            lease.mine.set(mine);
            lease.leases.set(Some(leases));
        });
        if kept.is_ok() {
            LANE.set(mine);
            return Pick::Owned(index);
        }
        release_in(leases, mine);
    }
    let index = (NEXT_SHARED.fetch_add(1, Relaxed) % SHARED_LANES as u64) as u32;
    LANE.set(tag | u64::from(index));
    Pick::Shared(index)
}

/// After a shared lane other than the picked one was free: try that one first next time.
#[inline]
pub(crate) fn prefer_shared(nonce: u64, index: u32) {
    let v = LANE.get();
    if v >> 32 == nonce32(nonce) && v & OWNED == 0 {
        LANE.set(v & !INDEX | u64::from(index));
    }
}

/// Leases a free owned lane in `leases` for the process incarnation `nonce` (bits leased under
/// another nonce are a parent's: free here, invariant 3).
fn lease_in(leases: &AtomicU64, nonce: u64) -> Option<u32> {
    let tag = nonce32(nonce) << 32;
    let mut seen = leases.load(Relaxed);
    loop {
        let taken = if seen & !0xFFFF_FFFF == tag { seen as u32 } else { 0 };
        let free = LEASABLE & !taken;
        if free == 0 {
            return None;
        }
        let index = free.trailing_zeros();
        // AcqRel: Acquire pairs with the release of the thread that held this lease before, so
        // its last writes to the lane (stores of `held`) are seen; Release for symmetry with
        // other leasers (nothing else is published here).
        match leases.compare_exchange_weak(seen, tag | u64::from(taken | 1 << index), AcqRel, Relaxed) {
            Ok(_) => return Some(index),
            Err(now) => seen = now,
        }
    }
}

/// Gives back the lease named by the [`LANE`] value `mine`, if `leases` still speaks for its
/// nonce (else it was a parent's, and this process never had it).
fn release_in(leases: &AtomicU64, mine: u64) {
    let tag = mine & !0xFFFF_FFFF;
    let bit = 1u64 << (mine & INDEX);
    let mut seen = leases.load(Relaxed);
    while seen & !0xFFFF_FFFF == tag && seen & bit != 0 {
        // AcqRel: Release pairs with the Acquire of the next leaser (it sees this thread's
        // writes to the lane).
        match leases.compare_exchange_weak(seen, seen & !bit, AcqRel, Acquire) {
            Ok(_) => return,
            Err(now) => seen = now,
        }
    }
}

/// The lease a thread holds, given back when its thread-locals are destroyed.
struct Lease {
    /// Its [`LANE`] value, or 0: none.
    mine: Cell<u64>,
    /// Where it was leased ([`LEASES`] but in the tests).
    leases: Cell<Option<&'static AtomicU64>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (mine, Some(leases)) = (self.mine.get(), self.leases.get()) else { return };
        // Invariant 1: the lane is named shared before the bit is cleared, so an operation in a
        // later destructor of this thread announces in a shared lane.
        let _ = LANE.try_with(|lane| {
            if lane.get() == mine {
                lane.set(mine & !(OWNED | INDEX));
            }
        });
        release_in(leases, mine);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const A: u64 = 0x1234_0000_0000_0001;
    const B: u64 = 0x5678_0000_0000_0003;

    #[test]
    fn each_owned_lane_is_leased_once_and_shared_lanes_never() {
        let leases = AtomicU64::new(0);
        let got: Vec<u32> = std::iter::from_fn(|| lease_in(&leases, A)).collect();
        let owned: Vec<u32> = (SHARED_LANES as u32..LANES as u32).collect();
        assert_eq!(got, owned);
        assert_eq!(lease_in(&leases, A), None, "only {} owned lanes", owned.len());
    }

    #[test]
    fn a_released_lease_is_leased_again() {
        let leases = AtomicU64::new(0);
        let first = lease_in(&leases, A).unwrap();
        let second = lease_in(&leases, A).unwrap();
        release_in(&leases, nonce32(A) << 32 | OWNED | u64::from(first));
        assert_eq!(lease_in(&leases, A), Some(first));
        assert_ne!(lease_in(&leases, A), Some(second));
    }

    #[test]
    fn a_new_incarnation_finds_every_lane_free_and_ignores_the_old_releases() {
        let leases = AtomicU64::new(0);
        while lease_in(&leases, A).is_some() {}
        // A child made by `fork` (another nonce): the parent's leases are not its own.
        let child = lease_in(&leases, B).unwrap();
        assert_eq!(child, SHARED_LANES as u32);
        // A parent's guard, copied into the child and dropped there, frees nothing of the child's.
        release_in(&leases, nonce32(A) << 32 | OWNED | u64::from(child));
        assert_ne!(lease_in(&leases, B), Some(child));
    }

    #[test]
    fn a_lane_word_names_its_lane_only_under_its_own_nonce() {
        static FRESH: AtomicU64 = AtomicU64::new(0);
        let mine = nonce32(A) << 32;
        for i in SHARED_LANES as u32..LANES as u32 {
            assert_eq!(pick_with(mine | OWNED | u64::from(i), &FRESH, A), Pick::Owned(i));
        }
        for i in 0..SHARED_LANES as u32 {
            assert_eq!(pick_with(mine | u64::from(i), &FRESH, A), Pick::Shared(i));
        }
        assert_eq!(FRESH.load(Relaxed), 0, "nothing leased for a word of this incarnation");
        // A parent's words (after `fork`), or none yet: this thread leases a lane of its own.
        let parents = nonce32(B) << 32 | OWNED | SHARED_LANES as u64;
        assert_eq!(pick_with(parents, &FRESH, A), Pick::Owned(SHARED_LANES as u32));
        assert_eq!(pick_with(0, &FRESH, A), Pick::Owned(SHARED_LANES as u32 + 1));
    }

    #[test]
    fn threads_hold_distinct_lanes_and_give_them_back_at_exit() {
        static OWN: AtomicU64 = AtomicU64::new(0);
        let barrier = std::sync::Barrier::new(LANES + 2);
        let picks = std::thread::scope(|s| {
            let threads: Vec<_> = (0..LANES + 2)
                .map(|_| {
                    s.spawn(|| {
                        let pick = pick_in(&OWN, A);
                        assert_eq!(pick_in(&OWN, A), pick, "a thread keeps its lane");
                        // Every thread holds its pick until all have picked.
                        barrier.wait();
                        pick
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>()
        });
        let mut owned: Vec<u32> =
            picks.iter().filter_map(|p| if let Pick::Owned(i) = p { Some(*i) } else { None }).collect();
        owned.sort();
        assert_eq!(owned, (SHARED_LANES as u32..LANES as u32).collect::<Vec<_>>(), "picks: {picks:?}");
        assert!(
            picks.iter().all(|p| !matches!(p, Pick::Shared(i) if *i as usize >= SHARED_LANES)),
            "a shared pick names an owned lane: {picks:?}"
        );
        // All exited: every lease is back, and a new thread gets the first owned lane again.
        assert_eq!(OWN.load(Relaxed) as u32, 0);
        let again = std::thread::spawn(|| pick_in(&OWN, A)).join().unwrap();
        assert_eq!(again, Pick::Owned(SHARED_LANES as u32));
    }
}
