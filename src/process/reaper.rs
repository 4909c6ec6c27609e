//! Background reaping of children whose handle was dropped while they ran, so that no child is
//! left a zombie. One thread, started on first need, waits on the children's pidfds.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

struct Orphans {
    /// The process these pids are children of: after a fork the list belongs to the parent.
    owner: u32,
    list: Vec<(i32, Option<OwnedFd>)>,
    thread_running: bool,
}

static ORPHANS: Mutex<Orphans> = Mutex::new(Orphans { owner: 0, list: Vec::new(), thread_running: false });
static WAKE: Condvar = Condvar::new();

fn lock() -> std::sync::MutexGuard<'static, Orphans> {
    let mut g = ORPHANS.lock().unwrap_or_else(|e| e.into_inner());
    let me = std::process::id();
    if g.owner != me {
        // A forked child inherits the parent's list but not its children or its thread.
        g.owner = me;
        g.list.clear();
        g.thread_running = false;
    }
    g
}

/// Hands a still-running child to the reaper.
pub(crate) fn adopt(pid: i32, pidfd: Option<OwnedFd>) {
    let mut g = lock();
    g.list.push((pid, pidfd));
    if !g.thread_running {
        let spawned = std::thread::Builder::new().name("mpx-reaper".into()).spawn(run);
        g.thread_running = spawned.is_ok();
    }
    WAKE.notify_one();
}

/// Reaps what has ended; returns how many remain.
fn reap_some(g: &mut Orphans) -> usize {
    g.list.retain(|(pid, _)| {
        let mut st = 0;
        // SAFETY: WNOHANG on our own child.
        let r = unsafe { libc::waitpid(*pid, &mut st, libc::WNOHANG | libc::__WALL) };
        if r == *pid || r < 0 {
            super::daemons::unregister(*pid);
        }
        r == 0
    });
    g.list.len()
}

fn run() {
    loop {
        let fds: Vec<libc::pollfd> = {
            let mut g = lock();
            while reap_some(&mut g) == 0 {
                g = WAKE.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            g.list
                .iter()
                .filter_map(|(_, fd)| fd.as_ref().map(|f| libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 }))
                .collect()
        };
        // Sleep until a child ends (or 100 ms, to pick up new orphans and pidfd-less children).
        let mut fds = fds;
        if fds.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        } else {
            // SAFETY: the pidfds stay open while listed; a closed-and-reused fd only wakes us early.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        }
    }
}
