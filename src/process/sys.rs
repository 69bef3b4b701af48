//! The operating-system side of the cross-process semaphore: names, files, mappings, process
//! identity and liveness. The only file of the module that makes system calls.
//!
//! - **Named regions** are files in `/dev/shm` (where glibc's `shm_open` puts them too), so that
//!   `create` can publish a region only once it is initialised: it builds the region in an
//!   unnamed `O_TMPFILE` (or, where that is missing, under a temporary name) and then gives it
//!   its name with `linkat`, which fails if the name exists. A name that can be opened therefore
//!   always holds a whole region; `open` never waits.
//! - **Anonymous regions** are a sealed memfd (size fixed) mapped `MAP_SHARED`, which `fork`
//!   shares with the child.
//! - **Identity**: a process is its pid plus its start time (`/proc/<pid>/stat` field 22), so
//!   that a reused pid is not taken for the holder. Both are read once per process and kept in a
//!   private page marked `MADV_WIPEONFORK`: a forked child finds the page zeroed and reads its own.
//!   Where the kernel lacks that (before Linux 4.14), every call asks `getpid` instead.

use super::region::{HEADER_SIZE, Region, Slot, View, invalid, owner, region_size, validate_header};
use rustix::fs::{AtFlags, CWD, FileType, MemfdFlags, Mode, OFlags, SealFlags};
use rustix::io::Errno;
use rustix::mm::{Advice, MapFlags, ProtFlags};
use rustix::process::Pid;
use std::ffi::c_void;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::ptr::{NonNull, null_mut};
// Process-local bookkeeping, not shared memory: plain std atomics (the module is not built
// under loom).
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Where named regions live.
pub(crate) const SHM_DIR: &str = "/dev/shm";
/// The longest name accepted, in bytes (the `NAME_MAX` of Linux file systems).
pub(crate) const MAX_NAME_LEN: usize = 255;
/// The mode of a region made by `create`.
pub(crate) const DEFAULT_MODE: u32 = 0o600;

/// The path of the region named `name`, or why the name is refused.
pub(crate) fn shm_path(name: &str) -> io::Result<String> {
    let refuse = |why: &str| {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid semaphore name {name:?}: {why}")))
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return refuse(&format!("it is longer than {MAX_NAME_LEN} bytes"));
    }
    if name.contains('/') {
        return refuse("it contains '/'");
    }
    if name.contains('\0') {
        return refuse("it contains a NUL byte");
    }
    if name == "." || name == ".." {
        return refuse("it is a directory name");
    }
    Ok(format!("{SHM_DIR}/{name}"))
}

/// A shared, read-write mapping of a region of `slots` slots ([`region_size`] bytes); unmapped
/// when dropped.
///
/// Made only by the functions of this file, and only over a region that is initialised (by this
/// process) or validated (magic, version, size).
pub(crate) struct Mapping {
    ptr: NonNull<Region>,
    /// The slots this process validated (or created): fixed for the mapping's life, never
    /// re-read from the shared header.
    slots: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, slots: usize) -> io::Result<Mapping> {
        // SAFETY: a new shared mapping at an address the kernel chooses (no MAP_FIXED): it
        // overlaps no memory that Rust code uses. The callers made sure the file has
        // region_size(slots) bytes, so the whole mapping is backed.
        let ptr = unsafe {
            rustix::mm::mmap(
                null_mut(),
                region_size(slots),
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        Mapping::from_raw(ptr, slots)
    }

    /// A shared anonymous mapping, for `anonymous` where memfd is missing (before Linux 3.17).
    fn new_anonymous(slots: usize) -> io::Result<Mapping> {
        // SAFETY: as in `new`; an anonymous mapping is zero-filled and fully backed.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                null_mut(),
                region_size(slots),
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )?
        };
        Mapping::from_raw(ptr, slots)
    }

    fn from_raw(ptr: *mut c_void, slots: usize) -> io::Result<Mapping> {
        match NonNull::new(ptr.cast::<Region>()) {
            Some(ptr) => Ok(Mapping { ptr, slots }),
            None => Err(io::Error::other("mmap returned a null mapping")),
        }
    }

    /// The region. Shared references are all anyone makes: every field is an atomic.
    #[inline]
    pub(crate) fn region(&self) -> View<'_> {
        // SAFETY: `ptr` is a live mapping of region_size(slots) read-write bytes, page-aligned
        // (Region and Slot need 64), kept until `self` drops. The fixed part is the first
        // size_of::<Region>() bytes, the `slots` slots follow it, all in the mapping. Both
        // hold only atomic integers, valid for every bit pattern, so whatever another process
        // wrote is a valid value; other processes change them only through atomic operations,
        // as this one does through these references. (A file truncated under the mapping
        // raises SIGBUS on access: a crash, documented, not a read of invalid memory.)
        unsafe {
            let region = self.ptr.as_ref();
            let first = self.ptr.as_ptr().add(1).cast::<Slot>();
            View { region, slots: std::slice::from_raw_parts(first, self.slots) }
        }
    }
}

