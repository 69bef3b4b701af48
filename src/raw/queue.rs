//! The waiter queue: every thread and task that waits, in order of arrival, with the size of its
//! request; who is woken; and the reservation that bounds every wait.
//!
//! One lock guards the queue. Everything a waiter or a releaser does under it happens in a
//! [`Locked`] section, which ends, on drop, with [`Locked::walk`] (decide whom the permits serve)
//! and, after the lock is released, the wakes the walk chose. The argument for this design, and
//! the proofs that cite the invariants below, are in `docs/design.md` ("Transitions" and "The
//! invariants (`src/raw/queue.rs`) and why nothing is lost").
//!
//! # Invariants (held whenever the lock is free)
//! 1. [`QUEUED`] is set in the state exactly while the queue has an entry. It is set by the first
//!    waiter to queue *before* that waiter's last look at the permits, in an RMW, and cleared by
//!    the last to leave.
//! 2. `inflight` is the sum of the requests of the entries marked `notified`: woken and not yet
//!    run; `inflight_tasks` the part of it that tasks' entries ask for. A walk counts those
//!    permits as spoken for, so a release wakes nobody for permits an earlier wake is already on
//!    its way to take; but for threads it counts only threads' wakes, and, choosing a
//!    reservation's watcher (invariant 5), it counts a thread as held back by the permits free but
//!    for threads' wakes: a woken task may never be polled (a leaked future, a stopped executor,
//!    its executor's only worker blocked in this very thread's acquire), and the thread would
//!    sleep on without a timeout.
//! 3. [`RESERVED`] is set exactly while `reservation` is `Some`; its owner is in the queue.
//! 4. A waiter decides to sleep in a locked section, after un-marking itself, and every section
//!    ends with a walk: a wake that was spent on a waiter that then found nothing (robbed by a
//!    barger) is passed on by that waiter's own section.
//! 5. While a reservation holds back permits that would serve another waiter, one such waiter is
//!    its `watcher`, or has been woken to become it, or is a task the timer wakes at the lapse:
//!    someone sees the lapse. A held-back thread is preferred (a task may never be polled again):
//!    a walk chooses one before a task, and gives one the watch over from a task watcher. A
//!    thread running its `keep_waiting` (user code, which may run long) is neither the watcher
//!    nor chosen to be (`checking`).
//! 6. No entry before `skip.at` is both un-woken and of at most `skip.fits` permits ([`Skip`]):
//!    a walk sets it from what it passed over; an un-marked entry before it moves it back to
//!    that entry, and one that leaves before it moves it back by one.
//! 7. A grant to a task that its task has not claimed is in `task_grants`, with the lapse of the
//!    reservation it served (a head served at once, which claimed none, lapses [`Lapse::After`]
//!    the first thread's look: "The queue's clock"); a thread short of permits sleeps no longer
//!    than the earliest such lapse, and then takes those grants back ([`Locked::lapse_at`], which
//!    a held-back task that sees a reservation out runs too, taking back the grants due by then):
//!    their permits return to the state, and each task's id goes to `forgotten`, so that it
//!    queues again when next polled. A task claims its grant, and a thread takes one back, each
//!    by one RMW of the slot's flag ([`Slot::claim`]): exactly one of them finds it there. The
//!    flag holds the served entry's id, so a record looks only at its own grant, also once the
//!    slot is reused (a claimed task's slot is, though its record may hold it until pruned) by a
//!    wait on any semaphore: ids are unique in the process, not only in their queue
//!    ([`ID_BLOCK`]). A task that finds its entry gone under the lock claims it there
//!    ([`Inner::claimed`]).
//!
//! # Who is woken ([`Locked::walk`])
//! If a reservation holds, its owner first: served (see below) if the free permits cover it
//! (granted them, or, a task while threads wait, woken with them held for it), and otherwise
//! everything free is held for it and nobody else is woken. Then, with `budget` = available
//! permits − `inflight` for tasks and − threads' part of `inflight` for threads (invariant 2),
//! in arrival order, every un-woken entry whose request fits in what is left. A request that
//! does not fit is passed over, not waited for: no head-of-line blocking.
//!
//! # The reservation (the bound on every wait)
//! When the queue's head has waited [`STARVE_AFTER`] (a thread sooner, if it was woken and
//! robbed: [`Locked::robbed`]), the next section in which permits come back, or that reads the
//! clock anyway, claims a reservation for it (a waiter that was woken, found nothing and waits
//! on costs no clock read: [`Locked::gave_back`]): takers other than the owner may only take
//! permits beyond what the owner still needs, and the first walk that finds enough free grants
//! them to the owner (taken for it in the CAS that ends the reservation, so they never sit idle
//! while it is scheduled; where the walk that finds the head starving finds its permits free, it
//! serves it so at once, and claims no reservation: [`Locked::prioritize_head`]), unless the
//! owner is a task and threads wait: then it is woken and its
//! permits stay held for it until it takes them or the reservation lapses (a thread may be what
//! its executor waits for, and granted permits would never come back to it). A grant to a task
//! where no thread waited is taken back by a thread that runs short of permits before the task
//! claims it, at the reservation's lapse (invariant 7): the same bound, as a thread held back by
//! held permits would take them then, and no cost where no thread comes. A reservation
//! lapses after the owner's `lapse` (first [`FIRST_LAPSE`], doubled at each claim up to
//! [`MAX_LAPSE`]), seen by the first walk that reads the clock while the owner still cannot be
//! served (or, where its permits are held for it, by the watcher alone); its owner's
//! starvation clock starts again, so it cannot be claimed again for `STARVE_AFTER`, and barging
//! resumes meanwhile. That keeps every program that progresses under barging progressing: permits
//! held back from a waiter whose progress the holders need come free after the lapse. The lapse
//! is enforced by one of those it holds back (they are the only ones who can be stuck), its
//! watcher: a thread sleeps at most until the lapse; a task is woken then by the crate's timer
//! (`sync::timer`), or yields to its executor until then where there is no timer.
//!
//! # The queue's clock
//! A section reads the clock at most once, and keeps the reading in the queue (`Inner::clock`).
//! Two decisions use the kept reading instead of reading again, up to [`CLOCK_REUSES`] times
//! and only while waiters are queued (an arrival into an empty queue reads the time): an
//! arrival's stamp, and a head found starving by it. Both err only towards the waiter: the
//! reading is never later than the time, so an arrival stamped with it starves no later than
//! [`STARVE_AFTER`] after it queued (sooner by at most the reading's age, which the bound on its
//! uses keeps to a few sections wherever sections come often), and a head starving by it is
//! starving. A head not starving by it is looked at again with the time read. Every decision that
//! an early time would make later for a waiter (a claimed reservation's `until`, whether it has
//! lapsed, a starving clock restarted after a lapse, a grant's lapse) reads the time; a head served at once needs
//! none, and its grant's lapse, if a task's, is set by the first thread that looks at it
//! ([`Lapse::After`]): no sooner than a reservation claimed then would lapse. In the async herd a
//! cycle read the clock twice (an arrival, the release's look at the head), at 18-21 ns a read
//! on the project's VM (`docs/design.md`, "The queue's clock").
//!
//! # After a fork
//! A child made by `fork` has a copy of the queue but only the forking thread: the threads
//! queued in the parent never run there, and a walk would spend wakes and the reservation's
//! permits on them for ever. So the queue records the process's fork generation
//! (`sync::fork`), and the first section in a child takes every thread's entry out
//! ([`Inner::after_fork`], as a waiter that leaves: its wake, watch and reservation with it).
//! Tasks' entries stay if the forking thread polled them last (a task of an executor there,
//! which runs on: [`Slot`]'s `polled_by`); the others leave too, their wakers leaked, not
//! dropped (a waker may own its task, whose drop would cancel it under this lock, or run a gone
//! executor's code). A waiter whose entry left and that still runs (the forking thread, if it
//! forked inside its `keep_waiting`; a task polled by the forking thread after the first
//! section) finds its id in `forgotten`, and queues again instead of taking the missing entry
//! for a served one. The watcher is chosen again (a task watcher's timer wake was the parent's
//! timer's), and the spinner's turn (`super::spin`) is freed: a thread of the parent may have
//! held it. Permits the parent's other threads held, or were granted, stay taken in the child.
//! The lock itself is free there: the forking thread takes every queue's lock across the fork
//! ([`fork_locks`]; a queue registers before its first section), where a copy of a lock another
//! thread held at that moment would stay held.
//!
//! # Served waiters
//! A walk that serves the reservation takes the owner's permits for it, removes its entry and sets
//! its [`Slot`]'s flag: the owner is done without taking the lock again (a task claims the grant,
//! invariant 7). A waiter that finds its entry gone under the lock was served (nothing else
//! removes another's entry; a fork's child and a revoked grant put the id in `forgotten`).

use super::state::*;
#[cfg(all(unix, not(loom)))]
pub(crate) mod fork_locks;
use crate::sync::{Arc, AtomicU64, Futex, Mutex, MutexGuard, Ordering::Acquire, Ordering::Relaxed};
use crate::sync::{Ordering::Release, Park, Private, Token, cancel, fork, wake_at};
#[cfg(not(loom))]
use std::cell::Cell;
use std::collections::VecDeque;
use std::task::Waker;
use std::time::{Duration, Instant};

/// How long the queue's head waits before it gets priority over later arrivals (under loom:
/// one walk, see [`Entry::starving`]).
pub(crate) const STARVE_AFTER: Duration = Duration::from_millis(1);

/// How long a waiter's first reservation lasts before it lapses. Under loom the clock never lapses
/// one (an hour); the modelled timed wait of a held-back thread does, wherever it would block.
#[cfg(not(loom))]
pub(crate) const FIRST_LAPSE: Duration = Duration::from_millis(2);
#[cfg(loom)]
pub(crate) const FIRST_LAPSE: Duration = Duration::from_secs(3600);

