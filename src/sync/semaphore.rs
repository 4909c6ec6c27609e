//! [`Semaphore`]: a counting semaphore shared between processes, optionally bounded
//! (BoundedSemaphore: releasing past the maximum is an error) and optionally with an undo table
//! (SysV's SEM_UNDO idea: the permits a process holds when it dies are given back).
//!
//! Parameters (header params): [initial value, maximum, flags (bit 0 = undo), undo slots].
//!
//! State (data area):
//! ```text
//! offset size field
//!      0    4 value     futex word: permits available
//!      4    4 sleepers  waiters inside FUTEX_WAIT (a release calls FUTEX_WAKE only if > 0)
//!      8    8 woken_at  CLOCK_MONOTONIC ns of the last FUTEX_WAKE (wait::wake: what a wake costs)
//!     64   64 guard     undo mode only: a RawLock (owner-death aware) over value + table
//!    128   64 journal   undo mode only: active, slot, old value, old held, old owner
//!    192 16*N slots     undo mode only: N x { owner token u64, held u32, reserved u32 }
//! ```
//! Without undo, acquire and release are CAS loops on `value`. With undo, both run under the
//! guard and update `value` and the caller's slot together; before touching anything they write
//! the old values into the journal, so a process killed in the middle is rolled back by the next
//! guard holder (which gets OwnerDied from the guard). A slot records how many permits a process
//! holds (acquires minus its own releases, never below 0); a waiter that sleeps a whole slice,
//! a failed try, an acquire that finds the table full, and `reclaim()` give the permits of dead
//! processes back.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

use super::lock::RawLock;
use super::owner::{self, Me};
use crate::object::{Kind, Layout, Mapped, Object, Segment};
use crate::wait::{futex, wake, Backoff, Deadline, Spin, Timeout};
use crate::{err, Result};

/// The largest value (and maximum) a semaphore can have: Linux's SEM_VALUE_MAX.
pub const MAX_VALUE: u32 = i32::MAX as u32;
/// Slots in the undo table: how many processes can hold permits of one undo semaphore at once.
pub const UNDO_SLOTS: u32 = 128;
/// The most slots an opened segment may claim (bounds the scan of a corrupt header).
const MAX_SLOTS: u64 = 4096;
const F_UNDO: u64 = 1;
const NO_SLOT: u32 = u32::MAX;
/// How long release and reclaim wait for the undo guard, which a running process holds for
/// nanoseconds: only a stopped holder (or one descheduled for that long) makes them give up.
const GUARD_WAIT: Duration = Duration::from_secs(1);

#[repr(C, align(64))]
struct Head {
    value: AtomicU32,
    sleepers: AtomicU32,
    woken_at: AtomicU64,
    _reserved: [u32; 12],
}

impl Head {
    /// Wakes up to `n` sleepers, stamping the time so that they can tell what the wake cost.
    fn wake(&self, n: u32) {
        self.woken_at.store(wake::stamp(), Relaxed);
        futex::wake(&self.value, n);
    }
}

#[repr(C, align(64))]
struct Journal {
    active: AtomicU32,
    slot: AtomicU32,
    old_value: AtomicU32,
    old_held: AtomicU32,
    old_owner: AtomicU64,
    _reserved: [u64; 5],
}

#[repr(C)]
struct Slot {
    owner: AtomicU64,
    held: AtomicU32,
    _reserved: u32,
}

#[repr(C)]
struct State {
    head: Head,
    guard: RawLock,
    journal: Journal,
    // followed by `slots` Slot entries in undo mode
}

const HEAD_SIZE: usize = 64;
const UNDO_BASE: usize = std::mem::size_of::<State>();
const _: () = assert!(UNDO_BASE == 192 && std::mem::size_of::<Slot>() == 16);

/// What a new semaphore looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemaphoreSpec {
    /// Initial permits.
    pub value: u32,
    /// Releasing past this is an error (None: up to MAX_VALUE, like Semaphore; Some(value):
    /// BoundedSemaphore).
    pub max: Option<u32>,
    /// Give back the permits of processes that die holding them.
    pub undo: bool,
}

