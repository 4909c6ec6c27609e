//! The fork server: a clean single-threaded copy of the program (or, for Python, an interpreter)
//! started on first use, which forks children on request so that forking stays safe in a
//! threaded parent. One server per client process; it exits when the client goes away.
//!
//! Wire protocol over a private Unix stream socket (little-endian):
//! request  = u32 length, then: u32 entry_len, entry, u32 name_len, name, u8 daemon,
//!            i32 client pid, u8 has_nice, i32 nice, u8 new_session, u8 has_pgroup, i32 pgroup,
//!            u32 ncpus, ncpus x u32, u64 arg_len, arg
//! reply    = i32 pid (> 0) with the child's status socket attached (SCM_RIGHTS), or
//!            i32 -errno, u32 len, message
//! status   = the server writes the child's exit code (i32, Python convention) on the status
//!            socket when it reaps the child.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use super::handle::{pidfd_open, Link, Process};
use super::options::Options;
use crate::{err, Error, Result};

pub(crate) const ENV_SERVER_FD: &str = "MPX_FORKSERVER_FD";
const MAX_FRAME: usize = 1 << 30;

struct Client {
    owner: u32,
    sock: OwnedFd,
    server: Option<Process>,
}

static CLIENT: Mutex<Option<Client>> = Mutex::new(None);
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

/// A forked child must not talk to its parent's server.
pub(crate) fn forget_after_fork() {
    if let Ok(mut g) = CLIENT.try_lock() {
        if let Some(c) = g.take() {
            std::mem::forget(c.server); // not our child; the reaper must not adopt it
            drop(c.sock);
        }
    }
}

fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fills two fds.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) } < 0 {
        return Err(Error::last_os("socketpair"));
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn write_all(fd: RawFd, mut b: &[u8]) -> Result<()> {
    while !b.is_empty() {
        // SAFETY: writing from a valid slice; MSG_NOSIGNAL so a dead peer is EPIPE, not SIGPIPE.
        let n = unsafe { libc::send(fd, b.as_ptr().cast(), b.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            if crate::error::errno() == libc::EINTR {
                continue;
            }
            return Err(Error::last_os("fork server: send"));
        }
        b = &b[n as usize..];
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes; Closed on EOF before the first byte.
fn read_exact(fd: RawFd, buf: &mut [u8]) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the unfilled part of buf.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n == 0 {
            return Err(err!(Closed, "fork server: connection closed"));
        }
        if n < 0 {
            if crate::error::errno() == libc::EINTR {
                continue;
            }
            return Err(Error::last_os("fork server: read"));
        }
        got += n as usize;
    }
    Ok(())
}

/// Sends bytes with one descriptor attached.
fn send_with_fd(sock: RawFd, data: &[u8], fd: RawFd) -> Result<()> {
    // SAFETY: a standard SCM_RIGHTS message built in a properly aligned buffer.
    unsafe {
        let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() };
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) != data.len() as isize {
            return Err(Error::last_os("fork server: sendmsg"));
        }
    }
    Ok(())
}

/// Receives exactly `buf.len()` bytes (sent in one sendmsg) and the descriptor attached, if any.
fn recv_with_fd(sock: RawFd, buf: &mut [u8]) -> Result<Option<OwnedFd>> {
    // SAFETY: as send_with_fd; MSG_CMSG_CLOEXEC so the received fd does not leak into execs.
    unsafe {
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let n = loop {
            let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_WAITALL);
            if n < 0 && crate::error::errno() == libc::EINTR {
                continue;
            }
            break n;
        };
        if n == 0 {
            return Err(err!(Closed, "fork server: the server closed the connection"));
        }
        if n < 0 {
            return Err(Error::last_os("fork server: recvmsg"));
        }
        if (n as usize) < buf.len() {
            read_exact(sock, &mut buf[n as usize..])?;
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if !c.is_null() && (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
            return Ok(Some(OwnedFd::from_raw_fd(fd)));
        }
        Ok(None)
    }
}

/// A decoded request, as a child of the server sees it.
pub struct Request {
    pub entry: String,
    pub arg: Vec<u8>,
    pub name: String,
    pub opts: Options,
    pub client_pid: i32,
}

fn encode(entry: &str, arg: &[u8], name: &str, opts: &Options) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + entry.len() + name.len() + arg.len());
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
    let n = c.u64()? as usize;
    let arg = c.take(n)?.to_vec();
    opts.name = Some(name.clone());
    Ok(Request { entry, arg, name, opts, client_pid })
}

