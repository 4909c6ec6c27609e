//! Daemonic children: killed by the kernel when their parent dies (PR_SET_PDEATHSIG, set in the
//! child), and terminated by us when the parent exits normally (an atexit hook), as Python does.

use std::sync::{Mutex, Once};

static DAEMONS: Mutex<(u32, Vec<i32>)> = Mutex::new((0, Vec::new()));
static HOOK: Once = Once::new();

fn with<R>(f: impl FnOnce(&mut Vec<i32>) -> R) -> R {
    let mut g = DAEMONS.lock().unwrap_or_else(|e| e.into_inner());
    let me = std::process::id();
    if g.0 != me {
        g.0 = me; // a forked child does not own its parent's daemons
        g.1.clear();
    }
    f(&mut g.1)
}

extern "C" fn at_exit() {
    terminate_all();
}

pub(crate) fn register(pid: i32) {
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
        // SAFETY: these are our unreaped children; signalling them is what the caller asked.
        unsafe { libc::kill(*pid, libc::SIGTERM) };
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    for pid in pids {
        loop {
            let mut st = 0;
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG | libc::__WALL) };
            if r != 0 {
                break;
            }
            if std::time::Instant::now() >= deadline {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut st, libc::__WALL);
                }
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}