/// The longest a reservation lasts (the first one doubled nine times: about 1 s).
pub(crate) const MAX_LAPSE: Duration = FIRST_LAPSE.saturating_mul(1 << MAX_DOUBLINGS);

/// How many times a waiter's reservation doubles, at most (see [`MAX_LAPSE`]).
const MAX_DOUBLINGS: u8 = 9;

/// A waiter's place in the queue: ids grow with arrival, so the queue is sorted by them. They are
/// unique in the process, not only in their queue ([`ID_BLOCK`]).
pub(crate) type Id = u64;

/// A queue takes its waiters' ids in blocks of this many from [`ID_BLOCKS`], so that no two
/// waiters in the process, on any semaphores, have the same id: a claimed task's slot goes on to
/// its thread's next wait, on any semaphore, while the record of its grant (invariant 7) may
/// still hold it, and that record must not take for its own a grant that another queue made in
/// the slot to an entry of the same id. (Ids unique in their queue only gave a semaphore a
/// permit nobody gave back: `tests/fairness.rs`,
/// `a_record_of_a_claimed_grant_leaves_a_grant_of_another_semaphore_alone`.) One RMW of a
/// process-wide word per block: per queue's first wait and per 65,536 waits after.
const ID_BLOCK: Id = 1 << 16;

/// The start of the next block of ids: see [`ID_BLOCK`]. Not a loom atomic, and not there under
/// loom: no slot is reused there (no spares), so each queue counts its ids from 0.
#[cfg(not(loom))]
static ID_BLOCKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What a queued waiter shares with the queue: the futex word a thread sleeps on, and whether a
/// walk has served it. A served waiter has left the queue and owns its permits: without the lock,
/// a thread reads [`Slot::granted`], a task claims the grant ([`Slot::claim`]), and it is done.
pub(crate) struct Slot {
    pub(crate) futex: Futex,
    /// 0, or the id of the entry a walk served + 1 (a grant), until a task claims it, a thread
    /// takes a task's back (invariant 7), or the slot is recycled. The id, unique in the process
    /// ([`ID_BLOCK`]), tells a grant from a later one in the same slot, reused meanwhile by a wait
    /// on any semaphore.
    granted: AtomicU64,
    /// The thread that last polled this task (`fork::this_thread`, set at each of its looks): a
    /// fork's child keeps a task's entry only if that is the forking thread ("After a fork").
    /// Not under loom, where nothing forks.
    #[cfg(not(loom))]
    pub(crate) polled_by: std::sync::atomic::AtomicU64,
}

impl Slot {
    pub(crate) fn new() -> Slot {
        Slot {
            futex: Futex::new(),
            granted: AtomicU64::new(0),
            #[cfg(not(loom))]
            polled_by: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A slot for a new waiter: the one this thread kept from its last wait (see
    /// [`recycle`](Self::recycle)), or a new one.
    pub(crate) fn fresh() -> Arc<Slot> {
        #[cfg(not(loom))]
        if let Some(slot) = SPARE.try_with(Cell::take).ok().flatten() {
            return slot;
        }
        Arc::new(Slot::new())
    }

    /// Keeps a finished waiter's slot as this thread's spare, for its next wait: an allocation and
    /// a free fewer per wait. Only a slot nobody else holds (not the queue, not a wake on its way
    /// to it) is kept; it starts over ungranted (its futex word may hold any value: a waiter reads
    /// it before its last look).
    pub(crate) fn recycle(slot: Arc<Slot>) {
        Slot::recycle_held_by(slot, 1);
    }

    /// As [`recycle`](Self::recycle), for a task that claimed its grant: the queue's record of the
    /// grant (invariant 7) may still hold the slot, and only looks at it for that grant's tag,
    /// which a later grant in the slot does not have.
    pub(crate) fn recycle_claimed(slot: Arc<Slot>) {
        Slot::recycle_held_by(slot, 2);
    }

    fn recycle_held_by(slot: Arc<Slot>, holders: usize) {
        #[cfg(not(loom))]
        if Arc::strong_count(&slot) <= holders {
            // Relaxed: nobody else uses the slot until it is handed out again (a record of a
            // grant only compares it with that grant's tag).
            slot.granted.store(0, Relaxed);
            let _ = SPARE.try_with(move |spare| spare.set(Some(slot)));
        }
        #[cfg(loom)]
        let _ = (slot, holders); // no spares under loom: its models allocate each slot
    }

    /// Whether a walk served this waiter: its permits are taken for it and it is out of the queue.
    /// A thread's look; a task claims its grant instead ([`claim`](Self::claim)).
    #[inline]
    pub(crate) fn granted(&self) -> bool {
        // Acquire: pairs with the Release store in `Inner::grant`, after the CAS that took the
        // permits for this waiter (itself an Acquire on the releases that gave them back).
        self.granted.load(Acquire) != 0
    }

    /// A task's look: takes the grant a walk made to its entry `id`, unless a thread took it
    /// back first (invariant 7); exactly one of the two RMWs finds it there.
    #[inline]
    pub(crate) fn claim(&self, id: Id) -> bool {
        // A load first: most polls of a queued task find no grant, and a failed CAS would still
        // take the line from the core that writes it. Acquire: as in `granted`.
        self.granted.load(Relaxed) == id + 1
            && self.granted.compare_exchange(id + 1, 0, Acquire, Relaxed).is_ok()
    }

    /// Takes back the grant to entry `id` if its task has not claimed it (invariant 7).
    fn revoke(&self, id: Id) -> bool {
        // Relaxed: under the queue's lock; the permits go back by the caller's Release RMW.
        self.granted.compare_exchange(id + 1, 0, Relaxed, Relaxed).is_ok()
    }

    /// Whether the grant to entry `id` is there, unclaimed and not taken back.
    fn outstanding(&self, id: Id) -> bool {
        self.granted.load(Relaxed) == id + 1
    }
}

#[cfg(not(loom))]
thread_local! {
    /// This thread's spare [`Slot`] (see [`Slot::recycle`]).
    static SPARE: Cell<Option<Arc<Slot>>> = const { Cell::new(None) };
}

/// How to wake a waiter.
pub(crate) enum Wake {
    /// A thread asleep on its slot's futex word (bumped to wake it).
    Thread,
    /// A task; `None` while its waker is out (being woken) and it has not been polled since.
    Task(Option<Waker>),
}

/// A queued waiter. Kept small (64 bytes, one cache line's worth): a walk reads entries in a row,
/// and both workers of a herd of tasks write them (measured: 64 bytes more per entry made the
/// herd 5-6 % slower, `docs/benchmarks.md`, async).
struct Entry {
    id: Id,
    /// Its request (at most `MAX_PERMITS`, so it fits); [`Entry::n`] widens it.
    n: u32,
    /// When it starts starving: [`STARVE_AFTER`] after it queued or after its last reservation
    /// lapsed, or when it was robbed (a thread; [`Locked::robbed`]); stored as the instant, so
    /// that a walk compares instead of subtracting.
    starve_at: Instant,
    /// How long its next reservation lasts, as doublings of [`FIRST_LAPSE`] ([`Entry::lapse`]).
    doublings: u8,
    /// Walks that passed it over at the head since its starvation clock started: the loom models' clock (see
    /// [`Entry::starving`]).
    passed: u16,
    /// Woken and not yet run (invariant 2).
    notified: bool,
    slot: Arc<Slot>,
    wake: Wake,
}

struct Reservation {
    owner: Id,
    n: u64,
    until: Instant,
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<Entry>,
    /// The next id to give ([`Inner::new_id`]), and the end of the block it comes from.
    next_id: Id,
    ids_end: Id,
    /// Invariant 2.
    inflight: u64,
    /// Invariant 2: what of `inflight` tasks' entries ask for.
    inflight_tasks: u64,
    /// Invariant 3.
    reservation: Option<Reservation>,
    /// The waiter held back by the reservation that sees it out (sleeps until its lapse, is woken
    /// then by the timer, or yields until then): invariant 5.
    watcher: Option<Id>,
    /// The timer's wake of a task watcher at the lapse, if it has one (cancelled when the watcher
    /// changes).
    watch_timer: Option<Token>,
    /// Where a walk may start (invariant 6).
    skip: Skip,
    /// How many entries are threads' (a walk looks for one to watch a reservation only if any).
    threads: usize,
    /// Wakers this section let go of (a leaving entry's, a replaced one, a cancelled timer
    /// wake's), dropped after the lock is released, with the wakes: dropping a waker runs its
    /// executor's code, which may free a task whose permit's drop releases into this semaphore
    /// (and so takes this lock). Kept, with its capacity, from section to section.
    graveyard: Vec<Waker>,
    /// The fork generation of the process whose threads are queued here (`None` until the first
    /// section): a section in a child made by `fork` finds it older ("After a fork").
    forks: Option<u64>,
    /// Entries taken out in a fork's child, whose waiter may still ask (the forking thread
    /// itself, if it forked inside its `keep_waiting`; a task polled there since), and tasks
    /// whose grant a thread revoked (invariant 7): such a waiter queues again.
    forgotten: Vec<Id>,
    /// `next_id` at the last fork or revocation: only a waiter queued before it may be in
    /// `forgotten` (the others skip the look).
    forgotten_below: Id,
    /// Grants to tasks made while no thread waited, that their task may not have claimed yet
    /// (invariant 7); pruned of claimed ones when looked at.
    task_grants: Vec<TaskGrant>,
    /// Threads running their `keep_waiting` (user code, which may run long): none watches a
    /// reservation meanwhile (invariant 5).
    checking: Vec<Id>,
    /// The queue's last reading of the clock ([`Locked::now`]), and how many times
    /// [`Locked::kept`] has used it since: "The queue's clock" in the module header.
    clock: Option<Instant>,
    clock_uses: u8,
}

/// How many times a section may use the queue's last reading of the clock before it reads again
/// ([`Locked::kept`]): a reading costs about as much as the rest of a short section (18-21 ns on
/// the project's VM), and a herd of tasks made two a cycle (`docs/design.md`, "The queue's clock").
const CLOCK_REUSES: u8 = 16;

/// How many records of grants to tasks a walk keeps before it prunes the claimed ones.
const GRANTS_KEPT: usize = 16;

/// A grant to a task that a thread may take back at its lapse (invariant 7).
struct TaskGrant {
    id: Id,
    n: u64,
    lapse: Lapse,
    slot: Arc<Slot>,
}

/// When a grant to a task lapses (invariant 7).
#[derive(Clone, Copy)]
enum Lapse {
    /// At the lapse of the reservation it served.
    At(Instant),
    /// This long after a thread first looks at it ([`Locked::unclaimed_grant_lapse`], which sets
    /// it `At` then): a head served in the walk that found it starving, which claimed no
    /// reservation and read no clock for it ([`Locked::prioritize_head`]). It lapses no sooner
    /// than a reservation claimed at that look would.
    After(Duration),
}

impl Lapse {
    /// Whether it has lapsed by `until` (one that no thread has looked at yet has not).
    fn by(self, until: Instant) -> bool {
        matches!(self, Lapse::At(at) if at <= until)
    }
}

/// What the last walks learnt about the front of the queue, so that the next does not look at
/// the same entries again (invariant 6): no entry before `at` is both un-woken and of at most
/// `fits` permits. A walk whose budget is at most `fits` starts at `at`; it would pass over
/// every entry before it anyway. The default says nothing (nothing asks for 0 permits).
#[derive(Default)]
struct Skip {
    at: usize,
    fits: u64,
}

/// The queue: allocated on first use by the semaphore (see `OnceBox`).
#[derive(Default)]
pub(crate) struct Queue {
    inner: Mutex<Inner>,
    /// How long a contended acquire spins before it queues (`super::spin`); beside the lock, not
    /// under it.
    pub(crate) spin: super::spin::SpinEstimate,
    /// Whether the fork handlers know this queue ([`fork_locks`]): set once, before a section
    /// runs on it. They know it by its address, so a queue does not move once locked (a
    /// semaphore's stays in its `OnceBox` until dropped). Not a loom atomic: under loom nothing
    /// forks.
    #[cfg(all(unix, not(loom)))]
    registered: std::sync::atomic::AtomicBool,
}

/// What a waiter's look at the permits found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// The permits are taken (and the waiter, if queued, has left the queue).
    Taken,
    /// The semaphore is closed (and the waiter, if queued, has left the queue).
    Closed,
    /// Not enough permits for this waiter. `held_back_until` is the end of the reservation when
    /// only the reservation stands in the way (the permits are there, but another waiter needs
    /// them) and this waiter is the one to see it out: its watcher (invariant 5).
    Short { held_back_until: Option<Instant> },
}

#[cfg(all(unix, not(loom)))]
impl Drop for Queue {
    fn drop(&mut self) {
        if *self.registered.get_mut() {
            fork_locks::unregister(self);
        }
    }
}

/// A section under the queue's lock. Dropping it walks the queue, releases the lock and then wakes
/// whom the walk chose.
pub(crate) struct Locked<'a> {
    state: &'a AtomicU64,
    inner: Option<MutexGuard<'a, Inner>>,
    /// The time, read once per section and only if a decision needs it (a read costs as much as
    /// the rest of a short section).
    now: Option<Instant>,
    /// The entry the last [`take`](Self::take) found, and where: a hint for
    /// [`set_waker`](Self::set_waker) in the same section, checked before use.
    found: Option<(Id, usize)>,
    /// Permits came back in this section or just before it ([`gave_back`](Self::gave_back)).
    gave_back: bool,
    wakes: WakeList,
}

impl Queue {
    /// Starts a locked section over `state`, the semaphore's state word.
    pub(crate) fn lock<'a>(&'a self, state: &'a AtomicU64) -> Locked<'a> {
        // Registered for the fork handlers before this thread's first section on it ("After a
        // fork"; Acquire: pairs with the Release store of `fork_locks::register`, after which the
        // queue is in the set that a fork's handler locks).
        #[cfg(all(unix, not(loom)))]
        if !self.registered.load(Acquire) {
            fork_locks::register(self);
        }
        // The lock is held across no executor code but a waker's `clone` (wakes are sent, and
        // wakers let go of are dropped, after it: `Inner::graveyard`), nor across a panic point
        // that leaves `Inner` broken, so a poisoned lock (a panic in a waker's `clone`) still
        // holds a consistent queue.
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if inner.forks != Some(fork::generation()) && inner.after_fork() {
            self.spin.after_fork(); // a copied thread may have held the spinner's turn
        }
        Locked {
            state,
            inner: Some(inner),
            now: None,
            found: None,
            gave_back: false,
            wakes: WakeList::default(),
        }
    }
}

impl Locked<'_> {
    /// The time, read once per section; kept in the queue for [`kept`](Self::kept).
    fn now(&mut self) -> Instant {
        if let Some(now) = self.now {
            return now;
        }
        let now = Instant::now();
        self.now = Some(now);
        let inner = self.inner();
        (inner.clock, inner.clock_uses) = (Some(now), 0);
        now
    }

