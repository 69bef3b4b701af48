//! Creating and opening a [`ProcessSemaphore`]: the constructors and [`ProcessSemaphoreBuilder`].

use super::{ProcessSemaphore, sys};
use crate::sync::AtomicU64;
use std::io;

/// How often `open_or_create` retries when the name appears and disappears under it.
const OPEN_OR_CREATE_TRIES: usize = 16;

impl ProcessSemaphore {
    /// Creates a semaphore named `name` with `permits` permits, readable and writable by this
    /// user only (mode `0600`). Fails if one of that name exists.
    ///
    /// The name is that of a file in `/dev/shm`: not empty, not `.` or `..`, at most 255 bytes,
    /// without `/` or NUL. The semaphore exists until [`unlink`](ProcessSemaphore::unlink)ed (or the machine
    /// restarts), whoever has it open. Other processes see it only once it is initialised.
    ///
    /// # Errors
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for an invalid name or more than
    /// [`MAX_PERMITS`](ProcessSemaphore::MAX_PERMITS) permits,
    /// [`AlreadyExists`](io::ErrorKind::AlreadyExists) if the name is taken, and the errors of
    /// creating and mapping a file.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    /// use std::io::ErrorKind;
    ///
    /// let name = format!("doc-create-{}", std::process::id());
    /// let sem = ProcessSemaphore::create(&name, 3)?;
    /// assert_eq!(sem.available_permits(), 3);
    /// let again = ProcessSemaphore::create(&name, 3).unwrap_err();
    /// assert_eq!(again.kind(), ErrorKind::AlreadyExists);
    /// ProcessSemaphore::unlink(&name)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create(name: &str, permits: u32) -> io::Result<ProcessSemaphore> {
        ProcessSemaphore::create_with_mode(name, permits, sys::DEFAULT_MODE)
    }

    /// Like [`create`](ProcessSemaphore::create), with the file mode `mode` (permission bits,
    /// such as `0o660` to share with the group). The mode is set exactly; the umask does not
    /// apply.
    ///
    /// # Errors
    /// As for [`create`](ProcessSemaphore::create), and
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) if `mode` has bits outside `0o777`.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    /// use std::os::unix::fs::PermissionsExt;
    ///
    /// let name = format!("doc-create-with-mode-{}", std::process::id());
    /// let sem = ProcessSemaphore::create_with_mode(&name, 1, 0o640)?;
    /// let mode = std::fs::metadata(format!("/dev/shm/{name}"))?.permissions().mode();
    /// assert_eq!(mode & 0o777, 0o640);
    /// ProcessSemaphore::unlink(&name)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create_with_mode(name: &str, permits: u32, mode: u32) -> io::Result<ProcessSemaphore> {
        ProcessSemaphore::builder().mode(mode).create(name, permits)
    }

    /// Opens the semaphore named `name`, created by this or another process.
    ///
    /// # Errors
    /// [`NotFound`](io::ErrorKind::NotFound) if there is none,
    /// [`InvalidData`](io::ErrorKind::InvalidData) if the file of that name is not a semaphore of
    /// this layout (another program's file, an older version's layout, a truncated file),
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for an invalid name,
    /// [`PermissionDenied`](io::ErrorKind::PermissionDenied) if its mode does not let this user
    /// read and write it.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    /// use std::io::ErrorKind;
    ///
    /// let name = format!("doc-open-{}", std::process::id());
    /// assert_eq!(ProcessSemaphore::open(&name).unwrap_err().kind(), ErrorKind::NotFound);
    /// let created = ProcessSemaphore::create(&name, 2)?;
    /// let opened = ProcessSemaphore::open(&name)?;
    /// let _permit = opened.acquire().unwrap();
    /// assert_eq!(created.available_permits(), 1);
    /// ProcessSemaphore::unlink(&name)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open(name: &str) -> io::Result<ProcessSemaphore> {
        let map = sys::open(name)?;
        Ok(ProcessSemaphore::from_map(map, Some(name)))
    }

    /// Opens the semaphore named `name`, or creates it with `permits` permits (mode `0600`) if
    /// there is none. Of several processes racing to do this, one creates it and the others
    /// open it.
    ///
    /// # Errors
    /// As for [`open`](ProcessSemaphore::open) and [`create`](ProcessSemaphore::create).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let name = format!("doc-open-or-create-{}", std::process::id());
    /// let first = ProcessSemaphore::open_or_create(&name, 4)?;
    /// let second = ProcessSemaphore::open_or_create(&name, 99)?; // opens: 99 is not used
    /// assert_eq!(second.available_permits(), 4);
    /// ProcessSemaphore::unlink(&name)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open_or_create(name: &str, permits: u32) -> io::Result<ProcessSemaphore> {
        ProcessSemaphore::builder().open_or_create(name, permits)
    }

    fn open_or_create_with(
        name: &str,
        permits: u32,
        options: &ProcessSemaphoreBuilder,
    ) -> io::Result<ProcessSemaphore> {
        check_permits(permits)?;
        for _ in 0..OPEN_OR_CREATE_TRIES {
            match ProcessSemaphore::open(name) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                opened => return opened,
            }
            match options.create(name, permits) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                created => return created,
            }
        }
        Err(io::Error::other(format!(
            "semaphore {name:?} kept being created and removed while it was being opened"
        )))
    }

    /// Removes the name `name`. Processes that have the semaphore open keep using it; it is
    /// freed when the last of them closes it. A new semaphore may then be created under the name.
    ///
    /// # Errors
    /// [`NotFound`](io::ErrorKind::NotFound) if there is no such name,
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for an invalid name.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let name = format!("doc-unlink-{}", std::process::id());
    /// let sem = ProcessSemaphore::create(&name, 1)?;
    /// ProcessSemaphore::unlink(&name)?;
    /// assert!(ProcessSemaphore::open(&name).is_err());
    /// assert_eq!(sem.available_permits(), 1); // still usable
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn unlink(name: &str) -> io::Result<()> {
        sys::unlink(name)
    }

    /// Creates a semaphore without a name, in a memfd. It is shared with the children this
    /// process makes with `fork` (and theirs), not with unrelated processes.
    ///
    /// # Errors
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for more than
    /// [`MAX_PERMITS`](ProcessSemaphore::MAX_PERMITS) permits, and the errors of making and
    /// mapping the memfd.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::anonymous(2)?;
    /// let permit = sem.acquire_many(2).unwrap();
    /// assert!(sem.try_acquire().is_err());
    /// drop(permit);
    /// assert_eq!(sem.available_permits(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn anonymous(permits: u32) -> io::Result<ProcessSemaphore> {
        ProcessSemaphore::builder().anonymous(permits)
    }

    fn from_map(map: sys::Mapping, name: Option<&str>) -> ProcessSemaphore {
        ProcessSemaphore { map, cache: AtomicU64::new(0), name: name.map(Box::from) }
    }
}

