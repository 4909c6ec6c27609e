//! The system calls under connections: waiting with a deadline, vectored reads that also collect
//! passed descriptors, writes that never raise SIGPIPE, and SCM_RIGHTS messages.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use crate::error::errno;
use crate::{err, Error, Result};

/// The most descriptors one SCM_RIGHTS message carries (the kernel's SCM_MAX_FD).
pub const MAX_FDS: usize = 253;

/// Control-message space for MAX_FDS descriptors, aligned for cmsghdr.
#[repr(C, align(8))]
struct CmsgSpace([u8; 1024 + 64]);

fn cmsg_space() -> usize {
    // SAFETY: CMSG_SPACE is arithmetic.
    let need = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    debug_assert!(need <= std::mem::size_of::<CmsgSpace>());
    need
}

/// Waits until `fd` reports one of `events` (or an error/hangup), until `deadline` (None =
/// forever). Returns whether it did; EINTR restarts with the time that is left.
pub fn wait_fd(fd: RawFd, events: libc::c_short, deadline: Option<Instant>) -> Result<bool> {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    wait_fds(std::slice::from_mut(&mut pfd), deadline).map(|n| n > 0)
}

/// poll(2) over several descriptors until `deadline`; the number with events (revents set).
pub fn wait_fds(fds: &mut [libc::pollfd], deadline: Option<Instant>) -> Result<usize> {
    loop {
        let ts;
        let tsp = match deadline {
            None => std::ptr::null(),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                ts = libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: left.subsec_nanos() as libc::c_long,
                };
                &ts as *const libc::timespec
            }
        };
        // SAFETY: fds is a valid array of pollfd; tsp is NULL or points to ts.
        let r = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, tsp, std::ptr::null()) };
        if r >= 0 {
            return Ok(r as usize);
        }
        if errno() != libc::EINTR {
            return Err(Error::last_os("poll"));
        }
    }
}

/// What one read returned.
pub struct ReadResult {
    /// Bytes read; 0 is end of file.
    pub n: usize,
    /// Descriptors that came with the bytes (SCM_RIGHTS), already close-on-exec.
    pub fds: Vec<OwnedFd>,
    /// The sender passed more descriptors than fit (the kernel closed the rest).
    pub fds_truncated: bool,
}

/// One read into `iov` (filled in order). With `unix`, uses recvmsg and collects passed
/// descriptors; `nonblock` asks for MSG_DONTWAIT (sockets only). EINTR is retried; EAGAIN is
/// returned as an error with errno EAGAIN for the caller to wait on.
pub fn read_iov(fd: RawFd, iov: &mut [libc::iovec], socket: bool, unix: bool, nonblock: bool) -> Result<ReadResult> {
    loop {
        let r = if socket {
            // The kernel fills the control buffer and says how much (msg_controllen).
            let mut space = std::mem::MaybeUninit::<CmsgSpace>::uninit();
            // SAFETY: zeroed msghdr is a valid empty header; pointers below outlive the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = iov.len() as _;
            if unix {
                msg.msg_control = space.as_mut_ptr().cast();
                msg.msg_controllen = cmsg_space() as _;
            }
            let flags = libc::MSG_CMSG_CLOEXEC | if nonblock { libc::MSG_DONTWAIT } else { 0 };
            // SAFETY: msg describes valid buffers.
            let n = unsafe { libc::recvmsg(fd, &mut msg, flags) };
            if n >= 0 {
                let (fds, trunc) = if unix { unsafe { take_fds(&msg) } } else { (Vec::new(), false) };
                return Ok(ReadResult { n: n as usize, fds, fds_truncated: trunc });
            }
            n
        } else {
            // SAFETY: iov describes valid writable buffers.
            let n = unsafe {
                if nonblock {
                    // RWF_NOWAIT: a non-blocking read without touching the shared file flags.
                    libc::preadv2(fd, iov.as_ptr(), iov.len() as libc::c_int, -1, libc::RWF_NOWAIT)
                } else if iov.len() == 1 {
                    libc::read(fd, iov[0].iov_base, iov[0].iov_len)
                } else {
                    libc::readv(fd, iov.as_ptr(), iov.len() as libc::c_int)
                }
            };
            if n >= 0 {
                return Ok(ReadResult { n: n as usize, fds: Vec::new(), fds_truncated: false });
            }
            n
        };
        debug_assert!(r < 0);
        let e = errno();
        if e == libc::EOPNOTSUPP && nonblock && !socket {
            // A kernel without RWF_NOWAIT for pipes: report "would block"; callers then poll.
            return Err(Error::from_errno(libc::EAGAIN, "read"));
        }
        if e != libc::EINTR {
            return Err(Error::from_errno(e, "read"));
        }
    }
}

