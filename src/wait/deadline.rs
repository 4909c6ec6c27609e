//! Timeouts as callers give them ([`Timeout`]), the deadline a wait computes from one
//! ([`Deadline`]), and the sleep slices of waiters that must look at something a wake cannot
//! signal ([`Backoff`]).

use std::time::{Duration, Instant};

/// A timeout in the C ABI's convention: negative = forever, 0 = do not block, n = n nanoseconds.
/// (The C ABI refuses values below -1 before they get here; see `ffi::args::timeout`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    Forever,
    After(Duration),
}

impl Timeout {
    pub fn from_ns(ns: i64) -> Timeout {
        if ns < 0 {
            Timeout::Forever
        } else {
            Timeout::After(Duration::from_nanos(ns as u64))
        }
    }

    /// The instant this timeout ends, measured from now (None = never).
    pub fn deadline(self) -> Option<Instant> {
        match self {
            Timeout::Forever => None,
            Timeout::After(d) => Instant::now().checked_add(d),
        }
    }

    /// A zero timeout: try once, never wait.
    pub fn is_zero(self) -> bool {
        matches!(self, Timeout::After(d) if d.is_zero())
    }
}

impl From<Duration> for Timeout {
    fn from(d: Duration) -> Timeout {
        Timeout::After(d)
    }
}

impl From<Option<Duration>> for Timeout {
    fn from(d: Option<Duration>) -> Timeout {
        d.map_or(Timeout::Forever, Timeout::After)
    }
}

/// The end of a wait, from a [`Timeout`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    end: Option<Instant>,
    try_only: bool,
}

impl Deadline {
    pub(crate) fn new(t: Timeout) -> Deadline {
        match t {
            Timeout::Forever => Deadline { end: None, try_only: false },
            Timeout::After(d) if d.is_zero() => Deadline { end: Some(Instant::now()), try_only: true },
            // An end beyond what Instant can hold is as good as forever.
            Timeout::After(d) => Deadline { end: Instant::now().checked_add(d), try_only: false },
        }
    }

    /// A deadline at `end` (None: forever); one already reached is a try.
    pub(crate) fn at(end: Option<Instant>) -> Deadline {
        Deadline { end, try_only: end.is_some_and(|e| e <= Instant::now()) }
    }

    /// A zero timeout: try once, never sleep.
    pub(crate) fn is_try(&self) -> bool {
        self.try_only
    }

    /// Time left: None = forever, Some(ZERO) = expired.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.end.map(|e| e.saturating_duration_since(Instant::now()))
    }

    pub(crate) fn expired(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }

    /// The next sleep: at most `slice`, at most the time left.
    pub(crate) fn slice(&self, slice: Duration) -> Duration {
        match self.remaining() {
            Some(r) => r.min(slice),
            None => slice,
        }
    }
}

/// Sleep slices for waiters that must look at something a wake cannot signal (a holder that
/// may have died): 1 ms, doubling up to [`LIVENESS_SLICE`]. A fresh death is seen within about
/// a millisecond; a holder that keeps the lock for long costs a check every 20 ms.
pub(crate) struct Backoff(Duration);

/// The longest sleep between two liveness checks: bounds how long a waiter takes to notice that
/// a holder died (the issue asks for 100 ms).
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(20);

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff(Duration::from_millis(1))
    }

    pub(crate) fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(LIVENESS_SLICE);
        d
    }
}