    /// The queue's last reading of the clock, while waiters are queued: never later than the
    /// time, and at most [`CLOCK_REUSES`] uses old ([`Inner::clock`]); else the time is read. Only
    /// for decisions that an early time makes sooner for the waiter, never later: an arrival's
    /// stamp, and a head found starving (see "The queue's clock" in the module header).
    fn kept(&mut self) -> Instant {
        if let Some(now) = self.now {
            return now;
        }
        let inner = self.inner();
        match inner.clock {
            Some(kept) if inner.clock_uses < CLOCK_REUSES && !inner.entries.is_empty() => {
                inner.clock_uses += 1;
                kept
            }
            _ => self.now(),
        }
    }

    /// Says that permits came back in this section or just before it (a release): its walk looks
    /// whether the head is starving, even if nothing else in the section needed the clock.
    pub(crate) fn gave_back(&mut self) {
        self.gave_back = true;
    }

    fn inner(&mut self) -> &mut Inner {
        self.inner.as_mut().expect("the lock is held until drop")
    }

    /// Waiters in the queue.
    pub(crate) fn len(&mut self) -> usize {
        self.inner().entries.len()
    }

    /// Looks at the permits for a waiter of `n` (`me`: its entry, if it is queued) and takes them
    /// if it may; never queues. A queued waiter that was woken is un-marked first (invariant 4),
    /// and a thread woken for permits that are gone when it looks is [`robbed`](Self::robbed).
    pub(crate) fn take(&mut self, me: Option<Id>, n: u64) -> Take {
        let mut woken = false;
        // Where `me`'s entry is: no entry comes or goes in this section before it leaves.
        let mut at = None;
        if let Some(id) = me {
            let Some(i) = self.inner().index(id) else {
                // Served by a walk, which took it out (even if closed since).
                self.inner().claimed(id);
                return Take::Taken;
            };
            woken = self.inner().unmark(i);
            at = Some(i);
            self.found = Some((id, i));
        }
        let state = self.state;
        loop {
            let s = state.load(Relaxed);
            let inner = self.inner();
            if is_closed(s) {
                if let Some(i) = at {
                    inner.remove_at(i);
                }
                return Take::Closed;
            }
            let owner = inner.reservation.as_ref().is_some_and(|r| Some(r.owner) == me);
            let held = match &inner.reservation {
                Some(r) if !owner => r.n,
                _ => 0,
            };
            if permits(s) < n + held {
                let held_back_until = match &inner.reservation {
                    Some(r) if !owner && permits(s) >= n => Some(r.until),
                    _ => None,
                };
                // Invariant 5 (a thread held back while a task watches is given the watch by
                // this section's walk, [`Locked::walk`]).
                if held_back_until.is_some() && me.is_some() && inner.watcher.is_none() {
                    inner.set_watcher(me);
                } else if held_back_until.is_none() && me.is_some() && inner.watcher == me {
                    inner.set_watcher(None); // not held back after all: a later walk picks another
                }
                // Only the watcher sees the reservation out; the others it holds back sleep until
                // a walk wakes them, as any waiter does.
                let held_back_until = held_back_until.filter(|_| me.is_some() && inner.watcher == me);
                if let Some(i) = at.filter(|_| woken && held_back_until.is_none()) {
                    self.robbed(i);
                }
                return Take::Short { held_back_until };
            }
            let mut new = s - n;
            if owner {
                new &= !RESERVED;
            }
            if me.is_some() && inner.entries.len() == 1 {
                new &= !QUEUED; // invariant 1: the last waiter leaves
            }
            // Acquire: pairs with the Release RMW of the release that gave these permits back.
            if state.compare_exchange(s, new, Acquire, Relaxed).is_ok() {
                if let Some(i) = at {
                    inner.remove_at(i);
                }
                return Take::Taken;
            }
        }
    }

    /// As [`take`](Self::take), and if the permits are short, queues the waiter (setting `*me`)
    /// with its `slot`, made to wake through `wake()`.
    pub(crate) fn take_or_queue(
        &mut self,
        me: &mut Option<Id>,
        n: u64,
        slot: &Arc<Slot>,
        wake: impl FnOnce() -> Wake,
    ) -> Take {
        self.forgotten(me);
        let result = self.take(*me, n);
        match result {
            Take::Taken | Take::Closed => {
                *me = None;
                return result;
            }
            Take::Short { .. } if me.is_some() => return result,
            Take::Short { .. } => {}
        }
        let now = self.kept();
        let inner = self.inner();
        let id = inner.new_id();
        let wake = wake();
        inner.threads += usize::from(matches!(wake, Wake::Thread));
        inner.entries.push_back(Entry {
            id,
            n: u32::try_from(n).expect("a request is a u32 (`RawSemaphore::acquire`)"),
            starve_at: now + STARVE_AFTER,
            doublings: 0,
            passed: 0,
            notified: false,
            slot: Arc::clone(slot),
            wake,
        });
        *me = Some(id);
        if inner.entries.len() == 1 {
            // Invariant 1, then the last look: a release whose RMW comes after this one sees
            // QUEUED and walks after this section; one before it left its permits for the look.
            self.state.fetch_or(QUEUED, Relaxed);
        } else if inner.reservation.is_none() {
            // Others wait already: QUEUED was set before the look above, so a release after that
            // look walks after this section, which serves this waiter as any other. (Under a
            // reservation the look is taken again, to make this waiter its watcher if it is held
            // back: invariant 5.)
            return result;
        }
        let result = self.take(*me, n);
        if matches!(result, Take::Taken | Take::Closed) {
            *me = None;
        }
        result
    }