/// Collects the descriptors of every SCM_RIGHTS control message in `msg`.
///
/// # Safety
/// `msg` must be a header just filled by recvmsg.
unsafe fn take_fds(msg: &libc::msghdr) -> (Vec<OwnedFd>, bool) {
    let mut fds = Vec::new();
    let mut c = libc::CMSG_FIRSTHDR(msg);
    while !c.is_null() {
        if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
            let data = libc::CMSG_DATA(c);
            let bytes = (*c).cmsg_len as usize - (data as usize - c as usize);
            for i in 0..bytes / std::mem::size_of::<RawFd>() {
                let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                fds.push(OwnedFd::from_raw_fd(fd));
            }
        }
        c = libc::CMSG_NXTHDR(msg, c);
    }
    (fds, msg.msg_flags & libc::MSG_CTRUNC != 0)
}

// ---- SIGPIPE -------------------------------------------------------------------------------
//
// Writing to a pipe whose reader is gone raises SIGPIPE, and its default action kills the process
// (C programs start that way; Python and Rust programs ignore it). Sockets avoid it per call with
// MSG_NOSIGNAL; pipes have no such flag, and blocking the signal around every write costs three
// system calls per message. So when a pipe write end is made while SIGPIPE has its default
// disposition, mpx installs a handler once: a SIGPIPE raised inside an mpx pipe write is
// dropped (the write returns EPIPE: MPX_E_CLOSED); any other SIGPIPE is handled exactly as the
// default would (the disposition is restored and the signal raised again: the process dies of
// SIGPIPE). Handlers are reset by exec, so spawned programs see the default as before. A
// program that ignores SIGPIPE or has its own handler is left alone.

/// Whether mpx's SIGPIPE handler is installed (only then do pipe writes mark themselves).
static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

