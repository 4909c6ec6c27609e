//! The calling process's identity: pid, parent, name (a child knows the name it was given).

use std::sync::Mutex;

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
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

/// This process's name: the one given at start, else "MainProcess".
pub fn name() -> String {
    if let Some(n) = NAME.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        return n;
    }
    std::env::var(ENV_NAME).unwrap_or_else(|_| "MainProcess".to_string())
}

/// Renames this process (what children report as their parent's name is unaffected).
pub fn set_name(name: &str) {
    *NAME.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.to_string());
}

/// Called in a new child before its code runs.
pub(crate) fn become_child(name: &str, parent: i32) {
    set_name(name);
    let real_parent = unsafe { libc::getppid() };
    *PARENT.lock().unwrap_or_else(|e| e.into_inner()) = (parent != real_parent).then_some(parent);
}

/// Reads the identity an exec'd child was given in its environment, then removes it so that the
/// child's own children do not inherit it.
pub(crate) fn adopt_from_env() {
    if let Ok(n) = std::env::var(ENV_NAME) {
        let parent = std::env::var(ENV_PARENT).ok().and_then(|p| p.parse().ok()).unwrap_or_else(|| unsafe { libc::getppid() });
        become_child(&n, parent);
        std::env::remove_var(ENV_NAME);
        std::env::remove_var(ENV_PARENT);
    }
}

/// Arranges for this process to be killed (SIGKILL) when `parent` dies, as daemonic children
/// are. For children forked by other means (e.g. Python's os.fork). Fails with State if
/// `parent` is already gone (this process was re-parented before the call).
pub fn die_with_parent(parent: i32) -> crate::Result<()> {
    // SAFETY: prctl with an integer argument.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } < 0 {
        return Err(crate::Error::last_os("prctl(PR_SET_PDEATHSIG)"));
    }
    // The parent may have died before the prctl took effect: then we were re-parented.
    if unsafe { libc::getppid() } != parent {
        return Err(crate::err!(State, "parent {parent} already exited"));
    }
    Ok(())
}
