//! Process-shared synchronization: [`Lock`], [`RLock`], [`Semaphore`] (bounded or not, with an
//! optional undo table), [`Condition`], [`Event`] and [`Barrier`]. Design notes: docs/SYNC.md.
//!
//! Every primitive is an object of the object model (it implements [`crate::object::Object`]:
//! a named or anonymous segment of its own kind) whose data area holds a small `repr(C)` state
//! of atomics. Waiting follows [`crate::wait`] on futex words in that state; the uncontended
//! paths are a compare-and-swap and make no system call. Nothing in
//! the state is trusted: a corrupt word makes an operation fail or behave as if the holder died,
//! never read out of bounds or loop without end.

pub(crate) mod owner;

mod barrier;
mod condition;
mod event;
mod lock;
mod rlock;
mod semaphore;

pub use barrier::{Arrival, Barrier, MAX_PARTIES};
pub use condition::{CondLock, Condition, Waiter};
pub use event::Event;
pub(crate) use lock::RawLock;
pub use lock::{Lock, LockGuard};
pub use rlock::RLock;
pub use semaphore::{Semaphore, SemaphoreSpec, MAX_VALUE, UNDO_SLOTS};

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
