//! The calls under connections that nix does not cover, or covers at a cost the message path
//! cannot pay: one read of a message (recvmsg that also collects passed descriptors, preadv2 with
//! RWF_NOWAIT, read/readv into the caller's uninitialised memory), the SIGPIPE guard of pipe
//! writes, and getrandom. Everything else goes through nix (see io.rs).

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use nix::errno::Errno;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// The most descriptors one SCM_RIGHTS message carries (the kernel's SCM_MAX_FD).
pub const MAX_FDS: usize = 253;

/// Control-message space for MAX_FDS descriptors, aligned for cmsghdr.
#[repr(C, align(8))]
struct CmsgSpace([u8; 1024 + 64]);

/// CMSG_SPACE for MAX_FDS descriptors.
const CMSG_SPACE: usize = {
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let need = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    assert!(need <= std::mem::size_of::<CmsgSpace>());
    need
};

/// One recvmsg into `iov`. With `fds`, a control buffer for MAX_FDS descriptors goes along and
/// every descriptor passed with the bytes is added to `fds` (close-on-exec: MSG_CMSG_CLOEXEC is
/// added to `flags`). Returns the byte count and whether the kernel cut descriptors off
/// (MSG_CTRUNC: those are lost; the ones that arrived are in `fds`).
///
/// Why not nix's recvmsg: its control-message iterator refuses a message with MSG_CTRUNC set,
/// so the descriptors that did arrive would leak, and it copies every SCM_RIGHTS message into a
/// Vec<RawFd> first; its IoSliceMut must also not point at uninitialised memory.
///
/// # Safety
/// Every entry of `iov` must be valid for writes of its length.
#[inline]
pub(crate) unsafe fn recvmsg_fds(
    fd: BorrowedFd<'_>,
    iov: &mut [libc::iovec],
    mut flags: libc::c_int,
    fds: Option<&mut Vec<OwnedFd>>,
) -> nix::Result<(usize, bool)> {
    let mut space = MaybeUninit::<CmsgSpace>::uninit();
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    if fds.is_some() {
        // The kernel writes the control messages and says how much (msg_controllen).
        msg.msg_control = space.as_mut_ptr().cast();
        msg.msg_controllen = CMSG_SPACE as _;
        flags |= libc::MSG_CMSG_CLOEXEC;
    }
    // SAFETY: msg points at the caller's valid buffers and at `space`, all alive for the call.
    let n = Errno::result(unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) })?;
    let Some(fds) = fds else { return Ok((n as usize, false)) };
    // SAFETY: msg was just filled by recvmsg; CMSG_NXTHDR bounds every header by
    // msg_controllen, and each SCM_RIGHTS payload holds descriptors now owned by this process.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let bytes = (*c).cmsg_len as usize - (data as usize - c as usize);
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, msg.msg_flags & libc::MSG_CTRUNC != 0))
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

/// Whether RWF_NOWAIT reads work on pipes here (Linux 5.1 on; false once one was refused).
static PIPE_NOWAIT: AtomicBool = AtomicBool::new(true);

pub fn pipe_nowait_works() -> bool {
    PIPE_NOWAIT.load(Relaxed)
}

