//! [`Signal`]: a futex word that sleepers mark, so that a waker makes a system call only when
//! someone sleeps.

use std::sync::atomic::{AtomicU32, Ordering::*};
use std::time::Duration;

use super::futex;

/// A futex word in shared memory on its own cache line. Sleepers mark it with WAITERS; wakers
/// bump the counter (clearing WAITERS) and wake everyone. A sleeper that died leaves WAITERS
/// set, which costs the next waker one needless FUTEX_WAKE and no more.
#[repr(C, align(64))]
pub(crate) struct Signal {
    pub word: AtomicU32,
    _reserved: [u32; 15],
}

const WAITERS: u32 = 1 << 31;

impl Signal {
    /// Wakes the sleepers, if any. Must follow (in SeqCst order) the store that makes their
    /// condition true: together with `arm` this is the store-buffering pattern, so either the
    /// sleeper sees the new state or the waker sees WAITERS.
    #[inline]
    pub fn notify(&self) {
        if self.word.load(SeqCst) & WAITERS != 0 {
            self.wake_all();
        }
    }

    /// Wakes every sleeper unconditionally (close, recovery).
    #[cold]
    pub fn wake_all(&self) {
        let mut s = self.word.load(Relaxed);
        loop {
            match self.word.compare_exchange_weak(s, s.wrapping_add(1) & !WAITERS, SeqCst, Relaxed) {
                Ok(_) => break,
                Err(x) => s = x,
            }
        }
        futex::wake(&self.word, futex::ALL);
    }

    /// Announces a sleeper; returns the value to sleep on. Re-check the condition after this.
    pub fn arm(&self) -> u32 {
        let mut s = self.word.load(SeqCst);
        loop {
            if s & WAITERS != 0 {
                return s;
            }
            match self.word.compare_exchange_weak(s, s | WAITERS, SeqCst, SeqCst) {
                Ok(_) => return s | WAITERS,
                Err(x) => s = x,
            }
        }
    }

    /// Sleeps while the word is `armed`, at most `d`.
    pub fn sleep(&self, armed: u32, d: Duration) {
        futex::wait(&self.word, armed, Some(d));
    }
}
