//! The acquire API, written once for [`Semaphore`](crate::Semaphore),
//! [`BoundedSemaphore`](crate::BoundedSemaphore) and `ProcessSemaphore`.
//!
//! Each type implements [`Engine`] (or, for `BoundedSemaphore`, forwards to its `Semaphore`'s)
//! and invokes [`acquire_methods!`] (and [`acquire_async_methods!`] where it has async
//! acquires), which write the public methods and their docs. Every acquire goes through
//! [`take`]: one request check, one answer for an empty request, one choice of wait. Blocking
//! acquires map its error with [`blocking`]; timed ones get their deadline from
//! [`Wait::timeout`].
//!
//! What `release` means on each type, and why the three differ, is documented once, in the
//! crate docs ([Releasing permits](crate#releasing-permits)).

use crate::{AcquireError, TryAcquireError};
use std::time::{Duration, Instant};

/// The largest request any semaphore type grants: `2^31 - 1` (as `MAX_PERMITS` on each type).
pub(crate) const MAX_PERMITS: usize = crate::raw::MAX_PERMITS as usize;

/// What a semaphore type's engine provides to the shared acquires.
pub(crate) trait Engine {
    /// The type named in the panic of a request that is too large.
    const NAME: &'static str;
    /// What a take records beside the count: nothing on `Semaphore`, the holder slot on
    /// `ProcessSemaphore`. Turned into a permit by the caller.
    type Taken;

    /// Whether the semaphore is closed.
    fn is_closed(&self) -> bool;
    /// The record of an empty request, which takes nothing.
    fn nothing(&self) -> Self::Taken;
    /// A non-blocking take of `n > 0` permits.
    fn try_take(&self, n: u32) -> Result<Self::Taken, TryAcquireError>;
    /// A blocking take of `n > 0` permits, until `deadline` if there is one. Without a
    /// deadline it fails only with [`TryAcquireError::Closed`].
    fn take(&self, n: u32, deadline: Option<Instant>) -> Result<Self::Taken, TryAcquireError>;
}

/// How long an acquire may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all: one attempt.
    Never,
    /// Until the deadline (one attempt if it has passed).
    Until(Instant),
    /// Without limit.
    Forever,
}

impl Wait {
    /// `timeout` from now, or without limit past what `Instant` holds (`Duration::MAX`).
    #[inline]
    pub(crate) fn timeout(timeout: Duration) -> Wait {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => Wait::Until(deadline),
            None => Wait::Forever,
        }
    }
}

/// Every acquire: checks the request, answers an empty one at once (unless closed), and asks the
/// engine for the rest, waiting as `wait` says.
///
/// # Panics
/// If `n` is more than `MAX_PERMITS`, naming `E::NAME`'s limit.
#[inline]
#[track_caller]
pub(crate) fn take<E: Engine>(engine: &E, n: u32, wait: Wait) -> Result<E::Taken, TryAcquireError> {
    check(n, E::NAME);
    if n == 0 {
        return if engine.is_closed() { Err(TryAcquireError::Closed) } else { Ok(engine.nothing()) };
    }
    match wait {
        Wait::Never => engine.try_take(n),
        Wait::Until(deadline) => engine.take(n, Some(deadline)),
        Wait::Forever => engine.take(n, None),
    }
}

/// The error of a wait without limit: it can only have been closed.
#[inline]
pub(crate) fn blocking<T>(taken: Result<T, TryAcquireError>) -> Result<T, AcquireError> {
    taken.map_err(|_| AcquireError)
}

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

