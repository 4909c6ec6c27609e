//! Listing and collecting objects without a tracker process: what `mpx ls`, `mpx info` and
//! `mpx gc` are built on.

use std::os::fd::AsRawFd;

use super::header::{Header, HEADER_SIZE, READY};
use super::{name, Kind};
use crate::{err, Error, Result};

/// What can be told about one object in /dev/shm without trusting it.
#[derive(Clone, Debug)]
pub struct ObjectInfo {
    pub name: String,
    /// None when the header could not be read or validated (see `problem`).
    pub kind: Option<Kind>,
    /// Bytes of the whole segment file.
    pub file_size: u64,
    /// Bytes of the kind's area (for a buffer: its size).
    pub data_size: u64,
    pub creator_pid: i32,
    pub created_ns: u64,
    /// Whether some live process holds the object open (its liveness lock).
    pub in_use: bool,
    /// Processes holding it, from /proc/locks (best effort; a forked child sharing its
    /// parent's descriptor shows as the parent).
    pub users: Vec<i32>,
    pub mode: u32,
    /// Why the segment is not a valid mpx object, if it is not.
    pub problem: Option<String>,
}

/// Inspects one object by name.
pub fn inspect(obj_name: &str) -> Result<ObjectInfo> {
    name::validate(obj_name)?;
    let path = name::path_of(obj_name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => err!(NotFound, "'{obj_name}': no such object"),
            _ => Error::from(e).context(format!("'{obj_name}'")),
        })?;
    let meta = file.metadata()?;
    let mut info = ObjectInfo {
        name: obj_name.to_string(),
        kind: None,
        file_size: meta.len(),
        data_size: 0,
        creator_pid: 0,
        created_ns: 0,
        in_use: super::segment::in_use(file.as_raw_fd()),
        users: lock_holders(meta.ino()),
        mode: meta.mode() & 0o7777,
        problem: None,
    };
    if meta.len() < HEADER_SIZE as u64 {
        info.problem = Some(format!("truncated: {} bytes, shorter than the header", meta.len()));
        return Ok(info);
    }
    let mut raw = [0u8; HEADER_SIZE];
    file.read_exact_at(&mut raw, 0)?;
    // SAFETY: Header is repr(C) plain data of HEADER_SIZE bytes; any bit pattern is a value
    // (the AtomicU32 is read as an integer), and we only read it after validation.
    let h: &Header = unsafe { &*(raw.as_ptr() as *const Header) };
    info.creator_pid = h.creator_pid;
    if h.ready.load(std::sync::atomic::Ordering::Relaxed) != READY {
        info.problem = Some("not initialised (creation in progress, or its creator died)".into());
        return Ok(info);
    }
    match h.validate(meta.len(), &format!("'{obj_name}'")) {
        Ok(kind) => {
            info.kind = Some(kind);
            info.data_size = h.data_size;
            info.created_ns = h.created_ns;
        }
        Err(e) => info.problem = Some(e.message().to_string()),
    }
    Ok(info)
}

use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};

/// Every object in /dev/shm, sorted by name. Entries that vanish while listing are skipped.
pub fn list() -> Result<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(name::SHM_DIR)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(s) = file_name.to_str() else { continue };
        let Some(obj) = s.strip_prefix(name::FILE_PREFIX) else { continue };
        if name::validate(obj).is_err() {
            continue;
        }
        match inspect(obj) {
            Ok(info) => out.push(info),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes `obj_name` if (and only if) no live process uses it, deciding under an exclusive lock
/// so that no process can open it in between. Returns whether it was removed.
pub fn remove_if_unused(obj_name: &str) -> Result<bool> {
    name::validate(obj_name)?;
    let path = name::path_of(obj_name);
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::from(e).context(format!("'{obj_name}'"))),
    };
    let fd = file.as_raw_fd();
    // SAFETY: flock on our own fd; released when `file` closes.
    if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Ok(false);
    }
    // Same file still under the name? (Someone may have replaced it since we opened.)
    let same = std::fs::symlink_metadata(&path)
        .map(|m| m.ino() == file.metadata().map(|f| f.ino()).unwrap_or(0))
        .unwrap_or(false);
    if !same {
        return Ok(false);
    }
    std::fs::remove_file(&path)?;
    Ok(true)
}

/// Pids holding a FLOCK on the inode, from /proc/locks ("1: FLOCK ADVISORY READ 1234 00:19:5678 0 EOF").
fn lock_holders(ino: u64) -> Vec<i32> {
    let Ok(text) = std::fs::read_to_string("/proc/locks") else { return Vec::new() };
    let mut pids: Vec<i32> = text
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            f.next()?; // "1:"
            let mut kind = f.next()?;
            if kind == "->" {
                kind = f.next()?; // a blocked waiter line
            }
            if kind != "FLOCK" {
                return None;
            }
            f.next()?; // ADVISORY
            f.next()?; // READ / WRITE
            let pid: i32 = f.next()?.parse().ok()?;
            let dev_ino = f.next()?;
            let file_ino: u64 = dev_ino.rsplit(':').next()?.parse().ok()?;
            (file_ino == ino && pid > 0).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}
