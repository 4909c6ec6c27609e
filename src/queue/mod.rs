//! [`Queue`]: a bounded multi-producer multi-consumer queue of variable-size byte messages in one
//! shared segment, with Python's Queue, JoinableQueue and SimpleQueue semantics on top.
//! Design notes: docs/QUEUES.md; the shared layout: `shared.rs`.
//!
//! - The ring holds length-prefixed records and is mapped twice back to back, so every message
//!   is one contiguous slice: the zero-copy paths ([`Queue::reserve`], [`Queue::read`]) hand out
//!   plain slices, even for a message that wraps around the end.
//! - Producers serialise on one owner-death-aware lock, consumers on another; the two sides
//!   meet only at the published indices, so one producer and one consumer never contend.
//!   Records are copied while the side's lock is held, and the new tail (or head) is published
//!   with one store afterwards: a message is visible whole or not at all.
//! - Fault tolerance: a process that dies holding a side's lock is detected by the next process
//!   that wants it (sync::RawLock), which finishes or discards the dead one's work: unpublished
//!   bytes are simply overwritten, and a half-done publish is redone from the side's journal.
//!   So a killed producer never leaves a torn message, and a consumer killed before publishing
//!   the new head leaves its message for the others.
//! - Waiting: spin briefly, then sleep on a futex word that sleepers mark, so the side that
//!   makes progress calls FUTEX_WAKE only when somebody sleeps.
//! - Nothing read from the segment is trusted: indices, counts and record headers are checked
//!   before use, every access stays inside the ring, and inconsistencies are ErrorKind::Corrupt.

mod shared;

use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

use shared::{
    page_size, record_check, record_size, Journal, Published, Ring, Signal, State, REC_HEADER, STATE_MAGIC, STATE_SIZE,
};

use crate::object::{Flags, Kind, Segment, SegmentSpec};
use crate::sync::futex::{Deadline, LIVENESS_SLICE};
use crate::sync::{owner, segment_accessors, Acquired, RawLock};
use crate::util::Timeout;
use crate::{err, Error, ErrorKind, Result};

/// The largest capacity a queue can be created with (2 GiB).
pub const MAX_CAPACITY: usize = 1 << 31;

/// The largest message limit (max_messages) a queue can have.
const MAX_MESSAGES: u64 = u32::MAX as u64 * 64;

/// How long a non-blocking call (timeout 0) may wait for the other holder of its side's lock,
/// which normally holds it for a few hundred nanoseconds. Long enough to take the lock over from
/// a holder that died (that needs one full 1 ms sleep slice), short enough to stay non-blocking
/// in spirit.
const TRY_LOCK_WAIT: Duration = Duration::from_millis(5);

/// Which of Python's queues this is. Stored in the segment, so a queue opened by name knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Variant {
    /// multiprocessing.Queue.
    Queue = 0,
    /// multiprocessing.JoinableQueue: adds task_done and join.
    Joinable = 1,
    /// multiprocessing.SimpleQueue: no message limit.
    Simple = 2,
}

impl Variant {
    fn from_u64(v: u64) -> Option<Variant> {
        match v {
            0 => Some(Variant::Queue),
            1 => Some(Variant::Joinable),
            2 => Some(Variant::Simple),
            _ => None,
        }
    }
}

/// What a new queue looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSpec {
    /// Bytes of messages the queue holds at least (each message also takes an 8-byte header and
    /// is padded to 8 bytes). The ring is this plus 8, rounded up to the page size, so a message
    /// of `capacity` bytes always fits; [`Queue::max_message`] is the exact limit.
    pub capacity: usize,
    /// At most this many messages at once (0: only the bytes limit). Python's `maxsize`.
    pub max_messages: u64,
    pub variant: Variant,
}

impl QueueSpec {
    /// A queue holding at least `capacity` bytes of messages.
    pub fn new(capacity: usize) -> QueueSpec {
        QueueSpec { capacity, max_messages: 0, variant: Variant::Queue }
    }

    pub fn max_messages(mut self, n: u64) -> QueueSpec {
        self.max_messages = n;
        self
    }

    pub fn variant(mut self, v: Variant) -> QueueSpec {
        self.variant = v;
        self
    }

    /// Header params: [ring bytes, max messages, variant, state size].
    fn params(&self) -> Result<[u64; 4]> {
        if self.capacity == 0 {
            return Err(err!(Invalid, "capacity 0: a queue must hold at least one byte"));
        }
        if self.capacity > MAX_CAPACITY {
            return Err(err!(Invalid, "capacity {} exceeds the limit of {MAX_CAPACITY} bytes", self.capacity));
        }
        if self.variant == Variant::Simple && self.max_messages != 0 {
            return Err(err!(Invalid, "a simple queue has no message limit (max_messages {})", self.max_messages));
        }
        // The same bound wrap() enforces on open: refuse it here, not as corruption after.
        if self.max_messages > MAX_MESSAGES {
            return Err(err!(Invalid, "max_messages {} exceeds the limit of {MAX_MESSAGES}", self.max_messages));
        }
        let page = page_size();
        let ring = (self.capacity + REC_HEADER as usize).div_ceil(page) * page;
        Ok([ring as u64, self.max_messages, self.variant as u64, STATE_SIZE as u64])
    }
}

/// A queue handle. Cheap to share between threads (`&Queue` is Sync); in another process open
/// it by name or fd.
pub struct Queue {
    // Declared before `seg` so that it is unmapped first.
    ring: Ring,
    seg: Segment,
    st: NonNull<State>,
    /// Ring bytes (R).
    cap: u64,
    max_msgs: u64,
    variant: Variant,
    // Lower bounds of counters the other side advances. They only ever grow, so any value once
    // seen stays a safe bound and saves reading the other side's cache line on every call.
    // Written only while holding the side's lock (which orders them for the next holder).
    /// Producers: a head seen earlier.
    head_hint: AtomicU64,
    /// Producers: a get count seen earlier.
    got_hint: AtomicU64,
    /// Consumers: a tail seen earlier.
    tail_hint: AtomicU64,
    /// How long waiters spin before they sleep (ns; adapts, see SPIN_MIN_NS).
    spin_ns: AtomicU32,
}

segment_accessors!(Queue);

/// The timeout of one call, and its deadline once something had to wait.
struct Wait {
    timeout: Timeout,
    deadline: Option<Deadline>,
}

impl Wait {
    fn new(timeout: Timeout) -> Wait {
        Wait { timeout, deadline: None }
    }

    fn is_try(&self) -> bool {
        matches!(self.timeout, Timeout::After(d) if d.is_zero())
    }

