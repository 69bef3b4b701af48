//! The one harness for tests that run their own test binary again as a child process playing a
//! role: the child is this binary with [`ROLE`] set, filtered to the test named `child`, which
//! each such test file defines (it calls [`role`] and plays it; in a normal run it does nothing).
//! Parent-side tests return at once in a child ([`is_child`]), though the filter already keeps
//! them from running there.

use std::env;
use std::process::Command;

/// The environment variable that names the role a child plays.
pub const ROLE: &str = "FUTEX_SEM_CHILD_ROLE";

/// The test-harness arguments that run only the test named `child`, quietly, on one thread.
pub const CHILD_ARGS: [&str; 5] = ["child", "--exact", "--nocapture", "--test-threads=1", "-q"];

/// The role this process plays, if it is a child.
pub fn role() -> Option<String> {
    env::var(ROLE).ok()
}

/// Whether this process is a child playing a role.
pub fn is_child() -> bool {
    env::var_os(ROLE).is_some()
}

/// A command that runs this test binary as a child playing `role`.
pub fn command(role: &str) -> Command {
    let mut command = Command::new(env::current_exe().expect("the test knows its path"));
    command.args(CHILD_ARGS).env(ROLE, role);
    command
}

/// A command that runs `program` with `args`, then this test binary as a child playing `role`
/// (for `strace`).
pub fn command_under(program: &str, args: &[&str], role: &str) -> Command {
    let mut command = Command::new(program);
    command.args(args).arg(env::current_exe().expect("the test knows its path"));
    command.args(CHILD_ARGS).env(ROLE, role);
    command
}

/// Forks a child that runs `f` and leaves with `_exit(f())`; returns its pid in the parent. For
/// test files whose tests fork from the test thread while the harness's main thread only waits
/// (one test at a time), so the child inherits no lock another thread holds. Stdout is flushed
/// first, so the child does not print the parent's buffered output again.
#[cfg(all(unix, not(loom)))]
pub fn fork(f: impl FnOnce() -> i32) -> libc::pid_t {
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    // SAFETY: no other thread of this process holds a lock the child could need (above). The
    // child runs `f` and leaves with `_exit`, without the parent's destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = f();
        // SAFETY: ends the child at once; nothing after this runs.
        unsafe { libc::_exit(code) };
    }
    pid
}
