//! [`RLock`]: a recursive lock shared between processes. The owner is a thread of a process
//! (pid, start time and thread id); it may acquire again and must release as often. Only the
//! owner may release. Same state and owner-death takeover as [`super::Lock`] (a thread that
//! exits holding it inside a live process is not detected, as in Python).

use std::ptr::NonNull;
use std::time::Duration;

use super::lock::RawLock;
use super::{create_segment, open_segment, segment_accessors, state_ptr, Acquired};
use crate::object::{Flags, Kind, Segment};
use crate::util::Timeout;
use crate::Result;

pub struct RLock {
    seg: Segment,
    st: NonNull<RawLock>,
}

segment_accessors!(RLock);

impl RLock {
    fn size() -> usize {
        std::mem::size_of::<RawLock>()
    }

    fn wrap(seg: Segment) -> Result<RLock> {
        let st = state_ptr::<RawLock>(&seg, Self::size())?;
        Ok(RLock { seg, st })
    }

    /// Creates a named recursive lock (free).
    pub fn create(name: &str, flags: Flags) -> Result<RLock> {
        Self::wrap(create_segment(Some(name), Kind::RLock, Self::size(), [0; 4], flags, |_| Ok(()))?)
    }

    /// Creates an anonymous recursive lock: share it with a child by fd.
    pub fn create_anonymous() -> Result<RLock> {
        Self::wrap(create_segment(None, Kind::RLock, Self::size(), [0; 4], Flags::default(), |_| Ok(()))?)
    }

    pub fn open(name: &str, flags: Flags) -> Result<RLock> {
        Self::wrap(open_segment(Some(name), -1, Kind::RLock, flags, false)?)
    }

    pub fn from_fd(fd: std::os::fd::RawFd, flags: Flags) -> Result<RLock> {
        Self::wrap(open_segment(None, fd, Kind::RLock, flags, false)?)
    }

    pub(crate) fn raw(&self) -> &RawLock {
        // SAFETY: checked by state_ptr; the mapping lives as long as self.
        unsafe { self.st.as_ref() }
    }

    /// Acquires (again, if the calling thread owns it), waiting at most `timeout`.
    #[inline]
    pub fn acquire(&self, timeout: impl Into<Timeout>) -> Result<Acquired> {
        self.raw().acquire(true, timeout.into()).map_err(|e| e.context(self.seg.describe()))
    }

    pub fn try_acquire(&self) -> Result<Acquired> {
        self.acquire(Duration::ZERO)
    }

    /// Releases one level. Releasing a lock the calling thread does not own is a State error.
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.raw().release(true).map_err(|e| e.context(self.seg.describe()))
    }

    /// Recursion depth held by the calling thread (0 if it is not the owner).
    pub fn depth(&self) -> u32 {
        self.raw().depth()
    }

    /// Whether any thread of any process holds it.
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// Whether the calling thread owns it.
    pub fn is_mine(&self) -> bool {
        self.raw().is_mine()
    }

    /// The owner's pid, if it is held.
    pub fn holder_pid(&self) -> Option<u32> {
        Some(self.raw().holder()).filter(|&p| p != 0)
    }
}
