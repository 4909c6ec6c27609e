//! A connection: whole messages over a socket or pipe, framed as CPython frames them.
//!
//! Receiving reads ahead into a buffer (one system call often brings several small messages),
//! parses the header there, and reads large bodies straight into the destination. Everything
//! received but not yet delivered stays in the connection, so a timeout or a too-small buffer
//! loses nothing: the next call continues where this one stopped.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags};
use nix::sys::socket::{self as sock, sockopt, AddressFamily, SockFlag, SockType};
use nix::sys::stat::SFlag;

use super::body::{self, Dest, Grow, MallocBuf};
use super::frame::{encode_header, parse_header, MAX_HEADER};
use super::io;
use super::sys::{self, MAX_FDS};
use crate::object::{Flags, Object};
use crate::shm::SharedMemory;
use crate::util::Timeout;
use crate::wait::{Deadline, Spin};
use crate::{err, Error, ErrorKind, Result};

/// Size of the read-ahead buffer (allocated on the first receive).
const READ_AHEAD: usize = 64 * 1024;
/// The least a read takes beyond the current message.
const MIN_AHEAD: usize = 64;
/// PAUSEs between two non-blocking reads while a receive spins: each read is a system call
/// (0.3-1 us), so checking more often only adds calls.
const SPIN_GAP: u32 = 16;
/// Messages up to this size are copied behind their header (on the stack) and written with one
/// plain write; larger ones go from where they are, header and payload in one vectored write.
/// Either way a frame is one system call (so one TCP segment when it fits); the copy only saves
/// the kernel a second iovec, and a bigger stack buffer would cost a stack probe per call.
const SMALL_COPY: usize = 512;

/// What a descriptor underneath a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A Unix-domain stream socket: duplex, and it can pass descriptors.
    Unix,
    /// A TCP socket.
    Tcp,
    /// One end of a pipe (or FIFO): one way.
    Pipe,
}

thread_local! {
    /// Whether this thread sent a message (on any connection) since its last receive had to
    /// wait: its next wait is then likely for an answer, which spinning catches. A thread that
    /// only receives (a stream's reader) never spins.
    static REPLY_DUE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Descriptors that arrived with the byte at stream offset `at`.
struct FdGroup {
    at: u64,
    fds: Vec<OwnedFd>,
    truncated: bool,
}

struct RecvState {
    /// Read-ahead bytes; the unread ones are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]` (every byte ever taken off the descriptor is counted).
    consumed: u64,
    /// Length of the message whose header has been taken but whose body is not delivered yet.
    pending: Option<u64>,
    /// Body bytes of the pending message already read (kept across a timeout).
    partial: Vec<u8>,
    /// Body bytes of the pending message already in the caller's buffer (a part receive).
    handed: usize,
    /// Passed descriptors, in stream order, waiting for recv_fds.
    fds: VecDeque<FdGroup>,
    /// The peer closed its end (read returned 0).
    eof: bool,
    /// Size of the last whole frame received (header and body, at most READ_AHEAD).
    hint: usize,
    /// How many bytes a read may take beyond what the current message needs. Reading far ahead
    /// saves the reader system calls but empties the pipe more often, and each write into an
    /// empty pipe must wake the sleeping reader, which costs the writer more than the reader
    /// saved (measured: 64 KiB reads halve the rate of a stream of small messages). So it
    /// adapts: about one frame while the reader keeps up, doubling while a backlog exists.
    ahead: usize,
}

impl Default for RecvState {
    fn default() -> RecvState {
        RecvState {
            buf: Vec::new(),
            start: 0,
            end: 0,
            consumed: 0,
            pending: None,
            partial: Vec::new(),
            handed: 0,
            fds: VecDeque::new(),
            eof: false,
            hint: MIN_AHEAD,
            ahead: 4096,
        }
    }
}

impl RecvState {
    fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Takes `n` buffered bytes (n <= buffered).
    fn advance(&mut self, n: usize) {
        self.start += n;
        self.consumed += n as u64;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Forgets the pending message (delivered, or cut off by the end of the stream).
    fn discard_message(&mut self) {
        self.pending = None;
        self.handed = 0;
        self.partial.clear();
    }

    /// Closes descriptors that arrived with bytes already consumed as ordinary data (a peer that
    /// sent descriptors mid-message): they can belong to nothing any more.
    fn drop_stale_fds(&mut self) {
        while self.fds.front().is_some_and(|g| g.at < self.consumed) {
            self.fds.pop_front();
        }
    }

    /// Whether the next unread byte came with descriptors.
    fn fds_next(&mut self) -> bool {
        self.drop_stale_fds();
        self.buffered() > 0 && self.fds.front().is_some_and(|g| g.at == self.consumed)
    }
}

/// A connection to another process: send and receive whole byte messages.
///
/// Every method takes `&self`: receiving and sending are serialised separately, so one thread
/// may block in `recv` while another sends. The descriptor is closed when the connection is
/// dropped.
pub struct Connection {
    fd: OwnedFd,
    transport: Transport,
    readable: bool,
    writable: bool,
    /// Largest incoming message accepted; u64::MAX for no limit.
    max_message: AtomicU64,
    /// Why the connection became unusable (set once; every later call reports it).
    broken: OnceLock<Error>,
    recv: Mutex<RecvState>,
    /// How long a receive spins on non-blocking reads before it sleeps (adapts to how long
    /// this connection's waits last: the waiting policy of every kind, src/wait).
    spin: Spin,
    /// Serialises senders, so frames never interleave.
    send: Mutex<()>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd.as_raw_fd())
            .field("transport", &self.transport)
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .finish()
    }
}

