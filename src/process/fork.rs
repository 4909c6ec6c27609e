//! The fork start method: a child that runs a function and exits with its result.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};

use nix::fcntl::OFlag;
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, ForkResult, Pid};

use super::handle::{Link, Process};
use super::options::{Options, Stdio};
use crate::{err, Error, Result};

/// Flushes C stdio and Rust's stdout, so buffered output is not written twice (by the parent and
/// by a child that inherited the buffer).
pub(crate) fn flush_all() {
    // SAFETY: fflush(NULL) flushes every C stream (C stdio: nothing in nix).
    unsafe { libc::fflush(std::ptr::null_mut()) };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

/// Puts `fd` at standard stream `target` (0, 1 or 2).
fn dup_onto(fd: BorrowedFd<'_>, target: i32) -> nix::Result<()> {
    match target {
        0 => dup2_stdin(fd),
        1 => dup2_stdout(fd),
        _ => dup2_stderr(fd),
    }
}

/// Applies the options that make sense without exec, in a freshly forked child.
pub(crate) fn apply_in_child(opts: &Options, parent: i32, forked_on_main_thread: bool) -> Result<()> {
    if opts.new_session {
        nix::unistd::setsid().map_err(|e| Error::os(e, "setsid"))?;
    }
    if let Some(pg) = opts.process_group {
        nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(pg)).map_err(|e| Error::os(e, format!("setpgid {pg}")))?;
    }
    if opts.daemon {
        super::current::die_with_parent_after_fork(parent, forked_on_main_thread)?;
    }
    if let Some(cpus) = &opts.affinity {
        let mut set = CpuSet::new();
        for c in cpus {
            set.set(*c).map_err(|e| Error::os(e, format!("affinity: CPU {c}")))?;
        }
        sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| Error::os(e, "sched_setaffinity"))?;
    }
    if let Some(n) = opts.nice {
        // SAFETY: setpriority on this process (nix has no wrapper).
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) } < 0 {
            return Err(Error::last_os(format!("setpriority {n}")));
        }
    }
    for (target, s) in [&opts.stdin, &opts.stdout, &opts.stderr].into_iter().enumerate() {
        let target = target as i32;
        match s {
            Stdio::Inherit => {}
            Stdio::Fd(fd) => {
                // SAFETY: validate() found it open, and the parent's descriptors are this
                // child's until it exits.
                let src = unsafe { BorrowedFd::borrow_raw(*fd) };
                dup_onto(src, target).map_err(|e| Error::os(e, format!("dup2 {fd} -> {target}")))?;
            }
            Stdio::Null => {
                let f = std::fs::OpenOptions::new().read(target == 0).write(target != 0).open("/dev/null")?;
                let _ = dup_onto(f.as_fd(), target);
            }
            Stdio::File { path, append } => {
                let f = if target == 0 {
                    std::fs::File::open(path)?
                } else {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .append(*append)
                        .truncate(!*append)
                        .open(path)?
                };
                let _ = dup_onto(f.as_fd(), target);
            }
        }
    }
    if let Some(dir) = &opts.cwd {
        std::env::set_current_dir(dir).map_err(|e| Error::from(e).context(format!("chdir {}", dir.display())))?;
    }
    Ok(())
}

fn needs_setup_report(opts: &Options) -> bool {
    opts.new_session
        || opts.process_group.is_some()
        || opts.affinity.is_some()
        || opts.nice.is_some()
        || opts.cwd.is_some()
        || [&opts.stdin, &opts.stdout, &opts.stderr].iter().any(|s| **s != Stdio::Inherit)
}

/// Runs `f` in the child: its return value is the exit code; a panic prints the reason to stderr
/// and exits 1. Never returns.
pub(crate) fn run_child(name: &str, f: impl FnOnce() -> i32) -> ! {
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(c) => c,
        Err(p) => {
            let msg = crate::util::panic_message(&*p);
            eprintln!("mpx: process '{name}' (pid {}) failed: {msg}", std::process::id());
            1
        }
    };
    flush_all();
    // _exit, not exit: the parent's atexit handlers and destructors are not the child's to run.
    // SAFETY: ends the process at once (nix has no _exit).
    unsafe { libc::_exit(code & 0xff) }
}

/// Forks a child that runs `f`. Options that cannot apply without exec (env, keep_fds) are
/// refused rather than ignored.
pub fn fork<F: FnOnce() -> i32>(opts: &Options, f: F) -> Result<Process> {
    opts.validate()?;
    if opts.env_clear || !opts.env_set.is_empty() || !opts.env_remove.is_empty() || !opts.keep_fds.is_empty() {
        return Err(err!(
            Invalid,
            "fork: env and keep_fds options apply to spawn (and keep_fds to forkserver); a forked child inherits all"
        ));
    }
    let name = super::next_name(opts);
    let parent = std::process::id() as i32;
    // Report option failures from the child over a pipe, only when there is something to apply.
    let report = if needs_setup_report(opts) {
        Some(nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::os(e, "fork: pipe"))?)
    } else {
        None
    };
    let on_main = super::per_process::on_main_thread();
    flush_all();
    // SAFETY: the child only runs Rust code that is fork-safe with glibc (malloc is), then exits.
    let pid = match unsafe { nix::unistd::fork() } {
        Err(e) => return Err(Error::os(e, "fork")),
        Ok(ForkResult::Parent { child }) => child.as_raw(),
        Ok(ForkResult::Child) => {
            super::after_fork_child();
            super::current::become_child(&name, parent);
            if let Err(e) = apply_in_child(opts, parent, on_main) {
                if let Some((_, w)) = &report {
                    let msg = format!("{}\u{0}{}", e.kind().code(), e.message());
                    let _ = nix::unistd::write(w, msg.as_bytes());
                }
                // SAFETY: ends the child at once, as run_child does.
                unsafe { libc::_exit(127) };
            }
            drop(report);
            run_child(&name, f);
        }
    };
    let proc = Process::new(pid, name, opts.daemon, Link::Child);
    if let Some((r, w)) = report {
        drop(w);
        let mut f = std::fs::File::from(r);
        let mut msg = String::new();
        let _ = std::io::Read::read_to_string(&mut f, &mut msg);
        if let Some((code, text)) = msg.split_once('\0') {
            let _ = proc.join(std::time::Duration::from_secs(5));
            let kind = code.parse().ok().and_then(crate::ErrorKind::from_code).unwrap_or(crate::ErrorKind::Os);
            return Err(Error::new(kind, format!("fork: in the child: {text}")));
        }
    }
    Ok(proc)
}
