//! [`Barrier`]: `parties` processes wait until all have arrived (Python's Barrier: wait returns
//! the arrival index, abort, reset, broken state; a timeout breaks the barrier).
//!
//! The whole state is one futex word, changed by CAS only:
//! ```text
//! bits  0..14 count    arrivals in the current generation
//! bit   15    broken
//! bits 16..23 gen      generation, +1 each time the barrier trips or is reset
//! bits 24..31 history  how the last 8 generations ended: bit 24 the latest, 1 = reset
//! ```
//! A waiter remembers its generation; when the word shows a later one, the history bit for its
//! generation says whether it passed or was reset (Broken). A waiter that wakes more than 8
//! generations late cannot be told and counts as passed. A process that dies while waiting stays
//! counted (as in Python, where nothing notices); the others then time out or need a reset.
//!
//! A wait can be carried out in parts (`arrive`, then `wait_on` as often as the caller likes,
//! then `wait_end` if it gives up), so that a caller can run other code between the parts (e.g.
//! Python's signal handlers) without arriving twice. Giving up breaks the barrier, as a timeout
//! does: the arrival cannot be taken back without the others' indexes going wrong.

use std::sync::atomic::{AtomicU32, Ordering::*};

use crate::object::{Kind, Layout, Mapped, Object, Segment};
use crate::wait::{futex, Deadline, Spin, Timeout};
use crate::{err, Result};

/// Most parties a barrier can have.
pub const MAX_PARTIES: u32 = 0x7FFF;
const COUNT_MASK: u32 = 0x7FFF;
const BROKEN: u32 = 1 << 15;
const HISTORY: u32 = 8;

fn gen(w: u32) -> u32 {
    (w >> 16) & 0xFF
}

fn history(w: u32) -> u32 {
    w >> 24
}

/// The word of the next generation: count 0, not broken, this generation's end recorded.
fn next_gen(w: u32, reset: bool) -> u32 {
    let g = (gen(w) + 1) & 0xFF;
    let h = ((history(w) << 1) | reset as u32) & 0xFF;
    h << 24 | g << 16
}

#[repr(C, align(64))]
struct State {
    word: AtomicU32,
    sleepers: AtomicU32,
    _reserved: [u32; 14],
}

/// A waiter's arrival at a [`Barrier`] (see [`Barrier::arrive`]): the generation it arrived in
/// and its arrival index, all a wait carried out in parts needs between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The generation (8 bits).
    pub gen: u32,
    pub index: u32,
}

pub struct Barrier {
    m: Mapped<State>,
    parties: u32,
    spin: Spin,
}

impl Object for Barrier {
    const KIND: Kind = Kind::Barrier;
    /// The number of parties.
    type Spec<'a> = u32;

    fn layout(parties: &u32) -> Result<Layout> {
        if *parties == 0 || *parties > MAX_PARTIES {
            return Err(err!(Invalid, "parties must be 1..={MAX_PARTIES}, not {parties}"));
        }
        Ok(Layout::of::<State>([*parties as u64, 0, 0, 0]))
    }

    fn attach(seg: Segment) -> Result<Barrier> {
        let parties = seg.params()[0];
        if parties == 0 || parties > MAX_PARTIES as u64 {
            return Err(err!(Corrupt, "{}: invalid number of parties {parties}", seg.describe()));
        }
        Ok(Barrier { m: Mapped::new(seg, 0)?, parties: parties as u32, spin: Spin::new() })
    }

    fn segment(&self) -> &Segment {
        self.m.segment()
    }

    fn summary(&self) -> Option<String> {
        let mut t = format!("{} of {} waiting", self.n_waiting(), self.parties());
        if self.is_broken() {
            t.push_str(", broken");
        }
        Some(t)
    }
}

impl Barrier {
    fn state(&self) -> &State {
        self.m.state()
    }

    fn wake_all(&self) {
        let st = self.state();
        if st.sleepers.load(SeqCst) > 0 {
            futex::wake(&st.word, futex::ALL);
        }
    }

    fn broken_err(&self, why: &str) -> crate::Error {
        err!(Broken, "{}: {why}", self.describe())
    }

    /// Waits until `parties` waiters have arrived and returns this waiter's arrival index
    /// (0 for the first, parties-1 for the one that trips the barrier). Broken if the barrier is
    /// or becomes broken (abort, reset, another waiter's timeout). When `timeout` runs out the
    /// barrier breaks for everyone and this waiter gets Timeout.
    pub fn wait(&self, timeout: impl Into<Timeout>) -> Result<u32> {
        let a = self.arrive()?;
        match self.wait_on(&a, timeout)? {
            Some(i) => Ok(i),
            None => self.wait_end(a),
        }
    }

