//! The two sides' locks: taking them (and taking a side over from a process that died holding
//! it), publishing through a side's journal, and waiting for the other side.

use std::sync::atomic::Ordering::*;
use std::time::Duration;

use super::shared::{Journal, Published};
use super::Queue;
use crate::sync::{owner, Acquired, RawLock};
use crate::wait::{Deadline, Signal, Timeout, LIVENESS_SLICE};
use crate::{err, Error, ErrorKind, Result};

/// How long a non-blocking call (timeout 0) may wait for the other holder of its side's lock,
/// which normally holds it for a few hundred nanoseconds. Long enough to take the lock over from
/// a holder that died (that needs one full 1 ms sleep slice), short enough to stay non-blocking
/// in spirit.
const TRY_LOCK_WAIT: Duration = Duration::from_millis(5);

/// The timeout of one call, and its deadline once something had to wait.
pub(super) struct Wait {
    timeout: Timeout,
    deadline: Option<Deadline>,
}

impl Wait {
    pub(super) fn new(timeout: Timeout) -> Wait {
        Wait { timeout, deadline: None }
    }

    pub(super) fn is_try(&self) -> bool {
        matches!(self.timeout, Timeout::After(d) if d.is_zero())
    }

    /// Whether a deadline was set (by a wait) and has passed. Never for a first attempt.
    pub(super) fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| d.expired())
    }

    fn deadline(&mut self) -> Deadline {
        *self.deadline.get_or_insert_with(|| Deadline::new(self.timeout))
    }

    /// What the side's lock may wait: a short while for a non-blocking call, else what is left.
    fn lock_timeout(&mut self) -> Timeout {
        if self.is_try() {
            return Timeout::After(TRY_LOCK_WAIT);
        }
        match self.deadline {
            None => self.timeout,
            Some(d) => d.remaining().map_or(Timeout::Forever, Timeout::After),
        }
    }
}

/// How a waiter looks for its condition while it spins.
pub(super) struct SpinHow<F> {
    /// PAUSEs between two checks.
    pub gap: u32,
    /// The condition while spinning (may ask for more than the exact one, e.g. more room, so
    /// that the waiter does not chase the other side one message at a time).
    pub eager: F,
}

/// One side's lock, released on drop (also on an early return or a panic).
pub(super) struct Held<'a>(pub &'a RawLock);

impl Held<'_> {
    /// Keeps the lock past this call (an open reservation or read).
    pub(super) fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let _ = self.0.release(false);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Producer,
    Consumer,
}

/// Publishes a side's new index and count through its journal: a holder killed anywhere in
/// here leaves either nothing or a journal the next holder redoes.
#[inline]
pub(super) fn publish(j: &Journal, p: &Published, index: u64, count: u64) {
    j.index.store(index, Relaxed);
    j.count.store(count, Relaxed);
    j.active.store(1, Release);
    p.count.store(count, Release);
    // SeqCst: pairs with Signal::arm in a sleeper of the other side (see Signal::notify).
    p.index.store(index, SeqCst);
    j.active.store(0, Release);
}

impl Queue {
    pub(super) fn lock(&self, side: Side, w: &mut Wait) -> Result<Held<'_>> {
        let st = self.m.state();
        let lock = if side == Side::Producer { &st.plock } else { &st.clock };
        let me = owner::me();
        // The locks are not recursive: a thread with an open reservation (or read) that puts
        // (or gets) would wait for itself.
        if lock.holder() == me.pid && lock.is_mine() {
            let what = if side == Side::Producer { "reservation" } else { "in-place read" };
            return Err(err!(State, "this thread has an open {what} on the queue: commit or abort it first"));
        }
        match lock.acquire(false, w.lock_timeout(), &self.lock_spin) {
            Ok(Acquired::Clean) => Ok(Held(lock)),
            Ok(Acquired::OwnerDied { pid }) => {
                let held = Held(lock);
                self.recover(side, pid)?;
                Ok(held)
            }
            Err(e) if e.kind() == ErrorKind::Timeout => {
                let who = if side == Side::Producer { "producer" } else { "consumer" };
                let pid = lock.holder();
                Err(if w.is_try() {
                    let kind = if side == Side::Producer { ErrorKind::Full } else { ErrorKind::Empty };
                    Error::new(kind, format!("the {who} side is busy (held by pid {pid})"))
                } else {
                    err!(Timeout, "timed out waiting for the {who} side (held by pid {pid})")
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Repairs a side taken over from a process that died holding its lock: redo a journalled
    /// publish, forget an open view. Whatever it wrote without publishing is free space again.
    #[cold]
    fn recover(&self, side: Side, pid: u32) -> Result<()> {
        let st = self.m.state();
        let (j, p) = if side == Side::Producer { (&st.pj, &st.ppub) } else { (&st.cj, &st.cpub) };
        if j.active.load(Acquire) != 0 {
            let (index, count) = (j.index.load(Relaxed), j.count.load(Relaxed));
            let (cur, cur_count) = (p.index.load(Relaxed), p.count.load(Relaxed));
            // The journalled state must lie between this side's and the other side's.
            let ok = index >= cur
                && count >= cur_count
                && match side {
                    Side::Producer => index.wrapping_sub(st.cpub.index.load(Acquire)) <= self.cap,
                    Side::Consumer => index <= st.ppub.index.load(Acquire) && count <= st.ppub.count.load(Acquire),
                };
            if !ok {
                return Err(self.corrupt(format!(
                    "journal of dead pid {pid} says index {index} count {count}, published {cur} / {cur_count}"
                )));
            }
            p.count.store(count, Release);
            p.index.store(index, SeqCst);
            j.active.store(0, Release);
        }
        j.view.store(0, Relaxed);
        st.meta.recoveries.fetch_add(1, Relaxed);
        // The dead process may have published without waking anyone.
        if side == Side::Producer {
            st.data.wake_all();
        } else {
            st.space.wake_all();
        }
        Ok(())
    }

    /// Sleeps on `sig` until `ready()`; spins first (see SpinHow). Err(Timeout) at the
    /// deadline; `what` names the awaited thing in its message.
    pub(super) fn wait_until<F: FnMut() -> bool>(
        &self,
        sig: &Signal,
        w: &mut Wait,
        what: impl FnOnce() -> String,
        mut how: SpinHow<F>,
        mut ready: impl FnMut() -> bool,
    ) -> Result<()> {
        let d = w.deadline();
        if self.spin.until(&d, how.gap, &mut how.eager) || ready() {
            return Ok(());
        }
        loop {
            let armed = sig.arm();
            if ready() {
                return Ok(());
            }
            if d.expired() {
                return Err(err!(Timeout, "timed out waiting for {}", what()));
            }
            // Bounded slices: a process that died between publishing and waking cannot wake
            // us, so look again now and then.
            sig.sleep(armed, d.slice(LIVENESS_SLICE));
            if ready() {
                return Ok(());
            }
        }
    }
}
