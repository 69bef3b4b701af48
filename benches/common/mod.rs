//! What the benchmarks share, by what it holds:
//!
//! - [`gates`]: the [`Gate`] trait every compared blocking implementation sits behind (and
//!   [`ManyGate`] for `acquire_many`), the implementations, the floor and the spinning gate.
//! - [`async_gates`]: the same for the async semaphores ([`AsyncGate`]) and their runtime.
//! - [`posix`]: the one POSIX-semaphore adapter (unnamed `sem_init`, named `sem_open`).
//! - [`workloads`]: the work unit and the workloads (T threads on P permits, the handoff, the
//!   wait-time sampler) and the context-switch counter.
//! - [`report`]: the run mode (full, quick, smoke), the command line, and the summary table that
//!   `cargo bench` ends with.
//! - [`table`]: the one table formatter (text and Markdown), and [`civil`]: the UTC date of a run;
//!   both shared with `tools/bench-report`, which includes them.
//!
//! Each bench target includes this module, calls [`bench_main!`] and keeps its code in a module
//! `bench` under the same `cfg` as these parts: the benches are Linux-only (criterion, their
//! harness, is a Linux-only dev-dependency; `posix` wraps glibc's `sem_t`), and none is built
//! under `--cfg loom`.
#![allow(dead_code, unused_imports, unused_macros)]

/// A bench target's `main`: its `bench::main()` on Linux, a message elsewhere and under loom.
macro_rules! bench_main {
    () => {
        #[cfg(all(target_os = "linux", not(loom)))]
        fn main() {
            bench::main();
        }

        #[cfg(not(all(target_os = "linux", not(loom))))]
        fn main() {
            eprintln!("the benchmarks run on Linux only (and not under --cfg loom)");
        }
    };
}

#[cfg(all(target_os = "linux", not(loom)))]
#[macro_use]
pub mod gates;
#[cfg(all(target_os = "linux", not(loom)))]
#[macro_use]
pub mod async_gates;
#[cfg(all(target_os = "linux", not(loom)))]
pub mod civil;
#[cfg(all(target_os = "linux", not(loom)))]
pub mod posix;
#[cfg(all(target_os = "linux", not(loom)))]
pub mod report;
#[cfg(all(target_os = "linux", not(loom)))]
pub mod table;
#[cfg(all(target_os = "linux", not(loom)))]
pub mod workloads;

#[cfg(all(target_os = "linux", not(loom)))]
pub use async_gates::AsyncGate;
#[cfg(all(target_os = "linux", not(loom)))]
pub use gates::{Floor, Gate, ManyGate, ParkingLotSem, SpinGate, StdSem};
#[cfg(all(target_os = "linux", not(loom)))]
pub use posix::PosixSemaphore;
#[cfg(all(target_os = "linux", not(loom)))]
pub use report::{Args, Better, Mode, Report, Row, criterion_dir};
#[cfg(all(target_os = "linux", not(loom)))]
pub use workloads::{BETWEEN, HOLD, work};
