//! herd-probe: the async herd of `benches/async.rs` (`async_herd`) alone, for profiling: 1000 tasks
//! on a 2-worker tokio runtime share 4 permits, 20 acquires each, each holding its permit across a
//! `yield_now` and 20 work units; every other task asks for 2 permits with `2` as the third
//! argument. This semaphore (`a`) and tokio's (`b`) run in turns, round by round; it prints the
//! medians (ms) and tokio's time over ours (above 1: ours is faster).
//!
//! `cargo run --release -p herd-probe -- [a|b|ab] [ROUNDS] [1|2]`; under `/usr/bin/time -f %w`
//! (voluntary context switches) or `perf record` with one of `a` or `b` alone.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bench's work unit (`benches/common/workloads.rs`).
fn work(units: u32) {
    let mut x = 1u64;
    for i in 0..units {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(u64::from(i)));
    }
    black_box(x);
}

/// One herd on `sem`, whose tasks take permits with `acquire` (its `bool`: whether that task asks
/// for 2).
async fn herd<S, P, F>(sem: Arc<S>, half_two: bool, acquire: fn(Arc<S>, bool) -> F) -> Duration
where
    S: Send + Sync + 'static,
    P: Send + 'static,
    F: Future<Output = P> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let sem = Arc::clone(&sem);
            tokio::spawn(async move {
                for _ in 0..20 {
                    let permit = acquire(Arc::clone(&sem), half_two && i % 2 == 0).await;
                    tokio::task::yield_now().await;
                    work(20);
                    drop(black_box(permit));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a herd task panicked");
    }
    start.elapsed()
}

async fn ours(sem: Arc<futex_semaphore::Semaphore>, many: bool) -> futex_semaphore::OwnedPermit {
    sem.acquire_many_owned_async(if many { 2 } else { 1 }).await.expect("never closed")
}

async fn tokios(sem: Arc<tokio::sync::Semaphore>, many: bool) -> tokio::sync::OwnedSemaphorePermit {
    sem.acquire_many_owned(if many { 2 } else { 1 }).await.expect("never closed")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map_or("ab", String::as_str);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(11);
    let half_two = args.get(3).is_some_and(|s| s == "2");
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().expect("runtime");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        if which.contains('a') {
            let sem = Arc::new(futex_semaphore::Semaphore::new(4));
            a.push(rt.block_on(herd(sem, half_two, ours)).as_secs_f64() * 1e3);
        }
        if which.contains('b') {
            let sem = Arc::new(tokio::sync::Semaphore::new(4));
            b.push(rt.block_on(herd(sem, half_two, tokios)).as_secs_f64() * 1e3);
        }
    }
    let (a, b) = (median(a), median(b));
    let shape = if half_two { "half ask for 2" } else { "all ask for 1" };
    println!("{shape}: futex-semaphore {a:.2} ms, tokio {b:.2} ms, tokio's time over ours {:.2}", b / a);
}
