//! The API one call at a time (single-threaded, so Miri runs it too).

#![cfg(not(loom))] // the loom models are in tests/loom.rs; these run on real threads

use futex_semaphore::{
    AcquireError, BoundedSemaphore, OwnedPermit, Permit, ReleaseError, Semaphore, TryAcquireError,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn new_semaphore_has_its_permits() {
    assert_eq!(Semaphore::new(0).available_permits(), 0);
    assert_eq!(Semaphore::new(7).available_permits(), 7);
    assert_eq!(Semaphore::new(Semaphore::MAX_PERMITS).available_permits(), Semaphore::MAX_PERMITS);
}

#[test]
fn max_permits_is_at_least_two_to_the_thirty() {
    const { assert!(Semaphore::MAX_PERMITS >= 1 << 30) };
}

#[test]
#[should_panic(expected = "Semaphore::new: more permits than Semaphore::MAX_PERMITS")]
fn new_panics_above_max_permits() {
    let _ = Semaphore::new(Semaphore::MAX_PERMITS + 1);
}

/// It names the constructor the caller called (it used to say `Semaphore::new`).
#[test]
#[should_panic(expected = "BoundedSemaphore::new: more permits than Semaphore::MAX_PERMITS")]
fn bounded_new_panics_above_max_permits_naming_itself() {
    let _ = futex_semaphore::BoundedSemaphore::new(usize::MAX);
}

#[test]
fn semaphore_is_at_most_24_bytes_and_send_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Semaphore>();
    send_sync::<BoundedSemaphore>();
    send_sync::<OwnedPermit>();
    send_sync::<Permit<'static>>();
    #[cfg(target_pointer_width = "64")]
    assert!(std::mem::size_of::<Semaphore>() <= 24);
}

#[test]
fn a_static_semaphore_works() {
    static SEM: Semaphore = Semaphore::new(1);
    let p = SEM.acquire().unwrap();
    assert!(SEM.try_acquire().is_err());
    drop(p);
    assert!(SEM.try_acquire().is_ok());
}

#[test]
fn try_acquire_takes_then_fails_when_empty() {
    let sem = Semaphore::new(2);
    let a = sem.try_acquire().unwrap();
    let b = sem.try_acquire().unwrap();
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    drop((a, b));
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn try_acquire_many_is_all_or_nothing() {
    let sem = Semaphore::new(3);
    assert_eq!(sem.try_acquire_many(4).unwrap_err(), TryAcquireError::NoPermits);
    assert_eq!(sem.available_permits(), 3);
    let p = sem.try_acquire_many(3).unwrap();
    assert_eq!(p.num_permits(), 3);
    assert_eq!(sem.available_permits(), 0);
}

#[test]
fn acquire_many_zero_succeeds_at_once_with_an_empty_permit() {
    let sem = Semaphore::new(0);
    let p = sem.acquire_many(0).unwrap();
    assert_eq!(p.num_permits(), 0);
    assert_eq!(sem.try_acquire_many(0).unwrap().num_permits(), 0);
    assert_eq!(sem.try_acquire_many_for(0, Duration::from_secs(60)).unwrap().num_permits(), 0);
    drop(p);
    assert_eq!(sem.available_permits(), 0);
}

#[test]
#[should_panic(expected = "MAX_PERMITS")]
fn acquire_many_above_max_panics_instead_of_hanging() {
    let _ = Semaphore::new(1).acquire_many(u32::MAX);
}

#[test]
#[should_panic(expected = "MAX_PERMITS")]
fn try_acquire_many_above_max_panics() {
    let _ = Semaphore::new(1).try_acquire_many(Semaphore::MAX_PERMITS as u32 + 1);
}

#[test]
#[should_panic(expected = "MAX_PERMITS")]
fn timed_acquire_many_above_max_panics() {
    let _ = Semaphore::new(1).try_acquire_many_for(u32::MAX, Duration::from_secs(1));
}

#[test]
fn dropping_a_permit_gives_it_back() {
    let sem = Semaphore::new(1);
    drop(sem.acquire().unwrap());
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn forget_keeps_the_permits_out() {
    let sem = Semaphore::new(3);
    sem.acquire_many(2).unwrap().forget();
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn release_adds_one_permit() {
    let sem = Semaphore::new(0);
    sem.release();
    sem.release();
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn add_permits_adds() {
    let sem = Semaphore::new(1);
    sem.add_permits(4);
    assert_eq!(sem.available_permits(), 5);
    sem.add_permits(0);
    assert_eq!(sem.available_permits(), 5);
}

#[test]
#[should_panic(expected = "MAX_PERMITS")]
fn add_permits_past_max_panics() {
    let sem = Semaphore::new(Semaphore::MAX_PERMITS - 1);
    sem.add_permits(2);
}

/// The panic names the call the caller made.
#[test]
fn release_past_max_panics_naming_release() {
    let sem = Semaphore::new(Semaphore::MAX_PERMITS);
    let r = std::panic::catch_unwind(|| sem.release());
    let message = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("release() would take the count past Semaphore::MAX_PERMITS"), "{message}");
    let r = std::panic::catch_unwind(|| sem.add_permits(3));
    let message = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("add_permits(3) would take"), "{message}");
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS);
}

#[test]
fn add_permits_past_max_changes_nothing() {
    let sem = Semaphore::new(Semaphore::MAX_PERMITS - 1);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sem.add_permits(2)));
    assert!(r.is_err());
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS - 1);
    sem.release();
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS);
}

