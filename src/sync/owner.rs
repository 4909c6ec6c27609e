//! Who holds what: the calling process's identity (pid, thread id, start time), cached so the
//! uncontended paths make no system call, and the liveness test a waiter runs on a holder.
//!
//! A holder is named by a *token*: `pid << 32 | starttime as u32`, where starttime is field 22
//! of /proc/<pid>/stat (clock ticks after boot). A pid that the kernel reuses for a new process
//! gets a different start time, so a token never names the new process. The low 32 bits of the
//! tick count wrap after ~497 days at 100 Hz; two processes with one pid whose start times differ
//! by exactly a multiple of that are not told apart (accepted).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Linux pids are below 2^22 (PID_MAX_LIMIT); lock words keep 30 bits for them.
pub(crate) const PID_BITS: u32 = 30;

/// The calling thread, as the primitives see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Me {
    pub pid: u32,
    /// pthread_self(): unique among the live threads of a process (Python's thread ident);
    /// with the pid it names a thread across processes.
    pub thread: u64,
    pub token: u64,
}

/// Bumped in the child after every fork (pthread_atfork), so the cached process token is known
/// to be stale in the child without asking the kernel for the pid on every call. Starts at 1 so
/// that a cache generation of 0 means "never filled".
static FORK_GEN: AtomicU64 = AtomicU64::new(1);
static CACHE_GEN: AtomicU64 = AtomicU64::new(0);
static CACHE_TOKEN: AtomicU64 = AtomicU64::new(0);
/// Whether the fork handler is registered: 0 no, 1 being registered, 2 yes.
static ATFORK: AtomicU8 = AtomicU8::new(0);

extern "C" fn after_fork_in_child() {
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
}

/// Registers the fork handler, never waiting for anyone. Not a `Once`: a thread that forks
/// while another is inside a Once's initialiser leaves the child with a Once marked running
/// and nobody to finish it, and the child's first lock operation then waits for ever (seen
/// as a rare hang of a forked child in tests/sync_kill.rs).
extern "C" fn register_fork_handler() {
    if ATFORK.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        // SAFETY: registering a plain extern "C" function that only touches an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
        ATFORK.store(2, Ordering::Release);
    }
}

// Registered when the library is loaded (ELF constructor), before any of its code runs in a
// thread, so the race above cannot happen in practice; `refresh` keeps a fallback.
#[used]
#[link_section = ".init_array"]
static REGISTER_AT_LOAD: extern "C" fn() = register_fork_handler;

/// The calling thread's identity. Process-wide cache (no thread-local, which costs a call to
/// __tls_get_addr in a shared library) and pthread_self (one load): no system call.
#[inline(always)]
pub(crate) fn me() -> Me {
    let gen = FORK_GEN.load(Ordering::Relaxed);
    let token = if CACHE_GEN.load(Ordering::Acquire) == gen { CACHE_TOKEN.load(Ordering::Relaxed) } else { refresh() };
    // SAFETY: pthread_self cannot fail.
    let thread = unsafe { libc::pthread_self() } as u64;
    Me { pid: token_pid(token), thread, token }
}

/// Fills the cache (first use, or first use after a fork). Concurrent fillers compute the same
/// value; the token is stored before the generation that vouches for it.
#[cold]
#[inline(never)]
fn refresh() -> u64 {
    // Normally done at load; the reference also keeps the constructor linked in.
    let _ = std::hint::black_box(&REGISTER_AT_LOAD);
    register_fork_handler();
    let gen = FORK_GEN.load(Ordering::Relaxed);
    let pid = nix::unistd::getpid().as_raw() as u32;
    let start = read_stat(pid).map_or(0, |s| s.start as u32);
    let tok = token(pid, start);
    // Cache only once the handler is in place: a cache a forked child could inherit unnoticed
    // would give it its parent's identity. Until then (only if the constructor did not run and
    // another thread is registering) every call computes the token.
    if ATFORK.load(Ordering::Acquire) == 2 {
        CACHE_TOKEN.store(tok, Ordering::Relaxed);
        CACHE_GEN.store(gen, Ordering::Release);
    }
    tok
}

pub(crate) fn token(pid: u32, start: u32) -> u64 {
    (pid as u64) << 32 | start as u64
}

pub(crate) fn token_pid(token: u64) -> u32 {
    (token >> 32) as u32
}

struct Stat {
    /// 'R', 'S', 'D', 'Z', 'X', 'T' (stopped), 't' (traced), ...
    state: u8,
    /// Field 9, the kernel's PF_* flags.
    flags: u64,
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
    let flags = fields.get(6)?.parse().ok()?;
    let threads = fields.get(17)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some(Stat { state, flags, threads, start })
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
            // A kernel thread never holds anything of ours: a word naming one is damage, and
            // must not keep waiters waiting for ever.
            if st.flags & PF_KTHREAD != 0 {
                return false;
            }
            start == 0 || st.start as u32 == start
        }
        None => crate::util::pid_alive(pid as i32),
    }
}

/// The kernel's flag for kernel threads (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

/// Whether the process `pid` is stopped (SIGSTOP, job control) or stopped by a tracer.
pub(crate) fn is_stopped(pid: u32) -> bool {
    pid != 0 && read_stat(pid).is_some_and(|st| matches!(st.state, b'T' | b't'))
}

/// Liveness of a holder named by a token (pid and start time).
pub(crate) fn token_alive(token: u64) -> bool {
    alive(token_pid(token), token as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fork_handler_is_registered_when_the_library_loads() {
        // The ELF constructor ran before main: no first use can race with a fork.
        assert_eq!(ATFORK.load(Ordering::Acquire), 2);
    }

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
        // kthreadd (pid 2) is a live kernel thread: never a holder.
        if read_stat(2).is_some_and(|s| s.flags & PF_KTHREAD != 0) {
            assert!(!alive(2, 0));
        }
        assert!(!is_stopped(a.pid));
    }

    #[test]
    fn threads_have_their_own_identity() {
        let a = me();
        let b = std::thread::spawn(me).join().unwrap();
        assert_eq!(a.pid, b.pid);
        assert_eq!(a.token, b.token);
        assert_ne!(a.thread, b.thread);
    }

    #[test]
    fn a_forked_child_sees_its_own_pid() {
        let parent = me();
        // SAFETY: the child only reads /proc (allocating, which glibc allows after fork in a
        // test process whose other threads hold no allocator lock for long) and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let c = me();
            let ok = c.pid == nix::unistd::getpid().as_raw() as u32 && c.token != parent.token && token_alive(c.token);
            // SAFETY: ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; status is a valid out-pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(me(), parent);
    }
}
