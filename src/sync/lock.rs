//! [`Lock`]: a mutex shared between processes, releasable from any process (like Python's
//! multiprocessing.Lock), that a waiter takes over when its holder dies; and [`RawLock`], the
//! state both Lock and RLock (and the locks inside Condition, Value and the undo semaphore) use.
//!
//! State (64 bytes, at the start of the data area):
//! ```text
//! offset size field
//!      0    4 word    futex word: holder pid (bits 0..29, 0 = free) | WAITERS (bit 31)
//!      4    4 count   RLock recursion depth
//!      8    8 owner   holder's token (pid << 32 | start time), 0 while being handed over
//!     16    8 thread  holder's thread (pthread_self; RLock identity, Condition's "is mine")
//!     24    8 woken_at  CLOCK_MONOTONIC ns of the last FUTEX_WAKE (wait::wake: what a wake costs)
//!     32   32 reserved
//! ```
//! Acquire is one CAS 0 -> pid plus two plain stores; release clears owner and thread and swaps
//! the word to 0, and calls FUTEX_WAKE only when WAITERS is set. A waiter spins briefly, then
//! sets WAITERS and sleeps in slices (1 ms doubling to 20 ms); each time a slice runs out with
//! the same holder it checks the holder's liveness (owner::alive) and, if it died, takes the lock
//! over with a CAS from the dead word, reporting OwnerDied.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

use super::owner::{self, Me, PID_BITS};
use super::Acquired;
use crate::object::{Kind, Layout, Mapped, Object, Segment};
use crate::wait::{futex, wake, Backoff, Deadline, Spin, Timeout};
use crate::{err, Error, Result};

pub(crate) const PID_MASK: u32 = (1 << PID_BITS) - 1;
pub(crate) const WAITERS: u32 = 1 << 31;

/// The shared state of a lock (see the module docs for the layout).
#[repr(C, align(64))]
pub(crate) struct RawLock {
    word: AtomicU32,
    count: AtomicU32,
    owner: AtomicU64,
    thread: AtomicU64,
    woken_at: AtomicU64,
    _reserved: [u64; 4],
}

const _: () = assert!(std::mem::size_of::<RawLock>() == 64);

#[cold]
#[inline(never)]
fn not_held() -> Error {
    err!(State, "released while not held")
}

impl RawLock {
    /// Acquires. `recursive`: RLock semantics (the owning thread may acquire again).
    #[inline(always)]
    pub(crate) fn acquire(&self, recursive: bool, timeout: Timeout, spin: &Spin) -> Result<Acquired> {
        let me = owner::me();
        if recursive && self.is_mine_as(&me) {
            return self.reenter();
        }
        if self.word.compare_exchange(0, me.pid, Acquire, Relaxed).is_ok() {
            self.publish(&me, recursive);
            return Ok(Acquired::Clean);
        }
        self.acquire_slow(&me, recursive, Deadline::new(timeout), spin)
    }

    /// Takes a free lock with one CAS, or returns false (then call `acquire`). Cannot fail or
    /// panic: the C ABI runs it before its panic guard.
    #[inline(always)]
    pub(crate) fn try_fast(&self, recursive: bool) -> bool {
        let me = owner::me();
        if self.word.compare_exchange(0, me.pid, Acquire, Relaxed).is_ok() {
            self.publish(&me, recursive);
            return true;
        }
        false
    }

    /// Releases a held lock (any holder: the caller checked ownership if it must), waking a
    /// sleeper if there is one, or returns false if it was not held (then call `release` for
    /// the error). Cannot fail or panic.
    #[inline(always)]
    pub(crate) fn try_release_fast(&self) -> bool {
        if self.word.load(Relaxed) & PID_MASK == 0 {
            return false;
        }
        // Once the fields are cleared the release must complete: a swap, never a CAS that
        // could fail and leave a held lock without its owner.
        self.owner.store(0, Relaxed);
        self.thread.store(0, Relaxed);
        self.count.store(0, Relaxed);
        let prev = self.word.swap(0, Release);
        if prev & WAITERS != 0 {
            self.wake_one();
        }
        prev & PID_MASK != 0
    }

    /// RLock: re-enters or takes a free lock, or returns false. Cannot fail or panic.
    #[inline(always)]
    pub(crate) fn try_fast_recursive(&self) -> bool {
        let me = owner::me();
        if self.is_mine_as(&me) {
            let c = self.count.load(Relaxed);
            if c == u32::MAX {
                return false;
            }
            self.count.store(c.max(1) + 1, Relaxed);
            return true;
        }
        if self.word.compare_exchange(0, me.pid, Acquire, Relaxed).is_ok() {
            self.publish(&me, true);
            return true;
        }
        false
    }

    /// RLock: releases one level held by the calling thread when no one waits, or returns
    /// false. Cannot fail or panic.
    #[inline(always)]
    pub(crate) fn try_release_fast_recursive(&self) -> bool {
        let me = owner::me();
        if !self.is_mine_as(&me) {
            return false;
        }
        let c = self.count.load(Relaxed);
        if c > 1 {
            self.count.store(c - 1, Relaxed);
            return true;
        }
        self.try_release_fast()
    }

