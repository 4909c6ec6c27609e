//! C ABI for connections (`mpx_pipe`, `mpx_conn_*`, `mpx_listener_*`, `mpx_client_connect`).
//!
//! Messages are framed as CPython's multiprocessing.connection frames them, and the authkey
//! handshake is CPython's, so these connections talk to Python programs that use only the
//! standard library. docs/CONNECTIONS.md describes the protocol and the semantics.

use std::ffi::{c_char, c_int};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use super::handle::{self, plain_handle, ObjectHandle};
use super::shm::mpx_shm;
use super::{args, guard, mpx_status, MPX_OK};
use crate::conn::{self, Connection, Listener, Transport};
use crate::object::Object;
use crate::{err, ErrorKind, Result};

/// Connection flag: the connection can receive.
pub const MPX_CONN_READABLE: u32 = 1;
/// Connection flag: the connection can send.
pub const MPX_CONN_WRITABLE: u32 = 2;
/// Connection flag (reported by `mpx_conn_flags`): a Unix socket, which can pass descriptors.
pub const MPX_CONN_UNIX: u32 = 4;
/// The most descriptors `mpx_conn_send_fds` passes at once (the kernel's limit).
pub const MPX_CONN_MAX_FDS: usize = 253;

/// A connection handle (opaque): one end of a pipe, an accepted or a connected socket, or an
/// inherited descriptor. Free with `mpx_conn_close`. One thread may receive while another
/// sends; close it only when no other thread is using it.
pub struct mpx_conn {
    inner: Connection,
}

/// A listening socket (opaque). Free with `mpx_listener_close`.
pub struct mpx_listener {
    inner: Listener,
}

plain_handle!(mpx_conn, "conn");
plain_handle!(mpx_listener, "listener");

fn conn_handle(c: Connection) -> mpx_conn {
    mpx_conn { inner: c }
}

/// An optional authkey argument: NULL is none (no handshake); otherwise `keylen` bytes (0 is an
/// empty key, which still runs the handshake).
///
/// # Safety
/// `key` NULL or `keylen` readable bytes.
unsafe fn key_arg<'a>(key: *const u8, keylen: usize) -> Result<Option<&'a [u8]>> {
    if key.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    Ok(Some(unsafe { args::bytes(key.cast(), keylen, "authkey") }?))
}

/// Makes a connected pair, as Python's `multiprocessing.Pipe(duplex)`. With `duplex` both ends
/// send and receive (a Unix socketpair; descriptors can be passed). Without, `*a` only
/// receives and `*b` only sends (a pipe). Both descriptors are close-on-exec.
#[no_mangle]
pub unsafe extern "C" fn mpx_pipe(duplex: bool, a: *mut *mut mpx_conn, b: *mut *mut mpx_conn) -> mpx_status {
    guard("mpx_pipe", || {
        args::out(a, "a")?;
        args::out(b, "b")?;
        let (x, y) = conn::pipe(duplex)?;
        handle::put(a, conn_handle(x));
        Ok(handle::put(b, conn_handle(y)))
    })
}

/// Makes a connection from a descriptor: inherited from a parent (fork, or spawn with the fd
/// kept), received with `mpx_conn_recv_fds`, or a Python Connection's `fileno()`. It must be a
/// stream socket (Unix or TCP) or a pipe/FIFO end.
///
/// `flags`: 0 (whatever the descriptor allows: both directions for a socket, one for a pipe
/// end) or MPX_CONN_READABLE and/or MPX_CONN_WRITABLE to restrict it. On success the connection
/// owns `fd` (mpx_conn_close closes it); on failure the caller still owns it. MPX_E_INVALID for
/// a descriptor that is not open, not a stream socket or pipe, or cannot go the asked way.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_from_fd(fd: c_int, flags: u32, out: *mut *mut mpx_conn) -> mpx_status {
    guard("mpx_conn_from_fd", || {
        args::out(out, "out")?;
        if fd < 0 {
            return Err(err!(Invalid, "connection from fd {fd}: not a file descriptor"));
        }
        if flags & !(MPX_CONN_READABLE | MPX_CONN_WRITABLE) != 0 {
            return Err(err!(Invalid, "connection from fd {fd}: unknown flag bits {flags:#x}"));
        }
        let (r, w) = match flags {
            0 => (None, None),
            f => (Some(f & MPX_CONN_READABLE != 0), Some(f & MPX_CONN_WRITABLE != 0)),
        };
        // Check everything first, so that on failure `fd` is untouched and still the caller's.
        let (t, r, w) = Connection::probe_fd(fd, r, w)?;
        let c = Connection::new(OwnedFd::from_raw_fd(fd), t, r, w);
        Ok(handle::put(out, conn_handle(c)))
    })
}