// SAFETY: the mapping is shared memory reached only through `&Region`, whose fields are all
// atomics (Sync); nothing about it is tied to the thread that made it.
unsafe impl Send for Mapping {}
// SAFETY: as for Send: `region()` hands out `&Region` and `&[Slot]`, which are Sync.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, of region_size(slots) bytes; `&mut self` means no
        // reference from `region()` outlives this (they borrow `self`).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), region_size(self.slots)) };
    }
}

/// Creates the region `name` with `permits`, or fails if that name exists.
pub(crate) fn create(
    name: &str,
    permits: u32,
    slots: usize,
    mode: u32,
    me: &Identity,
) -> io::Result<Mapping> {
    let path = shm_path(name)?;
    if mode & !0o777 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "invalid mode {mode:#o} for semaphore {name:?}: only permission bits (0o777) are allowed"
            ),
        ));
    }
    let mode = Mode::from_raw_mode(mode);
    // First choice: build it unnamed, then give it its name.
    if let Ok(fd) = rustix::fs::open(SHM_DIR, OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC, mode) {
        let map = initialise(fd.as_fd(), permits, slots, mode, me)?;
        let unnamed = format!("/proc/self/fd/{}", fd.as_raw_fd());
        match rustix::fs::linkat(CWD, unnamed.as_str(), CWD, path.as_str(), AtFlags::SYMLINK_FOLLOW) {
            Ok(()) => return Ok(map),
            Err(Errno::EXIST) => return Err(exists(name)),
            // No /proc to link through: fall back to a temporary name.
            Err(_) => {}
        }
    }
    create_via_temporary_name(name, &path, permits, slots, mode, me)
}

fn create_via_temporary_name(
    name: &str,
    path: &str,
    permits: u32,
    slots: usize,
    mode: Mode,
    me: &Identity,
) -> io::Result<Mapping> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let temporary = format!(
        "{SHM_DIR}/.futex-semaphore-{}-{}-{}",
        owner::pid(me.id),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rustix::time::clock_gettime(rustix::time::ClockId::Monotonic).tv_nsec,
    );
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = rustix::fs::open(temporary.as_str(), flags, mode).map_err(|e| named_error(e, name))?;
    let made = initialise(fd.as_fd(), permits, slots, mode, me).and_then(|map| {
        match rustix::fs::linkat(CWD, temporary.as_str(), CWD, path, AtFlags::empty()) {
            Ok(()) => Ok(map),
            Err(Errno::EXIST) => Err(exists(name)),
            Err(e) => Err(e.into()),
        }
    });
    let _ = rustix::fs::unlink(temporary.as_str());
    made
}

/// Sizes a fresh (empty, unnamed or privately named) file, maps it and initialises the region.
fn initialise(
    fd: BorrowedFd<'_>,
    permits: u32,
    slots: usize,
    mode: Mode,
    me: &Identity,
) -> io::Result<Mapping> {
    // Exactly `mode`, whatever the umask.
    rustix::fs::fchmod(fd, mode)?;
    rustix::fs::ftruncate(fd, region_size(slots) as u64)?;
    let map = Mapping::new(fd, slots)?;
    map.region().initialise(permits, slots, me.pid_ns);
    Ok(map)
}