impl Connection {
    pub(crate) fn new(fd: OwnedFd, transport: Transport, readable: bool, writable: bool) -> Connection {
        if transport == Transport::Pipe && writable {
            sys::guard_sigpipe();
        }
        Connection {
            fd,
            transport,
            readable,
            writable,
            max_message: AtomicU64::new(u64::MAX),
            broken: OnceLock::new(),
            recv: Mutex::new(RecvState::default()),
            spin: Spin::new(),
            send: Mutex::new(()),
        }
    }

    /// A connection over a descriptor this process owns: inherited from a parent (fork, or spawn
    /// with the fd kept), received over a Unix socket, or made by other code (CPython's
    /// `Connection.fileno()` of a Pipe end works). It must be a stream socket (Unix or TCP) or a
    /// pipe/FIFO end; the connection goes every way the descriptor allows (both for a socket,
    /// one for a pipe end). Blocking and non-blocking descriptors both work; the descriptor's
    /// flags are left as they are. On error the descriptor is closed (dropped).
    pub fn from_fd(fd: OwnedFd) -> Result<Connection> {
        let (t, r, w) = Self::probe_fd(fd.as_raw_fd(), None, None)?;
        Ok(Connection::new(fd, t, r, w))
    }

    /// As [`from_fd`](Self::from_fd), restricted to the directions asked for (as CPython's
    /// `Connection(fd, readable, writable)`). Asking for a direction the descriptor cannot do
    /// (reading a pipe's write end) is Invalid.
    pub fn from_fd_with(fd: OwnedFd, readable: bool, writable: bool) -> Result<Connection> {
        let (t, r, w) = Self::probe_fd(fd.as_raw_fd(), Some(readable), Some(writable))?;
        Ok(Connection::new(fd, t, r, w))
    }