/// Writes the eight blocking, non-blocking and timed acquires of a semaphore type, with their
/// docs and examples.
///
/// - `type`: the public type (named in links and examples);
/// - `engine`: the field that implements [`Engine`], or `()` for the type itself;
/// - `permit`: the guard, and `|sem, n, taken| ...` to build it;
/// - `max`: the path of the `MAX_PERMITS` that limits a request (for the docs);
/// - `new`: how the examples create one with `N` permits: the call before `(N)` and what
///   follows it (`?` where it is fallible), and the examples' last, hidden line;
/// - `acquire_note`: an optional paragraph for `acquire`'s docs;
/// - `try_note`: an optional sentence for the `# Errors` of `try_acquire` and `try_acquire_many`.
macro_rules! acquire_methods {
    (
        type: $Type:ident,
        engine: ($($field:ident)?),
        permit: $Permit:ident, |$sem:ident, $n:ident, $taken:pat_param| $permit:expr,
        max: $max:literal,
        new: $new:literal, $after:literal, $last:literal,
        $(acquire_note: $note:literal,)?
        $(try_note: $try_note:literal,)?
    ) => {
        /// Takes one permit, blocking until one is available.
        $(#[doc = ""] #[doc = $note])?
        ///
        /// # Errors
        /// [`AcquireError`] if the semaphore is closed, before or while waiting.
        ///
        /// # Examples
        /// ```
        #[doc = concat!("use futex_semaphore::", stringify!($Type), ";")]
        ///
        #[doc = concat!("let sem = ", $new, "(1)", $after, ";")]
        /// let permit = sem.acquire().unwrap();
        /// assert_eq!(sem.available_permits(), 0);
        /// drop(permit);
        /// assert_eq!(sem.available_permits(), 1);
        #[doc = $last]
        /// ```
        #[inline]
        pub fn acquire(&self) -> Result<$Permit<'_>, AcquireError> {
            self.acquire_many(1)
        }

        /// Takes `n` permits at once, blocking until all `n` are available. `n == 0` succeeds
        /// at once (unless closed) with an empty permit.
        ///
        /// # Errors
        /// [`AcquireError`] if the semaphore is closed, before or while waiting.
        ///
        /// # Panics
        #[doc = concat!("If `n` is more than [`MAX_PERMITS`](", $max, ") (such a request could never be")]
        /// granted).
        ///
        /// # Examples
        /// ```
        #[doc = concat!("use futex_semaphore::", stringify!($Type), ";")]
        ///
        #[doc = concat!("let sem = ", $new, "(3)", $after, ";")]
        /// let permit = sem.acquire_many(3).unwrap();
        /// assert_eq!(permit.num_permits(), 3);
        /// assert!(sem.try_acquire().is_err());
        #[doc = $last]
        /// ```
        #[inline]
        #[track_caller]
        pub fn acquire_many(&self, n: u32) -> Result<$Permit<'_>, AcquireError> {
            let $sem = self;
            let $n = n;
            let engine = &(*self)$(.$field)?;
            $crate::api::blocking($crate::api::take(engine, n, $crate::api::Wait::Forever))
                .map(|$taken| $permit)
        }

        /// Takes one permit if one is available now.
        ///
        /// # Errors
        /// [`TryAcquireError::NoPermits`] if none is, [`TryAcquireError::Closed`] if closed.
        $(#[doc = $try_note])?
        ///
        /// # Examples
        /// ```
        #[doc = concat!("use futex_semaphore::{", stringify!($Type), ", TryAcquireError};")]
        ///
        #[doc = concat!("let sem = ", $new, "(1)", $after, ";")]
        /// let permit = sem.try_acquire().unwrap();
        /// assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
        #[doc = $last]
        /// ```
        #[inline]
        pub fn try_acquire(&self) -> Result<$Permit<'_>, TryAcquireError> {
            self.try_acquire_many(1)
        }

        /// Takes `n` permits if all `n` are available now.
        ///
        /// # Errors
        /// [`TryAcquireError::NoPermits`] if fewer are, [`TryAcquireError::Closed`] if closed.
        $(#[doc = $try_note])?
        ///
        /// # Panics
        #[doc = concat!("If `n` is more than [`MAX_PERMITS`](", $max, ").")]
        ///
        /// # Examples
        /// ```
        #[doc = concat!("use futex_semaphore::", stringify!($Type), ";")]
        ///
        #[doc = concat!("let sem = ", $new, "(2)", $after, ";")]
        /// assert!(sem.try_acquire_many(3).is_err());
        /// assert_eq!(sem.try_acquire_many(2).unwrap().num_permits(), 2);
        #[doc = $last]
        /// ```
        #[inline]
        #[track_caller]
        pub fn try_acquire_many(&self, n: u32) -> Result<$Permit<'_>, TryAcquireError> {
            self.try_acquire_many_waiting(n, $crate::api::Wait::Never)
        }

        /// Takes one permit, waiting at most `timeout` for it.
        ///
        /// `Duration::MAX` (or any timeout past what `Instant` can represent) waits without
        /// limit.
        ///
        /// # Errors
        /// [`TryAcquireError::NoPermits`] when the timeout passes, [`TryAcquireError::Closed`]
        /// if closed before or while waiting.
        ///
        /// # Examples
        /// ```
        #[doc = concat!("use futex_semaphore::{", stringify!($Type), ", TryAcquireError};")]
        /// use std::time::Duration;
        ///
        #[doc = concat!("let sem = ", $new, "(0)", $after, ";")]
        /// let err = sem.try_acquire_for(Duration::from_millis(10)).unwrap_err();
        /// assert_eq!(err, TryAcquireError::NoPermits);
        #[doc = $last]
        /// ```
        #[inline]
        pub fn try_acquire_for(&self, timeout: Duration) -> Result<$Permit<'_>, TryAcquireError> {
            self.try_acquire_many_for(1, timeout)
        }

        /// Takes one permit, waiting for it until `deadline` at the latest. A deadline in the
        /// past makes this one non-blocking attempt.
        ///
        /// # Errors
        /// [`TryAcquireError::NoPermits`] when the deadline passes, [`TryAcquireError::Closed`]
        /// if closed before or while waiting.
        ///
        /// # Examples
        /// ```
        #[doc = concat!("use futex_semaphore::", stringify!($Type), ";")]
        /// use std::time::{Duration, Instant};
        ///
        #[doc = concat!("let sem = ", $new, "(1)", $after, ";")]
        /// let deadline = Instant::now() + Duration::from_secs(1);
        /// assert!(sem.try_acquire_until(deadline).is_ok());
        #[doc = $last]
        /// ```
        #[inline]
        pub fn try_acquire_until(&self, deadline: Instant) -> Result<$Permit<'_>, TryAcquireError> {
            self.try_acquire_many_until(1, deadline)
        }

        /// Takes `n` permits, waiting at most `timeout` for all of them. See
        #[doc = concat!("[`try_acquire_for`](", stringify!($Type), "::try_acquire_for).")]
        ///
        /// # Errors
        #[doc = concat!("As for [`try_acquire_for`](", stringify!($Type), "::try_acquire_for).")]
        ///
        /// # Panics
        #[doc = concat!("If `n` is more than [`MAX_PERMITS`](", $max, ").")]
        ///
        /// # Examples
        /// ```
        #[doc = concat!("use futex_semaphore::", stringify!($Type), ";")]
        /// use std::time::Duration;
        ///
        #[doc = concat!("let sem = ", $new, "(1)", $after, ";")]
        /// assert!(sem.try_acquire_many_for(2, Duration::from_millis(5)).is_err());
        /// assert_eq!(sem.available_permits(), 1);
        #[doc = $last]
        /// ```
        #[track_caller]
        pub fn try_acquire_many_for(&self, n: u32, timeout: Duration) -> Result<$Permit<'_>, TryAcquireError> {
            self.try_acquire_many_waiting(n, $crate::api::Wait::timeout(timeout))
        }

        /// Takes `n` permits, waiting for all of them until `deadline` at the latest. See
        #[doc = concat!("[`try_acquire_until`](", stringify!($Type), "::try_acquire_until).")]
        ///
        /// # Errors
        #[doc = concat!("As for [`try_acquire_until`](", stringify!($Type), "::try_acquire_until).")]
        ///
        /// # Panics
        #[doc = concat!("If `n` is more than [`MAX_PERMITS`](", $max, ").")]
        ///
        /// # Examples
        /// ```
        #[doc = concat!("use futex_semaphore::", stringify!($Type), ";")]
        /// use std::time::Instant;
        ///
        #[doc = concat!("let sem = ", $new, "(3)", $after, ";")]
        /// let permit = sem.try_acquire_many_until(3, Instant::now()).unwrap();
        /// assert_eq!(permit.num_permits(), 3);
        #[doc = $last]
        /// ```
        #[track_caller]
        pub fn try_acquire_many_until(
            &self,
            n: u32,
            deadline: Instant,
        ) -> Result<$Permit<'_>, TryAcquireError> {
            self.try_acquire_many_waiting(n, $crate::api::Wait::Until(deadline))
        }

        /// The non-blocking and timed acquires of `n` permits.
        #[inline]
        #[track_caller]
        fn try_acquire_many_waiting(
            &self,
            n: u32,
            wait: $crate::api::Wait,
        ) -> Result<$Permit<'_>, TryAcquireError> {
            let $sem = self;
            let $n = n;
            let engine = &(*self)$(.$field)?;
            $crate::api::take(engine, n, wait).map(|$taken| $permit)
        }
    };
}
pub(crate) use acquire_methods;