/// Starts the server: this program re-executed (its `init` serves), or the program a binding set.
fn start_server() -> Result<Client> {
    let (mine, theirs) = socketpair()?;
    let argv = match PROGRAM.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        Some(a) => a,
        None => {
            let (exe, argv) = super::entry::self_exec()?;
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
    Ok(Client { owner: std::process::id(), sock: mine, server: Some(server) })
}

/// Asks the fork server (starting it on first use) for a child running `entry` with `arg`.
pub(crate) fn request(entry: &str, arg: &[u8], opts: &Options) -> Result<Process> {
    opts.validate()?;
    if opts.env_clear || !opts.env_set.is_empty() || !opts.env_remove.is_empty() || !opts.keep_fds.is_empty() || opts.cwd.is_some() {
        return Err(err!(Invalid, "forkserver: env, keep_fds and cwd options apply to spawn only"));
    }
    let frame = encode(entry, arg, "", opts);
    if frame.len() > MAX_FRAME {
        return Err(err!(TooBig, "forkserver: argument of {} bytes is too large", arg.len()));
    }
    let name = super::next_name(opts);
    let frame = encode(entry, arg, &name, opts);
    let mut g = CLIENT.lock().unwrap_or_else(|e| e.into_inner());
    for attempt in 0..2 {
        if g.as_ref().map_or(true, |c| c.owner != std::process::id()) {
            if let Some(old) = g.take() {
                std::mem::forget(old.server);
            }
            *g = Some(start_server()?);
        }
        let c = g.as_ref().unwrap();
        let sock = c.sock.as_raw_fd();
        let sent = write_all(sock, &frame);
        let reply = sent.and_then(|_| {
            let mut pid = [0u8; 4];
            let fd = recv_with_fd(sock, &mut pid)?;
            Ok((i32::from_le_bytes(pid), fd))
        });
        match reply {
            Ok((pid, Some(status))) if pid > 0 => {
                return Ok(Process::new(pid, name, opts.daemon, Link::Served(status)));
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
            // The server died: start a new one once.
            Err(e) if attempt == 0 && matches!(e.kind(), crate::ErrorKind::Closed | crate::ErrorKind::Os) => {
                if let Some(old) = g.take() {
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
    // SAFETY: the descriptor was handed to us for this purpose.
    let client = unsafe { OwnedFd::from_raw_fd(fd) };
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let mut children: Vec<Served> = Vec::new();
    loop {
        let mut fds = vec![libc::pollfd { fd, events: libc::POLLIN, revents: 0 }];
        for c in &children {
            if let Some(p) = &c.pidfd {
                fds.push(libc::pollfd { fd: p.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            }
        }
        // Children without a pidfd (old kernels) are checked every 50 ms.
        let timeout = if children.iter().any(|c| c.pidfd.is_none()) { 50 } else { -1 };
        // SAFETY: valid pollfd array.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if r < 0 && crate::error::errno() != libc::EINTR {
            return Err(Error::last_os("fork server: poll"));
        }
        // Report children that ended.
        children.retain(|c| {
            let mut st = 0;
            let r = unsafe { libc::waitpid(c.pid, &mut st, libc::WNOHANG | libc::__WALL) };
            if r == c.pid {
                let code = super::handle::decode_status(st);
                let _ = write_all(c.status.as_raw_fd(), &code.to_le_bytes());
                false
            } else {
                r == 0
            }
        });
        if fds[0].revents == 0 {
            continue;
        }
        let mut len = [0u8; 4];
        if let Err(e) = read_exact(fd, &mut len) {
            for c in &children {
                if c.daemon {
                    unsafe { libc::kill(c.pid, libc::SIGTERM) };
                }
            }
            return Err(e);
        }
        let n = u32::from_le_bytes(len) as usize;
        if n > MAX_FRAME {
            return Err(err!(Corrupt, "fork server: request of {n} bytes"));
        }
        let mut body = vec![0u8; n];
        read_exact(fd, &mut body)?;
        let req = match decode(&body) {
            Ok(r) => r,
            Err(e) => {
                reply_error(fd, &e)?;
                continue;
            }
        };
        let (status_client, status_server) = socketpair()?;
        super::fork::flush_all();
        // SAFETY: the server is single-threaded; the child returns to run the request.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            reply_error(fd, &Error::last_os("fork"))?;
            continue;
        }
        if pid == 0 {
            drop(client);
            drop(status_client);
            drop(status_server);
            for c in children {
                std::mem::forget(c.pidfd); // closed by the drops below would be fine too
                drop(c.status);
            }
            super::after_fork_child();
            super::current::become_child(&req.name, req.client_pid);
            let server_pid = unsafe { libc::getppid() };
            if let Err(e) = super::fork::apply_in_child(&req.opts, server_pid) {
                eprintln!("mpx: process '{}': {e}", req.name);
                unsafe { libc::_exit(127) };
            }
            return Ok(req);
        }
        let mut reply = pid.to_le_bytes().to_vec();
        reply.truncate(4);
        if send_with_fd(fd, &reply, status_client.as_raw_fd()).is_err() {
            // The client is gone; the loop notices EOF next.
        }
        drop(status_client);
        children.push(Served { pid, pidfd: pidfd_open(pid), status: status_server, daemon: req.opts.daemon });
    }
}

fn reply_error(fd: RawFd, e: &Error) -> Result<()> {
    let mut b = e.kind().code().to_le_bytes().to_vec();
    b.extend((e.message().len() as u32).to_le_bytes());
    b.extend(e.message().as_bytes());
    write_all(fd, &b)
}
