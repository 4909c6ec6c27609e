//! Creating, opening, validating, closing and unlinking segments.

use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::stat::{FileStat, Mode, SFlag};

use super::header::{Header, HEADER_SIZE, LAYOUT_VERSION, MAGIC, READY};
use super::{name, Kind};
use crate::util::realtime_ns;
use crate::{err, Error, ErrorKind, Result};

/// Creation and opening options, shared by every kind. The values are the C ABI's `MPX_F_*`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(pub u32);

impl Flags {
    /// Remove the name when the last process using the object closes it (race-free: decided
    /// under an exclusive flock). Given at create, it is stored in the header and applies to
    /// every user; given at open, it applies from that handle's close on.
    pub const UNLINK_ON_LAST_CLOSE: Flags = Flags(1 << 0);
    /// Map read-only (open only). Writing through the pointer then faults.
    pub const READ_ONLY: Flags = Flags(1 << 1);
    /// Create with mode 0660 instead of 0600.
    pub const MODE_GROUP: Flags = Flags(1 << 2);
    /// Create with mode 0666 instead of 0600.
    pub const MODE_ALL: Flags = Flags(1 << 3);
    /// Buffers only (create): do not reserve the data area's memory at creation. Creating is then
    /// as fast as an ftruncate whatever the size, but if /dev/shm fills up, the first touch of an
    /// unbacked page kills the toucher with SIGBUS. Without it every page is reserved up front
    /// and a create that cannot be backed fails with ENOSPC. The header page is always reserved.
    pub const NORESERVE: Flags = Flags(1 << 4);
    /// Every flag this version knows; others are refused so that future flags cannot be
    /// silently ignored by an old library.
    pub const KNOWN: u32 = 0b1_1111;

    pub fn contains(self, f: Flags) -> bool {
        self.0 & f.0 == f.0
    }

    pub fn check(self) -> Result<Flags> {
        if self.0 & !Self::KNOWN != 0 {
            return Err(err!(Invalid, "unknown flag bits {:#x}", self.0 & !Self::KNOWN));
        }
        Ok(self)
    }

    fn mode(self) -> Mode {
        Mode::from_bits_truncate(if self.contains(Flags::MODE_ALL) {
            0o666
        } else if self.contains(Flags::MODE_GROUP) {
            0o660
        } else {
            0o600
        })
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, o: Flags) -> Flags {
        Flags(self.0 | o.0)
    }
}

/// What a kind asks of a new segment.
#[derive(Clone, Copy, Debug)]
pub struct SegmentSpec {
    pub kind: Kind,
    /// Bytes of the kind's area.
    pub data_size: usize,
    /// Alignment of the kind's area within the segment (a power of two, >= 8). Buffers use the
    /// page size so that the data pointer suits SIMD and `mmap` by offset.
    pub data_align: usize,
    /// Immutable kind parameters, stored in the header.
    pub params: [u64; 4],
}

/// How long `open` waits for a creator to publish the ready word.
const READY_WAIT: Duration = Duration::from_secs(2);
/// A creator finishes a segment within microseconds of its last change to the file; one still
/// incomplete after this long without change is abandoned or corrupt, not in progress.
const SETTLED: Duration = Duration::from_millis(250);

/// Whether the file has not changed (size, mode or contents) for SETTLED.
fn settled(st: &FileStat) -> bool {
    let changed = (st.st_ctime as i128 * 1_000_000_000 + st.st_ctime_nsec as i128)
        .max(st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128);
    (realtime_ns() as i128 - changed) > SETTLED.as_nanos() as i128
}

