//! [`RLock`]: a recursive lock shared between processes. The owner is a thread of a process
//! (pid, start time and thread id); it may acquire again and must release as often. Only the
//! owner may release. Same state and owner-death takeover as [`super::Lock`] (a thread that
//! exits holding it inside a live process is not detected, as in Python).

use std::time::Duration;

use super::lock::RawLock;
use super::Acquired;
use crate::object::{Kind, Layout, Mapped, Object, Segment};
use crate::wait::{Spin, Timeout};
use crate::Result;

pub struct RLock {
    m: Mapped<RawLock>,
    spin: Spin,
}

impl Object for RLock {
    const KIND: Kind = Kind::RLock;
    type Spec<'a> = ();

    fn layout(_: &()) -> Result<Layout> {
        Ok(Layout::of::<RawLock>([0; 4]))
    }

    fn attach(seg: Segment) -> Result<RLock> {
        Ok(RLock { m: Mapped::new(seg, 0)?, spin: Spin::new() })
    }

    fn segment(&self) -> &Segment {
        self.m.segment()
    }

    fn summary(&self) -> Option<String> {
        Some(match self.holder_pid() {
            Some(pid) => format!("held by pid {pid}"),
            None => "free".into(),
        })
    }
}

impl RLock {
    #[inline(always)]
    pub(crate) fn raw(&self) -> &RawLock {
        self.m.state()
    }

    /// Acquires (again, if the calling thread owns it), waiting at most `timeout`.
    #[inline]
    pub fn acquire(&self, timeout: impl Into<Timeout>) -> Result<Acquired> {
        self.raw().acquire(true, timeout.into(), &self.spin).map_err(|e| e.context(self.describe()))
    }

    pub fn try_acquire(&self) -> Result<Acquired> {
        self.acquire(Duration::ZERO)
    }

    /// Releases one level. Releasing a lock the calling thread does not own is a State error.
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.raw().release(true).map_err(|e| e.context(self.describe()))
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
