//! RAII permits: [`Permit`] borrows its semaphore, [`OwnedPermit`] holds an `Arc` of it.
//! Dropping either gives its permits back, also while a panic unwinds.

use crate::Semaphore;
use crate::raw::MAX_PERMITS;
use std::fmt;
use std::sync::Arc;

/// Permits taken from a [`Semaphore`], given back when dropped.
///
/// A `Permit` holds any number of permits (see [`num_permits`](Permit::num_permits)), including
/// zero. Dropping it returns them, also while a panic unwinds, so a holder that panics never
/// leaks its permits. [`forget`](Permit::forget) keeps them out instead.
///
/// Bind it to a named variable for as long as you need the permit: `let _permit = ...` holds it
/// to the end of the scope, while `let _ = sem.acquire()` drops it (and gives the permit back)
/// at once, without a warning.
///
/// A permit from a `static` semaphore is a `Permit<'static>`, which can move into another thread
/// like an [`OwnedPermit`].
///
/// # Examples
/// ```
/// use futex_semaphore::Semaphore;
///
/// let sem = Semaphore::new(3);
/// {
///     let permit = sem.acquire_many(2).unwrap();
///     assert_eq!(permit.num_permits(), 2);
///     assert_eq!(sem.available_permits(), 1);
/// } // dropped: both permits are back
/// assert_eq!(sem.available_permits(), 3);
/// ```
#[must_use = "the permits are given back as soon as the Permit is dropped"]
pub struct Permit<'a> {
    sem: &'a Semaphore,
    permits: u32,
}

/// Writes what [`Permit`] and [`OwnedPermit`] share: `forget`, `num_permits`, `merge`, `split`,
/// `Drop` and `Debug`.
///
/// - `impl[..] Type`: the generics and the type;
/// - `same`: whether two guards' semaphores (`&self.sem`, `&other.sem`) are the same one;
/// - `sem`: the semaphore of a split-off part, from `&self.sem`;
/// - the examples: the lines that import what they need, how they make a semaphore with `N`
///   permits (before and after `N`), and how they take one and `N` permits.
macro_rules! permit_methods {
    (
        impl[$($gen:tt)*] $Ty:ty, name: $name:literal,
        same: |$a:ident, $b:ident| $same:expr,
        sem: |$this:ident| $split_sem:expr,
        examples: $uses:literal, $new:literal, $new_end:literal, $acquire:literal, $acquire_many:literal,
    ) => {
        impl<$($gen)*> $Ty {
            /// Keeps the permits out of the semaphore for good: they are not given back on drop.
            ///
            /// [`Semaphore::add_permits`] (or
            /// [`BoundedSemaphore::release`](crate::BoundedSemaphore::release)) can put them
            /// back later.
            ///
            /// # Examples
            /// ```
            /// use futex_semaphore::Semaphore;
            #[doc = $uses]
            ///
            #[doc = concat!("let sem = ", $new, "2", $new_end, ";")]
            #[doc = concat!($acquire, ".unwrap().forget();")]
            /// assert_eq!(sem.available_permits(), 1);
            /// ```
            #[inline]
            pub fn forget(mut self) {
                self.permits = 0;
            }

            /// How many permits this holds.
            ///
            /// # Examples
            /// ```
            /// use futex_semaphore::Semaphore;
            #[doc = $uses]
            ///
            #[doc = concat!("let sem = ", $new, "5", $new_end, ";")]
            #[doc = concat!("assert_eq!(", $acquire_many, "(3).unwrap().num_permits(), 3);")]
            /// ```
            #[inline]
            pub fn num_permits(&self) -> usize {
                self.permits as usize
            }

            /// Moves the permits of `other` into `self`.
            ///
            /// # Panics
            /// If `other` comes from a different semaphore, or if the two together would hold
            /// more than `MAX_PERMITS` (`2^31 - 1`) permits; `other` gives its permits back then.
            ///
            /// # Examples
            /// ```
            /// use futex_semaphore::Semaphore;
            #[doc = $uses]
            ///
            #[doc = concat!("let sem = ", $new, "3", $new_end, ";")]
            #[doc = concat!("let mut a = ", $acquire, ".unwrap();")]
            #[doc = concat!("a.merge(", $acquire_many, "(2).unwrap());")]
            /// assert_eq!(a.num_permits(), 3);
            /// ```
            #[track_caller]
            pub fn merge(&mut self, mut other: $Ty) {
                let ($a, $b) = (&self.sem, &other.sem);
                assert!(
                    $same,
                    concat!("futex-semaphore: ", $name, "::merge: the permits come from different semaphores")
                );
                self.permits = merged(self.permits, other.permits);
                other.permits = 0;
            }

            #[doc = concat!("Splits `n` permits off into a new `", $name, "`; `None` if this holds fewer than `n`.")]
            ///
            /// # Examples
            /// ```
            /// use futex_semaphore::Semaphore;
            #[doc = $uses]
            ///
            #[doc = concat!("let sem = ", $new, "3", $new_end, ";")]
            #[doc = concat!("let mut a = ", $acquire_many, "(3).unwrap();")]
            /// let b = a.split(1).unwrap();
            /// assert_eq!((a.num_permits(), b.num_permits()), (2, 1));
            /// assert!(a.split(5).is_none());
            /// ```
            #[must_use = "the split-off permits are given back at once if dropped"]
            pub fn split(&mut self, n: usize) -> Option<$Ty> {
                let n = split_off(&mut self.permits, n)?;
                let $this = &self.sem;
                Some(Self { sem: $split_sem, permits: n })
            }
        }

        impl<$($gen)*> Drop for $Ty {
            #[inline]
            fn drop(&mut self) {
                if self.permits > 0 {
                    self.sem.raw().release(self.permits);
                }
            }
        }

        impl<$($gen)*> fmt::Debug for $Ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct($name).field("permits", &self.permits).finish_non_exhaustive()
            }
        }
    };
}

