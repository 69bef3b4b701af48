//! A recoverer stopped between its liveness check and its claim of a dead holder's slot, while
//! the slot is recovered by another process and claimed again by a new process with the dead
//! one's pid and start time (a pid reused within one clock tick): the stopped recoverer must not
//! take the live process's slot over (`src/process/owners.rs`, invariant 2).
//!
//! The recoverer R is a child stopped with ptrace (`PTRACE_SYSCALL`) right after its `kill(pid,
//! 0)` said the holder P1 is gone; meanwhile this process recovers P1's slot and forks P2 with
//! P1's pid (through `/proc/sys/kernel/ns_last_pid`, which needs root) within one clock tick of
//! P1's start. Then R runs on. Prints `SKIPPED: ...` where that cannot be arranged (no root, no
//! ptrace, or the clock ticked). Linux on x86-64 only (the system call registers); about 0.1 s.
//! One test per file: it forks from the test thread, and the harness's main thread only waits.
#![cfg(all(not(loom), target_os = "linux", target_arch = "x86_64"))]

mod common;

use common::child::fork;
use futex_semaphore::ProcessSemaphore;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

const PERMITS: u32 = 3;
const PATIENCE: Duration = Duration::from_secs(20);
/// The exit code of a child whose `PTRACE_TRACEME` was refused.
const NO_PTRACE: i32 = 77;

/// Flags in a shared anonymous page, seen by this process and its children.
struct Flags(*mut AtomicU32);

/// Set by this process: R may recover.
const GO: usize = 0;
/// Set by R: what `recover()` returned, plus 1.
const RESULT: usize = 1;
/// Set by P2: it holds its permit.
const HOLDING: usize = 2;
/// Set by this process: P2 may give its permit back and end.
const LET_GO: usize = 3;

impl Flags {
    fn new() -> Flags {
        // SAFETY: a new shared anonymous mapping of one page, at an address the kernel picks.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        Flags(page.cast())
    }

    fn get(&self, i: usize) -> &AtomicU32 {
        assert!(i < 4);
        // SAFETY: within the page, aligned, zeroed by the kernel, only ever accessed atomically;
        // never unmapped (the test's processes end with it).
        unsafe { &*self.0.add(i) }
    }

    fn wait_for(&self, i: usize, value: u32) {
        let start = Instant::now();
        while self.get(i).load(SeqCst) != value {
            assert!(start.elapsed() < PATIENCE, "flag {i} never became {value}");
            std::hint::spin_loop();
        }
    }
}

/// The owner word of slot 0 (`docs/process.md`, the region and slot tables).
fn owner_word(name: &str) -> u64 {
    let file = std::fs::File::open(format!("/dev/shm/{name}")).unwrap();
    let mut word = [0; 8];
    file.read_exact_at(&mut word, 128).unwrap();
    u64::from_ne_bytes(word)
}

