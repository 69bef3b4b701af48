//! [`ProcessSemaphore`]: a semaphore in shared memory, for processes, with exact recovery of
//! the permits of holders that die. Linux and Android only; not built under loom (but
//! `protocol.rs` is, for `tests/loom_process.rs`).
//!
//! - `protocol`: the state word and the announce/complete protocol on the holders' lanes: every
//!   take and give-back, and how a recoverer settles a dead process's half-done ones. Its
//!   submodule `protocol::parking` (`parking.rs`): the sleep protocol on the region's words.
//!   Both build under loom.
//! - `region`: the layout of the shared region (a table), validated before use.
//! - `holders`: the holder table: claiming a slot, recording through the protocol, recovery.
//! - `lease`: which lane of the slot a thread announces in (its own, or a shared one).
//! - `sleep`: the contended acquire's loop (spin, sleep through `parking`, recover).
//! - `sys`: names, files, mappings, process identity and liveness: every system call.
//! - `create`: creating and opening (the constructors and [`ProcessSemaphoreBuilder`]).
//! - `permit`: [`ProcessPermit`].
//! - here: the public type, acquiring and releasing.
//!
//! The uncontended acquire is: a thread-local load (the thread's lane; first, as in a shared
//! library it is a call), two loads of process-local memory (the identity page, the handle's
//! cache), two of the own slot (is the cached slot still this process incarnation's?), a load
//! of the state word, a store that announces the take in the thread's own lane, the state
//! word's CAS, and two stores to the lane; no system call
//! and one read-modify-write. (A thread without a lane of its own, past the fourth of a process,
//! reserves a shared lane with a CAS instead.) A release is the same, and wakes only if the
//! state word its CAS replaced had the `SLEEPING` flag (no fence, no other word read).
mod create;
mod holders;
mod lease;
mod permit;
pub(crate) mod protocol;
mod region;
mod sleep;
mod sys;

pub use create::ProcessSemaphoreBuilder;
pub use permit::ProcessPermit;

use crate::api::Engine;
use crate::raw::MAX_PERMITS;
use crate::sync::{AtomicU64, Ordering::Acquire, Ordering::Release};
use crate::{AcquireError, TryAcquireError};
use holders::{Scope, UNTRACKED};
use protocol::Refused;
use protocol::parking::sleepers;
use region::{Slot, View};
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

/// A counting semaphore shared between processes, like Python's `multiprocessing.Semaphore`,
/// that gives back the permits of a holder that dies.
///
/// The semaphore lives in shared memory: a file in `/dev/shm` for a named one
/// ([`create`](ProcessSemaphore::create), [`open`](ProcessSemaphore::open)), or a memfd for
/// [`anonymous`](ProcessSemaphore::anonymous), which children made by `fork` share. Every
/// process maps it and works on it directly: uncontended, an acquire is one load and one
/// compare-and-swap on the shared state plus three plain stores on this process's own holder
/// slot (a compare-and-swap and two stores for a thread that found the four lanes a thread can
/// own all taken when it first acquired), and a release is the same; neither enters the
/// kernel. Waiters sleep on a process-shared futex, and a release
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
/// - At most [`holder_slots`](ProcessSemaphore::holder_slots) processes (128 unless the
///   [`builder`](ProcessSemaphore::builder) chose another size) hold a slot at once (a slot is
///   kept by its process until it dies, then freed by recovery). A process that finds the table
///   full, even after freeing the slots of dead processes, can still acquire, but its permits
///   are not recoverable ([`ProcessPermit::is_recoverable`]) and while it waits it polls every
///   2 ms instead of being woken; that handle stays so, a new handle tries again.
/// - A take or a give-back is recorded in the same atomic step that changes the count (an
///   announce/complete protocol): a process killed at any instruction loses no permit and
///   creates none.
/// - All processes must share one pid namespace (that of the creator) and see it in `/proc`.
///   A process in another namespace is untracked and never recovers anyone.
/// - `exec` keeps the pid and start time: permits held across `exec` come back when the new
///   image first acquires through a handle (it recovers the earlier image's holder slot), or when
///   the process exits.
///
/// # `fork`
/// A handle (named or anonymous) stays usable in a child made by `fork`: the child is a process
/// of its own, with its own slot. A [`ProcessPermit`] copied into the child by `fork` still
/// belongs to the parent: dropping it in the child (or in any later process, even one that
/// got the parent's pid) does nothing.
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
    /// This process's slot, as `nonce << 32 | slot` with the low 32 bits of the process
    /// incarnation's nonce (`slot` may be [`UNTRACKED`]); 0 before the first look-up. The nonce
    /// tells a child made by `fork`, which has a copy of this handle, that the slot is its
    /// parent's.
    cache: AtomicU64,
    name: Option<Box<str>>,
}

/// Who is acquiring: this process incarnation and its slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Holder {
    slot: u32,
    nonce: u64,
}

