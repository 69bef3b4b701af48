//! A process-wide timer that wakes a task at an instant: how a task held back by a reservation
//! sleeps until the reservation lapses, as a thread does with a timed futex wait, without knowing
//! its executor's timer.
//!
//! One thread, named `futex-sem-timer`, started by the first task that needs it and then
//! parked while nothing is due. It keeps the pending wakes in a short list (about one per
//! semaphore whose reservation holds a task back: its watcher, `queue` invariant 5) and sleeps
//! with `park_timeout` until the earliest. A wake that is no longer needed (the reservation was
//! served first) is cancelled; one that fires late anyway is a spurious wake, which every future
//! tolerates.
//!
//! # Ticking while wakes are asked for
//! Nearly every wake is cancelled: a reservation is served long before it lapses (in the async
//! herd of `docs/benchmarks.md`, tens of thousands of wakes asked for, none fired). A thread
//! that slept until each cancelled wake's instant and then parked for good was unparked (a
//! system call, under the caller's queue lock) by the next wake asked for, and woke twice for
//! each: 30-50 times in a herd of 20-25 ms. So while wakes are asked for, the thread sleeps at most
//! [`BUSY_TICK`] at a time, and says so in `wakes_at`: a wake due after that needs no unpark,
//! and the thread wakes once a tick. After a tick in which no wake was asked for, it parks until
//! the earliest due, or for good.
//!
//! # Across a fork
//! A child made by `fork` has copies of [`TIMER`] and [`THREAD`] but only the forking thread: a
//! lock another thread held at the fork (the timer thread's look, a section's [`wake_at`] or
//! [`cancel`]) stays held there for ever, and the child's first task held back by a reservation
//! would hang in `wake_at` (under its queue's lock). So the forking thread takes both locks just
//! before each `fork` and releases them just after it, in the parent and in the child
//! ([`hold_across_fork`], from `fork::guard_forks`, registered before either lock is first taken,
//! and after every waiter queue's lock, as sections take them): the fork waits for the holder's
//! short section, and the child finds both free. No executor code runs under either lock, and no
//! thread forks while it holds one, so the wait ends.
//!
//! If the thread cannot be started, or under Miri (which reports a thread left running at exit),
//! [`wake_at`] returns `None` and the caller yields to its executor instead; under loom the
//! `sync` shim has no timer at all.

use super::fork::{generation, guard_forks};
use crate::raw::queue::FIRST_LAPSE;
#[cfg(unix)]
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Names a pending wake, to [`cancel`] it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token(u64);

struct Timer {
    /// The pending wakes: when, which, whom.
    due: Vec<(Instant, Token, Waker)>,
    /// The token of the next wake asked for: also how many have been (the thread ticks while
    /// this moves).
    next_token: u64,
    /// When the timer thread will next look at `due` by itself (`None`: only when unparked). A
    /// wake due no sooner needs no unpark: cancelled wakes leave this as it was, and the thread
    /// ticks while wakes are asked for, so an unpark (a system call) is rarely needed.
    wakes_at: Option<Instant>,
}

/// The longest the timer thread sleeps while wakes are being asked for (see "Ticking while
/// wakes are asked for"): 0.5 ms under the shortest lapse of a reservation
/// ([`FIRST_LAPSE`], 2 ms: 1.5 ms), so that a watcher's wake, due a lapse after its reservation
/// was claimed, is due no sooner than the thread's next look, and needs no unpark, even where
/// the time it was reckoned from was read up to 0.5 ms before the thread's last look (a section
/// that waited for the timer's lock, or read the time early).
const BUSY_TICK: Duration = FIRST_LAPSE.saturating_sub(Duration::from_micros(500));

