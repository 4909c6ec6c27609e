//! Process-shared synchronization: [`Lock`], [`RLock`], [`Semaphore`] (bounded or not, with an
//! optional undo table), [`Condition`], [`Event`] and [`Barrier`]. Design notes: docs/SYNC.md.
//!
//! Every primitive is an object of the object model (a named or anonymous segment of its own
//! kind) whose data area holds a small `repr(C)` state of atomics. Waiting uses futex words in
//! that state; the uncontended paths are a compare-and-swap and make no system call. Nothing in
//! the state is trusted: a corrupt word makes an operation fail or behave as if the holder died,
//! never read out of bounds or loop without end.

pub(crate) mod futex;
pub(crate) mod owner;

mod barrier;
mod condition;
mod event;
mod lock;
mod rlock;
mod semaphore;

pub use barrier::{Barrier, MAX_PARTIES};
pub use condition::{CondLock, Condition};
pub use event::Event;
pub(crate) use lock::RawLock;
pub use lock::{Lock, LockGuard};
pub use rlock::RLock;
pub use semaphore::{Semaphore, SemaphoreSpec, MAX_VALUE, UNDO_SLOTS};

use std::os::fd::RawFd;

use crate::object::{Flags, Kind, Segment, SegmentSpec};
use crate::{err, Result};

/// How an acquisition went. `OwnerDied` means the caller now holds the lock, taken over from a
/// holder that died holding it: whatever the lock protected may be half-updated. In C this is the
/// status MPX_E_OWNER_DIED (negative, yet the lock is held).
#[must_use = "OwnerDied means the protected data may be inconsistent"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The usual case.
    Clean,
    /// Acquired from a holder that died; `pid` was its process id.
    OwnerDied { pid: u32 },
}

impl Acquired {
    pub fn owner_died(self) -> bool {
        matches!(self, Acquired::OwnerDied { .. })
    }

    /// Keeps the first OwnerDied seen over several acquisitions.
    pub(crate) fn or(self, other: Acquired) -> Acquired {
        if self.owner_died() {
            self
        } else {
            other
        }
    }
}

/// Alignment of every state: a cache line, so two objects never share one.
pub(crate) const STATE_ALIGN: usize = 64;

/// Where a new object goes: a name, or an anonymous memfd.
pub(crate) fn create_segment(
    name: Option<&str>,
    kind: Kind,
    data_size: usize,
    params: [u64; 4],
    flags: Flags,
    init: impl FnOnce(&Segment) -> Result<()>,
) -> Result<Segment> {
    let spec = SegmentSpec { kind, data_size, data_align: STATE_ALIGN, params };
    match name {
        Some(n) => Segment::create(n, spec, flags, init),
        None => {
            if flags.0 != 0 {
                return Err(err!(Invalid, "anonymous {kind}: flags {:#x} apply to named objects only", flags.0));
            }
            Segment::create_anonymous(spec, init)
        }
    }
}

/// Opens by name or fd and checks that the data area can hold `min_size` bytes at an aligned
/// offset before anyone makes a reference into it. `read_only_ok`: sync states are written by
/// every operation, so only a Value may be mapped read-only.
pub(crate) fn open_segment(
    name: Option<&str>,
    fd: RawFd,
    kind: Kind,
    flags: Flags,
    read_only_ok: bool,
) -> Result<Segment> {
    if !read_only_ok && flags.contains(Flags::READ_ONLY) {
        let what = name.map_or(format!("{kind} from fd {fd}"), |n| format!("{kind} '{n}'"));
        return Err(err!(Invalid, "{what}: a {kind} cannot be opened read-only (every operation writes it)"));
    }
    match name {
        Some(n) => Segment::open(n, kind, flags),
        None => Segment::from_fd(fd, kind, flags),
    }
}

/// The state at the start of the data area, checked for size and alignment. The pointer is
/// computed once here: the header lives in shared memory, so its offsets are read (and
/// validated) only at open time, never again.
pub(crate) fn state_ptr<T>(seg: &Segment, min_size: usize) -> Result<std::ptr::NonNull<T>> {
    let off = seg.data_offset();
    let size = seg.data_size();
    let need = min_size.max(std::mem::size_of::<T>());
    if off % STATE_ALIGN != 0 || off % std::mem::align_of::<T>() != 0 || size < need {
        return Err(err!(
            Corrupt,
            "{}: data area {size} bytes at offset {off} cannot hold the {need}-byte state",
            seg.describe()
        ));
    }
    // SAFETY: Segment validated data_offset + data_size <= mapping length at open/creation.
    Ok(std::ptr::NonNull::new(seg.data_ptr().cast::<T>()).expect("mapping is not null"))
}

/// Common accessors of every handle.
macro_rules! segment_accessors {
    ($t:ty) => {
        impl $t {
            /// The object's name (None for an anonymous object).
            pub fn name(&self) -> Option<&str> {
                self.seg.name()
            }

            /// The segment's fd, owned by this handle: pass it to a child (or over a Unix
            /// socket) and open it there with `from_fd`.
            pub fn fd(&self) -> std::os::fd::RawFd {
                self.seg.fd()
            }

            /// Removes this object's name (processes that have it open keep using it).
            pub fn unlink(&self) -> $crate::Result<()> {
                self.seg.unlink_self()
            }

            /// Removes an object's name.
            pub fn unlink_name(name: &str) -> $crate::Result<()> {
                $crate::object::Segment::unlink(name)
            }

            pub fn segment(&self) -> &$crate::object::Segment {
                &self.seg
            }
        }

        // SAFETY: the state is made of atomics in shared memory; the handle holds no
        // thread-affine data.
        unsafe impl Send for $t {}
        unsafe impl Sync for $t {}
    };
}
pub(crate) use segment_accessors;
