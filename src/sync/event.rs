//! [`Event`]: a flag processes wait for (Python's Event: set, clear, is_set, wait).
//!
//! State: `word` (futex) = set generation << 1 | flag, and `sleepers`. `set` bumps the generation
//! as it raises the flag, so a waiter woken by a set returns true even if the flag was cleared
//! again before it ran (as Python's Event.wait does). `set` calls FUTEX_WAKE only when someone
//! sleeps.

use std::sync::atomic::{AtomicU32, Ordering::*};

use crate::object::{Kind, Layout, Mapped, Object, Segment};
use crate::wait::{futex, Deadline, Spin, Timeout};
use crate::{err, Result};

#[repr(C, align(64))]
struct State {
    word: AtomicU32,
    sleepers: AtomicU32,
    _reserved: [u32; 14],
}

pub struct Event {
    m: Mapped<State>,
    spin: Spin,
}

impl Object for Event {
    const KIND: Kind = Kind::Event;
    type Spec<'a> = ();

    fn layout(_: &()) -> Result<Layout> {
        Ok(Layout::of::<State>([0; 4]))
    }

    fn attach(seg: Segment) -> Result<Event> {
        Ok(Event { m: Mapped::new(seg, 0)?, spin: Spin::new() })
    }

    fn segment(&self) -> &Segment {
        self.m.segment()
    }

    fn summary(&self) -> Option<String> {
        Some((if self.is_set() { "set" } else { "clear" }).into())
    }
}

impl Event {
    fn state(&self) -> &State {
        self.m.state()
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let st = self.state();
        let r = st.word.fetch_update(SeqCst, Relaxed, |w| if w & 1 != 0 { None } else { Some(w.wrapping_add(2) | 1) });
        if r.is_ok() && st.sleepers.load(SeqCst) > 0 {
            futex::wake(&st.word, futex::ALL);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.state().word.fetch_and(!1, SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.state().word.load(Acquire) & 1 != 0
    }

    /// Waits until the flag is set (returns at once if it is), at most `timeout`. Err(Timeout)
    /// if it was not set in time.
    pub fn wait(&self, timeout: impl Into<Timeout>) -> Result<()> {
        let st = self.state();
        let w0 = st.word.load(Acquire);
        if w0 & 1 != 0 {
            return Ok(());
        }
        // Set, or set and cleared again, since we looked.
        let done = |w: u32| w & 1 != 0 || w >> 1 != w0 >> 1;
        let deadline = Deadline::new(timeout.into());
        if self.spin.until(&deadline, 1, || done(st.word.load(Acquire))) {
            return Ok(());
        }
        loop {
            let w = st.word.load(Acquire);
            if done(w) {
                return Ok(());
            }
            let left = deadline.remaining();
            if left == Some(std::time::Duration::ZERO) {
                return Err(err!(Timeout, "{}: timed out waiting for the event", self.describe()));
            }
            st.sleepers.fetch_add(1, SeqCst);
            futex::wait(&st.word, w, left);
            st.sleepers.fetch_sub(1, SeqCst);
        }
    }
}
