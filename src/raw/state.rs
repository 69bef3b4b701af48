//! The layout of the semaphore's state word, as named constants and small predicates.
//!
//! | bits    | name         | meaning                                                           |
//! |---------|--------------|-------------------------------------------------------------------|
//! | 0..=31  | permits      | permits available now (at most [`MAX_PERMITS`]; bit 31 is headroom) |
//! | 32..=60 | (zero)       |                                                                   |
//! | 61      | [`QUEUED`]   | the waiter queue is not empty: a release must look at it          |
//! | 62      | [`RESERVED`] | a starving waiter has priority: takers must leave it what it needs |
//! | 63      | [`CLOSED`]   | the semaphore is closed: every acquire fails                      |
//!
//! The fast paths read only this word: an acquire takes permits when no flag is set, a release
//! adds them and looks at the queue only if [`QUEUED`] was set. `QUEUED` and `RESERVED` change
//! only under the queue's lock (see `queue`), which also holds how many permits the reservation
//! needs.

/// The largest permit count the semaphore holds, and the largest single request: `2^31 - 1`.
///
/// Bit 31 of the permit field is headroom, so that permits returned by a `fetch_add` that pass the
/// limit are detected before they can carry into the flags.
pub(crate) const MAX_PERMITS: u64 = (1 << 31) - 1;

const PERMITS_MASK: u64 = 0xFFFF_FFFF;
/// Set in `permits + returned` exactly when the count has passed [`MAX_PERMITS`].
pub(crate) const PAST_MAX: u64 = 1 << 31;
/// Some thread or task waits in the queue. Set by the first waiter to queue, cleared by the last to
/// leave, both under the queue's lock.
pub(crate) const QUEUED: u64 = 1 << 61;
/// The queue's head has waited longer than the starvation bound and has priority: an acquire by
/// anyone else goes through the queue's lock, where it may take only the permits beyond what the
/// head still needs. Set and cleared under the queue's lock.
pub(crate) const RESERVED: u64 = 1 << 62;
/// The semaphore is closed.
pub(crate) const CLOSED: u64 = 1 << 63;

/// Permits available in state `s`.
#[inline]
pub(crate) const fn permits(s: u64) -> u64 {
    s & PERMITS_MASK
}

/// Whether a waiter may be queued: a release must look at the queue.
#[inline]
pub(crate) const fn is_queued(s: u64) -> bool {
    s & QUEUED != 0
}

#[inline]
pub(crate) const fn is_reserved(s: u64) -> bool {
    s & RESERVED != 0
}

#[inline]
pub(crate) const fn is_closed(s: u64) -> bool {
    s & CLOSED != 0
}

/// Whether the lock-free paths may take `n` permits in state `s`: not closed, no reservation
/// (which only the queue's lock can weigh), and enough permits. Waiters in the queue do not stop
/// it: this is barging.
#[inline]
pub(crate) const fn can_take(s: u64, n: u64) -> bool {
    s & (CLOSED | RESERVED) == 0 && permits(s) >= n
}

/// Whether a release that saw `old` before adding its permits (and reached `old + n`) must take
/// the slow path: someone may wait, or the count passed the limit.
#[inline]
pub(crate) const fn release_is_slow(old: u64, n: u64) -> bool {
    (old + n) & (QUEUED | PAST_MAX) != 0
}

/// Whether a spinner for `n` that found `s` should yield its core before it queues: only when one
/// more permit would do (a yield gives the core to one thread, which likely gives back one).
#[inline]
pub(crate) const fn worth_a_yield(s: u64, n: u64) -> bool {
    permits(s) + 1 >= n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_overlap() {
        let fields = [PERMITS_MASK, QUEUED, RESERVED, CLOSED];
        for (i, a) in fields.iter().enumerate() {
            for b in &fields[i + 1..] {
                assert_eq!(a & b, 0, "{a:#x} overlaps {b:#x}");
            }
        }
    }

    #[test]
    fn can_take_respects_closed_and_reserved_but_not_queued() {
        assert!(can_take(3, 3));
        assert!(!can_take(2, 3));
        assert!(!can_take(3 | CLOSED, 1));
        assert!(!can_take(3 | RESERVED, 1));
        assert!(can_take(3 | QUEUED, 1), "barging: waiters do not stop a taker");
    }

    #[test]
    fn only_a_request_short_by_one_permit_is_worth_a_yield() {
        assert!(worth_a_yield(0, 1), "a handoff: the holder's release will do");
        assert!(worth_a_yield(3 | QUEUED, 4));
        assert!(!worth_a_yield(0, 4), "a drain waits for several holders: queue, not yield");
        assert!(!worth_a_yield(1, 3));
    }

    #[test]
    fn the_limit_is_detected_before_it_carries() {
        assert_eq!(permits(MAX_PERMITS + 1) & PAST_MAX, PAST_MAX);
        assert!(release_is_slow(MAX_PERMITS, 1));
        assert!(!release_is_slow(MAX_PERMITS - 1, 1));
        assert!(release_is_slow(QUEUED, 1));
        assert_eq!((2 * MAX_PERMITS + 1) & !PERMITS_MASK, 0, "two maximal counts stay in the field");
    }
}
