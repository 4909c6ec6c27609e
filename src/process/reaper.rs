//! Background reaping of children whose handle was dropped while they ran, so that no child is
//! left a zombie. One thread, started on first need, waits on the children's pidfds.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::handle::wait_pid;
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
        let running = matches!(wait_pid(*pid, true), Ok(None));
        if !running {
            super::daemons::unregister(*pid); // reaped, or not ours any more
        }
        running
    });
    g.list.len()
}

fn run(slot: &'static Slot<Orphans>) {
    loop {
        let mut fds: Vec<PollFd<'static>> = {
            let mut g = slot.lock();
            while reap_some(&mut g) == 0 {
                g = slot.wake.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            g.list
                .iter()
                .filter_map(|(_, fd)| fd.as_ref())
                // SAFETY: polled after the lock is released, but only this thread removes
                // entries (reap_some), so each pidfd stays open until this poll returns.
                .map(|f| PollFd::new(unsafe { BorrowedFd::borrow_raw(f.as_raw_fd()) }, PollFlags::POLLIN))
                .collect()
        };
        // Sleep until a child ends (or 100 ms, to pick up new orphans and pidfd-less children).
        if fds.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        } else {
            let _ = poll(&mut fds, PollTimeout::from(100u8));
        }
    }
}
