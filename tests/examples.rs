//! Runs every scenario example and checks its story from what it prints.
//!
//! Each example prints one line when a thread has taken its permit ("performing task 3",
//! "client 1 connected", ...) and one before it gives the permit back ("finished task 3",
//! "client 1 disconnected", ...). `println!` holds stdout's lock for the whole line, so the
//! lines come out in one order, and a thread is between its two lines only while it holds a
//! permit. Replaying the lines and counting who is between them therefore never counts more
//! holders than there really are: if the replay sees more than the limit, the semaphore let
//! more in.
//!
//! The examples are built with cargo, in the profile this test was built in, and run directly.

#![cfg(not(loom))] // the loom models are in tests/loom.rs; these run on real threads

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// An example still running after this is taken as hung (they take a second or two).
const HUNG_AFTER: Duration = Duration::from_secs(30);

// Running the examples.

/// Builds the example `name` in this test's profile and returns the path of its binary.
fn build_example(name: &str) -> PathBuf {
    let output = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "--message-format=json-render-diagnostics", "--example", name])
        .args(profile_args())
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "cargo build --example {name} failed");
    let stdout = String::from_utf8(output.stdout).expect("cargo prints UTF-8");
    // The example's `compiler-artifact` message is the one with a non-null "executable".
    let key = "\"executable\":\"";
    let line =
        stdout.lines().rev().find(|l| l.contains(key)).expect("cargo reports the example's executable");
    let path = &line[line.find(key).unwrap() + key.len()..];
    let path = &path[..path.find('"').expect("the path is a JSON string")];
    PathBuf::from(path.replace("\\\\", "\\"))
}

/// The cargo arguments that select the profile this test binary was built in, read from the
/// name of its output directory (`target/<dir>/deps/examples-<hash>`).
fn profile_args() -> Vec<String> {
    let exe = std::env::current_exe().expect("the test knows its path");
    let dir = exe.parent().and_then(|deps| deps.parent()).and_then(|d| d.file_name());
    match dir.and_then(|d| d.to_str()) {
        Some("release") => vec!["--release".into()],
        Some("debug") | None => vec![],
        Some(custom) => vec!["--profile".into(), custom.into()],
    }
}

/// Builds and runs the example `name`; returns its standard output. Fails if it exits with an
/// error or runs longer than [`HUNG_AFTER`].
fn run_example(name: &str) -> String {
    let exe = build_example(name);
    let mut child = Command::new(&exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let status = wait_at_most(&mut child, HUNG_AFTER);
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    match status {
        Some(status) => {
            assert!(status.success(), "example {name} failed ({status}):\n{stdout}\n{stderr}")
        }
        None => panic!("example {name} still ran after {HUNG_AFTER:?}, killed it:\n{stdout}\n{stderr}"),
    }
    stdout
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    let mut pipe = pipe.expect("the pipe was requested");
    thread::spawn(move || {
        let mut text = String::new();
        pipe.read_to_string(&mut text).expect("the example prints UTF-8");
        text
    })
}

/// Waits for `child` to exit; kills it and returns `None` if it runs longer than `limit`.
fn wait_at_most(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for the example") {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// Reading their output.

/// What a line of output says a thread did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// It took a permit (the line is printed while it holds it).
    Enter(String),
    /// It is about to give its permit back (the line is printed while it still holds it).
    Exit(String),
    /// It stopped waiting without a permit.
    GaveUp(String),
}

/// What a replay of the output found.
#[derive(Debug, Default)]
struct Replay {
    /// The most threads ever between their `Enter` and `Exit` lines at once.
    peak: usize,
    /// Who entered and left.
    finished: BTreeSet<String>,
    /// Who gave up.
    gave_up: BTreeSet<String>,
}

/// Replays `output`, line by line, through `parse`. Fails if a thread enters twice, leaves
/// without entering, gives up while inside or after finishing, or never leaves.
fn replay(output: &str, parse: impl Fn(&str) -> Option<Event>) -> Replay {
    let mut inside = BTreeSet::new();
    let mut r = Replay::default();
    for (n, line) in output.lines().enumerate() {
        let settled = |r: &Replay, id: &String| r.finished.contains(id) || r.gave_up.contains(id);
        match parse(line) {
            Some(Event::Enter(id)) => {
                assert!(
                    !settled(&r, &id) && inside.insert(id),
                    "line {n} enters a second time: {line}\n{output}"
                );
                r.peak = r.peak.max(inside.len());
            }
            Some(Event::Exit(id)) => {
                assert!(inside.remove(&id), "line {n} leaves without having entered: {line}\n{output}");
                r.finished.insert(id);
            }
            Some(Event::GaveUp(id)) => {
                assert!(
                    !inside.contains(&id) && !settled(&r, &id),
                    "line {n} gives up out of turn: {line}\n{output}"
                );
                r.gave_up.insert(id);
            }
            None => {}
        }
    }
    assert!(inside.is_empty(), "{inside:?} entered and never left:\n{output}");
    r
}

/// `"[  120 ms] rest"` gives `(Some(120), "rest")`; a line without a time gives `(None, line)`.
fn split_time(line: &str) -> (Option<u64>, &str) {
    let timed = line.strip_prefix('[').and_then(|l| l.split_once(" ms] "));
    match timed {
        Some((ms, rest)) => (Some(ms.trim().parse().expect("a time in ms")), rest),
        None => (None, line),
    }
}

/// For a line `"[time] <subject><id> <rest>"`, the id and the rest.
fn subject<'a>(line: &'a str, subject: &str) -> Option<(String, &'a str)> {
    let (id, rest) = split_time(line).1.strip_prefix(subject)?.split_once(' ')?;
    Some((id.to_owned(), rest))
}