    /// Counts the caller's arrival: the first step of a wait that [`Barrier::wait_on`] carries
    /// out in as many parts as the caller likes. The last arrival trips the barrier here (its
    /// `wait_on` then returns at once). Broken if the barrier is broken.
    pub fn arrive(&self) -> Result<Arrival> {
        let st = self.state();
        loop {
            let w = st.word.load(Acquire);
            if w & BROKEN != 0 {
                return Err(self.broken_err("the barrier is broken"));
            }
            let c = w & COUNT_MASK;
            if c + 1 >= self.parties {
                // Last to arrive (a corrupt count larger than parties trips too).
                if st.word.compare_exchange(w, next_gen(w, false), AcqRel, Relaxed).is_ok() {
                    self.wake_all();
                    return Ok(Arrival { gen: gen(w), index: self.parties - 1 });
                }
                continue;
            }
            if st.word.compare_exchange(w, w + 1, AcqRel, Relaxed).is_ok() {
                return Ok(Arrival { gen: gen(w), index: c });
            }
        }
    }

    /// Where the wait of `a` stands: Some(Ok(index)) passed, Some(Err) reset or broken, None
    /// still waiting (`w` is the word read).
    fn outcome(&self, a: &Arrival, w: u32) -> Option<Result<u32>> {
        if gen(w) != a.gen {
            let d = gen(w).wrapping_sub(a.gen) & 0xFF;
            if (1..=HISTORY).contains(&d) && history(w) >> (d - 1) & 1 != 0 {
                return Some(Err(self.broken_err("the barrier was reset while waiting")));
            }
            return Some(Ok(a.index));
        }
        if w & BROKEN != 0 {
            return Some(Err(self.broken_err("the barrier was broken while waiting")));
        }
        None
    }

    /// One part of the wait `a` began, at most `timeout`. Some(index): the barrier tripped (the
    /// index is `a.index`). None: the part timed out and the arrival still counts: call this
    /// again, or [`Barrier::wait_end`]. Broken if the barrier was broken or reset meanwhile.
    pub fn wait_on(&self, a: &Arrival, timeout: impl Into<Timeout>) -> Result<Option<u32>> {
        let st = self.state();
        let deadline = Deadline::new(timeout.into());
        let moved = |w: u32| gen(w) != a.gen || w & BROKEN != 0;
        self.spin.until(&deadline, 1, || moved(st.word.load(Acquire)));
        loop {
            let w = st.word.load(Acquire);
            if let Some(r) = self.outcome(a, w) {
                return r.map(Some);
            }
            let left = deadline.remaining();
            if left == Some(std::time::Duration::ZERO) {
                return Ok(None);
            }
            st.sleepers.fetch_add(1, SeqCst);
            futex::wait(&st.word, w, left);
            st.sleepers.fetch_sub(1, SeqCst);
        }
    }

    /// Gives up the wait `a` (its time ran out, or its caller stops waiting): the barrier breaks
    /// for everyone, as a timeout breaks it in Python, and this returns Timeout. Ok(index) if
    /// the barrier tripped meanwhile (the wait passed after all); Broken if it was broken or
    /// reset meanwhile.
    pub fn wait_end(&self, a: Arrival) -> Result<u32> {
        let st = self.state();
        loop {
            let w = st.word.load(Acquire);
            if let Some(r) = self.outcome(&a, w) {
                return r;
            }
            if st.word.compare_exchange(w, w | BROKEN, AcqRel, Relaxed).is_ok() {
                self.wake_all();
                return Err(err!(Timeout, "{}: timed out waiting; the barrier is now broken", self.describe()));
            }
        }
    }

    /// Breaks the barrier: current and future waiters get Broken until `reset`.
    pub fn abort(&self) {
        let st = self.state();
        let _ = st.word.fetch_update(AcqRel, Relaxed, |w| if w & BROKEN != 0 { None } else { Some(w | BROKEN) });
        self.wake_all();
    }

    /// Returns the barrier to its empty, unbroken state; current waiters get Broken.
    pub fn reset(&self) {
        let st = self.state();
        let _ = st.word.fetch_update(AcqRel, Relaxed, |w| Some(next_gen(w, true)));
        self.wake_all();
    }

    pub fn parties(&self) -> u32 {
        self.parties
    }

    /// Waiters in the current generation.
    pub fn n_waiting(&self) -> u32 {
        (self.state().word.load(Acquire) & COUNT_MASK).min(self.parties)
    }

    pub fn is_broken(&self) -> bool {
        self.state().word.load(Acquire) & BROKEN != 0
    }
}