    /// Loom models only: this queue's generation as a fork's child finds it, older than the
    /// process's (`fork::generation` is 0 under loom).
    #[cfg(loom)]
    pub(crate) fn pretend_forked(&mut self) {
        self.inner().forks = Some(u64::MAX);
    }

    /// Sets `*me` to `None` if its entry was taken out after a fork (the forking thread's own,
    /// if it forked inside its `keep_waiting`): it is not queued, and was not served.
    #[inline]
    pub(crate) fn forgotten(&mut self, me: &mut Option<Id>) {
        if !self.inner().forgotten.is_empty() {
            self.inner().forget(me);
        }
    }

    /// A queued waiter of `n` leaves without permits (timed out, cancelled): its wake, if it had
    /// one, and its reservation, if it owned one, pass to others in this section's walk.
    pub(crate) fn leave(&mut self, me: &mut Option<Id>, n: u64) {
        self.forgotten(me); // taken out after a fork: nothing to leave, nothing was served
        if let Some(id) = me.take() {
            let inner = self.inner();
            if let Some(i) = inner.index(id) {
                inner.remove_at(i);
            } else {
                // Served, but gone before it knew: its permits go back (this section's walk
                // passes them on). Release: as for any release.
                inner.claimed(id);
                self.state.fetch_add(n, Release);
                self.gave_back();
            }
        }
    }

    /// A queued thread begins (`true`) or ends its `keep_waiting` (`try_acquire_many_while`): while
    /// it runs user code it is not the watcher, and is not chosen to be (invariant 5), so that a
    /// slow check does not delay the lapse for the others held back; this section's walk chooses
    /// another.
    pub(crate) fn checking(&mut self, me: Option<Id>, checking: bool) {
        let Some(id) = me else { return };
        let inner = self.inner();
        if checking {
            inner.checking.push(id);
            if inner.watcher == me {
                inner.set_watcher(None);
            }
        } else {
            inner.checking.retain(|&c| c != id);
        }
    }

    /// Ends the reservation that was to last `until`, if it is still the one in force: a waiter it
    /// held back saw it out.
    pub(crate) fn lapse_at(&mut self, until: Instant) {
        if self.inner().reservation.as_ref().is_some_and(|r| r.until == until) {
            self.lapse();
        }
        self.revoke_task_grants(until);
    }

    /// Invariant 7: the earliest lapse of a grant to a task that the task has not claimed yet. A
    /// thread short of permits sleeps no longer, and then takes such grants back
    /// ([`lapse_at`](Self::lapse_at)).
    pub(crate) fn unclaimed_grant_lapse(&mut self) -> Option<Instant> {
        if self.inner().task_grants.is_empty() {
            return None;
        }
        self.inner().prune_task_grants();
        if self.inner().task_grants.iter().any(|g| matches!(g.lapse, Lapse::After(_))) {
            let now = self.now();
            for g in &mut self.inner().task_grants {
                if let Lapse::After(lapse) = g.lapse {
                    g.lapse = Lapse::At(now + lapse);
                }
            }
        }
        self.inner()
            .task_grants
            .iter()
            .filter_map(|g| if let Lapse::At(at) = g.lapse { Some(at) } else { None })
            .min()
    }

    /// Takes back the grants to tasks whose lapse is `until` or before and that their task has
    /// not claimed (invariant 7): their permits come back, and each task queues again when next
    /// polled (its id goes to `forgotten`).
    fn revoke_task_grants(&mut self, until: Instant) {
        let inner = self.inner();
        if inner.task_grants.is_empty() {
            return;
        }
        let mut back = 0;
        let mut k = 0;
        while k < inner.task_grants.len() {
            let g = &inner.task_grants[k];
            if !g.lapse.by(until) && g.slot.outstanding(g.id) {
                k += 1;
                continue;
            }
            let g = inner.task_grants.swap_remove(k);
            if g.slot.revoke(g.id) {
                back += g.n;
                inner.forgotten.push(g.id);
                inner.forgotten_below = inner.next_id;
            }
        }
        if back > 0 {
            // Release: as for any release (these permits were taken for the task, never used).
            self.state.fetch_add(back, Release);
            self.gave_back();
        }
    }

    /// Has the timer wake this task, the reservation's watcher, at the lapse `until`, instead of
    /// it yielding until then. Returns `false` if there is no timer (see `sync::timer`).
    pub(crate) fn watch_until(&mut self, until: Instant, waker: &Waker) -> bool {
        let Some(token) = wake_at(until, waker) else { return false };
        if let Some(old) = self.inner().watch_timer.replace(token).filter(|&old| old != token) {
            self.inner().graveyard.extend(cancel(old));
        }
        true
    }

    /// Stores a task's waker, for the next wake.
    pub(crate) fn set_waker(&mut self, me: Id, waker: &Waker) {
        let hint =
            self.found.map(|(_, i)| i).filter(|&i| self.inner().entries.get(i).is_some_and(|e| e.id == me));
        if let Some(i) = hint.or_else(|| self.inner().index(me)) {
            let inner = self.inner();
            match &mut inner.entries[i].wake {
                Wake::Task(Some(w)) if w.will_wake(waker) => {}
                slot => {
                    // The old waker is dropped after the lock (`Inner::graveyard`).
                    if let Wake::Task(Some(old)) = std::mem::replace(slot, Wake::Task(Some(waker.clone()))) {
                        inner.graveyard.push(old);
                    }
                }
            }
        }
    }

    /// A thread that a walk woke for permits found them gone when it ran (a barger took them
    /// first): it starves from now on, as if it had waited [`STARVE_AFTER`], so that once it is
    /// the head, the next walk that looks at its clock claims the reservation for it (the walk of
    /// this section, which read the clock for it, or a release's) and the next permits to come back
    /// are its. Without this a sleeper can be woken, robbed and put back to sleep again and again
    /// for the whole `STARVE_AFTER`, a context switch each time (`docs/design.md`, "A robbed
    /// thread"). Only before its first reservation: after one lapsed, barging gets its
    /// `STARVE_AFTER` (the no-deadlock argument). Tasks keep their clock: a robbed task costs a
    /// poll, not a context switch.
    fn robbed(&mut self, i: usize) {
        let e = &self.inner().entries[i];
        if e.is_thread() && e.doublings == 0 {
            let now = self.now();
            let e = &mut self.inner().entries[i];
            e.starve_at = e.starve_at.min(now);
            e.passed = e.passed.max(1); // the loom models' clock (see `Entry::starving`)
        }
    }

    /// Whether the head is starving (looked at only where no reservation holds). A head starving
    /// by the queue's kept reading is starving now (the reading is never later than the time);
    /// one that is not is looked at again with the time read ("The queue's clock").
    fn head_starving(&mut self) -> bool {
        let kept = self.kept();
        if self.inner().entries.front().is_some_and(|head| head.starving(kept)) {
            return true;
        }
        let now = self.now();
        let Some(head) = self.inner().entries.front_mut() else { return false };
        if head.starving(now) {
            return true;
        }
        head.passed = head.passed.saturating_add(1);
        false
    }

    /// Gives the starving head priority over later arrivals, with `s` the state word as the walk
    /// found it; returns it as this leaves it. Where the free permits cover the head and it may be
    /// granted them (not a task while threads wait: see the serving of a reservation in
    /// [`walk`](Self::walk)), it is served at once: its permits leave the state in one CAS, and no
    /// reservation is claimed, nor the clock read (a task's grant lapses [`Lapse::After`]).
    /// Otherwise (or if bargers took the permits first) a reservation is claimed for it, lasting
    /// its `lapse` from the time read now, and its flag set last: within this section nothing
    /// reads the flag.
    fn prioritize_head(&mut self, s: u64) -> u64 {
        let state = self.state;
        let Locked { inner, wakes, .. } = self;
        let inner: &mut Inner = inner.as_mut().expect("the lock is held until drop");
        let head = inner.entries.front_mut().expect("a walk looks at the head of a queue");
        let (owner, n, lapse, task) = (head.id, head.n(), head.lapse(), !head.is_thread());
        head.doublings = (head.doublings + 1).min(MAX_DOUBLINGS);
        if !(task && inner.threads > 0) {
            // The head leaves the queue; if it was the last, QUEUED goes too (invariant 1).
            let clear = if inner.entries.len() == 1 { QUEUED } else { 0 };
            if let Some(left) = take_for_served(state, s, n, clear) {
                inner.grant(0, wakes, Lapse::After(lapse));
                return left;
            }
        }
        let until = self.now() + lapse;
        self.inner().reservation = Some(Reservation { owner, n, until });
        state.fetch_or(RESERVED, Relaxed) | RESERVED
    }

    fn lapse(&mut self) {
        let now = self.now();
        let inner = self.inner();
        if let Some(r) = inner.end_reservation() {
            if let Some(i) = inner.index(r.owner) {
                let owner = &mut inner.entries[i];
                (owner.starve_at, owner.passed) = (now + STARVE_AFTER, 0);
            }
            self.state.fetch_and(!RESERVED, Relaxed);
        }
    }

    /// Clears QUEUED and RESERVED if entries left or the reservation ended in this section
    /// (invariants 1, 3). Setting them is done where it must come first, not here.
    fn sync_flags(&mut self) {
        let empty = self.inner().entries.is_empty();
        let reserved = self.inner().reservation.is_some();
        let mut clear = 0;
        if empty {
            clear |= QUEUED;
        }
        if !reserved {
            clear |= RESERVED;
        }
        if self.state.load(Relaxed) & clear != 0 {
            self.state.fetch_and(!clear, Relaxed);
        }
    }

