//! The one POSIX-semaphore adapter: glibc's `sem_t`, unnamed (`sem_init`, the threads' peer) or
//! named (`sem_open`, the cross-process peer in `benches/process.rs`).

use std::cell::UnsafeCell;
use std::ffi::CString;

/// A POSIX semaphore. `wait` retries on `EINTR`; nothing else can fail on a valid semaphore.
pub struct PosixSemaphore {
    /// Valid from construction until `drop`; it points into `storage` for an unnamed semaphore.
    sem: *mut libc::sem_t,
    storage: Storage,
}

enum Storage {
    /// `sem_init`: the `sem_t` lives in this box, which never moves, until `sem_destroy`.
    Unnamed(#[allow(dead_code)] Box<UnsafeCell<libc::sem_t>>),
    /// `sem_open`: the creator unlinks the name when dropped.
    Named { name: CString, owner: bool },
}

// SAFETY: a `sem_t` is made to be used from many threads (and processes) at once through a
// pointer to it: every access goes through `sem_wait`/`sem_trywait`/`sem_post`, which synchronize
// internally, and the pointer stays valid and fixed from construction to `drop`.
unsafe impl Sync for PosixSemaphore {}
// SAFETY: as above; the semaphore is not tied to the thread that created it.
unsafe impl Send for PosixSemaphore {}

impl PosixSemaphore {
    /// An unnamed semaphore shared by the threads of this process (`pshared = 0`).
    pub fn unnamed(permits: usize) -> PosixSemaphore {
        // SAFETY: an all-zero `sem_t` is a valid value to overwrite; `sem_init` below initializes
        // it before any other use.
        let cell = Box::new(UnsafeCell::new(unsafe { std::mem::zeroed::<libc::sem_t>() }));
        let value = libc::c_uint::try_from(permits).expect("permits fit in a C unsigned int");
        // SAFETY: the pointer is to a live, boxed (so never moving) `sem_t`, initialized once,
        // here, before it is shared.
        let rc = unsafe { libc::sem_init(cell.get(), 0, value) };
        assert_eq!(rc, 0, "sem_init failed: {}", std::io::Error::last_os_error());
        PosixSemaphore { sem: cell.get(), storage: Storage::Unnamed(cell) }
    }

    /// Creates the named semaphore `name` (`O_CREAT | O_EXCL`); unlinked when this is dropped.
    pub fn create(name: &str, value: u32) -> PosixSemaphore {
        let name = CString::new(name).expect("no NUL in the name");
        // SAFETY: `name` is a NUL-terminated string; with O_CREAT, sem_open takes the mode and
        // the value as its variadic arguments (as c_uint, after promotion).
        let sem = unsafe {
            libc::sem_open(
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::c_uint,
                value as libc::c_uint,
            )
        };
        assert!(sem != libc::SEM_FAILED, "sem_open {name:?}: {}", std::io::Error::last_os_error());
        PosixSemaphore { sem, storage: Storage::Named { name, owner: true } }
    }

    /// Opens the existing named semaphore `name`.
    pub fn open(name: &str) -> PosixSemaphore {
        let name = CString::new(name).expect("no NUL in the name");
        // SAFETY: `name` is a NUL-terminated string; without O_CREAT there are no more arguments.
        let sem = unsafe { libc::sem_open(name.as_ptr(), 0) };
        assert!(sem != libc::SEM_FAILED, "sem_open {name:?}: {}", std::io::Error::last_os_error());
        PosixSemaphore { sem, storage: Storage::Named { name, owner: false } }
    }

    /// `sem_wait`, retried on `EINTR`.
    #[inline]
    pub fn wait(&self) {
        loop {
            // SAFETY: `sem` is a valid semaphore until `drop`, which cannot run while `&self` is
            // borrowed.
            if unsafe { libc::sem_wait(self.sem) } == 0 {
                return;
            }
            let err = std::io::Error::last_os_error();
            assert_eq!(err.raw_os_error(), Some(libc::EINTR), "sem_wait failed: {err}");
        }
    }

    /// `sem_trywait`: whether it took a permit.
    #[inline]
    pub fn try_wait(&self) -> bool {
        // SAFETY: as in `wait`.
        unsafe { libc::sem_trywait(self.sem) == 0 }
    }

    /// `sem_post`.
    #[inline]
    pub fn post(&self) {
        // SAFETY: as in `wait`.
        let rc = unsafe { libc::sem_post(self.sem) };
        debug_assert_eq!(rc, 0, "sem_post failed");
    }
}

impl Drop for PosixSemaphore {
    fn drop(&mut self) {
        match &self.storage {
            // SAFETY: initialized in `unnamed`; `&mut self` means no thread is using it, and
            // nothing uses it after this.
            Storage::Unnamed(_) => unsafe {
                libc::sem_destroy(self.sem);
            },
            // SAFETY: `sem` came from sem_open and is closed once, here; `name` is NUL-terminated.
            Storage::Named { name, owner } => unsafe {
                libc::sem_close(self.sem);
                if *owner {
                    libc::sem_unlink(name.as_ptr());
                }
            },
        }
    }
}
