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
/// permits when dropped, without the check against the bound (see below).
/// [`release`](BoundedSemaphore::release) is for permits kept out with [`Permit::forget`]: the
/// check compares the available count with the initial one, as Python does, so calling it while
/// guards are still out lets their return take the count above the start.
///
/// A request for more than [`initial_permits`](BoundedSemaphore::initial_permits) is accepted,
/// as on [`Semaphore`], but only such a `release` can ever serve it: where the count stays within
/// its bound, as it does in a program that releases only what it acquired, `acquire_many` waits
/// for good, and once it has waited long enough for priority it holds the others back as
/// `Semaphore`'s [Fairness](crate::Semaphore#fairness) says of a request for more than is ever
/// free at once. Ask for at most the bound.
///
/// ```
/// use futex_semaphore::{BoundedSemaphore, TryAcquireError};
///
/// let sem = BoundedSemaphore::new(2);
/// assert_eq!(sem.try_acquire_many(3).err(), Some(TryAcquireError::NoPermits)); // never, here
/// ```
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
            if permits > Semaphore::MAX_PERMITS {
                panic!(
                    "futex-semaphore: BoundedSemaphore::new: more permits than Semaphore::MAX_PERMITS (2^31 - 1)"
                );
            }
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

    crate::api::acquire_methods! {
        type: BoundedSemaphore,
        engine: (sem),
        permit: Permit, |sem, n, ()| Permit::new(&sem.sem, n),
        max: "Semaphore::MAX_PERMITS",
        new: "BoundedSemaphore::new", "", "",
        try_note: "While a waiter has priority, the permits held for it do not count as available \
                   here, though `available_permits` counts them ([`Semaphore`'s \
                   Fairness](crate::Semaphore#fairness)).",
    }

    /// Takes `n` permits, waiting until `deadline` for as long as `keep_waiting` says, calling it
    /// every `every` while it sleeps: see
    /// [`Semaphore::try_acquire_many_while`](Semaphore::try_acquire_many_while).
    ///
    /// # Errors
    /// As for [`Semaphore::try_acquire_many_while`].
    ///
    /// # Panics
    /// As for [`Semaphore::try_acquire_many_while`].
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::BoundedSemaphore;
    /// use std::time::{Duration, Instant};
    ///
    /// let sem = BoundedSemaphore::new(1);
    /// let held = sem.acquire().unwrap();
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// let every = Duration::from_millis(1);
    /// assert!(sem.try_acquire_many_while(1, Some(deadline), every, || true).is_err());
    /// drop(held);
    /// assert!(sem.try_acquire_many_while(1, Some(deadline), every, || true).is_ok());
    /// ```
    #[track_caller]
    pub fn try_acquire_many_while(
        &self,
        n: u32,
        deadline: Option<Instant>,
        every: Duration,
        keep_waiting: impl FnMut() -> bool,
    ) -> Result<Permit<'_>, TryAcquireError> {
        self.sem.try_acquire_many_while(n, deadline, every, keep_waiting)
    }

    crate::api::acquire_async_methods! {
        type: BoundedSemaphore,
        engine: (sem),
        note: "There are no owned variants (`acquire_owned_async`): an \
               [`OwnedPermit`](crate::OwnedPermit) holds an `Arc<Semaphore>`, which an \
               `Arc<BoundedSemaphore>` cannot give, just as there is no blocking `acquire_owned` \
               here. Put a [`Semaphore`] in the `Arc` to move permits into spawned tasks.",
    }

    /// Adds one permit back, unless the available count is already at the initial count.
    ///
    /// How `release` differs between the three semaphore types, and why:
    /// [Releasing permits](crate#releasing-permits).
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
