//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod child;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod shared_cells;

use futex_semaphore::Semaphore;
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen at once before it fails (instead of
/// hanging CI). Generous: the machine is a shared 2-core box.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A test that cannot run here without `tool` (strace, valgrind) passes with a `SKIPPED` line,
/// except on CI (`CI=true`, as `.ci/run` runs there), where the tool is part of the machine and
/// its absence would let the test pass without looking.
pub fn skip_without(tool: &str) {
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "{tool} is not installed, and CI=true requires it"
    );
    say_skipped(&format!("{tool} is not installed"));
}

/// Prints `SKIPPED: <why>` past the test harness's capture (libtest keeps to itself what
/// `println!` and `eprintln!` print in a test that passes), so that a skip shows in a plain
/// `cargo test` run.
pub fn say_skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// Waits until `n` waiters are queued on `sem`: then they are past spinning and about to sleep
/// (or asleep), so what wakes them next goes through the queue.
pub fn wait_for_waiters(sem: &Semaphore, n: usize) {
    let start = Instant::now();
    while sem.queued_waiters() != n {
        assert!(start.elapsed() < PATIENCE, "never reached {n} waiters: {sem:?}");
        std::thread::yield_now();
    }
}

/// A task held back by a reservation that a holder it needs must see lapse: 2 permits, this
/// thread holds both, a thread waits for 2 and starves, one permit comes back (held for the
/// starving waiter), and a task asks for one more while this thread still holds the other. Only the
/// reservation's lapse lets the task in, and the crate's timer wakes it then. Returns how many
/// times the task was polled (a task that yielded until the lapse instead would be polled
/// thousands of times per millisecond).
pub fn task_waits_out_a_reservation() -> usize {
    let sem = Semaphore::new(2);
    let (first, other) = (sem.acquire().unwrap(), sem.acquire().unwrap());
    std::thread::scope(|s| {
        let big = s.spawn(|| sem.acquire_many(2).unwrap().num_permits());
        wait_for_waiters(&sem, 1);
        std::thread::sleep(Duration::from_millis(5)); // the big waiter starves
        drop(other); // and gets priority: the free permit is held for it
        let mut acquire = std::pin::pin!(sem.acquire_async());
        let mut polls = 0;
        let second = pollster::block_on(std::future::poll_fn(|cx| {
            polls += 1;
            acquire.as_mut().poll(cx)
        }))
        .unwrap();
        drop((first, second));
        assert_eq!(big.join().unwrap(), 2);
        assert_eq!(sem.available_permits(), 2);
        polls
    })
}

/// A small xorshift generator: deterministic per seed, no dependency.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`; different seeds give unrelated sequences.
    pub fn new(seed: u64) -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
