//! The cross-process sleep protocol on the region's words: `sleepers`, the `wake` futex word and
//! each slot's `sleeping`. Atomic words and the futex only, through `crate::sync`, so that it
//! builds under loom (`tests/loom_process.rs` models it; `sleep.rs` drives it for
//! `ProcessSemaphore`).
//!
//! # The words
//! | word       | where          | meaning                                                               |
//! |------------|----------------|-----------------------------------------------------------------------|
//! | `sleepers` | region         | registered sleepers: all in bits 0..=31, those for more than one permit in 32..=63 |
//! | `wake`     | region         | the futex word sleepers wait on; a waking release bumps it            |
//! | `sleeping` | each slot      | the registrations of that slot's process, counted as in `sleepers`    |
//!
//! # Invariants
//! 1. A slot's `sleeping` never counts a registration that `sleepers` does not: a sleeper adds
//!    itself to `sleepers` first and takes itself off `sleeping` first. So a recoverer that
//!    subtracts a dead slot's `sleeping` from `sleepers` never takes off a live sleeper.
//! 2. No lost wakeup: a sleeper registers, then [`fence`]`(SeqCst)`, then reads `wake`, then tries
//!    once more; a release changes the state word, then `fence(SeqCst)`, then reads `sleepers`.
//!    Of the two fences, the one first in the single total order makes its side's write visible
//!    to the other side's read: either the release sees the registration (and bumps `wake` after
//!    the sleeper read it, so the sleeper's `futex_wait`, which compares the word atomically,
//!    returns at once or is queued before the wake), or the sleeper's last try sees the permits.
//!
//! # The one window left
//! Registering and unregistering are two atomic adds on two words. A process killed between
//! them stays counted in `sleepers` (one too many, never too few: invariant 1): every release
//! then makes a futex wake that wakes nobody, and a stale multi-permit count turns waking `n`
//! into waking all. Slower, never wrong. Closing it exactly would need `sleepers` tagged and
//! helped like the state word (`protocol.rs`): a CAS loop and a lane record on the sleeping
//! path (`docs/process.md`, *Crash windows*, has the cost).

use super::Refused;
use crate::sync::{AtomicU64, Futex, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use crate::sync::{Ordering::SeqCst, Park, WAKE_ALL, fence};
use std::time::Instant;

/// The futex of the region: process-shared (no `FUTEX_PRIVATE_FLAG`); under loom, loom's.
#[cfg(not(loom))]
type Parker = crate::sync::Shared;
#[cfg(loom)]
type Parker = crate::sync::Private;

/// The `sleepers` increment of an acquire for one permit...
pub const ONE_SLEEPER: u64 = 1;
/// ... and of an acquire for more than one (it counts in both halves).
pub const ONE_MANY_SLEEPER: u64 = 1 | 1 << 32;
const SLEEPERS_MASK: u64 = 0xFFFF_FFFF;

/// All sleeping acquires in a `sleepers` value.
#[inline]
pub const fn sleepers(s: u64) -> u64 {
    s & SLEEPERS_MASK
}

/// Whether a `sleepers` value counts an acquire for more than one permit.
#[inline]
pub const fn has_many_sleepers(s: u64) -> bool {
    s >> 32 != 0
}

/// The unit a sleeper for `n` permits counts itself with.
#[inline]
pub const fn unit(n: u32) -> u64 {
    if n > 1 { ONE_MANY_SLEEPER } else { ONE_SLEEPER }
}

/// The region's sleep words: `sleepers` and `wake` (offsets 72 and 80 of the region).
#[repr(C)]
pub struct Parking {
    /// Registered sleepers (see the module header).
    pub sleepers: AtomicU64,
    wake: Futex,
}

impl Parking {
    crate::loom_const_fn! {
        /// Nobody sleeping.
        #[cfg_attr(not(loom), allow(dead_code))]
        pub fn new() -> Parking {
            Parking { sleepers: AtomicU64::new(0), wake: Futex::new() }
        }
    }

    /// Step 1 of registering: counts a sleeper of `unit` in `sleepers` (invariant 1: before
    /// the slot).
    #[inline]
    pub fn count(&self, unit: u64) {
        self.sleepers.fetch_add(unit, Relaxed);
    }

    /// Step 2 of registering: counts it in its slot's `sleeping`.
    #[inline]
    pub fn count_in_slot(&self, sleeping: &AtomicU64, unit: u64) {
        sleeping.fetch_add(unit, Relaxed);
    }

    /// Unregisters: the slot first, then `sleepers` (invariant 1).
    #[inline]
    pub fn uncount(&self, sleeping: Option<&AtomicU64>, unit: u64) {
        if let Some(sleeping) = sleeping {
            sleeping.fetch_sub(unit, Relaxed);
            self.sleepers.fetch_sub(unit, Relaxed);
        }
    }

    /// One round of a sleeper: registers (if it has a slot: `sleeping`), tries once more with
    /// `attempt`, and if that finds no permits, sleeps on `wake` until woken or `until`; then
    /// unregisters. Returns the attempt. A sleeper without a slot does not register (nobody could
    /// take it off if it died): it must poll, with a short `until`.
    #[inline]
    pub fn round(
        &self,
        sleeping: Option<&AtomicU64>,
        unit: u64,
        until: Option<Instant>,
        attempt: impl FnOnce() -> Result<(), Refused>,
    ) -> Result<(), Refused> {
        if let Some(sleeping) = sleeping {
            self.count(unit);
            self.count_in_slot(sleeping, unit);
        }
        // SeqCst: pairs with the fence in `wake` (invariant 2).
        fence(SeqCst);
        // Acquire: pairs with the Release bump in `wake_slow`.
        let seen = self.wake.load(Acquire);
        let attempted = attempt();
        if attempted == Err(Refused::NoPermits) {
            // Whatever the outcome, the caller re-checks the state and the clock.
            let _ = Parker::wait(&self.wake, seen, until);
        }
        self.uncount(sleeping, unit);
        attempted
    }

    /// After `added` permits were added to the state word: wakes the sleepers they can serve, if
    /// anyone is registered.
    #[inline]
    pub fn wake(&self, added: u64) {
        // SeqCst: pairs with the fence in `round` (invariant 2).
        fence(SeqCst);
        let s = self.sleepers.load(Relaxed);
        if sleepers(s) != 0 {
            self.wake_slow(s, added);
        }
    }

    #[cold]
    fn wake_slow(&self, s: u64, added: u64) {
        // Release: pairs with the Acquire load of the word in `round`.
        self.wake.bump(Release);
        let n = if has_many_sleepers(s) {
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

    /// For a recoverer that owns a dead process's slot: takes that process's registrations
    /// (its slot's `sleeping`) off `sleepers`. By invariant 1 they are all in `sleepers`, so no
    /// live sleeper is taken off.
    pub fn take_off_dead(&self, sleeping: &AtomicU64) {
        let dead = sleeping.swap(0, Relaxed);
        if dead != 0 {
            self.sleepers.fetch_sub(dead, Relaxed);
        }
    }
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::offset_of!(Parking, wake) == 8 && std::mem::size_of::<Parking>() == 16);

impl std::fmt::Debug for Parking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parking")
            .field("sleepers", &self.sleepers.load(Relaxed))
            .field("wake", &self.wake.load(Relaxed))
            .finish()
    }
}

impl Default for Parking {
    fn default() -> Parking {
        Parking::new()
    }
}