/// Opens and validates the region `name`.
pub(crate) fn open(name: &str) -> io::Result<Mapping> {
    let path = shm_path(name)?;
    // NONBLOCK: a FIFO or device put there by someone else must not block the open.
    let flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
    let fd = rustix::fs::open(path.as_str(), flags, Mode::empty()).map_err(|e| named_error(e, name))?;
    let stat = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(invalid(format!("{path} is not a regular file, so not a futex-semaphore region")));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    let mut header = [0u8; HEADER_SIZE];
    let mut got = 0;
    while got < HEADER_SIZE {
        match rustix::io::pread(&fd, &mut header[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let slots = validate_header(&header[..got], size).map_err(|e| invalid(format!("{path}: {e}")))?;
    // Validated: the file has region_size(slots) bytes and the header of this layout. Map it.
    let map = Mapping::new(fd.as_fd(), slots)?;
    if !map.region().is_published() {
        return Err(invalid(format!("{path}: the header changed while it was being opened")));
    }
    Ok(map)
}

/// Makes an unnamed region in a sealed memfd (or a shared anonymous mapping).
pub(crate) fn anonymous(permits: u32, slots: usize, me: &Identity) -> io::Result<Mapping> {
    let map =
        match rustix::fs::memfd_create("futex-semaphore", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING) {
            Ok(fd) => {
                rustix::fs::ftruncate(&fd, region_size(slots) as u64)?;
                // Nobody can shrink it under the mapping (SIGBUS) or grow it. Best effort.
                let _ =
                    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL);
                Mapping::new(fd.as_fd(), slots)?
            }
            Err(Errno::NOSYS) => Mapping::new_anonymous(slots)?,
            Err(e) => return Err(e.into()),
        };
    map.region().initialise(permits, slots, me.pid_ns);
    Ok(map)
}

/// Removes the name `name`.
pub(crate) fn unlink(name: &str) -> io::Result<()> {
    let path = shm_path(name)?;
    rustix::fs::unlink(path.as_str()).map_err(|e| named_error(e, name))
}

fn exists(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("a semaphore named {name:?} exists ({SHM_DIR}/{name})"),
    )
}

fn named_error(e: Errno, name: &str) -> io::Error {
    match e {
        Errno::NOENT => io::Error::new(
            io::ErrorKind::NotFound,
            format!("no semaphore named {name:?} (no {SHM_DIR}/{name}, or no {SHM_DIR})"),
        ),
        Errno::EXIST => exists(name),
        Errno::LOOP => invalid(format!("{SHM_DIR}/{name} is a symbolic link, not a futex-semaphore region")),
        e => e.into(),
    }
}

/// Who this process is, as recorded in the holder table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The owner word: pid and start time (see [`owner`]). Never 0.
    pub(crate) id: u64,
    /// Inode of the pid namespace, 0 if unknown.
    pub(crate) pid_ns: u64,
    /// This incarnation of the process (see [`nonce`]): unlike `id`, not the same for two
    /// processes that share a pid and a start time (a pid reused within one clock tick). Never 0.
    pub(crate) nonce: u64,
}

impl Identity {
    #[cfg(test)]
    pub(crate) fn pid(&self) -> u32 {
        owner::pid(self.id)
    }
}

#[repr(C)]
struct IdentityCell {
    /// 0 until filled (and again in a forked child, when the page is wiped).
    id: AtomicU64,
    pid_ns: AtomicU64,
    nonce: AtomicU64,
}

/// The wipe-on-fork page, once mapped; never unmapped.
static CELL: AtomicPtr<IdentityCell> = AtomicPtr::new(null_mut());
static NO_WIPE_ON_FORK: AtomicBool = AtomicBool::new(false);
/// Where `MADV_WIPEONFORK` is missing: checked against `getpid` on every call.
static FALLBACK: IdentityCell =
    IdentityCell { id: AtomicU64::new(0), pid_ns: AtomicU64::new(0), nonce: AtomicU64::new(0) };

impl IdentityCell {
    /// The identity stored with `id` (read `Acquire`, after `fill`'s `Release`).
    #[inline]
    fn identity(&self, id: u64) -> Identity {
        Identity {
            id,
            pid_ns: self.pid_ns.load(Ordering::Relaxed),
            nonce: self.nonce.load(Ordering::Relaxed),
        }
    }
}
const CELL_PAGE: usize = 4096;

/// This process's identity. No system call, once per process, where `MADV_WIPEONFORK` works.
#[inline]
pub(crate) fn identity() -> Identity {
    let (cell, id) = filled_cell();
    cell.identity(id)
}

