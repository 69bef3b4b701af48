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
//! Each bench target includes this module and uses a part of it.
#![allow(dead_code, unused_imports, unused_macros)]

#[macro_use]
pub mod gates;
#[macro_use]
pub mod async_gates;
pub mod civil;
pub mod posix;
pub mod report;
pub mod table;
pub mod workloads;

pub use async_gates::AsyncGate;
pub use gates::{Floor, Gate, ManyGate, ParkingLotSem, SpinGate, StdSem};
pub use posix::PosixSemaphore;
pub use report::{Args, Better, Mode, Report, Row, criterion_dir};
pub use workloads::{BETWEEN, HOLD, work};