    /// Whether a deadline was set (by a wait) and has passed. Never for a first attempt.
    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| d.expired())
    }

    fn deadline(&mut self) -> Deadline {
        *self.deadline.get_or_insert_with(|| Deadline::new(self.timeout))
    }

    /// What the side's lock may wait: a short while for a non-blocking call, else what is left.
    fn lock_timeout(&mut self) -> Timeout {
        if self.is_try() {
            return Timeout::After(TRY_LOCK_WAIT);
        }
        match self.deadline {
            None => self.timeout,
            Some(d) => d.remaining().map_or(Timeout::Forever, Timeout::After),
        }
    }
}

/// How long a waiter spins before it sleeps, at most. A futex sleep and wake costs ~25 µs on
/// this kind of VM, a cross-process handoff by spinning well under 1 µs, so spinning for about
/// as long as a sleep would cost is the classic 2-competitive choice. By time, not by count: one
/// PAUSE takes anywhere from 6 ns to 140 ns depending on the CPU and hypervisor.
const SPIN_MAX_NS: u32 = 30_000;
/// The shortest spin. The budget adapts per handle: it doubles after a spin that saw its
/// condition and halves after one that had to sleep, so on a busy machine (where the process
/// waited for is often not running, and spinning only takes its CPU) waiters soon sleep early.
const SPIN_MIN_NS: u32 = 2_000;
/// After this much pure spinning, the spinner yields between checks, so that on a busy machine
/// the process it waits for can run on this CPU.
const SPIN_PURE: Duration = Duration::from_micros(5);
/// Room a producer waits for while it spins (if the ring is large enough): see produce().
const EAGER_ROOM: u64 = 4096;

/// Spins until `ready()`, at most `budget_ns` and never past the deadline, with `gap` PAUSEs
/// between checks (a check that reads a line the other side keeps writing slows that side
/// down). Returns whether ready.
#[inline]
fn spin(d: &Deadline, gap: u32, budget_ns: u32, ready: &mut impl FnMut() -> bool) -> bool {
    let pause = || {
        for _ in 0..gap {
            std::hint::spin_loop();
        }
    };
    for _ in 0..64 {
        if ready() {
            return true;
        }
        pause();
    }
    let budget = Duration::from_nanos(budget_ns as u64);
    let start = std::time::Instant::now();
    loop {
        for _ in 0..32 {
            if ready() {
                return true;
            }
            pause();
        }
        let spent = start.elapsed();
        if spent >= budget || d.expired() {
            return false;
        }
        if spent >= SPIN_PURE {
            // SAFETY: no preconditions.
            unsafe { libc::sched_yield() };
        }
    }
}

/// How a waiter looks for its condition while it spins.
struct SpinHow<F> {
    /// PAUSEs between two checks.
    gap: u32,
    /// The condition while spinning (may ask for more than the exact one, e.g. more room, so
    /// that the waiter does not chase the other side one message at a time).
    eager: F,
}

/// One side's lock, released on drop (also on an early return or a panic).
struct Held<'a>(&'a RawLock);

impl Held<'_> {
    /// Keeps the lock past this call (an open reservation or read).
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let _ = self.0.release(false);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Producer,
    Consumer,
}

/// Publishes a side's new index and count through its journal: a holder killed anywhere in
/// here leaves either nothing or a journal the next holder redoes.
#[inline]
fn publish(j: &Journal, p: &Published, index: u64, count: u64) {
    j.index.store(index, Relaxed);
    j.count.store(count, Relaxed);
    j.active.store(1, Release);
    p.count.store(count, Release);
    // SeqCst: pairs with Signal::arm in a sleeper of the other side (see Signal::notify).
    p.index.store(index, SeqCst);
    j.active.store(0, Release);
}

impl Queue {
    fn wrap(seg: Segment) -> Result<Queue> {
        let what = seg.describe();
        // The params are in the checksummed header; still, check everything before use.
        let [ring, max_msgs, variant, state] = seg.params();
        let page = page_size() as u64;
        let variant =
            Variant::from_u64(variant).ok_or_else(|| err!(Corrupt, "{what}: unknown queue variant {variant}"))?;
        if state != STATE_SIZE as u64 || ring < page || ring % page != 0 || ring > (MAX_CAPACITY as u64 + page) {
            return Err(err!(Corrupt, "{what}: invalid layout (ring {ring} bytes, state {state} bytes)"));
        }
        if (variant == Variant::Simple && max_msgs != 0) || max_msgs > MAX_MESSAGES {
            return Err(err!(Corrupt, "{what}: invalid message limit {max_msgs}"));
        }
        let off = seg.data_offset();
        if off as u64 % page != 0 || seg.data_size() as u64 != STATE_SIZE as u64 + ring {
            return Err(err!(
                Corrupt,
                "{what}: data area {} bytes at offset {off} does not hold a {ring}-byte ring",
                seg.data_size()
            ));
        }
        let st = NonNull::new(seg.data_ptr().cast::<State>()).expect("mapping is not null");
        // SAFETY: the data area is at least STATE_SIZE bytes, page-aligned, and lives with seg.
        let magic = unsafe { st.as_ref() }.meta.magic.load(Acquire);
        if magic != STATE_MAGIC {
            return Err(err!(Corrupt, "{what}: queue state not initialised (magic {magic:#010x})"));
        }
        let ring_map = Ring::map(seg.fd(), off + STATE_SIZE, ring as usize, &what)?;
        Ok(Queue {
            ring: ring_map,
            seg,
            st,
            cap: ring,
            max_msgs,
            variant,
            head_hint: AtomicU64::new(0),
            got_hint: AtomicU64::new(0),
            tail_hint: AtomicU64::new(0),
            spin_ns: AtomicU32::new(SPIN_MAX_NS),
        })
    }

    fn new_segment(name: Option<&str>, spec: QueueSpec, flags: Flags) -> Result<Segment> {
        let what = name.map_or("anonymous queue".to_string(), |n| format!("queue '{n}'"));
        let params = spec.params().map_err(|e| e.context(&what))?;
        let seg_spec = SegmentSpec {
            kind: Kind::Queue,
            data_size: STATE_SIZE + params[0] as usize,
            data_align: page_size(),
            params,
        };
        let init = |seg: &Segment| {
            // SAFETY: the zeroed data area holds the state; nobody else sees it yet.
            let st = unsafe { &*seg.data_ptr().cast::<State>() };
            st.meta.magic.store(STATE_MAGIC, Release);
            Ok(())
        };
        match name {
            Some(n) => Segment::create(n, seg_spec, flags, init),
            None => {
                if flags.0 != 0 {
                    return Err(err!(Invalid, "{what}: flags {:#x} apply to named objects only", flags.0));
                }
                Segment::create_anonymous(seg_spec, init)
            }
        }
    }

    /// Creates a named queue. Fails with Exists if the name is taken.
    pub fn create(name: &str, spec: QueueSpec, flags: Flags) -> Result<Queue> {
        Self::wrap(Self::new_segment(Some(name), spec, flags)?)
    }

