//! The layout of the shared region: a header, the state word, the sleeper count, and the
//! holder table. Only integers, no pointers: every process maps it at its own address.
//!
//! | offset | size  | field              | meaning                                                   |
//! |--------|-------|--------------------|-----------------------------------------------------------|
//! | 0      | 8     | `magic`            | [`MAGIC`] once initialised (written last, `Release`)      |
//! | 8      | 4     | `version`          | [`VERSION`], the layout version                           |
//! | 12     | 4     | `size`             | the size of the region in bytes: [`region_size`]`(slots)` |
//! | 16     | 4     | `slots`            | the number of holder slots (1 to [`MAX_SLOTS`]; default [`DEFAULT_SLOTS`]) |
//! | 20     | 4     | `initial_permits`  | the permits it was created with (informational)           |
//! | 24     | 8     | `pid_ns`           | inode of the creator's pid namespace (0: unknown)         |
//! | 32     | 32    | -                  | reserved, zero                                            |
//! | 64     | 8     | `state`            | the state word (`protocol.rs`): permits, sleeping flag, tag, closed |
//! | 72     | 8     | `sleepers`         | sleeping acquires (`parking.rs`): all in bits 0..16, multi-permit in 16..31, a tag in 32..63 |
//! | 80     | 4     | `wake`             | the futex word sleepers wait on, bumped by a waking release |
//! | 84     | 44    | -                  | padding to the next cache line                            |
//! | 128    | 128 each | `slots[i]`      | the holder table                                          |
//!
//! A slot (two cache lines; only its process and recoverers write it):
//!
//! | offset | size | field      | meaning                                                           |
//! |--------|------|------------|-------------------------------------------------------------------|
//! | 0      | 8    | `owner`    | 0: free; else a process identity, see [`owner`] (bit 63: being recovered) |
//! | 8      | 8    | `nonce`    | the owning process incarnation's nonce (`sys::Identity::nonce`)   |
//! | 16     | 16   | `sleep`    | the sleep lane: its sleeping acquires, counted as in `sleepers` (`parking.rs`) |
//! | 32     | 16 each | `lanes[i]` | [`LANES`] lanes: `announce` and `held` words (`protocol.rs`)   |
//!
//! A fresh region is all zeros (0 permits, no sleeper, free slots) but for the header and the
//! permits: every field is an atomic integer and every bit pattern is a valid value, so once a
//! mapping of the size the header says exists, reading and writing it is sound whatever another
//! process wrote there. Wrong values give wrong counts or hangs, never undefined behaviour or a
//! panic. The number of slots a process uses is the one it validated when it mapped the region,
//! never re-read from shared memory.

use super::protocol::parking::Parking;
use super::protocol::{LANES, Lane, Lanes, State};
use crate::sync::{AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::io;
use std::mem::{offset_of, size_of};
use std::ops::Deref;

pub(crate) use super::protocol::MAX_SLOTS;

/// `b"futexsem"` read as a big-endian integer, stored in native byte order.
pub(crate) const MAGIC: u64 = u64::from_be_bytes(*b"futexsem");
/// The layout version. Bump it on any change of this file's tables or of the state and lane
/// encodings of `protocol.rs`: every build that opens a region reads them. Version 2: the
/// process semaphore's own state word (tagged, `protocol.rs`) in place of the engine's, lanes,
/// nonces, and a table size chosen at creation. Version 3: `sleepers` a tagged word, and each
/// slot's `sleeping` count a sleep lane (registration announced and completed like a take), and
/// the state word's bit 31 the `SLEEPING` flag.
pub(crate) const VERSION: u32 = 3;
/// The number of holder slots unless the creator chooses another.
pub(crate) const DEFAULT_SLOTS: usize = 128;
/// The size of the header, the part `open` reads before it maps anything.
pub(crate) const HEADER_SIZE: usize = size_of::<Header>();
/// The size of a slot.
pub(crate) const SLOT_SIZE: usize = size_of::<Slot>();

/// The size of a region of `slots` slots, and of the file or memfd that holds it.
#[inline]
pub(crate) const fn region_size(slots: usize) -> usize {
    size_of::<Region>() + SLOT_SIZE * slots
}

#[repr(C)]
pub(crate) struct Header {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU32,
    pub(crate) size: AtomicU32,
    pub(crate) slots: AtomicU32,
    pub(crate) initial_permits: AtomicU32,
    pub(crate) pid_ns: AtomicU64,
    _reserved: [AtomicU64; 4],
}

/// The fixed part of the shared region; the slots follow it. Never constructed as a value: it
/// exists only in a mapping.
#[repr(C)]
pub(crate) struct Region {
    pub(crate) header: Header,
    pub(crate) state: State,
    /// `sleepers` and `wake`.
    pub(crate) parking: Parking,
    _pad: [AtomicU32; 10],
}

/// One process's entry in the holder table.
#[repr(C, align(64))]
pub(crate) struct Slot {
    pub(crate) owner: AtomicU64,
    pub(crate) nonce: AtomicU64,
    pub(crate) sleep: Lane,
    pub(crate) lanes: [Lane; LANES],
}

const _: () = {
    assert!(HEADER_SIZE == 64);
    assert!(offset_of!(Region, state) == 64);
    // `sleepers` at 72, `wake` at 80 (`Parking` asserts its own layout).
    assert!(offset_of!(Region, parking) == 72);
    assert!(size_of::<Region>() == 128);
    assert!(offset_of!(Slot, sleep) == 16);
    assert!(offset_of!(Slot, lanes) == 32);
    assert!(SLOT_SIZE == 128);
    assert!(region_size(DEFAULT_SLOTS) == 128 + 128 * 128);
};

/// The region as this process uses it: the fixed part and the slots it validated.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) region: &'a Region,
    pub(crate) slots: &'a [Slot],
}

