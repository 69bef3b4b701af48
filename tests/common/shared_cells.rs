//! Atomic `u32` cells in a file mapped shared, for tests whose processes count together (a
//! parent and the children it spawns or forks open the same file).

use rustix::mm::{MapFlags, ProtFlags};
use std::fs::OpenOptions;
use std::ptr::{NonNull, null_mut};
use std::sync::atomic::{AtomicU32, AtomicU64};

/// The mapping's length: one page, room for 1024 cells.
const BYTES: usize = 4096;

/// `len` atomic cells in a shared mapping of a file, all zero when created.
pub struct SharedCells {
    ptr: NonNull<AtomicU32>,
    len: usize,
}

impl SharedCells {
    /// Creates the file `path` (which must not exist yet) and maps it.
    pub fn create(path: &str, len: usize) -> SharedCells {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path).unwrap();
        file.set_len(BYTES as u64).unwrap();
        SharedCells::open(path, len)
    }

    /// Maps the file `path` that a `create` made.
    pub fn open(path: &str, len: usize) -> SharedCells {
        assert!(len * size_of::<AtomicU32>() <= BYTES, "{len} cells do not fit in one page");
        let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
        assert_eq!(file.metadata().unwrap().len(), BYTES as u64);
        // SAFETY: a new shared mapping at an address the kernel picks; the file has BYTES bytes,
        // all of it backed.
        let ptr = unsafe {
            rustix::mm::mmap(
                null_mut(),
                BYTES,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &file,
                0,
            )
        }
        .unwrap();
        SharedCells { ptr: NonNull::new(ptr.cast()).unwrap(), len }
    }

    /// Cell `i`, below the `len` it was opened with.
    pub fn cell(&self, i: usize) -> &AtomicU32 {
        assert!(i < self.len, "cell {i} of {}", self.len);
        // SAFETY: within the mapping (`len` cells fit in BYTES, checked in `open`), aligned (a
        // page-aligned base), and only ever accessed atomically, here and in the other processes.
        unsafe { &*self.ptr.as_ptr().add(i) }
    }

    /// Cells `2 * i` and `2 * i + 1` as one 64-bit word (its own, never also read as cells).
    pub fn pair(&self, i: usize) -> &AtomicU64 {
        assert!(2 * i + 1 < self.len, "pair {i} of {} cells", self.len);
        // SAFETY: within the mapping, as `cell`; 8-aligned (a page-aligned base, an even cell);
        // only ever accessed atomically, and as this word only.
        unsafe { &*self.ptr.as_ptr().add(2 * i).cast::<AtomicU64>() }
    }
}

// SAFETY: the mapping is memory shared between processes anyway, reached only through atomics.
unsafe impl Send for SharedCells {}
// SAFETY: as `Send`.
unsafe impl Sync for SharedCells {}

impl Drop for SharedCells {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`; the references from `cell` borrow `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), BYTES) };
    }
}
