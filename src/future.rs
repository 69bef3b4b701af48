//! The async acquires' futures: [`Acquire`] (borrows the semaphore) and [`AcquireOwned`] (holds
//! an `Arc` of it). Both are thin: the protocol is the engine's [`AsyncWaiter`].

use crate::raw::task::AsyncWaiter;
use crate::{AcquireError, OwnedPermit, Permit, Semaphore};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The future of [`Semaphore::acquire_async`] and [`Semaphore::acquire_many_async`] (and of
/// [`BoundedSemaphore`](crate::BoundedSemaphore)'s): resolves to a [`Permit`] once the permits
/// are taken, or to [`AcquireError`] if the semaphore is closed.
///
/// It waits alongside blocking [`acquire`](Semaphore::acquire)s on the same semaphore, and a
/// release wakes whichever kind is waiting. It is `Send`, `Unpin`, and needs no particular
/// runtime.
///
/// # Cancellation
/// Dropping it before it completes is safe at any point: it holds no permits until it returns
/// them in a [`Permit`], and dropping it takes it out of the waiter queue; if a release had
/// already woken it, the wake passes to the waiters behind it, and if it had priority, the
/// priority ends (the next waiter to have waited 1 ms at the head gets it), so nobody is left
/// waiting on free permits. That makes it fit for `select!` and timeouts.
///
/// # Leaking it
/// A pending future that is leaked (`mem::forget`, or a task that is never polled or dropped
/// again) keeps its place in the queue. Nothing is unsafe, but it costs the others as a leaked
/// [`Permit`] would: if a release had woken it, later releases count its request as on its way
/// to it and wake that many permits' worth fewer tasks (a task asleep behind it gets permits by
/// barging, or when more come back; threads do not count it, and are woken for permits that are
/// free); and once it has waited 1 ms at the head of the queue it gets priority: where no thread
/// waits, the next permits to come back are granted to it, up to its request, and are lost with
/// it unless a thread runs short of permits before the priority's lapse and takes them back then;
/// where threads wait, they are held for it until the priority lapses. A waiter held back
/// with it sees the lapse (a thread sleeps until then; a task is woken then by the crate's
/// timer), after which barging resumes. Drop futures you stop polling (tokio's semaphore, FIFO,
/// blocks every later waiter behind a leaked one).
///
/// # Panics
/// Polling it again after it completed panics.
///
/// # Examples
/// ```
/// use futex_semaphore::Semaphore;
///
/// let sem = Semaphore::new(1);
/// let permit = pollster::block_on(sem.acquire_async()).unwrap();
/// assert_eq!(sem.available_permits(), 0);
/// drop(permit);
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a> {
    sem: &'a Semaphore,
    waiter: AsyncWaiter,
}

impl<'a> Acquire<'a> {
    #[inline]
    pub(crate) fn new(sem: &'a Semaphore, n: u32) -> Acquire<'a> {
        Acquire { sem, waiter: AsyncWaiter::new(n) }
    }
}

impl<'a> Future for Acquire<'a> {
    type Output = Result<Permit<'a>, AcquireError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let n = this.waiter.permits();
        match this.waiter.poll(this.sem.raw(), cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(Permit::new(this.sem, n))),
            Poll::Ready(Err(_)) => Poll::Ready(Err(AcquireError)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Acquire<'_> {
    #[inline]
    fn drop(&mut self) {
        self.waiter.cancel(self.sem.raw());
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("permits", &self.waiter.permits())
            .field("state", &self.waiter.phase())
            .finish_non_exhaustive()
    }
}

/// The future of [`Semaphore::acquire_owned_async`] and [`Semaphore::acquire_many_owned_async`]:
/// like [`Acquire`], for a semaphore in an [`Arc`], resolving to an [`OwnedPermit`]. It does not
/// borrow, so it is `'static` and can be spawned.
///
/// # Cancellation
/// As for [`Acquire`]: dropping it early loses no permit and no wakeup.
///
/// # Panics
/// Polling it again after it completed panics.
///
/// # Examples
/// ```
/// use futex_semaphore::Semaphore;
/// use std::sync::Arc;
///
/// let sem = Arc::new(Semaphore::new(2));
/// let permit = pollster::block_on(Arc::clone(&sem).acquire_owned_async()).unwrap();
/// assert_eq!(sem.available_permits(), 1);
/// drop(permit);
/// assert_eq!(sem.available_permits(), 2);
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwned {
    /// `None` once the permits (and the `Arc`) went into the `OwnedPermit`.
    sem: Option<Arc<Semaphore>>,
    waiter: AsyncWaiter,
}

impl AcquireOwned {
    #[inline]
    pub(crate) fn new(sem: Arc<Semaphore>, n: u32) -> AcquireOwned {
        AcquireOwned { sem: Some(sem), waiter: AsyncWaiter::new(n) }
    }
}

impl Future for AcquireOwned {
    type Output = Result<OwnedPermit, AcquireError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let n = this.waiter.permits();
        let Some(sem) = this.sem.as_deref() else {
            panic!("futex-semaphore: an acquire future was polled after it completed");
        };
        let result = match this.waiter.poll(sem.raw(), cx) {
            Poll::Ready(result) => result.map_err(|_| AcquireError),
            Poll::Pending => return Poll::Pending,
        };
        let sem = this.sem.take().expect("checked above");
        Poll::Ready(result.map(|()| OwnedPermit::new(sem, n)))
    }
}

impl Drop for AcquireOwned {
    #[inline]
    fn drop(&mut self) {
        if let Some(sem) = &self.sem {
            self.waiter.cancel(sem.raw());
        }
    }
}

impl fmt::Debug for AcquireOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned")
            .field("permits", &self.waiter.permits())
            .field("state", &self.waiter.phase())
            .finish_non_exhaustive()
    }
}
