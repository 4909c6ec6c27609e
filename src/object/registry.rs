//! Listing and collecting objects without a tracker process: what `mpx ls`, `mpx info` and
//! `mpx gc` are built on.
//!
//! Everything here treats /dev/shm as untrusted: a file under our prefix may be truncated,
//! corrupt, someone else's, a FIFO or a symbolic link. Such entries are reported with a
//! `problem`, never trusted and never allowed to hang or abort a listing.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};

use super::header::{Header, HEADER_SIZE, LAYOUT_VERSION, MAGIC, READY};
use super::{name, Kind};
use crate::{err, Error, ErrorKind, Result};

/// The header's fields as stored, before (and regardless of) validation: for diagnosis only.
#[derive(Clone, Debug)]
pub struct HeaderFields {
    pub magic_ok: bool,
    pub layout_version: u32,
    pub kind: u32,
    pub flags: u32,
    pub header_size: u32,
    pub total_size: u64,
    pub data_offset: u64,
    pub data_size: u64,
    pub creator_pid: i32,
    pub created_ns: u64,
    pub params: [u64; 4],
    pub checksum: u32,
    /// Whether the stored checksum matches the header's contents.
    pub checksum_ok: bool,
    /// Whether the creator published the segment (the ready word is set).
    pub ready: bool,
    /// The name recorded by the creator (lossy UTF-8, at most 200 bytes).
    pub stored_name: String,
}

/// What can be told about one object in /dev/shm without trusting it.
#[derive(Clone, Debug)]
pub struct ObjectInfo {
    pub name: String,
    /// The segment's file, `/dev/shm/mpx.<name>`.
    pub path: String,
    /// None when the header could not be read or validated (see `problem`).
    pub kind: Option<Kind>,
    /// Bytes of the whole segment file.
    pub file_size: u64,
    /// Bytes of the kind's area (for a buffer: its size); 0 unless the header validated.
    pub data_size: u64,
    /// Creator's pid as stored in the header (0 if there is no readable header).
    pub creator_pid: i32,
    /// Whether a process with the creator's pid exists now (pids are reused: a hint).
    pub creator_alive: bool,
    /// Creation time, ns since the Unix epoch; 0 unless the header validated.
    pub created_ns: u64,
    /// Whether some live process holds the object open (its liveness lock). Exact: the kernel
    /// drops a dead process's lock. Read from /proc/locks and /proc/<pid>/fdinfo when they show
    /// a holder; otherwise probed with a non-blocking exclusive flock, released at once.
    pub in_use: bool,
    /// Processes using it, best effort: those holding its liveness lock through a descriptor
    /// (/proc/<pid>/fd and fdinfo) or having it mapped (/proc/<pid>/maps), among the processes
    /// this user may inspect, plus live lock holders from /proc/locks that cannot be inspected.
    /// A forked child that inherited a handle or a mapping shows too. May be empty while
    /// `in_use` is true when the holders belong to another user.
    pub users: Vec<i32>,
    /// Permission bits of the file (e.g. 0o600).
    pub mode: u32,
    /// Owner of the file.
    pub uid: u32,
    /// Whether the entry is a regular file (anything else under our prefix is not mpx's).
    pub regular: bool,
    /// Whether this process could open it for reading.
    pub readable: bool,
    /// The raw header when the file is at least a header long and readable.
    pub header: Option<HeaderFields>,
    /// Why the segment is not a valid mpx object, if it is not.
    pub problem: Option<String>,
}

/// Inspects one object by name. Errors only for a bad name, a missing object, or an object
/// this user cannot open at all (permission); everything else is reported in `problem`.
pub fn inspect(obj_name: &str) -> Result<ObjectInfo> {
    name::validate(obj_name)?;
    inspect_with(obj_name, &Users::scan())
}

