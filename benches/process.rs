//! `ProcessSemaphore` against POSIX named semaphores (`sem_open`, glibc's futex `sem_t`).
//!
//! - `process/uncontended`: one process takes and gives back one permit: the fast paths, no
//!   system call for either. `ProcessSemaphore` takes it twice over: recorded (`acquire`, the
//!   permit dropped) and unrecorded (`try_acquire_unrecorded` + `release`, one CAS each way, what
//!   Python's `recover=False` does); both are reported against the one `sem_open` figure.
//! - `process/handoff`: a round trip between two processes through two semaphores at 0: this
//!   process releases `ping` and waits on `pong`; a child process (this program run again with
//!   `FUTEX_SEM_BENCH_CHILD` set) waits on `ping` and releases `pong`. Every step wakes a
//!   sleeper in the other process: what the futex path costs across processes.
//!
//! Run: `cargo bench --bench process` (about 15 s; Linux only, as every bench). The POSIX side is
//! `common::posix`, the same adapter as the threads' `sem_t` peer.

#[macro_use]
mod common;

bench_main!();

/// The bench (Linux only, as every bench: see `common`).
#[cfg(all(target_os = "linux", not(loom)))]
mod bench {
    use crate::common::report::criterion_ns;
    use crate::common::{Args, Better, PosixSemaphore, Report, Row};
    use criterion::Criterion;
    use futex_semaphore::ProcessSemaphore;
    use std::hint::black_box;
    use std::process::{Child, Command};
    use std::time::{Duration, SystemTime};

    /// The benchmark id of the unrecorded take in `process/uncontended`.
    const UNRECORDED: &str = "ProcessSemaphore-unrecorded";

    /// Set in the child: `<kind> <ping name> <pong name>`.
    const CHILD: &str = "FUTEX_SEM_BENCH_CHILD";

    pub(crate) fn main() {
        if let Ok(spec) = std::env::var(CHILD) {
            child(&spec);
            return;
        }
        let args = Args::parse();
        let started = SystemTime::now();
        let (warm_up, measurement) =
            args.mode.criterion_times(Duration::from_millis(500), Duration::from_secs(2));
        let mut c = Criterion::default()
            .warm_up_time(warm_up)
            .measurement_time(measurement)
            .sample_size(args.mode.pick(30, 10, 10))
            .nresamples(10_000)
            .configure_from_args();
        uncontended(&mut c);
        handoff(&mut c);
        c.final_summary();
        let mut report = Report::new("process", args.mode);
        // Criterion writes `process/handoff` to the directory `process_handoff`. Each scenario:
        // its group, its name in the summary, our benchmark in the group, the unit and scale.
        for (group, scenario, ours, unit, scale) in [
            ("process_uncontended", "process uncontended acquire+release", "ProcessSemaphore", "ns", 1.0),
            ("process_uncontended", "process unrecorded try_acquire+release", UNRECORDED, "ns", 1.0),
            ("process_handoff", "process handoff round trip", "ProcessSemaphore", "us", 1e-3),
        ] {
            for (name, peer) in [(ours, "futex-semaphore"), ("sem_open", "sem_open")] {
                if let Some(ns) = criterion_ns(group, name, "", started) {
                    report.add(Row::new(scenario, peer, ns * scale, unit, Better::Lower));
                }
            }
        }
        report.finish();
    }

    fn uncontended(c: &mut Criterion) {
        let mut group = c.benchmark_group("process/uncontended");
        let sem = ProcessSemaphore::anonymous(1).expect("anonymous semaphore");
        group.bench_function("ProcessSemaphore", |b| b.iter(|| drop(black_box(sem.acquire()))));
        group.bench_function(UNRECORDED, |b| {
            b.iter(|| {
                black_box(sem.try_acquire_unrecorded()).expect("the one permit is free");
                sem.release().expect("one permit is below the limit");
            })
        });
        let posix = PosixSemaphore::create(&format!("/futex-sem-bench-{}-u", std::process::id()), 1);
        group.bench_function("sem_open", |b| {
            b.iter(|| {
                posix.wait();
                posix.post();
            })
        });
        group.finish();
    }

    fn handoff(c: &mut Criterion) {
        let mut group = c.benchmark_group("process/handoff");
        let pid = std::process::id();

        let (ping_name, pong_name) =
            (format!("futex-sem-bench-{pid}-ping"), format!("futex-sem-bench-{pid}-pong"));
        let ping = ProcessSemaphore::create(&ping_name, 0).expect("create ping");
        let pong = ProcessSemaphore::create(&pong_name, 0).expect("create pong");
        let peer = Peer::spawn("futex", &ping_name, &pong_name);
        group.bench_function("ProcessSemaphore", |b| {
            b.iter(|| {
                ping.release().expect("release ping");
                pong.acquire().expect("acquire pong").forget();
            })
        });
        drop(peer);
        let _ = ProcessSemaphore::unlink(&ping_name);
        let _ = ProcessSemaphore::unlink(&pong_name);

        let (ping_name, pong_name) =
            (format!("/futex-sem-bench-{pid}-sping"), format!("/futex-sem-bench-{pid}-spong"));
        let ping = PosixSemaphore::create(&ping_name, 0);
        let pong = PosixSemaphore::create(&pong_name, 0);
        let peer = Peer::spawn("posix", &ping_name, &pong_name);
        group.bench_function("sem_open", |b| {
            b.iter(|| {
                ping.post();
                pong.wait();
            })
        });
        drop(peer);
        group.finish();
    }

    /// The other process of a handoff; killed when dropped.
    struct Peer(Child);

    impl Peer {
        fn spawn(kind: &str, ping: &str, pong: &str) -> Peer {
            let exe = std::env::current_exe().expect("current_exe");
            let child = Command::new(exe)
                .env(CHILD, format!("{kind} {ping} {pong}"))
                .spawn()
                .expect("spawn the peer process");
            Peer(child)
        }
    }

    impl Drop for Peer {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// The peer: answers every ping with a pong until it is killed.
    fn child(spec: &str) {
        let parts: Vec<&str> = spec.split(' ').collect();
        match parts.as_slice() {
            ["futex", ping, pong] => {
                let ping = ProcessSemaphore::open(ping).expect("open ping");
                let pong = ProcessSemaphore::open(pong).expect("open pong");
                while let Ok(permit) = ping.acquire() {
                    permit.forget();
                    pong.release().expect("release pong");
                }
            }
            ["posix", ping, pong] => {
                let ping = PosixSemaphore::open(ping);
                let pong = PosixSemaphore::open(pong);
                loop {
                    ping.wait();
                    pong.post();
                }
            }
            _ => panic!("bad {CHILD}: {spec:?}"),
        }
    }
}