static TIMER: Mutex<Timer> = Mutex::new(Timer { due: Vec::new(), next_token: 0, wakes_at: None });
/// The timer thread, once started, with the fork [`generation`] then: a child made by `fork` has
/// no timer thread (only the forking thread is copied), so it starts its own.
static THREAD: Mutex<Option<(u64, Thread)>> = Mutex::new(None);
/// The [`generation`] + 1 when [`THREAD`] was last set (0: never): so that a wake need not take
/// `THREAD`'s lock, which both workers of a runtime would pass back and forth, only to learn
/// that the timer runs; it does to unpark it.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// Arranges for `waker` to be woken once `at` has passed, unless [`cancel`]led first. Returns
/// `None` if there is no timer to do it (the caller then yields instead), or if the waker's
/// `clone` panics: this runs in whichever thread's section chose the watcher, often not the
/// task's, so an executor's panic must not escape into, say, another thread's `drop` of a
/// permit (the caller then wakes the task instead). Asked again for the same instant and task,
/// it returns the pending wake's token.
pub(crate) fn wake_at(at: Instant, waker: &Waker) -> Option<Token> {
    arm(at, waker).map(|(token, _)| token)
}

/// [`wake_at`], saying also whether it unparked the timer thread.
fn arm(at: Instant, waker: &Waker) -> Option<(Token, bool)> {
    if cfg!(miri) {
        return None; // Miri reports a thread left running at exit
    }
    if STARTED.load(Relaxed) != generation() + 1 {
        timer_thread()?; // none yet in this process (or since its `fork`): started, or `None`
    }
    let pending = |timer: &Timer| {
        timer.due.iter().find(|(t, _, w)| *t == at && w.will_wake(waker)).map(|&(_, token, _)| token)
    };
    if let Some(token) = pending(&lock()) {
        return Some((token, false)); // asked again (a watcher's every poll): no clone
    }
    // Outside the lock: the executor's code, which may panic.
    let clone = std::panic::catch_unwind(|| waker.clone()).ok()?;
    let mut timer = lock();
    if let Some(token) = pending(&timer) {
        drop(timer);
        drop(clone); // outside the lock, as every waker's drop here
        return Some((token, false)); // registered meanwhile by another section
    }
    let token = Token(timer.next_token);
    timer.next_token += 1;
    timer.due.push((at, token, clone));
    let unpark = timer.wakes_at.is_none_or(|t| at < t);
    if unpark {
        timer.wakes_at = Some(at);
    }
    drop(timer);
    if unpark {
        timer_thread()?.unpark();
    }
    Some((token, unpark))
}

/// The timer thread of this process, started if there is none; `None` if it cannot be.
fn timer_thread() -> Option<Thread> {
    // Before this thread first takes `THREAD` ("Across a fork"). Done already wherever a queue
    // asks for a wake (the queue's registration did it), so never registered here under a lock.
    guard_forks();
    let mut thread = THREAD.lock().unwrap_or_else(PoisonError::into_inner);
    let forks = generation();
    match &*thread {
        Some((started_at, t)) if *started_at == forks => Some(t.clone()),
        _ => {
            let spawned = std::thread::Builder::new().name("futex-sem-timer".into()).spawn(run).ok()?;
            lock().wakes_at = None; // the new thread has not parked yet: the next wake unparks it
            *thread = Some((forks, spawned.thread().clone()));
            STARTED.store(forks + 1, Relaxed);
            Some(spawned.thread().clone())
        }
    }
}

/// Takes back a pending wake that is no longer needed (if it has not fired yet), returning its
/// waker for the caller to drop where no lock is held: dropping a waker runs the executor's code.
#[must_use = "the waker is to be dropped after the caller's locks"]
pub(crate) fn cancel(token: Token) -> Option<Waker> {
    let mut timer = lock();
    let i = timer.due.iter().position(|(_, t, _)| *t == token)?;
    let (.., waker) = timer.due.swap_remove(i);
    Some(waker)
}

/// The timer; no executor code runs under its lock (wakers are cloned before it and dropped
/// after it), and it is left whole by any panic, so poisoning is ignored.
fn lock() -> MutexGuard<'static, Timer> {
    TIMER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Both of the timer's locks, in the order [`timer_thread`] takes them.
