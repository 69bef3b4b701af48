//! "No system call when uncontended": a million uncontended acquire/release pairs, counted by
//! `strace -f -c -e trace=futex`, make no futex call at all (while a contended run does make
//! some, which shows the count is real). The test re-executes its own binary under strace, as a
//! child (`tests/common/child.rs`).

#![cfg(not(loom))] // the loom models are in tests/loom.rs; these run on real threads

mod common;

use futex_semaphore::Semaphore;

/// The measured part, run in the child process under strace.
fn play(role: &str) {
    match role {
        "uncontended" => {
            let sem = Semaphore::new(1);
            for _ in 0..1_000_000 {
                drop(std::hint::black_box(sem.acquire().unwrap()));
                drop(std::hint::black_box(sem.try_acquire().unwrap()));
            }
        }
        "contended" => {
            let sem = Semaphore::new(1);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..20_000 {
                            let _p = sem.acquire().unwrap();
                            for _ in 0..200 {
                                std::hint::spin_loop();
                            }
                        }
                    });
                }
            });
        }
        "none" => {}
        other => panic!("unknown role {other}"),
    }
}

/// Runs the child under strace; returns the number of futex calls it made, or None without strace.
fn futex_calls(role: &str) -> Option<u64> {
    let out =
        common::child::command_under("strace", &["-f", "-c", "-e", "trace=futex", "-o", "/dev/stderr"], role)
            .output()
            .ok()?;
    assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stderr);
    // The summary row reads: "% time  seconds  usecs/call  calls  errors  syscall"; the futex row
    // is absent when no futex call was made at all.
    let calls = report
        .lines()
        .find(|l| l.trim_end().ends_with(" futex"))
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols[3].parse::<u64>().unwrap_or_else(|_| panic!("cannot read strace row {l:?}"))
        })
        .unwrap_or(0);
    Some(calls)
}

/// Plays the role this process was started for; in a normal test run, does nothing.
#[test]
fn child() {
    if let Some(role) = common::child::role() {
        play(&role);
    }
}

#[test]
fn uncontended_pairs_make_no_futex_call() {
    if common::child::is_child() {
        return;
    }
    let Some(contended) = futex_calls("contended") else {
        return common::skip_without("strace");
    };
    // The program itself (thread spawn/join, the test harness) makes a few futex calls. The
    // semaphore must add none for a million uncontended pairs: compare with an empty run.
    let uncontended = futex_calls("uncontended").unwrap();
    // The harness's own count varies by one or two between runs: take the most of three.
    let baseline = (0..3).filter_map(|_| futex_calls("none")).max().unwrap_or(0);
    eprintln!("futex calls: uncontended {uncontended}, contended {contended}, baseline {baseline}");
    assert!(
        uncontended <= baseline,
        "uncontended acquire/release made futex calls: {uncontended} against a baseline of {baseline}"
    );
    assert!(contended > baseline, "the contended run should sleep and wake, or the count is not real");
}
