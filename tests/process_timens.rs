//! A holder in another time namespace is alive to a recoverer outside it.
//!
//! `/proc/<pid>/stat` shows a start time shifted by the boot-time offset of the *reader's* time
//! namespace, so a recoverer outside the holder's namespace read another start time than the
//! holder had recorded, took the live holder for a reused pid, gave its permit to another
//! process, and the holder's give-back then made the count pass its initial value for good. Needs
//! `unshare --time` (root, Linux 5.6); prints `SKIPPED: ...` where it cannot run.
#![cfg(all(target_os = "linux", not(loom)))]

mod common;

use futex_semaphore::{ProcessSemaphore, TryAcquireError};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

/// The environment variable that names the semaphore the child opens.
const NAME: &str = "FUTEX_SEM_TIMENS_NAME";

/// The child: takes the one permit, says so, and holds it until its stdin says to give it back.
#[test]
fn child() {
    if common::child::role().as_deref() != Some("hold") {
        return;
    }
    let sem = ProcessSemaphore::open(&std::env::var(NAME).unwrap()).unwrap();
    let permit = sem.try_acquire().unwrap();
    println!("@@held");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    drop(permit);
    println!("@@given back");
}

#[test]
fn a_holder_in_another_time_namespace_is_not_taken_for_dead() {
    if common::child::is_child() {
        return;
    }
    let name = format!("futex-sem-test-timens-{}", std::process::id());
    let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
    let sem = ProcessSemaphore::create(&name, 1).unwrap();
    let args = ["--time", "--boottime", "1000"];
    let mut child = common::child::command_under("unshare", &args, "hold")
        .env(NAME, &name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare runs");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    // The child's next line of its own (the test harness prints its own lines too).
    let mut next = move || {
        let mut line = String::new();
        while out.read_line(&mut line).unwrap() > 0 {
            if line.starts_with("@@") {
                return line.trim().to_owned();
            }
            line.clear();
        }
        String::new()
    };
    if next() != "@@held" {
        let status = child.wait().unwrap();
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
        common::say_skipped(&format!("no time namespace here ({status}: {})", err.trim()));
        let _ = ProcessSemaphore::unlink(&name);
        return;
    }
    // Alive: nothing to recover, and its permit stays taken.
    assert_eq!(sem.recover().unwrap(), 0, "a live holder in another time namespace was taken for dead");
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    writeln!(child.stdin.take().unwrap()).unwrap();
    assert_eq!(next(), "@@given back");
    assert!(child.wait().unwrap().success());
    assert_eq!(sem.available_permits(), 1, "the count passed its initial value");
    ProcessSemaphore::unlink(&name).unwrap();
}
