//! process-pairs: `N` uncontended acquire+release pairs of one `ProcessSemaphore`, for counting
//! the instructions of a pair under callgrind (exact, where timings on a shared host vary by 2x).
//! Recorded (`try_acquire` and the permit dropped: what the Python package's
//! `ProcessSemaphore` does per `acquire()`/`release()`), or with `u` unrecorded
//! (`try_acquire_unrecorded` and `release`: `recover=False`).
//!
//! The count per pair is the difference of two runs over the difference of their `N`, so that
//! start-up (the mapping, the slot's claim, the lane's lease) cancels out:
//!
//! ```text
//! cargo build --release -p process-pairs
//! valgrind --tool=callgrind target/release/process-pairs 100000    # "Collected : A"
//! valgrind --tool=callgrind target/release/process-pairs 200000    # "Collected : B"
//! # (B - A) / 100000 instructions per pair; add `u` after N for the unrecorded pair
//! ```

use futex_semaphore::ProcessSemaphore;
use std::hint::black_box;

#[inline(never)]
fn recorded(sem: &ProcessSemaphore, pairs: u64) {
    for _ in 0..pairs {
        drop(black_box(sem.try_acquire().expect("the one permit is free")));
    }
}

#[inline(never)]
fn unrecorded(sem: &ProcessSemaphore, pairs: u64) {
    for _ in 0..pairs {
        black_box(sem.try_acquire_unrecorded()).expect("the one permit is free");
        sem.release().expect("one permit is below the limit");
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let pairs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let unrecorded_pairs = args.next().as_deref() == Some("u");
    let sem = ProcessSemaphore::anonymous(1).expect("an anonymous semaphore");
    // Outside the counted loop: the slot's claim and the thread's lease of its lane.
    drop(sem.try_acquire().expect("the one permit is free"));
    if unrecorded_pairs {
        unrecorded(&sem, pairs);
    } else {
        recorded(&sem, pairs);
    }
}