impl ProcessSemaphore {
    /// The most permits a semaphore holds, and the most one request may ask for: `2^31 - 1`.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// assert_eq!(ProcessSemaphore::MAX_PERMITS, (1 << 31) - 1);
    /// let max = u32::try_from(ProcessSemaphore::MAX_PERMITS).unwrap();
    /// assert!(ProcessSemaphore::anonymous(max + 1).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub const MAX_PERMITS: usize = MAX_PERMITS as usize;

    /// The size of the holder table that [`create`](ProcessSemaphore::create) and the other
    /// constructors make: 128 slots, so up to 128 processes at once hold permits that come back if
    /// they die (one more is untracked: its acquires work, but what it holds is not given back if
    /// it dies); the
    /// [`builder`](ProcessSemaphore::builder) makes a table of another size, up to
    /// [`MAX_HOLDER_SLOTS`](ProcessSemaphore::MAX_HOLDER_SLOTS).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(1)?;
    /// assert_eq!(sem.holder_slots(), ProcessSemaphore::DEFAULT_HOLDER_SLOTS);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub const DEFAULT_HOLDER_SLOTS: usize = region::DEFAULT_SLOTS;

    /// The largest holder table a semaphore can have: 16383 slots.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let most = ProcessSemaphore::MAX_HOLDER_SLOTS;
    /// assert!(ProcessSemaphore::builder().holder_slots(most).anonymous(1).is_ok());
    /// assert!(ProcessSemaphore::builder().holder_slots(most + 1).anonymous(1).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub const MAX_HOLDER_SLOTS: usize = region::MAX_SLOTS;

    /// Options for creating a semaphore: the size of its holder table and its file mode.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::builder().holder_slots(1024).anonymous(4)?;
    /// assert_eq!(sem.holder_slots(), 1024);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn builder() -> ProcessSemaphoreBuilder {
        ProcessSemaphoreBuilder { slots: region::DEFAULT_SLOTS, mode: sys::DEFAULT_MODE }
    }

    /// The size of the holder table: how many processes at once can hold permits that are given
    /// back if they die. Set at creation ([`builder`](ProcessSemaphore::builder)); 128 by
    /// default.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// assert_eq!(ProcessSemaphore::anonymous(1)?.holder_slots(), 128);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn holder_slots(&self) -> usize {
        self.region().slots.len()
    }

    /// How long a blocking acquire sleeps at most before it re-checks and looks for dead holders
    /// whose permits it can give back: 100 ms.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    /// use std::time::Duration;
    ///
    /// assert_eq!(ProcessSemaphore::RECOVERY_INTERVAL, Duration::from_millis(100));
    /// ```
    pub const RECOVERY_INTERVAL: Duration = Duration::from_millis(100);

    #[inline]
    fn region(&self) -> View<'_> {
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

    crate::api::acquire_methods! {
        type: ProcessSemaphore,
        engine: (),
        permit: ProcessPermit, |sem, n, me| ProcessPermit::new(sem, n, me),
        max: "ProcessSemaphore::MAX_PERMITS",
        new: "ProcessSemaphore::anonymous", "?", "# Ok::<(), std::io::Error>(())",
        acquire_note: "While it waits, it gives back the permits of holders that died, every \
                       [`RECOVERY_INTERVAL`](ProcessSemaphore::RECOVERY_INTERVAL) (100 ms) \
                       without permits.",
    }

    /// Takes one permit as a bare count, as `sem_trywait` does: nothing is recorded in this
    /// process's holder slot, so if the process dies holding it, it is not given back (lost, as
    /// with `sem_t`). Give it back with [`release`](ProcessSemaphore::release). One CAS on the
    /// state word and nothing else, where a recorded take adds stores to the thread's lane of
    /// this process's holder slot (a recorded acquire/release pair takes about 1.1-1.2x as long:
    /// `docs/process.md`, Benchmarks): for a caller that
    /// counts permits itself and does not want recovery (the Python package's
    /// `ProcessSemaphore(recover=False)`). Never waits.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] if no permit is available, [`TryAcquireError::Closed`] if
    /// the semaphore is closed.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::{ProcessSemaphore, TryAcquireError};
    ///
    /// let sem = ProcessSemaphore::anonymous(1)?;
    /// sem.try_acquire_unrecorded().unwrap();
    /// assert_eq!(sem.try_acquire_unrecorded(), Err(TryAcquireError::NoPermits));
    /// sem.release()?;
    /// assert_eq!(sem.available_permits(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn try_acquire_unrecorded(&self) -> Result<(), TryAcquireError> {
        let region = self.region();
        region.state.take_untagged(region.slots, 1)
    }

    /// Adds one permit, like Python's `release()`: for signalling between processes, or for
    /// permits that were [`forget`](ProcessPermit::forget)-ten. To give back a permit you hold,
    /// drop its [`ProcessPermit`] instead.
    ///
    /// How `release` differs between the three semaphore types, and why:
    /// [Releasing permits](crate#releasing-permits).
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
    #[inline]
    pub fn add_permits(&self, n: usize) -> io::Result<()> {
        let region = self.region();
        let Some(old) = u64::try_from(n).ok().and_then(|n| region.state.add_untagged(region.slots, n)) else {
            return Err(past_max_permits(n));
        };
        // The word the CAS replaced tells whether a sleeper must be woken (no second RMW).
        region.parking.wake_after(&region.state, old, n as u64);
        Ok(())
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
        self.region().state.available() as usize
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
        self.region().state.close();
        self.wake_all();
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
        self.region().state.is_closed()
    }

    /// This process's slot in `region` (this handle's), from the handle's cache when the cache
    /// is this process incarnation's and the slot still is too; with the slot itself (`None`
    /// for [`UNTRACKED`]), looked up once for the check and the take.
    #[inline]
    fn holder<'a>(&'a self, region: View<'a>) -> (Holder, Option<&'a Slot>) {
        let (id, nonce) = sys::incarnation();
        // Acquire: pairs with the Release store in `holder_slow`, so that this thread's first
        // operation in a lane of its own (whose `held` it reads `Relaxed`: `announce_owned`)
        // sees what the claimer saw, a recoverer's settling of the slot included.
        let cached = self.cache.load(Acquire);
        let index = cached as u32;
        // The cache names the nonce it was filled under (low 32 bits; never 0), and the slot's
        // own words must still say it is ours: a copy of this handle in a child made by `fork`,
        // whatever its pid, never writes into its parent's slot.
        if (cached >> 32) as u32 == nonce as u32 {
            let holder = Holder { slot: index, nonce };
            match region.slot(index) {
                Some(slot) if holders::is_mine(slot, id, nonce) => return (holder, Some(slot)),
                None if index == UNTRACKED => return (holder, None),
                _ => {}
            }
        }
        self.holder_slow()
    }

    #[cold]
    fn holder_slow(&self) -> (Holder, Option<&Slot>) {
        let me = sys::identity();
        let region = self.region();
        let slot = region.claim_slot(&me);
        // Release: pairs with the Acquire load in `holder` (a process-local hint, re-checked
        // against the slot on every use).
        self.cache.store(u64::from(me.nonce as u32) << 32 | u64::from(slot), Release);
        (Holder { slot, nonce: me.nonce }, region.slot(slot))
    }

    /// Gives back `n` permits recorded in `slot` by the process incarnation `nonce`.
    #[inline]
    fn give_back(&self, n: u32, slot: u32, nonce: u64) {
        // First, while nothing else is live (`lease::lane_word`).
        let lane = lease::lane_word();
        if !sys::is_incarnation(nonce) {
            // A copy made by `fork`: the permits are another process's.
            return;
        }
        // Past MAX_PERMITS (`add_permits` while these were out, or a corrupt region) the
        // permits are dropped, and nobody to wake.
        self.region().give(Holder { slot, nonce }, lane, n);
    }
}

