//! Small OS helpers shared by the capabilities.

use std::time::{Duration, Instant};

use crate::{Error, Result};

/// Turns a -1-on-error libc return into a Result with the errno.
pub(crate) fn cvt(r: libc::c_int) -> Result<libc::c_int> {
    if r < 0 {
        Err(Error::last_os("system call"))
    } else {
        Ok(r)
    }
}

/// Nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Whether a process with this pid exists (zombies count as existing until reaped).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || crate::error::errno() == libc::EPERM
}

/// A timeout in the C ABI's convention: negative = forever, 0 = do not block, n = n nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    Forever,
    After(Duration),
}

impl Timeout {
    pub fn from_ns(ns: i64) -> Timeout {
        if ns < 0 {
            Timeout::Forever
        } else {
            Timeout::After(Duration::from_nanos(ns as u64))
        }
    }

    /// The instant this timeout ends, measured from now (None = never).
    pub fn deadline(self) -> Option<Instant> {
        match self {
            Timeout::Forever => None,
            Timeout::After(d) => Instant::now().checked_add(d),
        }
    }
}

impl From<Duration> for Timeout {
    fn from(d: Duration) -> Timeout {
        Timeout::After(d)
    }
}

impl From<Option<Duration>> for Timeout {
    fn from(d: Option<Duration>) -> Timeout {
        d.map_or(Timeout::Forever, Timeout::After)
    }
}