    /// What `fd` is and which directions a connection over it takes: `readable`/`writable`
    /// None means whatever the descriptor allows. Touches nothing, so a caller can check before
    /// taking ownership.
    pub fn probe_fd(fd: RawFd, readable: Option<bool>, writable: Option<bool>) -> Result<(Transport, bool, bool)> {
        let what = format!("connection from fd {fd}");
        if fd < 0 {
            return Err(err!(Invalid, "{what}: not a file descriptor"));
        }
        // libc, not nix: the descriptor may not be open (that is what EBADF reports here), so it
        // cannot be a BorrowedFd yet.
        // SAFETY: fstat fills the zeroed struct or fails.
        let st = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            (libc::fstat(fd, &mut st) == 0).then_some(st)
        };
        let Some(st) = st else {
            let e = Error::last_os(&what);
            return Err(if e.errno() == Some(Errno::EBADF as i32) {
                err!(Invalid, "{what}: not an open file descriptor")
            } else {
                e
            });
        };
        // SAFETY: fstat just found it open, and the caller keeps it open during this call.
        let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
        let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let (transport, can_read, can_write) = if fmt == SFlag::S_IFSOCK {
            match sock::getsockopt(&bfd, sockopt::SockType) {
                Ok(SockType::Stream) => {}
                Ok(ty) => {
                    return Err(err!(
                        Invalid,
                        "{what}: the socket is not a stream socket (type {}); messages need a byte stream",
                        ty as i32
                    ))
                }
                // A type nix has no name for: not a stream socket either.
                Err(Errno::EINVAL) => {
                    return Err(err!(Invalid, "{what}: the socket is not a stream socket; messages need a byte stream"))
                }
                Err(e) => return Err(Error::os(e, "getsockopt").context(&what)),
            }
            let domain = socket_domain(bfd).map_err(|e| Error::os(e, "getsockopt").context(&what))?;
            let t = if domain == AddressFamily::Unix as i32 { Transport::Unix } else { Transport::Tcp };
            (t, true, true)
        } else if fmt == SFlag::S_IFIFO {
            let fl = fcntl(bfd, FcntlArg::F_GETFL).map_err(|e| Error::os(e, &what))?;
            let acc = OFlag::from_bits_retain(fl) & OFlag::O_ACCMODE;
            (Transport::Pipe, acc != OFlag::O_WRONLY, acc != OFlag::O_RDONLY)
        } else {
            return Err(err!(Invalid, "{what}: not a socket or a pipe (file type {:#o})", fmt.bits()));
        };
        let r = readable.unwrap_or(can_read);
        let w = writable.unwrap_or(can_write);
        if !r && !w {
            return Err(err!(Invalid, "{what}: neither readable nor writable"));
        }
        if r && !can_read {
            return Err(err!(Invalid, "{what}: the descriptor is a pipe's write end; it cannot be read"));
        }
        if w && !can_write {
            return Err(err!(Invalid, "{what}: the descriptor is a pipe's read end; it cannot be written"));
        }
        Ok((transport, r, w))
    }

    /// The descriptor (still owned by the connection), for poll/select/epoll. Note that a
    /// message may already be buffered in the connection while the descriptor is not readable:
    /// call [`poll`](Self::poll) with a zero timeout first, or use [`wait`](Self::wait).
    pub fn fileno(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The peer's address in the address module's form ("tcp:127.0.0.1:51234"; "unix:" for
    /// an unnamed Unix peer, as clients and socketpairs are), like CPython's
    /// `Listener.last_accepted`. Invalid for a pipe.
    pub fn peer_address(&self) -> Result<String> {
        if self.transport == Transport::Pipe {
            return Err(err!(Invalid, "peer_address: a pipe has no address"));
        }
        let peer = sock::getpeername(self.fd.as_raw_fd()).map_err(|e| Error::os(e, "getpeername"))?;
        Ok(super::address::address_string(&peer))
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    pub fn readable(&self) -> bool {
        self.readable
    }

    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Sets the largest incoming message accepted (None: no limit, the default). A larger
    /// length is refused before anything is allocated, with TooBig; the connection is then
    /// unusable, because the rest of the stream can no longer be parsed.
    pub fn set_max_message_size(&self, max: Option<u64>) {
        self.max_message.store(max.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn max_message_size(&self) -> Option<u64> {
        match self.max_message.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(n),
        }
    }

    fn lock_recv(&self) -> MutexGuard<'_, RecvState> {
        self.recv.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_broken(&self) -> Result<()> {
        match self.broken.get() {
            Some(e) => Err(err!(Broken, "connection is unusable: {}", e.message())),
            None => Ok(()),
        }
    }

    fn check_readable(&self, op: &str) -> Result<()> {
        self.check_broken()?;
        if !self.readable {
            return Err(err!(Invalid, "{op}: this connection is write-only"));
        }
        Ok(())
    }

    fn check_writable(&self, op: &str) -> Result<()> {
        self.check_broken()?;
        if !self.writable {
            return Err(err!(Invalid, "{op}: this connection is read-only"));
        }
        Ok(())
    }

    /// Marks the connection unusable (the stream cannot be parsed any more) and shuts a socket
    /// down so the peer sees the end too, as CPython closes it. Returns `e` for the caller.
    fn break_with(&self, e: Error) -> Error {
        let _ = self.broken.set(e.clone());
        if self.transport != Transport::Pipe {
            let _ = sock::shutdown(self.fd.as_raw_fd(), sock::Shutdown::Both);
        }
        e
    }

    // ---- sending ---------------------------------------------------------------------------

    /// Sends one message (any size, 0 included). Blocks until the whole frame is written.
    /// A peer that has gone is Closed.
    pub fn send(&self, data: &[u8]) -> Result<()> {
        self.check_writable("send")?;
        let (h, hl) = encode_header(data.len() as u64);
        let socket = self.transport != Transport::Pipe;
        let r = if data.len() <= SMALL_COPY {
            // Header and payload in one write: one system call, one TCP segment.
            let mut frame = std::mem::MaybeUninit::<[u8; SMALL_COPY + 4]>::uninit();
            let p = frame.as_mut_ptr().cast::<u8>();
            // SAFETY: hl (4 here) + data.len() <= SMALL_COPY + 4 bytes are written, then read.
            let bytes = unsafe {
                std::ptr::copy_nonoverlapping(h.as_ptr(), p, hl);
                std::ptr::copy_nonoverlapping(data.as_ptr(), p.add(hl), data.len());
                std::slice::from_raw_parts(p, hl + data.len())
            };
            let _g = self.send.lock().unwrap_or_else(|p| p.into_inner());
            io::write_all(self.fd.as_fd(), bytes, &[], socket)
        } else {
            let _g = self.send.lock().unwrap_or_else(|p| p.into_inner());
            io::write_all(self.fd.as_fd(), &h[..hl], data, socket)
        };
        REPLY_DUE.with(|d| d.set(true));
        r.map_err(|e| send_error(e, "send"))
    }

    /// Sends descriptors (1..=253) over a Unix connection, as CPython's
    /// `multiprocessing.reduction.sendfds` does: one byte (the count modulo 256) with the
    /// descriptors attached. The receiver gets duplicates; the caller keeps its own.
    pub fn send_fds(&self, fds: &[RawFd]) -> Result<()> {
        self.check_writable("send_fds")?;
        if self.transport != Transport::Unix {
            return Err(err!(
                Unsupported,
                "send_fds: descriptors pass only over Unix sockets (this connection is {:?})",
                self.transport
            ));
        }
        let _g = self.send.lock().unwrap_or_else(|p| p.into_inner());
        io::send_fds(self.fd.as_fd(), (fds.len() % 256) as u8, fds).map_err(|e| send_error(e, "send_fds"))
    }

    /// Sends a shared-memory buffer's descriptor (anonymous or named) over a Unix connection;
    /// the receiver opens it with [`recv_shm`](Self::recv_shm). The buffer stays usable here.
    pub fn send_shm(&self, shm: &SharedMemory) -> Result<()> {
        self.send_fds(&[shm.fd()])
    }

    // ---- receiving -------------------------------------------------------------------------

    /// Receives one message into a new vector. Waits up to `timeout` for the whole message
    /// (Timeout when it ends first; what arrived is kept for the next call). The peer having
    /// closed is Closed; a length over the maximum is TooBig and makes the connection unusable.
    /// The vector grows as the bytes arrive, not from the announced length.
    pub fn recv(&self, timeout: impl Into<Timeout>) -> Result<Vec<u8>> {
        self.recv_limited(u64::MAX, timeout.into().deadline())
    }

    /// Receives one message into memory from malloc (for C callers, who release it with free),
    /// grown as the bytes arrive. Otherwise as [`recv`](Self::recv).
    pub fn recv_malloc(&self, timeout: impl Into<Timeout>) -> Result<MallocBuf> {
        let mut b = MallocBuf::default();
        self.recv_core(u64::MAX, timeout.into().deadline(), Dest::Grow(&mut b))?;
        Ok(b)
    }

    /// Receives one message into `buf` and returns its length. A message longer than `buf` is
    /// BufferTooSmall and stays pending (its length is [`pending_len`](Self::pending_len)), so a
    /// second call with a large enough buffer gets it. Otherwise as [`recv`](Self::recv).
    pub fn recv_into(&self, buf: &mut [u8], timeout: impl Into<Timeout>) -> Result<usize> {
        let dest = Dest::Buffer { ptr: buf.as_mut_ptr(), cap: buf.len(), part: None };
        self.recv_core(u64::MAX, timeout.into().deadline(), dest)
    }

    /// Receives one message in parts into memory the caller keeps between calls (and may grow),
    /// so a large message is neither copied twice nor held by the connection: `*got` counts the
    /// message's bytes already at the start of `buf` (0 to begin). Returns the length once the
    /// whole message is in `buf`. Timeout: the bytes that arrived are in `buf` (`*got` updated);
    /// call again with them. BufferTooSmall: `buf` is full (or too small for what the connection
    /// kept from an earlier call); grow it, keeping its first `*got` bytes, and call again
    /// ([`pending_len`](Self::pending_len) is the message's length). Once some of its bytes are
    /// in `buf`, other receive calls are State errors until this one completes it. Closed
    /// resets `*got` to 0.
    pub fn recv_into_part(&self, buf: &mut [u8], got: &mut usize, timeout: impl Into<Timeout>) -> Result<usize> {
        let dest = Dest::Buffer { ptr: buf.as_mut_ptr(), cap: buf.len(), part: Some(got) };
        self.recv_core(u64::MAX, timeout.into().deadline(), dest)
    }

    /// Receives a message of at most `limit` bytes (the handshake's bound); a longer one makes
    /// the connection unusable.
    pub(crate) fn recv_limited(&self, limit: u64, deadline: Option<Instant>) -> Result<Vec<u8>> {
        let mut v: Vec<u8> = Vec::new();
        self.recv_core(limit, deadline, Dest::Grow(&mut v))?;
        Ok(v)
    }

    /// Length of a message whose header has arrived but which was not delivered yet (after
    /// BufferTooSmall, or a timeout in the middle of its body).
    pub fn pending_len(&self) -> Option<u64> {
        self.lock_recv().pending
    }

    fn recv_core(&self, limit: u64, deadline: Option<Instant>, mut dest: Dest<'_>) -> Result<usize> {
        self.check_readable("recv")?;
        let mut st = self.lock_recv();
        match &dest {
            Dest::Buffer { part: Some(g), cap, .. } if **g != st.handed || *cap < st.handed => {
                return Err(err!(
                    Invalid,
                    "recv_part: the buffer holds {} of the message's bytes ({} bytes of room), but {} were handed to it",
                    **g,
                    cap,
                    st.handed
                ));
            }
            Dest::Buffer { part: None, .. } | Dest::Grow(_) if st.handed > 0 => {
                return Err(err!(
                    State,
                    "recv: a message is half received into the caller's buffer (recv_part); finish it with recv_part"
                ));
            }
            _ => {}
        }
        let len = match st.pending {
            Some(l) => l,
            None => self.recv_header(&mut st, limit, deadline)?,
        };
        let len = len as usize; // recv_header refused lengths above isize::MAX
        let too_small = match dest {
            Dest::Buffer { cap, part: None, .. } => cap < len,
            _ => false,
        };
        // Before telling the caller to find room for `len` bytes, learn whether the peer is
        // still there to send them: read what is there without waiting, up to the end of the
        // stream or a full read-ahead buffer.
        while too_small && !st.eof && st.buffered() < READ_AHEAD {
            match self.fill(&mut st, Some(Instant::now())) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Timeout => break,
                Err(e) => return Err(self.break_with(e)),
            }
        }
        let arrived = st.handed + st.partial.len() + st.buffered();
        if st.eof && arrived < len {
            // The rest can never come: report the end of the stream now, and every time after.
            let n = st.buffered();
            st.advance(n);
            st.discard_message();
            if let Dest::Buffer { part: Some(g), .. } = &mut dest {
                **g = 0;
            }
            return Err(err!(
                Closed,
                "recv: the peer closed the connection in the middle of a message ({arrived} of {len} bytes arrived)"
            ));
        }
        if let Dest::Buffer { cap, part: None, .. } = dest {
            if cap < len {
                return Err(err!(
                    BufferTooSmall,
                    "recv: the message has {len} bytes, the buffer {cap} (the message is kept for the next call)"
                ));
            }
        }
        // Bytes kept from an earlier call that timed out go on arriving where they are (so a
        // receive in many short waits copies the body once, at the end); a caller who keeps
        // the bytes itself (part) takes them over now.
        let mut stash = std::mem::take(&mut st.partial);
        if let Dest::Buffer { ptr, cap, part: Some(g) } = &mut dest {
            if !stash.is_empty() {
                if *cap < stash.len() {
                    st.partial = stash;
                    return Err(buffer_full(len, 0, *cap));
                }
                // SAFETY: the buffer has cap >= stash.len() bytes; handed (= **g) is 0 here.
                unsafe { std::ptr::copy_nonoverlapping(stash.as_ptr(), *ptr, stash.len()) };
                **g = stash.len();
                st.handed = stash.len();
                stash.clear();
            }
        }
        let into_stash = !stash.is_empty();
        let r = {
            let sink = if into_stash { Sink::Grow(&mut stash) } else { Sink::of(&mut dest) };
            self.receive_body(&mut st, sink, len, deadline)
        };
        if let Err((e, got)) = r {
            self.keep_progress(&mut st, stash, into_stash, &mut dest, got, &e);
            return Err(e);
        }
        if into_stash {
            if let Dest::Grow(g) = &mut dest {
                if let Some(v) = g.as_vec().filter(|v| v.is_empty()) {
                    std::mem::swap(v, &mut stash); // a Rust recv takes the kept body as it is
                }
            }
            if !stash.is_empty() {
                if let Err(e) = deliver_stash(&stash, &mut dest) {
                    st.partial = stash;
                    return Err(e);
                }
            }
        }
        if let Dest::Buffer { part: Some(g), .. } = &mut dest {
            **g = len;
        }
        st.discard_message();
        st.hint = (len + 4).clamp(MIN_AHEAD, READ_AHEAD);
        if stash.capacity() <= READ_AHEAD {
            stash.clear();
            st.partial = stash; // keep the small allocation for the next time
        }
        Ok(len)
    }

    /// Reads the body of the pending `len`-byte message into `sink` (from the read-ahead
    /// buffer first, then straight from the descriptor). On failure, the error and how many
    /// body bytes the sink holds.
    fn receive_body(
        &self,
        st: &mut RecvState,
        mut sink: Sink<'_>,
        len: usize,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), (Error, usize)> {
        let mut got = sink.len();
        while got < len {
            let (p, room) = sink.room(got, len, st.buffered()).map_err(|e| (e, got))?;
            let take = room.min(st.buffered());
            if take > 0 {
                // SAFETY: take bytes are buffered and fit in the room at p.
                unsafe { std::ptr::copy_nonoverlapping(st.buf.as_ptr().add(st.start), p, take) };
                st.advance(take);
                got += take;
                // SAFETY: the sink's bytes up to got are written.
                unsafe { sink.set_len(got) };
                continue;
            }
            // The buffer is empty: read the rest straight into the sink (and read ahead after it).
            // SAFETY: p .. p + room is the sink's to write.
            match unsafe { self.read_some(st, Some((p, room)), deadline) } {
                Ok(0) => {
                    st.eof = true;
                    st.discard_message();
                    return Err((
                        err!(Closed, "recv: the peer closed the connection in the middle of a message ({got} of {len} bytes arrived)"),
                        0,
                    ));
                }
                Ok(n) => {
                    let to_sink = n.min(room);
                    st.consumed += to_sink as u64;
                    st.end = n - to_sink;
                    got += to_sink;
                    // SAFETY: as above.
                    unsafe { sink.set_len(got) };
                }
                Err(e) if e.kind() == ErrorKind::Timeout => return Err((e, got)),
                // Part of the body is gone with the caller's buffer: the stream cannot resume.
                Err(e) => return Err((self.break_with(e), 0)),
            }
        }
        Ok(())
    }

    /// After a receive stopped with `got` body bytes in its sink: keeps them for the next call
    /// (in the connection, or for a part receive in the caller's buffer, counted in `*part`).
    fn keep_progress(
        &self,
        st: &mut RecvState,
        mut stash: Vec<u8>,
        into_stash: bool,
        dest: &mut Dest<'_>,
        got: usize,
        e: &Error,
    ) {
        if st.pending.is_none() || self.broken.get().is_some() {
            // The message is gone (end of stream, or the connection broke): a part receive's
            // buffer holds nothing of a message any more.
            if let Dest::Buffer { part: Some(g), .. } = dest {
                **g = 0;
            }
            return;
        }
        if into_stash {
            st.partial = stash;
            return;
        }
        let kept: &[u8] = match dest {
            Dest::Buffer { part: Some(g), .. } => {
                **g = got;
                st.handed = got;
                return;
            }
            // SAFETY: the first got bytes of the caller's buffer were written by this call.
            Dest::Buffer { ptr, .. } => unsafe { std::slice::from_raw_parts(*ptr, got) },
            Dest::Grow(g) => {
                if let Some(v) = g.as_vec() {
                    st.partial = std::mem::take(v); // its len is the bytes received
                    return;
                }
                // SAFETY: the first got bytes of the sink are written (its len).
                unsafe { std::slice::from_raw_parts(g.as_mut_ptr(), g.len().min(got)) }
            }
        };
        stash.clear();
        if stash.try_reserve_exact(kept.len()).is_err() {
            let _ = self.break_with(err!(Os, "recv: cannot keep {} received bytes after: {e}", kept.len()));
            return;
        }
        stash.extend_from_slice(kept);
        st.partial = stash;
    }

    /// Waits for and takes the next header; returns the message length, now pending.
    fn recv_header(&self, st: &mut RecvState, limit: u64, deadline: Option<Instant>) -> Result<u64> {
        loop {
            if st.fds_next() {
                return Err(err!(State, "recv: the peer sent file descriptors here, not a message: call recv_fds"));
            }
            let parsed = parse_header(&st.buf[st.start..st.end]).map_err(|e| self.break_with(e))?;
            if let Some((len, used)) = parsed {
                let max = self.max_message.load(Ordering::Relaxed).min(limit);
                if len > max {
                    return Err(self.break_with(err!(
                        TooBig,
                        "recv: incoming message of {len} bytes exceeds the maximum of {max}; the connection is closed (the rest of the stream cannot be parsed)"
                    )));
                }
                if len > isize::MAX as u64 {
                    return Err(self.break_with(err!(
                        TooBig,
                        "recv: incoming message of {len} bytes cannot exist in memory; the connection is closed"
                    )));
                }
                st.advance(used);
                st.pending = Some(len);
                return Ok(len);
            }
            if st.eof {
                return Err(if st.buffered() == 0 {
                    err!(Closed, "recv: the peer closed the connection")
                } else {
                    err!(Closed, "recv: the peer closed the connection in the middle of a message header")
                });
            }
            self.fill(st, deadline)?;
        }
    }

    /// Reads more bytes into the read-ahead buffer (at least one, or end of file).
    fn fill(&self, st: &mut RecvState, deadline: Option<Instant>) -> Result<()> {
        if st.buf.is_empty() {
            st.buf = vec![0; READ_AHEAD];
        }
        if st.end == st.buf.len() {
            // A partial header, or the start of a body the caller had no room for yet.
            st.buf.copy_within(st.start..st.end, 0);
            st.end -= st.start;
            st.start = 0;
        }
        // SAFETY: no destination; only the buffer's free space is written.
        let n = unsafe { self.read_some(st, None, deadline)? };
        if n == 0 {
            st.eof = true;
        }
        Ok(())
    }

    /// One read: into `dest` first (if any), then the free part of the read-ahead buffer.
    /// Returns the byte count (0 = end of file). Descriptors that came along are queued with
    /// the stream offset of the read's last byte: both CPython and mpx send them with a
    /// one-byte message of its own, and the kernel ends a read right after such a byte.
    ///
    /// # Safety
    /// `dest`, if given, must be valid for writes of its length.
    unsafe fn read_some(
        &self,
        st: &mut RecvState,
        dest: Option<(*mut u8, usize)>,
        deadline: Option<Instant>,
    ) -> Result<usize> {
        if st.buf.is_empty() {
            st.buf = vec![0; READ_AHEAD];
        }
        let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; 2];
        let mut n_iov = 0;
        if let Some((p, l)) = dest {
            iov[0] = libc::iovec { iov_base: p.cast(), iov_len: l };
            n_iov = 1;
        }
        // Read ahead only as far as `ahead` (see RecvState::ahead), at least a whole header.
        let free = (st.buf.len() - st.end).min(if dest.is_none() { st.ahead.max(MAX_HEADER) } else { st.ahead });
        let asked = free + dest.map_or(0, |d| d.1);
        if free > 0 {
            iov[n_iov] = libc::iovec { iov_base: st.buf.as_mut_ptr().add(st.end).cast(), iov_len: free };
            n_iov += 1;
        }
        let fd = self.fd.as_fd();
        let socket = self.transport != Transport::Pipe;
        let unix = self.transport == Transport::Unix;
        // When a reply is due (see REPLY_DUE): try without blocking; if nothing is there, spin
        // on non-blocking reads for as long as this connection's waits show that pays (the
        // Spin budget), then sleep: a blocking read without a deadline, else poll for
        // readability. A request answered while its sender spins costs no wake on either side
        // (a Python round trip over a Pipe took 7 us instead of 86 us here, where a wake costs
        // 25-50 us). A reader of a stream does not spin: catching each message as it is
        // written would read them one by one, and its non-blocking reads contend with the
        // writer for the pipe's lock (64 B one way: 1.5 M/s spinning, 1.8 M/s sleeping).
        let spin = (socket || sys::pipe_nowait_works()) && REPLY_DUE.with(|d| d.get());
        let iov = &mut iov[..n_iov];
        let read = |iov: &mut [libc::iovec], nonblock: bool| {
            // SAFETY: iov holds the caller's `dest` (valid for writes, per this function's
            // contract) and the free part of the read-ahead buffer.
            unsafe { sys::read_iov(fd, iov, socket, unix, nonblock) }
        };
        let mut plain = !(spin || deadline.is_some());
        let mut r = read(iov, !plain);
        let mut spun = !spin;
        loop {
            match r {
                Ok(r) => {
                    // A read that filled everything asked found a backlog: read further ahead
                    // next time; one that came back short caught up: back to about one frame.
                    st.ahead = if r.n == asked { (st.ahead * 2).min(READ_AHEAD) } else { st.hint.max(MIN_AHEAD) };
                    if r.n > 0 && (!r.fds.is_empty() || r.fds_truncated) {
                        let at = st.consumed + st.buffered() as u64 + r.n as u64 - 1;
                        st.fds.push_back(FdGroup { at, fds: r.fds, truncated: r.fds_truncated });
                    }
                    if dest.is_none() {
                        st.end += r.n;
                    }
                    return Ok(r.n);
                }
                Err(Errno::EAGAIN) => {
                    REPLY_DUE.with(|d| d.set(false));
                    if !spun {
                        spun = true;
                        let mut caught = None;
                        let d = Deadline::at(deadline);
                        let hit = self.spin.until(&d, SPIN_GAP, || match read(iov, true) {
                            Err(Errno::EAGAIN) => false,
                            other => {
                                caught = Some(other);
                                true
                            }
                        });
                        if let (true, Some(c)) = (hit, caught) {
                            r = c;
                            continue;
                        }
                    }
                    // Without a deadline a plain read sleeps by itself, unless the descriptor
                    // is non-blocking (its plain read said EAGAIN): then poll, never spin.
                    if (deadline.is_some() || plain) && !io::wait_fd(fd, PollFlags::POLLIN, deadline)? {
                        return Err(timeout_error());
                    }
                    plain = true;
                    // Readable (or no deadline): a plain read, which works on kernels without
                    // RWF_NOWAIT for pipes.
                    r = read(iov, false);
                }
                Err(Errno::ECONNRESET) => return Ok(0),
                Err(e) => return Err(Error::os(e, "read").context("recv")),
            }
        }
    }

    /// Receives descriptors sent with [`send_fds`](Self::send_fds) (or CPython's
    /// `reduction.send_handle`/`sendfds`); at most `max` are accepted (more is BufferTooSmall,
    /// and they stay pending: [`next_fds_count`](Self::next_fds_count) tells how many). The
    /// descriptors are close-on-exec and owned by the caller. If the next item is an ordinary
    /// message, State (the message is left for `recv`).
    pub fn recv_fds(&self, max: usize, timeout: impl Into<Timeout>) -> Result<Vec<OwnedFd>> {
        self.check_readable("recv_fds")?;
        if self.transport != Transport::Unix {
            return Err(err!(
                Unsupported,
                "recv_fds: descriptors pass only over Unix sockets (this connection is {:?})",
                self.transport
            ));
        }
        let deadline = timeout.into().deadline();
        let mut st = self.lock_recv();
        if st.pending.is_some() {
            return Err(err!(
                State,
                "recv_fds: a message is partly received; receive it first (with recv_part if it was begun there)"
            ));
        }
        while st.buffered() == 0 {
            if st.eof {
                return Err(err!(Closed, "recv_fds: the peer closed the connection"));
            }
            self.fill(&mut st, deadline)?;
        }
        if !st.fds_next() {
            return Err(err!(State, "recv_fds: the next item is an ordinary message, not file descriptors: call recv"));
        }
        let count = st.fds.front().map_or(0, |g| g.fds.len());
        if count > max {
            return Err(err!(
                BufferTooSmall,
                "recv_fds: {count} descriptors arrived, room for {max} (they are kept for the next call)"
            ));
        }
        let g = st.fds.pop_front().expect("checked above");
        let byte = st.buf[st.start];
        st.advance(1);
        if g.truncated {
            return Err(err!(
                Corrupt,
                "recv_fds: the peer sent more descriptors than one message can carry; they were lost"
            ));
        }
        if byte as usize != g.fds.len() % 256 {
            return Err(err!(Corrupt, "recv_fds: the count byte says {byte}, {} descriptors arrived", g.fds.len()));
        }
        Ok(g.fds)
    }

    /// How many descriptors the next item carries, if it is a descriptor message that has
    /// already arrived.
    pub fn next_fds_count(&self) -> Option<usize> {
        let mut st = self.lock_recv();
        if st.pending.is_none() && st.fds_next() {
            st.fds.front().map(|g| g.fds.len())
        } else {
            None
        }
    }

    /// Receives a shared-memory buffer sent with [`send_shm`](Self::send_shm) and opens it
    /// (`flags`: Flags::READ_ONLY or none). Kind and header are validated as for any open.
    pub fn recv_shm(&self, flags: Flags, timeout: impl Into<Timeout>) -> Result<SharedMemory> {
        let fds = self.recv_fds(1, timeout)?;
        let shm = SharedMemory::from_fd(fds[0].as_raw_fd(), flags).map_err(|e| e.context("recv_shm"))?;
        Ok(shm)
    }

    // ---- waiting ---------------------------------------------------------------------------

    /// Whether something can be received without waiting for its first byte: a message (or
    /// part of one) is buffered or arriving, or the peer closed (recv then reports Closed).
    /// Waits up to `timeout` (0: just look). Like CPython's `Connection.poll`.
    pub fn poll(&self, timeout: impl Into<Timeout>) -> Result<bool> {
        self.check_readable("poll")?;
        if self.ready_now() {
            return Ok(true);
        }
        io::wait_fd(self.fd.as_fd(), PollFlags::POLLIN, timeout.into().deadline())
    }

    fn ready_now(&self) -> bool {
        let st = self.lock_recv();
        st.buffered() > 0 || st.pending.is_some() || st.eof
    }

    /// Waits until at least one of `conns` is ready to receive (as [`poll`](Self::poll)), up to
    /// `timeout`; returns one flag per connection (all false when the time ran out). Like
    /// CPython's `multiprocessing.connection.wait` for connections.
    pub fn wait(conns: &[&Connection], timeout: impl Into<Timeout>) -> Result<Vec<bool>> {
        let mut deadline = timeout.into().deadline();
        let mut ready = vec![false; conns.len()];
        let mut pfds = Vec::with_capacity(conns.len());
        for (i, c) in conns.iter().enumerate() {
            c.check_readable("wait").map_err(|e| e.context(format!("connection {i}")))?;
            if c.ready_now() {
                ready[i] = true;
                deadline = Some(Instant::now()); // report the others only if ready right now
            }
            pfds.push(PollFd::new(c.fd.as_fd(), PollFlags::POLLIN));
        }
        io::wait_fds(&mut pfds, deadline)?;
        for (r, p) in ready.iter_mut().zip(&pfds) {
            // Flags nix has no name for (None) are still an event.
            *r |= p.revents().map_or(true, |f| !f.is_empty());
        }
        Ok(ready)
    }
}

/// Where receive_body writes: the caller's memory, or memory that grows as bytes arrive.
enum Sink<'a> {
    /// `cap` bytes at `ptr`, the first `start` of them already the message's.
    Mem {
        ptr: *mut u8,
        cap: usize,
        start: usize,
    },
    Grow(&'a mut dyn Grow),
}

impl<'a> Sink<'a> {
    fn of<'b>(dest: &'b mut Dest<'_>) -> Sink<'b> {
        match dest {
            Dest::Buffer { ptr, cap, part } => {
                Sink::Mem { ptr: *ptr, cap: *cap, start: part.as_deref().copied().unwrap_or(0) }
            }
            Dest::Grow(g) => Sink::Grow(&mut **g),
        }
    }

    /// Body bytes already in the sink.
    fn len(&self) -> usize {
        match self {
            Sink::Mem { start, .. } => *start,
            Sink::Grow(g) => g.len(),
        }
    }

    /// Room for the next body bytes after the first `got` of `len`: a pointer and how many fit
    /// (at least one). A Grow sink grows (to fit what is buffered, doubling as it fills); a
    /// full caller buffer is BufferTooSmall.
    fn room(&mut self, got: usize, len: usize, buffered: usize) -> Result<(*mut u8, usize)> {
        match self {
            Sink::Mem { ptr, cap, .. } => {
                let end = (*cap).min(len);
                if got >= end {
                    return Err(buffer_full(len, got, *cap));
                }
                // SAFETY: got < cap: inside the caller's buffer.
                Ok((unsafe { ptr.add(got) }, end - got))
            }
            Sink::Grow(g) => {
                if g.capacity() <= got {
                    let need = got + buffered.min(len - got).max(1);
                    g.try_grow(body::next_capacity(g.capacity(), need, len))?;
                }
                let end = g.capacity().min(len);
                // SAFETY: got < capacity: inside the sink's memory.
                Ok((unsafe { g.as_mut_ptr().add(got) }, end - got))
            }
        }
    }

    /// # Safety
    /// The first `got` bytes must be written.
    unsafe fn set_len(&mut self, got: usize) {
        if let Sink::Grow(g) = self {
            g.set_len(got);
        }
    }
}

/// Copies a completed body that was kept in the connection into the caller's destination.
fn deliver_stash(stash: &[u8], dest: &mut Dest<'_>) -> Result<()> {
    match dest {
        // SAFETY: recv_core checked cap >= the message's length (= stash.len()).
        Dest::Buffer { ptr, .. } => unsafe { std::ptr::copy_nonoverlapping(stash.as_ptr(), *ptr, stash.len()) },
        Dest::Grow(g) => {
            g.try_grow(stash.len())?;
            // SAFETY: the sink is new (len 0) and now has room for stash.len() bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(stash.as_ptr(), g.as_mut_ptr(), stash.len());
                g.set_len(stash.len());
            }
        }
    }
    Ok(())
}

