//! The error types: small, `Copy`, comparable, with `Display` and `std::error::Error`.

use std::fmt;

/// A blocking acquire failed because the semaphore was closed.
///
/// Returned by [`Semaphore::acquire`](crate::Semaphore::acquire) and the other blocking acquires
/// once [`Semaphore::close`](crate::Semaphore::close) has been called.
///
/// # Examples
/// ```
/// use futex_semaphore::{AcquireError, Semaphore};
///
/// let sem = Semaphore::new(1);
/// sem.close();
/// assert_eq!(sem.acquire().unwrap_err(), AcquireError);
/// assert_eq!(AcquireError.to_string(), "semaphore closed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AcquireError;

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("semaphore closed")
    }
}

impl std::error::Error for AcquireError {}

/// A non-blocking or timed acquire failed.
///
/// # Examples
/// ```
/// use futex_semaphore::{Semaphore, TryAcquireError};
/// use std::time::Duration;
///
/// let sem = Semaphore::new(0);
/// assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
/// assert_eq!(sem.try_acquire_for(Duration::from_millis(1)).unwrap_err(), TryAcquireError::NoPermits);
/// sem.close();
/// assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TryAcquireError {
    /// The semaphore was closed.
    Closed,
    /// Not enough permits were available (for a timed acquire: not before the deadline).
    NoPermits,
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryAcquireError::Closed => "semaphore closed",
            TryAcquireError::NoPermits => "no permits available",
        })
    }
}

impl std::error::Error for TryAcquireError {}

impl From<AcquireError> for TryAcquireError {
    fn from(_: AcquireError) -> TryAcquireError {
        TryAcquireError::Closed
    }
}

/// A [`BoundedSemaphore`](crate::BoundedSemaphore) refused to take its count above the
/// number of permits it was created with (Python's `ValueError` from
/// `BoundedSemaphore.release`). Nothing was changed.
///
/// # Examples
/// ```
/// use futex_semaphore::{BoundedSemaphore, ReleaseError};
///
/// let sem = BoundedSemaphore::new(1);
/// assert_eq!(sem.release(), Err(ReleaseError));
/// assert_eq!(ReleaseError.to_string(), "semaphore released too many times");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReleaseError;

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("semaphore released too many times")
    }
}

impl std::error::Error for ReleaseError {}
