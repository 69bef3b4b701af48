//! The last bench target (Cargo runs bench targets in name order): prints the side-by-side
//! summary that every other target recorded in `target/criterion/summary.tsv`, so that
//! `cargo bench` ends with the verdict. `cargo bench --bench zz_summary` prints it again.
//! The table and the file are `common/report.rs`.

#[macro_use]
mod common;

bench_main!();

/// The bench (Linux only, as every bench: see `common`).
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