/// Options for creating a [`ProcessSemaphore`], from [`ProcessSemaphore::builder`].
///
/// # Examples
/// ```
/// use futex_semaphore::ProcessSemaphore;
///
/// let name = format!("doc-builder-{}", std::process::id());
/// let sem = ProcessSemaphore::builder().holder_slots(8).mode(0o660).create(&name, 2)?;
/// assert_eq!(ProcessSemaphore::open(&name)?.holder_slots(), 8);
/// ProcessSemaphore::unlink(&name)?;
/// # drop(sem);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `create`, `open_or_create` or `anonymous` is called"]
pub struct ProcessSemaphoreBuilder {
    pub(super) slots: usize,
    pub(super) mode: u32,
}

impl ProcessSemaphoreBuilder {
    /// The size of the holder table (default 128, at most
    /// [`MAX_HOLDER_SLOTS`](ProcessSemaphore::MAX_HOLDER_SLOTS)): how many processes at once
    /// hold permits that are given back if they die. Each slot takes 128 bytes of the region.
    /// Past it, a process still acquires and releases, but untracked (see
    /// [`ProcessPermit::is_recoverable`](crate::ProcessPermit::is_recoverable)).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::builder().holder_slots(4).anonymous(1)?;
    /// assert_eq!(sem.holder_slots(), 4);
    /// // Zero slots, or more than the most a region can have, is refused.
    /// assert!(ProcessSemaphore::builder().holder_slots(0).anonymous(1).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use = "a builder does nothing until a constructor (`create`, `open_or_create`, `anonymous`) is called"]
    pub fn holder_slots(mut self, slots: usize) -> ProcessSemaphoreBuilder {
        self.slots = slots;
        self
    }