fn inspect_with(obj_name: &str, users: &Users) -> Result<ObjectInfo> {
    let path = name::path_of(obj_name);
    let quoted = format!("'{obj_name}'");
    // lstat first: never follow a planted symlink, never open a FIFO (that would block).
    let lmeta = std::fs::symlink_metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => err!(NotFound, "{quoted}: no such object"),
        _ => Error::from(e).context(&quoted),
    })?;
    let mut info = ObjectInfo {
        name: obj_name.to_string(),
        path: path.clone(),
        kind: None,
        file_size: lmeta.len(),
        data_size: 0,
        creator_pid: 0,
        creator_alive: false,
        created_ns: 0,
        in_use: false,
        users: Vec::new(),
        mode: lmeta.mode() & 0o7777,
        uid: lmeta.uid(),
        regular: lmeta.file_type().is_file(),
        readable: false,
        header: None,
        problem: None,
    };
    let ft = lmeta.file_type();
    if !ft.is_file() {
        let what = if ft.is_symlink() {
            "a symbolic link"
        } else if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "a device or special file"
        };
        info.problem = Some(format!("not an mpx segment: {path} is {what}"));
        return Ok(info);
    }
    let file = match open_nofollow(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err!(NotFound, "{quoted}: no such object"));
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            // Still worth listing: say whose it is. Its users cannot be probed.
            info.problem =
                Some(format!("cannot read it: permission denied (owner uid {}, mode {:04o})", info.uid, info.mode));
            info.users = users.holders(lmeta.dev(), lmeta.ino());
            info.in_use = users.locked(lmeta.dev(), lmeta.ino());
            return Ok(info);
        }
        Err(e) => return Err(Error::from(e).context(&quoted)),
    };
    info.readable = true;
    let meta = file.metadata()?;
    if meta.ino() != lmeta.ino() || meta.dev() != lmeta.dev() {
        // Replaced between lstat and open: describe what we actually opened.
        info.file_size = meta.len();
        info.mode = meta.mode() & 0o7777;
        info.uid = meta.uid();
    }
    info.users = users.holders(meta.dev(), meta.ino());
    // Probe only when no holder is visible: the probe holds an exclusive lock for an instant,
    // and a last user closing with UNLINK_ON_LAST_CLOSE in that instant would fail to take its
    // own exclusive lock and leave the name behind.
    info.in_use = users.locked(meta.dev(), meta.ino()) || super::segment::in_use(file.as_raw_fd());
    if meta.len() < HEADER_SIZE as u64 {
        info.problem = Some(format!("truncated: {} bytes, shorter than the {HEADER_SIZE}-byte header", meta.len()));
        return Ok(info);
    }
    let mut raw = vec![0u64; HEADER_SIZE / 8];
    // SAFETY: a u64 buffer viewed as bytes (aligned for Header, whose fields need <= 8).
    let bytes = unsafe { std::slice::from_raw_parts_mut(raw.as_mut_ptr().cast::<u8>(), HEADER_SIZE) };
    file.read_exact_at(bytes, 0).map_err(|e| Error::from(e).context(format!("{quoted}: reading the header")))?;
    // SAFETY: Header is repr(C) plain data of HEADER_SIZE bytes; any bit pattern is a value
    // (the AtomicU32 is just an integer in our private copy).
    let h: &Header = unsafe { &*(raw.as_ptr() as *const Header) };
    let ready = h.ready.load(std::sync::atomic::Ordering::Relaxed) == READY;
    if h.magic == MAGIC {
        // Without the magic, the "pid" is just bytes: do not present it as a creator.
        info.creator_pid = h.creator_pid;
        info.creator_alive = crate::util::pid_alive(h.creator_pid);
    }
    info.header = Some(HeaderFields {
        magic_ok: h.magic == MAGIC,
        layout_version: h.layout_version,
        kind: h.kind,
        flags: h.flags,
        header_size: h.header_size,
        total_size: h.total_size,
        data_offset: h.data_offset,
        data_size: h.data_size,
        creator_pid: h.creator_pid,
        created_ns: h.created_ns,
        params: h.params,
        checksum: h.checksum,
        checksum_ok: h.compute_checksum() == h.checksum,
        ready,
        stored_name: String::from_utf8_lossy(&h.name[..(h.name_len as usize).min(h.name.len())]).into_owned(),
    });
    if h.magic == MAGIC && h.layout_version == LAYOUT_VERSION && !ready {
        let why = if info.creator_alive && info.in_use {
            "creation in progress"
        } else {
            "its creator died or never finished"
        };
        info.problem = Some(format!("not initialised ({why})"));
        return Ok(info);
    }
    match h.validate(meta.len(), &quoted) {
        Ok(kind) => {
            info.kind = Some(kind);
            info.data_size = h.data_size;
            info.created_ns = h.created_ns;
            if h.name() != obj_name {
                // Renamed by hand (mv in /dev/shm): usable, but worth knowing.
                info.problem = Some(format!("header records the name '{}'", h.name()));
            }
        }
        Err(e) => {
            let msg = e.message();
            let short = msg.strip_prefix(&format!("{quoted}: ")).unwrap_or(msg);
            info.problem = Some(short.to_string());
        }
    }
    Ok(info)
}

