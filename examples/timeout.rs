//! Five threads, two permits, and one second of patience: Python's `sem.acquire(timeout=1)` is
//! `sem.try_acquire_for(Duration::from_secs(1))`.
//!
//! Run it with `cargo run --example timeout`. The two threads that get a permit keep it for 1.5 s,
//! longer than the others are willing to wait, so those give up after 1 s and say so. Lines start
//! with the time since the start.

use futex_semaphore::{Semaphore, TryAcquireError};
use std::thread;
use std::time::{Duration, Instant};

const THREADS: usize = 5;
const PATIENCE: Duration = Duration::from_secs(1);
const WORK: Duration = Duration::from_millis(1500);

fn worker(sem: &Semaphore, i: usize, start: Instant) {
    let ms = || start.elapsed().as_millis();
    println!("[{:>5} ms] thread {i} waits up to 1 s for a permit", ms());
    match sem.try_acquire_for(PATIENCE) {
        Ok(permit) => {
            println!("[{:>5} ms] thread {i} acquired a permit, working for 1.5 s", ms());
            thread::sleep(WORK);
            println!("[{:>5} ms] thread {i} released its permit", ms());
            drop(permit);
        }
        Err(TryAcquireError::NoPermits) => {
            println!("[{:>5} ms] thread {i} gave up: no permit within 1 s", ms());
        }
        Err(TryAcquireError::Closed) => unreachable!("the semaphore is never closed"),
    }
}

fn main() {
    let sem = Semaphore::new(2);
    let start = Instant::now();
    println!("{THREADS} threads, 2 permits, each thread waits at most 1 s");
    thread::scope(|s| {
        for i in 0..THREADS {
            let sem = &sem;
            s.spawn(move || worker(sem, i, start));
        }
    });
    println!("[{:>5} ms] all threads done", start.elapsed().as_millis());
}
