//! [`ProcessPermit`]: permits taken from a [`ProcessSemaphore`], recorded in the holder table
//! under the nonce of the process incarnation that took them.

use super::holders::UNTRACKED;
use super::{Holder, ProcessSemaphore, sys};
use std::fmt;

/// Permits taken from a [`ProcessSemaphore`], given back when dropped.
///
/// Dropping it returns the permits, also while a panic unwinds. If the process dies instead
/// (killed, aborted, `exit` without running destructors), the permits are recorded as this
/// process's and are given back by recovery, unless the holder table was full
/// ([`is_recoverable`](ProcessPermit::is_recoverable)). A copy of a permit that a child got
/// through `fork` belongs to the parent: dropping it in the child does nothing. Permits whose
/// give-back would take the count past [`MAX_PERMITS`](ProcessSemaphore::MAX_PERMITS) (possible
/// only after `add_permits` while they were out, more than `MAX_PERMITS` in all) are dropped.
///
/// # Examples
/// ```
/// use futex_semaphore::ProcessSemaphore;
///
/// let sem = ProcessSemaphore::anonymous(3)?;
/// {
///     let permit = sem.acquire_many(2).unwrap();
///     assert_eq!(permit.num_permits(), 2);
///     assert_eq!(sem.available_permits(), 1);
/// } // dropped: both permits are back
/// assert_eq!(sem.available_permits(), 3);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "the permits are given back as soon as the ProcessPermit is dropped"]
pub struct ProcessPermit<'a> {
    pub(super) sem: &'a ProcessSemaphore,
    pub(super) permits: u32,
    /// The slot the permits are recorded in, or [`UNTRACKED`].
    pub(super) slot: u32,
    /// The nonce of the process incarnation that took them: a copy of this permit in a process
    /// made by `fork` (even one that reuses the taker's pid) is not that process's to give back.
    pub(super) nonce: u64,
}

impl<'a> ProcessPermit<'a> {
    pub(super) fn new(sem: &'a ProcessSemaphore, permits: u32, me: Holder) -> ProcessPermit<'a> {
        ProcessPermit { sem, permits, slot: me.slot, nonce: me.nonce }
    }

    /// Keeps the permits out of the semaphore for good: they are not given back on drop, nor by
    /// recovery if this process dies. [`ProcessSemaphore::release`] (in any process) puts them
    /// back.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(2)?;
    /// sem.acquire().unwrap().forget();
    /// assert_eq!(sem.available_permits(), 1);
    /// sem.release()?;
    /// assert_eq!(sem.available_permits(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn forget(mut self) {
        if self.permits > 0 && sys::identity().nonce == self.nonce {
            self.sem.region().unrecord(Holder { slot: self.slot, nonce: self.nonce }, self.permits);
        }
        self.permits = 0;
    }

    /// Adds `other`'s permits to this one, so that one value holds them all: for a caller whose
    /// acquire returns no guard (Python's `acquire()`), which keeps what its process holds as one
    /// count and gives permits back one at a time ([`release_one`](ProcessPermit::release_one)).
    ///
    /// Permits are merged when both are recorded alike: taken from the same semaphore handle by
    /// the same process incarnation, in the same holder slot (always so for the permits a process
    /// takes through one handle, unless its slot was lost and claimed again). An empty `self` takes
    /// `other` as it is; an empty `other` is nothing to add.
    ///
    /// # Errors
    /// `Err(other)`, unchanged, if they are recorded differently (another semaphore, another
    /// slot, a copy made by `fork`), or if the sum would pass
    /// [`MAX_PERMITS`](ProcessSemaphore::MAX_PERMITS): a permit gives back all it holds in one
    /// step, and the count can never take more than that at once.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(3)?;
    /// let mut held = sem.acquire().unwrap();
    /// assert!(held.merge(sem.acquire_many(2).unwrap()).is_ok());
    /// assert_eq!(held.num_permits(), 3);
    /// assert_eq!(sem.available_permits(), 0);
    /// drop(held);
    /// assert_eq!(sem.available_permits(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn merge(&mut self, other: ProcessPermit<'a>) -> Result<(), ProcessPermit<'a>> {
        if other.permits == 0 {
            return Ok(());
        }
        if self.permits == 0 {
            *self = other;
            return Ok(());
        }
        let alike = std::ptr::eq(self.sem, other.sem) && self.slot == other.slot && self.nonce == other.nonce;
        match self
            .permits
            .checked_add(other.permits)
            .filter(|&sum| sum as usize <= ProcessSemaphore::MAX_PERMITS)
        {
            Some(sum) if alike => {
                self.permits = sum;
                // Now counted in `self`: `other` has nothing to give back (and no other resource).
                std::mem::forget(other);
                Ok(())
            }
            _ => Err(other),
        }
    }

    /// Gives one of its permits back now, as dropping a permit of one would, and returns
    /// `true`; `false` (and nothing done) if it holds none. The permit stays, with one fewer. (A
    /// copy of a parent's permit, in a process made by `fork`, gives nothing back, as when
    /// dropped.)
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(2)?;
    /// let mut held = sem.acquire_many(2).unwrap();
    /// assert!(held.release_one());
    /// assert_eq!((held.num_permits(), sem.available_permits()), (1, 1));
    /// assert!(held.release_one());
    /// assert!(!held.release_one());
    /// assert_eq!(sem.available_permits(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn release_one(&mut self) -> bool {
        if self.permits == 0 {
            return false;
        }
        self.permits -= 1;
        self.sem.give_back(1, self.slot, self.nonce);
        true
    }

    /// How many permits this holds.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(5)?;
    /// assert_eq!(sem.acquire_many(3).unwrap().num_permits(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn num_permits(&self) -> usize {
        self.permits as usize
    }

    /// Whether these permits are recorded in the holder table, and so given back by recovery if
    /// this process dies. `false` when the table was full (more processes at once than
    /// [`holder_slots`](ProcessSemaphore::holder_slots)), when
    /// this process is in another pid namespace than the creator, and for an empty permit.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(1)?;
    /// assert!(sem.acquire().unwrap().is_recoverable());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn is_recoverable(&self) -> bool {
        self.permits > 0 && self.slot != UNTRACKED
    }
}

impl Drop for ProcessPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.permits > 0 {
            self.sem.give_back(self.permits, self.slot, self.nonce);
        }
    }
}

impl fmt::Debug for ProcessPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPermit")
            .field("permits", &self.permits)
            .field("recoverable", &self.is_recoverable())
            .finish_non_exhaustive()
    }
}