impl SemaphoreSpec {
    /// Python's Semaphore(value).
    pub fn new(value: u32) -> SemaphoreSpec {
        SemaphoreSpec { value, max: None, undo: false }
    }

    /// Python's BoundedSemaphore(value): at most `value` permits.
    pub fn bounded(value: u32) -> SemaphoreSpec {
        SemaphoreSpec { value, max: Some(value), undo: false }
    }

    pub fn with_undo(mut self, undo: bool) -> SemaphoreSpec {
        self.undo = undo;
        self
    }

    fn params(&self) -> Result<[u64; 4]> {
        let max = self.max.unwrap_or(MAX_VALUE);
        if max == 0 || max > MAX_VALUE {
            return Err(err!(Invalid, "semaphore maximum {max} is out of range 1..={MAX_VALUE}"));
        }
        if self.value > max {
            return Err(err!(Invalid, "semaphore initial value {} exceeds its maximum {max}", self.value));
        }
        let (flags, slots) = if self.undo { (F_UNDO, UNDO_SLOTS as u64) } else { (0, 0) };
        Ok([self.value as u64, max as u64, flags, slots])
    }

    fn data_size(params: &[u64; 4]) -> usize {
        if params[2] & F_UNDO != 0 {
            UNDO_BASE + params[3] as usize * std::mem::size_of::<Slot>()
        } else {
            HEAD_SIZE
        }
    }
}

/// A counting semaphore shared between processes.
pub struct Semaphore {
    /// The head is always there; in undo mode a full State and the slot table follow it.
    m: Mapped<Head>,
    max: u32,
    initial: u32,
    bounded: bool,
    /// Undo table size (0 = no undo).
    slots: u32,
    /// Where this process's slot was last seen (checked before use).
    hint: AtomicU32,
    /// Waits for a permit, and for the undo guard.
    spin: Spin,
    guard_spin: Spin,
}

impl Object for Semaphore {
    const KIND: Kind = Kind::Semaphore;
    type Spec<'a> = SemaphoreSpec;

    fn layout(spec: &SemaphoreSpec) -> Result<Layout> {
        let params = spec.params()?;
        Ok(Layout::new(SemaphoreSpec::data_size(&params), params))
    }

    fn init(seg: &Segment, spec: &SemaphoreSpec) -> Result<()> {
        // SAFETY: the area is at least HEAD_SIZE bytes, aligned, and not yet published.
        let head = unsafe { &*seg.data_ptr().cast::<Head>() };
        head.value.store(spec.value, Relaxed);
        Ok(())
    }

    fn attach(seg: Segment) -> Result<Semaphore> {
        // Params are read once and checked: the header is shared memory.
        let p = seg.params();
        let what = seg.describe();
        let (initial, max, flags, slots) = (p[0], p[1], p[2], p[3]);
        if max == 0 || max > MAX_VALUE as u64 || initial > max || flags & !F_UNDO != 0 {
            return Err(err!(Corrupt, "{what}: invalid parameters (value {initial}, maximum {max}, flags {flags:#x})"));
        }
        let undo = flags & F_UNDO != 0;
        if undo != (slots > 0) || slots > MAX_SLOTS {
            return Err(err!(Corrupt, "{what}: invalid undo table size {slots}"));
        }
        Ok(Semaphore {
            m: Mapped::new(seg, SemaphoreSpec::data_size(&p))?,
            max: max as u32,
            initial: initial as u32,
            bounded: max < MAX_VALUE as u64,
            slots: slots as u32,
            // Spread processes over the table so they rarely meet at their first hint.
            hint: AtomicU32::new(std::process::id()),
            spin: Spin::new(),
            guard_spin: Spin::new(),
        })
    }

    fn segment(&self) -> &Segment {
        self.m.segment()
    }

    fn summary(&self) -> Option<String> {
        let mut t = format!("value {}", self.get_value());
        if self.is_bounded() {
            t.push_str(&format!(" of {}", self.max_value()));
        }
        if self.is_undo() {
            t.push_str(", undo");
        }
        Some(t)
    }
}

impl Semaphore {
    fn head(&self) -> &Head {
        self.m.state()
    }