/// How long create/open retry a contended liveness lock (a `gc` or a last close holds it for
/// microseconds).
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// One mapped segment. Dropping it unmaps and closes (and, with UNLINK_ON_LAST_CLOSE, removes
/// the name if this was the last user). Closing never unlinks otherwise.
pub struct Segment {
    /// ManuallyDrop, as `fd`: Drop unmaps before it closes, and closes before it decides an
    /// unlink-on-last-close (a mapping keeps the open file description, and its lock, alive).
    map: ManuallyDrop<MmapRaw>,
    fd: ManuallyDrop<OwnedFd>,
    name: Option<String>,
    kind: Kind,
    flags: Flags,
    /// Whether this handle counts as a user (holds the shared liveness lock). Only inspection
    /// ([`Segment::inspect`]) opens without it.
    user: bool,
    /// The validated layout, read once at create/open: another process may rewrite the header
    /// afterwards, and nothing derived from shared memory is trusted twice.
    layout: Layout,
}

#[derive(Clone, Copy, Default)]
struct Layout {
    data_offset: usize,
    data_size: usize,
    params: [u64; 4],
    /// The creation flags stored in the header (UNLINK_ON_LAST_CLOSE applies to every user).
    flags: u32,
}

fn describe(kind: Kind, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{} '{}'", kind.name(), n),
        None => format!("anonymous {}", kind.name()),
    }
}

fn round_up(v: usize, align: usize) -> Option<usize> {
    v.checked_add(align - 1).map(|x| x & !(align - 1))
}

fn fstat(fd: RawFd) -> Result<FileStat> {
    // SAFETY: only called with descriptors this module owns for the duration of the call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    nix::sys::stat::fstat(fd).map_err(|e| Error::os(e, "fstat"))
}

/// Whether `path` still names the file open as `fd` (false once it was unlinked or replaced).
fn path_is_fd(path: &str, fd: RawFd) -> bool {
    match (nix::sys::stat::stat(path), fstat(fd)) {
        (Ok(st), Ok(me)) => me.st_ino == st.st_ino && me.st_dev == st.st_dev,
        _ => false,
    }
}

/// One flock operation; Err(errno) when it fails. libc, not nix: nix's `Flock` owns the
/// descriptor and unlocks explicitly when dropped, which would release the lock for a forked
/// child sharing the open file description (the liveness lock must live until the last
/// reference to the description closes), and nix's plain `flock` is deprecated.
pub(crate) fn flock(fd: RawFd, op: libc::c_int) -> std::result::Result<(), Errno> {
    // SAFETY: flock takes any integer; an invalid descriptor is EBADF.
    Errno::result(unsafe { libc::flock(fd, op) }).map(drop)
}

