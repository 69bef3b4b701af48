//! [`ProcessSemaphore`]: the engine in shared memory, for processes, with recovery of the permits
//! of holders that die. Linux and Android only; not built under loom.
//!
//! - `region`: the layout of the shared region (a table), validated before use.
//! - `holders`: the holder table: who holds how many permits, and recovery (protocol and crash
//!   windows in its header).
//! - `sys`: names, files, mappings, process identity and liveness: every system call.
//! - here: the public type, and sleeping and waking.
//!
//! # Sleeping and waking
//! The engine's fast paths are used as they are: an acquire is the engine's `try_take` (one load,
//! one CAS) plus `held += n` in this process's slot (a cache line only this process writes); no
//! system call. The engine's own blocking path is *not* used: a waiter registers in the engine's
//! state word, and a waiter killed there (or one killed while it owns the engine's starvation
//! handoff, which then blocks every acquire) could never be taken off by anyone. Instead:
//!
//! - A sleeper adds itself to the region's `sleepers` word (and to its slot's `sleeping`, so that
//!   recovery can take it off if it dies), then a `SeqCst` fence, reads the `wake` futex word
//!   (`Acquire`), tries the engine once more, and sleeps on `wake` for at most
//!   [`ProcessSemaphore::RECOVERY_INTERVAL`] (or until its deadline). Whatever woke it, it takes
//!   itself off again and loops.
//! - A release adds its permits to the engine (`Release`), then a `SeqCst` fence, then reads
//!   `sleepers`. Only if that is not zero does it bump `wake` (`Release`) and wake: as many
//!   sleepers as permits, or all of them while someone waits for more than one permit.
//! - No lost wakeup: of the two fences, the one first in the single total order makes its side's
//!   write visible to the other side's read after the other fence. Either the release sees the
//!   sleeper (and bumps the word, which the sleeper's `futex_wait` compares atomically with
//!   `wake`), or the sleeper's attempt sees the permits. Should a count ever be wrong (a crash
//!   between the two counter updates, a corrupt region), every sleeper still re-checks at least
//!   every [`ProcessSemaphore::RECOVERY_INTERVAL`].
//! - After each interval without permits, a sleeper recovers the permits of dead holders.

mod holders;
mod region;
mod sys;

use crate::raw::{Failure, MAX_PERMITS};
use crate::sync::{AtomicU64, Backoff, Ordering::Acquire, Ordering::Relaxed, Ordering::Release, SPIN_ROUNDS};
use crate::sync::{Park, Shared, WAKE_ALL};
use crate::{AcquireError, TryAcquireError};
use holders::{Scope, UNTRACKED};
use region::{ONE_MANY_SLEEPER, ONE_SLEEPER, Region, has_many_sleepers, sleepers};
use std::fmt;
use std::io;
use std::sync::atomic::{Ordering::SeqCst, fence};
use std::time::{Duration, Instant};

/// How often `open_or_create` retries when the name appears and disappears under it.
const OPEN_OR_CREATE_TRIES: usize = 16;

