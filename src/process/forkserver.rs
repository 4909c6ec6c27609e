//! The fork server: a clean single-threaded copy of the program (or, for Python, an interpreter)
//! started on first use, which forks children on request so that forking stays safe in a
//! threaded parent. One server per client process; it exits when the client goes away.
//!
//! Wire protocol over a private Unix stream socket (little-endian):
//! request  = u32 length, then: u32 entry_len, entry, u32 name_len, name, u8 daemon,
//!            i32 client pid, u8 has_nice, i32 nice, u8 new_session, u8 has_pgroup, i32 pgroup,
//!            u32 ncpus, ncpus x u32, u32 nfds, nfds x i32 wanted, u64 arg_len, arg
//!            with nfds descriptors attached to its first bytes (SCM_RIGHTS, one message, so
//!            at most MAX_PASSED_FDS), in the order of the wanted numbers
//! reply    = i32 pid (> 0) with the child's status socket attached (SCM_RIGHTS), or
//!            i32 -errno, u32 len, message
//! status   = the server writes the child's exit code (i32, Python convention) on the status
//!            socket when it reaps the child.
//!
//! Passed descriptors (`keep_fds`, and the standard streams as descriptors): the server receives
//! them close-on-exec and checks their count against the request (a mismatch is an error reply;
//! whatever arrived is closed). Before forking it moves each above the highest wanted number
//! (F_DUPFD), so no later step can clobber one; the child first closes the server's own
//! descriptors (client socket, status sockets, pidfds), then dup2s each onto its wanted number
//! (without close-on-exec) and closes the temporaries; the server closes its copies after the
//! fork. A wanted number that the server's program itself had open (say a file opened before
//! `mpx_init`, or by a Python server's preloaded modules) is replaced in the child.

use std::ffi::OsString;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, Once};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{self as sock, sendmsg, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType};
use nix::unistd::{ForkResult, Pid};

use super::per_process::PerProcess;

use super::handle::{pidfd_open, wait_pid, Link, Process};
use super::options::Options;
use super::program::{self_exec, ENV_SERVER_FD};
use crate::{err, Error, Result};

const MAX_FRAME: usize = 1 << 30;
/// The most descriptors one request passes: what one SCM_RIGHTS message carries on Linux
/// (SCM_MAX_FD).
pub const MAX_PASSED_FDS: usize = 253;

struct Client {
    sock: OwnedFd,
    server: Option<Process>,
}

/// This process's connection to its server (a forked child starts with none).
static CLIENT: PerProcess<Option<Client>> = PerProcess::new(|| None);
/// The client socket's number, for the fork handler below (which may not take locks).
static CLIENT_FD: AtomicI32 = AtomicI32::new(-1);
static ATFORK: Once = Once::new();

/// In a child forked by any means, close the parent's server socket at once: holding it would
/// keep the parent's server (and its daemonic children) alive after the parent died.
extern "C" fn close_client_in_child() {
    let fd = CLIENT_FD.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        // close is async-signal-safe; the fd is the parent's socket, unused here.
        let _ = nix::unistd::close(fd);
    }
}
/// A program to run as the server instead of re-executing this one (bindings set it: Python
/// runs an interpreter that calls `serve`).
static PROGRAM: Mutex<Option<Vec<OsString>>> = Mutex::new(None);

/// Sets the server's argv (argv[0] is the program). Takes effect for the next server started.
pub fn set_program(argv: Vec<OsString>) -> Result<()> {
    if argv.is_empty() {
        return Err(err!(Invalid, "forkserver program: argv is empty"));
    }
    *PROGRAM.lock().unwrap_or_else(|e| e.into_inner()) = Some(argv);
    Ok(())
}

pub(crate) fn has_custom_program() -> bool {
    PROGRAM.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    sock::socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| Error::os(e, "socketpair"))
}

fn write_all(fd: BorrowedFd<'_>, mut b: &[u8]) -> Result<()> {
    while !b.is_empty() {
        // MSG_NOSIGNAL: a dead peer is EPIPE, not SIGPIPE.
        match sock::send(fd.as_raw_fd(), b, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => b = &b[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::os(e, "fork server: send")),
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes; Closed on EOF before the first byte.
fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(fd, &mut buf[got..]) {
            Ok(0) => return Err(err!(Closed, "fork server: connection closed")),
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::os(e, "fork server: read")),
        }
    }
    Ok(())
}

