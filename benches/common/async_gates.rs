//! The async semaphores as the benchmarks see them: [`AsyncGate`], for futex-semaphore, tokio and
//! async-lock, and the runtime they are measured on.

use std::future::Future;

/// An async counting semaphore.
pub trait AsyncGate: Send + Sync + 'static {
    const NAME: &'static str;
    /// Whether it has a multi-permit acquire (async-lock has none).
    const MANY: bool;
    type Permit<'a>: Send
    where
        Self: 'a;
    fn new(permits: usize) -> Self;
    fn acquire(&self) -> impl Future<Output = Self::Permit<'_>> + Send;
    /// Takes `n` permits in one request. Only called where [`AsyncGate::MANY`] holds.
    fn acquire_many(&self, n: u32) -> impl Future<Output = Self::Permit<'_>> + Send;
}

impl AsyncGate for futex_semaphore::Semaphore {
    const NAME: &'static str = "futex-semaphore";
    const MANY: bool = true;
    type Permit<'a> = futex_semaphore::Permit<'a>;
    fn new(permits: usize) -> Self {
        futex_semaphore::Semaphore::new(permits)
    }
    async fn acquire(&self) -> Self::Permit<'_> {
        self.acquire_async().await.expect("the benchmarks never close a semaphore")
    }
    async fn acquire_many(&self, n: u32) -> Self::Permit<'_> {
        self.acquire_many_async(n).await.expect("the benchmarks never close a semaphore")
    }
}

impl AsyncGate for tokio::sync::Semaphore {
    const NAME: &'static str = "tokio";
    const MANY: bool = true;
    type Permit<'a> = tokio::sync::SemaphorePermit<'a>;
    fn new(permits: usize) -> Self {
        tokio::sync::Semaphore::new(permits)
    }
    async fn acquire(&self) -> Self::Permit<'_> {
        tokio::sync::Semaphore::acquire(self).await.expect("the benchmarks never close a semaphore")
    }
    async fn acquire_many(&self, n: u32) -> Self::Permit<'_> {
        tokio::sync::Semaphore::acquire_many(self, n).await.expect("the benchmarks never close a semaphore")
    }
}

impl AsyncGate for async_lock::Semaphore {
    const NAME: &'static str = "async-lock";
    const MANY: bool = false;
    type Permit<'a> = async_lock::SemaphoreGuard<'a>;
    fn new(permits: usize) -> Self {
        async_lock::Semaphore::new(permits)
    }
    async fn acquire(&self) -> Self::Permit<'_> {
        async_lock::Semaphore::acquire(self).await
    }
    async fn acquire_many(&self, _: u32) -> Self::Permit<'_> {
        unreachable!("async-lock has no acquire_many; callers check AsyncGate::MANY")
    }
}

/// The runtime of the async scenarios: tokio's multi-thread runtime with 2 workers (one per core
/// of the machine the figures come from).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// Runs `$body` once for each [`AsyncGate`], with `$gate` naming the type.
macro_rules! for_each_async_gate {
    ($gate:ident => $body:block) => {{
        {
            type $gate = futex_semaphore::Semaphore;
            $body
        }
        {
            type $gate = tokio::sync::Semaphore;
            $body
        }
        {
            type $gate = async_lock::Semaphore;
            $body
        }
    }};
}