    #[inline]
    fn reenter(&self) -> Result<Acquired> {
        let c = self.count.load(Relaxed);
        if c == u32::MAX {
            return Err(err!(Invalid, "recursion depth limit ({}) reached", u32::MAX));
        }
        // A corrupt count of 0 while we hold it counts as 1.
        self.count.store(c.max(1) + 1, Relaxed);
        Ok(Acquired::Clean)
    }

    /// Records the new holder (after the CAS that made it the holder).
    #[inline(always)]
    fn publish(&self, me: &Me, recursive: bool) {
        self.owner.store(me.token, Relaxed);
        self.thread.store(me.thread, Relaxed);
        if recursive {
            self.count.store(1, Relaxed);
        }
    }

    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, me: &Me, recursive: bool, deadline: Deadline, spin: &Spin) -> Result<Acquired> {
        let got = spin.until_backoff(&deadline, || {
            let w = self.word.load(Relaxed);
            w & PID_MASK == 0 && self.word.compare_exchange(w, me.pid | (w & WAITERS), Acquire, Relaxed).is_ok()
        });
        if got {
            self.publish(me, recursive);
            return Ok(Acquired::Clean);
        }
        let mut backoff = Backoff::new();
        // The holder seen before the last sleep, and whether that sleep ran its full slice.
        let mut watched = 0u32;
        let mut slept_out = false;
        loop {
            let w = self.word.load(Relaxed);
            let pid = w & PID_MASK;
            if pid == 0 {
                // Free. Take it with WAITERS set: others may sleep and nobody else will wake them.
                if self.word.compare_exchange(w, me.pid | WAITERS, Acquire, Relaxed).is_ok() {
                    self.publish(me, recursive);
                    return Ok(Acquired::Clean);
                }
                continue;
            }
            if (deadline.is_try() || (slept_out && pid == watched)) && !self.holder_alive(pid) {
                // Take over from the dead holder; the CAS fails if anything changed meanwhile.
                if self.word.compare_exchange(w, me.pid | (w & WAITERS), Acquire, Relaxed).is_ok() {
                    self.publish(me, true);
                    return Ok(Acquired::OwnerDied { pid });
                }
                continue;
            }
            if deadline.expired() {
                return Err(err!(Timeout, "timed out waiting for the lock (held by pid {pid})"));
            }
            if w & WAITERS == 0 && self.word.compare_exchange(w, w | WAITERS, Relaxed, Relaxed).is_err() {
                continue;
            }
            watched = pid;
            let slice = backoff.next();
            let d = deadline.slice(slice);
            let timed_out = futex::wait(&self.word, w | WAITERS, Some(d));
            if !timed_out {
                wake::observe(self.woken_at.load(Relaxed));
            }
            slept_out = timed_out && d == slice;
        }
    }

    /// Whether the process `pid` seen in the word still holds the lock. The owner token (with the
    /// start time) is used when it names the same pid; otherwise the holder is between its CAS
    /// and publishing the token, and only the pid can be checked.
    fn holder_alive(&self, pid: u32) -> bool {
        let tok = self.owner.load(Acquire);
        if owner::token_pid(tok) == pid {
            owner::token_alive(tok)
        } else {
            owner::alive(pid, 0)
        }
    }

    /// Releases. Lock (`recursive` false): any process or thread may release a held lock.
    /// RLock: only the owning thread, and the lock is freed when the depth drops to 0.
    #[inline(always)]
    pub(crate) fn release(&self, recursive: bool) -> Result<()> {
        if recursive {
            return self.release_recursive();
        }
        if self.word.load(Relaxed) & PID_MASK == 0 {
            return Err(not_held());
        }
        self.unlock()
    }

    #[inline]
    fn release_recursive(&self) -> Result<()> {
        let me = owner::me();
        if !self.is_mine_as(&me) {
            return Err(self.not_mine());
        }
        let c = self.count.load(Relaxed);
        if c > 1 {
            self.count.store(c - 1, Relaxed);
            return Ok(());
        }
        self.unlock()
    }

    #[cold]
    #[inline(never)]
    fn not_mine(&self) -> Error {
        match self.word.load(Relaxed) & PID_MASK {
            0 => not_held(),
            pid => err!(State, "cannot release a recursive lock held by another thread or process (pid {pid})"),
        }
    }

    /// Frees the lock whatever its depth.
    #[inline(always)]
    fn unlock(&self) -> Result<()> {
        self.owner.store(0, Relaxed);
        self.thread.store(0, Relaxed);
        self.count.store(0, Relaxed);
        let prev = self.word.swap(0, Release);
        if prev & WAITERS != 0 || prev & PID_MASK == 0 {
            return self.unlock_slow(prev);
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn unlock_slow(&self, prev: u32) -> Result<()> {
        if prev & WAITERS != 0 {
            self.wake_one();
        }
        if prev & PID_MASK == 0 {
            // Another release got there first (two releases of one acquisition).
            return Err(not_held());
        }
        Ok(())
    }

    /// Wakes one sleeper, stamping the time so that it can tell what the wake cost (wait::wake).
    #[inline]
    fn wake_one(&self) {
        self.woken_at.store(wake::stamp(), Relaxed);
        futex::wake(&self.word, 1);
    }

    /// Whether the calling thread holds it (pid, start time and thread all match).
    #[inline(always)]
    fn is_mine_as(&self, me: &Me) -> bool {
        self.word.load(Relaxed) & PID_MASK == me.pid
            && self.thread.load(Relaxed) == me.thread
            && self.owner.load(Relaxed) == me.token
    }

    pub(crate) fn is_mine(&self) -> bool {
        self.is_mine_as(&owner::me())
    }

    pub(crate) fn is_locked(&self) -> bool {
        self.word.load(Relaxed) & PID_MASK != 0
    }

    /// The holder's pid (0 when free).
    pub(crate) fn holder(&self) -> u32 {
        self.word.load(Relaxed) & PID_MASK
    }

    /// Recursion depth held by the calling thread (0 if it does not hold the lock).
    pub(crate) fn depth(&self) -> u32 {
        if self.is_mine() {
            self.count.load(Relaxed).max(1)
        } else {
            0
        }
    }

    /// For Condition.wait: frees the lock the calling thread holds, whatever its depth, and
    /// returns the depth to restore.
    pub(crate) fn release_save(&self) -> Result<u32> {
        if !self.is_mine() {
            return Err(err!(State, "the lock is not held by this thread"));
        }
        let depth = self.count.load(Relaxed).max(1);
        self.unlock()?;
        Ok(depth)
    }

    /// For Condition.wait: acquires (without limit) and restores the depth.
    pub(crate) fn acquire_restore(&self, depth: u32, spin: &Spin) -> Result<Acquired> {
        let me = owner::me();
        let a = if self.word.compare_exchange(0, me.pid, Acquire, Relaxed).is_ok() {
            self.publish(&me, true);
            Acquired::Clean
        } else {
            self.acquire_slow(&me, true, Deadline::new(Timeout::Forever), spin)?
        };
        self.count.store(depth.max(1), Relaxed);
        Ok(a)
    }

    /// Tests: make the word say `pid` holds it (as a process that died holding it would leave).
    #[cfg(test)]
    pub(crate) fn force_holder(&self, pid: u32) {
        self.word.store(pid, SeqCst);
    }
}

/// A lock shared between processes. Any process may release it (as in Python); a process that
/// dies holding it does not block the others: the next waiter gets it with
/// [`Acquired::OwnerDied`]. Not recursive: acquiring it twice from one thread waits for the
/// timeout. Dropping the handle does not release the lock.
pub struct Lock {
    m: Mapped<RawLock>,
    spin: Spin,
}

impl Object for Lock {
    const KIND: Kind = Kind::Lock;
    type Spec<'a> = ();

    fn layout(_: &()) -> Result<Layout> {
        Ok(Layout::of::<RawLock>([0; 4]))
    }

    fn attach(seg: Segment) -> Result<Lock> {
        Ok(Lock { m: Mapped::new(seg, 0)?, spin: Spin::new() })
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

impl Lock {
    #[inline(always)]
    pub(crate) fn raw(&self) -> &RawLock {
        self.m.state()
    }

    /// Acquires, waiting at most `timeout` (Timeout::After(ZERO) tries once). Timeout is an
    /// error of kind Timeout; a takeover from a dead holder is Ok(Acquired::OwnerDied).
    #[inline]
    pub fn acquire(&self, timeout: impl Into<Timeout>) -> Result<Acquired> {
        self.raw().acquire(false, timeout.into(), &self.spin).map_err(|e| e.context(self.describe()))
    }

    /// Tries once without waiting (a holder found dead is taken over).
    pub fn try_acquire(&self) -> Result<Acquired> {
        self.acquire(Duration::ZERO)
    }

    /// Releases. Any process may release a held lock; releasing a free lock is a State error.
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.raw().release(false).map_err(|e| e.context(self.describe()))
    }

    /// Whether some process holds it now.
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// Whether the calling thread is the holder.
    pub fn is_mine(&self) -> bool {
        self.raw().is_mine()
    }

    /// The holder's pid, if it is held.
    pub fn holder_pid(&self) -> Option<u32> {
        Some(self.raw().holder()).filter(|&p| p != 0)
    }

    /// Acquires without limit and returns a guard that releases on drop, with how the
    /// acquisition went.
    pub fn lock(&self) -> Result<(LockGuard<'_>, Acquired)> {
        let a = self.acquire(Timeout::Forever)?;
        Ok((LockGuard { lock: self }, a))
    }
}

/// Releases its [`Lock`] when dropped.
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}