/// Sends all of `data`, with `fds` attached to its first bytes (one SCM_RIGHTS message).
fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> Result<()> {
    if fds.is_empty() {
        return write_all(sock, data);
    }
    if fds.len() > MAX_PASSED_FDS || data.is_empty() {
        return Err(err!(Invalid, "fork server: {} descriptors with {} bytes", fds.len(), data.len()));
    }
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let sent = loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => break n,
            Err(Errno::EINTR) => {}
            // The socket is fine: a descriptor to pass was closed meanwhile.
            Err(Errno::EBADF) if fcntl(sock, FcntlArg::F_GETFD).is_ok() => {
                return Err(err!(
                    Invalid,
                    "forkserver: a descriptor to pass to the child is not open (closed during the start?)"
                ))
            }
            Err(e) => return Err(Error::os(e, "fork server: sendmsg")),
        }
    };
    // The descriptors went with the first bytes; a stream socket may take the rest later.
    write_all(sock, &data[sent..])
}

/// Sends bytes with one descriptor attached.
fn send_with_fd(sock: BorrowedFd<'_>, data: &[u8], fd: RawFd) -> Result<()> {
    send_with_fds(sock, data, &[fd])
}

/// One recvmsg into `buf` that adds the descriptors passed with the bytes to `fds`
/// (close-on-exec); returns the byte count and whether the kernel cut descriptors off.
fn recv_some_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: i32,
    fds: &mut Vec<OwnedFd>,
) -> nix::Result<(usize, bool)> {
    let mut iov = [libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() }];
    // SAFETY: the one iovec is `buf`, valid for writes of its length.
    unsafe { crate::conn::sys::recvmsg_fds(sock, &mut iov, flags, Some(fds)) }
}

/// Reads exactly `buf.len()` bytes, adding every descriptor that arrives with them to `fds`
/// (close-on-exec; an OwnedFd each, so nothing leaks on any path). Returns whether the kernel
/// cut descriptors off (MSG_CTRUNC: more than MAX_PASSED_FDS in one message): those are lost.
fn recv_exact_fds(sock: BorrowedFd<'_>, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<bool> {
    let mut truncated = false;
    let mut got = 0;
    while got < buf.len() {
        match recv_some_fds(sock, &mut buf[got..], 0, fds) {
            Ok((0, _)) => return Err(err!(Closed, "fork server: connection closed")),
            Ok((n, t)) => {
                truncated |= t;
                got += n;
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::os(e, "fork server: recvmsg")),
        }
    }
    Ok(truncated)
}

/// Receives exactly `buf.len()` bytes (sent in one sendmsg) and the descriptor attached, if any.
fn recv_with_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Option<OwnedFd>> {
    let mut fds = Vec::new();
    let n = loop {
        match recv_some_fds(sock, buf, libc::MSG_WAITALL, &mut fds) {
            Ok((n, _)) => break n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::os(e, "fork server: recvmsg")),
        }
    };
    if n == 0 {
        return Err(err!(Closed, "fork server: the server closed the connection"));
    }
    if n < buf.len() {
        read_exact(sock, &mut buf[n..])?;
    }
    // The server passes one; any other is closed here.
    Ok(fds.into_iter().next())
}

/// A decoded request, as a child of the server sees it (`opts.keep_fds`: the numbers the
/// passed descriptors have in the child).
pub struct Request {
    pub entry: String,
    pub arg: Vec<u8>,
    pub name: String,
    pub opts: Options,
    pub client_pid: i32,
}

