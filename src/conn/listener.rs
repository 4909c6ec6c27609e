//! Listener and client: unrelated processes (or hosts, over TCP) meet at an address, and with an
//! authkey both prove they know it, exactly as CPython's `Listener`/`Client` do.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use super::address::{Address, RawAddr};
use super::auth;
use super::connection::{Connection, Transport};
use super::sys;
use crate::error::errno;
use crate::util::Timeout;
use crate::{err, Error, ErrorKind, Result};

/// How long an accepted client has to finish the authkey handshake by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A listening socket. Dropping it closes the socket and removes its filesystem path (only if
/// the path still refers to this socket).
pub struct Listener {
    fd: OwnedFd,
    address: String,
    transport: Transport,
    authkey: Option<Vec<u8>>,
    /// Path to remove at drop, with the identity of the socket file made here.
    unlink: Option<(PathBuf, u64, u64)>,
    /// Nanoseconds an accepted client has for the handshake (negative: no limit).
    handshake_ns: AtomicI64,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("authenticated", &self.authkey.is_some())
            .finish()
    }
}

fn socket(family: libc::c_int, nonblock: bool) -> Result<OwnedFd> {
    let ty = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | if nonblock { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(family, ty, 0) };
    if fd < 0 {
        return Err(Error::last_os("socket"));
    }
    // SAFETY: just created, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_int_opt(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) {
    // SAFETY: v lives across the call. Failure only loses an optimisation.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

fn set_blocking(fd: RawFd, blocking: bool) -> Result<()> {
    // SAFETY: flag manipulation on our own descriptor.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 {
            return Err(Error::last_os("fcntl"));
        }
        let new = if blocking { fl & !libc::O_NONBLOCK } else { fl | libc::O_NONBLOCK };
        if libc::fcntl(fd, libc::F_SETFL, new) < 0 {
            return Err(Error::last_os("fcntl"));
        }
    }
    Ok(())
}

fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn classify(e: Error, what: &str) -> Error {
    match e.errno() {
        Some(libc::EADDRINUSE) => Error::new(ErrorKind::Exists, format!("{what}: address already in use")),
        _ => e.context(what),
    }
}

impl Listener {
    /// Listens at `address` (see the address module for the forms) with a queue of `backlog`
    /// (>= 1) pending connections. With `authkey`, every accepted connection must pass the
    /// mutual handshake first. A filesystem path that exists is Exists (as an address in use).
    pub fn bind(address: &str, backlog: i32, authkey: Option<&[u8]>) -> Result<Listener> {
        let what = format!("listen {address}");
        if backlog < 1 {
            return Err(err!(Invalid, "{what}: backlog {backlog} must be at least 1"));
        }
        let addr = Address::parse(address)?;
        let raw = addr.sockaddrs()?[0];
        let fd = socket(raw.family(), true).map_err(|e| e.context(&what))?;
        if !addr.is_unix() {
            set_int_opt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
        }
        // SAFETY: raw holds a valid address of raw.len bytes.
        if unsafe { libc::bind(fd.as_raw_fd(), raw.as_ptr(), raw.len) } < 0 {
            return Err(classify(Error::last_os("bind"), &what));
        }
        let unlink = match &addr {
            Address::Unix(p) => file_id(p).map(|(d, i)| (p.clone(), d, i)),
            _ => None,
        };
        // From here on a failure must remove the path just made.
        let mut listener = Listener {
            address: String::new(),
            transport: if addr.is_unix() { Transport::Unix } else { Transport::Tcp },
            authkey: authkey.map(|k| k.to_vec()),
            unlink,
            handshake_ns: AtomicI64::new(DEFAULT_HANDSHAKE_TIMEOUT.as_nanos() as i64),
            fd,
        };
        // SAFETY: listen on our socket.
        if unsafe { libc::listen(listener.fd.as_raw_fd(), backlog) } < 0 {
            return Err(Error::last_os("listen").context(&what));
        }
        listener.address = RawAddr::local(listener.fd.as_raw_fd())?.to_address_string();
        Ok(listener)
    }

