//! Three processes share two permits, like Python's `multiprocessing.Semaphore(2)`.
//!
//! The parent creates a named semaphore and runs this program three more times as workers. Each
//! worker waits for a permit, works while it holds it, and gives it back, printing each step: at
//! most two of them are ever between "acquired" and "released".
//!
//! Run: `cargo run --example multiprocessing` (Linux and Android only).

#[cfg(all(not(loom), any(target_os = "linux", target_os = "android")))]
fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.as_slice() {
        [_, role, name, id] if role == "worker" => linux::worker(name, id),
        _ => linux::parent(),
    }
}

#[cfg(all(not(loom), any(target_os = "linux", target_os = "android")))]
mod linux {
    use futex_semaphore::ProcessSemaphore;
    use std::io;
    use std::process::{self, Command};
    use std::thread;
    use std::time::Duration;

    const WORKERS: u32 = 3;
    const PERMITS: u32 = 2;

    pub(crate) fn parent() -> io::Result<()> {
        let name = format!("futex-semaphore-example-{}", process::id());
        let sem = ProcessSemaphore::create(&name, PERMITS)?;
        println!("parent: semaphore {name:?} with {PERMITS} permits, {WORKERS} workers");
        let result = run_workers(&name);
        // Remove the name whatever happened; the workers have ended.
        ProcessSemaphore::unlink(&name)?;
        result?;
        println!("parent: all workers done, {} permits available", sem.available_permits());
        Ok(())
    }

    fn run_workers(name: &str) -> io::Result<()> {
        let exe = std::env::current_exe()?;
        let mut workers = Vec::new();
        for id in 1..=WORKERS {
            workers.push(Command::new(&exe).args(["worker", name, &id.to_string()]).spawn()?);
        }
        let mut failed = 0;
        for mut worker in workers {
            if !worker.wait()?.success() {
                failed += 1;
            }
        }
        if failed > 0 {
            return Err(io::Error::other(format!("{failed} workers failed")));
        }
        Ok(())
    }

    pub(crate) fn worker(name: &str, id: &str) -> io::Result<()> {
        let sem = ProcessSemaphore::open(name)?;
        let pid = process::id();
        println!("worker {id} (pid {pid}): waiting");
        let permit = sem.acquire().map_err(io::Error::other)?;
        println!("worker {id} (pid {pid}): acquired");
        // The work done while holding the permit.
        thread::sleep(Duration::from_millis(300));
        // Said just before the release, so that the output never shows three holders at once.
        println!("worker {id} (pid {pid}): released");
        drop(permit);
        Ok(())
    }
}

#[cfg(any(loom, not(any(target_os = "linux", target_os = "android"))))]
fn main() {
    eprintln!("ProcessSemaphore is built on Linux and Android only, and not under --cfg loom");
}
