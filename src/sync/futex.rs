//! The real futex: `atomic-wait` for untimed waits and wakes, `rustix` for what `atomic-wait`
//! lacks (a timed wait, waking `n` at once, and the process-shared variants).
//!
//! The timed wait is `FUTEX_WAIT_BITSET` with an absolute `CLOCK_MONOTONIC` deadline (the clock
//! behind `std::time::Instant` on Linux), so a wait interrupted by a signal and restarted does not
//! stretch the timeout. A deadline that cannot be represented is treated as no deadline.
//! On platforms without a timed futex here, a timed wait polls with short sleeps.

use super::{AtomicU32, Ordering, Park, WAKE_ALL, WaitOutcome};
use std::time::Instant;

/// A 32-bit futex word.
#[repr(transparent)]
pub(crate) struct Futex {
    word: AtomicU32,
}

impl Futex {
    pub(crate) const fn new() -> Futex {
        Futex { word: AtomicU32::new(0) }
    }

    #[inline]
    pub(crate) fn load(&self, order: Ordering) -> u32 {
        self.word.load(order)
    }

    #[inline]
    pub(crate) fn bump(&self, order: Ordering) {
        self.word.fetch_add(1, order);
    }
}

/// Waits and wakes with `FUTEX_PRIVATE_FLAG`: for a futex used by one process only.
pub(crate) enum Private {}

impl Park for Private {
    #[inline]
    fn wait(futex: &Futex, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
        match deadline {
            None => {
                atomic_wait::wait(&futex.word, expected);
                WaitOutcome::Woken
            }
            Some(deadline) => timed::wait_until(&futex.word, expected, deadline, false),
        }
    }

    #[inline]
    fn wake(futex: &Futex, n: u32) {
        match n {
            0 => {}
            1 => atomic_wait::wake_one(&futex.word),
            WAKE_ALL => atomic_wait::wake_all(&futex.word),
            n => timed::wake_n(&futex.word, n, false),
        }
    }
}

/// Waits and wakes without `FUTEX_PRIVATE_FLAG`: for a futex in memory shared between processes.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(dead_code)] // used by the cross-process semaphore
pub(crate) enum Shared {}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Park for Shared {
    #[inline]
    fn wait(futex: &Futex, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
        match deadline {
            None => timed::wait_untimed(&futex.word, expected, true),
            Some(deadline) => timed::wait_until(&futex.word, expected, deadline, true),
        }
    }

    #[inline]
    fn wake(futex: &Futex, n: u32) {
        timed::wake_n(&futex.word, n, true)
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod timed {
    use super::{AtomicU32, WAKE_ALL, WaitOutcome};
    use rustix::io::Errno;
    use rustix::thread::futex;
    use rustix::time::{ClockId, Timespec, clock_gettime};
    use std::num::NonZeroU32;
    use std::time::Instant;

    fn flags(shared: bool) -> futex::Flags {
        if shared { futex::Flags::empty() } else { futex::Flags::PRIVATE }
    }

    pub(super) fn wait_untimed(word: &AtomicU32, expected: u32, shared: bool) -> WaitOutcome {
        // Any error (EAGAIN: the word changed; EINTR: a signal) means "re-check".
        let _ = futex::wait(word, flags(shared), expected, None);
        WaitOutcome::Woken
    }

    pub(super) fn wait_until(
        word: &AtomicU32,
        expected: u32,
        deadline: Instant,
        shared: bool,
    ) -> WaitOutcome {
        let now = Instant::now();
        let Some(remaining) = deadline.checked_duration_since(now).filter(|d| !d.is_zero()) else {
            return WaitOutcome::TimedOut;
        };
        // `Instant` is CLOCK_MONOTONIC on Linux: shift the deadline onto a timespec of that clock.
        let base = clock_gettime(ClockId::Monotonic);
        let nanos = base.tv_nsec + i64::from(remaining.subsec_nanos());
        let absolute = i64::try_from(remaining.as_secs())
            .ok()
            .and_then(|secs| base.tv_sec.checked_add(secs))
            .and_then(|secs| secs.checked_add(nanos / 1_000_000_000))
            .map(|tv_sec| Timespec { tv_sec, tv_nsec: nanos % 1_000_000_000 });
        let Some(absolute) = absolute else {
            // Too far away to represent: wait without a deadline.
            return wait_untimed(word, expected, shared);
        };
        match futex::wait_bitset(word, flags(shared), expected, Some(&absolute), NonZeroU32::MAX) {
            Err(Errno::TIMEDOUT) => WaitOutcome::TimedOut,
            // Woken, EAGAIN (the word changed) or EINTR: the caller re-checks and waits again.
            _ => WaitOutcome::Woken,
        }
    }

    pub(super) fn wake_n(word: &AtomicU32, n: u32, shared: bool) {
        let n = if n == WAKE_ALL { i32::MAX as u32 } else { n.min(i32::MAX as u32) };
        // The only possible error is EFAULT/EINVAL for a bad address, which a reference rules out.
        let _ = futex::wake(word, flags(shared), n);
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod timed {
    use super::{AtomicU32, Ordering, WaitOutcome};
    use std::time::{Duration, Instant};

    /// How long one polling sleep of a timed wait lasts at most, where no timed futex is used.
    const POLL: Duration = Duration::from_micros(500);

    pub(super) fn wait_until(
        word: &AtomicU32,
        expected: u32,
        deadline: Instant,
        _shared: bool,
    ) -> WaitOutcome {
        loop {
            if word.load(Ordering::Acquire) != expected {
                return WaitOutcome::Woken;
            }
            let now = Instant::now();
            if now >= deadline {
                return WaitOutcome::TimedOut;
            }
            std::thread::sleep((deadline - now).min(POLL));
        }
    }

    pub(super) fn wake_n(word: &AtomicU32, n: u32, _shared: bool) {
        for _ in 0..n {
            atomic_wait::wake_one(word);
        }
    }
}