/// One read into `iov` (filled in order). With `unix`, collects passed descriptors; `nonblock`
/// does not wait (MSG_DONTWAIT on sockets, RWF_NOWAIT on pipes, so the descriptor's shared file
/// flags stay as they are). EINTR is retried; EAGAIN is returned for the caller to wait on.
/// The errno comes back bare: building an Error for every EAGAIN would allocate per message.
///
/// # Safety
/// Every entry of `iov` must be valid for writes of its length (the destination may be
/// uninitialised, which is why this is not nix's read/readv: those take `&mut [u8]`).
pub unsafe fn read_iov(
    fd: BorrowedFd<'_>,
    iov: &mut [libc::iovec],
    socket: bool,
    unix: bool,
    nonblock: bool,
) -> nix::Result<ReadResult> {
    loop {
        let r = if socket {
            let mut fds = Vec::new(); // allocates only if descriptors arrive
            let flags = if nonblock { libc::MSG_DONTWAIT } else { 0 };
            // SAFETY: the caller vouches for iov.
            match unsafe { recvmsg_fds(fd, iov, flags, unix.then_some(&mut fds)) } {
                Ok((n, fds_truncated)) => return Ok(ReadResult { n, fds, fds_truncated }),
                Err(e) => Err(e),
            }
        } else {
            let raw = fd.as_raw_fd();
            // SAFETY: the caller vouches for iov. nix has no preadv2.
            let n = unsafe {
                if nonblock {
                    libc::preadv2(raw, iov.as_ptr(), iov.len() as libc::c_int, -1, libc::RWF_NOWAIT)
                } else if iov.len() == 1 {
                    libc::read(raw, iov[0].iov_base, iov[0].iov_len)
                } else {
                    libc::readv(raw, iov.as_ptr(), iov.len() as libc::c_int)
                }
            };
            Errno::result(n).map(|n| ReadResult { n: n as usize, fds: Vec::new(), fds_truncated: false })
        };
        match r {
            // A kernel without RWF_NOWAIT for pipes: report "would block"; callers then poll
            // (and stop trying non-blocking pipe reads first).
            Err(Errno::EOPNOTSUPP) if nonblock && !socket => {
                PIPE_NOWAIT.store(false, Relaxed);
                return Err(Errno::EAGAIN);
            }
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
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
    // errno is restored for the interrupted code. SIGPIPE is synchronous (raised by this
    // thread's own write), so the thread-local read cannot interrupt an allocator holding a lock.
    let saved = Errno::last_raw();
    if !IN_PIPE_WRITE.try_with(|f| f.get()).unwrap_or(false) {
        // Someone else's write: do what the default disposition does.
        // SAFETY: signal(2) and raise(3) are async-signal-safe; no handler pointer is kept.
        let _ = unsafe { signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) };
        let _ = signal::raise(Signal::SIGPIPE);
    }
    Errno::set_raw(saved);
}

/// Called whenever a connection that writes to a pipe is made (the disposition may have
/// changed since the last one, e.g. in a forked child): see the section comment.
pub fn guard_sigpipe() {
    // Only looking: nix's sigaction always installs a new action, and installing first to learn
    // the old one would open a window in which someone else's SIGPIPE meets the wrong handler.
    // SAFETY: sigaction with no new action only writes the current one into `old`.
    let old = unsafe {
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        if libc::sigaction(libc::SIGPIPE, std::ptr::null(), old.as_mut_ptr()) != 0 {
            return;
        }
        old.assume_init()
    };
    if old.sa_sigaction != libc::SIG_DFL {
        return;
    }
    let sa = SigAction::new(SigHandler::Handler(on_sigpipe), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: on_sigpipe is async-signal-safe (see above); the old action (the default) is not
    // used.
    if unsafe { signal::sigaction(Signal::SIGPIPE, &sa) }.is_ok() {
        INSTALLED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs `write` (one write to a pipe) marked as an mpx pipe write for the SIGPIPE handler.
#[inline]
pub fn pipe_write<R>(write: impl FnOnce() -> R) -> R {
    use std::sync::atomic::Ordering;
    if !INSTALLED.load(Ordering::Relaxed) {
        return write();
    }
    IN_PIPE_WRITE.with(|f| f.set(true));
    let r = write();
    IN_PIPE_WRITE.with(|f| f.set(false));
    r
}

/// Fills `buf` with random bytes from the kernel (getrandom: nix has no wrapper).
pub fn random_bytes(buf: &mut [u8]) -> crate::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes at most the remaining length into buf.
        let r = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        match Errno::result(r) {
            Ok(n) => done += n as usize,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(crate::Error::os(e, "getrandom")),
        }
    }
    Ok(())
}
