//! Futex wait and wake on 32-bit words in shared memory.
//!
//! The words live in MAP_SHARED memory used by several processes, so the operations are the
//! shared (non-`FUTEX_PRIVATE_FLAG`) ones: the kernel keys them by the backing file page, which
//! is the same in every process that maps the segment. libc, not nix: nix has no futex call.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `*word == expected`, at most `timeout` (None = until woken). Returns true when
/// the sleep ended because the time ran out; false for a wake, a changed word or a signal (the
/// caller re-checks its condition in every case).
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
    let ts;
    let tp = match timeout {
        Some(d) => {
            ts = libc::timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64 / 2) as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            };
            &ts as *const libc::timespec
        }
        None => std::ptr::null(),
    };
    // SAFETY: the word is a valid, aligned u32 in a live mapping; the kernel only reads it; tp
    // is NULL or points to a timespec that lives until the call returns.
    let r = unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, tp, std::ptr::null::<u32>(), 0u32)
    };
    r == -1 && crate::error::errno() == libc::ETIMEDOUT
}

/// Wakes up to `n` sleepers on `word`; returns how many were woken.
pub(crate) fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32) as i32;
    // SAFETY: as in `wait`; FUTEX_WAKE does not touch the word.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    r.max(0) as usize
}

/// Wake everyone.
pub(crate) const ALL: u32 = i32::MAX as u32;