    /// Creates an anonymous queue: share it with a child by fd.
    pub fn create_anonymous(spec: QueueSpec) -> Result<Queue> {
        Self::wrap(Self::new_segment(None, spec, Flags::default())?)
    }

    /// Opens a named queue (MPX_F_READ_ONLY is refused: every operation writes).
    pub fn open(name: &str, flags: Flags) -> Result<Queue> {
        Self::wrap(crate::sync::open_segment(Some(name), -1, Kind::Queue, flags, false)?)
    }

    /// Opens the queue behind an inherited or received fd (duplicated; the caller keeps its own).
    pub fn from_fd(fd: RawFd, flags: Flags) -> Result<Queue> {
        Self::wrap(crate::sync::open_segment(None, fd, Kind::Queue, flags, false)?)
    }

    #[inline]
    fn st(&self) -> &State {
        // SAFETY: checked in wrap; the mapping lives as long as self.
        unsafe { self.st.as_ref() }
    }

    fn ctx(&self, e: Error) -> Error {
        e.context(self.seg.describe())
    }

    fn corrupt(&self, why: String) -> Error {
        err!(Corrupt, "indices or records are corrupt: {why}")
    }

    // ---- properties ---------------------------------------------------------------------

    /// Ring bytes: what the messages, with their 8-byte headers and padding, may occupy.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// The largest message that can ever be put (capacity - 8).
    pub fn max_message(&self) -> usize {
        (self.cap - REC_HEADER) as usize
    }