impl Deref for View<'_> {
    type Target = Region;

    #[inline]
    fn deref(&self) -> &Region {
        self.region
    }
}

impl Lanes for [Slot] {
    #[inline]
    fn lane(&self, slot: u32, lane: u32) -> Option<&Lane> {
        self.get(slot as usize)?.lanes.get(lane as usize)
    }
}

/// The holder table seen through its sleep lanes (one per slot, lane 0), for the tagged
/// `sleepers` word.
#[derive(Clone, Copy)]
pub(crate) struct SleepLanes<'a>(pub(crate) &'a [Slot]);

impl Lanes for SleepLanes<'_> {
    #[inline]
    fn lane(&self, slot: u32, lane: u32) -> Option<&Lane> {
        if lane == 0 { self.0.get(slot as usize).map(|s| &s.sleep) } else { None }
    }
}

impl Region {
    /// Fills in a fresh, zeroed region of `slots` slots that no other process can see yet, and
    /// marks it initialised by writing the magic last.
    pub(crate) fn initialise(&self, permits: u32, slots: usize, pid_ns: u64) {
        // The callers refuse more than MAX_PERMITS, so this adds them all; no slot has a tag.
        let _ = self.state.add_untagged(&[][..] as &[Slot], u64::from(permits));
        let h = &self.header;
        h.version.store(VERSION, Relaxed);
        h.size.store(region_size(slots) as u32, Relaxed);
        h.slots.store(slots as u32, Relaxed);
        h.initial_permits.store(permits, Relaxed);
        h.pid_ns.store(pid_ns, Relaxed);
        // Release: pairs with the Acquire load in `is_published`; everything above is visible to
        // a process that sees the magic.
        h.magic.store(MAGIC, Release);
    }

    /// Whether the magic is there (after `validate_header` said so of the file).
    pub(crate) fn is_published(&self) -> bool {
        // Acquire: pairs with the Release store in `initialise`.
        self.header.magic.load(Acquire) == MAGIC
    }
}

impl<'a> View<'a> {
    /// The slot at `index`; `None` for [`UNTRACKED`](super::holders::UNTRACKED).
    #[inline]
    pub(crate) fn slot(&self, index: u32) -> Option<&'a Slot> {
        self.slots.get(index as usize)
    }

    /// The slots' sleep lanes, for `sleepers`.
    #[inline]
    pub(crate) fn sleep_lanes(&self) -> SleepLanes<'a> {
        SleepLanes(self.slots)
    }
}

/// The `owner` word of a slot: who holds it.
///
/// | bits    | meaning                                                                 |
/// |---------|-------------------------------------------------------------------------|
/// | 0..=31  | pid (never 0 for a process)                                             |
/// | 32..=62 | the low 31 bits of its start time (`/proc/<pid>/stat` field 22; 0: unknown) |
/// | 63      | [`RECOVERING`](super::protocol::owners::RECOVERING): the process named is recovering the slot of a dead holder |
///
/// 0 is [`FREE`](super::protocol::owners::FREE); how the word changes (claim, take-over, free)
/// is `owners.rs`.
pub(crate) mod owner {
    const START_MASK: u64 = (1 << 31) - 1;

    /// The owner word of a process.
    #[inline]
    pub(crate) const fn id(pid: u32, start_time: u64) -> u64 {
        pid as u64 | (start_time & START_MASK) << 32
    }

    #[inline]
    pub(crate) const fn pid(id: u64) -> u32 {
        id as u32
    }

    /// The low 31 bits of the start time; 0 when it was not known.
    #[inline]
    pub(crate) const fn start(id: u64) -> u64 {
        (id >> 32) & START_MASK
    }

