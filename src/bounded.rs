//! [`BoundedSemaphore`]: a [`Semaphore`] that refuses to be released above its initial count.

use crate::raw::MAX_PERMITS;
use crate::{Acquire, AcquireError, Permit, ReleaseError, Semaphore, TryAcquireError};
use std::fmt;
use std::time::{Duration, Instant};

/// A semaphore whose count never goes above the number it started with, like Python's
/// `threading.BoundedSemaphore`: a [`release`](BoundedSemaphore::release) that would take it
/// there is refused with [`ReleaseError`] and changes nothing, which catches a release without a
/// matching acquire.
///
/// Acquiring works exactly as on [`Semaphore`] and gives the same [`Permit`], which returns its
/// permits when dropped (those never overflow the bound, since they were taken from it).
/// [`release`](BoundedSemaphore::release) is for permits kept out with [`Permit::forget`]: the
/// check compares the available count with the initial one, as Python does, so calling it while
/// guards are still out lets their return take the count above the start.
///
/// # Examples
/// ```
/// use futex_semaphore::{BoundedSemaphore, ReleaseError};
///
/// static POOL: BoundedSemaphore = BoundedSemaphore::new(2);
///
/// POOL.acquire().unwrap().forget(); // acquire without a guard, as in Python
/// assert_eq!(POOL.release(), Ok(())); // back to 2
/// assert_eq!(POOL.release(), Err(ReleaseError)); // a third would pass the start
/// assert_eq!(POOL.available_permits(), 2);
/// ```
pub struct BoundedSemaphore {
    sem: Semaphore,
    initial: usize,
}

impl BoundedSemaphore {
    crate::loom_const_fn! {
        /// Creates a bounded semaphore with `permits` permits, which is also its upper bound.
        ///
        /// # Panics
        /// If `permits` is more than [`Semaphore::MAX_PERMITS`].
        ///
        /// # Examples
        /// ```
        /// use futex_semaphore::BoundedSemaphore;
        ///
        /// let sem = BoundedSemaphore::new(3);
        /// assert_eq!(sem.initial_permits(), 3);
        /// ```
        #[track_caller]
        #[must_use]
        pub fn new(permits: usize) -> BoundedSemaphore {
            BoundedSemaphore { sem: Semaphore::new(permits), initial: permits }
        }
    }

    /// The count it started with, which is also its bound.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    ///
    /// assert_eq!(BoundedSemaphore::new(5).initial_permits(), 5);
    /// ```
    pub fn initial_permits(&self) -> usize {
        self.initial
    }

