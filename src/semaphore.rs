//! [`Semaphore`]: the public face of the engine in [`crate::raw`].
//!
//! This layer is the engine's [`Engine`] for the acquires written in [`crate::api`] (which check
//! request sizes and turn timeouts into deadlines), wraps taken permits in RAII guards, and
//! checks the permit limit of what is added. It adds nothing to the fast path but a comparison
//! the compiler folds away for `acquire()`.

use crate::api::{self, Engine, Wait};
use crate::raw::{MAX_PERMITS, RawSemaphore};
use crate::{Acquire, AcquireError, AcquireOwned, OwnedPermit, Permit, TryAcquireError};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A counting semaphore: at most N holders at once, on a futex.
///
/// A semaphore holds a number of permits. [`acquire`](Semaphore::acquire) takes one, blocking
/// while there is none, and returns a [`Permit`] that gives it back when dropped.
/// Uncontended, an acquire is one compare-and-swap (from the count the last release left, kept
/// beside it, so no load comes first) and a release one `fetch_add`; neither enters the kernel. A contended acquire spins briefly (longer while its thread has a
/// core to itself), then sleeps on a futex; a lone waiter one permit short spins longer, for as
/// long as the semaphore's recent sleeps say its permit comes back (at most 100 µs). A release
/// makes a system call only when a thread sleeps.
///
/// Async tasks can wait on the same semaphore, beside threads, like Python's `asyncio.Semaphore`:
/// [`acquire_async`](Semaphore::acquire_async) and its siblings return futures that work on any
/// executor, and a release wakes whichever kind of waiter is there. A release touches the waiter
/// queue only while someone waits in it.
///
/// The semaphore is 24 bytes, `Send + Sync`, never poisoned, and [`new`](Semaphore::new) is a
/// `const fn`, so it can be a `static`.
///
/// # Fairness
/// Acquires barge: a thread or task that arrives while permits are free takes them, even if
/// others wait. That is what makes it fast under contention. Those that must wait queue in order
/// of arrival, threads and tasks in one queue, each with the size of its request. A release wakes,
/// in that order, the waiters its permits can serve, whatever their sizes: a request larger than
/// what is free is passed over rather than waited for (no head-of-line blocking), and no more
/// waiters are woken than the free permits cover, counting those already woken and on their way
/// (except that a thread does not count a woken task's request: the task may be one that cannot
/// run until the thread's acquire returns, on the same executor thread).
///
/// Every waiter's wait is bounded. Once the waiter at the head of the queue (of any size, thread
/// or task) has waited 1 ms, it gets priority from the next release on (or sooner, where another
/// waiter's arrival reads the clock, as some do: the queue reuses its last reading; a thread
/// sooner: at once if a release woke it for permits that another acquire took before it ran; its
/// wait may be counted from the queue's last reading of the clock before it arrived, which only
/// brings the priority sooner): every other acquire, [`try_acquire`] included, may only take
/// permits beyond what it still needs, so releases pile up for it. It is then served as
/// soon as enough holders have given permits back: its wait is at most 1 ms plus the time until
/// holders return the permits it asked for. A waiter further back waits, in addition, for those
/// ahead of it. The priority lapses if it has not been served within 2 ms (4 ms the next time for
/// the same waiter, doubling up to about 1 s), and barging resumes for 1 ms before it is given
/// again: a program in which holders need more permits before they give any back keeps
/// progressing, as it would under plain barging (unless it leaks pending futures: see
/// [`Acquire`]'s "Leaking it"), but more slowly: a waiter whose permits come back
/// late (a request for more than is ever free at once, a holder that keeps its permits for
/// seconds) holds the others back for up to about 1 s at a time (a review measured 1-2 % of the
/// acquires a second that a Mutex + Condvar gate made in such a program; `docs/design.md`, "What
/// the doubling costs"). A FIFO semaphore such as tokio's holds them for the whole wait. A task
/// with priority is served when it runs, where threads wait too: one of them may be blocking its
/// executor's only worker; and permits granted to a task are taken back by a thread that runs
/// short of them before the task has run, at the priority's lapse (as for a thread held back;
/// counted from the first look of such a thread where the task was served as it got priority).
/// Measured figures are in `docs/benchmarks.md`.
///
/// The bound counts from the start of one wait: a loop of short timed acquires starts over at
/// each one and may never get priority. A wait that must look at something now and then (a
/// cancellation flag, pending signals) keeps its place with
/// [`try_acquire_many_while`](Semaphore::try_acquire_many_while).
///
/// While a waiter has priority, [`try_acquire`] fails even though
/// [`available_permits`](Semaphore::available_permits) counts the free permits it is waiting for.
///
/// One waiter held back by the priority sees its lapse: a thread sleeps with a timeout, and a
/// task is woken at the lapse by a timer thread (`futex-sem-timer`) that the crate starts,
/// once per process, the first time a task needs it. Where no thread can be started, the task
/// yields to its executor until the lapse instead.
///
/// [`try_acquire`]: Semaphore::try_acquire
///
/// # Memory ordering
/// Giving a permit back (dropping a [`Permit`], [`release`](Semaphore::release),
/// [`add_permits`](Semaphore::add_permits)) happens-before the acquire that takes that permit.
///
/// # Examples
/// ```
/// use futex_semaphore::Semaphore;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::thread;
///
/// static GATE: Semaphore = Semaphore::new(2);
/// static INSIDE: AtomicUsize = AtomicUsize::new(0);
///
/// thread::scope(|s| {
///     for _ in 0..8 {
///         s.spawn(|| {
///             let _permit = GATE.acquire().unwrap();
///             assert!(INSIDE.fetch_add(1, Ordering::SeqCst) < 2);
///             INSIDE.fetch_sub(1, Ordering::SeqCst);
///         });
///     }
/// });
/// assert_eq!(GATE.available_permits(), 2);
/// ```
pub struct Semaphore {
    raw: RawSemaphore,
}