    /// Undo mode only (attach checked that the area holds the whole State and the table).
    fn undo_state(&self) -> &State {
        debug_assert!(self.slots > 0);
        // SAFETY: in undo mode the area holds State (which starts with the Head) followed by
        // `slots` slots; Mapped checked the size and the alignment (64, as State's).
        unsafe { self.m.ptr().cast::<State>().as_ref() }
    }

    fn slot(&self, i: u32) -> &Slot {
        assert!(i < self.slots);
        // SAFETY: i < slots, and the area holds `slots` entries after State.
        unsafe { &*self.m.ptr().as_ptr().cast::<u8>().add(UNDO_BASE).cast::<Slot>().add(i as usize) }
    }

    /// Acquires one permit, waiting at most `timeout`.
    #[inline]
    pub fn acquire(&self, timeout: impl Into<Timeout>) -> Result<()> {
        let r = if self.slots > 0 {
            self.acquire_undo(Deadline::new(timeout.into()))
        } else {
            if self.take() {
                return Ok(());
            }
            self.acquire_slow(Deadline::new(timeout.into()))
        };
        r.map_err(|e| e.context(self.describe()))
    }

    pub fn try_acquire(&self) -> Result<()> {
        self.acquire(Duration::ZERO)
    }

    /// Takes a permit if one is free, without waiting, or returns false (then call `acquire`).
    /// Cannot fail or panic: the C ABI runs it before its panic guard.
    #[inline(always)]
    pub(crate) fn try_fast(&self) -> bool {
        self.slots == 0 && self.take()
    }

    /// Gives a permit back when that is allowed and no undo table is involved, or returns false
    /// (then call `release`). Cannot fail or panic.
    #[inline(always)]
    pub(crate) fn try_release_fast(&self) -> bool {
        if self.slots != 0 {
            return false;
        }
        let h = self.head();
        let v = h.value.load(Relaxed);
        if v >= self.max || h.value.compare_exchange(v, v + 1, SeqCst, Relaxed).is_err() {
            return false;
        }
        if h.sleepers.load(SeqCst) > 0 {
            h.wake(1);
        }
        true
    }

    /// Takes a permit if there is one (no undo).
    #[inline]
    fn take(&self) -> bool {
        let value = &self.head().value;
        let mut v = value.load(Relaxed);
        while v > 0 {
            match value.compare_exchange_weak(v, v - 1, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(x) => v = x,
            }
        }
        false
    }

    #[cold]
    fn acquire_slow(&self, deadline: Deadline) -> Result<()> {
        let h = self.head();
        if self.spin.until(&deadline, 1, || self.take()) {
            return Ok(());
        }
        loop {
            if self.take() {
                return Ok(());
            }
            let Some(left) = deadline.remaining().map_or(Some(None), |r| (!r.is_zero()).then_some(Some(r))) else {
                return Err(err!(Timeout, "timed out waiting for a permit"));
            };
            // Count ourselves before the futex compares the value: a release that comes after
            // the increment sees us and wakes; one before it changed the value we compare.
            h.sleepers.fetch_add(1, SeqCst);
            if !futex::wait(&h.value, 0, left) {
                wake::observe(h.woken_at.load(Relaxed));
            }
            h.sleepers.fetch_sub(1, SeqCst);
        }
    }

    /// Releases one permit. Past the maximum (the initial value for a bounded semaphore,
    /// MAX_VALUE otherwise) it is a State error and nothing changes. Never blocks without bound:
    /// in undo mode a guard held by a stopped process for GUARD_WAIT (1 s) is a Timeout error,
    /// and nothing changed.
    #[inline]
    pub fn release(&self) -> Result<()> {
        let r = if self.slots > 0 { self.release_undo() } else { self.release_plain() };
        r.map_err(|e| e.context(self.describe()))
    }

    fn too_many(&self, v: u32) -> crate::Error {
        if self.bounded {
            err!(State, "released too many times (value {v} is the maximum {})", self.max)
        } else {
            err!(State, "release would exceed the largest semaphore value {}", self.max)
        }
    }