/// This process incarnation's owner word and nonce: [`identity`] without the pid namespace,
/// for the fast paths (which need no more, and so load no more).
#[inline]
pub(crate) fn incarnation() -> (u64, u64) {
    let (cell, id) = filled_cell();
    // Relaxed: as in `IdentityCell::identity`.
    (id, cell.nonce.load(Ordering::Relaxed))
}

/// Whether `nonce` (never 0) is this process incarnation's: [`incarnation`]`().1 == nonce`,
/// where the wipe-on-fork page is mapped without its owner word (a give-back's check, which
/// needs no more). In this incarnation the page's nonce is 0 until filled (wiped in a child
/// made by `fork`), then this incarnation's for good: equal to `nonce`, it is ours; otherwise
/// [`incarnation`] settles it.
#[inline]
pub(crate) fn is_incarnation(nonce: u64) -> bool {
    // Relaxed: a value of this incarnation's own filling (see above), or a miss.
    mapped_cell().is_some_and(|cell| cell.nonce.load(Ordering::Relaxed) == nonce) || incarnation().1 == nonce
}

/// The cell that holds this process's identity, filled, and its `id` (read `Acquire`). The
/// fast path, the wipe-on-fork page already filled, returns in registers: the rest is a call
/// (an `Identity` merged from both paths went through the stack on the fast one too).
#[inline]
fn filled_cell() -> (&'static IdentityCell, u64) {
    if let Some(cell) = mapped_cell() {
        // Acquire: pairs with the Release store in `fill`, so `pid_ns` is the one stored with `id`.
        let id = cell.id.load(Ordering::Acquire);
        if id != 0 {
            return (cell, id);
        }
    }
    fill_cell()
}

/// The wipe-on-fork page, if mapped (it may not be filled yet).
#[inline]
fn mapped_cell() -> Option<&'static IdentityCell> {
    // Acquire: pairs with the Release of the CAS in `map_cell`.
    let cell = CELL.load(Ordering::Acquire);
    // SAFETY: CELL only ever holds the page mapped in `map_cell`, which is never unmapped, is
    // private to this process (a forked child has its own copy, zeroed by the kernel) and holds
    // an IdentityCell of atomics, valid when zeroed.
    (!cell.is_null()).then(|| unsafe { &*cell })
}

/// [`filled_cell`] where the page is not mapped or not filled yet (the first call in this
/// process), or not used (`MADV_WIPEONFORK` missing: then `getpid` on every call).
#[cold]
#[inline(never)]
fn fill_cell() -> (&'static IdentityCell, u64) {
    if let Some(cell) = wipe_on_fork_cell() {
        // Acquire: as in `filled_cell`.
        let id = cell.id.load(Ordering::Acquire);
        if id != 0 {
            return (cell, id);
        }
        return (cell, fill(cell, getpid()).id);
    }
    let pid = getpid();
    // Acquire: as in `filled_cell`.
    let id = FALLBACK.id.load(Ordering::Acquire);
    if id != 0 && owner::pid(id) == pid {
        return (&FALLBACK, id);
    }
    (&FALLBACK, fill(&FALLBACK, pid).id)
}

#[inline]
fn wipe_on_fork_cell() -> Option<&'static IdentityCell> {
    if let Some(cell) = mapped_cell() {
        return Some(cell);
    }
    if NO_WIPE_ON_FORK.load(Ordering::Relaxed) { None } else { map_cell() }
}

#[cold]
fn map_cell() -> Option<&'static IdentityCell> {
    // SAFETY: a new private anonymous mapping at an address the kernel chooses: it overlaps
    // nothing Rust uses.
    let page = unsafe {
        rustix::mm::mmap_anonymous(
            null_mut(),
            CELL_PAGE,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    };
    let Ok(page) = page else {
        NO_WIPE_ON_FORK.store(true, Ordering::Relaxed);
        return None;
    };
    // SAFETY: `page` is the mapping of CELL_PAGE bytes made just above.
    if unsafe { rustix::mm::madvise(page, CELL_PAGE, Advice::LinuxWipeOnFork) }.is_err() {
        // SAFETY: as above; nothing refers to it.
        let _ = unsafe { rustix::mm::munmap(page, CELL_PAGE) };
        NO_WIPE_ON_FORK.store(true, Ordering::Relaxed);
        return None;
    }
    // AcqRel: Release publishes the (zeroed) page; Acquire reads a page another thread published.
    match CELL.compare_exchange(null_mut(), page.cast(), Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: the page is now CELL's: see `mapped_cell`.
        Ok(_) => Some(unsafe { &*page.cast::<IdentityCell>() }),
        Err(theirs) => {
            // SAFETY: our page lost the race and nothing refers to it.
            let _ = unsafe { rustix::mm::munmap(page, CELL_PAGE) };
            // SAFETY: CELL's page, as in `mapped_cell`.
            Some(unsafe { &*theirs })
        }
    }
}

