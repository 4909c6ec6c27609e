//! What a futex wake costs on this machine, observed at run time.
//!
//! A waker stamps the shared state with the time (CLOCK_MONOTONIC, the same clock in every
//! process) just before FUTEX_WAKE; the sleeper, once back from FUTEX_WAIT, reads the stamp and
//! feeds `now - stamp` into a process-wide average. That is the latency a sleep adds to a
//! handoff here: 1.8 us on one VM of this kind, 12-60 us on another. [`Spin`](super::Spin) never
//! spins longer than about twice it (the 2-competitive rule: spinning then sleeping costs at most
//! twice the better of the two), so a machine with cheap wakes sleeps early and one with dear
//! wakes spins longer, without a constant tuned on either.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use nix::time::{clock_gettime, ClockId};

/// What is assumed before any wake was observed: the dearer kind of machine, so that the first
/// handoffs are caught by spinning (a wrong guess costs one spin budget, once).
const ASSUMED_NS: u32 = 30_000;
/// A sample above this is not a wake latency but a sleeper that was not scheduled (a loaded
/// machine) or a stamp from an older wake: ignored.
const PLAUSIBLE_NS: u64 = 500_000;

static WAKE_NS: AtomicU32 = AtomicU32::new(ASSUMED_NS);

/// Now on the clock all processes share, in ns (never 0, which means "no stamp").
#[inline]
pub(crate) fn stamp() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux; a failure would only lose one sample.
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(1, |t| (t.tv_sec() as u64) * 1_000_000_000 + t.tv_nsec() as u64)
}

/// Records one wake: `stamped` is the waker's stamp read after FUTEX_WAIT returned (0: none).
pub(crate) fn observe(stamped: u64) {
    if stamped == 0 {
        return;
    }
    let now = stamp();
    if now < stamped || now - stamped > PLAUSIBLE_NS {
        return;
    }
    record((now - stamped) as u32);
}

fn record(sample_ns: u32) {
    // An average over about the last 8 wakes: steady against one slow sample, quick to follow
    // a machine whose load changed. Racing updates lose a sample at worst.
    let old = WAKE_NS.load(Relaxed);
    let new = old - old / 8 + sample_ns / 8;
    WAKE_NS.store(new.max(1), Relaxed);
}

/// The observed cost of a wake, ns.
#[inline]
pub(crate) fn cost_ns() -> u32 {
    WAKE_NS.load(Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_samples_and_ignores_implausible_ones() {
        let before = cost_ns();
        observe(0);
        observe(stamp() - 10 * PLAUSIBLE_NS);
        assert_eq!(cost_ns(), before, "a missing or stale stamp is no sample");
        for _ in 0..100 {
            record(2_000);
        }
        assert!((1_900..=2_100).contains(&cost_ns()), "{}", cost_ns());
        for _ in 0..100 {
            record(40_000);
        }
        assert!((39_000..=40_000).contains(&cost_ns()), "{}", cost_ns());
        let s = stamp();
        assert!(s > 0 && stamp() >= s);
    }
}
