//! How many times `fork` made this process: the generation a process-local structure compares
//! with its own to learn that it is a copy in a child, where only the forking thread was copied.
//! The timer (`timer.rs`) starts a new thread then; the waiter queue takes out the threads that
//! waited in it and the tasks other threads polled last (`raw::queue`, "After a fork"), for
//! which the child handler also records the forking thread ([`forker`]).
//!
//! The count is kept by a child handler that [`guard_forks`] registers once, before the first
//! structure that needs it records a generation: a fork before that has nothing to tell. Reading
//! it is one load, where asking for the process id is a system call (about 200 ns here). The same
//! registration guards the process-wide locks across each fork ([`guard_forks`]).

#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How many times a `fork` made this process from the one that first called [`guard_forks`].
#[cfg(not(loom))]
static FORKS: AtomicU64 = AtomicU64::new(0);

/// The thread that made this process by `fork` (its [`this_thread`]), recorded by the child
/// handler: 0 before any fork.
#[cfg(not(loom))]
static FORKER: AtomicU64 = AtomicU64::new(0);

#[cfg(all(unix, not(loom)))]
unsafe extern "C" {
    /// POSIX's `pthread_self` (`pthread_t`: an integer or a pointer, pointer-sized on every unix
    /// target).
    fn pthread_self() -> usize;
}

/// A name for the calling thread that the forking thread keeps in a child made by `fork`
/// (`pthread_self`, which the forking thread's stays there; no thread-local, whose first use may
/// allocate).
#[cfg(all(unix, not(loom)))]
#[inline]
pub(crate) fn this_thread() -> u64 {
    // SAFETY: `pthread_self` has no preconditions and always succeeds (async-signal-safe).
    unsafe { pthread_self() as u64 }
}

/// The forking thread's [`this_thread`] in a child made by `fork`.
#[cfg(not(loom))]
#[inline]
pub(crate) fn forker() -> u64 {
    FORKER.load(Relaxed)
}

/// Without `fork` every thread is the one that forked: nothing to tell apart. (Under loom,
/// where nothing forks, nothing asks.)
#[cfg(all(not(unix), not(loom)))]
pub(crate) fn this_thread() -> u64 {
    0
}

/// This process's generation: the number of forks since [`guard_forks`] was first called.
#[cfg(not(loom))]
#[inline]
pub(crate) fn generation() -> u64 {
    // Relaxed: the child handler runs in the forking thread before `fork` returns there, and any
    // other thread of the child is started after it.
    FORKS.load(Relaxed)
}

/// Under loom nothing forks (the models stand a fork in with a hook on the queue).
#[cfg(loom)]
pub(crate) fn generation() -> u64 {
    0
}

#[cfg(all(unix, not(loom)))]
unsafe extern "C" {
    /// POSIX's `pthread_atfork`, in the C library of every unix target.
    fn pthread_atfork(
        prepare: Option<extern "C" fn()>,
        parent: Option<extern "C" fn()>,
        child: Option<extern "C" fn()>,
    ) -> std::ffi::c_int;
}

/// Registers, once, the `fork` handlers: in the child, the count of [`generation`] and the
/// forking thread ([`forker`]); and around each `fork`, the locks a child must not find held by a
/// thread it does not have (every waiter queue's, `raw::queue::fork_locks`, then the timer's,
/// `timer.rs`, "Across a fork": the order in which a section takes them), taken by the forking
/// thread just before it and released just after it, in the parent and in the child.
///
/// Call it holding none of those locks: a `fork` in another thread holds the C library's list
/// of handlers while its handlers run, and registering waits for that list. A queue calls it as
/// it registers, before its first section, so later calls, under a queue's lock included, find
/// it done. No-op under Miri, which runs no `pthread_atfork` (and never forks).
#[cfg(all(unix, not(loom)))]
pub(crate) fn guard_forks() {
    extern "C" fn before() {
        crate::raw::queue::fork_locks::hold();
        super::timer::hold_across_fork();
    }
    extern "C" fn in_parent() {
        super::timer::release_after_fork();
        crate::raw::queue::fork_locks::release();
    }
    extern "C" fn in_child() {
        FORKS.fetch_add(1, Relaxed);
        FORKER.store(this_thread(), Relaxed);
        in_parent();
    }
    if cfg!(miri) {
        return;
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `pthread_atfork` with handlers that take process-wide locks in the forking
        // thread before the fork and release them after it (the child's copy of that thread
        // releases the copies), the child's after an atomic add, `pthread_self` and an atomic
        // store. If it fails (out of memory), forks go uncounted and unguarded: a child then has
        // no timer (its tasks held back by a reservation wait for another wake, as where there is
        // no timer at all), its queues keep the parent's waiters, and a lock held at the fork
        // stays held there (as before these handlers existed).
        unsafe { pthread_atfork(Some(before), Some(in_parent), Some(in_child)) };
    });
}

/// Without `fork` there is nothing to count or guard. (Under loom nothing calls it: there is no
/// timer, and queues do not register.)
#[cfg(all(not(unix), not(loom)))]
pub(crate) fn guard_forks() {}
