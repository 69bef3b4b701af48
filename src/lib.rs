#![doc = include_str!("../README.md")]
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