    /// Takes one permit, blocking until one is available. See [`Semaphore::acquire`].
    ///
    /// # Errors
    /// [`AcquireError`] if closed.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    ///
    /// let sem = BoundedSemaphore::new(1);
    /// let _permit = sem.acquire().unwrap();
    /// assert_eq!(sem.available_permits(), 0);
    /// ```
    #[inline]
    pub fn acquire(&self) -> Result<Permit<'_>, AcquireError> {
        self.sem.acquire()
    }

    /// Takes `n` permits, blocking until all are available. See [`Semaphore::acquire_many`].
    ///
    /// # Errors
    /// [`AcquireError`] if closed.
    ///
    /// # Panics
    /// If `n` is more than [`Semaphore::MAX_PERMITS`].
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    ///
    /// let sem = BoundedSemaphore::new(2);
    /// assert_eq!(sem.acquire_many(2).unwrap().num_permits(), 2);
    /// ```
    #[inline]
    #[track_caller]
    pub fn acquire_many(&self, n: u32) -> Result<Permit<'_>, AcquireError> {
        self.sem.acquire_many(n)
    }

    /// Takes one permit, waiting asynchronously until one is available. See
    /// [`Semaphore::acquire_async`]: the same cancel-safe, runtime-agnostic future.
    ///
    /// There are no owned variants (`acquire_owned_async`): an [`OwnedPermit`](crate::OwnedPermit)
    /// holds an `Arc<Semaphore>`, which an `Arc<BoundedSemaphore>` cannot give, just as there is
    /// no blocking `acquire_owned` here. Put a [`Semaphore`] in the `Arc` to move permits into
    /// spawned tasks.
    ///
    /// # Errors
    /// The future resolves to [`AcquireError`] if closed.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    ///
    /// static POOL: BoundedSemaphore = BoundedSemaphore::new(1);
    ///
    /// pollster::block_on(async {
    ///     POOL.acquire_async().await.unwrap().forget();
    ///     assert_eq!(POOL.available_permits(), 0);
    ///     assert!(POOL.release().is_ok());
    /// });
    /// ```
    #[inline]
    pub fn acquire_async(&self) -> Acquire<'_> {
        self.sem.acquire_async()
    }

    /// Takes `n` permits, waiting asynchronously until all are available. See
    /// [`Semaphore::acquire_many_async`].
    ///
    /// # Errors
    /// The future resolves to [`AcquireError`] if closed.
    ///
    /// # Panics
    /// Here, not when polled, if `n` is more than [`Semaphore::MAX_PERMITS`].
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    ///
    /// let sem = BoundedSemaphore::new(2);
    /// let permit = pollster::block_on(sem.acquire_many_async(2)).unwrap();
    /// assert_eq!(permit.num_permits(), 2);
    /// ```
    #[inline]
    #[track_caller]
    pub fn acquire_many_async(&self, n: u32) -> Acquire<'_> {
        self.sem.acquire_many_async(n)
    }

    /// Takes one permit if one is available now. See [`Semaphore::try_acquire`].
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    ///
    /// let sem = BoundedSemaphore::new(1);
    /// let _p = sem.try_acquire().unwrap();
    /// assert!(sem.try_acquire().is_err());
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, TryAcquireError> {
        self.sem.try_acquire()
    }

    /// Takes `n` permits if all are available now. See [`Semaphore::try_acquire_many`].
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    ///
    /// # Panics
    /// If `n` is more than [`Semaphore::MAX_PERMITS`].
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    ///
    /// let sem = BoundedSemaphore::new(2);
    /// assert!(sem.try_acquire_many(3).is_err());
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_acquire_many(&self, n: u32) -> Result<Permit<'_>, TryAcquireError> {
        self.sem.try_acquire_many(n)
    }

    /// Takes one permit, waiting at most `timeout`. See [`Semaphore::try_acquire_for`].
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] at the timeout, or [`TryAcquireError::Closed`].
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    /// use std::time::Duration;
    ///
    /// let sem = BoundedSemaphore::new(0);
    /// assert!(sem.try_acquire_for(Duration::from_millis(1)).is_err());
    /// ```
    #[inline]
    pub fn try_acquire_for(&self, timeout: Duration) -> Result<Permit<'_>, TryAcquireError> {
        self.sem.try_acquire_for(timeout)
    }

    /// Takes one permit, waiting until `deadline` at the latest. See
    /// [`Semaphore::try_acquire_until`].
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] at the deadline, or [`TryAcquireError::Closed`].
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    /// use std::time::Instant;
    ///
    /// let sem = BoundedSemaphore::new(1);
    /// assert!(sem.try_acquire_until(Instant::now()).is_ok());
    /// ```
    #[inline]
    pub fn try_acquire_until(&self, deadline: Instant) -> Result<Permit<'_>, TryAcquireError> {
        self.sem.try_acquire_until(deadline)
    }

    /// Takes `n` permits, waiting at most `timeout`. See [`Semaphore::try_acquire_many_for`].
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] at the timeout, or [`TryAcquireError::Closed`].
    ///
    /// # Panics
    /// If `n` is more than [`Semaphore::MAX_PERMITS`].
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    /// use std::time::Duration;
    ///
    /// let sem = BoundedSemaphore::new(2);
    /// assert!(sem.try_acquire_many_for(2, Duration::from_millis(1)).is_ok());
    /// ```
    #[track_caller]
    pub fn try_acquire_many_for(&self, n: u32, timeout: Duration) -> Result<Permit<'_>, TryAcquireError> {
        self.sem.try_acquire_many_for(n, timeout)
    }

    /// Takes `n` permits, waiting until `deadline` at the latest. See
    /// [`Semaphore::try_acquire_many_until`].
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] at the deadline, or [`TryAcquireError::Closed`].
    ///
    /// # Panics
    /// If `n` is more than [`Semaphore::MAX_PERMITS`].
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    /// use std::time::Instant;
    ///
    /// let sem = BoundedSemaphore::new(1);
    /// assert!(sem.try_acquire_many_until(2, Instant::now()).is_err());
    /// ```
    #[track_caller]
    pub fn try_acquire_many_until(&self, n: u32, deadline: Instant) -> Result<Permit<'_>, TryAcquireError> {
        self.sem.try_acquire_many_until(n, deadline)
    }

    /// Adds one permit back, unless the available count is already at the initial count.
    ///
    /// # Errors
    /// [`ReleaseError`] if it would pass the initial count; nothing changes then.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    ///
    /// let sem = BoundedSemaphore::new(1);
    /// sem.acquire().unwrap().forget();
    /// assert!(sem.release().is_ok());
    /// assert!(sem.release().is_err());
    /// ```
    #[inline]
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.add_permits(1)
    }

    /// Adds `n` permits back, unless that would take the available count past the initial count.
    ///
    /// # Errors
    /// [`ReleaseError`] if it would; nothing changes then (no permit is added).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::{BoundedSemaphore, ReleaseError};
    ///
    /// let sem = BoundedSemaphore::new(3);
    /// sem.acquire_many(2).unwrap().forget();
    /// assert_eq!(sem.add_permits(3), Err(ReleaseError));
    /// assert_eq!(sem.add_permits(2), Ok(()));
    /// ```
    pub fn add_permits(&self, n: usize) -> Result<(), ReleaseError> {
        let n = u64::try_from(n).map_err(|_| ReleaseError)?;
        self.sem.raw().add_permits(n, (self.initial as u64).min(MAX_PERMITS)).map_err(|()| ReleaseError)
    }

    /// Removes up to `n` available permits; returns how many. See [`Semaphore::forget_permits`].
    /// [`release`](BoundedSemaphore::release) can put them back.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    ///
    /// let sem = BoundedSemaphore::new(2);
    /// assert_eq!(sem.forget_permits(1), 1);
    /// assert!(sem.release().is_ok());
    /// ```
    pub fn forget_permits(&self, n: usize) -> usize {
        self.sem.forget_permits(n)
    }

    /// The number of permits available now.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    ///
    /// assert_eq!(BoundedSemaphore::new(4).available_permits(), 4);
    /// ```
    #[inline]
    pub fn available_permits(&self) -> usize {
        self.sem.available_permits()
    }

    /// Closes it. See [`Semaphore::close`].
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    ///
    /// let sem = BoundedSemaphore::new(1);
    /// sem.close();
    /// assert!(sem.acquire().is_err());
    /// ```
    pub fn close(&self) {
        self.sem.close();
    }

    /// Whether it is closed.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    ///
    /// assert!(!BoundedSemaphore::new(1).is_closed());
    /// ```
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.sem.is_closed()
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("available_permits", &self.available_permits())
            .field("initial_permits", &self.initial)
            .field("closed", &self.is_closed())
            .finish()
    }
}