/// Closes the connection (its descriptor) and frees the handle. The peer then sees the end of
/// the stream (MPX_E_CLOSED). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_close(conn: *mut mpx_conn) {
    handle::close("mpx_conn_close", conn)
}

/// Writes the connection's descriptor to `*fd` (still owned by the connection) for
/// poll/select/epoll. A message may already be buffered inside the connection while the
/// descriptor is not readable: check `mpx_conn_poll(conn, 0, &ready)` before waiting on it.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_fileno(conn: *const mpx_conn, fd: *mut c_int) -> mpx_status {
    guard("mpx_conn_fileno", || {
        args::out(fd, "fd")?;
        *fd = args::handle(conn)?.inner.fileno();
        Ok(MPX_OK)
    })
}

/// Writes the connection's MPX_CONN_* flags to `*flags`: READABLE, WRITABLE, and UNIX when it
/// can pass descriptors.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_flags(conn: *const mpx_conn, flags: *mut u32) -> mpx_status {
    guard("mpx_conn_flags", || {
        args::out(flags, "flags")?;
        let c = &args::handle(conn)?.inner;
        let mut f = 0;
        if c.readable() {
            f |= MPX_CONN_READABLE;
        }
        if c.writable() {
            f |= MPX_CONN_WRITABLE;
        }
        if c.transport() == Transport::Unix {
            f |= MPX_CONN_UNIX;
        }
        *flags = f;
        Ok(MPX_OK)
    })
}

/// Writes the peer's address ("tcp:127.0.0.1:51234"; "unix:" for an unnamed Unix peer such as
/// a client or a socketpair end), NUL-terminated, into `buf` of `cap` bytes, and its length to
/// `*len` if not NULL; like Python's `Listener.last_accepted`. MPX_E_BUFFER_TOO_SMALL (with
/// `*len` set to the length needed, excluding the NUL) if it does not fit; MPX_E_INVALID for a
/// pipe. `buf` may be NULL only if `cap` is 0 (to ask for the length).
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_peer_address(
    conn: *const mpx_conn,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> mpx_status {
    guard("mpx_conn_peer_address", || {
        let a = args::handle(conn)?.inner.peer_address()?;
        args::write_str(&a, buf, cap, len)
    })
}

/// Sets the largest incoming message this connection accepts (0: no limit, the default). A
/// longer incoming length is refused before anything is allocated: the receiving call returns
/// MPX_E_TOO_BIG and the connection is unusable from then on (MPX_E_BROKEN), because the rest
/// of the stream can no longer be parsed; a socket is shut down so the peer sees the end.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_set_max_message_size(conn: *const mpx_conn, max: u64) -> mpx_status {
    guard("mpx_conn_set_max_message_size", || {
        args::handle(conn)?.inner.set_max_message_size(if max == 0 { None } else { Some(max) });
        Ok(MPX_OK)
    })
}