/// The error of an `add_permits` past [`MAX_PERMITS`](ProcessSemaphore::MAX_PERMITS).
#[cold]
fn past_max_permits(n: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("add_permits({n}) would take the count past ProcessSemaphore::MAX_PERMITS ({})", MAX_PERMITS),
    )
}

impl Engine for ProcessSemaphore {
    const NAME: &'static str = "ProcessSemaphore";
    type Taken = Holder;

    #[inline]
    fn is_closed(&self) -> bool {
        self.region().state.is_closed()
    }

    #[inline]
    fn nothing(&self) -> Holder {
        Holder { slot: UNTRACKED, nonce: 0 }
    }

    #[inline]
    fn try_take(&self, n: u32) -> Result<Holder, Refused> {
        // First, while nothing else is live (`lease::lane_word`).
        let lane = lease::lane_word();
        let region = self.region();
        let (me, slot) = self.holder(region);
        region.take_in(me, slot, lane, n)?;
        Ok(me)
    }

    /// Takes `n > 0` permits and records them in this process's slot.
    #[inline]
    fn take(&self, n: u32, deadline: Option<Instant>) -> Result<Holder, Refused> {
        let lane = lease::lane_word();
        let region = self.region();
        let (me, slot) = self.holder(region);
        if region.take_in(me, slot, lane, n).is_err() {
            self.acquire_slow(n, deadline, me)?;
        }
        Ok(me)
    }
}

impl fmt::Debug for ProcessSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessSemaphore")
            .field("name", &self.name)
            .field("available_permits", &self.available_permits())
            .field("sleepers", &sleepers(self.region().parking.sleepers.word()))
            .field("state", &format_args!("{:#018x}", self.region().state.word()))
            .field("closed", &self.is_closed())
            .finish()
    }
}
