//! Blocking I/O on a connection's descriptor: waiting with a deadline, writing a whole frame
//! without ever raising SIGPIPE, and passing descriptors. Through nix, except a message's write
//! on a socket, where nix's wrappers cost more (see write_once). Reads are in sys.rs.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::time::TimeSpec;

use super::sys::{self, MAX_FDS};
use crate::{err, Error, Result};

/// Waits until `fd` reports one of `events` (or an error/hangup), until `deadline` (None =
/// forever). Returns whether it did; EINTR restarts with the time that is left.
pub fn wait_fd(fd: BorrowedFd<'_>, events: PollFlags, deadline: Option<Instant>) -> Result<bool> {
    let mut pfd = [PollFd::new(fd, events)];
    wait_fds(&mut pfd, deadline).map(|n| n > 0)
}

/// ppoll(2) over several descriptors until `deadline`; the number with events (revents set).
pub fn wait_fds(fds: &mut [PollFd<'_>], deadline: Option<Instant>) -> Result<usize> {
    loop {
        let left = deadline.map(|d| TimeSpec::from(d.saturating_duration_since(Instant::now())));
        match ppoll(fds, left, None) {
            Ok(n) => return Ok(n as usize),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::os(e, "poll")),
        }
    }
}

/// One write of `iov`. Sockets use MSG_NOSIGNAL; pipes mark the thread as inside an mpx write
/// for the SIGPIPE handler.
///
/// Sockets take the raw calls: this is the message path, and per message nix's sendmsg costs
/// about 35 instructions more (control-message sizing, header packing) and its send about 10
/// (neither is inlined across crates), measured with callgrind. One buffer (every message up to
/// SMALL_COPY, copied behind its header) is a send(2), two a sendmsg(2).
#[inline]
fn write_once(fd: BorrowedFd<'_>, iov: &[IoSlice<'_>], socket: bool) -> nix::Result<usize> {
    if socket {
        let n = match iov {
            // SAFETY: sends from a live slice of its length.
            [one] => unsafe { libc::send(fd.as_raw_fd(), one.as_ptr().cast(), one.len(), libc::MSG_NOSIGNAL) },
            _ => {
                // SAFETY: an all-zero msghdr is a valid empty header; IoSlice is ABI-compatible
                // with iovec, and the slices outlive the call (the kernel only reads them).
                unsafe {
                    let mut msg: libc::msghdr = std::mem::zeroed();
                    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
                    msg.msg_iovlen = iov.len() as _;
                    libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
                }
            }
        };
        return Errno::result(n).map(|n| n as usize);
    }
    sys::pipe_write(|| match iov {
        [one] => nix::unistd::write(fd, one),
        _ => nix::sys::uio::writev(fd, iov),
    })
}

/// Writes all of `a` then all of `b` (one frame: header and payload), retrying short writes and
/// EINTR, waiting while a non-blocking descriptor is full. Errors carry the errno (EPIPE or
/// ECONNRESET: the peer left).
pub fn write_all(fd: BorrowedFd<'_>, mut a: &[u8], mut b: &[u8], socket: bool) -> Result<()> {
    while !a.is_empty() || !b.is_empty() {
        let r = match (a.is_empty(), b.is_empty()) {
            (false, false) => write_once(fd, &[IoSlice::new(a), IoSlice::new(b)], socket),
            (false, true) => write_once(fd, &[IoSlice::new(a)], socket),
            _ => write_once(fd, &[IoSlice::new(b)], socket),
        };
        match r {
            Ok(n) => {
                let from_a = n.min(a.len());
                a = &a[from_a..];
                b = &b[n - from_a..];
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                wait_fd(fd, PollFlags::POLLOUT, None)?;
            }
            Err(e) => return Err(Error::os(e, "write")),
        }
    }
    Ok(())
}

/// Sends `byte` with `fds` attached (SCM_RIGHTS) in one sendmsg: the form CPython's
/// `multiprocessing.reduction.sendfds` uses (the byte is the count modulo 256). nix builds the
/// control message in a small Vec: one allocation per descriptor message, not per message.
pub fn send_fds(fd: BorrowedFd<'_>, byte: u8, fds: &[RawFd]) -> Result<()> {
    if fds.is_empty() || fds.len() > MAX_FDS {
        return Err(err!(Invalid, "send_fds: {} descriptors (1..={MAX_FDS} can be sent at once)", fds.len()));
    }
    let b = [byte];
    let iov = [IoSlice::new(&b)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    loop {
        match sendmsg::<()>(fd.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                wait_fd(fd, PollFlags::POLLOUT, None)?;
            }
            Err(Errno::EBADF) => return Err(err!(Invalid, "send_fds: one of the descriptors is not open")),
            Err(e) => return Err(Error::os(e, "send_fds")),
        }
    }
}
