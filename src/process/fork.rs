//! The fork start method: a child that runs a function and exits with its result.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::handle::{Link, Process};
use super::options::{Options, Stdio};
use crate::{err, Error, Result};

/// Flushes C stdio and Rust's stdout, so buffered output is not written twice (by the parent and
/// by a child that inherited the buffer).
pub(crate) fn flush_all() {
    // SAFETY: fflush(NULL) flushes every C stream.
    unsafe { libc::fflush(std::ptr::null_mut()) };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

/// Applies the options that make sense without exec, in a freshly forked child.
pub(crate) fn apply_in_child(opts: &Options, parent: i32, forked_on_main_thread: bool) -> Result<()> {
    // SAFETY: plain system calls in a single-threaded child.
    unsafe {
        if opts.new_session && libc::setsid() < 0 {
            return Err(Error::last_os("setsid"));
        }
        if let Some(pg) = opts.process_group {
            if libc::setpgid(0, pg) < 0 {
                return Err(Error::last_os(format!("setpgid {pg}")));
            }
        }
        if opts.daemon {
            super::current::die_with_parent_after_fork(parent, forked_on_main_thread)?;
        }
        if let Some(cpus) = &opts.affinity {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for c in cpus {
                libc::CPU_SET(*c, &mut set);
            }
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) < 0 {
                return Err(Error::last_os("sched_setaffinity"));
            }
        }
        if let Some(n) = opts.nice {
            if libc::setpriority(libc::PRIO_PROCESS, 0, n) < 0 {
                return Err(Error::last_os(format!("setpriority {n}")));
            }
        }
        for (target, s) in [&opts.stdin, &opts.stdout, &opts.stderr].into_iter().enumerate() {
            let target = target as i32;
            match s {
                Stdio::Inherit => {}
                Stdio::Fd(fd) => {
                    if libc::dup2(*fd, target) < 0 {
                        return Err(Error::last_os(format!("dup2 {fd} -> {target}")));
                    }
                }
                Stdio::Null => {
                    let f = std::fs::OpenOptions::new().read(target == 0).write(target != 0).open("/dev/null")?;
                    libc::dup2(f.as_raw_fd(), target);
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
                    libc::dup2(f.as_raw_fd(), target);
                }
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
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            eprintln!("mpx: process '{name}' (pid {}) failed: {msg}", std::process::id());
            1
        }
    };
    flush_all();
    // _exit, not exit: the parent's atexit handlers and destructors are not the child's to run.
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
        let mut p = [0; 2];
        // SAFETY: pipe2 fills two fds.
        if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(Error::last_os("fork: pipe"));
        }
        Some(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
    } else {
        None
    };
    let on_main = super::per_process::on_main_thread();
    flush_all();
    // SAFETY: the child only runs Rust code that is fork-safe with glibc (malloc is), then exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::last_os("fork"));
    }
    if pid == 0 {
        super::after_fork_child();
        super::current::become_child(&name, parent);
        if let Err(e) = apply_in_child(opts, parent, on_main) {
            if let Some((_, w)) = &report {
                let msg = format!("{}\u{0}{}", e.kind().code(), e.message());
                unsafe { libc::write(w.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
            }
            unsafe { libc::_exit(127) };
        }
        drop(report);
        run_child(&name, f);
    }
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