/// Sends one message of `len` bytes (0 is allowed; `buf` may then be NULL). Blocks until the
/// whole message is written. MPX_E_CLOSED if the peer has gone (never SIGPIPE),
/// MPX_E_INVALID on a receive-only connection.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_send(conn: *const mpx_conn, buf: *const u8, len: usize) -> mpx_status {
    guard("mpx_conn_send", || {
        let c = &args::handle(conn)?.inner;
        let data = args::bytes(buf.cast(), len, "buf")?;
        c.send(data)?;
        Ok(MPX_OK)
    })
}

/// Receives one message into `buf` (`cap` bytes) and writes its length to `*len`. Waits up to
/// `timeout_ns` for the whole message: MPX_E_TIMEOUT if it runs out (what arrived is kept, and
/// 0 never waits). If the message is longer than `cap`: MPX_E_BUFFER_TOO_SMALL, `*len` is set
/// to the length needed and the message stays for the next call, so nothing is lost.
/// MPX_E_CLOSED: the peer closed the connection (also in the middle of a message).
/// MPX_E_TOO_BIG: the incoming length exceeds the maximum (see
/// `mpx_conn_set_max_message_size`). `buf` may be NULL only if `cap` is 0.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_recv(
    conn: *const mpx_conn,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    timeout_ns: i64,
) -> mpx_status {
    guard("mpx_conn_recv", || {
        args::out(len, "len")?;
        let c = &args::handle(conn)?.inner;
        let t = args::timeout(timeout_ns)?;
        let slice = args::bytes_mut(buf.cast(), cap, "buf")?;
        match c.recv_into(slice, t) {
            Ok(n) => {
                *len = n;
                Ok(MPX_OK)
            }
            Err(e) => {
                if e.kind() == ErrorKind::BufferTooSmall {
                    if let Some(need) = c.pending_len() {
                        *len = need as usize;
                    }
                }
                Err(e)
            }
        }
    })
}

/// Receives one message into memory the library allocates: `*buf` (free it with `mpx_free`;
/// never NULL, even for an empty message) and its length `*len`. Timeouts and errors as
/// `mpx_conn_recv`; if the memory cannot be allocated (MPX_E_OS) the message stays pending.
/// The memory grows as the bytes arrive (a peer announcing a huge length and sending nothing
/// costs nothing); a peer that closes before the message is complete is MPX_E_CLOSED at once.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_recv_alloc(
    conn: *const mpx_conn,
    buf: *mut *mut u8,
    len: *mut usize,
    timeout_ns: i64,
) -> mpx_status {
    guard("mpx_conn_recv_alloc", || {
        args::out(buf, "buf")?;
        args::out(len, "len")?;
        let c = &args::handle(conn)?.inner;
        let (p, n) = c.recv_malloc(args::timeout(timeout_ns)?)?.into_raw()?;
        *buf = p;
        *len = n;
        Ok(MPX_OK)
    })
}

/// Receives one message in parts into memory the caller keeps between calls and may grow, so a
/// large message is copied once and never held twice. `*got` (in and out) counts the
/// message's bytes already at the start of `buf`: 0 to begin each message, then what the last
/// call left. `*len` is written with the message's length as soon as its header is in.
/// - MPX_OK: the whole message is in `buf` (`*got` == `*len`); the next message starts again
///   with `*got` = 0.
/// - MPX_E_TIMEOUT: the time ran out; the bytes that arrived are in `buf`. Call again with the
///   same bytes (the buffer may have moved or grown).
/// - MPX_E_BUFFER_TOO_SMALL: grow `buf` (to at most `*len`), keeping its first `*got` bytes, and
///   call again: `buf` is full, or (with `*got` 0) smaller than what the connection kept of
///   the message from an earlier receive that timed out.
/// - MPX_E_CLOSED: the peer closed the connection (also in the middle of the message; `*got`
///   is then 0, and every later receive is MPX_E_CLOSED).
///
/// Once some of the message's bytes are in the caller's buffer (`*got` > 0), the other receive
/// calls return MPX_E_STATE until this one completes it. A `*got` that is not what the last
/// call left is MPX_E_INVALID. `buf` may be NULL only if `cap` is 0.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_recv_part(
    conn: *const mpx_conn,
    buf: *mut u8,
    cap: usize,
    got: *mut usize,
    len: *mut usize,
    timeout_ns: i64,
) -> mpx_status {
    guard("mpx_conn_recv_part", || {
        args::out(got, "got")?;
        args::out(len, "len")?;
        let c = &args::handle(conn)?.inner;
        let t = args::timeout(timeout_ns)?;
        let slice = args::bytes_mut(buf.cast(), cap, "buf")?;
        let mut g = *got;
        let r = c.recv_into_part(slice, &mut g, t);
        *got = g;
        if let Some(need) = c.pending_len() {
            *len = need as usize;
        }
        match r {
            Ok(n) => {
                *len = n;
                Ok(MPX_OK)
            }
            Err(e) => Err(e),
        }
    })
}