fn encode(entry: &str, arg: &[u8], name: &str, opts: &Options, wanted: &[RawFd]) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + entry.len() + name.len() + 4 * wanted.len() + arg.len());
    b.extend(0u32.to_le_bytes()); // length, filled below
    b.extend((entry.len() as u32).to_le_bytes());
    b.extend(entry.as_bytes());
    b.extend((name.len() as u32).to_le_bytes());
    b.extend(name.as_bytes());
    b.push(opts.daemon as u8);
    b.extend((std::process::id() as i32).to_le_bytes());
    b.push(opts.nice.is_some() as u8);
    b.extend(opts.nice.unwrap_or(0).to_le_bytes());
    b.push(opts.new_session as u8);
    b.push(opts.process_group.is_some() as u8);
    b.extend(opts.process_group.unwrap_or(0).to_le_bytes());
    let cpus = opts.affinity.clone().unwrap_or_default();
    b.extend((cpus.len() as u32).to_le_bytes());
    for c in cpus {
        b.extend((c as u32).to_le_bytes());
    }
    b.extend((wanted.len() as u32).to_le_bytes());
    for w in wanted {
        b.extend(w.to_le_bytes());
    }
    b.extend((arg.len() as u64).to_le_bytes());
    b.extend(arg);
    let len = (b.len() - 4) as u32;
    b[..4].copy_from_slice(&len.to_le_bytes());
    b
}

/// A bounds-checked reader over a request body (the body comes from another process).
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(err!(Corrupt, "fork server: truncated request"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| err!(Corrupt, "fork server: string is not UTF-8"))
    }
}

fn decode(body: &[u8]) -> Result<Request> {
    let mut c = Cursor(body);
    let entry = c.string()?;
    let name = c.string()?;
    let mut opts = Options { daemon: c.u8()? != 0, ..Options::default() };
    let client_pid = c.i32()?;
    let has_nice = c.u8()? != 0;
    let nice = c.i32()?;
    opts.nice = has_nice.then_some(nice);
    opts.new_session = c.u8()? != 0;
    let has_pg = c.u8()? != 0;
    let pg = c.i32()?;
    opts.process_group = has_pg.then_some(pg);
    let ncpus = c.u32()? as usize;
    if ncpus > 4096 {
        return Err(err!(Corrupt, "fork server: {ncpus} CPUs in a request"));
    }
    if ncpus > 0 {
        opts.affinity = Some((0..ncpus).map(|_| c.u32().map(|v| v as usize)).collect::<Result<_>>()?);
    }
    let nfds = c.u32()? as usize;
    if nfds > MAX_PASSED_FDS {
        return Err(err!(Corrupt, "fork server: {nfds} descriptors in a request"));
    }
    for _ in 0..nfds {
        let w = c.i32()?;
        if w < 0 || opts.keep_fds.contains(&w) {
            return Err(err!(Corrupt, "fork server: wanted descriptor number {w} is negative or repeated"));
        }
        opts.keep_fds.push(w);
    }
    let n = c.u64()? as usize;
    let arg = c.take(n)?.to_vec();
    if !c.0.is_empty() {
        return Err(err!(Corrupt, "fork server: {} stray bytes after a request", c.0.len()));
    }
    opts.name = Some(name.clone());
    Ok(Request { entry, arg, name, opts, client_pid })
}

/// Starts the server: this program re-executed (its `init` serves), or the program a binding set.
fn start_server() -> Result<Client> {
    let (mine, theirs) = socketpair()?;
    let argv = match PROGRAM.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        Some(a) => a,
        None => {
            let (exe, argv) = self_exec()?;
            let mut a = if argv.is_empty() { vec![exe.clone()] } else { argv.clone() };
            // argv[0] may be relative to a cwd we no longer know: exec the resolved path instead.
            a[0] = exe.clone();
            a
        }
    };
    let opts = Options { keep_fds: vec![theirs.as_raw_fd()], ..Options::default() };
    let extra = vec![(OsString::from(ENV_SERVER_FD), OsString::from(theirs.as_raw_fd().to_string()))];
    let server = super::spawn::spawn_exec(&argv[0], &argv, &opts, &extra, "ForkServer".into())?;
    drop(theirs);
    // SAFETY: the handler only closes a descriptor, which is async-signal-safe (nix has no
    // pthread_atfork).
    ATFORK.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(close_client_in_child));
    });
    CLIENT_FD.store(mine.as_raw_fd(), Ordering::Relaxed);
    Ok(Client { sock: mine, server: Some(server) })
}

