//! Spinning before sleeping, for as long as it pays here and now.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::{wake, Deadline};

/// The longest spin: about what a futex sleep and wake costs on the slower machines of this
/// kind (12-30 us measured), so that a waiter never spends more on spinning than sleeping would
/// have cost (the classic 2-competitive rule).
const MAX_NS: u32 = 30_000;
/// The shortest spin, where a site keeps failing: still covers a handoff between two running
/// processes (0.1-1 us) with room to spare.
const MIN_NS: u32 = 2_000;
/// After this much pure spinning the spinner yields between checks, so that on a busy machine
/// the process it waits for can run on this CPU.
const PURE: Duration = Duration::from_micros(5);
/// PAUSEs before the first clock read (0.4-9 us; with a gap of 1, as many checks): most
/// handoffs end in here.
const FIRST_PAUSES: u32 = 64;
/// PAUSEs between two clock reads afterwards.
const PAUSES_PER_CLOCK: u32 = 32;
/// The widest gap (PAUSEs between checks) a backing-off spin grows to: at 6-140 ns a PAUSE,
/// 0.4-9 us between two looks at a lock word, so a holder that keeps retaking its lock keeps
/// the line in its cache between them.
const MAX_GAP: u32 = 64;

/// How long waiters at one site spin before they sleep. The budget adapts by what the site
/// observes: it doubles (up to MAX_NS) after a spin that saw its condition, and halves (down to
/// MIN_NS) after one that ended in a sleep, so a site whose waits are long (a lock held for
/// milliseconds, a queue idle between bursts, a peer that is not running on a loaded machine)
/// soon stops burning a core, and one whose handoffs are quick keeps catching them. One per
/// handle (or per state it guards); any number of threads may share it.
#[derive(Debug)]
pub(crate) struct Spin {
    budget_ns: AtomicU32,
}

impl Default for Spin {
    fn default() -> Spin {
        Spin::new()
    }
}

impl Spin {
    pub(crate) const fn new() -> Spin {
        Spin { budget_ns: AtomicU32::new(MAX_NS) }
    }

    /// Spins until `ready()` holds, at most this site's budget and never past the deadline,
    /// with `gap` PAUSEs between checks (a check that reads a line the other side keeps writing
    /// slows that side down; 1 checks as often as possible). Never spins for a zero timeout.
    /// Returns whether `ready()` held.
    #[inline]
    pub(crate) fn until(&self, deadline: &Deadline, gap: u32, mut ready: impl FnMut() -> bool) -> bool {
        if deadline.is_try() {
            return false;
        }
        self.run(deadline, gap, false, &mut ready)
    }

    /// As `until`, for a word that a running holder keeps writing (a lock): the gap between
    /// checks doubles after each miss, from 1 PAUSE to MAX_GAP. Each look at the word takes
    /// its cache line from the holder; looking often turns every one of its acquire/release
    /// pairs into two line transfers, which is what made a contended mpx lock slower than a
    /// pthread mutex, whose waiters sleep at once. A handoff right after a release still gets
    /// caught within one gap.
    #[inline]
    pub(crate) fn until_backoff(&self, deadline: &Deadline, mut ready: impl FnMut() -> bool) -> bool {
        if deadline.is_try() {
            return false;
        }
        self.run(deadline, 1, true, &mut ready)
    }

    #[inline]
    fn run(&self, deadline: &Deadline, gap: u32, grow: bool, ready: &mut impl FnMut() -> bool) -> bool {
        let budget = self.budget_ns.load(Relaxed);
        // Never longer than about twice what a wake costs here (wake.rs): past that, sleeping
        // at once would have been cheaper.
        let cap = wake::cost_ns().saturating_mul(2).clamp(MIN_NS, MAX_NS);
        let ok = spin(deadline, gap, grow, budget.min(cap), ready);
        let next = if ok { budget.saturating_mul(2).min(MAX_NS) } else { (budget / 2).max(MIN_NS) };
        if next != budget {
            self.budget_ns.store(next, Relaxed);
        }
        ok
    }