#[cold]
fn fill(cell: &IdentityCell, pid: u32) -> Identity {
    // `/proc/self/stat` names the pid it describes: if that is not ours, /proc belongs to another
    // pid namespace and its start time would be someone else's (0: unknown).
    let start = read_stat("self").filter(|s| s.pid == pid).map_or(0, |s| boot_relative(s.start_time));
    // `st_ino` is a `c_ulong` on some targets, hence the cast.
    #[allow(clippy::unnecessary_cast)]
    let pid_ns = rustix::fs::stat("/proc/self/ns/pid").map_or(0, |s| s.st_ino as u64);
    // One nonce per process, whichever of its threads fills first: the nonce names its pid in
    // its high half, so a stale one (the parent's, in the fallback cell after `fork`) is
    // replaced, and a fresh one is kept.
    let mut seen = cell.nonce.load(Ordering::Acquire);
    let nonce = loop {
        if seen != 0 && (seen >> 32) as u32 == pid {
            break seen;
        }
        let mine = nonce(pid);
        // AcqRel: publishes this nonce to the threads that lose the race, and reads theirs.
        match cell.nonce.compare_exchange(seen, mine, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break mine,
            Err(theirs) => seen = theirs,
        }
    };
    let me = Identity { id: owner::id(pid, start), pid_ns, nonce };
    cell.pid_ns.store(me.pid_ns, Ordering::Relaxed);
    // Release: pairs with the Acquire load in `identity`.
    cell.id.store(me.id, Ordering::Release);
    me
}

/// The nonce of a process incarnation: its pid in the high half, and in the low half 32 bits
/// mixed (splitmix64) from the monotonic clock, never 0. Two processes with one pid never run
/// at once, and the later one reads the clock later, so they differ unless the mixed clock
/// readings collide in 32 bits (one chance in 2^32 per reuse of a pid).
fn nonce(pid: u32) -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let mut z = (t.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(t.tv_nsec as u64);
    z = (z ^ z >> 30).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ z >> 27).wrapping_mul(0x94D0_49BB_1331_11EB);
    u64::from(pid) << 32 | u64::from((z ^ z >> 31) as u32 | 1)
}

fn getpid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get().unsigned_abs()
}

/// The fields of `/proc/<pid>/stat` that recovery needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    pid: u32,
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    state: u8,
    /// Field 20.
    threads: u64,
    /// Field 22: clock ticks after boot.
    start_time: u64,
}

/// A start time read from `/proc/<pid>/stat` as it would read outside any time namespace.
///
/// The kernel shows a start time shifted by the boot-time offset of the *reader's* time namespace
/// (`unshare --time`, checkpoint/restore tools), so a holder and a recoverer in different time
/// namespaces read different start times for one process, and a recoverer took a live holder for
/// a reused pid (and gave its permits to others). Kept and compared less the reader's offset, they
/// agree, to within a clock tick where the offset is not a whole number of ticks
/// ([`owner::start_matches`]).
fn boot_relative(start_time: u64) -> u64 {
    let offset = std::fs::read_to_string("/proc/self/timens_offsets")
        .ok()
        .and_then(|text| boottime_offset_ns(&text))
        .unwrap_or(0);
    let ticks = i128::from(offset) * i128::from(rustix::param::clock_ticks_per_second()) / 1_000_000_000;
    start_time.wrapping_sub(ticks as u64)
}

