//! The calling process's identity: pid, parent, name (a child knows the name it was given).

use std::os::fd::AsFd;
use std::sync::Mutex;

use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, getppid};

/// Set in a child by the start path; None = take it from the environment or "MainProcess".
static NAME: Mutex<Option<String>> = Mutex::new(None);
/// The logical parent when it is not getppid() (children of the fork server).
static PARENT: Mutex<Option<i32>> = Mutex::new(None);

/// Environment variables that carry identity across exec.
pub(crate) const ENV_NAME: &str = "MPX_PROCESS_NAME";
pub(crate) const ENV_PARENT: &str = "MPX_PARENT_PID";

pub fn pid() -> i32 {
    std::process::id() as i32
}

/// The parent's pid: the process that started this one (for a fork-server child, the client
/// that asked for it, not the server).
pub fn parent_pid() -> i32 {
    if let Some(p) = *PARENT.lock().unwrap_or_else(|e| e.into_inner()) {
        return p;
    }
    getppid().as_raw()
}

/// This process's name: the one given at start, else "MainProcess".
pub fn name() -> String {
    if let Some(n) = NAME.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        return n;
    }
    // The name an mpx parent gave us at exec, if it was given to *us*: a program that does not
    // use mpx passes the variables on to its own children unchanged.
    let for_us = std::env::var(ENV_PARENT).ok().and_then(|p| p.parse::<i32>().ok()) == Some(getppid().as_raw());
    match std::env::var(ENV_NAME) {
        Ok(n) if for_us => n,
        _ => "MainProcess".to_string(),
    }
}

/// Renames this process (what children report as their parent's name is unaffected).
pub fn set_name(name: &str) {
    *NAME.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.to_string());
}

/// Called in a new child before its code runs.
pub(crate) fn become_child(name: &str, parent: i32) {
    set_name(name);
    let real_parent = getppid().as_raw();
    *PARENT.lock().unwrap_or_else(|e| e.into_inner()) = (parent != real_parent).then_some(parent);
}

/// Reads the identity an exec'd child was given in its environment, then removes it so that the
/// child's own children do not inherit it.
pub(crate) fn adopt_from_env() {
    if let Ok(n) = std::env::var(ENV_NAME) {
        let parent = std::env::var(ENV_PARENT).ok().and_then(|p| p.parse().ok()).unwrap_or_else(|| getppid().as_raw());
        become_child(&n, parent);
        std::env::remove_var(ENV_NAME);
        std::env::remove_var(ENV_PARENT);
    }
}

/// Arranges for this process to be killed (SIGKILL) when `parent` dies, as daemonic children
/// are, for children forked by other means (e.g. Python's os.fork). A watcher thread waits on
/// the parent's pidfd: PR_SET_PDEATHSIG would fire when the parent's *forking thread* exits,
/// which in a threaded parent can be long before the parent does. Fails with State if `parent`
/// is already gone (this process was re-parented before the call).
pub fn die_with_parent(parent: i32) -> crate::Result<()> {
    let pidfd = super::handle::pidfd_open(parent);
    if getppid().as_raw() != parent {
        return Err(crate::err!(State, "parent {parent} already exited"));
    }
    let watch = move || {
        match &pidfd {
            Some(fd) => {
                let _ = super::handle::poll_readable(fd.as_fd(), None);
            }
            // No pidfd (kernel < 5.3): notice the re-parenting instead.
            None => {
                while getppid().as_raw() == parent {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        }
        // End this process as the kernel's parent-death signal would.
        let _ = kill(getpid(), Signal::SIGKILL);
    };
    std::thread::Builder::new()
        .name("mpx-parent-watch".into())
        .spawn(watch)
        .map_err(|e| crate::Error::from(e).context("daemon: watcher thread"))?;
    Ok(())
}

/// Makes this freshly started child die with its parent: PR_SET_PDEATHSIG when the parent forked
/// from its main thread (exact, no thread needed), a watcher thread otherwise.
pub(crate) fn die_with_parent_after_fork(parent: i32, forked_on_main_thread: bool) -> crate::Result<()> {
    if !forked_on_main_thread {
        return die_with_parent(parent);
    }
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    // The parent may have died before the prctl took effect: then we were re-parented.
    if getppid().as_raw() != parent {
        // SAFETY: _exit ends this fresh child without running the parent's exit handlers
        // (nix has no _exit).
        unsafe { libc::_exit(1) };
    }
    Ok(())
}