/// A counting semaphore shared between processes, like Python's `multiprocessing.Semaphore`,
/// that gives back the permits of a holder that dies.
///
/// The semaphore lives in shared memory: a file in `/dev/shm` for a named one
/// ([`create`](ProcessSemaphore::create), [`open`](ProcessSemaphore::open)), or a memfd for
/// [`anonymous`](ProcessSemaphore::anonymous), which children made by `fork` share. Every
/// process maps it and works on it directly: uncontended, an acquire is one load and one
/// compare-and-swap on the shared state plus one atomic add on this process's own holder slot,
/// and a release is an atomic subtract on the slot, a compare-and-swap on the state, a fence and
/// a load; neither enters the kernel. Waiters sleep on a process-shared futex, and a release
/// makes a system call only when someone sleeps.
///
/// # Dead holders
/// The semaphore records how many permits each process holds (one slot per process, shared by
/// its threads). If a process exits or is killed (even with `SIGKILL`) while it holds permits,
/// they are given back: by a waiter, after it has waited
/// [`RECOVERY_INTERVAL`](ProcessSemaphore::RECOVERY_INTERVAL) (100 ms) without getting any, or
/// by anyone who calls [`recover`](ProcessSemaphore::recover). A process is known by its pid and
/// its start time, so a reused pid is not mistaken for the holder.
///
/// Limits, documented in full in `docs/process.md`:
/// - At most [`MAX_HOLDER_PROCESSES`](ProcessSemaphore::MAX_HOLDER_PROCESSES) processes hold a
///   slot at once (a slot is kept by its process until it dies, then freed by recovery). A
///   process that finds the table full, even after freeing the slots of dead processes, can still
///   acquire, but its permits are not recoverable ([`ProcessPermit::is_recoverable`]); that
///   handle stays so, a new handle tries again.
/// - A process killed in the window of a few instructions between taking permits and recording
///   them (or between un-recording and giving them back) loses them: the design errs toward
///   fewer permits, never toward more holders than permits.
///   [`add_permits`](ProcessSemaphore::add_permits) restores them.
/// - All processes must share one pid namespace (that of the creator) and see it in `/proc`.
///   A process in another namespace is untracked and never recovers anyone.
/// - `exec` keeps the pid and start time: permits held across `exec` come back when the process
///   exits, not at `exec`.
///
/// # `fork`
/// A handle (named or anonymous) stays usable in a child made by `fork`: the child is a process
/// of its own, with its own slot. A [`ProcessPermit`] copied into the child by `fork` still
/// belongs to the parent: dropping it in the child does nothing.
///
/// # Trust
/// Everyone who can open the region can change the counts. The region is validated when opened,
/// and holds only integers, so whatever another process writes there cannot cause undefined
/// behaviour or a panic here; at worst the counts are wrong or acquires hang. A named region's
/// file shrunk under a mapping (by anyone allowed to write it) makes accesses fault (`SIGBUS`),
/// as with any shared memory.
///
/// # Fairness
/// Acquires may barge: a process that arrives while permits are free takes them, even if others
/// sleep. There is no hand-off to a starving waiter (a waiter that died while it owned one would
/// block everyone).
///
/// # Memory ordering
/// Giving a permit back (dropping a [`ProcessPermit`], [`release`](ProcessSemaphore::release),
/// [`add_permits`](ProcessSemaphore::add_permits)) happens-before the acquire that takes that
/// permit, in whichever process.
///
/// # Platforms
/// Linux and Android only (a futex, `/proc`, memfd). On Android, named semaphores need a
/// `/dev/shm`, which most devices lack; `anonymous` works.
///
/// # Examples
/// ```
/// use futex_semaphore::ProcessSemaphore;
///
/// let name = format!("doc-process-semaphore-{}", std::process::id());
/// let sem = ProcessSemaphore::create(&name, 2)?;
/// // Another process would call `ProcessSemaphore::open(&name)`.
/// let other = ProcessSemaphore::open(&name)?;
/// let permit = sem.acquire().unwrap();
/// assert_eq!(other.available_permits(), 1);
/// drop(permit);
/// assert_eq!(other.available_permits(), 2);
/// ProcessSemaphore::unlink(&name)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ProcessSemaphore {
    map: sys::Mapping,
    /// This process's slot, as `pid << 32 | slot` (`slot` may be [`UNTRACKED`]); 0 before the
    /// first look-up. The pid tells a child made by `fork`, which has a copy of this handle,
    /// that the slot is its parent's.
    cache: AtomicU64,
    name: Option<Box<str>>,
}

/// Who is acquiring: this process and its slot.
#[derive(Debug, Clone, Copy)]
struct Holder {
    pid: u32,
    slot: u32,
}

impl ProcessSemaphore {
    /// The most permits a semaphore holds, and the most one request may ask for: `2^31 - 1`.
    pub const MAX_PERMITS: usize = MAX_PERMITS as usize;

    /// The most processes whose permits are recoverable at once: the size of the holder table.
    pub const MAX_HOLDER_PROCESSES: usize = region::SLOTS;

    /// How long a blocking acquire sleeps at most before it re-checks and looks for dead holders
    /// whose permits it can give back: 100 ms.
    pub const RECOVERY_INTERVAL: Duration = Duration::from_millis(100);

