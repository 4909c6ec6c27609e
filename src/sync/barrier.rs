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

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering::*};

use super::futex::{self, Deadline};
use super::{create_segment, open_segment, segment_accessors, state_ptr};
use crate::object::{Flags, Kind, Segment};
use crate::util::Timeout;
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

pub struct Barrier {
    seg: Segment,
    st: NonNull<State>,
    parties: u32,
}

segment_accessors!(Barrier);

impl Barrier {
    fn size() -> usize {
        std::mem::size_of::<State>()
    }

    fn wrap(seg: Segment) -> Result<Barrier> {
        let parties = seg.params()[0];
        if parties == 0 || parties > MAX_PARTIES as u64 {
            return Err(err!(Corrupt, "{}: invalid number of parties {parties}", seg.describe()));
        }
        let st = state_ptr::<State>(&seg, Self::size())?;
        Ok(Barrier { seg, st, parties: parties as u32 })
    }

    fn new_segment(name: Option<&str>, parties: u32, flags: Flags) -> Result<Segment> {
        if parties == 0 || parties > MAX_PARTIES {
            let what = name.map_or("anonymous barrier".to_string(), |n| format!("barrier '{n}'"));
            return Err(err!(Invalid, "{what}: parties must be 1..={MAX_PARTIES}, not {parties}"));
        }
        create_segment(name, Kind::Barrier, Self::size(), [parties as u64, 0, 0, 0], flags, |_| Ok(()))
    }

    /// Creates a named barrier for `parties` processes (or threads).
    pub fn create(name: &str, parties: u32, flags: Flags) -> Result<Barrier> {
        Self::wrap(Self::new_segment(Some(name), parties, flags)?)
    }

    pub fn create_anonymous(parties: u32) -> Result<Barrier> {
        Self::wrap(Self::new_segment(None, parties, Flags::default())?)
    }

    pub fn open(name: &str, flags: Flags) -> Result<Barrier> {
        Self::wrap(open_segment(Some(name), -1, Kind::Barrier, flags, false)?)
    }

    pub fn from_fd(fd: std::os::fd::RawFd, flags: Flags) -> Result<Barrier> {
        Self::wrap(open_segment(None, fd, Kind::Barrier, flags, false)?)
    }

    fn state(&self) -> &State {
        // SAFETY: checked by state_ptr; the mapping lives as long as self.
        unsafe { self.st.as_ref() }
    }

    fn wake_all(&self) {
        let st = self.state();
        if st.sleepers.load(SeqCst) > 0 {
            futex::wake(&st.word, futex::ALL);
        }
    }

    fn broken_err(&self, why: &str) -> crate::Error {
        err!(Broken, "{}: {why}", self.seg.describe())
    }

    /// Waits until `parties` waiters have arrived and returns this waiter's arrival index
    /// (0 for the first, parties-1 for the one that trips the barrier). Broken if the barrier is
    /// or becomes broken (abort, reset, another waiter's timeout). When `timeout` runs out the
    /// barrier breaks for everyone and this waiter gets Timeout.
    pub fn wait(&self, timeout: impl Into<Timeout>) -> Result<u32> {
        let st = self.state();
        let (my_gen, index) = loop {
            let w = st.word.load(Acquire);
            if w & BROKEN != 0 {
                return Err(self.broken_err("the barrier is broken"));
            }
            let c = w & COUNT_MASK;
            if c + 1 >= self.parties {
                // Last to arrive (a corrupt count larger than parties trips too).
                if st.word.compare_exchange(w, next_gen(w, false), AcqRel, Relaxed).is_ok() {
                    self.wake_all();
                    return Ok(self.parties - 1);
                }
                continue;
            }
            if st.word.compare_exchange(w, w + 1, AcqRel, Relaxed).is_ok() {
                break (gen(w), c);
            }
        };
        let deadline = Deadline::new(timeout.into());
        let moved = |w: u32| gen(w) != my_gen || w & BROKEN != 0;
        if !deadline.is_try() {
            futex::spin_until(|| moved(st.word.load(Acquire)));
        }
        loop {
            let w = st.word.load(Acquire);
            if gen(w) != my_gen {
                let d = gen(w).wrapping_sub(my_gen) & 0xFF;
                if (1..=HISTORY).contains(&d) && history(w) >> (d - 1) & 1 != 0 {
                    return Err(self.broken_err("the barrier was reset while waiting"));
                }
                return Ok(index);
            }
            if w & BROKEN != 0 {
                return Err(self.broken_err("the barrier was broken while waiting"));
            }
            let left = deadline.remaining();
            if left == Some(std::time::Duration::ZERO) {
                // As in Python: a timeout breaks the barrier for every waiter.
                if st.word.compare_exchange(w, w | BROKEN, AcqRel, Relaxed).is_ok() {
                    self.wake_all();
                    return Err(err!(Timeout, "{}: timed out waiting; the barrier is now broken", self.seg.describe()));
                }
                continue;
            }
            st.sleepers.fetch_add(1, SeqCst);
            futex::wait(&st.word, w, left);
            st.sleepers.fetch_sub(1, SeqCst);
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
