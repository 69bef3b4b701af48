//! The Python package (`python/`): builds it into a virtual environment and runs its pytest suite
//! (`python/tests`: CPython's own semaphore tests, the asyncio and multiprocessing tests, and
//! the scenarios in `examples/python`).
//!
//! The environment lives in cargo's `target/tmp/python/`; it is built again only when the sources
//! of the package or of the crate change (a hash of them is kept beside it), and the package's
//! cargo build directory is kept there too, so a rebuild is incremental. The first build fetches
//! maturin and pytest from PyPI (pip's build isolation): offline, it fails. Where `python3` or
//! its `venv` module is missing, the test prints `SKIPPED: python: <why>` and passes (and fails
//! on CI, `CI=true`).
//!
//! Set `PYTHON` to use another interpreter than `python3`.

#![cfg(not(loom))] // the loom models are in tests/loom.rs; these run on real threads

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The pytest run is killed after this (it takes well under a minute).
const PYTEST_LIMIT: Duration = Duration::from_secs(600);
/// Building the package (cargo, in release) is killed after this.
const INSTALL_LIMIT: Duration = Duration::from_secs(900);

/// Prints past the test harness's capture, so that the line shows in a passing run too.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Skips the package's tests, except on CI (`CI=true`, as `.ci/run` runs there), where Python
/// and its `venv` are part of the machine and a skip would pass without testing the package.
fn skip(why: &str) {
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "python: {why}, and CI=true requires the package's tests"
    );
    say(&format!("SKIPPED: python: {why}"));
}

/// Runs `cmd`, killing it after `limit`; returns whether it succeeded.
fn run(cmd: &mut Command, limit: Duration) -> bool {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status.success();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still ran after {limit:?}: killed it");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Hashes the files under `dir` (recursively) whose name ends in one of `exts`, in a fixed order.
fn hash_tree(dir: &Path, exts: &[&str], hasher: &mut DefaultHasher) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "target" && name != "tests" && !name.starts_with('.') {
                hash_tree(&path, exts, hasher);
            }
        } else if exts.iter().any(|ext| name.ends_with(ext)) {
            name.hash(hasher);
            fs::read(&path).unwrap_or_default().hash(hasher);
        }
    }
}

/// A hash of what the built package depends on: the crate's and the package's sources.
fn source_hash(root: &Path) -> String {
    let mut hasher = DefaultHasher::new();
    for file in [
        "Cargo.toml",
        "python/Cargo.toml",
        "python/Cargo.lock",
        "python/pyproject.toml",
        "python/README.md",
        "python/futex_semaphore.pyi",
    ] {
        fs::read(root.join(file)).unwrap_or_default().hash(&mut hasher);
    }
    hash_tree(&root.join("src"), &[".rs"], &mut hasher);
    hash_tree(&root.join("python/src"), &[".rs"], &mut hasher);
    format!("{:016x}", hasher.finish())
}

#[test]
fn python_package_passes_its_pytest_suite() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let has_python = Command::new(&python).arg("--version").stdout(Stdio::null()).status();
    if !has_python.is_ok_and(|s| s.success()) {
        return skip(&format!("no `{python}` to run"));
    }
    let has_venv = Command::new(&python)
        .args(["-c", "import venv, ensurepip"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_venv {
        return skip(&format!(
            "`{python}` has no venv/ensurepip module (Debian: apt-get install python3-venv)"
        ));
    }

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python");
    let venv = dir.join("venv");
    let venv_python = venv.join("bin/python");
    let stamp = venv.join("futex-semaphore.stamp");
    let hash = source_hash(root);
    let start = Instant::now();
    if fs::read_to_string(&stamp).ok().as_deref() != Some(hash.as_str()) {
        if !venv_python.exists() {
            fs::create_dir_all(&dir).expect("create target/tmp/python");
            assert!(
                run(Command::new(&python).args(["-m", "venv"]).arg(&venv), INSTALL_LIMIT),
                "{python} -m venv {} failed",
                venv.display()
            );
        }
        say("python: building the package into a virtual environment (pip install ./python pytest)");
        let installed = run(
            Command::new(&venv_python)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "pytest"])
                .arg(root.join("python"))
                .env("CARGO_TARGET_DIR", dir.join("build"))
                .env("PIP_NO_INPUT", "1"),
            INSTALL_LIMIT,
        );
        assert!(
            installed,
            "pip install ./python pytest failed (see above; it fetches maturin and pytest from PyPI)"
        );
        fs::write(&stamp, &hash).expect("write the stamp");
        say(&format!("python: built in {:.0?}", start.elapsed()));
    }

    let passed = run(
        Command::new(&venv_python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "python/tests"])
            .current_dir(root)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        PYTEST_LIMIT,
    );
    assert!(passed, "the Python package's pytest suite failed (see above)");
}