    /// Creates a semaphore named `name` with `permits` permits, readable and writable by this
    /// user only (mode `0600`). Fails if one of that name exists.
    ///
    /// The name is that of a file in `/dev/shm`: not empty, at most 255 bytes, without `/` or
    /// NUL. The semaphore exists until [`unlink`](ProcessSemaphore::unlink)ed (or the machine
    /// restarts), whoever has it open. Other processes see it only once it is initialised.
    ///
    /// # Errors
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for an invalid name or more than
    /// [`MAX_PERMITS`](ProcessSemaphore::MAX_PERMITS) permits,
    /// [`AlreadyExists`](io::ErrorKind::AlreadyExists) if the name is taken, and the errors of
    /// creating and mapping a file.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    /// use std::io::ErrorKind;
    ///
    /// let name = format!("doc-create-{}", std::process::id());
    /// let sem = ProcessSemaphore::create(&name, 3)?;
    /// assert_eq!(sem.available_permits(), 3);
    /// let again = ProcessSemaphore::create(&name, 3).unwrap_err();
    /// assert_eq!(again.kind(), ErrorKind::AlreadyExists);
    /// ProcessSemaphore::unlink(&name)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create(name: &str, permits: u32) -> io::Result<ProcessSemaphore> {
        ProcessSemaphore::create_with_mode(name, permits, sys::DEFAULT_MODE)
    }

    /// Like [`create`](ProcessSemaphore::create), with the file mode `mode` (permission bits,
    /// such as `0o660` to share with the group). The mode is set exactly; the umask does not
    /// apply.
    ///
    /// # Errors
    /// As for [`create`](ProcessSemaphore::create), and
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) if `mode` has bits outside `0o777`.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    /// use std::os::unix::fs::PermissionsExt;
    ///
    /// let name = format!("doc-create-with-mode-{}", std::process::id());
    /// let sem = ProcessSemaphore::create_with_mode(&name, 1, 0o640)?;
    /// let mode = std::fs::metadata(format!("/dev/shm/{name}"))?.permissions().mode();
    /// assert_eq!(mode & 0o777, 0o640);
    /// ProcessSemaphore::unlink(&name)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create_with_mode(name: &str, permits: u32, mode: u32) -> io::Result<ProcessSemaphore> {
        check_permits(permits)?;
        let map = sys::create(name, permits, mode, &sys::identity())?;
        Ok(ProcessSemaphore::from_map(map, Some(name)))
    }

    /// Opens the semaphore named `name`, created by this or another process.
    ///
    /// # Errors
    /// [`NotFound`](io::ErrorKind::NotFound) if there is none,
    /// [`InvalidData`](io::ErrorKind::InvalidData) if the file of that name is not a semaphore of
    /// this layout (another program's file, an older version's layout, a truncated file),
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for an invalid name,
    /// [`PermissionDenied`](io::ErrorKind::PermissionDenied) if its mode does not let this user
    /// read and write it.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    /// use std::io::ErrorKind;
    ///
    /// let name = format!("doc-open-{}", std::process::id());
    /// assert_eq!(ProcessSemaphore::open(&name).unwrap_err().kind(), ErrorKind::NotFound);
    /// let created = ProcessSemaphore::create(&name, 2)?;
    /// let opened = ProcessSemaphore::open(&name)?;
    /// let _permit = opened.acquire().unwrap();
    /// assert_eq!(created.available_permits(), 1);
    /// ProcessSemaphore::unlink(&name)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open(name: &str) -> io::Result<ProcessSemaphore> {
        let map = sys::open(name)?;
        Ok(ProcessSemaphore::from_map(map, Some(name)))
    }

    /// Opens the semaphore named `name`, or creates it with `permits` permits (mode `0600`) if
    /// there is none. Of several processes racing to do this, one creates it and the others
    /// open it.
    ///
    /// # Errors
    /// As for [`open`](ProcessSemaphore::open) and [`create`](ProcessSemaphore::create).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let name = format!("doc-open-or-create-{}", std::process::id());
    /// let first = ProcessSemaphore::open_or_create(&name, 4)?;
    /// let second = ProcessSemaphore::open_or_create(&name, 99)?; // opens: 99 is not used
    /// assert_eq!(second.available_permits(), 4);
    /// ProcessSemaphore::unlink(&name)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open_or_create(name: &str, permits: u32) -> io::Result<ProcessSemaphore> {
        check_permits(permits)?;
        for _ in 0..OPEN_OR_CREATE_TRIES {
            match ProcessSemaphore::open(name) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                opened => return opened,
            }
            match ProcessSemaphore::create(name, permits) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                created => return created,
            }
        }
        Err(io::Error::other(format!(
            "semaphore {name:?} kept being created and removed while it was being opened"
        )))
    }

    /// Removes the name `name`. Processes that have the semaphore open keep using it; it is
    /// freed when the last of them closes it. A new semaphore may then be created under the name.
    ///
    /// # Errors
    /// [`NotFound`](io::ErrorKind::NotFound) if there is no such name,
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for an invalid name.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let name = format!("doc-unlink-{}", std::process::id());
    /// let sem = ProcessSemaphore::create(&name, 1)?;
    /// ProcessSemaphore::unlink(&name)?;
    /// assert!(ProcessSemaphore::open(&name).is_err());
    /// assert_eq!(sem.available_permits(), 1); // still usable
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn unlink(name: &str) -> io::Result<()> {
        sys::unlink(name)
    }

    /// Creates a semaphore without a name, in a memfd. It is shared with the children this
    /// process makes with `fork` (and theirs), not with unrelated processes.
    ///
    /// # Errors
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for more than
    /// [`MAX_PERMITS`](ProcessSemaphore::MAX_PERMITS) permits, and the errors of making and
    /// mapping the memfd.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(2)?;
    /// let permit = sem.acquire_many(2).unwrap();
    /// assert!(sem.try_acquire().is_err());
    /// drop(permit);
    /// assert_eq!(sem.available_permits(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn anonymous(permits: u32) -> io::Result<ProcessSemaphore> {
        check_permits(permits)?;
        let map = sys::anonymous(permits, &sys::identity())?;
        Ok(ProcessSemaphore::from_map(map, None))
    }

    fn from_map(map: sys::Mapping, name: Option<&str>) -> ProcessSemaphore {
        ProcessSemaphore { map, cache: AtomicU64::new(0), name: name.map(Box::from) }
    }

    #[inline]
    fn region(&self) -> &Region {
        self.map.region()
    }

    /// The name, or `None` for an [`anonymous`](ProcessSemaphore::anonymous) semaphore.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// assert_eq!(ProcessSemaphore::anonymous(1)?.name(), None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Takes one permit, blocking until one is available.
    ///
    /// While it waits, it gives back the permits of holders that died, every
    /// [`RECOVERY_INTERVAL`](ProcessSemaphore::RECOVERY_INTERVAL) (100 ms) without permits.
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is closed, before or while waiting.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(1)?;
    /// let permit = sem.acquire().unwrap();
    /// assert_eq!(sem.available_permits(), 0);
    /// drop(permit);
    /// assert_eq!(sem.available_permits(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn acquire(&self) -> Result<ProcessPermit<'_>, AcquireError> {
        self.acquire_many(1)
    }

    /// Takes `n` permits at once, blocking until all `n` are available. `n == 0` succeeds at once
    /// (unless closed) with an empty permit.
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is closed, before or while waiting.
    ///
    /// # Panics
    /// If `n` is more than [`MAX_PERMITS`](ProcessSemaphore::MAX_PERMITS).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(3)?;
    /// let permit = sem.acquire_many(3).unwrap();
    /// assert_eq!(permit.num_permits(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    #[track_caller]
    pub fn acquire_many(&self, n: u32) -> Result<ProcessPermit<'_>, AcquireError> {
        check_request(n);
        if n == 0 {
            return if self.is_closed() { Err(AcquireError) } else { Ok(self.empty_permit()) };
        }
        match self.acquire_raw(n, None) {
            Ok(me) => Ok(ProcessPermit::new(self, n, me)),
            Err(_) => Err(AcquireError),
        }
    }

    /// Takes one permit if one is available now.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] if none is, [`TryAcquireError::Closed`] if closed.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::{ProcessSemaphore, TryAcquireError};
    ///
    /// let sem = ProcessSemaphore::anonymous(1)?;
    /// let _permit = sem.try_acquire().unwrap();
    /// assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<ProcessPermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if all `n` are available now.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] if fewer are, [`TryAcquireError::Closed`] if closed.
    ///
    /// # Panics
    /// If `n` is more than [`MAX_PERMITS`](ProcessSemaphore::MAX_PERMITS).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(2)?;
    /// assert!(sem.try_acquire_many(3).is_err());
    /// assert_eq!(sem.try_acquire_many(2).unwrap().num_permits(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_acquire_many(&self, n: u32) -> Result<ProcessPermit<'_>, TryAcquireError> {
        check_request(n);
        if n == 0 {
            return if self.is_closed() { Err(TryAcquireError::Closed) } else { Ok(self.empty_permit()) };
        }
        let me = self.holder();
        let region = self.region();
        region.sem.try_acquire(n).map_err(try_error)?;
        region.record(me.slot, n);
        Ok(ProcessPermit::new(self, n, me))
    }

    /// Takes one permit, waiting at most `timeout` for it. `Duration::MAX` (or any timeout past
    /// what `Instant` can represent) waits without limit.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] when the timeout passes, [`TryAcquireError::Closed`] if
    /// closed before or while waiting.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::{ProcessSemaphore, TryAcquireError};
    /// use std::time::Duration;
    ///
    /// let sem = ProcessSemaphore::anonymous(0)?;
    /// let err = sem.try_acquire_for(Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err, TryAcquireError::NoPermits);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn try_acquire_for(&self, timeout: Duration) -> Result<ProcessPermit<'_>, TryAcquireError> {
        self.try_acquire_many_for(1, timeout)
    }

    /// Takes one permit, waiting for it until `deadline` at the latest. A deadline in the past
    /// makes this one non-blocking attempt.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] when the deadline passes, [`TryAcquireError::Closed`] if
    /// closed before or while waiting.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    /// use std::time::{Duration, Instant};
    ///
    /// let sem = ProcessSemaphore::anonymous(1)?;
    /// assert!(sem.try_acquire_until(Instant::now() + Duration::from_secs(1)).is_ok());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn try_acquire_until(&self, deadline: Instant) -> Result<ProcessPermit<'_>, TryAcquireError> {
        self.try_acquire_many_until(1, deadline)
    }

    /// Takes `n` permits, waiting at most `timeout` for all of them. See
    /// [`try_acquire_for`](ProcessSemaphore::try_acquire_for).
    ///
    /// # Errors
    /// As for [`try_acquire_for`](ProcessSemaphore::try_acquire_for).
    ///
    /// # Panics
    /// If `n` is more than [`MAX_PERMITS`](ProcessSemaphore::MAX_PERMITS).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    /// use std::time::Duration;
    ///
    /// let sem = ProcessSemaphore::anonymous(1)?;
    /// assert!(sem.try_acquire_many_for(2, Duration::from_millis(5)).is_err());
    /// assert_eq!(sem.available_permits(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn try_acquire_many_for(
        &self,
        n: u32,
        timeout: Duration,
    ) -> Result<ProcessPermit<'_>, TryAcquireError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.try_acquire_many_until(n, deadline),
            None => self.acquire_many(n).map_err(TryAcquireError::from),
        }
    }

    /// Takes `n` permits, waiting for all of them until `deadline` at the latest. See
    /// [`try_acquire_until`](ProcessSemaphore::try_acquire_until).
    ///
    /// # Errors
    /// As for [`try_acquire_until`](ProcessSemaphore::try_acquire_until).
    ///
    /// # Panics
    /// If `n` is more than [`MAX_PERMITS`](ProcessSemaphore::MAX_PERMITS).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    /// use std::time::Instant;
    ///
    /// let sem = ProcessSemaphore::anonymous(3)?;
    /// let permit = sem.try_acquire_many_until(3, Instant::now()).unwrap();
    /// assert_eq!(permit.num_permits(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn try_acquire_many_until(
        &self,
        n: u32,
        deadline: Instant,
    ) -> Result<ProcessPermit<'_>, TryAcquireError> {
        check_request(n);
        if n == 0 {
            return self.try_acquire_many(0);
        }
        match self.acquire_raw(n, Some(deadline)) {
            Ok(me) => Ok(ProcessPermit::new(self, n, me)),
            Err(failure) => Err(try_error(failure)),
        }
    }

    /// Adds one permit, like Python's `release()`: for signalling between processes, or for
    /// permits that were [`forget`](ProcessPermit::forget)-ten. To give back a permit you hold,
    /// drop its [`ProcessPermit`] instead.
    ///
    /// # Errors
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) if the count would pass
    /// [`MAX_PERMITS`](ProcessSemaphore::MAX_PERMITS); nothing is added then.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(0)?;
    /// sem.release()?;
    /// assert_eq!(sem.available_permits(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn release(&self) -> io::Result<()> {
        self.add_permits(1)
    }

    /// Adds `n` permits, waking sleepers they can serve. Also the way to restore permits lost to
    /// a crash that recovery could not undo.
    ///
    /// # Errors
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) if the count would pass
    /// [`MAX_PERMITS`](ProcessSemaphore::MAX_PERMITS); nothing is added then.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(1)?;
    /// sem.add_permits(2)?;
    /// assert_eq!(sem.available_permits(), 3);
    /// assert!(sem.add_permits(ProcessSemaphore::MAX_PERMITS).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_permits(&self, n: usize) -> io::Result<()> {
        let added =
            u64::try_from(n).map_err(drop).and_then(|n| self.region().sem.add_permits(n, MAX_PERMITS));
        match added {
            Ok(()) => {
                self.wake(n as u64);
                Ok(())
            }
            Err(()) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "add_permits({n}) would take the count past ProcessSemaphore::MAX_PERMITS ({})",
                    ProcessSemaphore::MAX_PERMITS
                ),
            )),
        }
    }

    /// The number of permits available now (a snapshot that other processes may change at once).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(2)?;
    /// let _permit = sem.acquire().unwrap();
    /// assert_eq!(sem.available_permits(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn available_permits(&self) -> usize {
        self.region().sem.available() as usize
    }

    /// Gives back the permits of holders that died; returns how many it gave back.
    ///
    /// Blocking acquires do this by themselves while they wait; call it to restore the count
    /// without waiting (say, in a supervisor after a worker crashed). It also frees the holder
    /// slots of dead processes. Of several processes recovering the same dead holder, one gives
    /// its permits back.
    ///
    /// # Errors
    /// [`Unsupported`](io::ErrorKind::Unsupported) if this process is in another pid namespace
    /// than the semaphore's creator, so that its pids mean something else.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(2)?;
    /// let _permit = sem.acquire().unwrap();
    /// assert_eq!(sem.recover()?, 0); // this process is alive: nothing to recover
    /// assert_eq!(sem.available_permits(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recover(&self) -> io::Result<usize> {
        let me = sys::identity();
        let region = self.region();
        if !region.tracks(&me) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this process is in another pid namespace than the semaphore's creator: \
                 it cannot tell which holders are alive",
            ));
        }
        let recovered = region.recover(&me, Scope::All);
        if recovered > 0 {
            self.wake(recovered);
        }
        Ok(recovered as usize)
    }

    /// Closes the semaphore for every process: every acquire from now on fails, and every sleeper
    /// wakes to fail. Permits can still be given back. A named semaphore stays closed until it is
    /// unlinked and created anew.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::{AcquireError, ProcessSemaphore};
    ///
    /// let sem = ProcessSemaphore::anonymous(1)?;
    /// sem.close();
    /// assert_eq!(sem.acquire().unwrap_err(), AcquireError);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(&self) {
        let region = self.region();
        region.sem.close();
        // Release: pairs with the Acquire load of the word by a sleeper.
        region.wake.bump(Release);
        Shared::wake(&region.wake, WAKE_ALL);
    }

    /// Whether [`close`](ProcessSemaphore::close) has been called (by any process).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(1)?;
    /// assert!(!sem.is_closed());
    /// sem.close();
    /// assert!(sem.is_closed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.region().sem.is_closed()
    }

    /// This process's slot, from the handle's cache when the cache is this process's.
    #[inline]
    fn holder(&self) -> Holder {
        let pid = sys::identity().pid();
        let cached = self.cache.load(Relaxed);
        if cached != 0 && (cached >> 32) as u32 == pid {
            return Holder { pid, slot: cached as u32 };
        }
        self.holder_slow()
    }

    #[cold]
    fn holder_slow(&self) -> Holder {
        let me = sys::identity();
        let slot = self.region().claim_slot(&me);
        // Relaxed: a process-local hint; two threads that race store the same pid.
        self.cache.store(u64::from(me.pid()) << 32 | u64::from(slot), Relaxed);
        Holder { pid: me.pid(), slot }
    }

    fn empty_permit(&self) -> ProcessPermit<'_> {
        ProcessPermit { sem: self, permits: 0, slot: UNTRACKED, pid: 0 }
    }

    /// Takes `n > 0` permits and records them in this process's slot.
    #[inline]
    fn acquire_raw(&self, n: u32, deadline: Option<Instant>) -> Result<Holder, Failure> {
        let me = self.holder();
        let region = self.region();
        if !region.sem.try_take(n) {
            self.acquire_slow(n, deadline, me)?;
        }
        region.record(me.slot, n);
        Ok(me)
    }

    #[cold]
    fn acquire_slow(&self, n: u32, deadline: Option<Instant>, me: Holder) -> Result<(), Failure> {
        let region = self.region();
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return region.sem.try_acquire(n);
        }
        // Spin on attempts for a bounded time while nobody sleeps.
        let backoff = Backoff::new();
        for _ in 0..SPIN_ROUNDS {
            match region.sem.try_acquire(n) {
                Err(Failure::NoPermits) => {}
                done => return done,
            }
            if sleepers(region.sleepers.load(Relaxed)) != 0 {
                break;
            }
            backoff.spin();
        }
        let unit = if n > 1 { ONE_MANY_SLEEPER } else { ONE_SLEEPER };
        let slot = region.slot(me.slot);
        let mut next_scan = Instant::now() + ProcessSemaphore::RECOVERY_INTERVAL;
        loop {
            // Register: the total first, then the slot, so that the slot never counts more than
            // the total holds for it (see `Region::recover_slot`).
            region.sleepers.fetch_add(unit, Relaxed);
            if let Some(slot) = slot {
                slot.sleeping.fetch_add(unit, Relaxed);
            }
            // SeqCst: pairs with the fence in `wake` (see the module header: no lost wakeup).
            fence(SeqCst);
            // Acquire: pairs with the Release bump in `wake_slow`.
            let seen = region.wake.load(Acquire);
            let attempt = region.sem.try_acquire(n);
            if attempt == Err(Failure::NoPermits) {
                let until = deadline.map_or(next_scan, |d| d.min(next_scan));
                // Whatever the outcome, the loop re-checks the state and the clock.
                let _ = Shared::wait(&region.wake, seen, Some(until));
            }
            if let Some(slot) = slot {
                slot.sleeping.fetch_sub(unit, Relaxed);
            }
            region.sleepers.fetch_sub(unit, Relaxed);
            if attempt != Err(Failure::NoPermits) {
                return attempt;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return region.sem.try_acquire(n);
            }
            if now >= next_scan {
                let recovered = region.recover(&sys::identity(), Scope::Holding);
                if recovered > 0 {
                    self.wake(recovered);
                }
                next_scan = now + ProcessSemaphore::RECOVERY_INTERVAL;
            }
        }
    }

    /// Gives back `n` permits recorded in `slot` by process `pid`.
    #[inline]
    fn give_back(&self, n: u32, slot: u32, pid: u32) {
        if sys::identity().pid() != pid {
            // A copy made by `fork`: the permits are the parent's.
            return;
        }
        let region = self.region();
        // Un-record first: a crash between the two steps loses the permits rather than giving
        // them out twice (holders.rs, "Crash windows").
        region.unrecord(slot, n);
        // Not `RawSemaphore::release`: it panics past MAX_PERMITS, which a corrupt region can
        // cause. `add_permits` reports it instead, and the permits are dropped then.
        if region.sem.add_permits(u64::from(n), MAX_PERMITS).is_ok() {
            self.wake(u64::from(n));
        }
    }

    /// After `added` permits were added: wakes sleepers they can serve, if there are any.
    #[inline]
    fn wake(&self, added: u64) {
        let region = self.region();
        // SeqCst: pairs with the fence in `acquire_slow`: either this load sees a sleeper's
        // registration, or that sleeper's attempt sees the permits just added.
        fence(SeqCst);
        let s = region.sleepers.load(Relaxed);
        if sleepers(s) != 0 {
            self.wake_slow(s, added);
        }
    }

    #[cold]
    fn wake_slow(&self, s: u64, added: u64) {
        let region = self.region();
        // Release: pairs with the Acquire load of the word by a sleeper.
        region.wake.bump(Release);
        let n = if has_many_sleepers(s) {
            // Sizes differ: nobody knows which sleeper the permits satisfy.
            WAKE_ALL
        } else {
            u32::try_from(added.min(sleepers(s))).unwrap_or(WAKE_ALL)
        };
        Shared::wake(&region.wake, n);
    }
}