    /// Decides whom the available permits serve, lapses or claims the reservation, and queues
    /// the wakes (sent after the lock is released).
    fn walk(&mut self) {
        if self.inner().entries.is_empty() {
            return;
        }
        let state = self.state;
        // A reservation whose owner the permits cover is served below, lapsed or not: only one
        // that must go on waiting needs the clock.
        let waiting = self.inner().reservation.as_ref().filter(|r| permits(state.load(Relaxed)) < r.n);
        if let Some(until) = waiting.map(|r| r.until) {
            if self.now() >= until {
                self.lapse();
            }
        }
        // The head's clock is looked at where permits came back, or where the time is known
        // anyway: a waiter that found nothing (robbed) costs no clock read (see `docs/design.md`,
        // "When the head's clock is read").
        let look = self.gave_back || self.now.is_some();
        let mut s = state.load(Relaxed);
        if look && self.inner().reservation.is_none() && !is_closed(s) && self.head_starving() {
            s = self.prioritize_head(s);
        }
        let Locked { inner, wakes, .. } = self;
        let inner: &mut Inner = inner.as_mut().expect("the lock is held until drop");
        if inner.entries.is_empty() {
            return;
        }
        if is_closed(s) {
            for i in 0..inner.entries.len() {
                inner.notify(i, wakes);
            }
            return;
        }
        let mut budget = permits(s).saturating_sub(inner.inflight);
        // What threads may be woken for: they count only threads' wakes as on their way
        // (invariant 2).
        let mut thread_budget = inner.thread_budget(permits(s));
        if let Some(&Reservation { owner, n, until }) = inner.reservation.as_ref() {
            let i = inner.index(owner).expect("the owner is queued (invariant 3)");
            if permits(s) >= n && inner.threads > 0 && !inner.is_thread(i) {
                // A task owner, with threads waiting: its permits are held for it and it is
                // woken, not granted them. One of those threads may be what its executor waits
                // for (a blocking acquire on its only worker), and a grant would leave that
                // thread asleep for good; held, they are the owner's until the reservation
                // lapses, which a thread held back sees (invariant 5).
                inner.notify(i, wakes);
                budget = permits(s).saturating_sub(inner.inflight);
                thread_budget = inner.thread_budget(permits(s) - n);
            } else if permits(s) >= n {
                // Serve it directly: its permits leave the state in the CAS that ends the
                // reservation, so they never sit reserved while it is on its way.
                // The owner leaves the queue; if it was the last, QUEUED goes too (invariant 1).
                let clear = if inner.entries.len() == 1 { RESERVED | QUEUED } else { RESERVED };
                if let Some(left) = take_for_served(state, s, n, clear) {
                    inner.end_reservation();
                    inner.grant(i, wakes, Lapse::At(until));
                    budget = permits(left).saturating_sub(inner.inflight);
                    thread_budget = inner.thread_budget(permits(left));
                } else {
                    (budget, thread_budget) = (0, 0);
                }
            } else {
                (budget, thread_budget) = (0, 0); // everything free is the owner's
            }
        }
        // In arrival order from where invariant 6 allows; the smallest request passed over bounds
        // what the next walk may skip.
        let (mut i, fits) = match inner.skip {
            Skip { at, fits } if budget.max(thread_budget) <= fits => (at.min(inner.entries.len()), fits),
            _ => (0, u64::MAX),
        };
        let mut smallest_passed = u64::MAX;
        while budget > 0 || thread_budget > 0 {
            // An iterator over the ring's slices: cheaper per entry than indexing it.
            let serves = |e: &Entry| {
                let serves = !e.notified && e.n() <= if e.is_thread() { thread_budget } else { budget };
                if !e.notified && !serves {
                    smallest_passed = smallest_passed.min(e.n());
                }
                serves
            };
            let Some(k) = inner.entries.range(i..).position(serves) else {
                i = inner.entries.len();
                break;
            };
            // A task's wake is on its way for the others, not for threads (invariant 2).
            let e = &inner.entries[i + k];
            budget = budget.saturating_sub(e.n());
            if e.is_thread() {
                thread_budget -= e.n();
            }
            inner.notify(i + k, wakes);
            i += k + 1;
        }
        inner.skip = Skip { at: i, fits: fits.min(smallest_passed - 1) };
        // A task watcher gives the watch to a thread held back since: the task may have been
        // leaked or never be polled again, and the thread, asleep without a timeout, would
        // never see the lapse (woken to become the watcher, it sleeps until the lapse).
        let task_watches = inner.threads > 0
            && inner.watcher.and_then(|w| inner.index(w)).is_some_and(|w| !inner.is_thread(w));
        let Some(r) = inner.reservation.as_ref().filter(|_| inner.watcher.is_none() || task_watches) else {
            return;
        };
        // Invariant 5: wake one waiter the reservation holds back, to see it out.
        // Free for a task, and for a thread, which does not wait for woken tasks (invariant 2).
        let owner = r.owner;
        let free = permits(s).saturating_sub(inner.inflight);
        // (The same where no thread waits: a herd of tasks walks no further than before.)
        let tasks_inflight = if inner.threads > 0 { inner.inflight_tasks } else { 0 };
        let free_for_threads = permits(s).saturating_sub(inner.inflight - tasks_inflight);
        let checking = &inner.checking; // not chosen while in user code
        let held_back = |e: &Entry| {
            let free = if e.is_thread() { free_for_threads } else { free };
            !e.notified
                && e.id != owner
                && e.n() <= free
                && (checking.is_empty() || !checking.contains(&e.id))
        };
        if free_for_threads == 0 {
            return; // nothing is held back from anyone
        }
        // A thread first: a task may have been leaked, or never be polled again. One pass, to
        // the first held-back thread (or the first held-back task where no thread waits).
        let mut chosen = None;
        for (i, e) in inner.entries.iter().enumerate().filter(|(_, e)| held_back(e)) {
            if e.is_thread() || inner.threads == 0 {
                chosen = Some(i);
                break;
            }
            if !task_watches {
                chosen.get_or_insert(i);
            }
        }
        if let Some(i) = chosen {
            let until = r.until;
            inner.set_watcher(Some(inner.entries[i].id));
            // A task that the timer will wake at the lapse need not be woken now to see it out.
            let timed = match &inner.entries[i].wake {
                Wake::Task(Some(waker)) => wake_at(until, waker),
                _ => None,
            };
            match timed {
                Some(token) => inner.watch_timer = Some(token),
                None => inner.notify(i, wakes), // woken to become it
            }
        }
    }
}

/// Takes `n` permits from `state` (last seen as `s`) for a waiter that a walk serves, clearing
/// the flags `clear` in the same CAS; returns the word it left, or `None` if the permits went
/// first. It looks at the count again after each failed CAS: a barger, or a `forget_permits`,
/// may have taken them since the walk looked (the loom models
/// `forget_racing_the_walk_that_serves_a_task_with_priority` and
/// `forget_and_close_racing_a_task_with_priority` fail if it does not).
fn take_for_served(state: &AtomicU64, mut s: u64, n: u64, clear: u64) -> Option<u64> {
    while permits(s) >= n {
        // Acquire: pairs with the Release RMW of the release that gave these permits back.
        match state.compare_exchange(s, (s - n) & !clear, Acquire, Relaxed) {
            Ok(_) => return Some((s - n) & !clear),
            Err(actual) => s = actual,
        }
    }
    None
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.sync_flags();
        self.walk();
        let Locked { inner, wakes, .. } = self;
        let inner = inner.as_mut().expect("the lock is held until drop");
        if !inner.graveyard.is_empty() {
            inner.graveyard.drain(..).for_each(|waker| wakes.push(Outgoing::Drop(waker)));
        }
        drop(self.inner.take());
        self.wakes.wake_all();
    }
}

impl Entry {
    /// Whether it is a thread's (else a task's).
    fn is_thread(&self) -> bool {
        matches!(self.wake, Wake::Thread)
    }

    /// Whether its waiter was last polled by the thread that made this process by `fork` (a task
    /// of an executor there; always under loom).
    fn last_polled_by_the_forker(&self) -> bool {
        #[cfg(not(loom))]
        return self.slot.polled_by.load(Relaxed) == fork::forker();
        #[cfg(loom)]
        true
    }

    /// Whether it has waited long enough for a reservation: `starve_at` has come. Under
    /// loom, where time does not pass, once a walk has passed it over, so that the models see
    /// the queue both without and with a reservation.
    fn starving(&self, now: Instant) -> bool {
        if cfg!(loom) { self.passed >= 1 } else { now >= self.starve_at }
    }

    /// Its request.
    #[inline]
    fn n(&self) -> u64 {
        u64::from(self.n)
    }

    /// How long its next reservation lasts: [`FIRST_LAPSE`] doubled `doublings` times, at most
    /// [`MAX_LAPSE`].
    fn lapse(&self) -> Duration {
        FIRST_LAPSE.saturating_mul(1 << self.doublings).min(MAX_LAPSE)
    }
}