    /// The current budget in ns (tests, diagnostics).
    #[cfg(test)]
    pub(crate) fn budget_ns(&self) -> u32 {
        self.budget_ns.load(Relaxed)
    }
}

/// By time, not by count: one PAUSE takes anywhere from 6 ns to 140 ns depending on the CPU and
/// hypervisor, so a count tuned on one machine is wrong on the next. The clock is read by PAUSEs
/// spent, not by checks made, so a wide gap (a backing-off lock waiter) cannot stretch the spin
/// past its budget or its deadline between two reads.
#[inline]
fn spin(d: &Deadline, mut gap: u32, grow: bool, budget_ns: u32, ready: &mut impl FnMut() -> bool) -> bool {
    let budget = Duration::from_nanos(budget_ns as u64);
    let mut start: Option<Instant> = None;
    // PAUSEs since the last clock read (or since the start, before the first).
    let mut paused = 0u32;
    loop {
        if ready() {
            return true;
        }
        for _ in 0..gap {
            std::hint::spin_loop();
        }
        paused = paused.saturating_add(gap);
        if grow && gap < MAX_GAP {
            gap *= 2;
        }
        if paused < if start.is_none() { FIRST_PAUSES } else { PAUSES_PER_CLOCK } {
            continue;
        }
        paused = 0;
        let spent = start.get_or_insert_with(Instant::now).elapsed();
        if spent >= budget || d.expired() {
            return false;
        }
        if spent >= PURE {
            // nix::sched::sched_yield would do the same; it cannot fail on Linux.
            let _ = nix::sched::sched_yield();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::Timeout;

    #[test]
    fn adapts_both_ways_and_stays_in_bounds() {
        let s = Spin::new();
        let d = Deadline::new(Timeout::Forever);
        assert_eq!(s.budget_ns(), MAX_NS);
        for _ in 0..10 {
            assert!(!s.until(&d, 1, || false));
        }
        assert_eq!(s.budget_ns(), MIN_NS);
        assert!(s.until(&d, 1, || true));
        assert_eq!(s.budget_ns(), 2 * MIN_NS);
        for _ in 0..10 {
            assert!(s.until(&d, 1, || true));
        }
        assert_eq!(s.budget_ns(), MAX_NS);
    }

    #[test]
    fn a_try_never_spins() {
        let s = Spin::new();
        let mut calls = 0;
        assert!(!s.until(&Deadline::new(Timeout::After(Duration::ZERO)), 1, || {
            calls += 1;
            true
        }));
        assert_eq!(calls, 0);
        assert_eq!(s.budget_ns(), MAX_NS);
    }

    #[test]
    fn sees_a_condition_that_turns_true() {
        let s = Spin::new();
        // 51 checks at a gap of 1 end before the first clock read: no timing involved.
        let mut n = 0;
        assert!(s.until(&Deadline::new(Timeout::Forever), 1, || {
            n += 1;
            n > 50
        }));
    }

    #[test]
    fn backoff_sees_its_condition_and_never_spins_for_a_try() {
        let s = Spin::new();
        // Five checks take 1+2+4+8+16 PAUSEs, before the first clock read: no timing involved.
        let mut n = 0;
        assert!(s.until_backoff(&Deadline::new(Timeout::Forever), || {
            n += 1;
            n > 5
        }));
        let mut calls = 0;
        assert!(!s.until_backoff(&Deadline::new(Timeout::After(Duration::ZERO)), || {
            calls += 1;
            true
        }));
        assert_eq!(calls, 0);
        // A condition that never holds ends the spin (by its budget) and halves the budget.
        let before = s.budget_ns();
        assert!(!s.until_backoff(&Deadline::new(Timeout::Forever), || false));
        assert_eq!(s.budget_ns(), (before / 2).max(MIN_NS));
    }
}