/// Takes the shared liveness lock, retrying while a gc or last-close briefly holds it
/// exclusively. Bounded: never hangs.
fn lock_shared(fd: RawFd, what: &str) -> Result<()> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match flock(fd, libc::LOCK_SH | libc::LOCK_NB) {
            Ok(()) => return Ok(()),
            Err(Errno::EWOULDBLOCK | Errno::EINTR) => {}
            Err(e) => return Err(Error::os(e, format!("{what}: flock"))),
        }
        if Instant::now() >= deadline {
            return Err(err!(Timeout, "{what}: another process holds the segment exclusively"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Whether some process holds a liveness lock on the file open as `fd` (probed with a
/// non-blocking exclusive lock on a separate open file description, released at once).
pub(crate) fn in_use(fd: RawFd) -> bool {
    if flock(fd, libc::LOCK_EX | libc::LOCK_NB).is_ok() {
        let _ = flock(fd, libc::LOCK_UN);
        false
    } else {
        true
    }
}

/// A copy of the header read with pread (None if the file is shorter or the read fails).
fn pread_header(fd: &OwnedFd) -> Option<Header> {
    let mut bytes = [0u8; HEADER_SIZE];
    let n = nix::sys::uio::pread(fd, &mut bytes, 0).ok()?;
    // SAFETY: Header is repr(C) plain data (integers, byte arrays, an AtomicU32) of HEADER_SIZE
    // bytes, valid for any bit pattern; read_unaligned copies it out of the byte buffer.
    (n == HEADER_SIZE).then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Header>()) })
}

fn open_path(path: &str, oflag: OFlag, mode: Mode) -> std::result::Result<OwnedFd, Errno> {
    // O_NOFOLLOW: /dev/shm is world-writable; never follow a planted symlink.
    nix::fcntl::open(path, oflag | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, mode)
}

/// Reserves the memory of a new segment, so that no page of it can be missing when touched: on a
/// full tmpfs a touch of an unbacked page of a MAP_SHARED mapping is SIGBUS, which would kill the
/// toucher (inside the library, or the user's code on a buffer). With NORESERVE (buffers), only
/// the pages up to the data area are reserved: the header and nothing else is the library's.
/// Costs what clearing the pages costs (~80 ms for 256 MiB here), a cost the first touches would
/// otherwise pay page by page.
fn reserve(fd: &OwnedFd, total: usize, spec: &SegmentSpec, flags: Flags, named: bool, what: &str) -> Result<()> {
    let len =
        if flags.contains(Flags::NORESERVE) { round_up(HEADER_SIZE, spec.data_align).unwrap_or(total) } else { total };
    match nix::fcntl::posix_fallocate(fd, 0, len as libc::off_t) {
        Ok(()) => Ok(()),
        // A file system that cannot reserve (not tmpfs or memfd): nothing more can be done here.
        Err(Errno::EOPNOTSUPP) => Ok(()),
        Err(Errno::ENOSPC | Errno::ENOMEM) => {
            // A named segment's file system is /dev/shm; an anonymous one's is the kernel's
            // internal shmem mount, whose free space statvfs does not tell.
            let free = nix::sys::statvfs::fstatvfs(fd)
                .ok()
                .filter(|_| named)
                .map(|v| v.blocks_available() * v.fragment_size());
            let need = human(len as u64);
            let msg = match free {
                Some(free) => format!("{what}: {} has {} free, {need} needed (ENOSPC)", name::SHM_DIR, human(free)),
                None => format!("{what}: not enough shared memory for {need} (ENOSPC)"),
            };
            Err(Error::with_errno(crate::ErrorKind::Os, msg, libc::ENOSPC))
        }
        Err(e) => Err(Error::os(e, format!("{what}: reserving {len} bytes"))),
    }
}

/// "12 MiB", "4 KiB", "100 bytes".
fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() < 0.05 || v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn map(fd: &OwnedFd, len: usize, writable: bool, what: &str) -> Result<MmapRaw> {
    let mut opts = MmapOptions::new();
    opts.len(len);
    let raw = fd.as_raw_fd();
    let m = if writable { opts.map_raw(raw) } else { opts.map_raw_read_only(raw) };
    m.map_err(|e| Error::from(e).context(format!("{what}: mmap of {len} bytes")))
}

impl Segment {
    /// Creates a named segment: `O_CREAT|O_EXCL` (mode 0600 unless flags say otherwise), size it,
    /// take the liveness lock, initialise the header and publish `ready` last. The kind's area
    /// is zeroed; `init` runs on it before the segment is published.
    pub fn create(
        name: &str,
        spec: SegmentSpec,
        flags: Flags,
        init: impl FnOnce(&Segment) -> Result<()>,
    ) -> Result<Segment> {
        name::validate(name)?;
        let flags = flags.check()?;
        if flags.contains(Flags::READ_ONLY) {
            return Err(err!(Invalid, "{}: READ_ONLY applies to open, not create", describe(spec.kind, Some(name))));
        }
        if flags.contains(Flags::NORESERVE) && spec.kind != Kind::Buffer {
            let what = describe(spec.kind, Some(name));
            return Err(err!(
                Invalid,
                "{what}: NORESERVE applies to buffers only (the library writes every other kind)"
            ));
        }
        let what = describe(spec.kind, Some(name));
        let total = Self::layout(&spec, &what)?;
        let path = name::path_of(name);
        let private = Mode::from_bits_truncate(0o600);
        for _ in 0..16 {
            let oflag = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL;
            let fd = open_path(&path, oflag, private).map_err(|e| match e {
                Errno::EEXIST => err!(Exists, "{what}: already exists"),
                e => Error::os(e, format!("{what}: create {path}")),
            })?;
            // Size first, so an opener never sees a file shorter than the header for long.
            if let Err(e) = nix::unistd::ftruncate(&fd, total as libc::off_t) {
                let _ = std::fs::remove_file(&path);
                return Err(Error::os(e, format!("{what}: ftruncate to {total} bytes")));
            }
            if let Err(e) = reserve(&fd, total, &spec, flags, true, &what) {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            // The umask would narrow a group/world mode; 0600 (the default) it leaves alone.
            if flags.mode() != private {
                let _ = nix::sys::stat::fchmod(&fd, flags.mode());
            }
            lock_shared(fd.as_raw_fd(), &what)?;
            if !path_is_fd(&path, fd.as_raw_fd()) {
                // A gc saw the file unlocked in the instant before our flock and removed it.
                continue;
            }
            let seg = match Self::init(fd, total, spec, Some(name.to_string()), flags, &what) {
                Ok(s) => s,
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
            };
            if let Err(e) = init(&seg) {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            seg.header().ready.store(READY, Ordering::Release);
            return Ok(seg);
        }
        Err(err!(Os, "{what}: creation kept racing with removal"))
    }

    /// Creates an anonymous segment in a memfd, sealed against resizing. It has no name, so it
    /// cannot leak; share it by passing its fd (inheritance or SCM_RIGHTS).
    pub fn create_anonymous(spec: SegmentSpec, init: impl FnOnce(&Segment) -> Result<()>) -> Result<Segment> {
        let what = describe(spec.kind, None);
        let total = Self::layout(&spec, &what)?;
        let label = format!("mpx:{}", spec.kind.name());
        let fd = memfd_create(label.as_str(), MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
            .map_err(|e| Error::os(e, format!("{what}: memfd_create")))?;
        nix::unistd::ftruncate(&fd, total as libc::off_t).map_err(|e| Error::os(e, format!("{what}: ftruncate")))?;
        reserve(&fd, total, &spec, Flags::default(), false, &what)?;
        // No process may shrink it under another's mapping (that would SIGBUS the reader).
        let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
        nix::fcntl::fcntl(&fd, FcntlArg::F_ADD_SEALS(seals)).map_err(|e| Error::os(e, format!("{what}: seal")))?;
        lock_shared(fd.as_raw_fd(), &what)?;
        let seg = Self::init(fd, total, spec, None, Flags::default(), &what)?;
        init(&seg)?;
        seg.header().ready.store(READY, Ordering::Release);
        Ok(seg)
    }

    fn layout(spec: &SegmentSpec, what: &str) -> Result<usize> {
        assert!(spec.data_align.is_power_of_two() && spec.data_align >= 8);
        let off = round_up(HEADER_SIZE, spec.data_align).unwrap();
        off.checked_add(spec.data_size)
            .filter(|t| *t <= isize::MAX as usize)
            .ok_or_else(|| err!(Invalid, "{what}: size {} is too large", spec.data_size))
    }

    fn init(
        fd: OwnedFd,
        total: usize,
        spec: SegmentSpec,
        name: Option<String>,
        flags: Flags,
        what: &str,
    ) -> Result<Segment> {
        let map = map(&fd, total, true, what)?;
        let data_offset = round_up(HEADER_SIZE, spec.data_align).unwrap();
        let layout = Layout { data_offset, data_size: spec.data_size, params: spec.params, flags: flags.0 };
        let seg = Segment {
            map: ManuallyDrop::new(map),
            fd: ManuallyDrop::new(fd),
            name,
            kind: spec.kind,
            flags,
            user: true,
            layout,
        };
        // SAFETY: the mapping is at least HEADER_SIZE bytes, page-aligned, and ours alone until
        // `ready` is published; a fresh file is zero-filled.
        let h = unsafe { &mut *seg.base().cast::<Header>() };
        h.magic = MAGIC;
        h.layout_version = LAYOUT_VERSION;
        h.kind = spec.kind as u32;
        h.flags = flags.0;
        h.header_size = HEADER_SIZE as u32;
        h.total_size = total as u64;
        h.data_offset = data_offset as u64;
        h.data_size = spec.data_size as u64;
        h.creator_pid = std::process::id() as i32;
        let n = seg.name.as_deref().unwrap_or("").as_bytes();
        h.name_len = n.len() as u32;
        h.name[..n.len()].copy_from_slice(n);
        h.created_ns = realtime_ns();
        h.params = spec.params;
        h.checksum = h.compute_checksum();
        Ok(seg)
    }

    /// Opens a named segment of `kind`: waits (bounded) for its creator to publish it, then
    /// validates the header against the file before trusting anything in it.
    pub fn open(name: &str, kind: Kind, flags: Flags) -> Result<Segment> {
        name::validate(name)?;
        let flags = flags.check()?;
        let what = describe(kind, Some(name));
        let path = name::path_of(name);
        let writable = !flags.contains(Flags::READ_ONLY);
        let oflag = if writable { OFlag::O_RDWR } else { OFlag::O_RDONLY };
        for _ in 0..16 {
            let fd = Self::open_file(&path, oflag, &what)?;
            lock_shared(fd.as_raw_fd(), &what)?;
            if !path_is_fd(&path, fd.as_raw_fd()) {
                // Removed (gc, last close, unlink) while we were opening: look again.
                continue;
            }
            return Self::attach(fd, kind, Some(name.to_string()), flags, true, &what);
        }
        Err(err!(NotFound, "{what}: object keeps disappearing while being opened"))
    }

    fn open_file(path: &str, oflag: OFlag, what: &str) -> Result<OwnedFd> {
        open_path(path, oflag, Mode::empty()).map_err(|e| match e {
            Errno::ENOENT => err!(NotFound, "{what}: no such object"),
            Errno::ELOOP => err!(Permission, "{what}: {path} is a symbolic link"),
            e => Error::os(e, format!("{what}: open {path}")),
        })
    }

    /// Opens a named segment to look at it (`mpx ls`, `mpx info`): read-only and without the
    /// liveness lock, so the look changes nothing. It neither counts as a user (a real last user
    /// closing meanwhile still removes an unlink-on-last-close object) nor unlinks at close.
    pub fn inspect(name: &str, kind: Kind) -> Result<Segment> {
        name::validate(name)?;
        let what = describe(kind, Some(name));
        let fd = Self::open_file(&name::path_of(name), OFlag::O_RDONLY, &what)?;
        Self::attach(fd, kind, Some(name.to_string()), Flags::READ_ONLY, false, &what)
    }

    /// Opens the segment behind an inherited or received fd (a memfd or a named segment's fd).
    /// The fd is duplicated; the caller keeps its own.
    pub fn from_fd(fd: RawFd, kind: Kind, flags: Flags) -> Result<Segment> {
        let flags = flags.check()?;
        let what = format!("{} from fd {}", kind.name(), fd);
        if fd < 0 {
            return Err(err!(Invalid, "{what}: not a file descriptor"));
        }
        // libc, not nix: nix's fcntl takes a BorrowedFd, which promises an open descriptor, and
        // the caller's number may name nothing (EBADF is then the answer we want).
        // SAFETY: F_DUPFD_CLOEXEC on any integer is safe; failure is reported.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(Error::last_os(format!("{what}: dup")).with_kind_if(libc::EBADF, ErrorKind::Invalid));
        }
        // SAFETY: dup is a new fd we own.
        let owned = unsafe { OwnedFd::from_raw_fd(dup) };
        if flags.contains(Flags::UNLINK_ON_LAST_CLOSE) {
            return Err(err!(Invalid, "{what}: UNLINK_ON_LAST_CLOSE needs a named object"));
        }
        lock_shared(dup, &what)?;
        Self::attach(owned, kind, None, flags, true, &what)
    }

    fn attach(fd: OwnedFd, kind: Kind, name: Option<String>, flags: Flags, user: bool, what: &str) -> Result<Segment> {
        let raw = fd.as_raw_fd();
        let deadline = Instant::now() + READY_WAIT;
        // Wait until the file is at least a header long (a creator sizes it right after O_EXCL).
        let size = loop {
            let st = fstat(raw)?;
            if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
                return Err(err!(Invalid, "{what}: not a regular shared-memory file"));
            }
            let size = st.st_size as u64;
            if size >= HEADER_SIZE as u64 {
                break size;
            }
            if settled(&st) || Instant::now() >= deadline {
                return Err(err!(
                    Corrupt,
                    "{what}: truncated: {size} bytes, shorter than the {HEADER_SIZE}-byte header"
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let len = usize::try_from(size).map_err(|_| err!(Corrupt, "{what}: size {size} does not fit in memory"))?;
        let writable = !flags.contains(Flags::READ_ONLY);
        // A buffer's data starts on its own page, and its users (Python's buffer, a C pointer)
        // may never touch the header page: read a published header with pread instead of through
        // the mapping, so that opening populates no page table entry and closing unmaps an
        // untouched mapping (together ~5 us of an open+close here). Only a copy that is published
        // and validates completely is taken; anything else (not ready yet, a torn copy, a
        // corrupt header) goes the mapped way below, which waits and reports.
        let snap = if kind == Kind::Buffer {
            pread_header(&fd).filter(|s| s.ready.load(Ordering::Relaxed) == READY)
        } else {
            None
        };
        let map = map(&fd, len, writable, what)?;
        let seg = Segment {
            map: ManuallyDrop::new(map),
            fd: ManuallyDrop::new(fd),
            name,
            kind,
            flags,
            user,
            layout: Layout::default(),
        };
        if let Some(snap) = snap {
            std::sync::atomic::fence(Ordering::Acquire);
            if snap.validate(size, what) == Ok(Kind::Buffer) {
                return seg.adopt(snap);
            }
        }
        let h = seg.header();
        while h.ready.load(Ordering::Acquire) != READY {
            // A creator writes the magic before anything else; other bytes there are not ours.
            if h.magic != MAGIC && h.magic != [0; 8] {
                return Err(err!(Corrupt, "{what}: not an mpx segment (bad magic)"));
            }
            let creator = h.creator_pid;
            let why = if h.magic == MAGIC && creator > 0 && !crate::util::pid_alive(creator) {
                Some(format!("its creator (pid {creator}) died"))
            } else if settled(&fstat(raw)?) {
                Some("it has not changed for a while".to_string())
            } else if Instant::now() >= deadline {
                Some("timed out waiting".to_string())
            } else {
                None
            };
            if let Some(why) = why {
                return Err(err!(Corrupt, "{what}: segment was never initialised ({why})"));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        // Validate a private copy, so that what was checked is what is used: another process may
        // rewrite the shared header at any time. (Volatile: the memory is shared.)
        // SAFETY: the header lies within the mapping; Header is plain data.
        let snap: Header = unsafe { std::ptr::read_volatile(seg.base() as *const Header) };
        let actual = snap.validate(size, what)?;
        if actual != kind {
            return Err(err!(Kind, "{what}: the object is {}, not {}", actual.with_article(), kind.with_article()));
        }
        seg.adopt(snap)
    }

    /// Takes the layout from a validated header copy of this segment's kind.
    fn adopt(mut self, snap: Header) -> Result<Segment> {
        self.layout = Layout {
            data_offset: snap.data_offset as usize,
            data_size: snap.data_size as usize,
            params: snap.params,
            flags: snap.flags,
        };
        // Opened by descriptor: recover the name from the header if it still names this very
        // file, so that unlink-on-last-close and name queries work as for a handle opened by name.
        if self.name.is_none()
            && !snap.name().is_empty()
            && name::validate(snap.name()).is_ok()
            && path_is_fd(&name::path_of(snap.name()), self.fd())
        {
            self.name = Some(snap.name().to_string());
        }
        Ok(self)
    }

    /// Removes a name. Processes that have the object open keep using it; a later open or
    /// create of the name sees a new object.
    pub fn unlink(name: &str) -> Result<()> {
        name::validate(name)?;
        let path = name::path_of(name);
        std::fs::remove_file(&path).map_err(|e| {
            Error::from_errno(e.raw_os_error().unwrap_or(libc::EIO), format!("object '{name}': unlink"))
                .with_message_if(ErrorKind::NotFound, format!("object '{name}': no such object"))
        })
    }

    fn base(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    pub fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_SIZE bytes and page-aligned.
        unsafe { &*(self.base() as *const Header) }
    }

    /// Start of the kind's area.
    pub fn data_ptr(&self) -> *mut u8 {
        // SAFETY: validated: data_offset + data_size <= the mapping's length.
        unsafe { self.base().add(self.layout.data_offset) }
    }

    pub fn data_offset(&self) -> usize {
        self.layout.data_offset
    }

    pub fn data_size(&self) -> usize {
        self.layout.data_size
    }

    pub fn params(&self) -> [u64; 4] {
        self.layout.params
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn flags(&self) -> Flags {
        self.flags
    }

    pub fn is_read_only(&self) -> bool {
        self.flags.contains(Flags::READ_ONLY)
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// "shm 'frames'" or "anonymous shm": how messages name this object.
    pub fn describe(&self) -> String {
        describe(self.kind, self.name())
    }

    /// Removes this segment's name if it still refers to this segment.
    pub fn unlink_self(&self) -> Result<()> {
        let Some(name) = self.name() else {
            return Err(err!(Invalid, "{}: has no name to unlink", self.describe()));
        };
        let path = name::path_of(name);
        if !path_is_fd(&path, self.fd()) {
            return Err(err!(NotFound, "{}: the name was already removed", self.describe()));
        }
        Segment::unlink(name)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // The flag is the object's (set by its creator, stored in the header) or this handle's.
        // An inspecting handle is no user: it never decides an unlink.
        let unlink_last = self.user
            && (self.flags.contains(Flags::UNLINK_ON_LAST_CLOSE)
                || Flags(self.layout.flags).contains(Flags::UNLINK_ON_LAST_CLOSE));
        // SAFETY: nothing borrowed from the mapping outlives self; it is not used after this.
        unsafe { ManuallyDrop::drop(&mut self.map) };
        // The probe below must find this very file under the name, not a newer one.
        let ino = if unlink_last { fstat(self.fd.as_raw_fd()).ok().map(|st| (st.st_dev, st.st_ino)) } else { None };
        // SAFETY: the fd is not used after this point.
        unsafe { ManuallyDrop::drop(&mut self.fd) };
        // Closing drops our liveness lock, unless a forked child still shares this open file
        // description (by descriptor or mapping): then the object is still in use, correctly.
        if let (true, Some(name)) = (unlink_last, &self.name) {
            // Probe from a fresh open file description: its exclusive lock succeeds only if no
            // process holds a shared one. A concurrent opener retries its shared lock until we
            // finish, then sees the name gone and retries, so the decision is race-free.
            let path = name::path_of(name);
            if let Ok(probe) = open_path(&path, OFlag::O_RDONLY, Mode::empty()) {
                let fd = probe.as_raw_fd();
                let same = fstat(fd).ok().map(|st| (st.st_dev, st.st_ino)) == ino && ino.is_some();
                // Check the name again once the lock is ours: another last user may have removed
                // this file and a creator made a new one under the name since the probe opened
                // it (unlocked, the old file would pass), and that one must stay. While we hold
                // the lock, no other last-close can remove the file we checked.
                if same && flock(fd, libc::LOCK_EX | libc::LOCK_NB).is_ok() && path_is_fd(&path, fd) {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
}

trait ErrorExt {
    fn with_kind_if(self, errno: i32, kind: ErrorKind) -> Error;
    fn with_message_if(self, kind: ErrorKind, msg: String) -> Error;
}

impl ErrorExt for Error {
    fn with_kind_if(self, errno: i32, kind: ErrorKind) -> Error {
        if self.errno() == Some(errno) {
            Error::new(kind, self.message().to_string())
        } else {
            self
        }
    }
    fn with_message_if(self, kind: ErrorKind, msg: String) -> Error {
        if self.kind() == kind {
            Error::new(kind, msg)
        } else {
            self
        }
    }
}