/// A guard's give-back that would take the count past `MAX_PERMITS` keeps its permits out: it
/// panics, or during a panic does so silently (a second panic would abort), and either way the
/// count stays within the limit.
#[test]
fn a_give_back_past_max_keeps_its_permits_out() {
    let sem = Semaphore::new(Semaphore::MAX_PERMITS);
    let held = sem.acquire_many(2).unwrap();
    sem.add_permits(2); // a bug: permits added for ones that are still held
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(held)));
    let message = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("past MAX_PERMITS"), "{message}");
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS);

    let held = sem.acquire_many(2).unwrap();
    sem.add_permits(2);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _held = held;
        panic!("unwinding");
    }));
    assert_eq!(*r.unwrap_err().downcast::<&str>().unwrap(), "unwinding");
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS);
    drop(sem.acquire_many(Semaphore::MAX_PERMITS as u32).unwrap());
}

#[test]
fn forget_permits_removes_up_to_n_available() {
    let sem = Semaphore::new(5);
    let held = sem.acquire().unwrap();
    assert_eq!(sem.forget_permits(3), 3);
    assert_eq!(sem.forget_permits(3), 1);
    assert_eq!(sem.forget_permits(3), 0);
    drop(held);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn merge_combines_and_drop_returns_all() {
    let sem = Semaphore::new(4);
    let mut a = sem.acquire().unwrap();
    a.merge(sem.acquire_many(2).unwrap());
    assert_eq!(a.num_permits(), 3);
    assert_eq!(sem.available_permits(), 1);
    drop(a);
    assert_eq!(sem.available_permits(), 4);
}

#[test]
#[should_panic(expected = "different semaphores")]
fn merge_from_another_semaphore_panics() {
    let (x, y) = (Semaphore::new(1), Semaphore::new(1));
    let mut a = x.acquire().unwrap();
    a.merge(y.acquire().unwrap());
}

#[test]
fn split_moves_permits_and_refuses_too_many() {
    let sem = Semaphore::new(5);
    let mut a = sem.acquire_many(5).unwrap();
    let b = a.split(2).unwrap();
    assert_eq!((a.num_permits(), b.num_permits()), (3, 2));
    assert!(a.split(4).is_none());
    assert!(a.split(usize::MAX).is_none());
    assert_eq!(a.num_permits(), 3);
    drop(b);
    assert_eq!(sem.available_permits(), 2);
    drop(a);
    assert_eq!(sem.available_permits(), 5);
}

#[test]
fn owned_permits_work_like_borrowed_ones() {
    let sem = Arc::new(Semaphore::new(4));
    let mut a = Arc::clone(&sem).acquire_owned().unwrap();
    a.merge(Arc::clone(&sem).acquire_many_owned(2).unwrap());
    assert_eq!(a.num_permits(), 3);
    assert!(Arc::ptr_eq(a.semaphore(), &sem));
    let b = a.split(1).unwrap();
    assert_eq!(Arc::clone(&sem).try_acquire_many_owned(2).unwrap_err(), TryAcquireError::NoPermits);
    let c = Arc::clone(&sem).try_acquire_owned().unwrap();
    c.forget();
    drop((a, b));
    assert_eq!(sem.available_permits(), 3);
}

#[test]
#[should_panic(expected = "different semaphores")]
fn owned_merge_from_another_semaphore_panics() {
    let mut a = Arc::new(Semaphore::new(1)).acquire_owned().unwrap();
    a.merge(Arc::new(Semaphore::new(1)).acquire_owned().unwrap());
}

#[test]
fn closed_semaphore_fails_every_acquire() {
    let sem = Arc::new(Semaphore::new(3));
    let held = sem.acquire().unwrap();
    assert!(!sem.is_closed());
    sem.close();
    sem.close();
    assert!(sem.is_closed());
    assert_eq!(sem.acquire().unwrap_err(), AcquireError);
    assert_eq!(sem.acquire_many(0).unwrap_err(), AcquireError);
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
    assert_eq!(sem.try_acquire_many(2).unwrap_err(), TryAcquireError::Closed);
    assert_eq!(sem.try_acquire_for(Duration::from_secs(60)).unwrap_err(), TryAcquireError::Closed);
    assert_eq!(sem.try_acquire_until(Instant::now()).unwrap_err(), TryAcquireError::Closed);
    assert_eq!(sem.try_acquire_for(Duration::MAX).unwrap_err(), TryAcquireError::Closed);
    assert_eq!(Arc::clone(&sem).acquire_owned().unwrap_err(), AcquireError);
    assert_eq!(Arc::clone(&sem).try_acquire_owned().unwrap_err(), TryAcquireError::Closed);
    // Held permits stay valid and come back.
    drop(held);
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn deadline_in_the_past_is_one_attempt() {
    let sem = Semaphore::new(1);
    let past = Instant::now();
    let p = sem.try_acquire_until(past).unwrap();
    let start = Instant::now();
    assert_eq!(sem.try_acquire_until(past).unwrap_err(), TryAcquireError::NoPermits);
    assert_eq!(sem.try_acquire_for(Duration::ZERO).unwrap_err(), TryAcquireError::NoPermits);
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(p);
}

#[test]
fn duration_max_does_not_overflow() {
    let sem = Semaphore::new(2);
    assert!(sem.try_acquire_for(Duration::MAX).is_ok());
    assert!(sem.try_acquire_many_for(1, Duration::MAX).is_ok());
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn errors_display_and_are_std_errors() {
    fn is_error<E: std::error::Error + Copy + Eq + Send + Sync + 'static>(_: E) {}
    is_error(AcquireError);
    is_error(TryAcquireError::Closed);
    is_error(ReleaseError);
    assert_eq!(AcquireError.to_string(), "semaphore closed");
    assert_eq!(TryAcquireError::Closed.to_string(), "semaphore closed");
    assert_eq!(TryAcquireError::NoPermits.to_string(), "no permits available");
    assert_eq!(ReleaseError.to_string(), "semaphore released too many times");
    assert_eq!(TryAcquireError::from(AcquireError), TryAcquireError::Closed);
}

#[test]
fn debug_shows_the_state() {
    let sem = Semaphore::new(2);
    let p = sem.acquire().unwrap();
    assert_eq!(format!("{sem:?}"), "Semaphore { available_permits: 1, waiters: 0, closed: false }");
    assert_eq!(format!("{p:?}"), "Permit { permits: 1, .. }");
    let b = BoundedSemaphore::new(3);
    assert_eq!(
        format!("{b:?}"),
        "BoundedSemaphore { available_permits: 3, initial_permits: 3, closed: false }"
    );
}

#[test]
fn bounded_refuses_release_above_its_start() {
    let sem = BoundedSemaphore::new(2);
    assert_eq!(sem.release(), Err(ReleaseError));
    assert_eq!(sem.available_permits(), 2);
    sem.acquire().unwrap().forget();
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.release(), Ok(()));
    assert_eq!(sem.release(), Err(ReleaseError));
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn bounded_add_permits_changes_nothing_when_refused() {
    let sem = BoundedSemaphore::new(4);
    sem.acquire_many(3).unwrap().forget();
    assert_eq!(sem.add_permits(4), Err(ReleaseError));
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.add_permits(usize::MAX), Err(ReleaseError));
    assert_eq!(sem.add_permits(3), Ok(()));
    assert_eq!(sem.available_permits(), 4);
}

#[test]
fn bounded_guards_return_their_permits() {
    static SEM: BoundedSemaphore = BoundedSemaphore::new(2);
    let a = SEM.acquire().unwrap();
    let b = SEM.try_acquire_many_for(1, Duration::from_millis(1)).unwrap();
    assert!(SEM.try_acquire().is_err());
    assert!(SEM.try_acquire_until(Instant::now()).is_err());
    drop((a, b));
    assert_eq!(SEM.available_permits(), 2);
    assert_eq!(SEM.initial_permits(), 2);
    assert_eq!(SEM.forget_permits(1), 1);
    assert!(SEM.release().is_ok());
    SEM.close();
    assert!(SEM.is_closed());
    assert_eq!(SEM.acquire_many(1).unwrap_err(), AcquireError);
}

// The acquires are written once for the three types (src/api.rs): the same answers on each.

#[test]
fn empty_requests_succeed_at_once_on_every_type_until_closed() {
    let sem = Semaphore::new(0);
    let bounded = BoundedSemaphore::new(0);
    assert_eq!(sem.acquire_many(0).unwrap().num_permits(), 0);
    assert_eq!(sem.try_acquire_many_for(0, Duration::MAX).unwrap().num_permits(), 0);
    assert_eq!(bounded.try_acquire_many(0).unwrap().num_permits(), 0);
    assert_eq!(bounded.try_acquire_many_until(0, Instant::now()).unwrap().num_permits(), 0);
    sem.close();
    bounded.close();
    assert_eq!(sem.try_acquire_many_for(0, Duration::MAX).unwrap_err(), TryAcquireError::Closed);
    assert_eq!(bounded.acquire_many(0).unwrap_err(), AcquireError);
    assert_eq!(bounded.try_acquire_many_for(0, Duration::ZERO).unwrap_err(), TryAcquireError::Closed);
}

#[test]
fn bounded_timed_acquires_time_out_and_fail_when_closed() {
    let sem = BoundedSemaphore::new(1);
    let held = sem.try_acquire_for(Duration::MAX).unwrap();
    assert_eq!(sem.try_acquire_for(Duration::from_millis(1)).unwrap_err(), TryAcquireError::NoPermits);
    assert_eq!(sem.try_acquire_many_until(1, Instant::now()).unwrap_err(), TryAcquireError::NoPermits);
    sem.close();
    assert_eq!(sem.try_acquire_for(Duration::MAX).unwrap_err(), TryAcquireError::Closed);
    drop(held);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
#[should_panic(expected = "more than Semaphore::MAX_PERMITS")]
fn bounded_request_above_max_panics_naming_the_limit() {
    let _ = BoundedSemaphore::new(1).try_acquire_many_until(u32::MAX, Instant::now());
}

#[test]
#[should_panic(expected = "more than Semaphore::MAX_PERMITS")]
fn async_request_above_max_panics_when_made() {
    drop(BoundedSemaphore::new(1).acquire_many_async(u32::MAX));
}

// Not under Miri: a process semaphore makes system calls Miri does not model.
#[cfg(all(not(miri), any(target_os = "linux", target_os = "android")))]
mod process {
    use futex_semaphore::{AcquireError, ProcessSemaphore, TryAcquireError};
    use std::time::{Duration, Instant};

    #[test]
    fn empty_requests_succeed_at_once_until_closed() {
        let sem = ProcessSemaphore::anonymous(0).unwrap();
        let empty = sem.acquire_many(0).unwrap();
        assert_eq!(empty.num_permits(), 0);
        assert!(!empty.is_recoverable());
        assert_eq!(sem.try_acquire_many_for(0, Duration::MAX).unwrap().num_permits(), 0);
        sem.close();
        assert_eq!(sem.acquire_many(0).unwrap_err(), AcquireError);
        assert_eq!(sem.try_acquire_many_until(0, Instant::now()).unwrap_err(), TryAcquireError::Closed);
        assert_eq!(sem.try_acquire_for(Duration::MAX).unwrap_err(), TryAcquireError::Closed);
    }

    #[test]
    #[should_panic(expected = "more than ProcessSemaphore::MAX_PERMITS")]
    fn request_above_max_panics_naming_the_limit() {
        let _ = ProcessSemaphore::anonymous(1).unwrap().try_acquire_many(u32::MAX);
    }
}