/// The descriptors a request passes, as (descriptor here, number in the child): `keep_fds` at
/// their own numbers, then the standard streams the options redirect (a file or /dev/null is
/// opened here, so a bad path is an error at start). `opened` holds what was opened here until
/// it has been sent.
struct Passed {
    fds: Vec<RawFd>,
    wanted: Vec<RawFd>,
    _opened: Vec<OwnedFd>,
}

fn passed_fds(opts: &Options) -> Result<Passed> {
    use super::options::Stdio;
    let mut p = Passed { fds: Vec::new(), wanted: Vec::new(), _opened: Vec::new() };
    for &fd in &opts.keep_fds {
        if !p.wanted.contains(&fd) {
            p.fds.push(fd);
            p.wanted.push(fd);
        }
    }
    for (target, s) in [&opts.stdin, &opts.stdout, &opts.stderr].into_iter().enumerate() {
        let target = target as RawFd;
        let fd = match s {
            Stdio::Inherit => continue,
            // "2>&1": a stream redirected above is what a lower number refers to in the child
            // (spawn and fork apply the redirections in order, in the child).
            Stdio::Fd(fd) if (0..target).contains(fd) => match p.wanted.iter().position(|w| w == fd) {
                Some(i) => p.fds[i],
                None => *fd,
            },
            Stdio::Fd(fd) => *fd,
            Stdio::Null => {
                let f = std::fs::OpenOptions::new().read(target == 0).write(target != 0).open("/dev/null")?;
                p._opened.push(f.into());
                p._opened.last().unwrap().as_raw_fd()
            }
            Stdio::File { path, append } => {
                let f = if target == 0 {
                    std::fs::File::open(path)
                } else {
                    {
                        use std::os::unix::fs::OpenOptionsExt;
                        // The mode spawn creates files with.
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create(true)
                            .append(*append)
                            .truncate(!*append)
                            .mode(0o644)
                            .open(path)
                    }
                };
                let f = f.map_err(|e| Error::from(e).context(format!("forkserver: stdio file {}", path.display())))?;
                p._opened.push(f.into());
                p._opened.last().unwrap().as_raw_fd()
            }
        };
        // A redirected stream wins over a kept descriptor of the same number.
        if let Some(i) = p.wanted.iter().position(|w| *w == target) {
            p.fds[i] = fd;
        } else {
            p.fds.push(fd);
            p.wanted.push(target);
        }
    }
    if p.fds.len() > MAX_PASSED_FDS {
        return Err(err!(
            Invalid,
            "forkserver: {} descriptors to pass to the child; at most {MAX_PASSED_FDS} travel with a request",
            p.fds.len()
        ));
    }
    Ok(p)
}

