//! A `BoundedSemaphore` refuses a release that would take it above the count it started with,
//! as Python's `threading.BoundedSemaphore` raises `ValueError`: it catches a release without a
//! matching acquire. A plain `Semaphore` accepts the same release and its count grows.
//!
//! Run it with `cargo run --example bounded`.

use futex_semaphore::{BoundedSemaphore, Semaphore};

fn main() {
    let sem = BoundedSemaphore::new(2);
    println!("BoundedSemaphore::new(2): available = {}", sem.available_permits());

    // The usual way: a guard gives its permit back when dropped, so it can never overshoot.
    {
        let _permit = sem.acquire().expect("never closed");
        println!("acquire() with a guard: available = {}", sem.available_permits());
    }
    println!("guard dropped: available = {}", sem.available_permits());

    // Python style: acquire, then release by hand. `forget` keeps the permit out of the semaphore.
    sem.acquire().expect("never closed").forget();
    println!("acquire() + forget(): available = {}", sem.available_permits());
    match sem.release() {
        Ok(()) => println!("release() #1: accepted, available = {}", sem.available_permits()),
        Err(err) => println!("release() #1: refused ({err}), available = {}", sem.available_permits()),
    }

    // One release too many: the bug a bounded semaphore exists to catch.
    match sem.release() {
        Ok(()) => println!("release() #2: accepted, available = {}", sem.available_permits()),
        Err(err) => println!("release() #2: refused ({err}), available = {}", sem.available_permits()),
    }

    // The same mistake on a plain semaphore goes unnoticed: it now lets three threads in.
    let plain = Semaphore::new(2);
    plain.release();
    println!(
        "a plain Semaphore::new(2) after the same extra release(): available = {}",
        plain.available_permits()
    );
}
