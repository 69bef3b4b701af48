#![doc = include_str!("../README.md")]
//!
//! # Releasing permits
//! On every type, a permit goes back in one of two ways:
//! - **Dropping its guard** ([`Permit`], [`OwnedPermit`], `ProcessPermit`), also while a panic
//!   unwinds. This is how a holder returns what it took; it returns nothing, so it cannot report
//!   a count that would pass its limit (below says what it does then).
//! - **`release` / `add_permits`**, which add permits that no guard holds: permits kept out with
//!   `forget`, or never taken (signalling, as with Python's `release()`). A release wakes the
//!   waiters the new permits can serve, and happens-before the acquire that takes them, as a
//!   dropped guard does.
//!
//! The guards give back alike on the three types (on drop, or never after `forget`), and all
//! have `num_permits` and `merge`. They differ where a process boundary makes them: permits of two
//! `ProcessPermit`s merge only if recorded alike (the same semaphore and holder record), so its
//! `merge` returns the other permit as `Err` where [`Permit::merge`] panics on permits of another
//! semaphore, and it has `release_one` in place of `split` (a split-off part would need a record
//! of its own). `release` differs in what it refuses and how it says so:
//!
//! | type | `release()` returns | refuses | why |
//! |---|---|---|---|
//! | [`Semaphore`] | `()` | nothing: it panics if the count would pass [`Semaphore::MAX_PERMITS`] | Only this process changes the count, so passing the limit is a bug here (permits given back that were never taken), as an integer overflow is; `new` and `add_permits` panic the same way. |
//! | [`BoundedSemaphore`] | `Result<(), `[`ReleaseError`]`>` | a count above [`initial_permits`](BoundedSemaphore::initial_permits); nothing changes then | Refusing is what the type is for (Python's `ValueError`): a release without a matching acquire is reported for the caller to handle. It compares the *available* count with the initial one, so a release while guards are out can let their return take the count past the start. |
//! | `ProcessSemaphore` | `std::io::Result<()>` | a count past its `MAX_PERMITS` (`InvalidInput`); nothing changes then | The count is in shared memory that other processes write too, so passing the limit may be another process's doing, and must not panic this one (see its `# Trust` section). `io::Error`, as its other fallible calls (`create`, `open`, `recover`) return. |
//!
//! A guard's drop cannot report an error, so where a `release` would refuse, a drop does not:
//! on `Semaphore` a give-back past `MAX_PERMITS` keeps its permits out and panics (silently,
//! during a panic), a `BoundedSemaphore`'s guards give back as a `Semaphore`'s do, without the
//! check against the bound, and on `ProcessSemaphore` permits past `MAX_PERMITS` are dropped
//! (the count gets there when `add_permits` raised it while permits were out, more than
//! `MAX_PERMITS` in all, or when another process wrote it; not a panic, as its `release` does
//! not panic).
//!
//! # Modules of the implementation
//! - `sync`: the shim for atomics and the futex (loom under `--cfg loom`).
//! - `raw`: the engine: state layout, fast and slow paths, wake policy, async waiters.
//! - `api`: the acquires, written once for every semaphore type (request checks, deadlines,
//!   errors).
//! - `semaphore`, `bounded`, `permit`, `future`, `error`: the public types.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations)]

/// Defines a `const fn`, or a plain `fn` under loom (whose atomics and locks are not `const`).
macro_rules! loom_const_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        #[cfg(not(loom))]
        $(#[$attr])*
        $vis const fn $name($($arg: $ty),*) -> $ret $body

        #[cfg(loom)]
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) -> $ret $body
    };
}
pub(crate) use loom_const_fn;

mod api;
mod bounded;
mod error;
mod future;
mod permit;
#[cfg(all(not(loom), any(target_os = "linux", target_os = "android")))]
mod process;
/// The announce/complete protocol of `ProcessSemaphore`, built under loom for
/// `tests/loom_process.rs` (the rest of the process module is not).
#[cfg(loom)]
#[doc(hidden)]
#[path = "process/protocol.rs"]
pub mod process_protocol;
mod raw;
mod semaphore;
mod sync;

pub use bounded::BoundedSemaphore;
pub use error::{AcquireError, ReleaseError, TryAcquireError};
pub use future::{Acquire, AcquireOwned};
pub use permit::{OwnedPermit, Permit};
#[cfg(all(not(loom), any(target_os = "linux", target_os = "android")))]
pub use process::{ProcessPermit, ProcessSemaphore, ProcessSemaphoreBuilder};
pub use semaphore::Semaphore;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn semaphore_is_24_bytes_send_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Semaphore>();
        send_sync::<BoundedSemaphore>();
        fn send<T: Send>() {}
        send::<OwnedPermit>();
        send::<Permit<'static>>();
        assert!(std::mem::size_of::<Semaphore>() <= 24);
    }

    #[test]
    fn acquire_futures_are_send_unpin_and_static_when_owned() {
        fn send_unpin<T: Send + Unpin>() {}
        fn is_static<T: 'static>() {}
        send_unpin::<Acquire<'static>>();
        send_unpin::<AcquireOwned>();
        is_static::<AcquireOwned>();
    }
}
