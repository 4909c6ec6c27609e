//! Shutdown, and JoinableQueue's task_done and join.

use std::sync::atomic::Ordering::*;

use super::sides::{Side, SpinHow, Wait};
use super::{Queue, Variant};
use crate::wait::Timeout;
use crate::{err, Result};

impl Queue {
    /// Shuts the queue down for every process: puts fail with Closed, gets return what is left
    /// and then Closed, and every blocked put or get wakes. Waits for an open reservation to be
    /// committed or aborted (so no message is published after shutdown): without limit, so a
    /// producer stopped (SIGSTOP, a debugger) while holding the producer side delays it; see
    /// [`shutdown_timeout`](Self::shutdown_timeout). Idempotent.
    pub fn shutdown(&self) -> Result<()> {
        self.shutdown_timeout(Timeout::Forever)
    }

    /// [`shutdown`](Self::shutdown), waiting at most `timeout` for the producer side (a put or
    /// a reservation in progress). Timeout: the queue is not shut down (nothing changed).
    pub fn shutdown_timeout(&self, timeout: impl Into<Timeout>) -> Result<()> {
        let st = self.m.state();
        let mut w = Wait::new(timeout.into());
        let held = self.lock(Side::Producer, &mut w).map_err(|e| {
            let e = match e.kind() {
                // A try (timeout 0) of the producer side reports Full; here it is a timeout.
                crate::ErrorKind::Full | crate::ErrorKind::Timeout => {
                    err!(Timeout, "not shut down: {}", e.message())
                }
                _ => e,
            };
            self.ctx(e)
        })?;
        st.meta.closed.store(1, SeqCst);
        drop(held);
        st.data.wake_all();
        st.space.wake_all();
        Ok(())
    }

    fn need_joinable(&self, what: &str) -> Result<()> {
        if self.variant != Variant::Joinable {
            return Err(self.ctx(err!(Unsupported, "{what}: not a joinable queue (create it as a JoinableQueue)")));
        }
        Ok(())
    }

    /// JoinableQueue: one task taken from the queue is done. State error if called more times
    /// than messages were put (Python raises ValueError there).
    pub fn task_done(&self) -> Result<()> {
        self.need_joinable("task_done")?;
        let st = self.m.state();
        let mut done = st.join.done.load(Acquire);
        loop {
            let put = st.ppub.count.load(Acquire);
            if done >= put {
                return Err(self.ctx(err!(State, "task_done() called more times than there were items put ({put})")));
            }
            match st.join.done.compare_exchange_weak(done, done + 1, SeqCst, Acquire) {
                Ok(_) => {
                    if done + 1 == put {
                        st.joined.notify();
                    }
                    return Ok(());
                }
                Err(x) => done = x,
            }
        }
    }

    /// JoinableQueue: tasks put but not yet marked done.
    pub fn unfinished(&self) -> u64 {
        let st = self.m.state();
        let done = st.join.done.load(Acquire);
        st.ppub.count.load(Acquire).saturating_sub(done)
    }

    /// JoinableQueue: waits until every message put has been marked done (at most `timeout`).
    pub fn join(&self, timeout: impl Into<Timeout>) -> Result<()> {
        self.need_joinable("join")?;
        let st = self.m.state();
        let ready = || st.join.done.load(SeqCst) >= st.ppub.count.load(SeqCst);
        if ready() {
            return Ok(());
        }
        let mut w = Wait::new(timeout.into());
        if w.is_try() {
            return Err(self.ctx(err!(Timeout, "{} tasks are unfinished", self.unfinished())));
        }
        self.wait_until(&st.joined, &mut w, || "unfinished tasks".into(), SpinHow { gap: 8, eager: ready }, ready)
            .map_err(|e| self.ctx(e))
    }
}