fn ids(ids: impl IntoIterator<Item = impl ToString>) -> BTreeSet<String> {
    ids.into_iter().map(|id| id.to_string()).collect()
}

/// Checks that no more than `limit` were ever inside, and that `limit` were inside at some
/// point (every example keeps its permits long enough for that).
fn assert_limit(name: &str, r: &Replay, limit: usize, output: &str) {
    assert!(r.peak <= limit, "{name}: {} inside at once, more than the {limit} permits:\n{output}", r.peak);
    assert_eq!(
        r.peak, limit,
        "{name}: never {limit} inside at once, the permits were not all used:\n{output}"
    );
}

// The examples.

#[test]
fn workers_run_ten_tasks_at_most_three_at_once() {
    let out = run_example("workers");
    let r = replay(&out, |line| {
        if let Some(i) = line.strip_prefix("performing task ") {
            Some(Event::Enter(i.to_owned()))
        } else {
            line.strip_prefix("finished task ").map(|i| Event::Exit(i.to_owned()))
        }
    });
    assert_limit("workers", &r, 3, &out);
    assert_eq!(r.finished, ids(0..10), "not every task finished:\n{out}");
}

#[test]
fn asyncio_workers_run_three_tasks_two_at_a_time() {
    let out = run_example("asyncio_workers");
    let r = replay(&out, |line| match subject(line, "worker ")? {
        (id, rest) if rest.starts_with("acquired") => Some(Event::Enter(id)),
        (id, rest) if rest.starts_with("released") => Some(Event::Exit(id)),
        _ => None,
    });
    assert_limit("asyncio_workers", &r, 2, &out);
    assert_eq!(r.finished, ids(0..3), "not every worker finished:\n{out}");
}

#[test]
fn shared_resource_serves_five_clients_over_two_connections() {
    let out = run_example("shared_resource");
    let r = replay(&out, |line| match subject(line, "client ")? {
        (id, rest) if rest.starts_with("connected") => Some(Event::Enter(id)),
        (id, rest) if rest.starts_with("disconnected") => Some(Event::Exit(id)),
        _ => None,
    });
    assert_limit("shared_resource", &r, 2, &out);
    assert_eq!(r.finished, ids(0..5), "not every client was served:\n{out}");
}