/// Waits for our child `pid`; its wait status.
fn wait(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: our own child; `status` is a valid place for the result.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

/// Kills and reaps our child `pid`.
fn kill(pid: libc::pid_t) {
    // SAFETY: our own child, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait(pid);
}

/// One attempt: what R's `recover()` returned and the permits available after it (P2 holding
/// one); `Err` with why it could not be arranged.
fn attempt(k: usize) -> Result<(usize, usize), &'static str> {
    let name = format!("futex-sem-test-pid-reuse-{}-{k}", std::process::id());
    let _ = ProcessSemaphore::unlink(&name);
    let sem = ProcessSemaphore::builder().holder_slots(4).create(&name, PERMITS).unwrap();
    let unlink = || {
        let _ = ProcessSemaphore::unlink(&name);
    };
    let flags = Flags::new();
    // R, traced: recovers once let go.
    let r = fork(|| {
        // SAFETY: PTRACE_TRACEME takes no pointers; raise stops this process for its tracer.
        unsafe {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                return NO_PTRACE;
            }
            libc::raise(libc::SIGSTOP);
        }
        flags.wait_for(GO, 1);
        let n = sem.recover().unwrap();
        flags.get(RESULT).store(n as u32 + 1, SeqCst);
        0
    });
    let status = wait(r);
    if libc::WIFEXITED(status) {
        unlink();
        return Err("ptrace is refused here");
    }
    // SAFETY: our traced, stopped child.
    unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, r, 0, libc::PTRACE_O_TRACESYSGOOD) };
    // P1 takes a permit and dies holding it.
    let p1 = fork(|| {
        std::mem::forget(sem.acquire().unwrap());
        0
    });
    assert_eq!(wait(p1), 0);
    let p1_owner = owner_word(&name);
    assert_eq!(p1_owner as u32, p1 as u32);
    // Let R scan, and stop it at the return of its kill(p1, 0).
    flags.get(GO).store(1, SeqCst);
    let mut in_kill = false;
    loop {
        // SAFETY: our traced child, stopped; `regs` is a valid place for its registers.
        let regs = unsafe {
            assert_eq!(libc::ptrace(libc::PTRACE_SYSCALL, r, 0, 0), 0);
            let status = wait(r);
            assert!(libc::WIFSTOPPED(status), "R ended early: {status:#x}");
            if libc::WSTOPSIG(status) != libc::SIGTRAP | 0x80 {
                continue;
            }
            let mut regs: libc::user_regs_struct = std::mem::zeroed();
            libc::ptrace(libc::PTRACE_GETREGS, r, 0, &mut regs);
            regs
        };
        if in_kill {
            assert_eq!(regs.rax as i64, -i64::from(libc::ESRCH), "kill(p1, 0) did not say ESRCH");
            break;
        }
        in_kill = regs.orig_rax == libc::SYS_kill as u64 && regs.rdi as i32 == p1;
    }
    // R is stopped between its liveness check (dead) and its CAS of the owner word. Another
    // recoverer frees the slot now.
    assert_eq!(sem.recover().unwrap(), 1);
    assert_eq!(sem.available_permits(), PERMITS as usize);
    // P2: P1's pid, within one clock tick of P1's start; it claims the first free slot, P1's.
    let mut p2 = None;
    for _ in 0..20 {
        let Ok(mut last) = std::fs::OpenOptions::new().write(true).open("/proc/sys/kernel/ns_last_pid")
        else {
            break;
        };
        if last.write_all(format!("{}", p1 - 1).as_bytes()).is_err() {
            break;
        }
        drop(last);
        let pid = fork(|| {
            // SAFETY: getpid has no preconditions.
            if unsafe { libc::getpid() } != p1 {
                return 99;
            }
            let permit = sem.acquire().unwrap();
            flags.get(HOLDING).store(1, SeqCst);
            flags.wait_for(LET_GO, 1);
            drop(permit);
            0
        });
        if pid == p1 {
            p2 = Some(pid);
            break;
        }
        wait(pid);
    }
    let Some(p2) = p2 else {
        kill(r);
        unlink();
        return Err("pid reuse could not be forced (needs root and /proc/sys/kernel/ns_last_pid)");
    };
    flags.wait_for(HOLDING, 1);
    if owner_word(&name) != p1_owner {
        // Another clock tick: not the case under test.
        flags.get(LET_GO).store(1, SeqCst);
        wait(p2);
        kill(r);
        unlink();
        return Err("the clock ticked between P1 and P2");
    }
    // P2 is alive, holds one permit, in the slot that was P1's, under the same owner word.
    assert_eq!(sem.available_permits(), PERMITS as usize - 1);
    // SAFETY: our traced, stopped child: it runs on untraced.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, r, 0, 0) };
    assert_eq!(wait(r), 0);
    let recovered = flags.get(RESULT).load(SeqCst) as usize - 1;
    let available = sem.available_permits();
    flags.get(LET_GO).store(1, SeqCst);
    assert_eq!(wait(p2), 0);
    // P2's slot is still its own: its give-back went there, and recovering it now gives nothing.
    assert_eq!(
        (sem.available_permits(), sem.recover().unwrap()),
        (PERMITS as usize, 0),
        "after P2 gave its permit back (R recovered {recovered}): a permit made"
    );
    unlink();
    Ok((recovered, available))
}

#[test]
fn a_recoverer_never_takes_over_a_live_process_that_reused_the_dead_ones_pid_and_start_time() {
    let mut arranged = 0;
    let mut why = "";
    for k in 0..40 {
        match attempt(k) {
            Ok(outcome) => {
                arranged += 1;
                assert_eq!(
                    outcome,
                    (0, PERMITS as usize - 1),
                    "R recovered the live P2's slot: a permit made"
                );
                if arranged == 3 {
                    return;
                }
            }
            Err(reason) if reason.starts_with("the clock") => why = reason,
            Err(reason) => {
                common::say_skipped(reason);
                return;
            }
        }
    }
    common::say_skipped(&format!("{why} in every attempt ({arranged} arranged)"));
}
