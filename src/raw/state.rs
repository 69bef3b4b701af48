//! The layout of the semaphore's state word, as named constants and small predicates.
//!
//! | bits    | name       | meaning                                                              |
//! |---------|------------|----------------------------------------------------------------------|
//! | 0..=31  | permits    | permits available now (at most [`MAX_PERMITS`], bit 31 is headroom)  |
//! | 32..=59 | waiters    | threads registered to sleep (up to 2^28 - 1)                         |
//! | 60      | [`MANY`]   | a waiter for more than one permit may be registered                  |
//! | 61      | [`HANDOFF`]| a starving waiter owns the next permits: nobody else may take them   |
//! | 62      | -          | unused, always 0                                                     |
//! | 63      | [`CLOSED`] | the semaphore is closed: every acquire fails                         |

/// The largest permit count the semaphore holds, and the largest single request: `2^31 - 1`.
///
/// Bit 31 of the permit field is headroom, so that permits returned by a `fetch_add` that pass the
/// limit are detected before they can carry into the waiter count.
pub(crate) const MAX_PERMITS: u64 = (1 << 31) - 1;

const PERMITS_MASK: u64 = 0xFFFF_FFFF;
/// Set in `permits + returned` exactly when the count has passed [`MAX_PERMITS`].
pub(crate) const PAST_MAX: u64 = 1 << 31;
const WAITERS_SHIFT: u32 = 32;
/// One registered waiter, as an increment of the state.
pub(crate) const ONE_WAITER: u64 = 1 << WAITERS_SHIFT;
pub(crate) const WAITERS_MASK: u64 = ((1 << 28) - 1) << WAITERS_SHIFT;
/// Some registered waiter may want more than one permit; it sleeps on the `many` futex, which
/// every release then wakes in full. Cleared when the last waiter leaves.
pub(crate) const MANY: u64 = 1 << 60;
/// A single-permit waiter that has waited longer than the starvation bound owns the next permit:
/// the fast path and the other waiters must not take it. Set and cleared only by its owner.
pub(crate) const HANDOFF: u64 = 1 << 61;
/// The semaphore is closed.
pub(crate) const CLOSED: u64 = 1 << 63;

/// Permits available in state `s`.
#[inline]
pub(crate) const fn permits(s: u64) -> u64 {
    s & PERMITS_MASK
}

/// Registered waiters in state `s`.
#[inline]
pub(crate) const fn waiters(s: u64) -> u64 {
    (s & WAITERS_MASK) >> WAITERS_SHIFT
}

#[inline]
pub(crate) const fn has_waiters(s: u64) -> bool {
    s & WAITERS_MASK != 0
}

#[inline]
pub(crate) const fn is_closed(s: u64) -> bool {
    s & CLOSED != 0
}

#[inline]
pub(crate) const fn is_handoff(s: u64) -> bool {
    s & HANDOFF != 0
}

/// Whether a thread that does not own [`HANDOFF`] may take `n` permits in state `s`.
#[inline]
pub(crate) const fn can_take(s: u64, n: u64) -> bool {
    s & (CLOSED | HANDOFF) == 0 && permits(s) >= n
}

/// State `s` after a registered waiter leaves; `owner` says whether it owns [`HANDOFF`].
#[inline]
pub(crate) const fn deregister(s: u64, owner: bool) -> u64 {
    let mut new = s - ONE_WAITER;
    if owner {
        new &= !HANDOFF;
    }
    if !has_waiters(new) {
        new &= !MANY;
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_overlap() {
        let fields = [PERMITS_MASK, WAITERS_MASK, MANY, HANDOFF, CLOSED];
        for (i, a) in fields.iter().enumerate() {
            for b in &fields[i + 1..] {
                assert_eq!(a & b, 0, "{a:#x} overlaps {b:#x}");
            }
        }
    }

    #[test]
    fn deregistering_the_last_waiter_clears_many_and_handoff() {
        let s = 5 | ONE_WAITER | MANY | HANDOFF;
        assert_eq!(deregister(s, true), 5);
        assert_eq!(deregister(s, false), 5 | HANDOFF);
        let two = 5 | (2 * ONE_WAITER) | MANY;
        assert_eq!(deregister(two, false), 5 | ONE_WAITER | MANY);
    }

    #[test]
    fn can_take_respects_closed_and_handoff() {
        assert!(can_take(3, 3));
        assert!(!can_take(2, 3));
        assert!(!can_take(3 | CLOSED, 1));
        assert!(!can_take(3 | HANDOFF, 1));
        assert_eq!(permits(MAX_PERMITS + 1) & PAST_MAX, PAST_MAX);
    }
}