fn open_nofollow(path: &str) -> std::io::Result<std::fs::File> {
    // O_NONBLOCK: should the entry turn into a FIFO after our lstat, open must not block.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
}

/// Every object in /dev/shm, sorted by name. Entries that vanish while listing are skipped;
/// entries that cannot be read are listed with a `problem`.
pub fn list() -> Result<Vec<ObjectInfo>> {
    let users = Users::scan();
    let mut out = Vec::new();
    let dir = std::fs::read_dir(name::SHM_DIR).map_err(|e| Error::from(e).context(name::SHM_DIR))?;
    for entry in dir {
        let entry = entry.map_err(|e| Error::from(e).context(name::SHM_DIR))?;
        let file_name = entry.file_name();
        let Some(s) = file_name.to_str() else { continue };
        let Some(obj) = s.strip_prefix(name::FILE_PREFIX) else { continue };
        if name::validate(obj).is_err() {
            continue; // not a name mpx could have made
        }
        match inspect_with(obj, &users) {
            Ok(info) => out.push(info),
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                // One unreadable entry must not hide the others.
                let path = name::path_of(obj);
                let (mode, uid, size) = std::fs::symlink_metadata(&path)
                    .map(|m| (m.mode() & 0o7777, m.uid(), m.len()))
                    .unwrap_or((0, 0, 0));
                out.push(ObjectInfo {
                    name: obj.to_string(),
                    path,
                    kind: None,
                    file_size: size,
                    data_size: 0,
                    creator_pid: 0,
                    creator_alive: false,
                    created_ns: 0,
                    in_use: false,
                    users: Vec::new(),
                    mode,
                    uid,
                    regular: false,
                    readable: false,
                    header: None,
                    problem: Some(e.message().to_string()),
                })
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What [`collect`] or [`collect_valid`] did with an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collected {
    /// No live process used it; the name was removed.
    Removed,
    /// Some live process holds it: kept.
    InUse,
    /// It disappeared, or was replaced by a new object, before the decision: nothing done.
    Gone,
    /// Not a regular file (a directory, FIFO, symbolic link... under our prefix): mpx did not
    /// make it, so gc leaves it alone.
    NotAFile,
    /// A regular file whose header does not validate (not an mpx segment, truncated, corrupt,
    /// never initialised, another layout version): it may not be mpx's at all, so
    /// [`collect_valid`] keeps it unless asked to remove the caller's own invalid files.
    Invalid,
    /// An invalid file that belongs to another user: kept even when invalid files are removed.
    NotOwned,
}

/// What [`collect_valid`] does with an unused regular file whose header does not validate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InvalidFiles {
    /// Keep it ([`Collected::Invalid`]).
    #[default]
    Keep,
    /// Remove it if it belongs to the caller's effective uid (root included: root removes only
    /// root's own), else keep it ([`Collected::NotOwned`]).
    RemoveOwn,
}

/// Removes `obj_name` if (and only if) no live process uses it. The decision is taken under an
/// exclusive flock held until after the unlink, so no process can open it in between: an
/// opener blocked on its shared lock then sees the name gone and reports NotFound.
/// Any regular file under the name is collected, valid or corrupt, as long as nobody holds it;
/// a sweep over every name (`mpx gc`) uses [`collect_valid`] instead, which leaves alone files
/// that are not valid mpx objects.
pub fn collect(obj_name: &str) -> Result<Collected> {
    decide(obj_name, Policy::AnyFile)
}

/// Like [`collect`], but removes only valid mpx objects (the header validates and the segment
/// was published) unless `invalid` says otherwise. Validity and ownership are judged on the
/// file itself under the exclusive lock, not on an earlier listing.
pub fn collect_valid(obj_name: &str, invalid: InvalidFiles) -> Result<Collected> {
    decide(obj_name, Policy::Valid(invalid))
}

/// What [`collect`] would do with a listed object, without removing or locking anything (the
/// answer can change the next moment). Reports the errors a real run would meet, such as
/// another user's object.
pub fn would_collect(info: &ObjectInfo) -> Result<Collected> {
    predict(info, Policy::AnyFile)
}

/// What [`collect_valid`] would do with a listed object (see [`would_collect`]).
pub fn would_collect_valid(info: &ObjectInfo, invalid: InvalidFiles) -> Result<Collected> {
    predict(info, Policy::Valid(invalid))
}

/// Which regular files nobody holds may be removed.
#[derive(Clone, Copy)]
enum Policy {
    /// Any (the historical meaning of [`collect`]).
    AnyFile,
    /// Valid objects; invalid files as the caller said.
    Valid(InvalidFiles),
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn predict(info: &ObjectInfo, policy: Policy) -> Result<Collected> {
    if !info.regular {
        return Ok(Collected::NotAFile);
    }
    if info.in_use {
        return Ok(Collected::InUse);
    }
    if !info.readable {
        return Err(err!(Permission, "'{}': {}", info.name, info.problem.as_deref().unwrap_or("cannot be opened")));
    }
    let euid = euid();
    if let Policy::Valid(invalid) = policy {
        if info.kind.is_none() {
            match invalid {
                InvalidFiles::Keep => return Ok(Collected::Invalid),
                InvalidFiles::RemoveOwn if info.uid != euid => return Ok(Collected::NotOwned),
                InvalidFiles::RemoveOwn => {}
            }
        }
    }
    // /dev/shm is sticky: only the owner (or root) may remove a name.
    if euid != 0 && euid != info.uid {
        return Err(err!(Permission, "'{}': owned by uid {}, cannot be removed by uid {euid}", info.name, info.uid));
    }
    Ok(Collected::Removed)
}

/// Whether the open file is a valid, published mpx segment: the same test as [`inspect`]'s
/// (a `kind` there), read from this descriptor.
fn is_valid(file: &std::fs::File, len: u64) -> bool {
    if len < HEADER_SIZE as u64 {
        return false;
    }
    let mut raw = vec![0u64; HEADER_SIZE / 8];
    // SAFETY: a u64 buffer viewed as bytes (aligned for Header, whose fields need <= 8).
    let bytes = unsafe { std::slice::from_raw_parts_mut(raw.as_mut_ptr().cast::<u8>(), HEADER_SIZE) };
    if file.read_exact_at(bytes, 0).is_err() {
        return false;
    }
    // SAFETY: Header is repr(C) plain data of HEADER_SIZE bytes; any bit pattern is a value.
    let h: &Header = unsafe { &*(raw.as_ptr() as *const Header) };
    h.ready.load(std::sync::atomic::Ordering::Relaxed) == READY && h.validate(len, "").is_ok()
}

fn decide(obj_name: &str, policy: Policy) -> Result<Collected> {
    name::validate(obj_name)?;
    let path = name::path_of(obj_name);
    let quoted = format!("'{obj_name}'");
    let lmeta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Collected::Gone),
        Err(e) => return Err(Error::from(e).context(&quoted)),
    };
    if !lmeta.file_type().is_file() {
        return Ok(Collected::NotAFile);
    }
    let file = match open_nofollow(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Collected::Gone),
        Err(e) => return Err(Error::from(e).context(&quoted)),
    };
    // Released when `file` closes, after the unlink.
    if super::segment::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB).is_err() {
        return Ok(Collected::InUse);
    }
    // Same file still under the name? (Someone may have replaced it since we opened.)
    let mine = file.metadata()?;
    let same =
        std::fs::symlink_metadata(&path).map(|m| m.ino() == mine.ino() && m.dev() == mine.dev()).unwrap_or(false);
    if !same {
        return Ok(Collected::Gone);
    }
    // Judged under the lock: a creator initialising it would hold a shared lock, and one that
    // has not locked yet finds its file gone after a removal and creates it again.
    if let Policy::Valid(invalid) = policy {
        if !mine.file_type().is_file() {
            return Ok(Collected::NotAFile);
        }
        if !is_valid(&file, mine.len()) {
            match invalid {
                InvalidFiles::Keep => return Ok(Collected::Invalid),
                InvalidFiles::RemoveOwn if mine.uid() != euid() => return Ok(Collected::NotOwned),
                InvalidFiles::RemoveOwn => {}
            }
        }
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(Collected::Removed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Collected::Gone),
        Err(e) => Err(Error::from(e).context(format!("{quoted}: unlink"))),
    }
}

