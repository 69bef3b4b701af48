//! `ProcessSemaphore` operations stopped at every instruction: a child is single-stepped with
//! `ptrace` into one operation, `n` instructions in, and then killed there (or let run on while
//! another process changes the state word), one run per `n`, until the operation completes.
//! After `recover()` the permits must be exactly what the child kept.
//!
//! Linux on x86-64 only; prints `SKIPPED: ...` where `ptrace` is refused (a seccomp profile,
//! Yama), and in a debug build, which has thousands of instructions to step through. Run with
//! `--release` (about 4 s):
//! `cargo test --release --test process_single_step -- --nocapture`. One test per file: it forks
//! from the test thread, and the harness's main thread only waits meanwhile.
#![cfg(all(not(loom), target_os = "linux", target_arch = "x86_64"))]

mod common;

use futex_semaphore::ProcessSemaphore;

/// The state word's tag keeps the low 14 bits of a lane's sequence.
const FORGETS: usize = (1 << 14) - 1;
const PERMITS: u32 = 20_000;
/// More instructions than the operation stepped through has (a take completes in about 250 in
/// a release build, and the child exits after it).
const MAX_STEPS: usize = 2_000;
/// How far into a live child's take (and what follows it) the parent steps.
const LIVE_STEPS: usize = 400;
/// The exit code of a child whose `PTRACE_TRACEME` was refused.
const NO_PTRACE: i32 = 77;

/// What the child does with the operation under test, after its forgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A take, killed at each instruction.
    Take,
    /// A give-back (of the permit kept), killed at each instruction.
    Give,
    /// A take, stopped at each instruction while the parent takes every permit, then run on to
    /// its end (refused, or not) and a normal exit holding nothing.
    Live,
}

/// Lane 2 of a fresh slot: takes `FORGETS` permits and one more (`kept`, whose operation's tag is
/// in the state word), forgets the `FORGETS`, stops for the parent, and runs the operation.
fn child(sem: &ProcessSemaphore, mode: Mode) -> ! {
    let forgotten: Vec<_> = (0..FORGETS).map(|_| sem.acquire().unwrap()).collect();
    let kept = sem.acquire().unwrap();
    for permit in forgotten {
        permit.forget();
    }
    // SAFETY: PTRACE_TRACEME takes no pointers; raise stops this process for its tracer.
    unsafe {
        if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
            libc::_exit(NO_PTRACE);
        }
        libc::raise(libc::SIGSTOP);
    }
    // The lane's operation 2 * FORGETS + 2: before `forget` published, its low 14 bits were those
    // of `kept`'s take, still the tag in the state word.
    match mode {
        Mode::Give => drop(kept),
        Mode::Live => {
            if let Ok(more) = sem.try_acquire() {
                drop(more);
            }
            drop(kept);
        }
        Mode::Take => {
            std::mem::forget(sem.try_acquire().unwrap());
            std::mem::forget(kept);
        }
    }
    // SAFETY: ends the child at once, without the parent's destructors.
    unsafe { libc::_exit(0) }
}

/// Waits for `pid`; its wait status.
fn wait(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: our own child; `status` is a valid place for the result.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

/// Every stop point of `mode`'s operation; `None` if ptrace is refused here. Returns the stop
/// points after which the permits were not exactly those the child kept.
fn stop_at_every_instruction(mode: Mode) -> Option<Vec<(usize, usize, usize)>> {
    let mut bad = Vec::new();
    let steps = if mode == Mode::Live { LIVE_STEPS } else { MAX_STEPS };
    for n in 0..steps {
        let sem = ProcessSemaphore::anonymous(PERMITS).unwrap();
        // SAFETY: the child runs `child` (this semaphore's memory only) and ends with `_exit`;
        // the harness's other thread holds no lock meanwhile (it waits for this test).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            child(&sem, mode);
        }
        let mut status = wait(pid);
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == NO_PTRACE {
            return None;
        }
        assert!(libc::WIFSTOPPED(status), "the child did not stop: {status:#x}");
        let mut exited = false;
        for _ in 0..n {
            // SAFETY: our traced, stopped child.
            if unsafe { libc::ptrace(libc::PTRACE_SINGLESTEP, pid, 0, 0) } != 0 {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                wait(pid);
                return None;
            }
            status = wait(pid);
            if libc::WIFEXITED(status) {
                exited = true;
                break;
            }
        }
        let mut taken = None;
        if !exited && mode == Mode::Live {
            // Another process takes every permit while the child is stopped here; then the
            // child runs on to its normal end.
            taken = sem.try_acquire_many(sem.available_permits() as u32).ok();
            // SAFETY: our traced, stopped child: it runs on untraced.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
            let status = wait(pid);
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{status:#x}");
        } else if !exited {
            // SAFETY: our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            wait(pid);
        }
        drop(taken);
        let recovered = sem.recover().unwrap();
        let available = sem.available_permits();
        if available != PERMITS as usize - FORGETS {
            bad.push((n, recovered, available));
        }
        if exited {
            return Some(bad);
        }
    }
    assert_eq!(mode, Mode::Live, "the operation did not complete within {MAX_STEPS} instructions");
    Some(bad)
}

#[test]
fn operations_after_many_forgets_stopped_at_every_instruction_are_settled_exactly() {
    if cfg!(debug_assertions) {
        common::say_skipped("a debug build has too many instructions to step through (use --release)");
        return;
    }
    for mode in [Mode::Take, Mode::Give, Mode::Live] {
        let Some(bad) = stop_at_every_instruction(mode) else {
            common::say_skipped("ptrace is refused here");
            return;
        };
        assert!(
            bad.is_empty(),
            "{mode:?}: (instructions, recovered, available) where a permit was made or lost \
             (expected {} available): {bad:?}",
            PERMITS as usize - FORGETS
        );
    }
}
