//! The Process handle: join with timeout, exit codes in Python's convention, signals, the
//! sentinel descriptor, and a reaper so that no child is ever left a zombie.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::socket::{recv, MsgFlags};

use crate::util::Timeout;
use crate::{err, Error, Result};

/// How the process relates to us.
pub(crate) enum Link {
    /// Our own child: we reap it with waitpid.
    Child,
    /// A child of the fork server: it reports the exit status on this socket.
    Served(OwnedFd),
}

enum State {
    Running,
    /// Exit code in Python's convention: the status, or minus the signal number.
    Exited(i32),
}

/// A started process. Dropping the handle never leaves a zombie: a child still running is handed
/// to a background reaper (see [`Process::detach`]).
pub struct Process {
    pid: i32,
    name: String,
    daemon: bool,
    /// A pidfd: readable when the process ends (the sentinel), and a race-free signal target.
    pidfd: Option<OwnedFd>,
    link: Link,
    state: Mutex<State>,
}

/// A pidfd for `pid`, if the kernel has them (5.3). libc: nix has no pidfd_open.
pub(crate) fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; the result is a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    // SAFETY: fd is new and ours. pidfd_open sets O_CLOEXEC.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// waitpid(pid, __WALL, plus WNOHANG with `nohang`): the raw wait status once the child is
/// reaped, None while it runs (WNOHANG only).
///
/// libc, not nix: nix's WaitStatus has no real-time signals, so for a child they killed its
/// waitpid reaps the child and then fails with EINVAL, and the exit code is lost.
pub(crate) fn wait_pid(pid: i32, nohang: bool) -> nix::Result<Option<i32>> {
    let mut status = 0;
    let flags = libc::__WALL | if nohang { libc::WNOHANG } else { 0 };
    // SAFETY: waitpid writes the status into a local.
    let r = Errno::result(unsafe { libc::waitpid(pid, &mut status, flags) })?;
    Ok((r != 0).then_some(status))
}

/// Decodes a wait status into Python's exitcode convention.
pub(crate) fn decode_status(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        // Stopped/continued are not reported with the flags we use; treat as still running.
        i32::MIN
    }
}

/// Waits until `fd` is readable or the timeout passes. Returns whether it is readable.
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<bool> {
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so we never spin on a sub-millisecond remainder.
                PollTimeout::try_from(left.as_micros().div_ceil(1000)).unwrap_or(PollTimeout::MAX)
            }
        };
        match poll(&mut [PollFd::new(fd, PollFlags::POLLIN)], timeout) {
            Ok(n) if n > 0 => return Ok(true),
            Ok(_) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(false);
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::os(e, "poll")),
        }
    }
}

impl Process {
    pub(crate) fn new(pid: i32, name: String, daemon: bool, link: Link) -> Process {
        let pidfd = pidfd_open(pid);
        // Our own daemonic children are terminated at our exit; a fork server's are terminated
        // by the server when we go (registering them here would risk signalling a reused pid).
        if daemon && matches!(link, Link::Child) {
            super::daemons::register(pid);
        }
        Process { pid, name, daemon, pidfd, link, state: Mutex::new(State::Running) }
    }