    /// Whether `start_time` (full, boot-relative: `sys::boot_relative`) matches the 31 bits kept
    /// in an owner word, to within a clock tick either way: a time namespace whose boot-time
    /// offset is not a whole number of ticks shifts the tick a start time falls in by one. A pid
    /// reused within that tick is taken for the holder: recovery then waits for that process to
    /// end too (a delay, never a permit made).
    #[inline]
    pub(crate) const fn start_matches(id: u64, start_time: u64) -> bool {
        let apart = start_time.wrapping_sub(start(id)) & START_MASK;
        apart <= 1 || apart == START_MASK
    }
}

/// What `open` found in a header: a region of this layout (then its number of slots), or why
/// not.
pub(crate) fn validate_header(bytes: &[u8], file_size: u64) -> io::Result<usize> {
    let field = |at: usize, len: usize| bytes.get(at..at + len);
    let u32_at = |at| field(at, 4).and_then(|b| b.try_into().ok()).map(u32::from_ne_bytes);
    let u64_at = |at| field(at, 8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes);
    let (Some(magic), Some(version), Some(size), Some(slots)) =
        (u64_at(0), u32_at(8), u32_at(12), u32_at(16))
    else {
        return Err(invalid(format!(
            "{file_size} bytes is too small for a futex-semaphore region (at least {} bytes): \
             not a semaphore, or truncated",
            region_size(1)
        )));
    };
    if magic != MAGIC {
        return Err(invalid(format!(
            "not a futex-semaphore region (magic {magic:#018x}, expected {MAGIC:#018x})"
        )));
    }
    if version != VERSION {
        return Err(invalid(format!(
            "a futex-semaphore region of layout version {version}; this build understands version {VERSION}"
        )));
    }
    let n = slots as usize;
    if n == 0 || n > MAX_SLOTS || size as usize != region_size(n) {
        return Err(invalid(format!(
            "a futex-semaphore region header says {size} bytes and {slots} slots; \
             version {VERSION} has 1 to {MAX_SLOTS} slots and {} bytes for {slots}",
            region_size(n.min(MAX_SLOTS))
        )));
    }
    if file_size != size as u64 {
        return Err(invalid(format!(
            "a futex-semaphore region of {file_size} bytes instead of {size}: truncated or extended"
        )));
    }
    Ok(n)
}

pub(crate) fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::super::protocol::owners::{FREE, RECOVERING};
    use super::*;

    fn header(magic: u64, version: u32, size: u32, slots: u32) -> Vec<u8> {
        let mut b = vec![0; HEADER_SIZE];
        b[0..8].copy_from_slice(&magic.to_ne_bytes());
        b[8..12].copy_from_slice(&version.to_ne_bytes());
        b[12..16].copy_from_slice(&size.to_ne_bytes());
        b[16..20].copy_from_slice(&slots.to_ne_bytes());
        b
    }

    #[test]
    fn a_valid_header_passes() {
        let size = region_size(DEFAULT_SLOTS);
        let b = header(MAGIC, VERSION, size as u32, DEFAULT_SLOTS as u32);
        assert_eq!(validate_header(&b, size as u64).unwrap(), DEFAULT_SLOTS);
        let b = header(MAGIC, VERSION, region_size(3) as u32, 3);
        assert_eq!(validate_header(&b, region_size(3) as u64).unwrap(), 3);
    }

    #[test]
    fn anything_else_is_invalid_data() {
        let full = region_size(DEFAULT_SLOTS) as u64;
        let size = full as u32;
        let slots = DEFAULT_SLOTS as u32;
        let cases = [
            (header(MAGIC, VERSION, size, slots), 100),
            (header(0, VERSION, size, slots), full),
            (header(MAGIC, VERSION + 1, size, slots), full),
            (header(MAGIC, 1, size, slots), full),
            // Layout 2: plain sleeper counters, no SLEEPING flag; refused, not misread.
            (header(MAGIC, 2, size, slots), full),
            (header(MAGIC, VERSION, size + 64, slots), full),
            (header(MAGIC, VERSION, size, 3), full),
            (header(MAGIC, VERSION, region_size(0) as u32, 0), region_size(0) as u64),
            (vec![1, 2, 3], 3),
        ];
        for (bytes, file_size) in cases {
            let err = validate_header(&bytes, file_size).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        }
    }

    #[test]
    fn owner_words_round_trip() {
        let id = owner::id(4_194_303, 0x1_2345_6789);
        assert_eq!(owner::pid(id), 4_194_303);
        assert!(owner::start_matches(id, 0x1_2345_6789));
        assert_eq!(id & RECOVERING, 0);
        assert_ne!(owner::id(1, 0), FREE);
    }
}
