//! A pool that runs at most three jobs at once, each on a thread of its own, with owned permits.
//!
//! [`Pool::spawn`] takes a permit (a slot) before it starts the thread, so the caller blocks
//! while three jobs run: that is the back-pressure. The permit is an [`OwnedPermit`] (it holds an
//! `Arc` of the semaphore), so it can move into the job's thread, which gives it back when the
//! job ends. [`Pool::shutdown`] closes the semaphore: later `spawn`s fail, running jobs finish.
//!
//! Run it with `cargo run --example thread_pool`. Lines start with the time since the start; a job
//! prints "started" while it holds its slot and "finished" before it gives the slot back.

use futex_semaphore::{AcquireError, OwnedPermit, Semaphore};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const JOBS: u64 = 8;

/// Runs each job on a new thread, at most `size` at a time.
struct Pool {
    slots: Arc<Semaphore>,
}

impl Pool {
    fn new(size: usize) -> Pool {
        Pool { slots: Arc::new(Semaphore::new(size)) }
    }

    /// Runs `job` on a new thread as soon as a slot is free, blocking the caller until then.
    ///
    /// Fails with [`AcquireError`] once the pool is shut down.
    fn spawn<F>(&self, job: F) -> Result<JoinHandle<()>, AcquireError>
    where
        F: FnOnce() + Send + 'static,
    {
        let slot: OwnedPermit = Arc::clone(&self.slots).acquire_owned()?;
        Ok(thread::spawn(move || {
            job();
            // The slot is free again once the job is done. If `job` panics, unwinding drops
            // `slot` all the same.
            drop(slot);
        }))
    }

    /// Refuses new jobs; the running ones finish.
    fn shutdown(&self) {
        self.slots.close();
    }
}

fn main() {
    let start = Instant::now();
    let ms = move || start.elapsed().as_millis();
    let pool = Pool::new(3);
    println!("{JOBS} jobs, a pool that runs at most 3 at once");

    let mut handles = Vec::new();
    for i in 0..JOBS {
        println!("[{:>5} ms] main submits job {i}", ms());
        let job = move || {
            println!("[{:>5} ms] job {i} started", ms());
            thread::sleep(Duration::from_millis(200 + 100 * (i % 3)));
            println!("[{:>5} ms] job {i} finished", ms());
        };
        handles.push(pool.spawn(job).expect("the pool is open"));
    }

    pool.shutdown();
    match pool.spawn(|| {}) {
        Ok(_) => println!("[{:>5} ms] job {JOBS} accepted after shutdown (a bug)", ms()),
        Err(err) => println!("[{:>5} ms] job {JOBS} refused after shutdown: {err}", ms()),
    }

    for handle in handles {
        handle.join().expect("a job panicked");
    }
    println!("[{:>5} ms] all {JOBS} jobs done", ms());
}
