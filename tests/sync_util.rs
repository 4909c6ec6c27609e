//! Helpers for the sync and value tests (included with `#[path]`; compiled alone it has no
//! tests): unique names removed on drop, forked children with bounded waits, segment patching.
#![allow(dead_code)]

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before it counts as a hang.
pub const WAIT: Duration = Duration::from_secs(20);

/// A name unique to this process and call: "t-sync-<tag>-<pid>-<n>".
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let t = mpx::util::realtime_ns() / 1000 % 1_000_000;
    format!("t-sync-{tag}-{}-{t}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn shm_path(name: &str) -> String {
    format!("/dev/shm/mpx.{name}")
}

/// Removes the names it holds when dropped, so a failing test leaves nothing in /dev/shm.
pub struct Names(Vec<String>, u32);

impl Names {
    pub fn new() -> Names {
        Names(Vec::new(), std::process::id())
    }
    pub fn add(&mut self, tag: &str) -> String {
        let n = unique(tag);
        self.0.push(n.clone());
        n
    }
}

impl Default for Names {
    fn default() -> Names {
        Names::new()
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        // Only in the process that made them (a forked child must not remove them).
        if std::process::id() == self.1 {
            for n in &self.0 {
                let _ = std::fs::remove_file(shm_path(n));
            }
        }
    }
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// A forked child; dropping it kills and reaps it if it was not waited for.
pub struct Child {
    pub pid: i32,
    done: bool,
    exit: Option<Exit>,
}

/// Writes a line to stderr with one write(2): safe in a forked child (no Rust stdio lock, which
/// another test thread may have held at the fork).
pub fn child_note(msg: &str) {
    let line = format!("{msg}\n");
    // SAFETY: writes from a valid buffer.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// Forks; the child runs `f` and exits with its code (101 if it panicked). The child must not
/// print through Rust's locked stdout (another test thread may have held the lock at fork).
pub fn fork(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: the child only runs `f` and _exits, never returning into the harness. `f` may
    // allocate (glibc resets its malloc locks in a fork child) but takes no lock another test
    // thread could hold at the fork (see child_note).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: _exit has no preconditions; it keeps the child from returning into the test harness.
        unsafe { libc::_exit(code) };
    }
    Child { pid, done: false, exit: None }
}

fn decode(status: i32) -> Exit {
    if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else {
        Exit::Signal(libc::WTERMSIG(status))
    }
}

impl Child {
    /// Waits at most `timeout`; a child still running then is killed and the test fails.
    pub fn wait_for(&mut self, timeout: Duration) -> Exit {
        let end = Instant::now() + timeout;
        loop {
            if let Some(e) = self.exit {
                return e;
            }
            let mut status = 0;
            // SAFETY: status is a local; pid is our child, not yet reaped (exit is None).
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                self.done = true;
                self.exit = Some(decode(status));
                continue;
            }
            assert!(r == 0, "waitpid({}) failed", self.pid);
            if Instant::now() >= end {
                self.kill();
                panic!("child {} did not finish within {:?} (hang): killed", self.pid, timeout);
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    pub fn wait(&mut self) -> Exit {
        self.wait_for(WAIT)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) -> Exit {
        self.signal(libc::SIGKILL);
        self.reap()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill takes no pointers; callers signal the child before it is reaped, so the pid is still its own.
        unsafe { libc::kill(self.pid, sig) };
    }

    /// Reaps a child that has been killed (blocks until it is gone).
    pub fn reap(&mut self) -> Exit {
        if let Some(e) = self.exit {
            return e;
        }
        let mut status = 0;
        loop {
            // SAFETY: status is a local; pid is our child, not yet reaped (exit is None).
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                break;
            }
            assert!(r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR));
        }
        self.done = true;
        self.exit = Some(decode(status));
        self.exit.unwrap()
    }

    /// Waits (bounded) until the child is a zombie or gone, without reaping it.
    pub fn wait_dead_unreaped(&self) {
        let end = Instant::now() + WAIT;
        loop {
            // SAFETY: siginfo_t is plain data; all-zero is a valid value.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: info is a valid siginfo_t for waitid to fill; WNOWAIT leaves the child unreaped.
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    self.pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
                )
            };
            // SAFETY: info was filled by waitid (or is still all-zero), so si_pid reads initialised memory.
            if r == 0 && unsafe { info.si_pid() } == self.pid {
                return;
            }
            assert!(Instant::now() < end, "child {} did not die", self.pid);
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.done {
            self.kill();
        }
    }
}

/// Polls `cond` every 200 µs for at most WAIT; false if it never held.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    cond()
}

/// A small xorshift generator (tests need no crate for randomness).
pub struct Rng(pub u64);

impl Rng {
    pub fn new() -> Rng {
        Rng(mpx::util::realtime_ns() | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

impl Default for Rng {
    fn default() -> Rng {
        Rng::new()
    }
}

// ---- raw segment access ------------------------------------------------------------------

fn fnv1a(chunks: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for c in chunks {
        for &b in *c {
            h ^= b as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

fn file(name: &str) -> std::fs::File {
    std::fs::OpenOptions::new().read(true).write(true).open(shm_path(name)).expect("open segment file")
}

/// Overwrites header param `i` (offset 64 + 8i) and fixes the checksum, as a buggy or hostile
/// process could.
pub fn patch_param(name: &str, i: usize, v: u64) {
    let f = file(name);
    let mut h = [0u8; 512];
    f.read_exact_at(&mut h, 0).unwrap();
    h[64 + 8 * i..72 + 8 * i].copy_from_slice(&v.to_ne_bytes());
    let name_len = u32::from_ne_bytes(h[52..56].try_into().unwrap()) as usize;
    let sum = fnv1a(&[&h[..96], &h[128..128 + name_len.min(200)]]);
    h[96..100].copy_from_slice(&sum.to_ne_bytes());
    f.write_all_at(&h, 0).unwrap();
}

fn data_offset(f: &std::fs::File) -> u64 {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, 32).unwrap();
    u64::from_ne_bytes(b)
}

/// Writes a u32 into the object's data area at `off`.
pub fn poke_u32(name: &str, off: u64, v: u32) {
    let f = file(name);
    let base = data_offset(&f);
    f.write_all_at(&v.to_ne_bytes(), base + off).unwrap();
}

pub fn poke_u64(name: &str, off: u64, v: u64) {
    let f = file(name);
    let base = data_offset(&f);
    f.write_all_at(&v.to_ne_bytes(), base + off).unwrap();
}

pub fn peek_u32(name: &str, off: u64) -> u32 {
    let f = file(name);
    let base = data_offset(&f);
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, base + off).unwrap();
    u32::from_ne_bytes(b)
}
