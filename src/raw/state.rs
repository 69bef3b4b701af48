//! The layout of the semaphore's state word, as named constants and small predicates.
//!
//! | bits    | name       | meaning                                                              |
//! |---------|------------|----------------------------------------------------------------------|
//! | 0..=31  | permits    | permits available now (at most [`MAX_PERMITS`], bit 31 is headroom)  |
//! | 32..=57 | waiters    | threads and tasks registered to wait (up to [`MAX_WAITERS`])         |
//! | 58      | [`ASYNC_MANY`] | a task for more than one permit may be registered                |
//! | 59      | [`THREADS`]| a blocking waiter (a thread on a futex word) may be registered       |
//! | 60      | [`MANY`]   | a thread for more than one permit may be registered                  |
//! | 61      | [`HANDOFF`]| a starving waiter owns the next permits: nobody else may take them   |
//! | 62      | [`ASYNC`]  | an async waiter (a task in the waker list) may be registered         |
//! | 63      | [`CLOSED`] | the semaphore is closed: every acquire fails                         |
//!
//! `THREADS`, `MANY`, `ASYNC` and `ASYNC_MANY` (the kind flags) are set by a registering waiter in
//! its registering CAS and cleared only when the waiter count drops to zero ([`deregister`]):
//! "may be", since they outlive the waiter that set them while others wait. A stale flag costs a wake that finds nobody; a missing one would
//! lose a wakeup, and cannot happen, since the flag is set while its waiter is counted.

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
pub(crate) const WAITERS_MASK: u64 = MAX_WAITERS << WAITERS_SHIFT;
/// The most waiters the count holds: `2^26 - 1` (67 million). Threads cannot come near it; an
/// async registration checks it ([`waiters_full`]), since tasks are cheap enough to try.
pub(crate) const MAX_WAITERS: u64 = (1 << 26) - 1;
/// Some registered *task* may want more than one permit: a release that sees it notifies every
/// task in the list, since the list cannot tell which of them the new permits serve. Kept apart
/// from [`MANY`] so that a multi-permit thread does not make every release wake every task, nor a
/// multi-permit task every thread on `many`. Cleared when the last waiter leaves.
pub(crate) const ASYNC_MANY: u64 = 1 << 58;
/// Some registered waiter may be a thread sleeping on a futex word: a release that sees it bumps
/// and wakes the words. Without it (only tasks wait) a release makes no system call. Cleared
/// when the last waiter leaves.
pub(crate) const THREADS: u64 = 1 << 59;
/// Some registered thread may want more than one permit; it sleeps on the `many` futex, which
/// every release then wakes in full. Cleared when the last waiter leaves.
pub(crate) const MANY: u64 = 1 << 60;
/// A single-permit waiter that has waited longer than the starvation bound owns the next permit:
/// the fast path and the other waiters must not take it. Set and cleared only by its owner.
pub(crate) const HANDOFF: u64 = 1 << 61;
/// Some registered waiter may be an async task waiting in the waker list: a release that sees it
/// notifies the list as well as the futex words. Cleared when the last waiter leaves, so a release
/// with no async waiter registered never touches the list.
pub(crate) const ASYNC: u64 = 1 << 62;
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

/// Whether the waiter count is at [`MAX_WAITERS`]: one more would carry into the flags.
#[inline]
pub(crate) const fn waiters_full(s: u64) -> bool {
    waiters(s) == MAX_WAITERS
}

#[inline]
pub(crate) const fn has_threads(s: u64) -> bool {
    s & THREADS != 0
}

#[inline]
pub(crate) const fn is_async(s: u64) -> bool {
    s & ASYNC != 0
}

#[inline]
pub(crate) const fn is_async_many(s: u64) -> bool {
    s & ASYNC_MANY != 0
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
        new &= !(THREADS | MANY | ASYNC | ASYNC_MANY);
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_overlap() {
        let fields = [PERMITS_MASK, WAITERS_MASK, ASYNC_MANY, THREADS, MANY, HANDOFF, ASYNC, CLOSED];
        for (i, a) in fields.iter().enumerate() {
            for b in &fields[i + 1..] {
                assert_eq!(a & b, 0, "{a:#x} overlaps {b:#x}");
            }
        }
    }

    #[test]
    fn deregistering_the_last_waiter_clears_the_kind_flags_and_handoff() {
        let s = 5 | ONE_WAITER | THREADS | MANY | HANDOFF | ASYNC | ASYNC_MANY;
        assert_eq!(deregister(s, true), 5);
        assert_eq!(deregister(s, false), 5 | HANDOFF);
        let two = 5 | (2 * ONE_WAITER) | THREADS | MANY | ASYNC | ASYNC_MANY;
        assert_eq!(deregister(two, false), 5 | ONE_WAITER | THREADS | MANY | ASYNC | ASYNC_MANY);
    }

    #[test]
    fn a_full_waiter_count_is_detected_before_it_carries() {
        let full = MAX_WAITERS << WAITERS_SHIFT;
        assert!(waiters_full(full | ASYNC));
        assert!(!waiters_full(full - ONE_WAITER));
        assert_eq!((full + ONE_WAITER) & WAITERS_MASK, 0, "one more would carry into ASYNC_MANY");
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
