//! Processes: spawn an executable, fork running a function, start registered entry points by
//! fork, spawn or fork server; the Process handle (join with timeout, exit codes, signals,
//! sentinel) and the calling process's identity.

pub mod current;
mod daemons;
pub mod entry;
mod fork;
pub mod forkserver;
mod handle;
pub mod options;
mod per_process;
mod program;
mod reaper;
mod spawn;

use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::unistd::{sysconf, SysconfVar};

pub use daemons::terminate_all as terminate_daemons;
pub use entry::{init, register, start, StartMethod};
pub use handle::Process;
pub use options::{Options, Stdio};

use crate::Result;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The child's name: the one asked for, else "Process-<n>" counted in this process.
pub(crate) fn next_name(opts: &Options) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    opts.name.clone().unwrap_or_else(|| format!("Process-{n}"))
}

/// Resets per-process state a forked child must not inherit (our children are not its children).
pub(crate) fn after_fork_child() {
    COUNTER.store(0, Ordering::Relaxed);
}

/// Starts an executable. `args[0]` is the name the program sees; `program` is a path, or a name
/// looked up in PATH. A program that cannot be executed is an error here (NotFound,
/// Permission), never a child that exits 127.
pub fn spawn(program: impl AsRef<OsStr>, args: &[impl AsRef<OsStr>], opts: &Options) -> Result<Process> {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
    let name = next_name(opts);
    // The child learns its name and parent, if it uses mpx (others ignore the variables).
    let identity = [
        (OsString::from(current::ENV_NAME), OsString::from(&name)),
        (OsString::from(current::ENV_PARENT), OsString::from(std::process::id().to_string())),
    ];
    spawn::spawn_exec(program.as_ref(), &args, opts, &identity, name)
}

/// Forks a child that runs `f`; its return value is the exit code (a panic exits with 1 after
/// printing the reason).
pub fn fork<F: FnOnce() -> i32>(opts: &Options, f: F) -> Result<Process> {
    fork::fork(opts, f)
}

fn sysconf_count(var: SysconfVar) -> Option<usize> {
    match sysconf(var) {
        Ok(Some(n)) if n > 0 => Some(n as usize),
        _ => None,
    }
}

/// Number of CPUs online.
pub fn cpu_count() -> usize {
    sysconf_count(SysconfVar::_NPROCESSORS_ONLN).unwrap_or(1)
}

/// Number of CPUs configured (valid affinity indices are below it).
pub(crate) fn cpu_count_configured() -> usize {
    sysconf_count(SysconfVar::_NPROCESSORS_CONF).unwrap_or_else(cpu_count)
}