    /// The file mode of a named semaphore (default `0o600`); see
    /// [`ProcessSemaphore::create_with_mode`].
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    /// use std::os::unix::fs::PermissionsExt;
    ///
    /// let name = format!("doc-builder-mode-{}", std::process::id());
    /// let sem = ProcessSemaphore::builder().mode(0o640).create(&name, 1)?;
    /// let mode = std::fs::metadata(format!("/dev/shm/{name}"))?.permissions().mode();
    /// assert_eq!(mode & 0o777, 0o640); // set exactly, whatever the umask
    /// ProcessSemaphore::unlink(&name)?;
    /// # drop(sem);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use = "a builder does nothing until a constructor (`create`, `open_or_create`, `anonymous`) is called"]
    pub fn mode(mut self, mode: u32) -> ProcessSemaphoreBuilder {
        self.mode = mode;
        self
    }

    /// Like [`ProcessSemaphore::create`], with these options.
    ///
    /// # Errors
    /// As for [`ProcessSemaphore::create_with_mode`], and
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for a table of 0 or more than
    /// [`MAX_HOLDER_SLOTS`](ProcessSemaphore::MAX_HOLDER_SLOTS) slots.
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let name = format!("doc-builder-create-{}", std::process::id());
    /// let options = ProcessSemaphore::builder().holder_slots(16);
    /// let sem = options.create(&name, 3)?;
    /// assert_eq!((sem.available_permits(), sem.holder_slots()), (3, 16));
    /// // The name is taken now: a second create fails.
    /// assert_eq!(options.create(&name, 3).unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
    /// ProcessSemaphore::unlink(&name)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create(&self, name: &str, permits: u32) -> io::Result<ProcessSemaphore> {
        check_permits(permits)?;
        self.check_slots()?;
        let map = sys::create(name, permits, self.slots, self.mode, &sys::identity())?;
        Ok(ProcessSemaphore::from_map(map, Some(name)))
    }

    /// Like [`ProcessSemaphore::open_or_create`], creating with these options (a semaphore that
    /// exists keeps its own).
    ///
    /// # Errors
    /// As for [`create`](ProcessSemaphoreBuilder::create) and [`ProcessSemaphore::open`].
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let name = format!("doc-builder-open-or-create-{}", std::process::id());
    /// let first = ProcessSemaphore::builder().holder_slots(8).open_or_create(&name, 2)?;
    /// // It exists now: this opens it, and its permits and table are the first one's.
    /// let second = ProcessSemaphore::builder().holder_slots(64).open_or_create(&name, 5)?;
    /// assert_eq!((second.available_permits(), second.holder_slots()), (2, 8));
    /// ProcessSemaphore::unlink(&name)?;
    /// # drop(first);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open_or_create(&self, name: &str, permits: u32) -> io::Result<ProcessSemaphore> {
        ProcessSemaphore::open_or_create_with(name, permits, self)
    }

    /// Like [`ProcessSemaphore::anonymous`], with this table size (the mode does not apply).
    ///
    /// # Errors
    /// As for [`ProcessSemaphore::anonymous`], and for the table size as for
    /// [`create`](ProcessSemaphoreBuilder::create).
    ///
    /// # Examples
    /// ```
    /// use futex_semaphore::ProcessSemaphore;
    ///
    /// let sem = ProcessSemaphore::builder().holder_slots(2).anonymous(1)?;
    /// assert_eq!((sem.available_permits(), sem.holder_slots()), (1, 2));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn anonymous(&self, permits: u32) -> io::Result<ProcessSemaphore> {
        check_permits(permits)?;
        self.check_slots()?;
        let map = sys::anonymous(permits, self.slots, &sys::identity())?;
        Ok(ProcessSemaphore::from_map(map, None))
    }

    fn check_slots(&self) -> io::Result<()> {
        if self.slots == 0 || self.slots > ProcessSemaphore::MAX_HOLDER_SLOTS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a holder table of {} slots: it must have 1 to ProcessSemaphore::MAX_HOLDER_SLOTS ({})",
                    self.slots,
                    ProcessSemaphore::MAX_HOLDER_SLOTS
                ),
            ));
        }
        Ok(())
    }
}

fn check_permits(permits: u32) -> io::Result<()> {
    if permits as usize > ProcessSemaphore::MAX_PERMITS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{permits} permits is more than ProcessSemaphore::MAX_PERMITS ({})",
                ProcessSemaphore::MAX_PERMITS
            ),
        ));
    }
    Ok(())
}