impl Inner {
    /// An id for a new entry: greater than every id this queue gave before, and unique in the
    /// process ([`ID_BLOCK`]).
    fn new_id(&mut self) -> Id {
        if self.next_id == self.ids_end {
            self.take_id_block();
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    #[cold]
    fn take_id_block(&mut self) {
        // Relaxed: the block only has to be one nobody else got; each queue's ids then grow under
        // its lock.
        #[cfg(not(loom))]
        let start = ID_BLOCKS.fetch_add(ID_BLOCK, std::sync::atomic::Ordering::Relaxed);
        #[cfg(loom)]
        let start = self.next_id;
        assert!(start < Id::MAX - ID_BLOCK, "futex-semaphore: the process ran out of waiter ids");
        self.next_id = start;
        self.ids_end = start + ID_BLOCK;
    }

    /// The first section of this queue, or the first in a child made by `fork` since the last
    /// ("After a fork" in the module header): in a child, the threads queued here are the
    /// parent's, not copied, and their entries leave (with their wakes, watch and reservation).
    /// Returns whether this queue is a fork's copy.
    #[cold]
    fn after_fork(&mut self) -> bool {
        let copied = self.forks.is_some();
        // Forks are counted from before this: the queue registered (`Queue::lock`), and with it
        // the fork handlers (`fork::guard_forks`).
        self.forks = Some(fork::generation());
        if !copied {
            return false;
        }
        // The watch: a kept task watcher's timer wake is the parent's timer's (no thread runs it
        // here), so this section's walk chooses the watcher again, with this process's timer. Not
        // `cancel`led: that would lock the parent's timer, which a copied thread may have held.
        self.watcher = None;
        self.watch_timer = None;
        self.forgotten_below = self.next_id;
        for i in (0..self.entries.len()).rev() {
            if self.is_thread(i) || !self.entries[i].last_polled_by_the_forker() {
                // Leaked, not dropped: a waker of an executor that is not in the child may own
                // its task (dropping it would drop the future, whose cancel locks this queue) or
                // take a lock a copied thread held.
                if let Wake::Task(waker) = &mut self.entries[i].wake {
                    std::mem::forget(waker.take());
                }
                self.forgotten.push(self.entries[i].id);
                self.remove_at(i);
            }
        }
        true
    }

    /// Whether `me` is an entry [`after_fork`](Self::after_fork) took out; it is forgotten then
    /// (`*me` = `None`), so that its waiter queues again.
    fn forget(&mut self, me: &mut Option<Id>) {
        let taken_out = |id: Id| id < self.forgotten_below; // else queued since the fork
        let at = me.filter(|&id| taken_out(id)).and_then(|id| self.forgotten.iter().position(|&f| f == id));
        if let Some(at) = at {
            self.forgotten.swap_remove(at);
            *me = None;
        }
    }

    /// A waiter found its entry gone under the lock: a walk served it. If that was a grant to a
    /// task, it is claimed here, so that no thread can take it back (invariant 7).
    fn claimed(&mut self, id: Id) {
        if let Some(k) = self.task_grants.iter().position(|g| g.id == id) {
            let claimed = self.task_grants.swap_remove(k).slot.claim(id);
            debug_assert!(claimed, "a revoked grant's task is in `forgotten`, not here");
        }
    }

    /// Drops the records of grants to tasks that their task has claimed (invariant 7).
    fn prune_task_grants(&mut self) {
        self.task_grants.retain(|g| g.slot.outstanding(g.id));
    }

    /// Whether entry `i` is a thread's (else a task's).
    fn is_thread(&self, i: usize) -> bool {
        self.entries[i].is_thread()
    }

    /// Where entry `id` is. The entries a section looks for are mostly at the ends: the woken,
    /// near the front (they are served in order), and the one just queued, at the back. Ids grow
    /// by one per arrival, so `id` is at most `id - front` from the front; a binary search over
    /// 1000 entries of cache lines another core keeps writing costs more than the rest of a
    /// section, so the search widens from the front (exponential search).
    fn index(&self, id: Id) -> Option<usize> {
        let e = &self.entries;
        let (first, last) = (e.front()?.id, e.back()?.id);
        if id == first {
            return Some(0); // the reservation's owner, mostly, or the first woken
        }
        if id == last {
            return Some(e.len() - 1);
        }
        if id < first || id > last {
            return None;
        }
        let bound = e.len().min(usize::try_from(id - first).unwrap_or(usize::MAX).saturating_add(1));
        let (mut lo, mut step) = (0, 1);
        while lo + step < bound && e[lo + step].id <= id {
            lo += step;
            step *= 2;
        }
        // Now e[lo].id <= id < e[hi].id (or hi is the bound): a binary search in between.
        let mut hi = bound.min(lo + step);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if e[mid].id <= id {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (e[lo].id == id).then_some(lo)
    }

    /// What of `permits` a walk may wake threads for: all but threads' wakes on their way
    /// (invariant 2); 0 where no thread waits (a herd of tasks walks no further for it).
    fn thread_budget(&self, permits: u64) -> u64 {
        if self.threads == 0 {
            return 0;
        }
        permits.saturating_sub(self.inflight - self.inflight_tasks)
    }

    /// Takes entry `i` out of the queue, and out of `skip` (invariant 6), `inflight` (invariant
    /// 2) and the count of threads.
    fn detach(&mut self, i: usize) -> Entry {
        let e = self.entries.remove(i).expect("an entry's index");
        self.left(i);
        if e.notified {
            self.inflight -= e.n();
            if !e.is_thread() {
                self.inflight_tasks -= e.n();
            }
        }
        if e.is_thread() {
            self.threads -= 1;
        }
        e
    }

    /// Entry `i` leaves the queue: its wake (invariant 2), its watch (invariant 5) and its
    /// reservation (invariant 3) with it.
    fn remove_at(&mut self, i: usize) {
        let e = self.detach(i);
        if let Wake::Task(Some(waker)) = e.wake {
            self.graveyard.push(waker); // dropped after the lock
        }
        if self.watcher == Some(e.id) {
            self.set_watcher(None);
        }
        if self.reservation.as_ref().is_some_and(|r| r.owner == e.id) {
            self.end_reservation();
        }
    }

    /// Takes back the wake that entry `i` was sent and has now acted on (invariant 2); returns
    /// whether it had one.
    fn unmark(&mut self, i: usize) -> bool {
        let e = &mut self.entries[i];
        let woken = std::mem::replace(&mut e.notified, false);
        if woken {
            self.inflight -= e.n();
            if !e.is_thread() {
                self.inflight_tasks -= e.n();
            }
            self.skip.at = self.skip.at.min(i); // invariant 6: it is un-woken again
        }
        woken
    }

    /// Entry `i` has left the queue: those after it moved up one (invariant 6).
    fn left(&mut self, i: usize) {
        if i < self.skip.at {
            self.skip.at -= 1;
        }
    }

    fn end_reservation(&mut self) -> Option<Reservation> {
        self.set_watcher(None);
        self.reservation.take()
    }

    /// Changes the watcher (invariant 5); the old one's timer wake, if any, is not needed.
    fn set_watcher(&mut self, watcher: Option<Id>) {
        if self.watcher != watcher {
            self.watcher = watcher;
            if let Some(token) = self.watch_timer.take() {
                self.graveyard.extend(cancel(token));
            }
        }
    }

    /// Marks entry `i` woken and queues its wake (invariant 2).
    fn notify(&mut self, i: usize, wakes: &mut WakeList) {
        let e = &mut self.entries[i];
        if e.notified {
            return;
        }
        e.notified = true;
        self.inflight += e.n();
        if !e.is_thread() {
            self.inflight_tasks += e.n();
        }
        e.wake(wakes);
    }

    /// Serves entry `i`, whose permits the caller has taken for it: it leaves the queue, learns
    /// through its slot that it is done, and is woken. A task's grant is recorded with its
    /// `lapse` (invariant 7).
    fn grant(&mut self, i: usize, wakes: &mut WakeList, lapse: Lapse) {
        let id = self.entries[i].id;
        let mut e = self.detach(i);
        if self.watcher == Some(id) {
            self.set_watcher(None);
        }
        // Release: pairs with the Acquire load in `Slot::granted` (the CAS of `Slot::claim`).
        e.slot.granted.store(id + 1, Release);
        e.wake(wakes);
        if !e.is_thread() {
            // Invariant 7: a thread that asks before the task runs may take it back. Claimed
            // records are pruned now and then, not at each grant: a look at a slot the task's
            // core just wrote costs a cache miss under the lock. The entry's hold on the slot
            // passes to the record.
            if self.task_grants.len() >= GRANTS_KEPT {
                self.prune_task_grants();
            }
            self.task_grants.push(TaskGrant { id, n: e.n(), lapse, slot: e.slot });
        }
    }
}

impl Entry {
    fn wake(&mut self, wakes: &mut WakeList) {
        match &mut self.wake {
            Wake::Thread => {
                // Release: pairs with the Acquire load of its word by the sleeping thread, so that a
                // bump after its last look makes its futex wait return.
                self.slot.futex.bump(Release);
                wakes.push(Outgoing::Thread(Arc::clone(&self.slot)));
            }
            Wake::Task(waker) => {
                if let Some(waker) = waker.take() {
                    wakes.push(Outgoing::Task(waker));
                }
            }
        }
    }
}

/// A wake chosen under the lock, to send after it, or a waker let go of under it, to drop after it
/// (`Inner::graveyard`).
enum Outgoing {
    Thread(Arc<Slot>),
    Task(Waker),
    Drop(Waker),
}

/// Wakes chosen under the lock and sent after it: two inline (most sections send none, one, or
/// two: a release serves the reservation's owner and perhaps one more), the rest on the heap (a
/// close, a release of many permits).
#[derive(Default)]
struct WakeList {
    few: [Option<Outgoing>; 2],
    more: Vec<Outgoing>,
}

impl WakeList {
    fn push(&mut self, wake: Outgoing) {
        match self.few.iter_mut().find(|w| w.is_none()) {
            Some(free) => *free = Some(wake),
            None => self.more.push(wake),
        }
    }

    fn wake_all(&mut self) {
        // `few` fills in order (the first empty one ends it), and `more` only once it is full.
        for wake in self.few.iter_mut().map_while(Option::take) {
            wake.send();
        }
        if !self.more.is_empty() {
            self.more.drain(..).for_each(Outgoing::send);
        }
    }
}

impl Outgoing {
    fn send(self) {
        match self {
            Outgoing::Thread(slot) => Private::wake(&slot.futex, 1),
            // Another task's executor code, run in whichever thread's section chose the wake: a
            // panic must not escape into that thread (whose permits, taken in the section, or
            // queue entry it would strand), nor stop the wakes after this one, whose entries are
            // marked woken (invariant 2). The timer thread ignores such a panic too.
            Outgoing::Task(waker) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
            }
            // Likewise for a waker's drop.
            Outgoing::Drop(waker) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(waker)));
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Entries stay one cache line's worth (see [`Entry`]).
    #[test]
    fn an_entry_is_64_bytes() {
        assert!(std::mem::size_of::<Entry>() <= 64, "{} bytes", std::mem::size_of::<Entry>());
    }

    fn queue_of(ids: &[Id]) -> Inner {
        let mut inner = Inner::default();
        for &id in ids {
            inner.entries.push_back(Entry {
                id,
                n: 1,
                starve_at: Instant::now() + STARVE_AFTER,
                doublings: 0,
                passed: 0,
                notified: false,
                slot: Arc::new(Slot::new()),
                wake: Wake::Thread,
            });
            inner.threads += 1;
        }
        inner
    }

    /// A finished waiter's slot is reused by this thread's next wait only if nobody else holds it,
    /// and it comes back ungranted (a granted spare would let the next waiter leave with
    /// permits nobody took for it).
    #[test]
    fn a_recycled_slot_comes_back_ungranted_and_a_shared_one_is_not_kept() {
        let slot = Slot::fresh();
        slot.granted.store(1, Release);
        let elsewhere = Arc::clone(&slot); // a wake on its way, say
        Slot::recycle(slot);
        let next = Slot::fresh();
        assert!(!Arc::ptr_eq(&next, &elsewhere), "a slot someone else holds was handed out again");
        assert!(!next.granted());
        drop(next);
        Slot::recycle(elsewhere.clone());
        assert!(!Arc::ptr_eq(&Slot::fresh(), &elsewhere), "kept while shared");
        let kept = Arc::as_ptr(&elsewhere);
        Slot::recycle(elsewhere);
        let reused = Slot::fresh();
        assert_eq!(Arc::as_ptr(&reused), kept, "the spare was not reused");
        assert!(!reused.granted(), "the spare came back granted");
    }

    /// A task's slot, its grant claimed, is reused though the queue's record of that grant still
    /// holds it (`Slot::recycle_claimed`): the record takes back only its own grant (the flag is
    /// tagged with the entry's id), never a later waiter's in the same slot (invariant 7).
    #[test]
    fn a_record_of_a_claimed_grant_never_takes_back_a_later_grant_in_the_same_slot() {
        let slot = Slot::fresh();
        slot.granted.store(7 + 1, Release); // granted to entry 7
        let record = Arc::clone(&slot);
        assert!(!slot.claim(8), "another entry's grant claimed");
        assert!(slot.claim(7));
        Slot::recycle_claimed(slot);
        let next = Slot::fresh();
        assert!(Arc::ptr_eq(&next, &record), "the claimed slot was not reused");
        next.granted.store(9 + 1, Release); // granted to entry 9, a later waiter of this thread
        assert!(!record.outstanding(7));
        assert!(!record.revoke(7), "a record took back a later grant");
        assert!(next.claim(9));
    }

    /// A waiter queued alone on `state` with nothing free, whose clock is far from starving; then
    /// a release of one permit, whose walk wakes it, and a barger that takes the permit before it
    /// looks; then its look. Returns the queue and its id.
    fn woken_then_robbed(state: &AtomicU64, wake: impl FnOnce() -> Wake) -> (Queue, Option<Id>) {
        let queue = Queue::default();
        let (slot, mut me) = (Slot::fresh(), None);
        let short = queue.lock(state).take_or_queue(&mut me, 1, &slot, wake);
        assert!(matches!(short, Take::Short { .. }));
        queue.inner.lock().unwrap().entries[0].starve_at = Instant::now() + Duration::from_secs(3600);
        state.fetch_add(1, Release);
        drop(queue.lock(state)); // the release's walk
        assert!(queue.inner.lock().unwrap().entries[0].notified, "the release woke nobody");
        state.fetch_sub(1, Acquire); // the barger
        let look = queue.lock(state).take(me, 1);
        assert!(matches!(look, Take::Short { held_back_until: None }));
        (queue, me)
    }

    /// The queue's clock ([`Locked::kept`]): an arrival into an empty queue reads the time; one
    /// behind others is stamped with the queue's last reading (never later than its arrival, so
    /// it starves no later than `STARVE_AFTER` after it); a reading is used at most
    /// `CLOCK_REUSES` times, and not once the queue has emptied.
    #[test]
    fn a_kept_reading_stamps_arrivals_a_bounded_number_of_times_while_waiters_queue() {
        let state = AtomicU64::new(0);
        let queue = Queue::default();
        let old = Instant::now().checked_sub(Duration::from_secs(1)).expect("a clock past 1 s");
        let task = || Wake::Task(Some(Waker::noop().clone()));
        queue.inner.lock().unwrap().clock = Some(old); // a reading of an earlier busy spell
        let before = Instant::now();
        let (mut first, mut second) = (None, None);
        let _ = queue.lock(&state).take_or_queue(&mut first, 1, &Slot::fresh(), task);
        let stamped = queue.inner.lock().unwrap().entries[0].starve_at;
        assert!(
            stamped >= before + STARVE_AFTER,
            "the first arrival used a reading from before the queue emptied"
        );
        queue.inner.lock().unwrap().clock = Some(old);
        let _ = queue.lock(&state).take_or_queue(&mut second, 1, &Slot::fresh(), task);
        let stamped = queue.inner.lock().unwrap().entries[1].starve_at;
        assert_eq!(stamped, old + STARVE_AFTER, "an arrival behind others read the clock");
        let mut locked = queue.lock(&state);
        let uses: Vec<bool> = (0..2 * CLOCK_REUSES).map(|_| locked.kept() == old).collect();
        let kept = uses.iter().take_while(|&&k| k).count();
        assert_eq!(kept, usize::from(CLOCK_REUSES) - 1, "uses of one reading (the arrival's was one)");
        assert!(locked.kept() > old);
    }

    /// A head that a walk finds starving and can serve at once (the permits cover it, no thread
    /// waits) is granted them in that walk with no reservation claimed, so no clock read for its
    /// lapse: a task's grant lapses `lapse` after the first thread that looks at it, and is taken
    /// back then (invariant 7).
    #[test]
    fn a_grant_made_at_once_lapses_after_a_threads_first_look() {
        let state = AtomicU64::new(0);
        let queue = Queue::default();
        let (slot, mut me) = (Slot::fresh(), None);
        let task = || Wake::Task(Some(Waker::noop().clone()));
        let _ = queue.lock(&state).take_or_queue(&mut me, 1, &slot, task);
        queue.inner.lock().unwrap().entries[0].starve_at = Instant::now(); // starving
        state.fetch_add(1, Release);
        let mut release = queue.lock(&state);
        release.gave_back();
        drop(release); // the release's walk
        {
            let inner = queue.inner.lock().unwrap();
            assert!(inner.entries.is_empty() && inner.reservation.is_none(), "not served at once");
            assert!(matches!(inner.task_grants[..], [TaskGrant { lapse: Lapse::After(FIRST_LAPSE), .. }]));
        }
        assert!(!is_reserved(state.load(Relaxed)) && !is_queued(state.load(Relaxed)));
        assert_eq!(permits(state.load(Relaxed)), 0);
        let before = Instant::now();
        let lapse = queue.lock(&state).unclaimed_grant_lapse().expect("no lapse for the grant");
        assert!(lapse >= before + FIRST_LAPSE, "the lapse runs from before the look");
        assert_eq!(queue.lock(&state).unclaimed_grant_lapse(), Some(lapse), "moved at a second look");
        queue.lock(&state).lapse_at(lapse.checked_sub(Duration::from_nanos(1)).unwrap());
        assert_eq!(permits(state.load(Relaxed)), 0, "taken back before its lapse");
        queue.lock(&state).lapse_at(lapse);
        assert_eq!(permits(state.load(Relaxed)), 1, "not taken back at its lapse");
        assert!(!slot.claim(me.expect("queued")), "claimed after it was taken back");
    }

    /// A release wakes a thread queued behind a task it wakes for the same permits, and not a
    /// task behind them: a woken task's request is on its way for other tasks, not for threads
    /// (invariant 2), as the task may never be polled (its executor's only worker blocked in that
    /// thread's acquire, say). Counted for threads, the thread slept on with the permits free.
    /// (Under loom the clock claims a priority first: `tests/loom.rs` models the walk with one.)
    #[test]
    fn a_release_wakes_a_thread_behind_a_woken_task_for_the_same_permits() {
        let state = AtomicU64::new(0);
        let queue = Queue::default();
        let far = Instant::now() + Duration::from_secs(3600);
        for (n, thread) in [(2, false), (1, true), (1, false)] {
            let mut me = None;
            let wake = move || if thread { Wake::Thread } else { Wake::Task(Some(Waker::noop().clone())) };
            let short = queue.lock(&state).take_or_queue(&mut me, n, &Slot::fresh(), wake);
            assert!(matches!(short, Take::Short { held_back_until: None }));
            queue.inner.lock().unwrap().entries.iter_mut().for_each(|e| e.starve_at = far);
        }
        state.fetch_add(2, Release);
        drop(queue.lock(&state)); // the release's walk
        let inner = queue.inner.lock().unwrap();
        assert!(inner.reservation.is_none());
        let woken: Vec<bool> = inner.entries.iter().map(|e| e.notified).collect();
        assert_eq!(woken, [true, true, false], "woken: the task for 2, the thread for 1, the task for 1");
    }

    /// A waker whose drop looks whether the queue's lock is free, as a task that owns a permit
    /// of the semaphore would lock it (its permit's release) when its last waker goes.
    struct DropLooksAtTheLock {
        queue: Arc<Queue>,
        dropped_under_the_lock: Arc<AtomicU64>,
    }

    impl std::task::Wake for DropLooksAtTheLock {
        fn wake(self: Arc<Self>) {}
    }

    impl Drop for DropLooksAtTheLock {
        fn drop(&mut self) {
            if self.queue.inner.try_lock().is_err() {
                self.dropped_under_the_lock.fetch_add(1, Relaxed);
            }
        }
    }

    /// The timer's clone of a watcher's waker, the last one, is dropped after the queue's lock
    /// when the watch is taken back: replaced by a watch for another lapse, or ended with the
    /// watcher (`timer::cancel` hands it back; `Inner::graveyard`). Dropped under the lock, a
    /// task that owned a permit would have locked the queue again in its release and hung.
    #[test]
    #[cfg_attr(miri, ignore = "no timer thread under Miri (`sync::timer`)")]
    fn a_cancelled_watchs_waker_is_dropped_after_the_lock() {
        let state = AtomicU64::new(0);
        let queue = Arc::new(Queue::default());
        let under = Arc::new(AtomicU64::new(0));
        let far = Instant::now() + Duration::from_secs(3600);
        for end_the_watcher in [false, true] {
            let waker = Waker::from(Arc::new(DropLooksAtTheLock {
                queue: Arc::clone(&queue),
                dropped_under_the_lock: Arc::clone(&under),
            }));
            let mut locked = queue.lock(&state);
            assert!(locked.watch_until(far, &waker), "no timer thread");
            locked.inner().watcher = Some(7);
            drop(waker); // the timer's clone is the last
            if end_the_watcher {
                locked.inner().set_watcher(None);
            } else {
                assert!(locked.watch_until(far + Duration::from_secs(1), Waker::noop()));
            }
            drop(locked);
            assert_eq!(Arc::strong_count(&queue), 1, "the cancelled watch's waker was kept");
            assert_eq!(under.load(Relaxed), 0, "dropped under the lock (end_the_watcher: {end_the_watcher})");
            locked = queue.lock(&state);
            locked.inner().set_watcher(None);
        }
    }

    /// A thread woken for a permit that a barger took before it looked gets the reservation in
    /// the section of that look, its clock notwithstanding: the next permit is its (`robbed`).
    #[test]
    fn a_robbed_thread_gets_priority_at_once() {
        let state = AtomicU64::new(0);
        let (queue, me) = woken_then_robbed(&state, || Wake::Thread);
        assert!(is_reserved(state.load(Relaxed)), "no reservation for the robbed thread");
        assert_eq!(queue.inner.lock().unwrap().reservation.as_ref().map(|r| r.owner), me);
        // The next release grants it the permit: no barger can take it.
        state.fetch_add(1, Release);
        drop(queue.lock(&state));
        assert_eq!(permits(state.load(Relaxed)), 0);
        assert!(queue.inner.lock().unwrap().entries.is_empty(), "the owner was not served");
    }

    /// A task keeps its clock when robbed (a robbed task costs a poll, not a context switch), and
    /// so does a thread whose reservation has lapsed before (barging gets its `STARVE_AFTER`).
    #[test]
    fn a_robbed_task_or_lapsed_thread_keeps_its_clock() {
        let state = AtomicU64::new(0);
        let (queue, _) = woken_then_robbed(&state, || Wake::Task(Some(std::task::Waker::noop().clone())));
        assert!(!is_reserved(state.load(Relaxed)), "a robbed task got priority");
        assert!(queue.inner.lock().unwrap().reservation.is_none());
        let state = AtomicU64::new(0);
        let queue = Queue::default();
        let (slot, mut me) = (Slot::fresh(), None);
        let _ = queue.lock(&state).take_or_queue(&mut me, 1, &slot, || Wake::Thread);
        {
            let mut inner = queue.inner.lock().unwrap();
            inner.entries[0].starve_at = Instant::now() + Duration::from_secs(3600);
            inner.entries[0].doublings = 1; // a reservation of its lapsed
        }
        state.fetch_add(1, Release);
        drop(queue.lock(&state));
        state.fetch_sub(1, Acquire);
        assert!(matches!(queue.lock(&state).take(me, 1), Take::Short { .. }));
        assert!(
            !is_reserved(state.load(Relaxed)),
            "a thread whose reservation lapsed got priority again at once"
        );
    }

    /// Every walk wakes exactly the entries a walk over the whole queue would (the first un-woken
    /// ones, in arrival order, whose requests fit in what is left), whatever the hint of
    /// invariant 6 lets it skip: over a long mixed run of arrivals of 1 to 3 permits, releases,
    /// woken waiters that take their permits or find them gone (a barger), and waiters leaving.
    #[test]
    fn walks_wake_what_a_walk_of_the_whole_queue_would() {
        let state = AtomicU64::new(0);
        let queue = Queue::default();
        let mut waiters: Vec<(Option<Id>, u64)> = Vec::new();
        let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = |bound: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % bound
        };
        let (mut skipped, mut walks) = (0, 0);
        // Under Miri a few hundred steps: each is a locked section with allocations.
        for step in 0..if cfg!(miri) { 300 } else { 20_000 } {
            // What a walk over the whole queue, as it stands before this section's walk, wakes.
            let expected = |inner: &Inner, permits: u64| {
                // Threads count only threads' wakes as on their way (invariant 2).
                let mut budget = permits.saturating_sub(inner.inflight);
                let mut thread_budget = inner.thread_budget(permits);
                let mut woken = Vec::new();
                for e in inner.entries.iter().filter(|e| !e.notified) {
                    if e.n() <= if e.is_thread() { thread_budget } else { budget } {
                        budget = budget.saturating_sub(e.n());
                        if e.is_thread() {
                            thread_budget -= e.n();
                        }
                        woken.push(e.id);
                    }
                }
                // Invariant 2 (tasks' part of it: the watcher's choice).
                let tasks: u64 =
                    inner.entries.iter().filter(|e| e.notified && !e.is_thread()).map(Entry::n).sum();
                assert_eq!(inner.inflight_tasks, tasks);
                woken
            };
            let mut locked = queue.lock(&state);
            match next(8) {
                0..=2 => {
                    let n = 1 + next(3);
                    let mut me = None;
                    // Threads and tasks alike (a task's waker does nothing here).
                    let wake =
                        if next(2) == 0 { Wake::Thread } else { Wake::Task(Some(Waker::noop().clone())) };
                    let _ = locked.take_or_queue(&mut me, n, &Slot::fresh(), || wake);
                    if me.is_some() {
                        waiters.push((me, n));
                    }
                }
                3 | 4 => {
                    let k = 1 + next(3);
                    state.fetch_add(k, Release);
                }
                5 | 6 if !waiters.is_empty() => {
                    let i = next(waiters.len() as u64) as usize;
                    if next(2) == 0 && permits(state.load(Relaxed)) > 0 {
                        state.fetch_sub(1, Acquire); // a barger first
                    }
                    let (me, n) = waiters[i];
                    if matches!(locked.take(me, n), Take::Taken) {
                        waiters.swap_remove(i);
                    }
                }
                7 if !waiters.is_empty() => {
                    let i = next(waiters.len() as u64) as usize;
                    let (mut me, n) = waiters.swap_remove(i);
                    locked.leave(&mut me, n);
                }
                _ => {}
            }
            // The walk of this section, checked against one of the whole queue as it stands
            // just before it.
            let inner = locked.inner();
            for e in inner.entries.iter_mut() {
                e.starve_at = Instant::now() + Duration::from_secs(3600); // no reservation here
            }
            let want = expected(inner, permits(state.load(Relaxed)));
            let before: Vec<Id> = inner.entries.iter().filter(|e| e.notified).map(|e| e.id).collect();
            skipped += usize::from(inner.skip.at > 0 && inner.skip.fits > 0);
            drop(locked);
            let inner = queue.inner.lock().unwrap();
            let woken: Vec<Id> = inner
                .entries
                .iter()
                .filter(|e| e.notified && !before.contains(&e.id))
                .map(|e| e.id)
                .collect();
            assert_eq!(woken, want, "step {step}: the walk woke others than a walk of the whole queue");
            walks += 1;
        }
        assert!(
            skipped > walks / 10,
            "the hint was rarely used ({skipped} of {walks} walks): the test misses its aim"
        );
    }

    /// Ids grow in each queue, across the end of a block, and no two queues give the same one
    /// ([`ID_BLOCK`]: a record of a grant knows it by its id, in a slot any semaphore may reuse).
    #[test]
    fn ids_grow_in_each_queue_and_no_two_queues_give_the_same() {
        let (mut a, mut b) = (Inner::default(), Inner::default());
        let mut ids = vec![a.new_id(), b.new_id()];
        a.next_id = a.ids_end - 1; // the last of `a`'s block
        ids.extend([a.new_id(), a.new_id(), b.new_id()]);
        assert!(ids[0] < ids[2] && ids[2] < ids[3], "a's ids: {ids:?}");
        assert!(ids[1] < ids[4], "b's ids: {ids:?}");
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "an id given twice: {ids:?}");
    }

    /// `index` finds every entry and nothing else, whatever gaps leaving waiters left (a miss
    /// would read as "served": `take` would hand out permits it never took).
    #[test]
    fn index_finds_every_entry_across_gaps() {
        let shapes: [&[Id]; 5] = [
            &[],
            &[7],
            &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            &[3, 4, 9, 10, 11, 40, 41, 90],
            &[0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 1000],
        ];
        for ids in shapes {
            let inner = queue_of(ids);
            for probe in 0..=1001 {
                let expected = ids.iter().position(|&id| id == probe);
                assert_eq!(inner.index(probe), expected, "id {probe} in {ids:?}");
            }
        }
        let mut wrapped = queue_of(&[]);
        for id in 0..64 {
            wrapped.entries.push_back(queue_of(&[id]).entries.pop_front().unwrap());
            if id % 3 == 0 {
                wrapped.entries.pop_front(); // the ring wraps, and the ids keep gaps
            }
        }
        let ids: Vec<Id> = wrapped.entries.iter().map(|e| e.id).collect();
        for probe in 0..70 {
            assert_eq!(wrapped.index(probe), ids.iter().position(|&id| id == probe), "id {probe}");
        }
    }
}