    /// The message limit (0: none).
    pub fn max_messages(&self) -> u64 {
        self.max_msgs
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Messages in the queue now: exact whenever no put or get is half-way.
    pub fn qsize(&self) -> u64 {
        let st = self.st();
        // Gets never outrun puts, so reading the get count first keeps the difference >= 0.
        let got = st.cpub.count.load(Acquire);
        let put = st.ppub.count.load(Acquire);
        put.saturating_sub(got)
    }

    pub fn is_empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether a put would have to wait now: the message limit is reached, or not even an
    /// empty message fits. (A message may not fit while full() is false: the limit is bytes.)
    pub fn is_full(&self) -> bool {
        (self.max_msgs != 0 && self.qsize() >= self.max_msgs) || self.cap - self.bytes_used() < REC_HEADER
    }

    /// Ring bytes in use (records with their headers).
    pub fn bytes_used(&self) -> u64 {
        let st = self.st();
        let head = st.cpub.index.load(Acquire);
        let tail = st.ppub.index.load(Acquire);
        tail.saturating_sub(head).min(self.cap)
    }

    /// Whether shutdown() was called (by any process).
    pub fn is_shutdown(&self) -> bool {
        self.st().meta.closed.load(Acquire) != 0
    }

    /// How many times a process found a side's lock held by a dead process and repaired it.
    pub fn recoveries(&self) -> u64 {
        self.st().meta.recoveries.load(Relaxed)
    }

    // ---- locks and recovery -------------------------------------------------------------

    fn lock(&self, side: Side, w: &mut Wait) -> Result<Held<'_>> {
        let st = self.st();
        let lock = if side == Side::Producer { &st.plock } else { &st.clock };
        let me = owner::me();
        // The locks are not recursive: a thread with an open reservation (or read) that puts
        // (or gets) would wait for itself.
        if lock.holder() == me.pid && lock.is_mine() {
            let what = if side == Side::Producer { "reservation" } else { "in-place read" };
            return Err(err!(State, "this thread has an open {what} on the queue: commit or abort it first"));
        }
        match lock.acquire(false, w.lock_timeout()) {
            Ok(Acquired::Clean) => Ok(Held(lock)),
            Ok(Acquired::OwnerDied { pid }) => {
                let held = Held(lock);
                self.recover(side, pid)?;
                Ok(held)
            }
            Err(e) if e.kind() == ErrorKind::Timeout => {
                let who = if side == Side::Producer { "producer" } else { "consumer" };
                let pid = lock.holder();
                Err(if w.is_try() {
                    let kind = if side == Side::Producer { ErrorKind::Full } else { ErrorKind::Empty };
                    Error::new(kind, format!("the {who} side is busy (held by pid {pid})"))
                } else {
                    err!(Timeout, "timed out waiting for the {who} side (held by pid {pid})")
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Repairs a side taken over from a process that died holding its lock: redo a journalled
    /// publish, forget an open view. Whatever it wrote without publishing is free space again.
    #[cold]
    fn recover(&self, side: Side, pid: u32) -> Result<()> {
        let st = self.st();
        let (j, p) = if side == Side::Producer { (&st.pj, &st.ppub) } else { (&st.cj, &st.cpub) };
        if j.active.load(Acquire) != 0 {
            let (index, count) = (j.index.load(Relaxed), j.count.load(Relaxed));
            let (cur, cur_count) = (p.index.load(Relaxed), p.count.load(Relaxed));
            // The journalled state must lie between this side's and the other side's.
            let ok = index >= cur
                && count >= cur_count
                && match side {
                    Side::Producer => index.wrapping_sub(st.cpub.index.load(Acquire)) <= self.cap,
                    Side::Consumer => index <= st.ppub.index.load(Acquire) && count <= st.ppub.count.load(Acquire),
                };
            if !ok {
                return Err(self.corrupt(format!(
                    "journal of dead pid {pid} says index {index} count {count}, published {cur} / {cur_count}"
                )));
            }
            p.count.store(count, Release);
            p.index.store(index, SeqCst);
            j.active.store(0, Release);
        }
        j.view.store(0, Relaxed);
        st.meta.recoveries.fetch_add(1, Relaxed);
        // The dead process may have published without waking anyone.
        if side == Side::Producer {
            st.data.wake_all();
        } else {
            st.space.wake_all();
        }
        Ok(())
    }

    /// Sleeps on `sig` until `ready()`; spins first (see SpinHow). Err(Timeout) at the
    /// deadline; `what` names the awaited thing in its message.
    fn wait_until<F: FnMut() -> bool>(
        &self,
        sig: &Signal,
        w: &mut Wait,
        what: impl FnOnce() -> String,
        mut how: SpinHow<F>,
        mut ready: impl FnMut() -> bool,
    ) -> Result<()> {
        let d = w.deadline();
        let budget = self.spin_ns.load(Relaxed);
        let spun = spin(&d, how.gap, budget, &mut how.eager);
        let next = if spun { budget.saturating_mul(2).min(SPIN_MAX_NS) } else { (budget / 2).max(SPIN_MIN_NS) };
        if next != budget {
            self.spin_ns.store(next, Relaxed);
        }
        if spun || ready() {
            return Ok(());
        }
        loop {
            let armed = sig.arm();
            if ready() {
                return Ok(());
            }
            if d.expired() {
                return Err(err!(Timeout, "timed out waiting for {}", what()));
            }
            // Bounded slices: a process that died between publishing and waking cannot wake
            // us, so look again now and then.
            sig.sleep(armed, d.slice(LIVENESS_SLICE));
            if ready() {
                return Ok(());
            }
        }
    }

    // ---- producer side ------------------------------------------------------------------

    fn check_len(&self, len: usize) -> Result<()> {
        if len as u64 > self.cap - REC_HEADER {
            return Err(err!(
                TooBig,
                "message of {len} bytes can never fit: the largest is {} bytes (capacity {})",
                self.cap - REC_HEADER,
                self.cap
            ));
        }
        Ok(())
    }

    /// Whether `bytes` of records and `n` more messages fit after `tail` (producer lock held).
    #[inline]
    fn room(&self, tail: u64, bytes: u64, n: u64) -> Result<bool> {
        let st = self.st();
        let hint = self.head_hint.load(Relaxed);
        let used = tail.wrapping_sub(hint);
        if used > self.cap || self.cap - used < bytes {
            let head = st.cpub.index.load(Acquire);
            let used = tail.wrapping_sub(head);
            if used > self.cap {
                return Err(self.corrupt(format!("tail {tail} and head {head} are not within {} bytes", self.cap)));
            }
            self.head_hint.store(head, Relaxed);
            if self.cap - used < bytes {
                return Ok(false);
            }
        }
        if self.max_msgs != 0 {
            let put = st.ppub.count.load(Relaxed);
            let hint = self.got_hint.load(Relaxed);
            let queued = put.wrapping_sub(hint);
            if queued > self.max_msgs || self.max_msgs - queued < n {
                let got = st.cpub.count.load(Acquire);
                // Puts never outrun the limit, so a larger difference is damage (and room_unlocked
                // sends waiters here to find that out).
                if got > put || put - got > self.max_msgs {
                    return Err(
                        self.corrupt(format!("put count {put} and get count {got} differ by more than the limit"))
                    );
                }
                self.got_hint.store(got, Relaxed);
                if self.max_msgs - (put - got) < n {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The same question without the lock, for sleepers: true when worth retrying.
    fn room_unlocked(&self, bytes: u64, n: u64) -> bool {
        let st = self.st();
        if st.meta.closed.load(SeqCst) != 0 {
            return true;
        }
        let tail = st.ppub.index.load(SeqCst);
        let head = st.cpub.index.load(SeqCst);
        let used = tail.wrapping_sub(head);
        // A racing (or corrupt) pair of indices: let the locked path judge.
        if used > self.cap {
            return true;
        }
        if self.cap - used < bytes {
            return false;
        }
        if self.max_msgs != 0 {
            let put = st.ppub.count.load(SeqCst);
            let got = st.cpub.count.load(SeqCst);
            let queued = put.wrapping_sub(got);
            return queued > self.max_msgs || self.max_msgs - queued >= n;
        }
        true
    }

    /// Writes one record at index `at`; returns the index after it.
    #[inline]
    fn write_record(&self, at: u64, msg: &[u8]) -> u64 {
        let p = self.ring.at((at % self.cap) as usize);
        // SAFETY: room() checked that [at, at + record_size) is free ring space, which only
        // this lock holder writes; the double mapping makes it contiguous; positions are
        // multiples of 8, so the header words are aligned.
        unsafe {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), p.add(REC_HEADER as usize), msg.len());
            Self::write_header(p, msg.len() as u32);
        }
        at + record_size(msg.len() as u64)
    }

    #[inline]
    unsafe fn write_header(p: *mut u8, len: u32) {
        p.cast::<u32>().write_volatile(len);
        p.add(4).cast::<u32>().write_volatile(record_check(len));
    }

    /// The producer path shared by put, put_many and reserve: waits for the lock and for room
    /// for `bytes` of records and `n` messages, then runs `fill(tail)` with the lock held.
    /// `fill` returns Some(new tail) to publish, or None to keep the lock (a reservation).
    fn produce(&self, n: u64, bytes: u64, timeout: Timeout, mut fill: impl FnMut(u64) -> Option<u64>) -> Result<()> {
        let st = self.st();
        let mut w = Wait::new(timeout);
        loop {
            // Retries (after waiting) end at the deadline, whatever the predicates said.
            if w.expired() {
                return Err(err!(Timeout, "timed out waiting for room for {bytes} bytes of records"));
            }
            let held = self.lock(Side::Producer, &mut w)?;
            if st.meta.closed.load(Acquire) != 0 {
                return Err(err!(Closed, "the queue was shut down"));
            }
            let tail = st.ppub.index.load(Relaxed);
            if self.room(tail, bytes, n)? {
                match fill(tail) {
                    Some(new_tail) => {
                        let count = st.ppub.count.load(Relaxed) + n;
                        publish(&st.pj, &st.ppub, new_tail, count);
                        drop(held);
                        st.data.notify();
                    }
                    None => held.keep(),
                }
                return Ok(());
            }
            drop(held);
            if w.is_try() {
                return Err(if n > 1 {
                    err!(Full, "no room for {n} messages ({bytes} bytes of records)")
                } else {
                    err!(Full, "no room for a {}-byte message", bytes - REC_HEADER)
                });
            }
            // While spinning, wait for a few pages of room (not just this message's), so the
            // producer does not chase the consumer one message at a time, and look only now
            // and then: the consumer writes the head on every get.
            let eager = bytes.max((self.cap / 8).min(EAGER_ROOM));
            let how = SpinHow { gap: 32, eager: || self.room_unlocked(eager, n) };
            self.wait_until(
                &st.space,
                &mut w,
                || format!("room for {bytes} bytes of records"),
                how,
                || self.room_unlocked(bytes, n),
            )?;
        }
    }

    /// Puts one message, waiting at most `timeout` for room (Timeout::After(ZERO): Full at
    /// once). TooBig if it can never fit; Closed after shutdown.
    #[inline]
    pub fn put(&self, msg: &[u8], timeout: impl Into<Timeout>) -> Result<()> {
        self.check_len(msg.len()).map_err(|e| self.ctx(e))?;
        self.produce(1, record_size(msg.len() as u64), timeout.into(), |tail| Some(self.write_record(tail, msg)))
            .map_err(|e| self.ctx(e))
    }

    /// Puts without waiting for room (Full if there is none).
    pub fn try_put(&self, msg: &[u8]) -> Result<()> {
        self.put(msg, Duration::ZERO)
    }

    /// Puts all the messages, in order and next to each other, or none: waits (at most
    /// `timeout`) until all fit at once. One lock round trip. TooBig if the batch can never fit.
    pub fn put_many<M: AsRef<[u8]>>(&self, msgs: &[M], timeout: impl Into<Timeout>) -> Result<()> {
        self.put_many_with(
            msgs.len(),
            |i| msgs[i].as_ref().len(),
            timeout,
            |i, dst| dst.copy_from_slice(msgs[i].as_ref()),
        )
    }

    /// put_many for messages given by length and filled in place: `len(i)` is message i's
    /// size, `fill(i, dst)` writes it; fill is called for i = 0, 1, ..., n-1 in order, once
    /// the batch has room. (The C ABI's flat buffer + lengths form.)
    pub fn put_many_with(
        &self,
        n: usize,
        len: impl Fn(usize) -> usize,
        timeout: impl Into<Timeout>,
        mut fill: impl FnMut(usize, &mut [u8]),
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut bytes: u64 = 0;
        for i in 0..n {
            let l = len(i);
            if l as u64 > self.cap - REC_HEADER {
                self.check_len(l).map_err(|e| self.ctx(e.context(format!("message {i} of the batch"))))?;
            }
            bytes += record_size(l as u64);
        }
        if bytes > self.cap {
            return Err(self.ctx(err!(
                TooBig,
                "a batch of {n} messages needs {bytes} bytes; the ring holds {}",
                self.cap
            )));
        }
        if self.max_msgs != 0 && n as u64 > self.max_msgs {
            return Err(self.ctx(err!(TooBig, "a batch of {n} messages exceeds the limit of {}", self.max_msgs)));
        }
        self.produce(n as u64, bytes, timeout.into(), |tail| {
            let mut at = tail;
            for i in 0..n {
                let l = len(i);
                let p = self.ring.at((at % self.cap) as usize);
                // SAFETY: as in write_record; the whole batch was checked to fit.
                unsafe {
                    fill(i, std::slice::from_raw_parts_mut(p.add(REC_HEADER as usize), l));
                    Self::write_header(p, l as u32);
                }
                at += record_size(l as u64);
            }
            Some(at)
        })
        .map_err(|e| self.ctx(e))
    }

    /// Reserves room for a message of up to `max_len` bytes and returns where to write it; the
    /// producer side stays locked until commit_raw or abort_raw (from this process). Other
    /// producers wait meanwhile; a process that dies with a reservation open loses it, nothing
    /// else. For the C ABI; Rust code uses [`Queue::reserve`].
    pub fn reserve_raw(&self, max_len: usize, timeout: impl Into<Timeout>) -> Result<*mut u8> {
        self.check_len(max_len).map_err(|e| self.ctx(e))?;
        let st = self.st();
        let mut ptr = std::ptr::null_mut();
        self.produce(1, record_size(max_len as u64), timeout.into(), |tail| {
            st.pj.view_len.store(max_len as u64, Relaxed);
            st.pj.view.store(1, Relaxed);
            // SAFETY: the record's payload starts 8 bytes into free ring space.
            ptr = unsafe { self.ring.at((tail % self.cap) as usize).add(REC_HEADER as usize) };
            None
        })
        .map_err(|e| self.ctx(e))?;
        Ok(ptr)
    }

    /// Checks that this process holds `side` with a view open, and with `claim` ends the view:
    /// of two threads that end one view at once, exactly one proceeds (and releases the lock).
    fn own_view(&self, side: Side, claim: bool) -> Result<()> {
        let st = self.st();
        let (lock, j, what) = if side == Side::Producer {
            (&st.plock, &st.pj, "reservation")
        } else {
            (&st.clock, &st.cj, "in-place read")
        };
        let open = lock.holder() == owner::me().pid
            && if claim { j.view.compare_exchange(1, 0, Relaxed, Relaxed).is_ok() } else { j.view.load(Relaxed) == 1 };
        if !open {
            return Err(err!(State, "no {what} is open in this process"));
        }
        Ok(())
    }

    /// Publishes the reserved message with its final length (<= the reserved size).
    pub fn commit_raw(&self, len: usize) -> Result<()> {
        self.commit_inner(len).map_err(|e| self.ctx(e))
    }

    fn commit_inner(&self, len: usize) -> Result<()> {
        self.own_view(Side::Producer, false)?;
        let st = self.st();
        let reserved = st.pj.view_len.load(Relaxed);
        if len as u64 > reserved {
            return Err(err!(
                Invalid,
                "commit of {len} bytes exceeds the {reserved} bytes reserved (the reservation stays open)"
            ));
        }
        self.own_view(Side::Producer, true)?;
        let held = Held(&st.plock);
        let tail = st.ppub.index.load(Relaxed);
        // Room can only have grown since the reservation; checking again guards against a
        // reserved size changed in shared memory.
        if !self.room(tail, record_size(len as u64), 1)? {
            return Err(self.corrupt(format!("the reservation of {reserved} bytes no longer fits")));
        }
        let p = self.ring.at((tail % self.cap) as usize);
        // SAFETY: the reserved record's header, in free ring space this holder owns.
        unsafe { Self::write_header(p, len as u32) };
        let count = st.ppub.count.load(Relaxed) + 1;
        publish(&st.pj, &st.ppub, tail + record_size(len as u64), count);
        drop(held);
        st.data.notify();
        Ok(())
    }

    /// Drops the reservation: nothing is published.
    pub fn abort_raw(&self) -> Result<()> {
        self.own_view(Side::Producer, true).map_err(|e| self.ctx(e))?;
        drop(Held(&self.st().plock));
        Ok(())
    }

    /// Zero-copy put: room for up to `max_len` bytes, written in place, published by
    /// [`Reservation::commit`] (dropping it aborts). While it is open, other producers wait and
    /// this thread must not put to the same queue.
    pub fn reserve(&self, max_len: usize, timeout: impl Into<Timeout>) -> Result<Reservation<'_>> {
        let ptr = self.reserve_raw(max_len, timeout)?;
        Ok(Reservation { q: self, ptr, len: max_len, done: false })
    }

    // ---- consumer side ------------------------------------------------------------------

    /// A tail at or beyond `head` (consumer lock held): the hint if it is ahead, else the
    /// published one, checked.
    #[inline]
    fn tail_for(&self, head: u64) -> Result<u64> {
        let hint = self.tail_hint.load(Relaxed);
        if hint > head && hint - head <= self.cap {
            return Ok(hint);
        }
        let tail = self.st().ppub.index.load(Acquire);
        if tail.wrapping_sub(head) > self.cap {
            return Err(self.corrupt(format!("tail {tail} and head {head} are not within {} bytes", self.cap)));
        }
        self.tail_hint.store(tail, Relaxed);
        Ok(tail)
    }

    /// The record at `at` (< tail): its payload pointer and length, checked.
    #[inline]
    fn record(&self, at: u64, tail: u64) -> Result<(*mut u8, usize)> {
        let avail = tail - at;
        let p = self.ring.at((at % self.cap) as usize);
        // SAFETY: a header's 8 bytes are inside the double mapping from any position; volatile
        // so that the values checked are the values used.
        let (len, check) = unsafe { (p.cast::<u32>().read_volatile(), p.add(4).cast::<u32>().read_volatile()) };
        if check != record_check(len) || record_size(len as u64) > avail {
            return Err(self.corrupt(format!(
                "record at {at} claims {len} bytes (check {check:#010x}); {avail} bytes are published"
            )));
        }
        // SAFETY: the payload lies within the published bytes, inside the mapping.
        Ok((unsafe { p.add(REC_HEADER as usize) }, len as usize))
    }

    /// The consumer path: waits for a message, then, with the consumer lock held, offers the
    /// ready messages (up to `max`) to `take` in order until it declines one, and removes
    /// those it accepted. Returns how many (0 if it declined the first). With `view`, it keeps
    /// the lock and returns the first record instead (an in-place read).
    fn consume(
        &self,
        max: usize,
        timeout: Timeout,
        mut take: impl FnMut(&[u8]) -> bool,
        mut view: Option<&mut (*const u8, usize)>,
    ) -> Result<usize> {
        let st = self.st();
        let mut w = Wait::new(timeout);
        loop {
            if w.expired() {
                return Err(err!(Timeout, "timed out waiting for a message"));
            }
            // Look without the lock first, so idle consumers do not fight over it (and without
            // reading the tail the producer keeps writing, when a tail seen before says enough).
            let head = st.cpub.index.load(Acquire);
            if self.tail_hint.load(Relaxed) <= head && st.ppub.index.load(Acquire) == head {
                if st.meta.closed.load(Acquire) != 0 {
                    // Shutdown holds the producer lock, so after it nothing more is published.
                    if st.ppub.index.load(Acquire) == head {
                        return Err(err!(Closed, "the queue was shut down and is empty"));
                    }
                    continue;
                }
                if w.is_try() {
                    return Err(err!(Empty, "the queue is empty"));
                }
                let ready =
                    || st.ppub.index.load(SeqCst) != st.cpub.index.load(SeqCst) || st.meta.closed.load(SeqCst) != 0;
                self.wait_until(&st.data, &mut w, || "a message".into(), SpinHow { gap: 1, eager: ready }, ready)?;
                continue;
            }
            let held = self.lock(Side::Consumer, &mut w)?;
            let head = st.cpub.index.load(Relaxed);
            let tail = self.tail_for(head)?;
            if tail == head {
                // Another consumer took it.
                drop(held);
                continue;
            }
            if let Some(v) = view.as_deref_mut() {
                let (p, len) = self.record(head, tail)?;
                st.cj.view_len.store(len as u64, Relaxed);
                st.cj.view.store(1, Relaxed);
                *v = (p, len);
                held.keep();
                return Ok(1);
            }
            let mut at = head;
            let mut k = 0usize;
            let mut tail = tail;
            while k < max {
                if at == tail {
                    // The hint is used up: take what was published since, too.
                    let fresh = self.tail_for(at)?;
                    if fresh == at {
                        break;
                    }
                    tail = fresh;
                }
                let (p, len) = self.record(at, tail)?;
                // SAFETY: the payload is published and no producer writes it until head passes.
                if !take(unsafe { std::slice::from_raw_parts(p, len) }) {
                    break;
                }
                at += record_size(len as u64);
                k += 1;
            }
            if k > 0 {
                let count = st.cpub.count.load(Relaxed) + k as u64;
                publish(&st.cj, &st.cpub, at, count);
                drop(held);
                st.space.notify();
            }
            return Ok(k);
        }
    }

    /// Gets one message, offering it to `f` in place; `f` returns None to leave it in the queue
    /// (e.g. a caller's buffer is too small). Waits at most `timeout` (Timeout::After(ZERO):
    /// Empty at once); Closed once the queue is shut down and empty.
    pub fn get_with<R>(&self, timeout: impl Into<Timeout>, f: impl FnOnce(&[u8]) -> Option<R>) -> Result<Option<R>> {
        let mut f = Some(f);
        let mut out = None;
        self.consume(
            1,
            timeout.into(),
            |m| {
                out = (f.take().expect("called once"))(m);
                out.is_some()
            },
            None,
        )
        .map_err(|e| self.ctx(e))?;
        Ok(out)
    }

    /// Gets one message as a new Vec.
    pub fn get(&self, timeout: impl Into<Timeout>) -> Result<Vec<u8>> {
        Ok(self.get_with(timeout, |m| Some(m.to_vec()))?.expect("always taken"))
    }

    /// Gets without waiting (Empty if there is none).
    pub fn try_get(&self) -> Result<Vec<u8>> {
        self.get(Duration::ZERO)
    }

    /// Gets one message into `buf`; returns its length. BufferTooSmall (the message stays in
    /// the queue) if it does not fit.
    pub fn get_into(&self, buf: &mut [u8], timeout: impl Into<Timeout>) -> Result<usize> {
        let cap = buf.len();
        let mut need = 0;
        let got = self.get_with(timeout, |m| {
            if m.len() > cap {
                need = m.len();
                return None;
            }
            buf[..m.len()].copy_from_slice(m);
            Some(m.len())
        })?;
        got.ok_or_else(|| self.ctx(err!(BufferTooSmall, "the next message has {need} bytes; the buffer holds {cap}")))
    }

    /// Gets the messages that are ready, up to `max` (at least one: waits at most `timeout`
    /// for it), offering each to `take` in place until it declines one; one lock round trip.
    /// Returns how many were taken (0 if `take` declined the first).
    pub fn get_many_with(
        &self,
        max: usize,
        timeout: impl Into<Timeout>,
        take: impl FnMut(&[u8]) -> bool,
    ) -> Result<usize> {
        if max == 0 {
            return Err(self.ctx(err!(Invalid, "get_many of 0 messages")));
        }
        self.consume(max, timeout.into(), take, None).map_err(|e| self.ctx(e))
    }

    /// Gets up to `max` ready messages (at least one, waiting at most `timeout` for it).
    pub fn get_many(&self, max: usize, timeout: impl Into<Timeout>) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        self.get_many_with(max, timeout, |m| {
            out.push(m.to_vec());
            true
        })?;
        Ok(out)
    }

    /// Waits for the next message and returns it in place; the consumer side stays locked until
    /// read_commit_raw (the message leaves the queue) or read_abort_raw (it stays). For the C
    /// ABI; Rust code uses [`Queue::read`].
    pub fn read_raw(&self, timeout: impl Into<Timeout>) -> Result<(*const u8, usize)> {
        let mut v = (std::ptr::null(), 0);
        self.consume(1, timeout.into(), |_| false, Some(&mut v)).map_err(|e| self.ctx(e))?;
        Ok(v)
    }

    /// Removes the message of the open in-place read.
    pub fn read_commit_raw(&self) -> Result<()> {
        self.read_commit_inner().map_err(|e| self.ctx(e))
    }

    fn read_commit_inner(&self) -> Result<()> {
        self.own_view(Side::Consumer, true)?;
        let st = self.st();
        let held = Held(&st.clock);
        let head = st.cpub.index.load(Relaxed);
        let tail = self.tail_for(head)?;
        if tail == head {
            return Err(self.corrupt("the message being read is gone".into()));
        }
        let (_, len) = self.record(head, tail)?;
        let count = st.cpub.count.load(Relaxed) + 1;
        publish(&st.cj, &st.cpub, head + record_size(len as u64), count);
        drop(held);
        st.space.notify();
        Ok(())
    }

    /// Ends the open in-place read, leaving the message in the queue.
    pub fn read_abort_raw(&self) -> Result<()> {
        self.own_view(Side::Consumer, true).map_err(|e| self.ctx(e))?;
        drop(Held(&self.st().clock));
        Ok(())
    }

    /// Zero-copy get: the next message in place, removed by [`ReadView::commit`] (dropping the
    /// view leaves it in the queue). While it is open, other consumers wait and this thread
    /// must not get from the same queue.
    pub fn read(&self, timeout: impl Into<Timeout>) -> Result<ReadView<'_>> {
        let (ptr, len) = self.read_raw(timeout)?;
        Ok(ReadView { q: self, ptr, len, done: false })
    }

    // ---- shutdown, join -----------------------------------------------------------------

    /// Shuts the queue down for every process: puts fail with Closed, gets return what is left
    /// and then Closed, and every blocked put or get wakes. Waits for an open reservation to be
    /// committed or aborted (so no message is published after shutdown). Idempotent.
    pub fn shutdown(&self) -> Result<()> {
        let st = self.st();
        let mut w = Wait::new(Timeout::Forever);
        let held = self.lock(Side::Producer, &mut w).map_err(|e| self.ctx(e))?;
        st.meta.closed.store(1, SeqCst);
        drop(held);
        st.data.wake_all();
        st.space.wake_all();
        Ok(())
    }

    fn need_joinable(&self, what: &str) -> Result<()> {
        if self.variant != Variant::Joinable {
            return Err(self.ctx(err!(Unsupported, "{what}: not a joinable queue (create it as a JoinableQueue)")));
        }
        Ok(())
    }

    /// JoinableQueue: one task taken from the queue is done. State error if called more times
    /// than messages were put (Python raises ValueError there).
    pub fn task_done(&self) -> Result<()> {
        self.need_joinable("task_done")?;
        let st = self.st();
        let mut done = st.join.done.load(Acquire);
        loop {
            let put = st.ppub.count.load(Acquire);
            if done >= put {
                return Err(self.ctx(err!(State, "task_done() called more times than there were items put ({put})")));
            }
            match st.join.done.compare_exchange_weak(done, done + 1, SeqCst, Acquire) {
                Ok(_) => {
                    if done + 1 == put {
                        st.joined.notify();
                    }
                    return Ok(());
                }
                Err(x) => done = x,
            }
        }
    }

    /// JoinableQueue: tasks put but not yet marked done.
    pub fn unfinished(&self) -> u64 {
        let st = self.st();
        let done = st.join.done.load(Acquire);
        st.ppub.count.load(Acquire).saturating_sub(done)
    }

    /// JoinableQueue: waits until every message put has been marked done (at most `timeout`).
    pub fn join(&self, timeout: impl Into<Timeout>) -> Result<()> {
        self.need_joinable("join")?;
        let st = self.st();
        let ready = || st.join.done.load(SeqCst) >= st.ppub.count.load(SeqCst);
        if ready() {
            return Ok(());
        }
        let mut w = Wait::new(timeout.into());
        if w.is_try() {
            return Err(self.ctx(err!(Timeout, "{} tasks are unfinished", self.unfinished())));
        }
        self.wait_until(&st.joined, &mut w, || "unfinished tasks".into(), SpinHow { gap: 8, eager: ready }, ready)
            .map_err(|e| self.ctx(e))
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name())
            .field("variant", &self.variant)
            .field("capacity", &self.cap)
            .field("max_messages", &self.max_msgs)
            .field("qsize", &self.qsize())
            .finish()
    }
}

/// An open zero-copy put (see [`Queue::reserve`]). Write into it, then commit; dropping it
/// without committing aborts (nothing is published).
pub struct Reservation<'a> {
    q: &'a Queue,
    ptr: *mut u8,
    len: usize,
    done: bool,
}

impl Reservation<'_> {
    /// Publishes the first `len` bytes (<= the reserved size) as one message.
    pub fn commit(mut self, len: usize) -> Result<()> {
        self.done = true;
        let r = self.q.commit_raw(len);
        if r.is_err() && len > self.len {
            // The reservation stays open after a refused length: drop it here.
            let _ = self.q.abort_raw();
        }
        r
    }

    /// Drops the reservation.
    pub fn abort(mut self) {
        self.done = true;
        let _ = self.q.abort_raw();
    }
}

impl std::ops::Deref for Reservation<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the reserved payload area, owned by this reservation until it ends.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl std::ops::DerefMut for Reservation<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; nobody else reads or writes unpublished ring space.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.q.abort_raw();
        }
    }
}