/// Writes to `*ready` whether something can be received without waiting for its first byte (a
/// message is buffered or arriving, or the peer closed: then recv reports MPX_E_CLOSED). Waits
/// up to `timeout_ns` for that (0: just look). Running out of time is not an error: `*ready`
/// is false. Like Python's `Connection.poll`.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_poll(conn: *const mpx_conn, timeout_ns: i64, ready: *mut bool) -> mpx_status {
    guard("mpx_conn_poll", || {
        args::out(ready, "ready")?;
        *ready = args::handle(conn)?.inner.poll(args::timeout(timeout_ns)?)?;
        Ok(MPX_OK)
    })
}

/// Waits up to `timeout_ns` until at least one of the `count` connections in `conns` is ready
/// to receive (as `mpx_conn_poll`). Writes one flag per connection to `ready[0..count]` and how
/// many are set to `*nready` (0 when the time ran out), like Python's
/// `multiprocessing.connection.wait`. Every connection must be able to receive.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_wait(
    conns: *const *const mpx_conn,
    count: usize,
    timeout_ns: i64,
    ready: *mut bool,
    nready: *mut usize,
) -> mpx_status {
    guard("mpx_conn_wait", || {
        args::out(nready, "nready")?;
        if count == 0 {
            return Err(err!(Invalid, "wait: no connections (count is 0)"));
        }
        if count > 65536 {
            return Err(err!(Invalid, "wait: {count} connections is too many"));
        }
        let conns = args::array(conns, count, "conns")?;
        args::out(ready, "ready")?;
        let ready = args::array_mut(ready, count, "ready")?;
        let t = args::timeout(timeout_ns)?;
        let mut list = Vec::with_capacity(count);
        for (i, &c) in conns.iter().enumerate() {
            list.push(&args::opt_handle(c).ok_or_else(|| err!(Invalid, "conns[{i}] is NULL"))?.inner);
        }
        let flags = Connection::wait(&list, t)?;
        ready.copy_from_slice(&flags);
        *nready = flags.iter().filter(|f| **f).count();
        Ok(MPX_OK)
    })
}

/// Sends `n` descriptors (1..=MPX_CONN_MAX_FDS) over a Unix connection (MPX_E_UNSUPPORTED over
/// TCP or a pipe). The receiver gets duplicates; the caller keeps and still owns `fds`. The wire
/// form is CPython's `multiprocessing.reduction.sendfds`, so a Python peer receives them with
/// `reduction.recv_handle(conn)` / `recvfds`.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_send_fds(conn: *const mpx_conn, fds: *const c_int, n: usize) -> mpx_status {
    guard("mpx_conn_send_fds", || {
        let c = &args::handle(conn)?.inner;
        if n == 0 || n > MPX_CONN_MAX_FDS {
            return Err(err!(Invalid, "send_fds: {n} descriptors (1..={MPX_CONN_MAX_FDS} can be sent at once)"));
        }
        c.send_fds(args::array(fds, n, "fds")?)?;
        Ok(MPX_OK)
    })
}

