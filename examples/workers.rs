//! Ten tasks, at most three at once, with the semaphore in a `static`: the Rust form of Python's
//!
//! ```python
//! sem = threading.Semaphore(3)
//!
//! def task(i):
//!     with sem:
//!         print(f"performing task {i}")
//!         time.sleep(0.2)
//!         print(f"finished task {i}")
//! ```
//!
//! Run it with `cargo run --example workers`. A task prints "performing task i" after it has its
//! permit and "finished task i" before it gives the permit back, so at every point of the output
//! at most three tasks are between their two lines.

use futex_semaphore::Semaphore;
use std::thread;
use std::time::Duration;

const TASKS: usize = 10;

/// `Semaphore::new` is a `const fn`: no `lazy_static`, no `OnceLock`.
static SEM: Semaphore = Semaphore::new(3);

fn task(i: usize) {
    // Python's `with sem:`. The permit is given back when `_permit` goes out of scope. (Write
    // `_permit`, not `_`: `let _ = SEM.acquire()` would give the permit back at once.)
    let _permit = SEM.acquire().expect("SEM is never closed");
    println!("performing task {i}");
    thread::sleep(Duration::from_millis(200));
    println!("finished task {i}");
}

fn main() {
    println!("{TASKS} tasks, at most 3 at once");
    let handles: Vec<_> = (0..TASKS).map(|i| thread::spawn(move || task(i))).collect();
    for handle in handles {
        handle.join().expect("a task panicked");
    }
    println!("all {TASKS} tasks done, {} permits available again", SEM.available_permits());
}
