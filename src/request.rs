//! What every semaphore type checks and computes before it asks its engine, written once.

use std::time::{Duration, Instant};

/// The largest request any semaphore type grants: `2^31 - 1` (as `MAX_PERMITS` on each type).
pub(crate) const MAX_PERMITS: usize = crate::raw::MAX_PERMITS as usize;

/// Panics, naming `ty`'s limit, if `n` permits could never be granted.
#[inline]
#[track_caller]
pub(crate) fn check(n: u32, ty: &'static str) {
    if n as usize > MAX_PERMITS {
        too_large(n, ty);
    }
}

#[cold]
#[track_caller]
fn too_large(n: u32, ty: &'static str) -> ! {
    panic!(
        "futex-semaphore: a request for {n} permits is more than {ty}::MAX_PERMITS ({MAX_PERMITS}) and could never be granted"
    )
}

/// The deadline `timeout` from now, or `None` (wait without limit) past what `Instant` holds.
#[inline]
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}