/// Receives descriptors sent with `mpx_conn_send_fds` (or Python's `reduction.send_handle`)
/// into `fds` (room for `cap`) and writes their number to `*n`. They are close-on-exec and the
/// caller owns them. More than `cap`: MPX_E_BUFFER_TOO_SMALL with `*n` set to the number
/// needed, and they stay for the next call. MPX_E_STATE if the next item is an ordinary
/// message (left for `mpx_conn_recv`). Waits up to `timeout_ns`.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_recv_fds(
    conn: *const mpx_conn,
    fds: *mut c_int,
    cap: usize,
    n: *mut usize,
    timeout_ns: i64,
) -> mpx_status {
    guard("mpx_conn_recv_fds", || {
        args::out(n, "n")?;
        let c = &args::handle(conn)?.inner;
        let t = args::timeout(timeout_ns)?;
        let out = args::array_mut(fds, cap, "fds")?;
        match c.recv_fds(cap, t) {
            Ok(got) => {
                *n = got.len();
                for (slot, fd) in out.iter_mut().zip(got) {
                    *slot = fd.into_raw_fd();
                }
                Ok(MPX_OK)
            }
            Err(e) => {
                if e.kind() == ErrorKind::BufferTooSmall {
                    if let Some(need) = c.next_fds_count() {
                        *n = need;
                    }
                }
                Err(e)
            }
        }
    })
}

/// Sends a shared-memory buffer (typically anonymous: `mpx_shm_create_anonymous`) over a Unix
/// connection by passing its descriptor. The buffer stays usable here; the receiver opens the
/// same memory with `mpx_conn_recv_shm`.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_send_shm(conn: *const mpx_conn, shm: *const mpx_shm) -> mpx_status {
    guard("mpx_conn_send_shm", || {
        let c = &args::handle(conn)?.inner;
        c.send_fds(&[args::handle(shm)?.inner().fd()])?;
        Ok(MPX_OK)
    })
}

/// Receives a shared-memory buffer sent with `mpx_conn_send_shm` and opens it (`flags`: 0 or
/// MPX_F_READ_ONLY); free it with `mpx_shm_close`. Its header is validated as for any open
/// (MPX_E_KIND if the descriptor is not an mpx buffer). Waits up to `timeout_ns`.
#[no_mangle]
pub unsafe extern "C" fn mpx_conn_recv_shm(
    conn: *const mpx_conn,
    flags: u32,
    timeout_ns: i64,
    out: *mut *mut mpx_shm,
) -> mpx_status {
    guard("mpx_conn_recv_shm", || {
        args::out(out, "out")?;
        let c = &args::handle(conn)?.inner;
        let fds = c.recv_fds(1, args::timeout(timeout_ns)?)?;
        // open_fd duplicates the descriptor; ours closes when `fds` drops.
        handle::open_fd(out, fds[0].as_raw_fd(), flags)
    })
}

/// Listens at `address`: "unix:/path" (or "/path"), "unix:@name" (abstract; "unix:@" lets the
/// kernel pick a name), "tcp:host:port", "tcp:[ipv6]:port" (port 0: the kernel picks one; read
/// it back with `mpx_listener_address`). `backlog` >= 1. With `authkey` (not NULL; `keylen`
/// bytes, at most 1 MiB: longer is MPX_E_INVALID) every accepted client must pass CPython's
/// mutual HMAC handshake. MPX_E_EXISTS if the
/// address is in use (a Unix path that exists included); MPX_E_INVALID for a malformed address.
#[no_mangle]
pub unsafe extern "C" fn mpx_listener_create(
    address: *const c_char,
    backlog: c_int,
    authkey: *const u8,
    keylen: usize,
    out: *mut *mut mpx_listener,
) -> mpx_status {
    guard("mpx_listener_create", || {
        args::out(out, "out")?;
        let address = args::string(address, "address")?;
        let l = Listener::bind(address, backlog, key_arg(authkey, keylen)?)?;
        Ok(handle::put(out, mpx_listener { inner: l }))
    })
}