impl Semaphore {
    /// The most permits a semaphore holds, and the most one request may ask for: `2^31 - 1`.
    ///
    /// [`new`](Semaphore::new), [`add_permits`](Semaphore::add_permits) and
    /// [`release`](Semaphore::release) panic rather than go past it, and so does a request for
    /// more. The total of available and held permits should stay within it too: a permit given
    /// back that would take the count past it is kept out, and panics (silently, during a
    /// panic).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    ///
    /// assert_eq!(Semaphore::MAX_PERMITS, (1 << 31) - 1);
    /// let sem = Semaphore::new(Semaphore::MAX_PERMITS); // the most it can start with
    /// assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS);
    /// ```
    pub const MAX_PERMITS: usize = MAX_PERMITS as usize;

    crate::loom_const_fn! {
        /// Creates a semaphore with `permits` permits.
        ///
        /// # Panics
        /// If `permits` is more than [`MAX_PERMITS`](Semaphore::MAX_PERMITS).
        ///
        /// # Examples
        /// ```
        /// use futex_semaphore::Semaphore;
        ///
        /// static LIMIT: Semaphore = Semaphore::new(4);
        /// assert_eq!(LIMIT.available_permits(), 4);
        /// ```
        #[track_caller]
        #[must_use]
        pub fn new(permits: usize) -> Semaphore {
            if permits > Semaphore::MAX_PERMITS {
                panic!("futex-semaphore: Semaphore::new: more permits than Semaphore::MAX_PERMITS (2^31 - 1)");
            }
            Semaphore { raw: RawSemaphore::new(permits as u64) }
        }
    }

    #[inline]
    pub(crate) fn raw(&self) -> &RawSemaphore {
        &self.raw
    }