/// Writes the two borrowing async acquires of a type whose engine is a
/// [`Semaphore`](crate::Semaphore) (reached through `engine`, as in [`acquire_methods!`]), with
/// their docs and examples; `note` is an optional paragraph for `acquire_async`'s docs.
macro_rules! acquire_async_methods {
    (
        type: $Type:ident,
        engine: ($($field:ident)?),
        $(note: $note:literal,)?
    ) => {
        #[doc = concat!("Takes one permit, waiting asynchronously until one is available: the async version of [`acquire`](", stringify!($Type), "::acquire),")]
        /// like `async with sem:` in Python's asyncio.
        ///
        /// The future needs no particular runtime, is `Send`, and is cancel-safe: dropping it
        /// before it completes loses no permit and no wakeup (see [`Acquire`]). Threads blocked
        #[doc = concat!("in [`acquire`](", stringify!($Type), "::acquire) and tasks waiting here share the permits; a")]
        /// release wakes whichever is waiting.
        $(#[doc = ""] #[doc = $note])?
        ///
        /// # Errors
        /// The future resolves to [`AcquireError`] if the semaphore is closed, before or while
        /// waiting.
        ///
        /// # Examples
        /// ```
        #[doc = concat!("use futex_semaphore::", stringify!($Type), ";")]
        /// use std::sync::Arc;
        ///
        /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
        /// # async fn main() {
        #[doc = concat!("let sem = Arc::new(", stringify!($Type), "::new(2));")]
        /// let tasks: Vec<_> = (0..4)
        ///     .map(|i| {
        ///         let sem = Arc::clone(&sem);
        ///         tokio::spawn(async move {
        ///             let _permit = sem.acquire_async().await.unwrap();
        ///             i * 10 // at most two tasks get here at a time
        ///         })
        ///     })
        ///     .collect();
        /// for task in tasks {
        ///     task.await.unwrap();
        /// }
        /// assert_eq!(sem.available_permits(), 2);
        /// # }
        /// ```
        #[inline]
        pub fn acquire_async(&self) -> Acquire<'_> {
            self.acquire_many_async(1)
        }

        /// Takes `n` permits at once, waiting asynchronously until all `n` are available: the
        #[doc = concat!("async version of [`acquire_many`](", stringify!($Type), "::acquire_many). `n == 0` is ready at")]
        /// once (unless closed) with an empty permit.
        ///
        /// It waits in the same queue as every other waiter, with its size: a release wakes it
        /// only when the free permits cover its request, and it has the same bound on its wait
        /// (see [Fairness](Semaphore#fairness)).
        ///
        /// # Errors
        /// The future resolves to [`AcquireError`] if the semaphore is closed, before or while
        /// waiting.
        ///
        /// # Panics
        /// Here, not when polled, if `n` is more than
        /// [`MAX_PERMITS`](Semaphore::MAX_PERMITS).
        ///
        /// # Examples
        /// ```
        #[doc = concat!("use futex_semaphore::", stringify!($Type), ";")]
        ///
        #[doc = concat!("let sem = ", stringify!($Type), "::new(3);")]
        /// pollster::block_on(async {
        ///     let permit = sem.acquire_many_async(3).await.unwrap();
        ///     assert_eq!(permit.num_permits(), 3);
        ///     assert!(sem.try_acquire().is_err());
        /// });
        /// ```
        #[inline]
        #[track_caller]
        pub fn acquire_many_async(&self, n: u32) -> Acquire<'_> {
            let sem: &Semaphore = &(*self)$(.$field)?;
            $crate::api::check(n, <Semaphore as $crate::api::Engine>::NAME);
            Acquire::new(sem, n)
        }
    };
}
pub(crate) use acquire_async_methods;