/// Waits up to `timeout_ns` for a client and writes its connection to `*out`. With an authkey
/// the handshake must finish in that time too (and within the handshake timeout): a client
/// that fails it is dropped and the call returns MPX_E_AUTH (accept again for the next one).
/// MPX_E_TIMEOUT when no client came.
#[no_mangle]
pub unsafe extern "C" fn mpx_listener_accept(
    l: *const mpx_listener,
    timeout_ns: i64,
    out: *mut *mut mpx_conn,
) -> mpx_status {
    guard("mpx_listener_accept", || {
        args::out(out, "out")?;
        let c = args::handle(l)?.inner.accept(args::timeout(timeout_ns)?)?;
        Ok(handle::put(out, conn_handle(c)))
    })
}

/// Writes the listener's address ("tcp:127.0.0.1:40123", "unix:@name", ...) with what the
/// kernel chose filled in, NUL-terminated, into `buf` of `cap` bytes, and its length to `*len`
/// if not NULL. MPX_E_BUFFER_TOO_SMALL (with `*len` set to the length needed, excluding the
/// NUL) if it does not fit. `buf` may be NULL only if `cap` is 0 (to ask for the length).
#[no_mangle]
pub unsafe extern "C" fn mpx_listener_address(
    l: *const mpx_listener,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> mpx_status {
    guard("mpx_listener_address", || {
        let l = args::handle(l)?;
        args::write_str(l.inner.address(), buf, cap, len)
    })
}

/// Writes the listening descriptor to `*fd` (owned by the listener; readable when a client is
/// waiting), for poll/select/epoll.
#[no_mangle]
pub unsafe extern "C" fn mpx_listener_fileno(l: *const mpx_listener, fd: *mut c_int) -> mpx_status {
    guard("mpx_listener_fileno", || {
        args::out(fd, "fd")?;
        *fd = args::handle(l)?.inner.fileno();
        Ok(MPX_OK)
    })
}

/// Sets how long an accepted client has to finish the authkey handshake (default 30 s;
/// MPX_FOREVER: no limit). It keeps one silent client from holding up an accept loop.
#[no_mangle]
pub unsafe extern "C" fn mpx_listener_set_handshake_timeout(l: *const mpx_listener, timeout_ns: i64) -> mpx_status {
    guard("mpx_listener_set_handshake_timeout", || {
        args::handle(l)?.inner.set_handshake_timeout(args::timeout(timeout_ns)?);
        Ok(MPX_OK)
    })
}

/// Closes the listener and frees the handle; a Unix socket path it made is removed (if it
/// still refers to this socket). Accepted connections stay open. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_listener_close(l: *mut mpx_listener) {
    handle::close("mpx_listener_close", l)
}

/// Connects to a listener at `address` (forms as `mpx_listener_create`) and writes the
/// connection to `*out`. With `authkey` (not NULL; `keylen` bytes, at most 1 MiB) the mutual
/// handshake runs:
/// MPX_E_AUTH if either side's key differs. Waits up to `timeout_ns` for the connection and the
/// handshake together. MPX_E_NOT_FOUND for a Unix path with nothing there, MPX_E_OS for a
/// refused TCP connection.
#[no_mangle]
pub unsafe extern "C" fn mpx_client_connect(
    address: *const c_char,
    authkey: *const u8,
    keylen: usize,
    timeout_ns: i64,
    out: *mut *mut mpx_conn,
) -> mpx_status {
    guard("mpx_client_connect", || {
        args::out(out, "out")?;
        let address = args::string(address, "address")?;
        let c = conn::connect(address, key_arg(authkey, keylen)?, args::timeout(timeout_ns)?)?;
        Ok(handle::put(out, conn_handle(c)))
    })
}
