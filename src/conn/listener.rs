//! Listener and client: unrelated processes (or hosts, over TCP) meet at an address, and with an
//! authkey both prove they know it, exactly as CPython's `Listener`/`Client` do.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::PollFlags;
use nix::sys::socket::{self as sock, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};

use super::address::{address_string, Address, SockAddr};
use super::auth;
use super::connection::{Connection, Transport};
use super::io::wait_fd;
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

fn socket(family: AddressFamily, nonblock: bool) -> Result<OwnedFd> {
    let flags = SockFlag::SOCK_CLOEXEC | if nonblock { SockFlag::SOCK_NONBLOCK } else { SockFlag::empty() };
    sock::socket(family, SockType::Stream, flags, None).map_err(|e| Error::os(e, "socket"))
}

fn set_blocking(fd: &OwnedFd, blocking: bool) -> Result<()> {
    let fl = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL).map_err(|e| Error::os(e, "fcntl"))?);
    let new = if blocking { fl - OFlag::O_NONBLOCK } else { fl | OFlag::O_NONBLOCK };
    fcntl(fd, FcntlArg::F_SETFL(new)).map_err(|e| Error::os(e, "fcntl"))?;
    Ok(())
}

fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn classify(e: Error, what: &str) -> Error {
    match e.errno().map(Errno::from_raw) {
        Some(Errno::EADDRINUSE) => Error::new(ErrorKind::Exists, format!("{what}: address already in use")),
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
        let authkey = authkey.map(|k| copy_key(k, &what)).transpose()?;
        let addr = Address::parse(address)?;
        let raw = addr.sockaddrs()?.swap_remove(0);
        let fd = socket(raw.family(), true).map_err(|e| e.context(&what))?;
        if !addr.is_unix() {
            // Failure only loses the quick rebinding of a port.
            let _ = sock::setsockopt(&fd, sockopt::ReuseAddr, &true);
        }
        raw.apply(fd.as_raw_fd(), sock::bind).map_err(|e| classify(Error::os(e, "bind"), &what))?;
        let unlink = match &addr {
            Address::Unix(p) => file_id(p).map(|(d, i)| (p.clone(), d, i)),
            _ => None,
        };
        // From here on a failure must remove the path just made.
        let mut listener = Listener {
            address: String::new(),
            transport: if addr.is_unix() { Transport::Unix } else { Transport::Tcp },
            authkey,
            unlink,
            handshake_ns: AtomicI64::new(DEFAULT_HANDSHAKE_TIMEOUT.as_nanos() as i64),
            fd,
        };
        // libc, not nix: nix's Backlog refuses values above the compile-time SOMAXCONN, where
        // Linux clamps any backlog to net.core.somaxconn (which may be larger).
        // SAFETY: listen on our socket.
        if unsafe { libc::listen(listener.fd.as_raw_fd(), backlog) } < 0 {
            return Err(Error::last_os("listen").context(&what));
        }
        let local: SockaddrStorage =
            sock::getsockname(listener.fd.as_raw_fd()).map_err(|e| Error::os(e, "getsockname"))?;
        listener.address = address_string(&local);
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
        let fd = loop {
            match sock::accept4(&self.fd, SockFlag::SOCK_CLOEXEC) {
                Ok(fd) => break fd,
                Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                Err(Errno::EAGAIN) => {
                    if !wait_fd(self.fd.as_fd(), PollFlags::POLLIN, deadline)? {
                        return Err(err!(Timeout, "accept {}: no connection within the timeout", self.address));
                    }
                }
                Err(e) => return Err(Error::os(e, format!("accept {}", self.address))),
            }
        };
        if self.transport == Transport::Tcp {
            // Failure only loses latency (Nagle stays on).
            let _ = sock::setsockopt(&fd, sockopt::TcpNoDelay, &true);
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

/// The longest authkey accepted (1 MiB). CPython sets no limit, but a key only feeds HMAC
/// (which hashes a key longer than a block down first): past this a length is a caller's
/// mistake, refused before anything is allocated for it.
pub const MAX_AUTHKEY: usize = 1 << 20;

fn check_key(key: &[u8], what: &str) -> Result<()> {
    if key.len() > MAX_AUTHKEY {
        return Err(err!(Invalid, "{what}: an authkey of {} bytes is longer than {MAX_AUTHKEY}", key.len()));
    }
    Ok(())
}

/// The listener's own copy of `key`; an allocation failure is an error, never an abort.
fn copy_key(key: &[u8], what: &str) -> Result<Vec<u8>> {
    check_key(key, what)?;
    let mut v = Vec::new();
    v.try_reserve_exact(key.len()).map_err(|_| Error::os(Errno::ENOMEM, "authkey copy").context(what))?;
    v.extend_from_slice(key);
    Ok(v)
}

/// Connects to a listener at `address`, waiting up to `timeout` for the connection and, with
/// `authkey`, the mutual handshake (this side answers first, then challenges, as CPython's
/// `Client`). A wrong key on either side is Auth; nothing listening is NotFound (Unix path) or
/// Os (connection refused).
pub fn connect(address: &str, authkey: Option<&[u8]>, timeout: impl Into<Timeout>) -> Result<Connection> {
    let deadline = timeout.into().deadline();
    let what = format!("connect {address}");
    if let Some(k) = authkey {
        check_key(k, &what)?;
    }
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
        let _ = sock::setsockopt(&fd, sockopt::TcpNoDelay, &true);
    }
    let conn = Connection::new(fd, transport, true, true);
    if let Some(key) = authkey {
        auth::answer_challenge(&conn, key, deadline).map_err(|e| handshake_context(e, &what))?;
        auth::deliver_challenge(&conn, key, deadline).map_err(|e| handshake_context(e, &what))?;
    }
    Ok(conn)
}

fn connect_one(raw: &SockAddr, deadline: Option<Instant>) -> Result<OwnedFd> {
    let fd = socket(raw.family(), true)?;
    loop {
        match raw.apply(fd.as_raw_fd(), sock::connect) {
            Ok(()) => break,
            Err(Errno::EINPROGRESS | Errno::EINTR) => {
                if !wait_fd(fd.as_fd(), PollFlags::POLLOUT, deadline)? {
                    return Err(err!(Timeout, "no connection within the timeout"));
                }
                let v = sock::getsockopt(&fd, sockopt::SocketError).unwrap_or(0);
                if v != 0 {
                    return Err(Error::from_errno(v, "connect"));
                }
                break;
            }
            // A Unix listener whose backlog is full: retry until it has room or time runs out.
            Err(Errno::EAGAIN) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(err!(Timeout, "the listener's backlog stayed full until the timeout"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(Error::os(e, "connect")),
        }
    }
    set_blocking(&fd, true)?;
    Ok(fd)
}