fn buffer_full(len: usize, got: usize, cap: usize) -> Error {
    err!(
        BufferTooSmall,
        "recv_part: the buffer of {cap} bytes is full ({got} of the message's {len} bytes in it): grow it, keeping them, and call again"
    )
}

fn timeout_error() -> Error {
    err!(Timeout, "recv: no complete message within the timeout (what arrived is kept)")
}

/// A failed write: a peer that has gone is Closed.
fn send_error(e: Error, op: &str) -> Error {
    match e.errno().map(Errno::from_raw) {
        Some(Errno::EPIPE | Errno::ECONNRESET) => err!(Closed, "{op}: the peer closed the connection"),
        _ => e.context(op),
    }
}

/// The socket's address family (SO_DOMAIN: nix has no such option).
fn socket_domain(fd: BorrowedFd<'_>) -> nix::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid for getsockopt.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    Errno::result(r).map(|_| v)
}

/// A pair of connected connections, as CPython's `multiprocessing.Pipe(duplex)`: duplex over a
/// Unix socketpair (both ends send and receive, and can pass descriptors), or one way over a
/// pipe, where the first end only receives and the second only sends.
pub fn pipe(duplex: bool) -> Result<(Connection, Connection)> {
    if duplex {
        let (a, b) = sock::socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|e| Error::os(e, "pipe: socketpair"))?;
        Ok((Connection::new(a, Transport::Unix, true, true), Connection::new(b, Transport::Unix, true, true)))
    } else {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::os(e, "pipe: pipe2"))?;
        Ok((Connection::new(r, Transport::Pipe, true, false), Connection::new(w, Transport::Pipe, false, true)))
    }
}

/// The largest number of descriptors [`Connection::send_fds`] takes at once.
pub const MAX_SEND_FDS: usize = MAX_FDS;
