//! Daemonic children: killed by the kernel when their parent dies (PR_SET_PDEATHSIG, set in the
//! child), and terminated by us when the parent exits normally (an atexit hook), as Python does.

use std::sync::Once;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::handle::wait_pid;
use super::per_process::PerProcess;

/// Our daemonic children (a forked child does not own its parent's).
static DAEMONS: PerProcess<Vec<i32>> = PerProcess::new(Vec::new);
static HOOK: Once = Once::new();

fn with<R>(f: impl FnOnce(&mut Vec<i32>) -> R) -> R {
    f(&mut DAEMONS.get().lock())
}

extern "C" fn at_exit() {
    terminate_all();
}

pub(crate) fn register(pid: i32) {
    // SAFETY: at_exit is a plain function that may run at any exit (nix has no atexit).
    HOOK.call_once(|| unsafe {
        libc::atexit(at_exit);
    });
    with(|v| v.push(pid));
}

pub(crate) fn unregister(pid: i32) {
    with(|v| v.retain(|p| *p != pid));
}

/// SIGTERMs every daemonic child still registered, then reaps them (bounded: 1 s, then SIGKILL).
pub fn terminate_all() {
    let pids = with(std::mem::take);
    for pid in &pids {
        // These are our unreaped children, so the pids are still theirs.
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    for pid in pids {
        loop {
            if !matches!(wait_pid(pid, true), Ok(None)) {
                break; // reaped, or not ours to wait for
            }
            if std::time::Instant::now() >= deadline {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = wait_pid(pid, false);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}
