//! The last bench target (Cargo runs bench targets in name order): prints the side-by-side
//! summary that every other target recorded in `target/criterion/summary.tsv`, so that
//! `cargo bench` ends with the verdict. `cargo bench --bench zz_summary` prints it again.
//! The table and the file are `common/report.rs`.

#[cfg(all(target_os = "linux", not(loom)))]
#[macro_use]
mod common;

#[cfg(all(target_os = "linux", not(loom)))]
fn main() {
    bench::main();
}

#[cfg(not(all(target_os = "linux", not(loom))))]
fn main() {
    eprintln!("the benchmarks run on Linux only (and not under --cfg loom)");
}

/// The bench. Linux only, as every bench: criterion (the harness of three) is a Linux-only
/// dev-dependency, and `common` wraps glibc's `sem_t`.
#[cfg(all(target_os = "linux", not(loom)))]
mod bench {
    use crate::common;
    pub(super) fn main() {
        if common::Args::parse().mode == common::Mode::Smoke {
            return;
        }
        common::report::print_summary();
    }
}
