//! `ProcessSemaphore` across real processes.
//!
//! Child processes are this test binary run again as a child (`tests/common/child.rs`): the test
//! named `child` then plays the role (see `child`) and every other test is filtered out. Children
//! report on stdout with lines containing `@@<event>`; the parent waits for those lines instead
//! of sleeping. Every name includes the test's pid and is unlinked when the test ends.
#![cfg(all(not(loom), any(target_os = "linux", target_os = "android")))]

mod common;

use common::child::fork;
use common::shared_cells::SharedCells;

use futex_semaphore::{ProcessSemaphore, TryAcquireError};
use std::env;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

const NAME: &str = "FUTEX_SEM_TEST_NAME";
const COUNTER: &str = "FUTEX_SEM_TEST_COUNTER";
const PERMITS: &str = "FUTEX_SEM_TEST_PERMITS";

/// How long a child or the parent waits for something that should come at once. Only a broken
/// semaphore (or a machine stalled for this long) reaches it.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The child side.

/// Plays the role this process was started for; in a normal test run, does nothing.
#[test]
fn child() {
    let Some(role) = common::child::role() else { return };
    let name = env::var(NAME).unwrap_or_default();
    let permits: u32 = env::var(PERMITS).ok().and_then(|p| p.parse().ok()).unwrap_or(1);
    match role.as_str() {
        // Takes one permit many times, counting how many processes are inside at once.
        "limit" => {
            let sem = ProcessSemaphore::open_or_create(&name, permits).unwrap();
            let counter = Counter::open(&env::var(COUNTER).unwrap());
            for _ in 0..LIMIT_ROUNDS {
                let permit = sem.acquire().unwrap();
                let inside = counter.inside().fetch_add(1, SeqCst) + 1;
                counter.max().fetch_max(inside, SeqCst);
                counter.entries().fetch_add(1, SeqCst);
                // Hold it a little, so that others arrive while it is held.
                std::thread::sleep(Duration::from_micros(300));
                counter.inside().fetch_sub(1, SeqCst);
                drop(permit);
            }
        }
        // Takes `permits`, says so, and holds them until stdin closes (or it is killed).
        "hold" => {
            let sem = ProcessSemaphore::open(&name).unwrap();
            let permit = sem.acquire_many(permits).unwrap();
            say("acquired");
            let _ = io::stdin().read_to_end(&mut Vec::new());
            drop(permit);
            say("released");
        }
        // Waits for `permits`, and says whether it got them.
        "wait" => {
            let sem = ProcessSemaphore::open(&name).unwrap();
            say("waiting");
            match sem.try_acquire_many_for(permits, PATIENCE) {
                Ok(permit) => {
                    say("acquired");
                    drop(permit);
                }
                Err(e) => say(&format!("failed: {e}")),
            }
        }
        "fork" => fork_role(),
        "fork-full" => full_table_role(),
        "fork-timer" => fork_timer_role(),
        "fork-queue" => fork_queue_role(),
        "fork-mid-section" => fork_mid_section_role(),
        "fork-queue-tasks" => fork_queue_tasks_role(),
        "fork-waker-owns-task" => fork_waker_owns_task_role(),
        "fork-task-watcher" => fork_task_watcher_role(),
        "fork-moved-task" => fork_moved_task_role(),
        "pid-reuse-cache" => pid_reuse_cache_role(),
        "pid-reuse-permit" => pid_reuse_permit_role(),
        "first-acquires" => first_acquires_role(),
        "untracked-sleeper" => untracked_sleeper_role(),
        "threads-killed" => threads_killed_role(),
        "forget-alias" => forget_alias_role(&name),
        // Every clock-reading path (a new region, a timed wait on each kind), for `valgrind`.
        "clocks" => {
            let sem = ProcessSemaphore::anonymous(1).unwrap();
            drop(sem.acquire().unwrap());
            let held = sem.acquire().unwrap();
            assert!(sem.try_acquire_for(Duration::from_millis(1)).is_err());
            drop(held);
            let local = futex_semaphore::Semaphore::new(0);
            assert!(local.try_acquire_for(Duration::from_millis(1)).is_err());
            say("clocks read");
        }
        // Uncontended acquires and releases, for `strace` to count system calls.
        "fast" => {
            let sem = ProcessSemaphore::anonymous(1).unwrap();
            for _ in 0..permits {
                drop(std::hint::black_box(sem.acquire().unwrap()));
                drop(std::hint::black_box(sem.try_acquire().unwrap()));
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn say(event: &str) {
    println!("@@{event}");
}

const LIMIT_ROUNDS: u32 = 40;

// ---------------------------------------------------------------------------------------------
// The parent side.

/// A child process playing a role; killed and reaped on drop if still running.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Proc {
    fn spawn(role: &str, vars: &[(&str, &str)]) -> Proc {
        let mut command = common::child::command(role);
        for (key, value) in vars {
            command.env(key, value);
        }
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Proc { child, stdin, stdout }
    }

    /// Reads the child's output until it reports `event`; panics on anything it reports instead.
    fn expect(&mut self, event: &str) {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.stdout.read_line(&mut line).unwrap();
            assert!(read > 0, "child {} ended before reporting {event:?}", self.child.id());
            if let Some(at) = line.find("@@") {
                let got = line[at + 2..].trim_end();
                assert_eq!(got, event, "child {} reported something else", self.child.id());
                return;
            }
        }
    }

    /// Reads the child's output until it reports `done`, or a `SKIPPED: ...` line (printed
    /// again here, for the test log).
    fn expect_done_or_skipped(&mut self) {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.stdout.read_line(&mut line).unwrap();
            assert!(read > 0, "child {} ended before reporting done", self.child.id());
            if let Some(why) = line.strip_prefix("SKIPPED: ") {
                common::say_skipped(why.trim_end());
                return;
            }
            if let Some(at) = line.find("@@") {
                let got = line[at + 2..].trim_end();
                assert_eq!(got, "done", "child {} reported something else", self.child.id());
                return;
            }
        }
    }

    /// Waits until the child process itself has ended, leaving its stdout open to its own
    /// children (used where the child's pid must be free for a grandchild to take).
    fn wait_exit(&mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child {} failed: {status}", self.child.id());
    }

    /// Closes the child's stdin (a "hold" child then releases and ends).
    fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Kills the child with SIGKILL and waits until it is a zombie, *without* reaping it.
    fn kill_leaving_zombie(&mut self) {
        self.child.kill().unwrap();
        let pid = rustix::process::Pid::from_child(&self.child);
        let flags = rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOWAIT;
        rustix::process::waitid(rustix::process::WaitId::Pid(pid), flags).unwrap();
    }

    /// Waits for the child to end, and checks that it succeeded.
    fn succeeds(mut self) {
        self.close_stdin();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child {} failed: {status}", self.child.id());
    }

    /// Waits for the child to end (after it was killed).
    fn reap(mut self) {
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Names unique to this test process, unlinked (if they exist) when dropped.
struct Names(Vec<String>);

impl Names {
    fn new(tags: &[&str]) -> Names {
        let names: Vec<String> =
            tags.iter().map(|tag| format!("futex-sem-test-{tag}-{}", std::process::id())).collect();
        for name in &names {
            let _ = fs::remove_file(format!("/dev/shm/{name}"));
        }
        Names(names)
    }

    fn get(&self, i: usize) -> &str {
        &self.0[i]
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = fs::remove_file(format!("/dev/shm/{name}"));
        }
    }
}

/// Three counters in a shared mapping of a file: processes inside, the most at once, entries.
struct Counter(SharedCells);

impl Counter {
    fn create(path: &str) -> Counter {
        Counter(SharedCells::create(path, 3))
    }

    fn open(path: &str) -> Counter {
        Counter(SharedCells::open(path, 3))
    }

    fn inside(&self) -> &AtomicU32 {
        self.0.cell(0)
    }

    fn max(&self) -> &AtomicU32 {
        self.0.cell(1)
    }

    fn entries(&self) -> &AtomicU32 {
        self.0.cell(2)
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn at_most_three_of_eight_processes_are_inside_at_once() {
    let names = Names::new(&["limit", "limit-counter"]);
    let (name, counter_name) = (names.get(0), names.get(1));
    let counter_path = format!("/dev/shm/{counter_name}");
    let counter = Counter::create(&counter_path);
    // The children race to create the semaphore with `open_or_create`: one creates, seven open.
    let vars = [(NAME, name), (COUNTER, counter_path.as_str()), (PERMITS, "3")];
    let children: Vec<Proc> = (0..8).map(|_| Proc::spawn("limit", &vars)).collect();
    for child in children {
        child.succeeds();
    }
    assert_eq!(counter.entries().load(SeqCst), 8 * LIMIT_ROUNDS);
    let max = counter.max().load(SeqCst);
    assert!((1..=3).contains(&max), "{max} processes were inside at once");
    println!("at most {max} of 8 processes were inside at once");
    let sem = ProcessSemaphore::open(name).unwrap();
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn permits_of_a_killed_holder_are_recovered() {
    let names = Names::new(&["killed-holder"]);
    let name = names.get(0);
    let sem = ProcessSemaphore::create(name, 3).unwrap();
    let mut holder = Proc::spawn("hold", &[(NAME, name), (PERMITS, "2")]);
    holder.expect("acquired");
    assert_eq!(sem.available_permits(), 1);
    // Alive: nothing to recover.
    assert_eq!(sem.recover().unwrap(), 0);
    // SIGKILL: no destructor runs. A zombie (not yet reaped) counts as dead.
    holder.kill_leaving_zombie();
    assert_eq!(sem.recover().unwrap(), 2);
    assert_eq!(sem.available_permits(), 3);
    holder.reap();
    // Exactly once: nothing is left to recover.
    assert_eq!(sem.recover().unwrap(), 0);
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn a_waiter_recovers_the_permits_of_a_killed_holder_by_itself() {
    let names = Names::new(&["waiter-recovers"]);
    let name = names.get(0);
    let sem = ProcessSemaphore::create(name, 2).unwrap();
    let mut holder = Proc::spawn("hold", &[(NAME, name), (PERMITS, "2")]);
    holder.expect("acquired");
    let mut waiter = Proc::spawn("wait", &[(NAME, name), (PERMITS, "2")]);
    waiter.expect("waiting");
    holder.kill_leaving_zombie();
    holder.reap();
    // Nobody calls `recover`: the waiter finds the dead holder after its 100 ms sleep.
    waiter.expect("acquired");
    waiter.succeeds();
    assert_eq!(sem.available_permits(), 2);
    // And this process, too, recovers while it waits: within about RECOVERY_INTERVAL (100 ms)
    // of the holder's death, as documented; its first scan comes one interval after it starts
    // waiting. A scan that came only after a second would fail: 600 ms leaves room for a loaded
    // machine, and a trial under it is enough (at most 3, each timed from the holder's death).
    let mut took = Vec::new();
    for _ in 0..3 {
        let mut holder = Proc::spawn("hold", &[(NAME, name), (PERMITS, "2")]);
        holder.expect("acquired");
        holder.kill_leaving_zombie();
        let start = Instant::now();
        let permit = sem.try_acquire_many_for(2, PATIENCE).unwrap();
        took.push(start.elapsed());
        drop(permit);
        holder.reap();
        assert_eq!(sem.available_permits(), 2);
        if took.last().unwrap() < &Duration::from_millis(600) {
            break;
        }
    }
    assert!(
        took.last().unwrap() < &Duration::from_millis(600),
        "a waiter recovered a killed holder's permits only after {took:?}, not within about {:?}",
        ProcessSemaphore::RECOVERY_INTERVAL
    );
    println!("a waiter recovered a killed holder's permits in {took:?}");
}

#[test]
fn a_killed_waiter_does_not_block_the_others() {
    let names = Names::new(&["killed-waiter"]);
    let name = names.get(0);
    let sem = ProcessSemaphore::create(name, 2).unwrap();
    let mine = sem.acquire_many(2).unwrap();
    // One waiter for one permit, one for two: both kinds of sleeper are killed asleep (each
    // seen sleeping in the futex, past its spinning and its registration).
    let mut one = Proc::spawn("wait", &[(NAME, name), (PERMITS, "1")]);
    let mut two = Proc::spawn("wait", &[(NAME, name), (PERMITS, "2")]);
    one.expect("waiting");
    two.expect("waiting");
    wait_until_asleep(one.child.id() as libc::pid_t);
    wait_until_asleep(two.child.id() as libc::pid_t);
    one.kill_leaving_zombie();
    two.kill_leaving_zombie();
    one.reap();
    two.reap();
    drop(mine);
    let again = sem.try_acquire_many_for(2, PATIENCE).unwrap();
    let mut live = Proc::spawn("wait", &[(NAME, name), (PERMITS, "2")]);
    live.expect("waiting");
    drop(again);
    live.expect("acquired");
    live.succeeds();
    assert_eq!(sem.available_permits(), 2);
    sem.recover().unwrap();
    assert!(format!("{sem:?}").contains("sleepers: 0"), "{sem:?}");
}

#[test]
fn timeouts_work_across_processes() {
    let names = Names::new(&["timeouts"]);
    let name = names.get(0);
    let sem = ProcessSemaphore::create(name, 1).unwrap();
    let mut holder = Proc::spawn("hold", &[(NAME, name), (PERMITS, "1")]);
    holder.expect("acquired");
    let start = Instant::now();
    let err = sem.try_acquire_for(Duration::from_millis(150)).unwrap_err();
    let waited = start.elapsed();
    assert_eq!(err, TryAcquireError::NoPermits);
    assert!(waited >= Duration::from_millis(150) && waited < PATIENCE / 2, "waited {waited:?}");
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    // The holder gives its permit back when its stdin closes: a sleeper here is woken by it.
    holder.close_stdin();
    let permit = sem.try_acquire_for(PATIENCE).unwrap();
    holder.expect("released");
    holder.succeeds();
    drop(permit);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn open_refuses_files_that_are_not_semaphores() {
    let names = Names::new(&["garbage", "truncated", "other-version"]);
    let garbage = names.get(0);
    let path = format!("/dev/shm/{garbage}");
    let region_size = {
        let sem = ProcessSemaphore::create(names.get(1), 1).unwrap();
        drop(sem);
        fs::metadata(format!("/dev/shm/{}", names.get(1))).unwrap().len() as usize
    };
    let contents: [Vec<u8>; 5] = [
        Vec::new(),
        b"this is not a semaphore\n".to_vec(),
        vec![0xAB; region_size],
        vec![0; region_size],
        (0..region_size * 2).map(|i| i as u8).collect(),
    ];
    for bytes in &contents {
        fs::write(&path, bytes).unwrap();
        let err = ProcessSemaphore::open(garbage).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{} bytes: {err}", bytes.len());
    }
    // A real region, truncated.
    let truncated = format!("/dev/shm/{}", names.get(1));
    OpenOptions::new().write(true).open(&truncated).unwrap().set_len(100).unwrap();
    let err = ProcessSemaphore::open(names.get(1)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    // A real region of another layout version (the u32 at offset 8).
    ProcessSemaphore::create(names.get(2), 1).unwrap();
    let other = format!("/dev/shm/{}", names.get(2));
    let mut bytes = fs::read(&other).unwrap();
    bytes[8..12].copy_from_slice(&999u32.to_ne_bytes());
    fs::write(&other, &bytes).unwrap();
    let err = ProcessSemaphore::open(names.get(2)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("version 999"), "{err}");
    // open_or_create does not clobber it either.
    let err = ProcessSemaphore::open_or_create(names.get(2), 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
}

#[test]
fn create_refuses_an_existing_name_and_open_a_missing_one() {
    let names = Names::new(&["exists"]);
    let name = names.get(0);
    assert_eq!(ProcessSemaphore::open(name).unwrap_err().kind(), ErrorKind::NotFound);
    let sem = ProcessSemaphore::create(name, 1).unwrap();
    assert_eq!(ProcessSemaphore::create(name, 1).unwrap_err().kind(), ErrorKind::AlreadyExists);
    assert_eq!(sem.name(), Some(name));
    ProcessSemaphore::unlink(name).unwrap();
    assert_eq!(ProcessSemaphore::unlink(name).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(ProcessSemaphore::open(name).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn names_permits_and_modes_are_validated() {
    let long = "x".repeat(256);
    for bad in ["", "a/b", "/lead", ".", "..", "nul\0", long.as_str()] {
        let err = ProcessSemaphore::create(bad, 1).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}: {err}");
        assert_eq!(ProcessSemaphore::open(bad).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(ProcessSemaphore::unlink(bad).unwrap_err().kind(), ErrorKind::InvalidInput);
    }
    let names = Names::new(&["validated"]);
    let err = ProcessSemaphore::create(names.get(0), u32::MAX).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = ProcessSemaphore::create_with_mode(names.get(0), 1, 0o4755).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(ProcessSemaphore::anonymous(u32::MAX).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert!(fs::metadata(format!("/dev/shm/{}", names.get(0))).is_err(), "nothing was created");
}

/// Writes `word` at byte `offset` of the region file of `name` (another process corrupting it).
fn poke(name: &str, offset: u64, word: u64) {
    use std::os::unix::fs::FileExt;
    let file = OpenOptions::new().write(true).open(format!("/dev/shm/{name}")).unwrap();
    file.write_all_at(&word.to_ne_bytes(), offset).unwrap();
}

/// The word at byte `offset` of the region file of `name`.
fn peek(name: &str, offset: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let file = OpenOptions::new().read(true).open(format!("/dev/shm/{name}")).unwrap();
    let mut word = [0; 8];
    file.read_exact_at(&mut word, offset).unwrap();
    u64::from_ne_bytes(word)
}

/// The state word's offset in the region, and the `sleepers` word's (`docs/process.md`).
const STATE_AT: u64 = 64;
const SLEEPERS_AT: u64 = 72;
/// Lane `i` of slot 0: its `announce` word (its `held` word follows it).
const fn lane_at(i: u64) -> u64 {
    128 + 32 + 16 * i
}
/// A lane word's sequence (bits 32..62) and count (bits 0..32).
const fn lane_seq(word: u64) -> u64 {
    (word >> 32) & ((1 << 30) - 1)
}
/// An announced take of one permit, the lane's operation `seq`.
const fn announced_take(seq: u64) -> u64 {
    1 << 62 | seq << 32 | 1
}

#[test]
fn a_tag_naming_slot_field_zero_makes_no_call_panic() {
    // A tag (bits 32..63) whose sequence bits are set but whose slot field (bits 49..62) is 0
    // names no lane: before, decoding it computed `0 - 1` (a panic in a debug build) in every
    // change that helps the tag it overwrites.
    let corrupt_tag = 1 << 32;
    let names = Names::new(&["corrupt-state", "corrupt-sleepers"]);
    let sem = ProcessSemaphore::create(names.get(0), 3).unwrap();
    poke(names.get(0), STATE_AT, corrupt_tag | 3);
    sem.release().unwrap(); // an untagged change: helps the tag it overwrites
    drop(sem.try_acquire().unwrap()); // a tagged take and give-back
    assert_eq!(sem.available_permits(), 4);
    assert_eq!(sem.recover().unwrap(), 0);
    // The same in `sleepers`: a sleeper's registration helps the tag there.
    let sem = ProcessSemaphore::create(names.get(1), 0).unwrap();
    poke(names.get(1), SLEEPERS_AT, corrupt_tag);
    assert_eq!(sem.try_acquire_for(Duration::from_millis(150)).unwrap_err(), TryAcquireError::NoPermits);
    sem.release().unwrap();
    drop(sem.try_acquire().unwrap());
}

#[test]
fn a_foreign_announcement_in_an_owned_lane_makes_no_call_panic() {
    // Another process writes an announcement into every owned lane of this process's slot.
    // Before, a debug build asserted that its own lane was idle, so the next take panicked.
    let names = Names::new(&["foreign-announce"]);
    let sem = ProcessSemaphore::create(names.get(0), 2).unwrap();
    drop(sem.acquire().unwrap()); // slot 0, and a lane of this thread's
    for lane in 2..6 {
        poke(names.get(0), lane_at(lane), announced_take(1));
    }
    let permit = sem.try_acquire().unwrap();
    assert_eq!(sem.available_permits(), 1);
    drop(permit);
    assert_eq!(sem.available_permits(), 2);
}

/// The state word keeps the low 14 bits of a lane's sequence in its tag.
const FORGETS: u32 = (1 << 14) - 1;
const FORGET_PERMITS: u32 = 20_000;

#[test]
fn a_take_announced_after_many_forgets_is_not_taken_for_the_last_published_one() {
    // Before, `forget` moved its lane's sequence on without publishing, so after 2^14 - 1 forgets
    // the lane's next operation had the low bits of the tag left in the state word by the
    // lane's last published one: a recoverer (or a helper) took that announcement, never
    // published, for the tagged operation and completed it, making a permit.
    for help_first in [false, true] {
        let names = Names::new(&["forget-alias"]);
        let sem = ProcessSemaphore::create(names.get(0), FORGET_PERMITS).unwrap();
        let mut child = Proc::spawn("forget-alias", &[(NAME, names.get(0))]);
        child.expect("announced");
        child.succeeds();
        if help_first {
            // An untagged change helps the tag it overwrites (`State::help`).
            sem.release().unwrap();
        }
        let recovered = sem.recover().unwrap();
        let expected = (FORGET_PERMITS - FORGETS) as usize + usize::from(help_first);
        assert_eq!(
            (recovered, sem.available_permits()),
            (1, expected),
            "help first: {help_first}: only the one permit kept comes back"
        );
    }
}

/// Takes `FORGETS` permits and one more (the lane's last published operation), forgets the
/// `FORGETS`, then announces a take in the same lane as the process would, and ends there, as if
/// killed before publishing it: the take never happened.
fn forget_alias_role(name: &str) {
    let sem = ProcessSemaphore::open(name).unwrap();
    let forgotten: Vec<_> = (0..FORGETS).map(|_| sem.try_acquire().unwrap()).collect();
    let kept = sem.try_acquire().unwrap();
    for permit in forgotten {
        permit.forget();
    }
    std::mem::forget(kept);
    // This process has slot 0; its one thread recorded every operation in one lane.
    let last = 2 * u64::from(FORGETS) + 1;
    let lane =
        (0..6).find(|&i| lane_seq(peek(name, lane_at(i) + 8)) == last).expect("one lane has every operation");
    assert_eq!(peek(name, lane_at(lane) + 8) as u32, 1, "the lane holds the one permit kept");
    poke(name, lane_at(lane), announced_take(last + 1));
    say("announced");
}

#[test]
fn created_with_mode_0600() {
    let names = Names::new(&["mode"]);
    let _sem = ProcessSemaphore::create(names.get(0), 1).unwrap();
    let mode = fs::metadata(format!("/dev/shm/{}", names.get(0))).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o600);
}

#[test]
fn uncontended_acquires_and_releases_make_no_system_call() {
    // Two runs under `strace -c`, of 10 and of 100,000 acquire/release pairs: if the fast paths
    // made any system call (`getpid` included), the second run would make 100,000 more.
    let Some(few) = system_calls(10) else {
        return common::skip_without("strace");
    };
    let Some(many) = system_calls(100_000) else { return };
    assert!(many < few + 100, "10 rounds made {few} system calls, 100,000 rounds {many}");
    println!("system calls: {few} for 10 rounds, {many} for 100,000");
}

#[test]
fn runs_under_valgrind() {
    // rustix's own auxv reader took a vDSO address that Valgrind does not map: the first clock
    // read crashed (SIGSEGV) there. Memcheck's exit code tells an invalid access from a pass.
    let out = common::child::command_under("valgrind", &["-q", "--error-exitcode=99"], "clocks").output();
    let Ok(out) = out else {
        return common::skip_without("valgrind");
    };
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the child failed under valgrind ({}): {report}", out.status);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("@@clocks read"),
        "the child did not finish: {report}"
    );
}

/// The system calls a "fast" child of `rounds` rounds makes in all, or None without strace.
fn system_calls(rounds: u32) -> Option<u64> {
    let out = common::child::command_under("strace", &["-f", "-c", "-o", "/dev/stderr"], "fast")
        .env(PERMITS, rounds.to_string())
        .output()
        .ok()?;
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {report}");
    // The last row reads "100.00  seconds  usecs/call  calls  [errors]  total".
    let total = report.lines().find(|l| l.trim_end().ends_with(" total"))?;
    let calls = total.split_whitespace().nth(3).and_then(|calls| calls.parse().ok());
    assert!(calls.is_some(), "cannot read strace's total row {total:?}");
    calls
}

#[test]
fn is_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ProcessSemaphore>();
}

#[test]
fn anonymous_is_shared_with_forked_children() {
    // Forking is done in a child of its own, which runs only this one test on one thread.
    let mut forker = Proc::spawn("fork", &[]);
    forker.expect("done");
    forker.succeeds();
}

/// A forked child has no copy of the parent's threads, the crate's timer thread among them: it
/// starts its own when a task there is held back by a reservation, so the task is woken at the
/// lapse there too (a child that trusted the parent's timer would wait for a wake that never
/// comes). Not a `ProcessSemaphore` matter; here for the forking harness.
#[test]
fn a_forked_child_starts_its_own_timer() {
    let mut forker = Proc::spawn("fork-timer", &[]);
    forker.expect("done");
    forker.succeeds();
}

/// The parent starts the timer (a held-back task), then forks a child that does the same, with
/// an alarm in case the child's task is never woken. Runs in its own process.
fn fork_timer_role() {
    assert!(
        common::task_waits_out_a_reservation() < 50,
        "the parent's held-back task was not woken by its timer"
    );
    let child = fork(|| {
        // SAFETY: alarm(2) only arms a signal; SIGALRM ends the child if it hangs.
        unsafe { libc::alarm(20) };
        if common::task_waits_out_a_reservation() < 50 { 0 } else { 20 }
    });
    assert_eq!(wait(child), 0, "the forked child's held-back task (-14: it hung until the alarm)");
    say("done");
}

/// A forked child's copy of a `Semaphore` holds the parent's queued threads, which do not exist
/// there: its first section takes them out, so its releases serve its own waiters (a copied
/// thread at the head was given the reservation, and the permits with it, for ever). Not a
/// `ProcessSemaphore` matter; here for the forking harness.
#[test]
fn a_forked_child_does_not_serve_the_parents_queued_threads() {
    let mut forker = Proc::spawn("fork-queue", &[]);
    forker.expect("done");
    forker.succeeds();
}

/// The parent holds the only permit while a thread of its waits for it, long enough to starve,
/// then forks; the child gives the permit back and takes it five times. Runs in its own process.
fn fork_queue_role() {
    use futex_semaphore::Semaphore;
    let sem = std::sync::Arc::new(Semaphore::new(1));
    let held = sem.acquire().unwrap();
    let waiter = {
        let sem = std::sync::Arc::clone(&sem);
        std::thread::spawn(move || drop(sem.acquire().unwrap()))
    };
    while sem.queued_waiters() == 0 {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(5)); // past STARVE_AFTER: its reservation is due
    let child = fork(|| {
        // SAFETY: alarm(2) only arms a signal; SIGALRM ends the child if it hangs.
        unsafe { libc::alarm(20) };
        sem.add_permits(1); // the permit the parent's main thread holds (copied: this thread)
        for _ in 0..5 {
            match sem.try_acquire_for(Duration::from_secs(2)) {
                Ok(permit) => drop(permit),
                Err(_) => return 10,
            }
        }
        if sem.queued_waiters() != 0 {
            return 11;
        }
        if sem.available_permits() != 1 { 12 } else { 0 }
    });
    assert_eq!(wait(child), 0, "the child (10: not served, 11: a waiter left, 12: a permit lost)");
    drop(held);
    waiter.join().unwrap();
    assert_eq!(sem.available_permits(), 1);
    say("done");
}

/// A fork while other threads are inside the waiter queue's locked sections: the child has a
/// copy of the queue's lock but not the thread that held it, and its first section (a timed
/// acquire that queues, a release to a queue with waiters) must not wait for that thread for
/// ever. Not a `ProcessSemaphore` matter; here for the forking harness.
#[test]
fn a_fork_in_the_middle_of_a_section_leaves_the_childs_queue_usable() {
    let mut forker = Proc::spawn("fork-mid-section", &[]);
    forker.expect("done");
    forker.succeeds();
}

/// Three threads take and give back the only permit as fast as they can (most of their acquires
/// queue, so the queue's lock is nearly always held by one of them) while the main thread forks
/// [`MID_SECTION_FORKS`] children; each child queues for the permit with a timeout and then
/// gives one back, under an alarm. Runs in its own process.
fn fork_mid_section_role() {
    use futex_semaphore::Semaphore;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    const MID_SECTION_FORKS: usize = 200;
    let sem = Arc::new(Semaphore::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let hammers: Vec<_> = (0..3)
        .map(|_| {
            let (sem, stop) = (Arc::clone(&sem), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    drop(sem.acquire().unwrap());
                }
            })
        })
        .collect();
    while sem.queued_waiters() == 0 {
        std::thread::yield_now();
    }
    let mut hung = 0;
    for _ in 0..MID_SECTION_FORKS {
        let child = fork(|| {
            // SAFETY: alarm(2) only arms a signal; SIGALRM ends the child if it hangs.
            unsafe { libc::alarm(5) };
            // The permit may be with a parent thread that is not here: the acquire times out
            // (after queueing) or takes it. Then a permit more, which nobody here takes.
            drop(sem.try_acquire_for(Duration::from_millis(2)));
            sem.add_permits(1);
            if sem.try_acquire().is_ok() { 0 } else { 10 }
        });
        match wait(child) {
            0 => {}
            code if code == -libc::SIGALRM => hung += 1,
            code => panic!("a child failed with {code} (10: the permit it added was not there)"),
        }
    }
    stop.store(true, SeqCst);
    for hammer in hammers {
        hammer.join().unwrap();
    }
    assert_eq!(hung, 0, "{hung} of {MID_SECTION_FORKS} children hung on the queue's copied lock");
    say("done");
}

/// The same for tasks: in a fork's child, a task queued by another thread of the parent (whose
/// executor is not in the child) is taken out of the queue like a thread; one queued by the
/// forking thread stays and is served there; and one queued by another thread but polled by
/// the forking thread in the child is served too (neither served for nothing nor stranded).
#[test]
fn a_forked_child_serves_its_own_tasks_not_the_parents_other_threads() {
    let mut forker = Proc::spawn("fork-queue-tasks", &[]);
    forker.expect("done");
    forker.succeeds();
}

fn fork_queue_tasks_role() {
    use futex_semaphore::Semaphore;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::task::{Context, Poll, Wake, Waker};
    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, SeqCst);
        }
    }
    let flag = || Arc::new(Flag(AtomicBool::new(false)));

    // 1. A task of another thread's executor, starving at the fork: the child's releases serve
    // the child's own acquires.
    let sem = Arc::new(Semaphore::new(1));
    let held = sem.acquire().unwrap();
    let waiter = {
        let sem = Arc::clone(&sem);
        std::thread::spawn(move || drop(pollster::block_on(sem.acquire_async()).unwrap()))
    };
    while sem.queued_waiters() == 0 {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(5)); // past STARVE_AFTER: its reservation is due
    let child = fork(|| {
        // SAFETY: alarm(2) only arms a signal; SIGALRM ends the child if it hangs.
        unsafe { libc::alarm(20) };
        sem.add_permits(1);
        for _ in 0..5 {
            match sem.try_acquire_for(Duration::from_secs(2)) {
                Ok(permit) => drop(permit),
                Err(_) => return 10,
            }
        }
        if sem.queued_waiters() != 0 { 11 } else { 0 }
    });
    assert_eq!(wait(child), 0, "the child (10: not served, 11: a waiter left)");
    drop(held);
    waiter.join().unwrap();

    // 2. This thread's task stays queued and is served; another thread's is taken out by the
    // child's first section and, polled here after it, queues again: one permit, this thread's
    // task (now the first) gets it.
    let sem = Arc::new(Semaphore::new(0));
    let mine = flag();
    let my_waker = Waker::from(Arc::clone(&mine));
    let mut a = Box::pin(sem.acquire_async()); // queued by this thread, the forking one
    let mut b = Box::pin(sem.acquire_async()); // queued by another thread of the parent
    std::thread::scope(|s| {
        s.spawn(|| {
            let waker = Waker::from(flag());
            assert!(b.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        });
    });
    assert!(a.as_mut().poll(&mut Context::from_waker(&my_waker)).is_pending());
    let child = fork(|| {
        // SAFETY: as above.
        unsafe { libc::alarm(20) };
        let mut cx = Context::from_waker(&my_waker);
        sem.add_permits(0); // the first section: b's entry leaves (b was polled last elsewhere)
        if b.as_mut().poll(&mut cx).is_ready() {
            return 10; // its entry taken out, it took the missing entry for a served one
        }
        sem.add_permits(1);
        if !mine.0.load(SeqCst) {
            return 11; // neither woken
        }
        match (a.as_mut().poll(&mut cx), b.as_mut().poll(&mut cx)) {
            (Poll::Ready(Ok(p)), Poll::Pending) | (Poll::Pending, Poll::Ready(Ok(p))) => {
                p.forget();
                if sem.available_permits() != 0 { 13 } else { 0 }
            }
            _ => 12, // both or neither: a permit made or lost
        }
    });
    assert_eq!(wait(child), 0, "the child (10, 12, 13: a permit made or lost; 11: none woken)");
    drop((a, b));
    say("done");
}

/// A fork's child leaks, not drops, the wakers of the tasks it takes out of the queue.
#[test]
fn a_forked_child_leaks_a_gone_executors_waker_rather_than_dropping_it() {
    let mut forker = Proc::spawn("fork-waker-owns-task", &[]);
    forker.expect("done");
    forker.succeeds();
}

/// A task owned only by its wakers (as futures' ThreadPool, or a detached async-task, keeps a
/// pending task), queued by another thread of the parent: had the child's first section dropped
/// the entry's waker under the queue's lock, the task's future would drop with it, and its
/// cancel lock the queue again (the child hung, 5/5).
fn fork_waker_owns_task_role() {
    use futex_semaphore::Semaphore;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Wake, Waker};
    struct Task(Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>);
    impl Wake for Task {
        fn wake(self: Arc<Self>) {}
    }
    let sem = Arc::new(Semaphore::new(0));
    {
        let sem = Arc::clone(&sem);
        std::thread::spawn(move || {
            let s2 = Arc::clone(&sem);
            let task = Arc::new(Task(Mutex::new(Some(Box::pin(async move {
                drop(s2.acquire_async().await);
            })))));
            let waker = Waker::from(Arc::clone(&task));
            let mut fut = task.0.lock().unwrap();
            assert!(fut.as_mut().unwrap().as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
            // the executor forgets it: only the queue's clone of the waker owns the task now
        })
        .join()
        .unwrap();
    }
    assert_eq!(sem.queued_waiters(), 1);
    let child = fork(|| {
        // SAFETY: alarm(2) only arms a signal; SIGALRM ends the child if it hangs.
        unsafe { libc::alarm(5) };
        sem.add_permits(1); // the first section in the child
        if sem.queued_waiters() != 0 { 11 } else { 0 }
    });
    assert_eq!(wait(child), 0, "the child (-14: hung until the alarm)");
    say("done");
}

/// A fork's child chooses a kept task watcher again, with its own timer.
#[test]
fn a_forked_childs_kept_task_watcher_is_woken_at_the_lapse() {
    let mut forker = Proc::spawn("fork-task-watcher", &[]);
    forker.expect("done");
    forker.succeeds();
}

/// Tasks the forking thread polled last stay in the child: its reservation's owner O (2 permits) and a task
/// T it holds back (1 permit; T's progress frees the other permit), T the watcher, woken by the
/// parent's timer at the lapse. The child has no timer thread and the kept watcher's timer wake is
/// the parent's: T is never woken at the lapse there.
fn fork_task_watcher_role() {
    use futex_semaphore::Semaphore;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::task::{Context, Wake, Waker};
    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, SeqCst);
        }
    }
    // Attempts until one is conclusive (the first, nearly always), up to a cap: a test that
    // never got a conclusive one has tested nothing, and fails.
    const ATTEMPTS: u32 = 100;
    let mut conclusive = false;
    for attempt in 0..ATTEMPTS {
        let sem = Arc::new(Semaphore::new(2));
        let mine = sem.acquire().unwrap(); // T's first permit
        let held = sem.acquire().unwrap();
        let (fo, ft) = (Arc::new(Flag(AtomicBool::new(false))), Arc::new(Flag(AtomicBool::new(false))));
        let (wo, wt) = (Waker::from(Arc::clone(&fo)), Waker::from(Arc::clone(&ft)));
        let mut o = Box::pin(sem.acquire_many_async(2));
        assert!(o.as_mut().poll(&mut Context::from_waker(&wo)).is_pending());
        std::thread::sleep(Duration::from_millis(5)); // O starves
        drop(held); // the reservation is claimed for O
        let mut t = Box::pin(sem.acquire_async());
        assert!(t.as_mut().poll(&mut Context::from_waker(&wt)).is_pending());
        let child = fork(|| {
            // SAFETY: alarm(2) only arms a signal; SIGALRM ends the child if it hangs.
            unsafe { libc::alarm(5) };
            if ft.0.load(SeqCst) {
                return 99; // the parent's timer fired before the fork: inconclusive
            }
            let _ = sem.try_acquire(); // a section in the child (reserved: it locks)
            let start = Instant::now();
            while !ft.0.load(SeqCst) {
                if start.elapsed() > Duration::from_secs(2) {
                    return 10; // the watcher never woken at the lapse
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            0
        });
        let code = wait(child);
        drop((o, t, mine));
        if code == 99 {
            eprintln!("attempt {attempt}: inconclusive");
            continue;
        }
        assert_eq!(code, 0, "the child (10: its held-back task watcher never woken)");
        conclusive = true;
        break;
    }
    assert!(
        conclusive,
        "all {ATTEMPTS} attempts were inconclusive: the parent's timer always fired before the fork"
    );
    say("done");
}

/// A task last polled by the forking thread stays queued in the child, wherever it queued.
#[test]
fn a_task_moved_to_the_forking_thread_stays_queued_in_the_child() {
    let mut forker = Proc::spawn("fork-moved-task", &[]);
    forker.expect("done");
    forker.succeeds();
}

/// A task first polled (queued) on another thread, then moved to this thread's executor and
/// polled here (still queued, as a work-stealing or moved executor does), then this thread forks:
/// had the child taken its entry out (recorded as the other thread's), the release there would
/// not wake it, and an executor that polls only woken tasks would never poll it again (5/5).
fn fork_moved_task_role() {
    use futex_semaphore::Semaphore;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::task::{Context, Wake, Waker};
    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, SeqCst);
        }
    }
    let sem = Arc::new(Semaphore::new(0));
    let mut b = Box::pin(sem.acquire_async());
    std::thread::scope(|s| {
        s.spawn(|| {
            let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
            assert!(b.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        });
    });
    let mine = Arc::new(Flag(AtomicBool::new(false)));
    let my_waker = Waker::from(Arc::clone(&mine));
    // moved to this thread's executor: polled here, still queued
    assert!(b.as_mut().poll(&mut Context::from_waker(&my_waker)).is_pending());
    let child = fork(|| {
        // SAFETY: alarm(2) only arms a signal.
        unsafe { libc::alarm(5) };
        sem.add_permits(1);
        if !mine.0.load(SeqCst) { 10 } else { 0 } // the executor polls woken tasks only
    });
    assert_eq!(wait(child), 0, "the child (10: the task was not woken by the release)");
    drop(b);
    say("done");
}

/// Forks and checks what the children see. Runs in its own process (see the test above).
fn fork_role() {
    let sem = ProcessSemaphore::anonymous(1).unwrap();

    // 1. The child sees the parent's permit taken; it gets the permit once the parent drops it.
    // `ready` (another semaphore) tells the parent that the child has looked.
    let ready = ProcessSemaphore::anonymous(0).unwrap();
    let permit = sem.acquire().unwrap();
    let child = fork(|| {
        if sem.try_acquire().is_ok() {
            return 10;
        }
        if ready.release().is_err() {
            return 11;
        }
        match sem.try_acquire_for(PATIENCE) {
            Ok(_permit) => 0,
            Err(_) => 12,
        }
    });
    ready.try_acquire_for(PATIENCE).unwrap().forget();
    drop(permit);
    assert_eq!(wait(child), 0);
    assert_eq!(sem.available_permits(), 1);

    // 2. A child killed while it holds the permit: recovery gives it back. This works only if the
    // child recorded it in a slot of its own, under its own pid (not the parent's cached one).
    let child = fork(|| {
        let permit = sem.acquire().unwrap();
        // SAFETY: raise(3) is async-signal-safe; SIGKILL ends the process here.
        unsafe { libc::raise(libc::SIGKILL) };
        drop(permit);
        13
    });
    assert_eq!(wait(child), -libc::SIGKILL);
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.recover().unwrap(), 1);
    assert_eq!(sem.available_permits(), 1);

    // 2b. An unrecorded permit of a killed child is not given back; its recorded one is.
    let pair = ProcessSemaphore::anonymous(2).unwrap();
    let child = fork(|| {
        let recorded = pair.acquire().unwrap();
        if pair.try_acquire_unrecorded().is_err() {
            return 14;
        }
        // SAFETY: as above.
        unsafe { libc::raise(libc::SIGKILL) };
        drop(recorded);
        15
    });
    assert_eq!(wait(child), -libc::SIGKILL);
    assert_eq!(pair.recover().unwrap(), 1, "only the recorded permit comes back");
    assert_eq!(pair.available_permits(), 1);

    // 3. A permit copied into a child by fork is the parent's: dropping it there does nothing.
    let mut permit = Some(sem.acquire().unwrap());
    let child = fork(|| {
        drop(permit.take());
        0
    });
    assert_eq!(wait(child), 0);
    assert_eq!(sem.available_permits(), 0);
    assert!(permit.is_some());
    drop(permit);
    assert_eq!(sem.available_permits(), 1);
    say("done");
}

#[test]
fn a_full_holder_table_still_grants_permits_but_cannot_recover_them() {
    let mut forker = Proc::spawn("fork-full", &[]);
    forker.expect("done");
    forker.succeeds();
}

/// Fills the holder table with forked children, then acquires in a 129th process.
fn full_table_role() {
    const CHILDREN: u32 = ProcessSemaphore::DEFAULT_HOLDER_SLOTS as u32;
    let sem = ProcessSemaphore::anonymous(1000).unwrap();
    let ready = ProcessSemaphore::anonymous(0).unwrap();
    let gate = ProcessSemaphore::anonymous(0).unwrap();
    let children: Vec<libc::pid_t> = (0..CHILDREN)
        .map(|_| {
            fork(|| {
                let permit = sem.acquire().unwrap();
                if !permit.is_recoverable() {
                    return 20;
                }
                ready.release().unwrap();
                gate.try_acquire_for(PATIENCE).unwrap().forget();
                // Leave without dropping the permit: recovery must give it back.
                std::mem::forget(permit);
                0
            })
        })
        .collect();
    ready.try_acquire_many_for(CHILDREN, PATIENCE).unwrap().forget();
    // Every slot is taken by a live process: this one is untracked, but gets its permit.
    let permit = sem.acquire().unwrap();
    assert!(!permit.is_recoverable());
    gate.add_permits(CHILDREN as usize).unwrap();
    for child in children {
        assert_eq!(wait(child), 0);
    }
    assert_eq!(sem.available_permits(), 1000 - CHILDREN as usize - 1);
    // The dead children's slots: all recovered, each once.
    assert_eq!(sem.recover().unwrap(), CHILDREN as usize);
    assert_eq!(sem.recover().unwrap(), 0);
    drop(permit);
    assert_eq!(sem.available_permits(), 1000);
    // A forked child (another pid, so a new look-up) claims one of the freed slots.
    let child = fork(|| if sem.acquire().unwrap().is_recoverable() { 0 } else { 21 });
    assert_eq!(wait(child), 0);
    say("done");
}

/// Waits for a forked child: its exit code, or minus the signal that killed it.
fn wait(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid place for the result.
    let got = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(got, pid);
    if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -libc::WTERMSIG(status) }
}

/// Waits until a thread of process `pid` (our child) sleeps in `futex(2)` on a shared word (a
/// wait without `FUTEX_PRIVATE_FLAG`: a semaphore's sleep; the standard library's locks and
/// channels wait on private ones), polling `/proc/<pid>/task/*/syscall`; panics if none does
/// within `PATIENCE / 2` (and kills it). Where that file cannot be read (a kernel that refuses it),
/// settles for every thread sleeping (state `S` in `.../stat`).
fn wait_until_asleep(pid: libc::pid_t) {
    const FUTEX_WAIT: u64 = 0;
    const FUTEX_WAIT_BITSET: u64 = 9;
    const FUTEX_PRIVATE_FLAG: u64 = 128;
    const FUTEX_CLOCK_REALTIME: u64 = 256;
    let in_shared_futex_wait = |line: &str| {
        let mut fields = line.split_whitespace();
        let number = fields.next().and_then(|n| n.parse::<libc::c_long>().ok());
        let hex = |f: Option<&str>| f.and_then(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok());
        let (_uaddr, op) = (fields.next(), hex(fields.next()));
        // 32-bit targets also have `futex_time64`, 422 on every architecture.
        let futex = [libc::SYS_futex, if cfg!(target_pointer_width = "32") { 422 } else { -1 }];
        number.is_some_and(|n| futex.contains(&n))
            && op.is_some_and(|op| {
                op & FUTEX_PRIVATE_FLAG == 0
                    && [FUTEX_WAIT, FUTEX_WAIT_BITSET].contains(&(op & !FUTEX_CLOCK_REALTIME))
            })
    };
    let deadline = Instant::now() + PATIENCE / 2;
    let mut seen = Vec::new();
    loop {
        seen.clear();
        let mut readable = true;
        let mut all_sleeping = true;
        let tasks = fs::read_dir(format!("/proc/{pid}/task"));
        for task in tasks.unwrap_or_else(|e| panic!("process {pid}: /proc/{pid}/task: {e}")) {
            let task = task.unwrap().path();
            // A thread that ended meanwhile has no files left: skip it.
            match fs::read_to_string(task.join("syscall")) {
                Ok(line) => seen.push(line.trim_end().to_owned()),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(_) => readable = false,
            }
            if let Ok(stat) = fs::read_to_string(task.join("stat")) {
                // The state follows the command name, which is in parentheses.
                let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
                all_sleeping &= state == Some("S");
            }
        }
        if seen.iter().any(|line| in_shared_futex_wait(line)) {
            return;
        }
        if !readable && all_sleeping {
            println!("/proc/{pid}/task/*/syscall unreadable: every thread sleeps, taken as asleep");
            return;
        }
        if Instant::now() >= deadline {
            // Killed, so that a forked child does not keep the test's output open after it.
            // SAFETY: signals our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("process {pid} never slept in futex(2): {seen:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------------
// Pid reuse, first acquires from many threads, killed untracked sleepers (issue 11).

/// Forks a child that gets pid `target` (forced through `/proc/sys/kernel/ns_last_pid`, which
/// needs root) and runs `f` there; `None` if that pid could not be had.
fn fork_with_pid(target: libc::pid_t, f: impl Fn() -> i32) -> Option<libc::pid_t> {
    // Another process may take the pid between the write and the fork (the tests of this file
    // run in parallel, and fork): each attempt costs a fork, so try many times.
    for _ in 0..500 {
        let mut last = OpenOptions::new().write(true).open("/proc/sys/kernel/ns_last_pid").ok()?;
        if last.write_all(format!("{}", target - 1).as_bytes()).is_err() {
            return None;
        }
        drop(last);
        let pid = fork(|| {
            // SAFETY: getpid has no preconditions.
            if unsafe { libc::getpid() } != target {
                return 99; // another process took the pid first: the parent tries again
            }
            f()
        });
        if pid == target {
            return Some(pid);
        }
        assert_eq!(wait(pid), 99);
    }
    None
}

/// Waits (bounded) until no process has pid `pid` any more (it exited and was reaped).
fn wait_until_gone(pid: libc::pid_t) {
    let start = Instant::now();
    // SAFETY: kill with signal 0 only checks for existence.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(start.elapsed() < PATIENCE, "process {pid} never went away");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_reused_pid_never_writes_into_the_slot_its_namesake_had() {
    let mut first = Proc::spawn("pid-reuse-cache", &[]);
    first.expect("forked");
    // The first process has ended; reap it so that its pid is free for its grandchild.
    first.wait_exit();
    first.expect_done_or_skipped();
}

/// Scenario 1 of issue 11. This process P1 fills its handle's slot cache, forks C and ends. C
/// forks G with P1's pid; G acquires through the inherited handle. Then an unrelated process U
/// claims a slot and ends, and `recover()` runs: if G had written into P1's old (freed) slot,
/// U would have claimed it and recovery would hand out G's permit while G still holds it.
fn pid_reuse_cache_role() {
    let sem = ProcessSemaphore::anonymous(1).unwrap();
    let (ready, gate) = (ProcessSemaphore::anonymous(0).unwrap(), ProcessSemaphore::anonymous(0).unwrap());
    drop(sem.acquire().unwrap()); // claims a slot and fills the cache
    // SAFETY: getpid has no preconditions.
    let p1 = unsafe { libc::getpid() };
    fork(|| {
        wait_until_gone(p1);
        assert_eq!(sem.recover().unwrap(), 0); // frees P1's slot
        let g = fork_with_pid(p1, || {
            let permit = sem.try_acquire().expect("the one permit is free");
            ready.release().unwrap();
            gate.try_acquire_for(PATIENCE).unwrap().forget();
            drop(permit);
            0
        });
        let Some(g) = g else {
            println!("SKIPPED: pid reuse could not be forced (needs root and /proc/sys/kernel/ns_last_pid)");
            return 0;
        };
        ready.try_acquire_for(PATIENCE).unwrap().forget();
        let unrelated = fork(|| {
            let _ = sem.try_acquire(); // claims a slot on the way; fails: G holds the permit
            0
        });
        assert_eq!(wait(unrelated), 0);
        sem.recover().unwrap();
        let (available, extra) = (sem.available_permits(), sem.try_acquire().is_ok());
        gate.release().unwrap();
        assert_eq!(wait(g), 0);
        if available != 0 || extra {
            println!("@@failed: G holds the only permit, yet {available} available (extra: {extra})");
        } else if sem.available_permits() != 1 {
            println!("@@failed: {} permits after G gave its one back", sem.available_permits());
        } else {
            say("done");
        }
        0
    });
    say("forked");
}

#[test]
fn a_permit_copied_by_fork_is_not_given_back_by_a_process_with_the_takers_pid() {
    let mut first = Proc::spawn("pid-reuse-permit", &[]);
    first.expect("forked");
    first.wait_exit();
    first.expect_done_or_skipped();
}

/// Scenario 2 of issue 11. P1 takes the one permit, forks C (which gets a copy of the
/// `ProcessPermit`), gives its own back and ends. C forks G with P1's pid; G drops its copy.
fn pid_reuse_permit_role() {
    let sem = ProcessSemaphore::anonymous(1).unwrap();
    let permit = sem.acquire().unwrap();
    // SAFETY: getpid has no preconditions.
    let p1 = unsafe { libc::getpid() };
    let copy = std::mem::ManuallyDrop::new(permit);
    fork(|| {
        wait_until_gone(p1);
        let g = fork_with_pid(p1, || {
            // SAFETY: this process's copy of the permit, dropped once, here only.
            drop(unsafe { std::ptr::read(&*copy) });
            0
        });
        let Some(g) = g else {
            println!("SKIPPED: pid reuse could not be forced (needs root and /proc/sys/kernel/ns_last_pid)");
            return 0;
        };
        assert_eq!(wait(g), 0);
        let available = sem.available_permits();
        let first = sem.try_acquire();
        let second = sem.try_acquire();
        if available != 1 || second.is_ok() || first.is_err() {
            println!("@@failed: {available} permits available after G dropped P1's copy");
        } else {
            say("done");
        }
        0
    });
    // SAFETY: P1's own permit, dropped once (the copies in the children are theirs).
    drop(unsafe { std::ptr::read(&*copy) });
    say("forked");
}

#[test]
fn threads_of_a_fresh_process_acquiring_at_once_share_one_slot() {
    let mut forker = Proc::spawn("first-acquires", &[]);
    forker.expect("done");
    forker.succeeds();
}

/// Scenario 4 of issue 11: `PROCESSES` processes, each with `THREADS` threads making their first
/// acquire at once, on the default table (128 slots). Then single-threaded fillers take the
/// rest of the table: exactly `128 - PROCESSES` of them must find a slot, which fails if one of
/// the first processes took more than one.
fn first_acquires_role() {
    const PROCESSES: usize = 20;
    const THREADS: usize = 32;
    let slots = ProcessSemaphore::DEFAULT_HOLDER_SLOTS;
    let sem = ProcessSemaphore::anonymous(10_000).unwrap();
    let (ready, gate) = (ProcessSemaphore::anonymous(0).unwrap(), ProcessSemaphore::anonymous(0).unwrap());
    let mut children: Vec<libc::pid_t> = (0..PROCESSES)
        .map(|_| {
            fork(|| {
                // Every thread waits until all are running, then they acquire together.
                let (started, unrecoverable) = (AtomicU32::new(0), AtomicU32::new(0));
                std::thread::scope(|s| {
                    for _ in 0..THREADS {
                        s.spawn(|| {
                            started.fetch_add(1, SeqCst);
                            let since = Instant::now();
                            while started.load(SeqCst) < THREADS as u32 && since.elapsed() < PATIENCE {
                                std::thread::yield_now();
                            }
                            let permit = sem.try_acquire().unwrap();
                            if !permit.is_recoverable() {
                                unrecoverable.fetch_add(1, SeqCst);
                            }
                            permit.forget();
                        });
                    }
                });
                ready.release().unwrap();
                // Stay alive (keeping the slot) until the fillers have run.
                gate.try_acquire_for(PATIENCE).unwrap().forget();
                unrecoverable.load(SeqCst) as i32
            })
        })
        .collect();
    ready.try_acquire_many_for(PROCESSES as u32, PATIENCE).unwrap().forget();
    // Fillers, one at a time: 0 if it got a slot, 1 if untracked.
    let mut tracked = 0;
    for _ in 0..slots - PROCESSES + 1 {
        let filler = fork(|| {
            let permit = sem.try_acquire().unwrap();
            let code = i32::from(!permit.is_recoverable());
            ready.release().unwrap();
            gate.try_acquire_for(PATIENCE).unwrap().forget();
            code
        });
        ready.try_acquire_for(PATIENCE).unwrap().forget();
        children.push(filler);
    }
    gate.add_permits(children.len()).unwrap();
    let codes: Vec<i32> = children.into_iter().map(wait).collect();
    let (first, fillers) = codes.split_at(PROCESSES);
    assert!(first.iter().all(|&c| c == 0), "threads without a slot in the first processes: {first:?}");
    tracked += fillers.iter().filter(|&&c| c == 0).count();
    assert_eq!(
        tracked,
        slots - PROCESSES,
        "{tracked} fillers found a slot, not {}: some process took more than one",
        slots - PROCESSES
    );
    say("done");
}

#[test]
fn the_permits_of_a_killed_process_of_many_threads_come_back_exactly() {
    let mut forker = Proc::spawn("threads-killed", &[]);
    forker.expect("done");
    forker.succeeds();
}

/// A child with more threads than a slot has owned lanes (so some announce in their own lane and
/// the rest share the shared ones, often finding them busy): two waves of threads (the second
/// takes over the leases the first gave back at exit) take and give back at once, then each
/// thread of the second wave keeps what it holds and the child is killed. Recovery must give
/// back exactly what they held: a lane written by two threads at once leaves its count wrong.
fn threads_killed_role() {
    const THREADS: u32 = 12;
    const ROUNDS: u32 = 20_000;
    const PERMITS: u32 = 4 * THREADS;
    let sem = ProcessSemaphore::anonymous(PERMITS).unwrap();
    let child = fork(|| {
        // A panicking thread (a failed acquire, an owned lane found in use) would leave the others
        // waiting at `holding` forever: end the child at once instead, and the parent's check of
        // how it ended fails.
        std::panic::set_hook(Box::new(|info| {
            eprintln!("{info}");
            std::process::abort();
        }));
        let churn = |keep: bool| {
            let (start, holding) =
                (std::sync::Barrier::new(THREADS as usize), std::sync::Barrier::new(THREADS as usize + 1));
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let (sem, start, holding) = (&sem, &start, &holding);
                    s.spawn(move || {
                        start.wait();
                        for i in 0..ROUNDS {
                            let n = 1 + (t + i) % 3;
                            drop(sem.try_acquire_many_for(n, PATIENCE).unwrap());
                        }
                        if keep {
                            // Held until the kill: one permit each, and two more for odd threads.
                            let _one = sem.try_acquire_for(PATIENCE).unwrap();
                            let _more = (t % 2 == 1).then(|| sem.try_acquire_many_for(2, PATIENCE).unwrap());
                            holding.wait();
                            loop {
                                // SAFETY: pause(2) has no preconditions; SIGKILL ends the wait.
                                unsafe { libc::pause() };
                            }
                        }
                    });
                }
                if keep {
                    holding.wait();
                    // SAFETY: raise(3) ends the process here; the threads hold their permits.
                    unsafe { libc::raise(libc::SIGKILL) };
                }
            });
        };
        churn(false);
        churn(true);
        1
    });
    assert_eq!(wait(child), -libc::SIGKILL);
    let held = THREADS + 2 * (THREADS / 2);
    assert_eq!(sem.available_permits(), (PERMITS - held) as usize);
    assert_eq!(sem.recover().unwrap(), held as usize, "exactly what the killed threads held comes back");
    assert_eq!(sem.available_permits(), PERMITS as usize);
    say("done");
}

#[test]
fn a_killed_untracked_sleeper_is_not_counted_after_recovery() {
    let mut forker = Proc::spawn("untracked-sleeper", &[]);
    forker.expect("done");
    forker.succeeds();
}

/// Scenario 5 of issue 11: the table (1 slot) is full, so a second process is untracked; it
/// sleeps in `acquire_many(2)` and is killed. Afterwards no sleeper is counted, and an
/// untracked sleeper (which nobody counts, so nobody wakes) still gets permits by polling.
fn untracked_sleeper_role() {
    let sem = ProcessSemaphore::builder().holder_slots(1).anonymous(1).unwrap();
    let held = sem.acquire().unwrap(); // this process has the one slot
    assert!(held.is_recoverable());
    let sleeper = fork(|| {
        let _ = sem.acquire_many(2);
        30
    });
    // Killed past its spinning, asleep in the futex.
    wait_until_asleep(sleeper);
    // SAFETY: signals our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(sleeper, libc::SIGKILL) }, 0);
    assert_eq!(wait(sleeper), -libc::SIGKILL);
    sem.recover().unwrap();
    let dbg = format!("{sem:?}");
    assert!(dbg.contains("sleepers: 0,"), "a dead untracked sleeper is still counted: {dbg}");
    // An untracked waiter still gets the permit when it comes back.
    let waiter = fork(|| match sem.try_acquire_for(PATIENCE) {
        Ok(permit) if !permit.is_recoverable() => 0,
        Ok(_) => 31,
        Err(_) => 32,
    });
    // Released only once it sleeps, so that it gets the permit by polling (nobody wakes it).
    // (This process keeps the one slot, so the waiter is untracked either way.)
    wait_until_asleep(waiter);
    drop(held);
    assert_eq!(wait(waiter), 0);
    say("done");
}

#[test]
fn merged_permits_are_given_back_one_at_a_time_and_only_alike_ones_merge() {
    let sem = ProcessSemaphore::anonymous(3).unwrap();
    let other = ProcessSemaphore::anonymous(1).unwrap();
    let mut held = sem.try_acquire_many(0).unwrap();
    held.merge(sem.try_acquire().unwrap()).unwrap();
    held.merge(sem.try_acquire_many(2).unwrap()).unwrap();
    assert_eq!((held.num_permits(), sem.available_permits()), (3, 0));
    let foreign = held.merge(other.try_acquire().unwrap()).expect_err("another semaphore's permit");
    assert_eq!((foreign.num_permits(), other.available_permits()), (1, 0));
    drop(foreign);
    assert_eq!(other.available_permits(), 1);
    assert!(held.release_one());
    assert_eq!((held.num_permits(), sem.available_permits()), (2, 1));
    drop(held);
    assert_eq!(sem.available_permits(), 3);
    assert_eq!(sem.recover().unwrap(), 0);
}

#[test]
fn a_merge_past_max_permits_is_refused_and_an_emptied_permit_is_not_recoverable() {
    // A permit gives back all it holds in one step; one past MAX_PERMITS never could (before,
    // the merge was accepted and the drop's give-back refused: every permit lost).
    let max = ProcessSemaphore::MAX_PERMITS as u32;
    let sem = ProcessSemaphore::anonymous(max).unwrap();
    let a = sem.acquire_many(max).unwrap();
    sem.add_permits(ProcessSemaphore::MAX_PERMITS).unwrap(); // more than MAX_PERMITS out in all
    let mut b = sem.acquire_many(max).unwrap();
    let a = b.merge(a).expect_err("a sum past MAX_PERMITS");
    assert_eq!((a.num_permits(), b.num_permits()), (max as usize, max as usize));
    drop(b);
    assert_eq!(sem.available_permits(), ProcessSemaphore::MAX_PERMITS);
    drop(a); // past MAX_PERMITS: dropped, as documented
    assert_eq!(sem.available_permits(), ProcessSemaphore::MAX_PERMITS);

    let sem = ProcessSemaphore::anonymous(1).unwrap();
    let mut one = sem.try_acquire_many(0).unwrap();
    assert!(!one.is_recoverable());
    one = sem.try_acquire().unwrap();
    assert!(one.is_recoverable());
    assert!(one.release_one());
    assert!(!one.is_recoverable(), "an emptied permit holds nothing to recover");
}
