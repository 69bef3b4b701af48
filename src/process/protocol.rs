//! The announce/complete protocol of the process semaphore: the shared state word and the
//! holders' lanes, as operations on atomic words only (no system call, no process), so that it
//! builds under loom (`tests/loom_process.rs` models it; a killed process is a thread that stops
//! between two steps).
//!
//! # The words
//! The state word:
//!
//! | bits    | field      | meaning                                                              |
//! |---------|------------|----------------------------------------------------------------------|
//! | 0..=30  | permits    | permits available (at most `MAX_PERMITS`)                            |
//! | 31      | [`SLEEPING`] | a sleeper may be registered: a release that sees it wakes (`parking.rs`) |
//! | 32..=45 | tag seq    | low [`TAG_SEQ_BITS`] bits of the sequence of the last tagged change  |
//! | 46..=48 | tag lane   | the lane of that change                                              |
//! | 49..=62 | tag slot   | its slot + 1; 0: the last change was untagged (nobody to complete)   |
//! | 63      | [`CLOSED`] | closed: every take fails                                             |
//!
//! A lane (each holder slot has [`LANES`]: [`SHARED_LANES`] shared, the rest each owned by one
//! thread of the process) is two words:
//! `announce` (`n` in bits 0..=31, the sequence in 32..=61, the op in 62..=63: [`IDLE`], [`TAKE`],
//! [`GIVE`]) and `held` (the lane's held count, a wrapping `u32`, in bits 0..=31, the sequence
//! of its last completed op in 32..=61). A slot holds the wrapping sum of its lanes' counts (a
//! permit taken in one lane may be given back through another).
//!
//! # An operation, in four steps
//! 1. **Announce**: CAS `announce` from idle to `(op, n, seq)`, `seq = held.seq + 1` (this also
//!    reserves the lane for this thread).
//! 2. **Publish**: CAS the state word: the permits change *and* the tag becomes this lane and
//!    `seq`. Before that CAS overwrites a tag, the previous tag's operation must be complete
//!    (its lane's `held.seq` reached it): if not, this thread completes it ([`State::help`]).
//!    An operation whose permits do not go into the word (a `forget`, a give-back past
//!    `MAX_PERMITS`) is published all the same, the permits unchanged
//!    ([`State::publish_unchanged`]): a lane completes no operation it has not published.
//! 3. **Complete**: `held = (held ± n, seq)`: a plain store by the thread that announced, a CAS
//!    from `(held, seq - 1)` by a helper or a recoverer (see *Completion* below).
//! 4. **Finish**: `announce` back to idle.
//!
//! Steps 1, 3 and 4 are the announcing thread's, on its process's own slot. In an *owned*
//! lane (`SHARED_LANES..LANES`, one thread's for its lifetime: `lease.rs`) all three are plain
//! stores, so an operation is one read-modify-write, step 2. In a *shared* lane step 1 is a CAS
//! from idle, which reserves the lane for the operation.
//!
//! # Completion
//! Everyone who completes op `s` of a lane writes the same word, `applied(h, a)` with `h` the
//! lane's `held` after op `s - 1` and `a` the announcement. A helper or recoverer writes it by a
//! CAS from `h`; the owner by a plain store. Once either is in, `held` is not `h` again (its
//! sequence only grows), so a later helper's CAS fails and writes nothing: whatever the order,
//! `held` ends as that word, once. Loom (tokio-rs/loom#254) lets an RMW read past a concurrent
//! plain store, which C++'s [atomics.order] p10 forbids, and so reported the lane ending one
//! operation behind; the loom build makes the owner's store a swap, the same write (its read
//! unused) in the same place of the order, which loom models correctly.
//!
//! # Invariants
//! 1. While the state's tag names `(slot, lane, s)`, that lane's `held.seq` is `s - 1` or `s`,
//!    and its `announce` holds op `s` until `held.seq` is `s`: the lane's later operations are
//!    published (step 2) before they complete. (Until 2026-12-06 a `forget` completed unpublished;
//!    after 2^14 - 1 of them the lane's next announcement aliased the stale tag's 14 bits.)
//! 2. An announced op whose sequence is not in the tag and not in `held.seq` never reached the
//!    state word: a tag is overwritten only after its op is complete (step 2).
//! 3. Hence, for a dead owner, the recoverer decides exactly ([`State::resolve`]): op announced
//!    and (in the tag or completed) = it happened, complete it; otherwise roll it back (drop the
//!    announcement). Permits are then `state + sum of the lanes`, with none lost and none made.
//! 4. Every operation of a lane up to its `held.seq` is complete, and the one after it is the
//!    lane's announced one, which reaches the state word only by its own publishing CAS. So the
//!    thread that announced op `s + 1` after reading `held.seq = s` needs no help for a tag that
//!    names `(slot, lane, s)` (or an older op with those low bits): [`State::publish_from`].
//!
//! # Memory ordering
//! The publishing CAS is `AcqRel`: `Release` so that a helper or recoverer that reads the tag
//! (`Acquire`) sees the announcement made before it, and so that permits given back
//! happen-before the take that gets them; `Acquire` for the converse. `held` is stored and read
//! `Release`/`Acquire`, so a recoverer that reads it after the tag moved on sees the completion
//! the mover made (the mover completed before its own publishing CAS, invariant 2).
//! The tag keeps only 14 bits of the sequence: a helper re-reads the state after reading the
//! lane, and completes only if the state is unchanged, so a stale reading is never applied
//! (`docs/process.md`, *The announce/complete protocol*, has the argument).

