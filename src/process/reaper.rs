//! Background reaping of children whose handle was dropped while they ran, so that no child is
//! left a zombie. One thread, started on first need, waits on the children's pidfds.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::per_process::{PerProcess, Slot};

struct Orphans {
    list: Vec<(i32, Option<OwnedFd>)>,
    thread_running: bool,
}

static ORPHANS: PerProcess<Orphans> = PerProcess::new(|| Orphans { list: Vec::new(), thread_running: false });

fn slot() -> &'static Slot<Orphans> {
    ORPHANS.get()
}

/// Hands a still-running child to the reaper.
pub(crate) fn adopt(pid: i32, pidfd: Option<OwnedFd>) {
    let slot = slot();
    let mut g = slot.lock();
    g.list.push((pid, pidfd));
    if !g.thread_running {
        let spawned = std::thread::Builder::new().name("mpx-reaper".into()).spawn(move || run(slot));
        g.thread_running = spawned.is_ok();
    }
    slot.wake.notify_one();
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

fn run(slot: &'static Slot<Orphans>) {
    loop {
        let fds: Vec<libc::pollfd> = {
            let mut g = slot.lock();
            while reap_some(&mut g) == 0 {
                g = slot.wake.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            g.list
                .iter()
                .filter_map(|(_, fd)| {
                    fd.as_ref().map(|f| libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 })
                })
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
