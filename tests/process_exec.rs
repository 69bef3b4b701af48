//! A process that `exec`s again and again, acquiring in each image, does not fill the holder
//! table: each image's slot, and what it held across the `exec`, comes back when the next image
//! first acquires through a handle.
//!
//! An image knows its slot by its nonce, drawn anew at each `exec`; before, each image claimed
//! one more slot, which stayed taken until the process exited (pid and start time alive), so the
//! `holder_slots() + 1`-th image went untracked and what it held was lost if it died.
#![cfg(all(target_os = "linux", not(loom)))]

mod common;

use futex_semaphore::ProcessSemaphore;
use std::env;
use std::os::unix::process::CommandExt;

/// The environment variables of the chain: the semaphore's name and the images left to run.
const NAME: &str = "FUTEX_SEM_EXEC_NAME";
const LEFT: &str = "FUTEX_SEM_EXEC_LEFT";

/// The images of the chain, more than the table's slots.
const IMAGES: u32 = 12;
const SLOTS: usize = 4;
const PERMITS: u32 = 20;

/// One image: takes a permit and keeps it across the `exec` of the next image (nothing gives it
/// back but recovery); the last one says whether its permit is recorded, and what is free.
#[test]
fn child() {
    if common::child::role().as_deref() != Some("exec-chain") {
        return;
    }
    let sem = ProcessSemaphore::open(&env::var(NAME).unwrap()).unwrap();
    let permit = sem.try_acquire().unwrap();
    let left: u32 = env::var(LEFT).unwrap().parse().unwrap();
    if left == 0 {
        println!("@@recoverable={} available={}", permit.is_recoverable(), sem.available_permits());
        return; // a normal end: the permit is dropped, given back
    }
    std::mem::forget(permit);
    let err = common::child::command("exec-chain").env(LEFT, (left - 1).to_string()).exec();
    panic!("exec failed: {err}");
}

#[test]
fn each_image_after_an_exec_gives_back_what_the_one_before_held() {
    if common::child::is_child() {
        return;
    }
    let name = format!("futex-sem-test-exec-{}", std::process::id());
    let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
    let sem = ProcessSemaphore::builder().holder_slots(SLOTS).create(&name, PERMITS).unwrap();
    let out = common::child::command("exec-chain")
        .env(NAME, &name)
        .env(LEFT, (IMAGES - 1).to_string())
        .output()
        .expect("the chain runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().find(|l| l.starts_with("@@")).expect("the last image reports");
    // The last image holds one permit; each image before it held one across its exec, given back
    // when the next one claimed its slot.
    assert_eq!(last, format!("@@recoverable=true available={}", PERMITS - 1), "{stdout}");
    assert_eq!(sem.available_permits(), PERMITS as usize);
    assert_eq!(sem.recover().unwrap(), 0, "nothing left recorded");
    ProcessSemaphore::unlink(&name).unwrap();
}