/// Asks the fork server (starting it on first use) for a child running `entry` with `arg`.
/// Kept descriptors and redirected standard streams travel with the request (SCM_RIGHTS).
pub(crate) fn request(entry: &str, arg: &[u8], opts: &Options) -> Result<Process> {
    opts.validate()?;
    if opts.env_clear || !opts.env_set.is_empty() || !opts.env_remove.is_empty() || opts.cwd.is_some() {
        return Err(err!(
            Invalid,
            "forkserver: env and cwd options apply to spawn only (the child is a copy of the server)"
        ));
    }
    if arg.len() > MAX_FRAME - 4096 {
        return Err(err!(TooBig, "forkserver: argument of {} bytes is too large", arg.len()));
    }
    let passed = passed_fds(opts)?;
    let name = super::next_name(opts);
    let frame = encode(entry, arg, &name, opts, &passed.wanted);
    if frame.len() > MAX_FRAME {
        return Err(err!(TooBig, "forkserver: request of {} bytes is too large", frame.len()));
    }
    let mut g = CLIENT.get().lock();
    for attempt in 0..2 {
        if g.is_none() {
            *g = Some(start_server()?);
        }
        let c = g.as_ref().unwrap();
        let sock = c.sock.as_fd();
        let sent = send_with_fds(sock, &frame, &passed.fds);
        let reply = sent.and_then(|_| {
            let mut pid = [0u8; 4];
            let fd = recv_with_fd(sock, &mut pid)?;
            Ok((i32::from_le_bytes(pid), fd))
        });
        match reply {
            Ok((pid, Some(status))) if pid > 0 => {
                return Ok(Process::new(pid, name, opts.daemon, Link::Served(status)));
            }
            Ok((pid, None)) if pid > 0 => {
                // The kernel dropped the status socket (this process is at its descriptor
                // limit): the child runs, but cannot be joined from here.
                return Err(err!(
                    Os,
                    "forkserver: child {pid} started, but its status socket could not be received (descriptor limit?)"
                ));
            }
            Ok((code, _)) => {
                let mut len = [0u8; 4];
                read_exact(sock, &mut len)?;
                let n = (u32::from_le_bytes(len) as usize).min(64 * 1024);
                let mut msg = vec![0u8; n];
                read_exact(sock, &mut msg)?;
                let kind = crate::ErrorKind::from_code(code).unwrap_or(crate::ErrorKind::Os);
                return Err(Error::new(kind, format!("forkserver: {}", String::from_utf8_lossy(&msg))));
            }
            // The server died: start a new one once. (Only a broken connection says so: any other
            // error, e.g. from the descriptors being passed, must not drop a working server,
            // which would take its running children's exit codes with it.)
            Err(e) if attempt == 0 && server_gone(&e) => {
                if let Some(old) = g.take() {
                    CLIENT_FD.store(-1, Ordering::Relaxed);
                    drop(old.sock);
                    if let Some(s) = old.server {
                        let _ = s.join(std::time::Duration::from_secs(1));
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(err!(Os, "forkserver: the server keeps failing"))
}

/// Whether a failed exchange with the server means the server is gone (so a new one may start).
fn server_gone(e: &Error) -> bool {
    e.kind() == crate::ErrorKind::Closed
        || matches!(e.errno().map(Errno::from_raw), Some(Errno::EPIPE | Errno::ECONNRESET))
}

struct Served {
    pid: i32,
    pidfd: Option<OwnedFd>,
    status: OwnedFd,
    daemon: bool,
}

/// The server loop, run by the server process on the descriptor it inherited. Returns only in a
/// forked child, with its request (the caller runs it and exits), or with Closed in the server
/// once the client has gone away (daemonic children are then terminated).
pub fn serve(fd: RawFd) -> Result<Request> {
    // A negative or closed descriptor is the caller's mistake (and -1 is no OwnedFd at all).
    if fd < 0 {
        return Err(err!(Invalid, "fork server: {fd} is not a descriptor"));
    }
    // SAFETY: fd >= 0, borrowed only to ask the kernel whether it is open; nothing owns it yet.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    if fcntl(borrowed, FcntlArg::F_GETFD).is_err() {
        return Err(err!(Invalid, "fork server: {fd} is not an open descriptor"));
    }
    // SAFETY: the descriptor is open and was handed to us for this purpose.
    let client = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = fcntl(&client, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    let mut children: Vec<Served> = Vec::new();
    loop {
        let request_waiting = {
            let mut fds = Vec::with_capacity(1 + children.len());
            fds.push(PollFd::new(client.as_fd(), PollFlags::POLLIN));
            let pidfds = children.iter().filter_map(|c| c.pidfd.as_ref());
            fds.extend(pidfds.map(|p| PollFd::new(p.as_fd(), PollFlags::POLLIN)));
            // Children without a pidfd (old kernels) are checked every 50 ms.
            let pidless = children.iter().any(|c| c.pidfd.is_none());
            match poll(&mut fds, if pidless { PollTimeout::from(50u8) } else { PollTimeout::NONE }) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::os(e, "fork server: poll")),
            }
            // Flags nix has no name for (None) are still an event.
            fds[0].revents().map_or(true, |r| !r.is_empty())
        };
        // Report children that ended.
        children.retain(|c| match wait_pid(c.pid, true) {
            Ok(None) => true,
            Ok(Some(st)) => {
                let code = super::handle::decode_status(st);
                let _ = write_all(c.status.as_fd(), &code.to_le_bytes());
                false
            }
            Err(_) => false,
        });
        if !request_waiting {
            continue;
        }
        let mut len = [0u8; 4];
        let mut received = Vec::new();
        let truncated = match recv_exact_fds(client.as_fd(), &mut len, &mut received) {
            Ok(t) => t,
            Err(e) => {
                for c in &children {
                    if c.daemon {
                        let _ = kill(Pid::from_raw(c.pid), Signal::SIGTERM);
                    }
                }
                return Err(e);
            }
        };
        let n = u32::from_le_bytes(len) as usize;
        if n > MAX_FRAME {
            return Err(err!(Corrupt, "fork server: request of {n} bytes"));
        }
        let mut body = vec![0u8; n];
        let truncated = recv_exact_fds(client.as_fd(), &mut body, &mut received)? | truncated;
        let placed = decode(&body).and_then(|req| {
            let placed = place_above(&req.opts.keep_fds, received, truncated)?;
            Ok((req, placed))
        });
        let (req, placed) = match placed {
            Ok(r) => r,
            Err(e) => {
                reply_error(client.as_fd(), &e)?;
                continue;
            }
        };
        let (status_client, status_server) = match socketpair() {
            Ok(pair) => pair,
            Err(e) => {
                // Out of descriptors, say: refuse this request, keep serving the others.
                reply_error(client.as_fd(), &e)?;
                continue;
            }
        };
        super::fork::flush_all();
        // SAFETY: the server is single-threaded; the child returns to run the request.
        let pid = match unsafe { nix::unistd::fork() } {
            Err(e) => {
                reply_error(client.as_fd(), &Error::os(e, "fork"))?;
                continue;
            }
            Ok(ForkResult::Parent { child }) => child.as_raw(),
            Ok(ForkResult::Child) => {
                return Ok(in_child(req, placed, client, (status_client, status_server), children))
            }
        };
        // The child has its copies: the server keeps none.
        drop(placed);
        if send_with_fd(client.as_fd(), &pid.to_le_bytes(), status_client.as_raw_fd()).is_err() {
            // The client is gone; the loop notices EOF next.
        }
        drop(status_client);
        children.push(Served { pid, pidfd: pidfd_open(pid), status: status_server, daemon: req.opts.daemon });
    }
}

/// In the server's newly forked child: closes the server's descriptors, puts the passed ones at
/// their wanted numbers and applies the options; exits 127 when a step fails. Returns the
/// request for the caller to run.
fn in_child(
    req: Request,
    placed: Vec<OwnedFd>,
    client: OwnedFd,
    status: (OwnedFd, OwnedFd),
    children: Vec<Served>,
) -> Request {
    // The server's descriptors go first, so that none is open at a wanted number.
    drop(client);
    drop(status);
    drop(children);
    for (tmp, want) in placed.iter().zip(&req.opts.keep_fds) {
        // SAFETY: this child means to replace whatever is open at `want` (the server's own
        // descriptors are closed above); the copy, not close-on-exec as a kept descriptor of
        // spawn is not, is left open for the entry, which finds it by number.
        match unsafe { nix::unistd::dup2_raw(tmp, *want) } {
            Ok(fd) => {
                let _ = fd.into_raw_fd();
            }
            Err(e) => {
                eprintln!("mpx: process '{}': {}", req.name, Error::os(e, format!("dup2 onto descriptor {want}")));
                // SAFETY: ends this child at once (nix has no _exit).
                unsafe { libc::_exit(127) };
            }
        }
    }
    drop(placed);
    super::after_fork_child();
    super::current::become_child(&req.name, req.client_pid);
    let server_pid = nix::unistd::getppid().as_raw();
    if let Err(e) = super::fork::apply_in_child(&req.opts, server_pid, true) {
        eprintln!("mpx: process '{}': {e}", req.name);
        // SAFETY: as above.
        unsafe { libc::_exit(127) };
    }
    req
}

/// Checks the descriptors that arrived against the numbers the request wants, and moves each
/// above the highest wanted number (close-on-exec still), so that in the child dup2 onto one
/// wanted number never clobbers a descriptor still to be placed. The received ones are closed.
fn place_above(wanted: &[RawFd], received: Vec<OwnedFd>, truncated: bool) -> Result<Vec<OwnedFd>> {
    if truncated {
        return Err(err!(
            Invalid,
            "more than {MAX_PASSED_FDS} descriptors came with a request: the kernel dropped some"
        ));
    }
    if received.len() != wanted.len() {
        return Err(err!(Invalid, "the request passes {} descriptors but {} arrived", wanted.len(), received.len()));
    }
    let floor = match wanted.iter().max() {
        None => 0,
        Some(m) => m.checked_add(1).ok_or_else(|| err!(Invalid, "descriptor number {m} is out of range"))?,
    };
    received
        .iter()
        .zip(wanted)
        .map(|(fd, want)| {
            let t = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(floor)).map_err(|e| {
                Error::os(e, format!("cannot place descriptor {want} in the child (the server's descriptor limit?)"))
            })?;
            // SAFETY: F_DUPFD_CLOEXEC made a new descriptor, ours alone.
            Ok(unsafe { OwnedFd::from_raw_fd(t) })
        })
        .collect()
}

fn reply_error(fd: BorrowedFd<'_>, e: &Error) -> Result<()> {
    let mut b = e.kind().code().to_le_bytes().to_vec();
    b.extend((e.message().len() as u32).to_le_bytes());
    b.extend(e.message().as_bytes());
    write_all(fd, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inode open at `fd`, if any (other tests run in parallel: compare identities, not counts).
    /// libc: `fd` may be closed, so it cannot be a BorrowedFd for nix's fstat.
    fn inode(fd: RawFd) -> Option<u64> {
        // SAFETY: fstat fills the zeroed struct or fails.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            (libc::fstat(fd, &mut st) == 0).then_some(st.st_ino)
        }
    }

    #[test]
    fn descriptors_travel_with_a_frame_and_mismatches_are_refused() {
        let (a, b) = socketpair().unwrap();
        let (p, q) = socketpair().unwrap();
        let opts = Options::default();
        let frame = encode("e", b"xyz", "n", &opts, &[7, 3]);
        send_with_fds(a.as_fd(), &frame, &[p.as_raw_fd(), q.as_raw_fd()]).unwrap();
        let mut got = Vec::new();
        let mut len = [0u8; 4];
        assert!(!recv_exact_fds(b.as_fd(), &mut len, &mut got).unwrap());
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        assert!(!recv_exact_fds(b.as_fd(), &mut body, &mut got).unwrap());
        assert_eq!(got.len(), 2);
        let req = decode(&body).unwrap();
        assert_eq!(req.opts.keep_fds, vec![7, 3]);
        assert_eq!(req.arg, b"xyz");
        // One descriptor too few: refused, and what arrived is closed with the vector.
        let one: Vec<OwnedFd> = vec![got.pop().unwrap()];
        let (n, ino) = (one[0].as_raw_fd(), inode(one[0].as_raw_fd()));
        let e = place_above(&req.opts.keep_fds, one, false).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Invalid);
        assert_ne!(inode(n), ino, "the received descriptor was closed");
        assert!(place_above(&[3], got, true).is_err(), "cut off by the kernel");
        // Placed above the highest wanted number, still close-on-exec.
        let placed = place_above(&[40, 2], vec![p.try_clone().unwrap(), q.try_clone().unwrap()], false).unwrap();
        for fd in &placed {
            assert!(fd.as_raw_fd() > 40);
            let flags = FdFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFD).unwrap());
            assert!(flags.contains(FdFlag::FD_CLOEXEC));
        }
    }

    #[test]
    fn decode_refuses_bad_descriptor_lists() {
        let opts = Options::default();
        for wanted in [&[3, 3][..], &[-1][..]] {
            let frame = encode("e", b"", "n", &opts, wanted);
            assert_eq!(decode(&frame[4..]).err().unwrap().kind(), crate::ErrorKind::Corrupt, "{wanted:?}");
        }
        let mut frame = encode("e", b"", "n", &opts, &[]);
        frame.push(0);
        assert!(decode(&frame[4..]).is_err(), "a stray byte");
    }
}