    /// Takes `n` permits, waiting until `deadline` (`None`: without limit) for as long as
    /// `keep_waiting` says: while it sleeps, the waiting thread calls `keep_waiting` each time
    /// `every` has passed since it queued (after its brief spin) or since the last call, and a
    /// `false` ends the wait as the deadline would (taking the permits if they have come
    /// meanwhile). An `every` of zero calls it between any two looks at the permits, without sleeping
    /// in between: a busy wait, for as long as the permits do not come. For a wait
    /// that must look at something now and then, such as a cancellation flag or pending signals,
    /// without giving up its place: unlike a loop of
    /// [`try_acquire_many_for`](Semaphore::try_acquire_many_for), the waiter stays queued across
    /// the calls, so the bound of [Fairness](Semaphore#fairness) counts from the start of the
    /// whole wait. `keep_waiting` runs without any lock of the semaphore held; it may use the
    /// semaphore (`try_acquire`, a release, `add_permits`) but must not wait on it: the wait
    /// stays queued while `keep_waiting` runs, so a release may wake or serve it meanwhile, and
    /// those permits wait for `keep_waiting` to return (a blocking acquire there never gets
    /// them). A wait that gets its permits without sleeping never calls it.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] if the deadline passed or `keep_waiting` returned `false`
    /// before the permits came, and [`TryAcquireError::Closed`] if the semaphore is closed.
    ///
    /// # Panics
    /// If `n` is more than [`MAX_PERMITS`](Semaphore::MAX_PERMITS). If `keep_waiting` panics, the
    /// wait ends with that panic, having left the queue and taken nothing (permits that came
    /// while it ran go to others).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::{Semaphore, TryAcquireError};
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::Duration;
    ///
    /// let sem = Semaphore::new(0);
    /// let cancelled = AtomicBool::new(false);
    /// let mut looks = 0;
    /// let result = sem.try_acquire_many_while(1, None, Duration::from_millis(1), || {
    ///     looks += 1;
    ///     if looks == 3 {
    ///         cancelled.store(true, Ordering::Relaxed); // another thread would, in real code
    ///     }
    ///     !cancelled.load(Ordering::Relaxed)
    /// });
    /// assert_eq!(result.unwrap_err(), TryAcquireError::NoPermits);
    /// assert_eq!(looks, 3);
    /// ```
    #[track_caller]
    pub fn try_acquire_many_while(
        &self,
        n: u32,
        deadline: Option<Instant>,
        every: Duration,
        mut keep_waiting: impl FnMut() -> bool,
    ) -> Result<Permit<'_>, TryAcquireError> {
        api::check(n, <Semaphore as Engine>::NAME);
        if n == 0 {
            return if self.is_closed() { Err(TryAcquireError::Closed) } else { Ok(Permit::new(self, 0)) };
        }
        let check = crate::raw::Check { every, keep_waiting: &mut keep_waiting };
        self.raw.acquire_while(n, deadline, check).map(|()| Permit::new(self, n))
    }

    crate::api::acquire_methods! {
        type: Semaphore,
        engine: (),
        permit: Permit, |sem, n, ()| Permit::new(sem, n),
        max: "Semaphore::MAX_PERMITS",
        new: "Semaphore::new", "", "",
        try_note: "While a waiter has priority, the permits held for it do not count as available \
                   here, though `available_permits` counts them ([`Semaphore`'s \
                   Fairness](crate::Semaphore#fairness)).",
    }

    /// Takes one permit like [`acquire`](Semaphore::acquire), for a semaphore in an [`Arc`]; the
    /// [`OwnedPermit`] keeps the semaphore alive and can move to another thread.
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is closed.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(Semaphore::new(1));
    /// let permit = Arc::clone(&sem).acquire_owned().unwrap();
    /// assert_eq!(sem.available_permits(), 0);
    /// drop(permit);
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    #[inline]
    pub fn acquire_owned(self: Arc<Self>) -> Result<OwnedPermit, AcquireError> {
        self.acquire_many_owned(1)
    }

    /// Takes `n` permits like [`acquire_many`](Semaphore::acquire_many), for a semaphore in an
    /// [`Arc`].
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is closed.
    ///
    /// # Panics
    /// If `n` is more than [`MAX_PERMITS`](Semaphore::MAX_PERMITS).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(Semaphore::new(4));
    /// let permit = Arc::clone(&sem).acquire_many_owned(3).unwrap();
    /// assert_eq!(sem.available_permits(), 1);
    /// # drop(permit);
    /// ```
    #[inline]
    #[track_caller]
    pub fn acquire_many_owned(self: Arc<Self>, n: u32) -> Result<OwnedPermit, AcquireError> {
        api::blocking(api::take(&*self, n, Wait::Forever))?;
        Ok(OwnedPermit::new(self, n))
    }

    crate::api::acquire_async_methods! {
        type: Semaphore,
        engine: (),
    }

    /// Takes one permit asynchronously, for a semaphore in an [`Arc`]: the async version of
    /// [`acquire_owned`](Semaphore::acquire_owned). The future owns its `Arc`, so it is
    /// `'static` and can be spawned; the [`OwnedPermit`] can move to another task or thread.
    ///
    /// # Errors
    /// The future resolves to [`AcquireError`] if the semaphore is closed.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let sem = Arc::new(Semaphore::new(1));
    /// let permit = Arc::clone(&sem).acquire_owned_async().await.unwrap();
    /// let task = tokio::spawn(async move {
    ///     let _permit = permit; // held by the task, given back when it ends
    /// });
    /// task.await.unwrap();
    /// assert_eq!(sem.available_permits(), 1);
    /// # }
    /// ```
    #[inline]
    pub fn acquire_owned_async(self: Arc<Self>) -> AcquireOwned {
        AcquireOwned::new(self, 1)
    }

    /// Takes `n` permits asynchronously, for a semaphore in an [`Arc`]: the async version of
    /// [`acquire_many_owned`](Semaphore::acquire_many_owned).
    ///
    /// # Errors
    /// The future resolves to [`AcquireError`] if the semaphore is closed.
    ///
    /// # Panics
    /// Here, not when polled, if `n` is more than [`MAX_PERMITS`](Semaphore::MAX_PERMITS).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(Semaphore::new(4));
    /// let permit = pollster::block_on(Arc::clone(&sem).acquire_many_owned_async(3)).unwrap();
    /// assert_eq!(permit.num_permits(), 3);
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    #[inline]
    #[track_caller]
    pub fn acquire_many_owned_async(self: Arc<Self>, n: u32) -> AcquireOwned {
        api::check(n, <Semaphore as Engine>::NAME);
        AcquireOwned::new(self, n)
    }

    /// Takes one permit if one is available now, for a semaphore in an [`Arc`].
    ///
    /// # Errors
    /// As for [`try_acquire`](Semaphore::try_acquire).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(Semaphore::new(1));
    /// let _permit = Arc::clone(&sem).try_acquire_owned().unwrap();
    /// assert!(Arc::clone(&sem).try_acquire_owned().is_err());
    /// ```
    #[inline]
    pub fn try_acquire_owned(self: Arc<Self>) -> Result<OwnedPermit, TryAcquireError> {
        self.try_acquire_many_owned(1)
    }

    /// Takes `n` permits if all are available now, for a semaphore in an [`Arc`].
    ///
    /// # Errors
    /// As for [`try_acquire_many`](Semaphore::try_acquire_many).
    ///
    /// # Panics
    /// If `n` is more than [`MAX_PERMITS`](Semaphore::MAX_PERMITS).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(Semaphore::new(2));
    /// assert_eq!(sem.try_acquire_many_owned(2).unwrap().num_permits(), 2);
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_acquire_many_owned(self: Arc<Self>, n: u32) -> Result<OwnedPermit, TryAcquireError> {
        api::take(&*self, n, Wait::Never)?;
        Ok(OwnedPermit::new(self, n))
    }

    /// Adds one permit, like Python's `release()`. To give back a permit you hold, drop its
    /// [`Permit`] instead; `release` is for permits that were [`forget`](Permit::forget)-ten or
    /// never taken.
    ///
    /// How `release` differs between the three semaphore types, and why:
    /// [Releasing permits](crate#releasing-permits).
    ///
    /// # Panics
    /// If the available count would pass [`MAX_PERMITS`](Semaphore::MAX_PERMITS).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    ///
    /// let sem = Semaphore::new(0);
    /// sem.release();
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    #[inline]
    #[track_caller]
    pub fn release(&self) {
        if self.raw.add_permits(1, MAX_PERMITS).is_err() {
            past_max_permits(format_args!("release()"));
        }
    }

    /// Adds `n` permits, waking waiters they can serve.
    ///
    /// # Panics
    /// If the available count would pass [`MAX_PERMITS`](Semaphore::MAX_PERMITS); nothing is
    /// added then.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    ///
    /// let sem = Semaphore::new(1);
    /// sem.add_permits(2);
    /// assert_eq!(sem.available_permits(), 3);
    /// ```
    #[track_caller]
    pub fn add_permits(&self, n: usize) {
        let added = u64::try_from(n).map_err(drop).and_then(|n| self.raw.add_permits(n, MAX_PERMITS));
        if added.is_err() {
            past_max_permits(format_args!("add_permits({n})"));
        }
    }

    /// Removes up to `n` of the available permits for good; returns how many it removed.
    /// Held permits are not affected. Permits held back for a waiter with priority count as
    /// available here: taken, that waiter waits for others to come back (its bound, in
    /// "Fairness", counts permits given back, not permits removed).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    ///
    /// let sem = Semaphore::new(3);
    /// assert_eq!(sem.forget_permits(2), 2);
    /// assert_eq!(sem.forget_permits(5), 1);
    /// assert_eq!(sem.available_permits(), 0);
    /// ```
    pub fn forget_permits(&self, n: usize) -> usize {
        self.raw.forget_permits(u64::try_from(n).unwrap_or(u64::MAX)) as usize
    }

    /// The number of permits available now (a snapshot that other threads may change at once).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    ///
    /// let sem = Semaphore::new(2);
    /// let _p = sem.acquire().unwrap();
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    #[inline]
    pub fn available_permits(&self) -> usize {
        self.raw.available() as usize
    }

    /// Closes the semaphore: every waiter wakes and fails with [`AcquireError`] (or
    /// [`TryAcquireError::Closed`]), and so does every acquire after this. Permits already held
    /// stay valid and are given back as usual. Closing twice does nothing more.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    /// use std::thread;
    ///
    /// let sem = Semaphore::new(0);
    /// thread::scope(|s| {
    ///     let waiter = s.spawn(|| sem.acquire().map(drop));
    ///     sem.close();
    ///     assert!(waiter.join().unwrap().is_err());
    /// });
    /// ```
    pub fn close(&self) {
        self.raw.close();
    }

    /// Whether [`close`](Semaphore::close) has been called.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::Semaphore;
    ///
    /// let sem = Semaphore::new(1);
    /// assert!(!sem.is_closed());
    /// sem.close();
    /// assert!(sem.is_closed());
    /// ```
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.raw.is_closed()
    }

    /// Threads and tasks queued to wait now. For tests and diagnostics only: not part of the
    /// API, and it takes the queue's lock.
    #[doc(hidden)]
    pub fn queued_waiters(&self) -> usize {
        self.raw.waiters() as usize
    }

    /// Loom models only: queues a thread's entry for `n` permits whose thread never runs again,
    /// as a child made by `fork` finds the parent's waiters (there must not be `n` free).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn __loom_queue_a_ghost(&self, n: u32) {
        self.raw.queue_a_ghost(n);
    }

    /// Loom models only: the queue as a child made by `fork` finds it (its next section takes
    /// out the threads queued before).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn __loom_fork(&self) {
        self.raw.pretend_forked();
    }
}

impl Engine for Semaphore {
    const NAME: &'static str = "Semaphore";
    type Taken = ();

    #[inline]
    fn is_closed(&self) -> bool {
        self.raw.is_closed()
    }

    #[inline]
    fn nothing(&self) {}

    #[inline]
    fn try_take(&self, n: u32) -> Result<(), TryAcquireError> {
        self.raw.try_acquire(n)
    }

    #[inline]
    fn take(&self, n: u32, deadline: Option<Instant>) -> Result<(), TryAcquireError> {
        self.raw.acquire(n, deadline)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available_permits", &self.available_permits())
            .field("waiters", &self.raw.waiters())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The panic of a `release` or `add_permits` past [`Semaphore::MAX_PERMITS`], naming the call.
#[cold]
#[inline(never)]
#[track_caller]
fn past_max_permits(call: fmt::Arguments<'_>) -> ! {
    panic!(
        "futex-semaphore: {call} would take the count past Semaphore::MAX_PERMITS ({})",
        Semaphore::MAX_PERMITS
    )
}