use crate::raw::MAX_PERMITS;
use crate::sync::{
    AtomicU64, Ordering, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

// The sleep protocol on the region's words (its own file; here so that it builds under loom
// with this module). Its doc is its own `//!` header alone: beside an outer doc here, rustdoc
// resolved the header's links in this module's scope, not in its own.
#[path = "parking.rs"]
pub mod parking;

/// A holder slot's `owner` and `nonce` words: claim, take-over, free (its own file; here so
/// that it builds under loom with this module).
#[path = "owners.rs"]
pub mod owners;

/// Lanes per holder slot: how many threads of one process can be inside an operation at once
/// (four owned, one thread each for life, and two shared by the others: `lease`).
pub const LANES: usize = 6;
/// Lanes `0..SHARED_LANES` of a slot are shared: a thread reserves one for an operation with a
/// CAS ([`Lane::announce`]). The others are owned, each by one thread of the process
/// ([`Lane::announce_owned`]; who owns which: `lease.rs`).
pub const SHARED_LANES: usize = 2;
/// The most holder slots a region can have (the tag's slot field is 14 bits, 0 meaning none).
pub const MAX_SLOTS: usize = (1 << 14) - 1;
/// Bits of the sequence kept in the state word's tag.
#[cfg(not(loom))]
pub const TAG_SEQ_BITS: u32 = 14;
/// Under loom, 2: a model reaches the aliasing of a lane's sequence with the tag's in 2^2
/// operations of one lane rather than 2^14 (`tests/loom_process.rs`); the slot field has the 12
/// bits this frees (no region is built under loom).
#[cfg(loom)]
pub const TAG_SEQ_BITS: u32 = 2;

const PERMITS_MASK: u64 = 0x7FFF_FFFF;
const TAG_SHIFT: u32 = 32;
const TAG_MASK: u64 = ((1 << 31) - 1) << TAG_SHIFT;
const TAG_SEQ_MASK: u64 = (1 << TAG_SEQ_BITS) - 1;
const TAG_LANE_SHIFT: u32 = TAG_SEQ_BITS;
const TAG_SLOT_SHIFT: u32 = TAG_SEQ_BITS + 3;
/// The semaphore is closed.
pub const CLOSED: u64 = 1 << 63;
/// A sleeper may be registered (set by each sleeper after it registers, cleared by a release that
/// finds nobody registered; `parking.rs`, invariant 2).
pub const SLEEPING: u64 = 1 << 31;
/// The flags every change of the word keeps.
const FLAGS: u64 = CLOSED | SLEEPING;

const SEQ_MASK: u64 = (1 << 30) - 1;
const SEQ_SHIFT: u32 = 32;
const OP_SHIFT: u32 = 62;
/// The sequence field of an `announce` or `held` word, in place.
const SEQ_FIELD: u64 = SEQ_MASK << SEQ_SHIFT;
/// One more operation, added to an `announce` or `held` word (its carry out of [`SEQ_FIELD`]
/// is masked off: the sequence wraps in 30 bits).
const SEQ_ONE: u64 = 1 << SEQ_SHIFT;
/// The tag's sequence bits, in place in the state word: where the sequence of an `announce` or
/// `held` word keeps its low [`TAG_SEQ_BITS`], so a tag is made from a lane word with a mask
/// ([`Lane::announce_owned`]).
const TAG_SEQ_FIELD: u64 = TAG_SEQ_MASK << TAG_SHIFT;
const _: () = assert!(TAG_SHIFT == SEQ_SHIFT, "the tag's sequence bits sit where a lane word's do");
/// The lane is free: no operation in flight.
pub const IDLE: u64 = 0;
/// An announced take of `n` permits.
pub const TAKE: u64 = 1;
/// An announced give-back of `n` permits.
pub const GIVE: u64 = 2;

#[inline]
const fn permits(s: u64) -> u64 {
    s & PERMITS_MASK
}

/// The tag field of a state word (0: untagged).
#[inline]
const fn tag(s: u64) -> u64 {
    (s & TAG_MASK) >> TAG_SHIFT
}

/// The tag field of a word made by [`make_tag`] (as [`tag`] reads it from the state word).
#[cfg(test)]
#[inline]
const fn tag_of(t: u64) -> u64 {
    t >> TAG_SHIFT
}

#[cfg(test)]
#[inline]
const fn make_tag(slot: u32, lane: u32, seq: u64) -> u64 {
    lane_tag(slot, lane) | (seq & TAG_SEQ_MASK) << TAG_SHIFT
}

/// The tag of lane `lane` of slot `slot` with sequence bits 0, in place in the state word: an
/// operation's tag is this `|` its announcement's [`TAG_SEQ_FIELD`] bits.
#[inline]
const fn lane_tag(slot: u32, lane: u32) -> u64 {
    // The slot field sits right above the lane's 3 bits: `(slot + 1) * 8 + lane` is one `lea`.
    ((slot as u64 + 1) << (TAG_SLOT_SHIFT - TAG_LANE_SHIFT) | lane as u64) << (TAG_LANE_SHIFT + TAG_SHIFT)
}

/// `(slot, lane, seq bits)` of a tag; `None` if its slot field is 0: an untagged word, or a
/// corrupt one whose other tag bits are set (it names no lane, so there is nothing to complete).
#[inline]
const fn tag_parts(t: u64) -> Option<(u32, u32, u64)> {
    let slot_field = t >> TAG_SLOT_SHIFT;
    if slot_field == 0 {
        return None;
    }
    Some(((slot_field - 1) as u32, ((t >> TAG_LANE_SHIFT) & 7) as u32, t & TAG_SEQ_MASK))
}

#[inline]
const fn op(a: u64) -> u64 {
    a >> OP_SHIFT
}

#[inline]
const fn seq(word: u64) -> u64 {
    (word >> SEQ_SHIFT) & SEQ_MASK
}

#[inline]
const fn count(word: u64) -> u32 {
    word as u32
}

#[cfg(test)]
#[inline]
const fn announcement(op: u64, n: u32, seq: u64) -> u64 {
    op << OP_SHIFT | (seq & SEQ_MASK) << SEQ_SHIFT | n as u64
}

/// The idle `announce` word after the operation of sequence field `seq_of` (an `announce` or
/// `held` word): `announcement(IDLE, 0, seq(seq_of))`.
#[inline]
const fn idle_after(seq_of: u64) -> u64 {
    seq_of & SEQ_FIELD
}

#[cfg(test)]
#[inline]
const fn held_word(count: u32, seq: u64) -> u64 {
    (seq & SEQ_MASK) << SEQ_SHIFT | count as u64
}

/// `held` after the announced op `a` is applied to `held` word `h`: `a`'s sequence, and `h`'s
/// count moved by `a`'s `n`.
#[inline]
const fn applied(h: u64, a: u64) -> u64 {
    let n = count(a);
    let c = if op(a) == TAKE { count(h).wrapping_add(n) } else { count(h).wrapping_sub(n) };
    idle_after(a) | c as u64
}

/// Why a take failed: closed, or fewer permits than asked for.
pub type Refused = crate::TryAcquireError;

/// Where the lanes are, for helpers: the holder table.
pub trait Lanes {
    /// Lane `lane` of slot `slot`, if the table has it.
    fn lane(&self, slot: u32, lane: u32) -> Option<&Lane>;
}

/// One lane per slot (the sleep lanes of `parking.rs`, as the loom models keep them): slot `i`'s
/// lane 0 is `self[i]`.
impl Lanes for [Lane] {
    #[inline]
    fn lane(&self, slot: u32, lane: u32) -> Option<&Lane> {
        if lane == 0 { self.get(slot as usize) } else { None }
    }
}

/// One lane of a holder slot.
#[derive(Debug)]
#[repr(C)]
pub struct Lane {
    /// The announced operation, or idle.
    pub announce: AtomicU64,
    /// The held count and the sequence of the last completed operation.
    pub held: AtomicU64,
}

/// An operation announced in a lane (step 1 done), to publish, complete and finish. It keeps
/// the lane's words as they are (and the lane's tag), and each later step's word is a mask and
/// an `or` of them, not a re-packing of fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an announced operation must be published (or withdrawn) and finished"]
pub struct Announced {
    /// The announcement (`announce`'s word).
    word: u64,
    /// The lane's `held` as read when announcing: the completion of op `seq(word) - 1`.
    held: u64,
    /// The tag of the lane, sequence bits 0, in place in the state word ([`lane_tag`]).
    lane_tag: u64,
}

impl Lane {
    crate::loom_const_fn! {
        /// A lane with nothing held and nothing announced.
        pub fn new() -> Lane {
            Lane { announce: AtomicU64::new(IDLE), held: AtomicU64::new(0) }
        }
    }

    /// Step 1: reserves this lane and announces `op` (`TAKE` or `GIVE`) of `n` permits; `None` if
    /// another thread has the lane.
    #[inline]
    pub fn announce(&self, slot: u32, lane: u32, op: u64, n: u32) -> Option<Announced> {
        // Acquire: pairs with the Release store of `finish` (by another thread of this process,
        // or by a recoverer): `held` below is the completed one.
        let idle = self.announce.load(Acquire);
        if self::op(idle) != IDLE {
            return None;
        }
        let held = self.held.load(Acquire);
        let announced = Announced::new(slot, lane, op, n, held);
        // Acquire: as above. Release is given by the publishing CAS, which comes after.
        self.announce.compare_exchange(idle, announced.word, Acquire, Relaxed).ok()?;
        Some(announced)
    }

    /// Step 1 in a lane that this thread owns: nobody else writes its `announce` while this
    /// process lives (`lease.rs`, invariant 2; a recoverer only once it is dead), and the
    /// previous operation in it is finished, so the announcement is a plain store.
    #[inline]
    pub fn announce_owned(&self, slot: u32, lane: u32, op: u64, n: u32) -> Announced {
        // No assertion that `announce` is idle: another process can write any value there, and
        // that must not panic this one (`ProcessSemaphore`'s `# Trust`); the store overwrites it.
        // Relaxed: the last completion of this lane was this thread's own store (or a helper's
        // CAS of the same value), or that of the thread that owned the lane before (whose
        // lease's release this thread's lease acquired), or the settling by the recoverer that
        // freed the slot (which the slot's claimer acquired, and this thread through the claim
        // lock or the handle's cache, `ProcessSemaphore::holder`).
        let held = self.held.load(Relaxed);
        let announced = Announced::new(slot, lane, op, n, held);
        // Relaxed: the publishing CAS that follows is `Release`, so whoever reads its tag sees
        // this announcement.
        self.announce.store(announced.word, Relaxed);
        announced
    }

    /// The held count of this lane (wrapping).
    #[inline]
    pub fn held(&self) -> u32 {
        count(self.held.load(Acquire))
    }

    /// Whether an operation is announced and not finished.
    #[inline]
    pub fn is_busy(&self) -> bool {
        op(self.announce.load(Acquire)) != IDLE
    }
}

impl Default for Lane {
    fn default() -> Lane {
        Lane::new()
    }
}

impl Announced {
    /// Op `op` of `n` permits in lane `lane` of slot `slot`, whose `held` is `held`: the
    /// announcement `announcement(op, n, seq(held) + 1)` and the words of the later steps, each
    /// built from `held` with an add and masks.
    #[inline(always)]
    const fn new(slot: u32, lane: u32, op: u64, n: u32, held: u64) -> Announced {
        let word = op << OP_SHIFT | (held.wrapping_add(SEQ_ONE) & SEQ_FIELD) | n as u64;
        Announced { word, held, lane_tag: lane_tag(slot, lane) }
    }

    /// `held` once this op is complete: [`applied`]`(held, word)`.
    #[inline(always)]
    const fn completed(&self) -> u64 {
        applied(self.held, self.word)
    }

    /// The tag of this op, in place in the state word (`TAG_MASK` bits).
    #[inline(always)]
    const fn tag(&self) -> u64 {
        self.lane_tag | (self.word & TAG_SEQ_FIELD)
    }

    /// The tag of the lane's last completed op, in place: nothing to help if the word has it
    /// (invariant 4).
    #[inline(always)]
    const fn done(&self) -> u64 {
        self.lane_tag | (self.held & TAG_SEQ_FIELD)
    }

    /// Step 3, by the thread that announced: records the operation in the lane's `held`.
    #[inline]
    pub fn complete(&self, lane: &Lane) {
        // Release: pairs with the Acquire loads of `held` by helpers and recoverers. A plain
        // store of the value computed from `held` as read when announcing: nobody else changes
        // `held` while this op is announced, except a helper completing it to this same value
        // (by a CAS from the value before, which fails once this store is in), so every order
        // of the two leaves the same word (see "Completion" in the module docs).
        #[cfg(not(loom))]
        lane.held.store(self.completed(), Release);
        // Under loom a swap: the same write at the same place in the word's order of changes
        // (its read is discarded), which loom, unlike a plain store, keeps in that order
        // against a helper's CAS (tokio-rs/loom#254).
        #[cfg(loom)]
        lane.held.swap(self.completed(), Release);
    }

    /// Step 4: frees the lane.
    #[inline]
    pub fn finish(self, lane: &Lane) {
        // Release: pairs with the Acquire of the next `announce` in this lane.
        lane.announce.store(idle_after(self.word), Release);
    }

    /// Steps 3 and 4 for an operation that did not reach the state word: nothing happened.
    #[inline]
    pub fn withdraw(self, lane: &Lane) {
        lane.announce.store(idle_after(self.held), Release);
    }
}

/// The shared state word.
#[derive(Debug)]
#[repr(transparent)]
pub struct State {
    word: AtomicU64,
}

impl State {
    crate::loom_const_fn! {
        /// A state with `permits` permits (at most `MAX_PERMITS`), untagged, open (for the loom
        /// models: a region starts zeroed instead).
        #[cfg_attr(not(loom), allow(dead_code))]
        pub fn new(permits: u64) -> State {
            State { word: AtomicU64::new(permits & PERMITS_MASK) }
        }
    }

    /// Permits available now.
    #[inline]
    pub fn available(&self) -> u64 {
        permits(self.word.load(Relaxed))
    }

    /// Whether closed.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.word.load(Relaxed) & CLOSED != 0
    }

    /// Whether a take of `n` could succeed now (a hint: the publishing CAS decides); the word
    /// it read, to start [`publish_from`](State::publish_from) with.
    #[inline]
    pub fn check_take(&self, n: u32) -> Result<u64, Refused> {
        // Acquire: the word may be the one `publish_from` helps (the loads of `change`).
        let s = self.word.load(Acquire);
        if s & CLOSED != 0 {
            Err(Refused::Closed)
        } else if permits(s) < u64::from(n) {
            Err(Refused::NoPermits)
        } else {
            Ok(s)
        }
    }

    /// Closes: every take from now on fails.
    pub fn close(&self) {
        // Release: an acquire that fails as closed sees what came before the close.
        self.word.fetch_or(CLOSED, Release);
    }

    /// The raw word, for `Debug`.
    pub fn word(&self) -> u64 {
        self.word.load(Relaxed)
    }

    /// The raw word, loaded with `order`.
    #[inline]
    pub fn load(&self, order: Ordering) -> u64 {
        self.word.load(order)
    }

    /// Step 2 of a take or a give-back announced in a lane; returns the word it replaced (a
    /// give-back wakes sleepers if it had [`SLEEPING`]). A take fails (and must then be
    /// withdrawn) if closed or short of permits; a give-back fails only past `MAX_PERMITS`
    /// (a corrupt count: its permits are dropped, and [`publish_give`](State::publish_give)
    /// publishes it without them).
    #[inline]
    pub fn publish(&self, lanes: &(impl Lanes + ?Sized), op: &Announced) -> Result<u64, Refused> {
        self.publish_from(lanes, op, self.word.load(Acquire))
    }

    /// [`publish`](State::publish), with the CAS's first expected word `seen` (loaded `Acquire`
    /// by the caller, as `change` loads it: [`check_take`](State::check_take)'s). `always`: left
    /// to the compiler, it was a call on both sides of the uncontended pair.
    #[inline(always)]
    pub fn publish_from(
        &self,
        lanes: &(impl Lanes + ?Sized),
        op: &Announced,
        seen: u64,
    ) -> Result<u64, Refused> {
        // Not through `publish_with`: written out, it stays inlined into the fast paths (through
        // `publish_with` it was not, which cost about 20 ns per acquire/release pair).
        let n = u64::from(count(op.word));
        let tag = op.tag();
        // The tag of this lane's last completed operation (invariant 4): when the word still
        // has it, as after a thread's take and its give-back, there is nothing to help.
        self.change_from(lanes, op.done(), seen, |s| {
            let p = permits(s);
            let p = if self::op(op.word) == TAKE {
                if s & CLOSED != 0 {
                    return Err(Refused::Closed);
                }
                p.checked_sub(n).ok_or(Refused::NoPermits)?
            } else {
                p.checked_add(n).filter(|&p| p <= MAX_PERMITS).ok_or(Refused::NoPermits)?
            };
            Ok(s & FLAGS | tag | p)
        })
    }

    /// Step 2 with the count given by `next` (from the whole word; `Err` refuses): the word
    /// becomes that count, tagged with `op`. `publish` is this for the state word; the sleepers
    /// word (`parking.rs`) uses it with its own counts.
    #[inline]
    pub fn publish_with(
        &self,
        lanes: &(impl Lanes + ?Sized),
        op: &Announced,
        next: impl Fn(u64) -> Result<u64, Refused>,
    ) -> Result<(), Refused> {
        let tag = op.tag();
        self.change(lanes, |s| Ok(s & FLAGS | tag | (next(s)? & PERMITS_MASK))).map(drop)
    }

    /// Step 2 of an operation that moves its lane's count but not the permits: a `forget` (the
    /// permits leave the slot, and do not come back) or a give-back refused past `MAX_PERMITS`.
    /// The word keeps its permits and takes the operation's tag, so that every operation a lane
    /// completes was published first and the tag keeps up with the lane (invariant 1). Never
    /// refused.
    #[inline]
    pub fn publish_unchanged(&self, lanes: &(impl Lanes + ?Sized), op: &Announced) {
        let _ = self.publish_with(lanes, op, |s| Ok(permits(s)));
    }

    /// Step 2 of a give-back: [`publish`](State::publish); past `MAX_PERMITS` (a corrupt count)
    /// the permits are dropped, and the operation is published all the same, with the permits
    /// unchanged ([`publish_unchanged`](State::publish_unchanged)). The word it replaced, if the
    /// permits went in.
    #[inline]
    pub fn publish_give(&self, lanes: &(impl Lanes + ?Sized), op: &Announced) -> Option<u64> {
        let given = self.publish(lanes, op);
        if given.is_err() {
            self.publish_unchanged(lanes, op);
        }
        given.ok()
    }

    /// The count field (bits 0..=30) of a word of this encoding.
    #[inline]
    pub const fn count_of(s: u64) -> u64 {
        permits(s)
    }

    /// An untagged take, by a process without a slot (untracked).
    #[inline]
    pub fn take_untagged(&self, lanes: &(impl Lanes + ?Sized), n: u32) -> Result<(), Refused> {
        self.change(lanes, |s| {
            if s & CLOSED != 0 {
                return Err(Refused::Closed);
            }
            let p = permits(s).checked_sub(u64::from(n)).ok_or(Refused::NoPermits)?;
            Ok(s & FLAGS | p)
        })
        .map(drop)
    }

    /// An untagged addition (`release`, `add_permits`, an untracked give-back); returns the
    /// word it replaced (for [`wake_after`](parking::Parking::wake_after)), or `None` past
    /// `MAX_PERMITS`, and nothing is added then.
    #[inline]
    #[must_use]
    pub fn add_untagged(&self, lanes: &(impl Lanes + ?Sized), n: u64) -> Option<u64> {
        self.change(lanes, |s| {
            let p = permits(s).checked_add(n).filter(|&p| p <= MAX_PERMITS).ok_or(Refused::NoPermits)?;
            Ok(s & FLAGS | p)
        })
        .ok()
    }

    /// Sets [`SLEEPING`] (a sleeper, after it registered); keeps the tag, so nothing to help.
    #[inline]
    pub fn mark_sleeping(&self) {
        // AcqRel: Release so that a release whose change comes later in this word's order (and
        // sees the flag) sees the registration; Acquire so that a release's change that comes
        // earlier is seen by the sleeper's next attempt (`parking.rs`, invariant 2).
        self.word.fetch_or(SLEEPING, AcqRel);
    }

    /// Clears [`SLEEPING`] (a release that found nobody registered; it looks again after).
    #[inline]
    pub fn clear_sleeping(&self) {
        // AcqRel: Acquire pairs with the `mark_sleeping` this comes after, so that the look
        // again sees that sleeper's registration; Release as for any change.
        self.word.fetch_and(!SLEEPING, AcqRel);
    }

    /// The word as of now in its order of changes, by a read-modify-write that changes
    /// nothing: for a caller that changed the word earlier and must know whether a sleeper
    /// marked it since (a recoverer).
    #[inline]
    pub fn probe(&self) -> u64 {
        // AcqRel: Acquire pairs with `mark_sleeping` (its registration is seen).
        self.word.fetch_or(0, AcqRel)
    }

    /// CASes the state word to `next(s)`, first completing the operation of the tag it
    /// overwrites (invariant 2). Returns the word it replaced.
    #[inline]
    fn change(
        &self,
        lanes: &(impl Lanes + ?Sized),
        next: impl Fn(u64) -> Result<u64, Refused>,
    ) -> Result<u64, Refused> {
        self.change_from(lanes, 0, self.word.load(Acquire), next)
    }

    /// [`change`](State::change) from the word `seen` (loaded `Acquire`), knowing the operation
    /// of tag `done` (in place: `TAG_MASK` bits) complete (0: none known; an untagged word has
    /// nothing to complete either way, and `help` says so).
    #[inline(always)]
    fn change_from(
        &self,
        lanes: &(impl Lanes + ?Sized),
        done: u64,
        seen: u64,
        next: impl Fn(u64) -> Result<u64, Refused>,
    ) -> Result<u64, Refused> {
        // The first word computed before the loop, in line with the caller's look at `seen`
        // (`check_take`'s), which then tests nothing twice.
        let (mut s, mut new) = (seen, next(seen)?);
        loop {
            if s & TAG_MASK != done && !self.help(lanes, s) {
                s = self.word.load(Acquire);
            } else {
                // AcqRel: Release publishes this lane's announcement and the permits given back
                // (pairs with the Acquire loads here and in `help`/`resolve`); Acquire pairs with
                // the Release of the change that gave the permits this one takes.
                match self.word.compare_exchange_weak(s, new, AcqRel, Acquire) {
                    Ok(old) => return Ok(old),
                    Err(now) => s = now,
                }
            }
            new = next(s)?;
        }
    }

    /// Makes sure the operation tagged in state `s` is complete; `false` if the state moved on
    /// meanwhile (re-read it).
    #[inline]
    pub fn help(&self, lanes: &(impl Lanes + ?Sized), s: u64) -> bool {
        let Some((slot, lane_index, tag_seq)) = tag_parts(tag(s)) else {
            // Slot field 0: an untagged word, or a corrupt one whose other tag bits are set.
            // Nothing to complete.
            return true;
        };
        let Some(lane) = lanes.lane(slot, lane_index) else {
            // A tag naming no lane: a corrupt region. Nothing to complete.
            return true;
        };
        // Acquire: pairs with the Release CAS of `complete`. The usual case: complete already.
        let h = lane.held.load(Acquire);
        if seq(h) & TAG_SEQ_MASK == tag_seq {
            return true;
        }
        self.help_slow(lane, s, h, tag_seq)
    }

    #[cold]
    fn help_slow(&self, lane: &Lane, s: u64, h: u64, tag_seq: u64) -> bool {
        // Acquire: the announcement was made before the tag was published.
        let a = lane.announce.load(Acquire);
        if op(a) == IDLE || seq(a) & TAG_SEQ_MASK != tag_seq || seq(a) != (seq(h) + 1) & SEQ_MASK {
            // The lane moved on, so the tagged op completed first and `held` now says so
            // (Acquire on `announce` above); or the state moved on; or the words are corrupt,
            // and there is nothing to complete.
            let done = seq(lane.held.load(Acquire)) & TAG_SEQ_MASK == tag_seq;
            return done || self.word.load(Acquire) == s;
        }
        // Unchanged state: the tag is this announcement's op, which reached the state word.
        if self.word.load(Acquire) != s {
            return false;
        }
        // Release: as in `complete`. Fails if someone completed it first: fine.
        let _ = lane.held.compare_exchange(h, applied(h, a), Release, Relaxed);
        true
    }

    /// For a recoverer that owns the slot of a dead process: settles lane `lane_index` of slot
    /// `slot` exactly (invariant 3). Afterwards the lane is idle and its `held` is what it
    /// holds.
    pub fn resolve(&self, lanes: &(impl Lanes + ?Sized), slot: u32, lane_index: u32) {
        let Some(lane) = lanes.lane(slot, lane_index) else { return };
        let a = lane.announce.load(Acquire);
        if op(a) == IDLE {
            return;
        }
        // Acquire: pairs with the publishing CAS (and with a helper's, which completed first).
        let s = self.word.load(Acquire);
        let h = lane.held.load(Acquire);
        // Not complete, and published (its tag is in the word): complete it. A CAS, as
        // everywhere: a helper may complete it first. Else never published (invariant 2): the
        // announcement is dropped.
        if seq(h) != seq(a) && tag_parts(tag(s)) == Some((slot, lane_index, seq(a) & TAG_SEQ_MASK)) {
            let _ = lane.held.compare_exchange(h, applied(h, a), Release, Relaxed);
        }
        // Release: pairs with the Acquire of the next `announce`.
        lane.announce.store(idle_after(lane.held.load(Acquire)), Release);
    }
}

