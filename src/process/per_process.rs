//! State that belongs to one process and that a forked child must neither inherit nor find
//! locked: the parent's children, its reaper thread, its fork-server socket. A fork can happen
//! while another thread holds such a lock (Python's os.fork, a C program's fork), and the child
//! would then deadlock on it. So each access checks the pid: a forked child gets fresh state and
//! the parent's copy is leaked in the child, never used, never dropped (its descriptors and
//! children are the parent's).

use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

pub(crate) struct Slot<T> {
    pid: u32,
    state: Mutex<T>,
    /// For threads that wait on the state (the reaper).
    pub(crate) wake: Condvar,
}

impl<T> Slot<T> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) struct PerProcess<T> {
    slot: AtomicPtr<Slot<T>>,
    init: fn() -> T,
}

impl<T> PerProcess<T> {
    pub(crate) const fn new(init: fn() -> T) -> PerProcess<T> {
        PerProcess { slot: AtomicPtr::new(std::ptr::null_mut()), init }
    }

    /// This process's state, created on first use in each process.
    pub(crate) fn get(&'static self) -> &'static Slot<T> {
        let me = std::process::id();
        let cur = self.slot.load(Ordering::Acquire);
        // SAFETY: slots are leaked, never freed, so a loaded non-null pointer stays valid.
        if let Some(slot) = unsafe { cur.as_ref() } {
            if slot.pid == me {
                return slot;
            }
        }
        let fresh = Box::into_raw(Box::new(Slot { pid: me, state: Mutex::new((self.init)()), wake: Condvar::new() }));
        match self.slot.compare_exchange(cur, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: `fresh` is now installed and, like every slot, never freed.
            Ok(_) => unsafe { &*fresh },
            Err(winner) => {
                // Another thread of this process installed one first: use it.
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: the installed slot is leaked, never freed.
                unsafe { &*winner }
            }
        }
    }
}

/// Whether the calling thread is the process's main thread (the one whose death is the
/// process's for PR_SET_PDEATHSIG purposes).
pub(crate) fn on_main_thread() -> bool {
    nix::unistd::gettid() == nix::unistd::getpid()
}