thread_local! {
    /// Set while this thread is inside an mpx pipe write.
    static IN_PIPE_WRITE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

extern "C" fn on_sigpipe(_sig: libc::c_int) {
    // SAFETY: errno and signal calls are async-signal-safe; errno is restored for the
    // interrupted code. SIGPIPE is synchronous (raised by this thread's own write), so the
    // thread-local read cannot interrupt an allocator holding a lock.
    unsafe {
        let saved = *libc::__errno_location();
        if !IN_PIPE_WRITE.try_with(|f| f.get()).unwrap_or(false) {
            // Someone else's write: do what the default disposition does.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::raise(libc::SIGPIPE);
        }
        *libc::__errno_location() = saved;
    }
}

/// Called whenever a connection that writes to a pipe is made (the disposition may have
/// changed since the last one, e.g. in a forked child): see the section comment.
pub fn guard_sigpipe() {
    // SAFETY: querying and, if it is the default, replacing the SIGPIPE disposition.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) != 0 || old.sa_sigaction != libc::SIG_DFL {
            return;
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigpipe as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGPIPE, &sa, std::ptr::null_mut()) == 0 {
            INSTALLED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// One write of `iov`. Sockets use sendmsg(MSG_NOSIGNAL); pipes mark the thread as inside an
/// mpx write for the SIGPIPE handler.
fn write_iov_once(fd: RawFd, iov: &[libc::iovec], socket: bool) -> isize {
    use std::sync::atomic::Ordering;
    if socket {
        // SAFETY: zeroed msghdr plus a valid iovec array.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len() as _;
        return unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
    }
    let mark = INSTALLED.load(Ordering::Relaxed);
    if mark {
        IN_PIPE_WRITE.with(|f| f.set(true));
    }
    // SAFETY: iov describes valid buffers.
    let r = unsafe {
        if iov.len() == 1 {
            libc::write(fd, iov[0].iov_base, iov[0].iov_len)
        } else {
            libc::writev(fd, iov.as_ptr(), iov.len() as libc::c_int)
        }
    };
    if mark {
        IN_PIPE_WRITE.with(|f| f.set(false));
    }
    r
}

/// Writes all of `a` then all of `b` (one frame: header and payload), retrying short writes and
/// EINTR, waiting while a non-blocking descriptor is full. Errors carry the errno (EPIPE or
/// ECONNRESET: the peer left).
pub fn write_all(fd: RawFd, a: &[u8], b: &[u8], socket: bool) -> Result<()> {
    let mut iov = [
        libc::iovec { iov_base: a.as_ptr() as *mut _, iov_len: a.len() },
        libc::iovec { iov_base: b.as_ptr() as *mut _, iov_len: b.len() },
    ];
    let n = if b.is_empty() { 1 } else { 2 };
    let mut first = 0;
    while first < n {
        if iov[first].iov_len == 0 {
            first += 1;
            continue;
        }
        let r = write_iov_once(fd, &iov[first..n], socket);
        if r < 0 {
            let e = errno();
            match e {
                libc::EINTR => continue,
                libc::EAGAIN => {
                    wait_fd(fd, libc::POLLOUT, None)?;
                    continue;
                }
                _ => return Err(Error::from_errno(e, "write")),
            }
        }
        let mut done = r as usize;
        while done > 0 && first < n {
            let take = done.min(iov[first].iov_len);
            // SAFETY: take <= the entry's remaining length.
            iov[first].iov_base = unsafe { (iov[first].iov_base as *mut u8).add(take) }.cast();
            iov[first].iov_len -= take;
            done -= take;
            if iov[first].iov_len == 0 {
                first += 1;
            }
        }
    }
    Ok(())
}

/// Sends `byte` with `fds` attached (SCM_RIGHTS) in one sendmsg: the form CPython's
/// `multiprocessing.reduction.sendfds` uses (the byte is the count modulo 256).
pub fn send_fds(fd: RawFd, byte: u8, fds: &[RawFd]) -> Result<()> {
    if fds.is_empty() || fds.len() > MAX_FDS {
        return Err(err!(Invalid, "send_fds: {} descriptors (1..={MAX_FDS} can be sent at once)", fds.len()));
    }
    let mut space = CmsgSpace([0; 1024 + 64]);
    let data_len = std::mem::size_of_val(fds);
    let mut b = [byte];
    let mut iov = libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: 1 };
    loop {
        // SAFETY: msghdr and the control buffer are set up per cmsg(3); all pointers are live.
        let r = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = space.0.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(data_len as u32) as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(c), data_len);
            libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL)
        };
        if r == 1 {
            return Ok(());
        }
        let e = errno();
        match e {
            libc::EINTR => continue,
            libc::EAGAIN => {
                wait_fd(fd, libc::POLLOUT, None)?;
            }
            libc::EBADF => return Err(err!(Invalid, "send_fds: one of the descriptors is not open")),
            _ => return Err(Error::from_errno(e, "send_fds")),
        }
    }
}

/// Fills `buf` with random bytes from the kernel (getrandom).
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes at most the remaining length into buf.
        let r = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if r < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(Error::last_os("getrandom"));
        }
        done += r as usize;
    }
    Ok(())
}