    #[inline]
    fn release_plain(&self) -> Result<()> {
        let h = self.head();
        let mut v = h.value.load(Relaxed);
        loop {
            if v >= self.max {
                return Err(self.too_many(v));
            }
            match h.value.compare_exchange_weak(v, v + 1, SeqCst, Relaxed) {
                Ok(_) => break,
                Err(x) => v = x,
            }
        }
        if h.sleepers.load(SeqCst) > 0 {
            h.wake(1);
        }
        Ok(())
    }

    /// Permits available now.
    pub fn get_value(&self) -> u32 {
        self.head().value.load(Relaxed)
    }

    /// The maximum value (MAX_VALUE when unbounded).
    pub fn max_value(&self) -> u32 {
        self.max
    }

    /// Whether release past the initial value is an error (BoundedSemaphore).
    pub fn is_bounded(&self) -> bool {
        self.bounded
    }

    pub fn initial_value(&self) -> u32 {
        self.initial
    }

    pub fn is_undo(&self) -> bool {
        self.slots > 0
    }

    // ---- undo mode --------------------------------------------------------------------------

    /// Takes the guard. It is held for nanoseconds (a reclaim: up to a liveness check per
    /// slot), so `deadline` only matters if its holder is stopped; a try still gets a
    /// millisecond, so that it does not fail merely because another process is mid-update.
    /// Calls without a deadline of their own (release, reclaim) wait at most GUARD_WAIT: a
    /// process stopped inside the guard (SIGSTOP, a debugger) must not hold them for ever.
    fn lock_guard(&self, deadline: Option<&Deadline>) -> Result<()> {
        let t = match deadline.map(|d| d.remaining()) {
            None => Timeout::After(GUARD_WAIT),
            Some(None) => Timeout::Forever,
            Some(Some(left)) => Timeout::After(left.max(Duration::from_millis(1))),
        };
        let guard = &self.undo_state().guard;
        let a = guard.acquire(false, t, &self.guard_spin).map_err(|e| {
            if e.kind() != crate::ErrorKind::Timeout || deadline.is_some() {
                return e;
            }
            let pid = guard.holder();
            let why = if owner::is_stopped(pid) { ", which is stopped (SIGSTOP or a debugger)" } else { "" };
            err!(
                Timeout,
                "the undo table is held by pid {pid}{why} for more than {} ms; nothing changed, try again",
                GUARD_WAIT.as_millis()
            )
        })?;
        if a.owner_died() {
            self.roll_back();
        }
        Ok(())
    }

    fn unlock_guard(&self) {
        let _ = self.undo_state().guard.release(false);
    }

    /// Guard held, taken over from a process that died holding it: undo its half-done update.
    fn roll_back(&self) {
        let j = &self.undo_state().journal;
        if j.active.load(Acquire) != 0 {
            let s = j.slot.load(Relaxed);
            if s < self.slots {
                let slot = self.slot(s);
                slot.owner.store(j.old_owner.load(Relaxed), Relaxed);
                slot.held.store(j.old_held.load(Relaxed), Relaxed);
            }
            self.head().value.store(j.old_value.load(Relaxed).min(self.max), SeqCst);
            j.active.store(0, Release);
        }
    }

    /// Records the values an update is about to change (guard held).
    fn begin(&self, slot: u32) {
        let j = &self.undo_state().journal;
        j.slot.store(slot, Relaxed);
        j.old_value.store(self.head().value.load(Relaxed), Relaxed);
        if slot < self.slots {
            j.old_owner.store(self.slot(slot).owner.load(Relaxed), Relaxed);
            j.old_held.store(self.slot(slot).held.load(Relaxed), Relaxed);
        }
        // Release: the old values are visible before the journal reads as active; the changes
        // that follow are Release (or SeqCst) stores, so they become visible after it.
        j.active.store(1, Release);
    }

    fn commit(&self) {
        self.undo_state().journal.active.store(0, Release);
    }

