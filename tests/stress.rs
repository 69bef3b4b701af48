//! Stress: many more threads than cores, a million operations of random sizes with timeouts,
//! checking the holder bound all along and the permit count at the end.

#![cfg(not(loom))] // the loom models are in tests/loom.rs; these run on real threads

mod common;

use common::Rng;
use futex_semaphore::Semaphore;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

const THREADS: usize = 16;
const OPS_PER_THREAD: usize = 1_000_000 / THREADS;
const PERMITS: usize = 4;

#[test]
fn a_million_mixed_operations_keep_the_bound_and_the_count() {
    let sem = Semaphore::new(PERMITS);
    let inside = AtomicUsize::new(0);
    let acquired = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (sem, inside, acquired) = (&sem, &inside, &acquired);
            s.spawn(move || {
                let mut rng = Rng::new(t as u64);
                for _ in 0..OPS_PER_THREAD {
                    let r = rng.next();
                    let n = 1 + (r % 3) as u32;
                    let permit = match (r >> 8) % 4 {
                        0 => sem.try_acquire_many(n).ok(),
                        1 => sem.try_acquire_many_for(n, Duration::from_micros(r % 100)).ok(),
                        _ => Some(sem.acquire_many(n).unwrap()),
                    };
                    let Some(mut permit) = permit else { continue };
                    acquired.fetch_add(1, SeqCst);
                    let now = inside.fetch_add(n as usize, SeqCst) + n as usize;
                    assert!(now <= PERMITS, "{now} permits held of {PERMITS}");
                    if (r >> 16) % 8 == 0 {
                        for _ in 0..(r >> 20) % 64 {
                            std::hint::spin_loop();
                        }
                    }
                    inside.fetch_sub(n as usize, SeqCst);
                    if n > 1 && (r >> 24) % 2 == 0 {
                        let part = permit.split(1);
                        drop(part);
                    }
                    drop(permit);
                }
            });
        }
    });
    assert_eq!(sem.available_permits(), PERMITS);
    assert_eq!(inside.load(SeqCst), 0);
    // Most operations succeed; a run where nearly all fail would mean the test tested nothing.
    assert!(acquired.load(SeqCst) > THREADS * OPS_PER_THREAD / 4);
}
