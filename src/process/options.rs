//! How a child is started: name, daemon flag, environment, working directory, descriptors,
//! standard streams, CPU affinity, nice value, process group or session.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

/// Where a child's standard stream goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Stdio {
    /// The parent's stream (default).
    #[default]
    Inherit,
    /// /dev/null.
    Null,
    /// A descriptor of the parent, duplicated onto the stream.
    Fd(RawFd),
    /// A file, created if missing; truncated unless `append`.
    File { path: PathBuf, append: bool },
}

/// Options for any start method. Fields that a method cannot honour are documented there:
/// `env` and `cwd` apply to exec-based starts (spawn, entry by spawn); `keep_fds` to spawn and
/// the fork server (which receives them with the request); a forked child inherits the
/// parent's environment and every descriptor, as with `fork()`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The child's name (what `current::name()` returns in it). Default "Process-<n>".
    pub name: Option<String>,
    /// The child dies with its parent (PR_SET_PDEATHSIG), even when the parent is SIGKILLed,
    /// and is terminated when the parent exits normally.
    pub daemon: bool,
    pub cwd: Option<PathBuf>,
    /// Start from an empty environment instead of the parent's.
    pub env_clear: bool,
    /// Variables to set (after clearing, if asked).
    pub env_set: Vec<(OsString, OsString)>,
    /// Variables to remove from the inherited environment.
    pub env_remove: Vec<OsString>,
    /// Descriptors the child keeps at the same numbers. Spawn: every other descriptor above 2
    /// is closed at exec. Fork server: they travel with the request (at most 253) and are put
    /// at these numbers in the child, replacing whatever the server had open there.
    pub keep_fds: Vec<RawFd>,
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// CPUs the child may run on.
    pub affinity: Option<Vec<usize>>,
    /// Nice value to set in the child (-20..=19; lowering it needs privilege).
    pub nice: Option<i32>,
    /// Put the child in a process group: Some(0) makes a new group led by the child.
    pub process_group: Option<i32>,
    /// Start a new session (setsid): the child leads a new session and process group.
    pub new_session: bool,
}

impl Options {
    pub fn new() -> Options {
        Options::default()
    }

    pub fn name(mut self, name: impl Into<String>) -> Options {
        self.name = Some(name.into());
        self
    }

    pub fn daemon(mut self, daemon: bool) -> Options {
        self.daemon = daemon;
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Options {
        self.cwd = Some(dir.into());
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Options {
        self.env_set.push((key.into(), value.into()));
        self
    }

    pub fn env_remove(mut self, key: impl Into<OsString>) -> Options {
        self.env_remove.push(key.into());
        self
    }

    pub fn env_clear(mut self) -> Options {
        self.env_clear = true;
        self
    }

    pub fn keep_fd(mut self, fd: RawFd) -> Options {
        self.keep_fds.push(fd);
        self
    }

    pub fn stdin(mut self, s: Stdio) -> Options {
        self.stdin = s;
        self
    }

    pub fn stdout(mut self, s: Stdio) -> Options {
        self.stdout = s;
        self
    }

    pub fn stderr(mut self, s: Stdio) -> Options {
        self.stderr = s;
        self
    }

    pub fn affinity(mut self, cpus: Vec<usize>) -> Options {
        self.affinity = Some(cpus);
        self
    }

    pub fn nice(mut self, n: i32) -> Options {
        self.nice = Some(n);
        self
    }

    pub fn process_group(mut self, pgid: i32) -> Options {
        self.process_group = Some(pgid);
        self
    }

    pub fn new_session(mut self, yes: bool) -> Options {
        self.new_session = yes;
        self
    }

    /// Checks values that would only fail later in the child, where errors are harder to report.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        use crate::err;
        if let Some(cpus) = &self.affinity {
            let n = super::cpu_count_configured();
            if cpus.is_empty() {
                return Err(err!(Invalid, "affinity: the CPU list is empty"));
            }
            if let Some(c) = cpus.iter().find(|c| **c >= n.max(1) || **c >= nix::sched::CpuSet::count()) {
                return Err(err!(Invalid, "affinity: CPU {c} does not exist (this machine has {n})"));
            }
        }
        if let Some(n) = self.nice {
            if !(-20..=19).contains(&n) {
                return Err(err!(Invalid, "nice value {n} is outside -20..=19"));
            }
        }
        if self.new_session && self.process_group.is_some() {
            return Err(err!(Invalid, "new_session and process_group are exclusive"));
        }
        if let Some(pg) = self.process_group {
            if pg < 0 {
                return Err(err!(Invalid, "process group {pg} is negative"));
            }
        }
        for fd in &self.keep_fds {
            if !is_open(*fd) {
                return Err(err!(Invalid, "keep_fds: {fd} is not an open descriptor"));
            }
        }
        for s in [&self.stdin, &self.stdout, &self.stderr] {
            if let Stdio::Fd(fd) = s {
                if !is_open(*fd) {
                    return Err(err!(Invalid, "stdio: {fd} is not an open descriptor"));
                }
            }
        }
        if let Some(name) = &self.name {
            if name.contains('\0') {
                return Err(err!(Invalid, "process name contains a NUL byte"));
            }
        }
        Ok(())
    }
}

/// Whether `fd` is an open descriptor. libc, not nix: nix's fcntl takes a BorrowedFd, which a
/// descriptor that may not be open (the question asked here) cannot be.
fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only inspects the descriptor table.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}