    /// This process's slot, or with `alloc` a free one (guard held). The hint makes the usual
    /// case one load: our slot, or the free slot we used last (a process then may own two
    /// slots, e.g. through two handles; the permits it holds are their sum, which is all that
    /// matters).
    fn find_slot(&self, me: &Me, alloc: bool) -> Option<u32> {
        let hint = self.hint.load(Relaxed) % self.slots;
        let at_hint = self.slot(hint).owner.load(Relaxed);
        if at_hint == me.token || (alloc && at_hint == 0) {
            return Some(hint);
        }
        let found = (0..self.slots).find(|&i| self.slot(i).owner.load(Relaxed) == me.token);
        let found =
            found.or_else(
                || if alloc { (0..self.slots).find(|&i| self.slot(i).owner.load(Relaxed) == 0) } else { None },
            );
        if let Some(i) = found {
            self.hint.store(i, Relaxed);
        }
        found
    }

    /// Gives back the permits of dead processes (guard held). Returns how many.
    fn reclaim_locked(&self, me: &Me) -> u32 {
        let mut returned = 0u32;
        for i in 0..self.slots {
            let slot = self.slot(i);
            let tok = slot.owner.load(Relaxed);
            if tok == 0 || tok == me.token || owner::token_alive(tok) {
                continue;
            }
            let held = slot.held.load(Relaxed);
            self.begin(i);
            let v = self.head().value.load(Relaxed);
            let nv = (v as u64 + held as u64).min(self.max as u64) as u32;
            self.head().value.store(nv, SeqCst);
            slot.held.store(0, Release);
            slot.owner.store(0, Release);
            self.commit();
            returned += nv.saturating_sub(v);
        }
        returned
    }

    fn wake_after_reclaim(&self, n: u32) {
        if n > 0 && self.head().sleepers.load(SeqCst) > 0 {
            self.head().wake(n);
        }
    }

    fn acquire_undo(&self, deadline: Deadline) -> Result<()> {
        let me = owner::me();
        let h = self.head();
        let mut backoff = Backoff::new();
        // A failed try looks for dead holders at once: it will not wait for a later chance.
        let mut reclaim_due = deadline.is_try();
        loop {
            self.lock_guard(Some(&deadline))?;
            let mut v = h.value.load(Relaxed);
            if v == 0 && reclaim_due {
                let n = self.reclaim_locked(&me);
                reclaim_due = false;
                v = h.value.load(Relaxed);
                if n > 1 {
                    // More came back than we take: let the others know.
                    self.wake_after_reclaim(n - 1);
                }
            }
            if v > 0 {
                let slot = match self.find_slot(&me, true) {
                    Some(s) => Some(s),
                    None => {
                        let n = self.reclaim_locked(&me);
                        self.wake_after_reclaim(n);
                        self.find_slot(&me, true)
                    }
                };
                let Some(s) = slot else {
                    self.unlock_guard();
                    return Err(err!(
                        Full,
                        "undo table full: {} live processes hold permits (the limit of an undo semaphore)",
                        self.slots
                    ));
                };
                let v = h.value.load(Relaxed);
                if v > 0 {
                    let slot = self.slot(s);
                    let held = slot.held.load(Relaxed);
                    self.begin(s);
                    h.value.store(v - 1, Release);
                    slot.owner.store(me.token, Release);
                    slot.held.store(held.saturating_add(1), Release);
                    self.commit();
                    self.unlock_guard();
                    return Ok(());
                }
            }
            self.unlock_guard();
            if deadline.expired() {
                return Err(err!(Timeout, "timed out waiting for a permit"));
            }
            if self.spin.until(&deadline, 1, || h.value.load(Relaxed) > 0) {
                continue;
            }
            let slice = backoff.next();
            let d = deadline.slice(slice);
            h.sleepers.fetch_add(1, SeqCst);
            let timed_out = futex::wait(&h.value, 0, Some(d));
            if !timed_out {
                wake::observe(h.woken_at.load(Relaxed));
            }
            h.sleepers.fetch_sub(1, SeqCst);
            // A whole slice without a permit: maybe a holder died. Look next time round.
            if timed_out && d == slice {
                reclaim_due = true;
            }
        }
    }