/// Removes `obj_name` if (and only if) no live process uses it (see [`collect`]). Returns
/// whether it was removed.
pub fn remove_if_unused(obj_name: &str) -> Result<bool> {
    Ok(collect(obj_name)? == Collected::Removed)
}

/// Who holds liveness locks on which files, gathered once per listing.
struct Users {
    /// (major, minor, inode) -> pids from /proc/locks.
    locks: HashMap<(u32, u32, u64), Vec<i32>>,
    /// (dev, inode) -> pids whose descriptor for that file holds a flock.
    fds: HashMap<(u64, u64), Vec<i32>>,
    /// (major, minor, inode) -> pids that have the file mapped.
    maps: HashMap<(u32, u32, u64), Vec<i32>>,
    /// Processes whose descriptors we could inspect.
    inspected: HashSet<i32>,
}

impl Users {
    fn scan() -> Users {
        let mut u =
            Users { locks: HashMap::new(), fds: HashMap::new(), maps: HashMap::new(), inspected: HashSet::new() };
        if let Ok(text) = std::fs::read_to_string("/proc/locks") {
            for (key, pid) in text.lines().filter_map(parse_lock_line) {
                u.locks.entry(key).or_default().push(pid);
            }
        }
        let shm_prefix = format!("{}/", name::SHM_DIR);
        let Ok(procs) = std::fs::read_dir("/proc") else { return u };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            let fd_dir = format!("/proc/{pid}/fd");
            let Ok(fds) = std::fs::read_dir(&fd_dir) else { continue };
            u.inspected.insert(pid);
            // A mapping keeps its open file description, and that description's lock, alive:
            // a forked child that inherited a mapping is a user even with no descriptor left.
            if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
                for key in maps.lines().filter(|l| l.contains(&shm_prefix)).filter_map(parse_maps_line) {
                    let v = u.maps.entry(key).or_default();
                    if !v.contains(&pid) {
                        v.push(pid);
                    }
                }
            }
            for fd in fds.flatten() {
                // Cheap filter first: only descriptors of files under /dev/shm.
                let Ok(target) = std::fs::read_link(fd.path()) else { continue };
                if !target.to_string_lossy().starts_with(&shm_prefix) {
                    continue;
                }
                let Ok(meta) = std::fs::metadata(fd.path()) else { continue };
                let fdinfo = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
                // A descriptor counts only if its open file description holds a flock: an fd
                // opened just to look (like ours) is not a user.
                let holds = std::fs::read_to_string(fdinfo)
                    .map(|t| t.lines().any(|l| l.starts_with("lock:") && l.contains("FLOCK")))
                    .unwrap_or(false);
                if holds {
                    let v = u.fds.entry((meta.dev(), meta.ino())).or_default();
                    if !v.contains(&pid) {
                        v.push(pid);
                    }
                }
            }
        }
        u
    }

    /// Whether any lock on the file (dev, ino) is visible in /proc/locks or a descriptor's
    /// fdinfo. (A lock whose original owner died, kept by an inheriting child of another pid
    /// namespace, is visible in neither: hence the probe fallback.)
    fn locked(&self, dev: u64, ino: u64) -> bool {
        self.fds.contains_key(&(dev, ino)) || self.locks.contains_key(&(libc::major(dev), libc::minor(dev), ino))
    }

    /// Live processes holding a flock on the file (dev, ino).
    fn holders(&self, dev: u64, ino: u64) -> Vec<i32> {
        let mut pids: Vec<i32> = self.fds.get(&(dev, ino)).cloned().unwrap_or_default();
        let key = (libc::major(dev), libc::minor(dev), ino);
        pids.extend(self.maps.get(&key).map(|v| v.as_slice()).unwrap_or(&[]));
        for &pid in self.locks.get(&key).map(|v| v.as_slice()).unwrap_or(&[]) {
            // /proc/locks names the process that took the lock, which may have died while a
            // child keeps the inherited descriptor; and its pid may have been reused. Trust it
            // only for live processes we could not inspect ourselves.
            if !self.inspected.contains(&pid) && crate::util::pid_alive(pid) {
                pids.push(pid);
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

/// Parses "1: FLOCK  ADVISORY  READ  1234 00:19:5678 0 EOF" into ((major, minor, inode), pid).
/// Major and minor are hex, the inode decimal. Blocked waiters ("1: -> FLOCK ...") hold nothing.
fn parse_lock_line(line: &str) -> Option<((u32, u32, u64), i32)> {
    let mut f = line.split_whitespace();
    f.next()?; // "1:"
    if f.next()? != "FLOCK" {
        return None;
    }
    f.next()?; // ADVISORY
    f.next()?; // READ / WRITE
    let pid: i32 = f.next()?.parse().ok()?;
    let mut dev_ino = f.next()?.split(':');
    let major = u32::from_str_radix(dev_ino.next()?, 16).ok()?;
    let minor = u32::from_str_radix(dev_ino.next()?, 16).ok()?;
    let ino: u64 = dev_ino.next()?.parse().ok()?;
    (pid > 0).then_some(((major, minor, ino), pid))
}

/// Parses "7f..-7f.. rw-s 00000000 00:19 5678  /dev/shm/mpx.x" into (major, minor, inode).
fn parse_maps_line(line: &str) -> Option<(u32, u32, u64)> {
    let mut f = line.split_whitespace();
    f.next()?; // range
    f.next()?; // perms
    f.next()?; // offset
    let (major, minor) = f.next()?.split_once(':')?;
    let ino: u64 = f.next()?.parse().ok()?;
    Some((u32::from_str_radix(major, 16).ok()?, u32::from_str_radix(minor, 16).ok()?, ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_locks() {
        assert_eq!(parse_lock_line("1: FLOCK  ADVISORY  READ  1234 00:19:5678 0 EOF"), Some(((0, 0x19, 5678), 1234)));
        assert_eq!(parse_lock_line("2: -> FLOCK  ADVISORY  WRITE 99 00:19:5678 0 EOF"), None);
        assert_eq!(parse_lock_line("3: POSIX  ADVISORY  WRITE 99 fd:01:77 0 EOF"), None);
        assert_eq!(parse_lock_line("4: FLOCK  ADVISORY  READ  -1 00:19:5678 0 EOF"), None);
        assert_eq!(parse_lock_line("garbage"), None);
        assert_eq!(
            parse_maps_line("7f00-7f10 rw-s 00000000 00:1b 835                        /dev/shm/mpx.x (deleted)"),
            Some((0, 0x1b, 835))
        );
        assert_eq!(parse_maps_line("7f00-7f10 r-xp"), None);
    }
}