impl fmt::Debug for ProcessSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessSemaphore")
            .field("name", &self.name)
            .field("available_permits", &self.available_permits())
            .field("sleepers", &sleepers(self.region().sleepers.load(Relaxed)))
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Permits taken from a [`ProcessSemaphore`], given back when dropped.
///
/// Dropping it returns the permits, also while a panic unwinds. If the process dies instead
/// (killed, aborted, `exit` without running destructors), the permits are recorded as this
/// process's and are given back by recovery, unless the holder table was full
/// ([`is_recoverable`](ProcessPermit::is_recoverable)). A copy of a permit that a child got
/// through `fork` belongs to the parent: dropping it in the child does nothing.
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
    sem: &'a ProcessSemaphore,
    permits: u32,
    /// The slot the permits are recorded in, or [`UNTRACKED`].
    slot: u32,
    /// The process that took them.
    pid: u32,
}

impl<'a> ProcessPermit<'a> {
    fn new(sem: &'a ProcessSemaphore, permits: u32, me: Holder) -> ProcessPermit<'a> {
        ProcessPermit { sem, permits, slot: me.slot, pid: me.pid }
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
        if self.permits > 0 && sys::identity().pid() == self.pid {
            self.sem.region().unrecord(self.slot, self.permits);
        }
        self.permits = 0;
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
    /// this process dies. `false` when the table was full (more than
    /// [`MAX_HOLDER_PROCESSES`](ProcessSemaphore::MAX_HOLDER_PROCESSES) processes at once), when
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
        self.slot != UNTRACKED
    }
}

impl Drop for ProcessPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.permits > 0 {
            self.sem.give_back(self.permits, self.slot, self.pid);
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

fn check_permits(permits: u32) -> io::Result<()> {
    if permits as usize > ProcessSemaphore::MAX_PERMITS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{permits} permits is more than ProcessSemaphore::MAX_PERMITS ({})",
                ProcessSemaphore::MAX_PERMITS
            ),
        ));
    }
    Ok(())
}

#[inline]
#[track_caller]
fn check_request(n: u32) {
    if n as usize > ProcessSemaphore::MAX_PERMITS {
        request_too_large(n);
    }
}

#[cold]
#[track_caller]
fn request_too_large(n: u32) -> ! {
    panic!(
        "futex-semaphore: a request for {n} permits is more than ProcessSemaphore::MAX_PERMITS ({}) and could never be granted",
        ProcessSemaphore::MAX_PERMITS
    )
}

fn try_error(failure: Failure) -> TryAcquireError {
    match failure {
        Failure::Closed => TryAcquireError::Closed,
        Failure::NoPermits => TryAcquireError::NoPermits,
    }
}
