//! Five customers, two tellers: each customer is a job on a pool of five worker threads (like
//! Python's `ThreadPoolExecutor(max_workers=5)`), and a semaphore with two permits stands for
//! the tellers, so at most two customers are served at once and the others wait in line.
//!
//! Run it with `cargo run --example bank_tellers`. Every line starts with the time since the bank
//! opened. A customer prints "is being served" after getting a teller and "is done" before
//! leaving the teller.

use futex_semaphore::Semaphore;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Customers, and how long each needs at the counter.
const CUSTOMERS: [(&str, u64); 5] =
    [("Alice", 400), ("Bob", 250), ("Charlie", 300), ("Dana", 200), ("Eve", 350)];

/// The tellers: two permits.
static TELLERS: Semaphore = Semaphore::new(2);

fn serve(name: &str, service: Duration, opened: Instant) {
    let ms = || opened.elapsed().as_millis();
    println!("[{:>5} ms] {name} is waiting for a teller", ms());
    let teller = TELLERS.acquire().expect("the bank never closes its tellers");
    println!("[{:>5} ms] {name} is being served", ms());
    thread::sleep(service);
    println!("[{:>5} ms] {name} is done and leaves", ms());
    drop(teller);
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of worker threads fed through a channel; dropping it waits for the queued jobs.
struct ThreadPool {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    fn new(size: usize) -> ThreadPool {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..size)
            .map(|_| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    loop {
                        // The lock guard is dropped at the end of this statement, before the job runs.
                        let job = queue.lock().expect("no worker panics holding the queue").recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break, // the pool was dropped and the queue is empty
                        }
                    }
                })
            })
            .collect();
        ThreadPool { jobs: Some(jobs), workers }
    }

    fn submit(&self, job: impl FnOnce() + Send + 'static) {
        self.jobs
            .as_ref()
            .expect("jobs is only taken in drop")
            .send(Box::new(job))
            .expect("a worker is alive");
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        drop(self.jobs.take()); // close the channel: workers leave once it is empty
        for worker in self.workers.drain(..) {
            worker.join().expect("a worker panicked");
        }
    }
}

fn main() {
    let opened = Instant::now();
    println!(
        "[{:>5} ms] the bank opens: {} customers, 2 tellers",
        opened.elapsed().as_millis(),
        CUSTOMERS.len()
    );
    {
        let pool = ThreadPool::new(CUSTOMERS.len());
        for (name, service_ms) in CUSTOMERS {
            pool.submit(move || serve(name, Duration::from_millis(service_ms), opened));
        }
    } // the pool is dropped here, after every customer has been served
    println!("[{:>5} ms] the bank closes: every customer was served", opened.elapsed().as_millis());
}
