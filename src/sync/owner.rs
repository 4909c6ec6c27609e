//! Who holds what: the calling process's identity (pid, thread id, start time), cached so the
//! uncontended paths make no system call, and the liveness test a waiter runs on a holder.
//!
//! A holder is named by a *token*: `pid << 32 | starttime as u32`, where starttime is field 22
//! of /proc/<pid>/stat (clock ticks after boot). A pid that the kernel reuses for a new process
//! gets a different start time, so a token never names the new process. The low 32 bits of the
//! tick count wrap after ~497 days at 100 Hz; two processes with one pid whose start times differ
//! by exactly a multiple of that are not told apart (accepted).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// Linux pids are below 2^22 (PID_MAX_LIMIT); lock words keep 30 bits for them.
pub(crate) const PID_BITS: u32 = 30;

/// The calling thread, as the primitives see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Me {
    pub pid: u32,
    pub tid: u32,
    pub token: u64,
}

/// Bumped in the child after every fork (pthread_atfork), so a thread's cached identity is known
/// to be stale in the child without asking the kernel for the pid on every call.
static FORK_GEN: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
}

#[derive(Clone, Copy)]
struct Cached {
    gen: u64,
    me: Me,
}

thread_local! {
    static ME: Cell<Option<Cached>> = const { Cell::new(None) };
}

/// The calling thread's identity (cached; no system call after the first use in a thread).
#[inline]
pub(crate) fn me() -> Me {
    let gen = FORK_GEN.load(Ordering::Relaxed);
    match ME.with(|c| c.get()) {
        Some(c) if c.gen == gen => c.me,
        _ => me_slow(),
    }
}

#[cold]
fn me_slow() -> Me {
    // SAFETY: registering a plain extern "C" function; it only touches an atomic.
    ATFORK.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(after_fork_in_child));
    });
    let gen = FORK_GEN.load(Ordering::Relaxed);
    // SAFETY: getpid/gettid cannot fail.
    let pid = unsafe { libc::getpid() } as u32;
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    let start = read_stat(pid).map_or(0, |s| s.start as u32);
    let me = Me { pid, tid, token: token(pid, start) };
    ME.with(|c| c.set(Some(Cached { gen, me })));
    me
}

pub(crate) fn token(pid: u32, start: u32) -> u64 {
    (pid as u64) << 32 | start as u64
}

pub(crate) fn token_pid(token: u64) -> u32 {
    (token >> 32) as u32
}

struct Stat {
    /// 'R', 'S', 'D', 'Z', 'X', ...
    state: u8,
    threads: u64,
    start: u64,
}

/// Parses /proc/<pid>/stat. None when it cannot be read or parsed.
fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so cut after the last ')'.
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // fields[0] is field 3 (state); num_threads is field 20, starttime field 22.
    let state = *fields.first()?.as_bytes().first()?;
    let threads = fields.get(17)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some(Stat { state, threads, start })
}

/// Whether the process `pid` is alive and, when `start` is known (non-zero), is the process that
/// started at that time (not a later process that was given the same pid).
///
/// A zombie (killed but not yet reaped by its parent) counts as dead: it will never release
/// anything. When /proc does not show the process (hidepid, no /proc), `kill(pid, 0)` decides,
/// and a process that exists counts as alive: never take a lock from a holder that may live.
pub(crate) fn alive(pid: u32, start: u32) -> bool {
    if pid == 0 || pid >= 1 << PID_BITS {
        return false;
    }
    match read_stat(pid) {
        Some(st) => {
            // A zombie leader whose other threads still run (the main thread called
            // pthread_exit) still counts its threads; a dead process has at most one left.
            if (st.state == b'Z' && st.threads <= 1) || st.state == b'X' {
                return false;
            }
            start == 0 || st.start as u32 == start
        }
        None => crate::util::pid_alive(pid as i32),
    }
}

/// Liveness of a holder named by a token (pid and start time).
pub(crate) fn token_alive(token: u64) -> bool {
    alive(token_pid(token), token as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn me_is_cached_and_alive() {
        let a = me();
        let b = me();
        assert_eq!(a, b);
        assert_eq!(a.pid, std::process::id());
        assert!(token_alive(a.token));
        // Same pid, another start time: a different (dead) process.
        assert!(!alive(a.pid, (a.token as u32).wrapping_add(1)));
        assert!(!alive(0, 0));
        assert!(!alive(1 << PID_BITS, 0));
    }

    #[test]
    fn threads_have_their_own_tid() {
        let a = me();
        let b = std::thread::spawn(me).join().unwrap();
        assert_eq!(a.pid, b.pid);
        assert_eq!(a.token, b.token);
        assert_ne!(a.tid, b.tid);
    }
}