/// An open zero-copy get (see [`Queue::read`]): the message in place. `commit` removes it;
/// dropping the view leaves it in the queue for the next get.
pub struct ReadView<'a> {
    q: &'a Queue,
    ptr: *const u8,
    len: usize,
    done: bool,
}

impl ReadView<'_> {
    /// Removes the message from the queue.
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.q.read_commit_raw()
    }
}

impl std::ops::Deref for ReadView<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: a published record; no producer writes it before the head passes it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for ReadView<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.q.read_abort_raw();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(cap: usize) -> Queue {
        Queue::create_anonymous(QueueSpec::new(cap)).unwrap()
    }

    #[test]
    fn put_get_roundtrip_and_wrap() {
        let q = q(100);
        assert_eq!(q.capacity(), 4096);
        assert_eq!(q.max_message(), 4088);
        // Many messages of odd sizes: the ring wraps many times, records straddle the end.
        for i in 0..10_000u32 {
            let m: Vec<u8> = (0..(i % 997)).map(|j| (i + j) as u8).collect();
            q.put(&m, Timeout::Forever).unwrap();
            assert_eq!(q.qsize(), 1);
            assert_eq!(q.get(Timeout::Forever).unwrap(), m);
        }
        assert!(q.is_empty());
        assert_eq!(q.try_get().unwrap_err().kind(), ErrorKind::Empty);
    }

    #[test]
    fn full_and_too_big() {
        let q = q(4000);
        let m = vec![7u8; 1000];
        let mut n = 0;
        while q.try_put(&m).is_ok() {
            n += 1;
        }
        assert_eq!(n, 4096 / 1008);
        assert_eq!(q.try_put(&m).unwrap_err().kind(), ErrorKind::Full);
        assert_eq!(q.put(&m, Duration::from_millis(5)).unwrap_err().kind(), ErrorKind::Timeout);
        assert_eq!(q.put(&vec![0; 5000], Timeout::Forever).unwrap_err().kind(), ErrorKind::TooBig);
        assert_eq!(q.put(&vec![0; q.max_message()], Duration::ZERO).unwrap_err().kind(), ErrorKind::Full);
        while q.try_get().is_ok() {}
        q.put(&vec![1; q.max_message()], Duration::ZERO).unwrap();
        assert!(q.is_full());
        assert_eq!(q.get(Duration::ZERO).unwrap().len(), q.max_message());
    }

    #[test]
    fn message_limit() {
        let q = Queue::create_anonymous(QueueSpec::new(4096).max_messages(3)).unwrap();
        for i in 0..3u8 {
            q.try_put(&[i]).unwrap();
        }
        assert!(q.is_full());
        assert_eq!(q.try_put(&[9]).unwrap_err().kind(), ErrorKind::Full);
        assert_eq!(q.put_many(&[[1u8], [2u8], [3u8], [4u8]], Timeout::Forever).unwrap_err().kind(), ErrorKind::TooBig);
        assert_eq!(q.try_get().unwrap(), vec![0]);
        q.try_put(&[3]).unwrap();
        assert_eq!(q.get_many(10, Duration::ZERO).unwrap(), vec![vec![1], vec![2], vec![3]]);
    }

    #[test]
    fn batches() {
        let q = q(10_000);
        let msgs: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; i as usize]).collect();
        q.put_many(&msgs, Duration::ZERO).unwrap();
        assert_eq!(q.qsize(), 50);
        let got = q.get_many(20, Duration::ZERO).unwrap();
        assert_eq!(got, msgs[..20]);
        let mut buf = [0u8; 100];
        assert_eq!(q.get_into(&mut buf[..10], Duration::ZERO).unwrap_err().kind(), ErrorKind::BufferTooSmall);
        assert_eq!(q.get_into(&mut buf, Duration::ZERO).unwrap(), 20);
        let rest = q.get_many(100, Duration::ZERO).unwrap();
        assert_eq!(rest, msgs[21..]);
        q.put_many::<&[u8]>(&[], Duration::ZERO).unwrap();
        assert!(q.is_empty());
    }

    #[test]
    fn reserve_commit_and_read_views() {
        let q = q(8192);
        let mut r = q.reserve(5000, Duration::ZERO).unwrap();
        r[..3].copy_from_slice(b"abc");
        // The same thread may not put while its reservation is open.
        assert_eq!(q.try_put(b"x").unwrap_err().kind(), ErrorKind::State);
        r.commit(3).unwrap();
        let r = q.reserve(10, Duration::ZERO).unwrap();
        drop(r); // aborted
        assert_eq!(q.qsize(), 1);
        assert_eq!(q.commit_raw(1).unwrap_err().kind(), ErrorKind::State);
        let v = q.read(Duration::ZERO).unwrap();
        assert_eq!(&*v, b"abc");
        assert_eq!(q.try_get().unwrap_err().kind(), ErrorKind::State);
        drop(v); // left in the queue
        let v = q.read(Duration::ZERO).unwrap();
        v.commit().unwrap();
        assert!(q.is_empty());
        assert_eq!(q.read_commit_raw().unwrap_err().kind(), ErrorKind::State);
    }

    #[test]
    fn a_view_ends_once_even_from_two_threads() {
        let q = q(4096);
        for _ in 0..200 {
            q.reserve_raw(8, Duration::ZERO).unwrap();
            let oks: usize = std::thread::scope(|s| {
                let h: Vec<_> = (0..2).map(|_| s.spawn(|| q.commit_raw(4).is_ok() as usize)).collect();
                h.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(oks, 1);
            assert_eq!(q.qsize(), 1);
            q.read_raw(Duration::ZERO).unwrap();
            let oks: usize = std::thread::scope(|s| {
                let h: Vec<_> = (0..2).map(|_| s.spawn(|| q.read_commit_raw().is_ok() as usize)).collect();
                h.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(oks, 1);
            assert!(q.is_empty());
        }
    }

    #[test]
    fn shutdown_drains_then_closed() {
        let q = q(4096);
        q.put(b"last", Duration::ZERO).unwrap();
        q.shutdown().unwrap();
        assert!(q.is_shutdown());
        assert_eq!(q.put(b"x", Duration::ZERO).unwrap_err().kind(), ErrorKind::Closed);
        assert_eq!(q.get(Duration::ZERO).unwrap(), b"last");
        assert_eq!(q.get(Timeout::Forever).unwrap_err().kind(), ErrorKind::Closed);
    }

    #[test]
    fn joinable() {
        let q = Queue::create_anonymous(QueueSpec::new(4096).variant(Variant::Joinable)).unwrap();
        assert_eq!(q.task_done().unwrap_err().kind(), ErrorKind::State);
        q.put(b"a", Duration::ZERO).unwrap();
        q.put(b"b", Duration::ZERO).unwrap();
        assert_eq!(q.unfinished(), 2);
        assert_eq!(q.join(Duration::from_millis(1)).unwrap_err().kind(), ErrorKind::Timeout);
        q.get(Duration::ZERO).unwrap();
        q.task_done().unwrap();
        q.get(Duration::ZERO).unwrap();
        q.task_done().unwrap();
        q.join(Duration::ZERO).unwrap();
        assert_eq!(q.task_done().unwrap_err().kind(), ErrorKind::State);
        let plain = Queue::create_anonymous(QueueSpec::new(64)).unwrap();
        assert_eq!(plain.task_done().unwrap_err().kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn threads_mpmc() {
        let q = q(4096);
        const N: u32 = 20_000;
        let total = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for p in 0..2u32 {
                let q = &q;
                s.spawn(move || {
                    for i in 0..N {
                        let m = (p << 24 | i).to_le_bytes();
                        q.put(&m, Timeout::Forever).unwrap();
                    }
                });
            }
            let mut seen = vec![0u32; 2];
            let mut sums = 0u64;
            let h: Vec<_> = (0..2)
                .map(|_| {
                    let (q, total) = (&q, &total);
                    s.spawn(move || {
                        let mut last = [None::<u32>; 2];
                        let mut n = 0u64;
                        while total.load(Relaxed) < 2 * N {
                            if let Ok(m) = q.get(Duration::from_millis(50)) {
                                total.fetch_add(1, Relaxed);
                                let v = u32::from_le_bytes(m.try_into().unwrap());
                                let (p, i) = ((v >> 24) as usize, v & 0xFF_FFFF);
                                // Per-producer order holds for each consumer.
                                assert!(last[p].map_or(true, |l| l < i));
                                last[p] = Some(i);
                                n += i as u64;
                            }
                        }
                        n
                    })
                })
                .collect();
            for t in h {
                sums += t.join().unwrap();
            }
            seen[0] = total.load(Relaxed);
            assert_eq!(seen[0], 2 * N);
            assert_eq!(sums, 2 * (N as u64 * (N as u64 - 1) / 2));
        });
    }
}