impl<'a> Permit<'a> {
    #[inline]
    pub(crate) fn new(sem: &'a Semaphore, permits: u32) -> Permit<'a> {
        Permit { sem, permits }
    }
}

permit_methods! {
    impl['a] Permit<'a>, name: "Permit",
    same: |a, b| std::ptr::eq(*a, *b),
    sem: |sem| *sem,
    examples: "", "Semaphore::new(", ")", "sem.acquire()", "sem.acquire_many",
}

/// Permits taken from a [`Semaphore`] in an [`Arc`], given back when dropped.
///
/// Unlike [`Permit`], it does not borrow the semaphore: it is `'static` and `Send`, so it can
/// move into a spawned thread or a task. It behaves like [`Permit`] otherwise.
///
/// # Examples
/// ```
/// use futex_semaphore::Semaphore;
/// use std::sync::Arc;
/// use std::thread;
///
/// let sem = Arc::new(Semaphore::new(1));
/// let permit = Arc::clone(&sem).acquire_owned().unwrap();
/// thread::spawn(move || {
///     let _permit = permit; // held by this thread, given back when it ends
/// })
/// .join()
/// .unwrap();
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "the permits are given back as soon as the OwnedPermit is dropped"]
pub struct OwnedPermit {
    sem: Arc<Semaphore>,
    permits: u32,
}

impl OwnedPermit {
    #[inline]
    pub(crate) fn new(sem: Arc<Semaphore>, permits: u32) -> OwnedPermit {
        OwnedPermit { sem, permits }
    }

    /// The semaphore these permits belong to.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(Semaphore::new(1));
    /// let permit = Arc::clone(&sem).acquire_owned().unwrap();
    /// assert!(Arc::ptr_eq(permit.semaphore(), &sem));
    /// ```
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }
}

permit_methods! {
    impl[] OwnedPermit, name: "OwnedPermit",
    same: |a, b| Arc::ptr_eq(a, b),
    sem: |sem| Arc::clone(sem),
    examples: "use std::sync::Arc;", "Arc::new(Semaphore::new(", "))", "Arc::clone(&sem).acquire_owned()",
        "Arc::clone(&sem).acquire_many_owned",
}

/// `a + b`, refused past `MAX_PERMITS`: a permit never holds more than a semaphore can, so giving
/// it back can never carry past the permit field of the state word.
#[track_caller]
fn merged(a: u32, b: u32) -> u32 {
    match a.checked_add(b) {
        Some(sum) if u64::from(sum) <= MAX_PERMITS => sum,
        _ => too_many_merged(a, b),
    }
}

#[cold]
#[track_caller]
fn too_many_merged(a: u32, b: u32) -> ! {
    panic!(
        "futex-semaphore: merging permits: {a} + {b} permits is more than MAX_PERMITS ({MAX_PERMITS}), \
         the most one permit can hold"
    )
}

fn split_off(permits: &mut u32, n: usize) -> Option<u32> {
    let n = u32::try_from(n).ok().filter(|&n| n <= *permits)?;
    *permits -= n;
    Some(n)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::Semaphore;

    #[test]
    #[should_panic(expected = "MAX_PERMITS")]
    fn merging_past_max_permits_panics_naming_the_limit() {
        let sem = Semaphore::new(Semaphore::MAX_PERMITS);
        let mut all = sem.acquire_many(Semaphore::MAX_PERMITS as u32).unwrap();
        all.merge(sem.acquire_many(0).unwrap()); // exactly MAX_PERMITS: fine
        sem.add_permits(1);
        all.merge(sem.acquire().unwrap()); // one more: refused
    }
}