    fn release_undo(&self) -> Result<()> {
        let me = owner::me();
        let h = self.head();
        self.lock_guard(None)?;
        let v = h.value.load(Relaxed);
        if v >= self.max {
            self.unlock_guard();
            return Err(self.too_many(v));
        }
        let slot = self.find_slot(&me, false);
        self.begin(slot.unwrap_or(NO_SLOT));
        h.value.store(v + 1, SeqCst);
        if let Some(s) = slot {
            let slot = self.slot(s);
            let held = slot.held.load(Relaxed);
            if held <= 1 {
                // Nothing left to give back: free the slot for other processes.
                slot.held.store(0, Release);
                slot.owner.store(0, Release);
            } else {
                slot.held.store(held - 1, Release);
            }
        }
        self.commit();
        self.unlock_guard();
        if h.sleepers.load(SeqCst) > 0 {
            h.wake(1);
        }
        Ok(())
    }

    /// Undo mode: gives back now the permits held by processes that died, and returns how many
    /// came back (0 without undo). Waiters do this by themselves; this is for a caller that
    /// wants the count whole before it reads it. Bounded as `release`.
    pub fn reclaim(&self) -> Result<u32> {
        if self.slots == 0 {
            return Ok(0);
        }
        let me = owner::me();
        self.lock_guard(None).map_err(|e| e.context(self.describe()))?;
        let n = self.reclaim_locked(&me);
        self.unlock_guard();
        self.wake_after_reclaim(n);
        Ok(n)
    }

    /// Undo mode: permits the calling process holds according to the table.
    pub fn held_by_me(&self) -> u32 {
        if self.slots == 0 {
            return 0;
        }
        let me = owner::me();
        (0..self.slots)
            .map(|i| self.slot(i))
            .find(|s| s.owner.load(Relaxed) == me.token)
            .map_or(0, |s| s.held.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process killed inside the guarded section (here: half-way through taking a permit) is
    /// rolled back by the next guard holder, and its slot's permits come back.
    #[test]
    fn half_done_update_is_rolled_back() {
        let s = Semaphore::create_anonymous(SemaphoreSpec::bounded(3).with_undo(true)).unwrap();
        let st = s.undo_state();
        let dead = (1u32 << owner::PID_BITS) - 1;
        // The dead process held 1 permit (slot 0) and was taking a second: the value was
        // already lowered 2 -> 1, its held count not yet raised.
        s.slot(0).owner.store(owner::token(dead, 7), SeqCst);
        s.slot(0).held.store(1, SeqCst);
        s.head().value.store(2, SeqCst);
        st.journal.slot.store(0, SeqCst);
        st.journal.old_value.store(2, SeqCst);
        st.journal.old_held.store(1, SeqCst);
        st.journal.old_owner.store(owner::token(dead, 7), SeqCst);
        st.journal.active.store(1, SeqCst);
        s.head().value.store(1, SeqCst);
        st.guard.force_holder(dead);
        // Our acquire takes the guard over, rolls back (value 2), then takes a permit (1).
        s.acquire(Timeout::Forever).unwrap();
        assert_eq!(st.journal.active.load(SeqCst), 0);
        assert_eq!(s.get_value(), 1);
        assert_eq!(s.held_by_me(), 1);
        // The dead process's slot still holds its 1 permit until a reclaim gives it back.
        assert_eq!(s.reclaim().unwrap(), 1);
        assert_eq!(s.get_value(), 2);
        s.release().unwrap();
        assert_eq!(s.get_value(), 3);
        assert_eq!(s.held_by_me(), 0);
        assert_eq!(s.release().unwrap_err().kind(), crate::ErrorKind::State);
    }

    #[test]
    fn slots_are_freed_and_reused() {
        let s = Semaphore::create_anonymous(SemaphoreSpec::new(5).with_undo(true)).unwrap();
        for _ in 0..3 {
            s.acquire(Timeout::Forever).unwrap();
        }
        assert_eq!(s.held_by_me(), 3);
        let used = (0..s.slots).filter(|&i| s.slot(i).owner.load(SeqCst) != 0).count();
        assert_eq!(used, 1);
        for _ in 0..3 {
            s.release().unwrap();
        }
        let used = (0..s.slots).filter(|&i| s.slot(i).owner.load(SeqCst) != 0).count();
        assert_eq!(used, 0);
        // A release by a process holding nothing is a plain release (no negative holdings).
        s.acquire(Timeout::Forever).unwrap();
        s.release().unwrap();
        assert_eq!(s.get_value(), 5);
    }
}
