//! Three tasks, at most two at once: the Rust form of Python's asyncio example
//!
//! ```python
//! import asyncio
//!
//! async def worker(name, sem):
//!     print(f"{name} waiting")
//!     async with sem:
//!         print(f"{name} acquired")
//!         await asyncio.sleep(0.2)
//!     print(f"{name} released")
//!
//! async def main():
//!     sem = asyncio.Semaphore(2)
//!     await asyncio.gather(*(worker(f"worker {i}", sem) for i in range(3)))
//!
//! asyncio.run(main())
//! ```
//!
//! Run it with `cargo run --example asyncio_workers`. Two workers get a permit at once; the third
//! waits until one of them releases. Unlike asyncio's, the semaphore is not tied to one event
//! loop: the tasks run on tokio's multi-thread runtime, and threads could wait on it beside them.
//! A worker prints "acquired" after it has its permit and "released" just before it gives it
//! back, so at every point of the output at most two workers are between those two lines.

use futex_semaphore::Semaphore;
use std::sync::Arc;
use std::time::Duration;

async fn worker(name: String, sem: Arc<Semaphore>) {
    println!("{name} waiting");
    {
        // Python's `async with sem:`: the permit goes back when `_permit` goes out of scope.
        let _permit = sem.acquire_async().await.expect("the semaphore is never closed");
        println!("{name} acquired");
        tokio::time::sleep(Duration::from_millis(200)).await;
        println!("{name} released");
    }
}

#[tokio::main]
async fn main() {
    let sem = Arc::new(Semaphore::new(2));
    // `asyncio.gather`: spawn the three workers and wait for all of them.
    let workers: Vec<_> =
        (0..3).map(|i| tokio::spawn(worker(format!("worker {i}"), Arc::clone(&sem)))).collect();
    for worker in workers {
        worker.await.expect("a worker panicked");
    }
    println!("all workers done, {} permits available again", sem.available_permits());
}