impl State {
    /// For a recoverer that owns the slot `slot` of a dead process, whose lanes are
    /// `slot_lanes`: settles every lane ([`resolve`](State::resolve)), then gives the slot's
    /// total back as an announced operation of its own in lane 0, so that a recoverer killed
    /// half-way leaves it for the next one to settle. Returns the permits given back. A total
    /// past `MAX_PERMITS` (a corrupt slot) is dropped, erring toward fewer permits, but its
    /// operation is published all the same ([`publish_give`](State::publish_give)).
    pub fn recover_lanes(&self, lanes: &(impl Lanes + ?Sized), slot: u32, slot_lanes: &[Lane]) -> u64 {
        for lane in 0..slot_lanes.len() as u32 {
            self.resolve(lanes, slot, lane);
        }
        let held = held_total(slot_lanes);
        let Some(first) = slot_lanes.first() else { return 0 };
        if held == 0 {
            return 0;
        }
        let Some(op) = first.announce(slot, 0, GIVE, held) else { return 0 };
        let given = self.publish_give(lanes, &op).is_some();
        op.complete(first);
        op.finish(first);
        if given { u64::from(held) } else { 0 }
    }
}

/// The permits a slot's lanes hold together (wrapping sum of their counts).
pub fn held_total(lanes: &[Lane]) -> u32 {
    lanes.iter().fold(0u32, |sum, lane| sum.wrapping_add(lane.held()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the state word's tag names lane 0 of slot 0 and the last operation it completed
    /// (invariant 1, as it stands once the lane is idle).
    fn tag_keeps_up(state: &State, lane: &Lane) -> bool {
        tag_parts(tag(state.word())) == Some((0, 0, seq(lane.held.load(Relaxed)) & TAG_SEQ_MASK))
    }

    #[test]
    fn every_operation_a_lane_completes_is_published() {
        let lanes = [Lane::new()];
        let (lanes, lane) = (&lanes[..], &lanes[0]);
        let state = State::new(MAX_PERMITS - 1);
        let op = lane.announce(0, 0, TAKE, 2).unwrap();
        state.publish(lanes, &op).unwrap();
        op.complete(lane);
        op.finish(lane);
        assert!(tag_keeps_up(&state, lane));
        // A forget: the lane's count moves, the permits do not.
        let op = lane.announce(0, 0, GIVE, 1).unwrap();
        state.publish_unchanged(lanes, &op);
        op.complete(lane);
        op.finish(lane);
        assert_eq!((state.available(), lane.held()), (MAX_PERMITS - 3, 1));
        assert!(tag_keeps_up(&state, lane));
        // A give-back past MAX_PERMITS (a corrupt count): dropped, and published all the same.
        let op = lane.announce(0, 0, GIVE, 4).unwrap();
        assert_eq!(state.publish_give(lanes, &op), None);
        op.complete(lane);
        op.finish(lane);
        assert_eq!(state.available(), MAX_PERMITS - 3);
        assert!(tag_keeps_up(&state, lane));
        // A recoverer's give-back of a total past MAX_PERMITS: the same.
        lane.held.store(held_word(0x9000_0000, seq(lane.held.load(Relaxed))), Relaxed);
        assert_eq!(state.recover_lanes(lanes, 0, std::slice::from_ref(lane)), 0);
        assert_eq!((state.available(), lane.held()), (MAX_PERMITS - 3, 0));
        assert!(tag_keeps_up(&state, lane));
    }

    #[test]
    fn a_tag_whose_slot_field_is_0_names_no_lane() {
        assert_eq!(tag_parts(0), None);
        assert_eq!(tag_parts(tag_of(1 << TAG_SHIFT)), None);
        assert_eq!(tag_parts(tag_of(make_tag(3, 2, 5))), Some((3, 2, 5)));
    }

    #[test]
    fn an_announced_operations_words_are_its_fields_packed() {
        // Built with adds and masks (`Announced::new`), the same words as packed field by field,
        // also where the count or the sequence wraps, and from a `held` with stray high bits.
        let helds = [0, held_word(7, 1), held_word(u32::MAX, 5), held_word(3, SEQ_MASK), u64::MAX, 1 << 62];
        for held in helds {
            for (op, n) in [(TAKE, 1), (GIVE, 1), (TAKE, 0x7FFF_FFFF), (GIVE, 9)] {
                for (slot, lane) in [(0, 0), (5, LANES as u32 - 1), (MAX_SLOTS as u32 - 1, 3)] {
                    let a = Announced::new(slot, lane, op, n, held);
                    let next = seq(held) + 1;
                    assert_eq!(a.word, announcement(op, n, next));
                    assert_eq!(a.completed(), applied(held, a.word));
                    assert_eq!(a.completed(), held_word(count(applied(held, a.word)), next));
                    assert_eq!(a.tag(), make_tag(slot, lane, next));
                    assert_eq!(a.done(), make_tag(slot, lane, seq(held)));
                    assert_eq!(idle_after(a.word), announcement(IDLE, 0, next));
                    assert_eq!(idle_after(a.held), announcement(IDLE, 0, seq(held)));
                    assert_eq!(tag(a.tag()), tag_of(a.tag()));
                }
            }
        }
    }
}