    /// The address clients connect to, with what the kernel chose filled in: the port for
    /// "tcp:host:0", the name for "unix:@".
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The listening descriptor (readable when a connection is waiting), for poll/epoll.
    pub fn fileno(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn has_authkey(&self) -> bool {
        self.authkey.is_some()
    }

    /// How long an accepted client may take for the handshake (default 30 s; Timeout::Forever
    /// for no limit). It bounds what one silent client can hold up an accept loop.
    pub fn set_handshake_timeout(&self, t: Timeout) {
        let ns = match t {
            Timeout::Forever => -1,
            Timeout::After(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        };
        self.handshake_ns.store(ns, Ordering::Relaxed);
    }

    /// Waits up to `timeout` for a client and returns the connection, authenticated if the
    /// listener has an authkey: the handshake must end within the same timeout and the
    /// handshake timeout. A client that fails it is dropped and the call returns Auth (call
    /// accept again for the next client), as CPython's `Listener.accept` raises.
    pub fn accept(&self, timeout: impl Into<Timeout>) -> Result<Connection> {
        let deadline = timeout.into().deadline();
        let lfd = self.fd.as_raw_fd();
        let fd = loop {
            // SAFETY: accept4 on our listening socket; the peer address is not needed.
            let fd = unsafe { libc::accept4(lfd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
            if fd >= 0 {
                // SAFETY: just accepted, owned here.
                break unsafe { OwnedFd::from_raw_fd(fd) };
            }
            match errno() {
                libc::EINTR | libc::ECONNABORTED => continue,
                libc::EAGAIN => {
                    if !sys::wait_fd(lfd, libc::POLLIN, deadline)? {
                        return Err(err!(Timeout, "accept {}: no connection within the timeout", self.address));
                    }
                }
                e => return Err(Error::from_errno(e, format!("accept {}", self.address))),
            }
        };
        if self.transport == Transport::Tcp {
            set_int_opt(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        }
        let conn = Connection::new(fd, self.transport, true, true);
        if let Some(key) = &self.authkey {
            let hs = match self.handshake_ns.load(Ordering::Relaxed) {
                n if n < 0 => None,
                n => Instant::now().checked_add(Duration::from_nanos(n as u64)),
            };
            let deadline = match (deadline, hs) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let what = format!("accept {}", self.address);
            auth::deliver_challenge(&conn, key, deadline).map_err(|e| handshake_context(e, &what))?;
            auth::answer_challenge(&conn, key, deadline).map_err(|e| handshake_context(e, &what))?;
        }
        Ok(conn)
    }
}

fn handshake_context(e: Error, what: &str) -> Error {
    if e.kind() == ErrorKind::Timeout {
        err!(Timeout, "{what}: the authkey handshake did not finish within the timeout")
    } else {
        e.context(what)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some((path, dev, ino)) = &self.unlink {
            // Remove the path only if it is still our socket (not one a later listener made).
            if file_id(path) == Some((*dev, *ino)) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Connects to a listener at `address`, waiting up to `timeout` for the connection and, with
/// `authkey`, the mutual handshake (this side answers first, then challenges, as CPython's
/// `Client`). A wrong key on either side is Auth; nothing listening is NotFound (Unix path) or
/// Os (connection refused).
pub fn connect(address: &str, authkey: Option<&[u8]>, timeout: impl Into<Timeout>) -> Result<Connection> {
    let deadline = timeout.into().deadline();
    let what = format!("connect {address}");
    let addr = Address::parse(address)?;
    let mut last = None;
    let mut fd = None;
    for raw in addr.sockaddrs()? {
        match connect_one(&raw, deadline) {
            Ok(f) => {
                fd = Some(f);
                break;
            }
            Err(e) if e.kind() == ErrorKind::Timeout => return Err(e.context(&what)),
            Err(e) => last = Some(e),
        }
    }
    let fd = match fd {
        Some(f) => f,
        None => return Err(last.expect("at least one address was tried").context(&what)),
    };
    let transport = if addr.is_unix() { Transport::Unix } else { Transport::Tcp };
    if transport == Transport::Tcp {
        set_int_opt(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
    }
    let conn = Connection::new(fd, transport, true, true);
    if let Some(key) = authkey {
        auth::answer_challenge(&conn, key, deadline).map_err(|e| handshake_context(e, &what))?;
        auth::deliver_challenge(&conn, key, deadline).map_err(|e| handshake_context(e, &what))?;
    }
    Ok(conn)
}

fn connect_one(raw: &RawAddr, deadline: Option<Instant>) -> Result<OwnedFd> {
    let fd = socket(raw.family(), true)?;
    let s = fd.as_raw_fd();
    loop {
        // SAFETY: raw holds a valid address of raw.len bytes.
        if unsafe { libc::connect(s, raw.as_ptr(), raw.len) } == 0 {
            break;
        }
        match errno() {
            libc::EINPROGRESS | libc::EINTR => {
                if !sys::wait_fd(s, libc::POLLOUT, deadline)? {
                    return Err(err!(Timeout, "no connection within the timeout"));
                }
                let mut v: libc::c_int = 0;
                let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                // SAFETY: v and len are valid for getsockopt.
                unsafe {
                    libc::getsockopt(s, libc::SOL_SOCKET, libc::SO_ERROR, (&mut v as *mut libc::c_int).cast(), &mut len)
                };
                if v != 0 {
                    return Err(Error::from_errno(v, "connect"));
                }
                break;
            }
            // A Unix listener whose backlog is full: retry until it has room or time runs out.
            libc::EAGAIN => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(err!(Timeout, "the listener's backlog stayed full until the timeout"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            e => return Err(Error::from_errno(e, "connect")),
        }
    }
    set_blocking(s, true)?;
    Ok(fd)
}