#[cfg(unix)]
type Locks = (MutexGuard<'static, Option<(u64, Thread)>>, MutexGuard<'static, Timer>);

#[cfg(unix)]
thread_local! {
    /// The timer's locks, held by the forking thread across its `fork` ("Across a fork").
    static HELD_ACROSS_FORK: Cell<Option<Locks>> = const { Cell::new(None) };
}

/// Just before a `fork`, in the forking thread: takes the timer's locks ("Across a fork"). If
/// this thread's locals are gone (it is exiting), the locks are released at once and the fork
/// goes unguarded, as before this handler.
#[cfg(unix)]
pub(super) fn hold_across_fork() {
    let locks = (THREAD.lock().unwrap_or_else(PoisonError::into_inner), lock());
    let _ = HELD_ACROSS_FORK.try_with(|held| held.set(Some(locks)));
}

/// Just after a `fork`, in the parent and in the child: releases what [`hold_across_fork`] took.
#[cfg(unix)]
pub(super) fn release_after_fork() {
    let _ = HELD_ACROSS_FORK.try_with(Cell::take);
}

/// The timer thread: wakes whatever is due, then sleeps until the next instant, or for a tick
/// while wakes are asked for.
fn run() {
    let mut fire = Vec::new();
    // `next_token` at the last look: the thread ticks until a look finds it unchanged.
    let mut asked = u64::MAX;
    loop {
        let now = Instant::now();
        let mut timer = lock();
        let mut i = 0;
        while i < timer.due.len() {
            if timer.due[i].0 <= now {
                fire.push(timer.due.swap_remove(i).2);
            } else {
                i += 1;
            }
        }
        let mut next = timer.due.iter().map(|(t, ..)| *t).min();
        if timer.next_token != asked {
            // Wakes were asked for since the last look: more are likely.
            next = Some(next.map_or(now + BUSY_TICK, |t| t.min(now + BUSY_TICK)));
        }
        asked = timer.next_token;
        timer.wakes_at = next;
        drop(timer);
        for waker in fire.drain(..) {
            // A waker that panics must not take the timer down with it: others still need it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
        }
        // An unpark since `wakes_at` was stored makes this return at once (the token is kept).
        match next {
            Some(t) => std::thread::park_timeout(t.saturating_duration_since(Instant::now())),
            None => std::thread::park(),
        }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::{BUSY_TICK, FIRST_LAPSE, arm, cancel, lock, wake_at};
    use std::sync::Arc;
    use std::sync::mpsc::{Receiver, Sender, channel};
    use std::task::{Wake, Waker};
    use std::time::{Duration, Instant};

    /// A waker that says on a channel that it was woken, and which one it is.
    struct Tell(u32, std::sync::Mutex<Sender<u32>>);

    impl Wake for Tell {
        fn wake(self: Arc<Self>) {
            let _ = self.1.lock().unwrap().send(self.0);
        }
    }

    fn waker(id: u32) -> (Waker, Receiver<u32>) {
        let (tx, rx) = channel();
        (Waker::from(Arc::new(Tell(id, std::sync::Mutex::new(tx)))), rx)
    }

    const PATIENCE: Duration = Duration::from_secs(10);

    /// A waker whose `clone` panics (an executor's bug), built on a raw vtable.
    fn panicking_clone_waker() -> Waker {
        use std::task::{RawWaker, RawWakerVTable};
        fn clone(_: *const ()) -> RawWaker {
            panic!("this executor's clone panics")
        }
        fn noop(_: *const ()) {}
        static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
        // SAFETY: the vtable's functions ignore the data pointer, which is never read.
        unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
    }

    /// `wake_at` runs in whichever thread's section chose the watcher: a waker whose `clone`
    /// panics makes it return `None` (the caller wakes the task instead), and the timer goes
    /// on serving others.
    #[test]
    fn a_waker_whose_clone_panics_is_refused_not_propagated() {
        let bad = panicking_clone_waker();
        let at = Instant::now() + Duration::from_millis(1);
        let refused = std::panic::catch_unwind(|| wake_at(at, &bad));
        assert!(matches!(refused, Ok(None)), "the panic stays inside wake_at");
        let (w, rx) = waker(7);
        assert!(wake_at(at, &w).is_some());
        assert_eq!(rx.recv_timeout(PATIENCE), Ok(7));
    }

    #[test]
    fn a_wake_fires_once_its_instant_has_passed() {
        let (w, rx) = waker(1);
        let at = Instant::now() + Duration::from_millis(2);
        assert!(wake_at(at, &w).is_some(), "the timer thread starts");
        assert_eq!(rx.recv_timeout(PATIENCE), Ok(1));
        assert!(Instant::now() >= at, "woken before its instant");
    }

    /// Linux keeps 15 bytes of a thread's name: the whole name shows in `top` and `/proc`.
    #[test]
    #[cfg(target_os = "linux")]
    fn the_timer_thread_is_named_in_full() {
        let (w, rx) = waker(5);
        assert!(wake_at(Instant::now(), &w).is_some(), "the timer thread starts");
        assert_eq!(rx.recv_timeout(PATIENCE), Ok(5));
        let names: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .collect();
        assert!(names.iter().any(|n| n.trim_end() == "futex-sem-timer"), "{names:?}");
    }

    #[test]
    fn asked_again_for_the_same_instant_and_task_it_is_one_wake() {
        let (w, rx) = waker(2);
        let at = Instant::now() + Duration::from_millis(2);
        assert_eq!(wake_at(at, &w), wake_at(at, &w));
        assert_eq!(rx.recv_timeout(PATIENCE), Ok(2));
        assert!(rx.recv_timeout(Duration::from_millis(20)).is_err(), "woken twice");
    }

    /// A stream of wakes due a first lapse away, each cancelled at once (reservations served
    /// before they lapse): the thread ticks, so a wake of the stream does not unpark it, except
    /// the first and one after a gap of half a tick in the stream (this test's thread
    /// descheduled: then a look may find no wake asked for since the last, and the thread parks
    /// for good); the last wake still fires; and once the stream stops, the thread stops
    /// ticking. Parking for good after each look that found nothing due, it was unparked 14-45
    /// times in such a stream.
    #[test]
    fn a_stream_of_wakes_seldom_unparks_the_thread_and_the_ticking_stops_after_it() {
        let (w, rx) = waker(6);
        let (mut asked, mut unparks) = (0, 0);
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < 20 * BUSY_TICK {
            let (token, unparked) = arm(Instant::now() + FIRST_LAPSE, &w).unwrap();
            drop(cancel(token));
            let after_a_gap = last.is_none_or(|last: Instant| last.elapsed() > BUSY_TICK / 2);
            last = Some(Instant::now());
            (asked, unparks) = (asked + 1, unparks + usize::from(unparked && !after_a_gap));
        }
        // At most a few: the other tests of this binary arm the same timer meanwhile (3 were seen
        // on a loaded host, 2026-12-08), where parking for good after each look unparked it
        // 14-45 times.
        assert!(unparks <= 6, "{unparks} unparks in a stream of {asked} wakes, not after a gap");
        assert!(wake_at(Instant::now() + FIRST_LAPSE, &w).is_some());
        assert_eq!(rx.recv_timeout(PATIENCE), Ok(6));
        // No sleep to synchronise with: a look at the timer's state now and then, until idle.
        let idle = |_| {
            std::thread::sleep(BUSY_TICK);
            lock().wakes_at.is_none()
        };
        assert!(
            (0..PATIENCE.as_millis() / BUSY_TICK.as_millis()).any(idle),
            "the thread still ticks {PATIENCE:?} after the stream"
        );
    }

    /// "Across a fork": a child forked while another thread holds the timer's lock (here a
    /// thread that holds it until the fork has returned, or 300 ms have passed) finds it free,
    /// and its task's wake fires (its own timer thread). Without the fork handlers the fork does
    /// not wait, and the child hangs on the lock until its alarm. Runs in a process of its own
    /// (this test binary again, this test alone): a child forked from the harness's threads
    /// could inherit a lock another test holds. `.ci/tsan` skips it: ThreadSanitizer's runtime
    /// refuses a thread started after a fork of a threaded process.
    #[test]
    #[cfg(unix)]
    fn a_fork_while_another_thread_holds_the_timers_lock_leaves_the_child_a_timer() {
        const ROLE: &str = "FUTEX_SEM_TIMER_FORK_CHILD";
        const NAME: &str =
            "sync::timer::tests::a_fork_while_another_thread_holds_the_timers_lock_leaves_the_child_a_timer";
        if std::env::var_os(ROLE).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([NAME, "--exact", "--test-threads=1", "--nocapture", "-q"])
                .env(ROLE, "1")
                .output()
                .unwrap();
            let report = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "the forking process failed: {report}");
            assert!(report.contains("1 passed"), "the forking test did not run: {report}");
            return;
        }
        let (w, rx) = waker(8);
        assert!(wake_at(Instant::now(), &w).is_some(), "the timer thread starts");
        assert_eq!(rx.recv_timeout(PATIENCE), Ok(8));
        let (held_tx, held_rx) = channel();
        let (forked_tx, forked_rx) = channel::<()>();
        let holder = std::thread::spawn(move || {
            let timer = lock();
            held_tx.send(()).unwrap();
            // With the handlers the fork waits for this lock, so no word comes: the timeout ends
            // the hold. Without them the word comes after the fork, made with the lock held.
            let _ = forked_rx.recv_timeout(Duration::from_millis(300));
            drop(timer);
        });
        held_rx.recv().unwrap();
        // SAFETY: `fork`; the child only arms an alarm, asks the timer for a wake, waits for it on
        // a channel and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: `alarm` only arms SIGALRM, which ends the child if it hangs.
            unsafe { libc::alarm(10) };
            let (w, rx) = waker(9);
            let woken = wake_at(Instant::now() + Duration::from_millis(1), &w).is_some()
                && rx.recv_timeout(PATIENCE) == Ok(9);
            // SAFETY: ends the child at once, without the parent's destructors.
            unsafe { libc::_exit(if woken { 0 } else { 1 }) };
        }
        assert!(pid > 0, "fork failed");
        let _ = forked_tx.send(());
        holder.join().unwrap();
        let mut status = 0;
        // SAFETY: waits for the child just forked, writing its status to a local.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child was not woken by its timer (status {status:#x}; SIGALRM {}: it hung on the lock)",
            libc::SIGALRM
        );
    }

    #[test]
    fn a_cancelled_wake_does_not_fire() {
        // A round where this thread did not get to cancel before the instant (a loaded
        // machine) proves nothing, and is tried again.
        for _ in 0..10 {
            let (cancelled, rx_cancelled) = waker(3);
            let (later, rx_later) = waker(4);
            let now = Instant::now();
            let at = now + Duration::from_millis(50);
            let token = wake_at(at, &cancelled).unwrap();
            wake_at(now + Duration::from_millis(100), &later).unwrap();
            drop(cancel(token));
            let in_time = Instant::now() < at;
            // The later wake firing means the timer has passed the cancelled one's instant.
            assert_eq!(rx_later.recv_timeout(PATIENCE), Ok(4));
            if in_time {
                assert!(rx_cancelled.try_recv().is_err(), "a cancelled wake fired");
                return;
            }
        }
        panic!("in 10 rounds the cancel never came within 50 ms of the wake's registration");
    }
}