    /// Takes charge of a child this process forked by other means (e.g. Python's os.fork), so it
    /// gets join, exit codes, signals and the sentinel. `pid` must be our child.
    pub fn adopt(pid: i32, name: Option<String>) -> Result<Process> {
        if pid <= 0 {
            return Err(err!(Invalid, "adopt: pid {pid} is not a process id"));
        }
        // A WNOHANG probe: a pid that is not our child gives ECHILD.
        let r = wait_pid(pid, true);
        let p = Process::new(pid, name.unwrap_or_else(|| format!("Process-{pid}")), false, Link::Child);
        match r {
            Err(e) => return Err(Error::os(e, format!("adopt: pid {pid} is not a child of this process"))),
            Ok(Some(st)) => *p.lock() = State::Exited(decode_status(st)),
            Ok(None) => {}
        }
        Ok(p)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// Non-blocking check; records the exit code when the process has ended.
    fn poll_exit(&self, state: &mut State) -> Result<bool> {
        if let State::Exited(_) = state {
            return Ok(true);
        }
        match &self.link {
            Link::Child => match wait_pid(self.pid, true) {
                Ok(Some(st)) => {
                    let code = decode_status(st);
                    if code == i32::MIN {
                        return Ok(false);
                    }
                    *state = State::Exited(code);
                    super::daemons::unregister(self.pid);
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(Errno::ECHILD) => {
                    // Someone else reaped it (a SIGCHLD=SIG_IGN setting, or a foreign waitpid).
                    *state = State::Exited(0);
                    Err(err!(State, "process {}: reaped elsewhere, exit code lost", self.pid))
                }
                Err(e) => Err(Error::os(e, format!("process {}: waitpid", self.pid))),
            },
            Link::Served(sock) => {
                if !poll_readable(sock.as_fd(), Some(Instant::now()))? {
                    return Ok(false);
                }
                let mut buf = [0u8; 4];
                // Peek, not read: the status stays in the socket, so the sentinel stays readable
                // after the process ended, as a pidfd does.
                let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_WAITALL;
                let code = match recv(sock.as_raw_fd(), &mut buf, flags) {
                    Ok(4) => i32::from_le_bytes(buf),
                    // The server died before reporting: the child died with it (or is orphaned).
                    _ => -(Signal::SIGKILL as i32),
                };
                *state = State::Exited(code);
                super::daemons::unregister(self.pid);
                Ok(true)
            }
        }
    }

    /// Waits for the process to end, up to `timeout`. Returns its exit code, or Timeout.
    pub fn join(&self, timeout: impl Into<Timeout>) -> Result<i32> {
        let timeout = timeout.into();
        if timeout == Timeout::Forever && matches!(self.link, Link::Child) {
            return self.wait_blocking();
        }
        let deadline = timeout.deadline();
        loop {
            {
                let mut st = self.lock();
                if self.poll_exit(&mut st)? {
                    if let State::Exited(c) = *st {
                        return Ok(c);
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(err!(Timeout, "process '{}' (pid {}) is still running", self.name, self.pid));
            }
            let fd = match &self.link {
                Link::Served(s) => Some(s.as_fd()),
                Link::Child => self.pidfd.as_ref().map(|f| f.as_fd()),
            };
            match fd {
                Some(fd) => {
                    poll_readable(fd, deadline)?;
                }
                // No pidfd (old kernel): poll with a short sleep.
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    /// Blocking waitpid: the cheapest join when there is no timeout.
    fn wait_blocking(&self) -> Result<i32> {
        let mut st = self.lock();
        if let State::Exited(c) = *st {
            return Ok(c);
        }
        loop {
            // Our unreaped child (the state lock keeps others from reaping it here).
            match wait_pid(self.pid, false) {
                Ok(Some(status)) => {
                    let code = decode_status(status);
                    if code == i32::MIN {
                        continue;
                    }
                    *st = State::Exited(code);
                    super::daemons::unregister(self.pid);
                    return Ok(code);
                }
                Ok(None) | Err(Errno::EINTR) => {}
                Err(e) => {
                    drop(st);
                    let mut st = self.lock();
                    return match self.poll_exit(&mut st) {
                        Ok(_) => Err(Error::os(e, format!("process {}: waitpid", self.pid))),
                        Err(e) => Err(e),
                    };
                }
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_alive(&self) -> Result<bool> {
        let mut st = self.lock();
        Ok(!self.poll_exit(&mut st)?)
    }

    /// The exit code if the process ended: the status, or minus the signal number.
    pub fn exitcode(&self) -> Result<Option<i32>> {
        let mut st = self.lock();
        self.poll_exit(&mut st)?;
        Ok(match *st {
            State::Exited(c) => Some(c),
            State::Running => None,
        })
    }

    /// Sends a signal. A process already reaped is not signalled (its pid may be reused); that
    /// is not an error, as in Python.
    pub fn signal(&self, sig: i32) -> Result<()> {
        if !(1..=64).contains(&sig) {
            return Err(err!(Invalid, "signal {sig} is not a signal number"));
        }
        let mut st = self.lock();
        if self.poll_exit(&mut st)? {
            return Ok(());
        }
        // libc, not nix: nix has no pidfd_send_signal, and its Signal has no real-time signals.
        let r = match &self.pidfd {
            // SAFETY: pidfd_send_signal targets exactly this process, even after pid reuse.
            Some(fd) => unsafe {
                libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), sig, std::ptr::null::<u8>(), 0) as i32
            },
            // SAFETY: the child is not reaped (we hold the state lock), so the pid is still it.
            None => unsafe { libc::kill(self.pid, sig) },
        };
        match Errno::result(r) {
            Ok(_) | Err(Errno::ESRCH) => Ok(()), // ESRCH: already gone; the exit code will show it
            Err(e) => Err(Error::os(e, format!("process {}: signal {sig}", self.pid))),
        }
    }

    /// SIGTERM.
    pub fn terminate(&self) -> Result<()> {
        self.signal(Signal::SIGTERM as i32)
    }

    /// SIGKILL.
    pub fn kill(&self) -> Result<()> {
        self.signal(Signal::SIGKILL as i32)
    }

    /// SIGINT.
    pub fn interrupt(&self) -> Result<()> {
        self.signal(Signal::SIGINT as i32)
    }

    /// A descriptor that becomes readable when the process ends (for poll/epoll/asyncio). Owned
    /// by the handle.
    pub fn sentinel(&self) -> Result<RawFd> {
        match (&self.link, &self.pidfd) {
            (Link::Served(s), _) => Ok(s.as_raw_fd()),
            (Link::Child, Some(p)) => Ok(p.as_raw_fd()),
            (Link::Child, None) => Err(err!(Unsupported, "process {}: this kernel has no pidfd", self.pid)),
        }
    }

    /// Lets the process run on without a handle; a background reaper collects its exit status
    /// so it never lingers as a zombie.
    pub fn detach(self) {
        drop(self)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let running = {
            let mut st = self.lock();
            matches!(self.link, Link::Child) && !self.poll_exit(&mut st).unwrap_or(true)
        };
        if running {
            super::reaper::adopt(self.pid, self.pidfd.take());
        }
    }
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process").field("pid", &self.pid).field("name", &self.name).finish()
    }
}