/// The `boottime` offset in `/proc/self/timens_offsets` (lines of `clock seconds nanoseconds`),
/// in nanoseconds.
fn boottime_offset_ns(text: &str) -> Option<i64> {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some("boottime"))?;
    let mut fields = line.split_whitespace().skip(1);
    let secs: i64 = fields.next()?.parse().ok()?;
    let nanos: i64 = fields.next()?.parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn read_stat(pid: &str) -> Option<ProcStat> {
    let text = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses `pid (comm) state ppid ...`; `comm` may hold spaces and parentheses, so the fields
/// start after the *last* `)`.
fn parse_stat(text: &[u8]) -> Option<ProcStat> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let pid = std::str::from_utf8(text.get(..open)?).ok()?.trim().parse().ok()?;
    let mut fields = std::str::from_utf8(text.get(close + 1..)?).ok()?.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?; // field 3
    let mut fields = fields.skip(16); // fields 4..=19
    let threads = fields.next()?.parse().ok()?; // field 20
    fields.next()?; // field 21
    let start_time = fields.next()?.parse().ok()?; // field 22
    Some(ProcStat { pid, state, threads, start_time })
}

/// Whether the process an owner word names has certainly ended: its pid is gone, or now
/// belongs to a process that started at another time, or is a zombie with no thread left.
/// When in doubt (for instance `/proc/<pid>` hidden by `hidepid`), it is taken to be alive.
pub(crate) fn is_dead(id: u64) -> bool {
    let pid = owner::pid(id);
    let Some(target) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        // 0 or past i32::MAX: no process has that pid; the slot holds garbage.
        return true;
    };
    // kill(pid, 0): ESRCH means no such process. EPERM means it exists (another user's).
    if rustix::process::test_kill_process(target) == Err(Errno::SRCH) {
        return true;
    }
    match read_stat(&pid.to_string()) {
        Some(stat) => {
            let reused = owner::start(id) != 0 && !owner::start_matches(id, boot_relative(stat.start_time));
            // A thread-group leader that exited while other threads run is also 'Z', with
            // threads > 1: that process is alive.
            let zombie = matches!(stat.state, b'Z' | b'X') && stat.threads <= 1;
            reused || zombie
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_names() {
        let line = b"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 10\n";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat, ProcStat { pid: 4242, state: b'S', threads: 3, start_time: 987654 });
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_stat(b"1 (x) Z"), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "makes system calls Miri does not model")]
    fn this_process_is_alive_and_known() {
        let me = identity();
        assert_eq!(me.pid(), std::process::id());
        assert_eq!(identity(), me);
        assert!(!is_dead(me.id));
        let stat = read_stat("self").unwrap();
        assert!(owner::start_matches(me.id, boot_relative(stat.start_time)));
    }

    #[test]
    #[cfg_attr(miri, ignore = "makes system calls Miri does not model")]
    fn impossible_pids_are_dead() {
        assert!(is_dead(owner::id(0, 5)));
        assert!(is_dead(owner::id(u32::MAX, 5)));
        // The same pid with another start time (more than a tick away) is a reused pid.
        let me = identity();
        let other_start = owner::start(me.id) ^ 0x100;
        assert!(is_dead(owner::id(me.pid(), other_start)));
    }

    #[test]
    fn time_namespace_offsets_parse_and_start_times_match_within_a_tick() {
        let text = "monotonic           0         0\nboottime         1000         5\n";
        assert_eq!(boottime_offset_ns(text), Some(1_000_000_000_005));
        assert_eq!(boottime_offset_ns("monotonic 0 0\nboottime -3 0\n"), Some(-3_000_000_000));
        assert_eq!(boottime_offset_ns("monotonic 0 0\n"), None);
        let id = owner::id(7, 1000);
        for (start, matches) in [(999, true), (1000, true), (1001, true), (998, false), (1002, false)] {
            assert_eq!(owner::start_matches(id, start), matches, "{start}");
        }
        // Across the 31 bits kept: 0 and 2^31 - 1 are a tick apart.
        assert!(owner::start_matches(owner::id(7, (1 << 31) - 1), 1 << 31));
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", "a/b", "/a", ".", "..", "a\0b", &"x".repeat(256)] {
            assert_eq!(shm_path(bad).unwrap_err().kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert_eq!(shm_path("ok-name.1").unwrap(), "/dev/shm/ok-name.1");
        assert!(shm_path(&"x".repeat(255)).is_ok());
    }
}