#[test]
fn timeout_threads_finish_or_give_up_after_waiting_a_second() {
    let out = run_example("timeout");
    let r = replay(&out, |line| match subject(line, "thread ")? {
        (id, rest) if rest.starts_with("acquired") => Some(Event::Enter(id)),
        (id, rest) if rest.starts_with("released") => Some(Event::Exit(id)),
        (id, rest) if rest.starts_with("gave up") => Some(Event::GaveUp(id)),
        _ => None,
    });
    assert!(r.peak <= 2, "{} threads held a permit at once, more than 2:\n{out}", r.peak);
    assert!(!r.finished.is_empty(), "no thread got a permit:\n{out}");
    assert!(
        !r.gave_up.is_empty(),
        "no thread gave up, though permits are held longer than the timeout:\n{out}"
    );
    let settled: BTreeSet<String> = r.finished.union(&r.gave_up).cloned().collect();
    assert_eq!(settled, ids(0..5), "some thread neither finished nor gave up:\n{out}");

    // Whoever gave up waited the whole second first (the times are whole ms, hence 999).
    for id in &r.gave_up {
        let time_of = |what: &str| {
            out.lines()
                .find(|l| subject(l, "thread ").is_some_and(|(i, rest)| &i == id && rest.starts_with(what)))
                .and_then(|l| split_time(l).0)
                .unwrap_or_else(|| panic!("no timed line where thread {id} {what}:\n{out}"))
        };
        let waited = time_of("gave up") - time_of("waits");
        assert!(waited >= 999, "thread {id} gave up after {waited} ms, before its 1 s timeout:\n{out}");
    }
}

#[test]
fn thread_pool_runs_eight_jobs_three_at_once_and_refuses_jobs_after_shutdown() {
    let out = run_example("thread_pool");
    let r = replay(&out, |line| match subject(line, "job ")? {
        (id, rest) if rest.starts_with("started") => Some(Event::Enter(id)),
        (id, rest) if rest.starts_with("finished") => Some(Event::Exit(id)),
        _ => None,
    });
    assert_limit("thread_pool", &r, 3, &out);
    assert_eq!(r.finished, ids(0..8), "not every job finished:\n{out}");
    assert!(
        out.lines().any(|l| split_time(l).1.starts_with("job 8 refused after shutdown")),
        "the closed pool did not refuse job 8:\n{out}"
    );
}

#[test]
fn bank_tellers_serve_every_customer_two_at_a_time() {
    let out = run_example("bank_tellers");
    let r = replay(&out, |line| match subject(line, "")? {
        (name, rest) if rest.starts_with("is being served") => Some(Event::Enter(name)),
        (name, rest) if rest.starts_with("is done") => Some(Event::Exit(name)),
        _ => None,
    });
    assert_limit("bank_tellers", &r, 2, &out);
    assert_eq!(
        r.finished,
        ids(["Alice", "Bob", "Charlie", "Dana", "Eve"]),
        "not every customer was served:\n{out}"
    );
    assert!(out.lines().all(|l| split_time(l).0.is_some()), "a line without a timestamp:\n{out}");
}

#[test]
fn bounded_refuses_a_release_above_its_start() {
    let out = run_example("bounded");
    let line = |start: &str| {
        out.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no line {start:?}:\n{out}"))
    };
    assert_eq!(line("release() #1"), "release() #1: accepted, available = 2", "the matching release:\n{out}");
    let refusal = line("release() #2");
    assert!(
        refusal.starts_with("release() #2: refused") && refusal.ends_with("available = 2"),
        "the release above the start was not refused, or changed the count:\n{out}"
    );
    assert!(
        line("a plain Semaphore").ends_with("available = 3"),
        "the plain semaphore's count did not grow:\n{out}"
    );
}

// The checker itself.

#[test]
fn replay_sees_every_holder_between_its_lines() {
    let parse = |line: &str| match line.split_once(' ') {
        Some(("in", id)) => Some(Event::Enter(id.to_owned())),
        Some(("out", id)) => Some(Event::Exit(id.to_owned())),
        Some(("gave-up", id)) => Some(Event::GaveUp(id.to_owned())),
        _ => None,
    };
    let r = replay("in a\nin b\nnoise\nout a\nin c\nin a2\ngave-up d\nout b\nout c\nout a2\n", parse);
    assert_eq!(r.peak, 3);
    assert_eq!(r.finished, ids(["a", "a2", "b", "c"]));
    assert_eq!(r.gave_up, ids(["d"]));
}

#[test]
#[should_panic(expected = "entered and never left")]
fn replay_fails_when_a_holder_never_leaves() {
    replay("in a\nin b\nout a\n", |line| match line.split_once(' ') {
        Some(("in", id)) => Some(Event::Enter(id.to_owned())),
        Some(("out", id)) => Some(Event::Exit(id.to_owned())),
        _ => None,
    });
}
