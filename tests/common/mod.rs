//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen at once before it fails (instead of
/// hanging CI). Generous: the machine is a shared 2-core box.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Waits until the semaphore's `Debug` output reports `n` registered waiters: then they are
/// past spinning and about to sleep (or asleep), so what wakes them next goes through the futex.
pub fn wait_for_waiters(sem: &impl Debug, n: usize) {
    let start = Instant::now();
    let want = format!("waiters: {n},");
    loop {
        let dbg = format!("{sem:?}");
        if dbg.contains(&want) {
            return;
        }
        assert!(start.elapsed() < PATIENCE, "never reached {n} waiters: {dbg}");
        std::thread::yield_now();
    }
}
