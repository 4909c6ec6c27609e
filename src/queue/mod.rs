//! [`Queue`]: a bounded multi-producer multi-consumer queue of variable-size byte messages in one
//! shared segment, with Python's Queue, JoinableQueue and SimpleQueue semantics on top.
//! Design notes: docs/QUEUES.md. The module is split by concern: the shared layout
//! (`shared.rs`), the double-mapped ring (`ring.rs`), the side locks, their recovery and waiting
//! (`sides.rs`), the producer side (`produce.rs`), the consumer side (`consume.rs`), shutdown and
//! JoinableQueue's join (`join.rs`).
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
//! - Waiting: the crate's one policy ([`crate::wait`]): spin briefly, then sleep on a futex word
//!   that sleepers mark, so the side that makes progress calls FUTEX_WAKE only when somebody
//!   sleeps.
//! - Nothing read from the segment is trusted: indices, counts and record headers are checked
//!   before use, every access stays inside the ring, and inconsistencies are ErrorKind::Corrupt.

mod consume;
mod join;
mod produce;
mod ring;
mod shared;
mod sides;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering::*};

pub use consume::ReadView;
pub use produce::{flat_len, Reservation};
use ring::{page_size, Ring};
use shared::{State, REC_HEADER, STATE_MAGIC, STATE_SIZE};

use crate::object::{Kind, Layout, Mapped, Object, Segment};
use crate::wait::Spin;
use crate::{err, Error, Result};

/// The largest capacity a queue can be created with (2 GiB).
pub const MAX_CAPACITY: usize = 1 << 31;

/// The largest message limit (max_messages) a queue can have.
const MAX_MESSAGES: u64 = u32::MAX as u64 * 64;

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
    // Declared before `m` so that it is unmapped first.
    ring: Ring,
    m: Mapped<State>,
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
    /// Waits for messages, room and joins; and for the side locks.
    spin: Spin,
    lock_spin: Spin,
}

impl Object for Queue {
    const KIND: Kind = Kind::Queue;
    type Spec<'a> = QueueSpec;

    fn layout(spec: &QueueSpec) -> Result<Layout> {
        let params = spec.params()?;
        Ok(Layout { data_size: STATE_SIZE + params[0] as usize, data_align: page_size(), params })
    }

    fn init(seg: &Segment, _: &QueueSpec) -> Result<()> {
        // SAFETY: the zeroed data area holds the state; nobody else sees it yet.
        let st = unsafe { &*seg.data_ptr().cast::<State>() };
        st.meta.magic.store(STATE_MAGIC, Release);
        Ok(())
    }

    fn attach(seg: Segment) -> Result<Queue> {
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
        let m = Mapped::<State>::new(seg, STATE_SIZE)?;
        let magic = m.state().meta.magic.load(Acquire);
        if magic != STATE_MAGIC {
            return Err(err!(Corrupt, "{what}: queue state not initialised (magic {magic:#010x})"));
        }
        let seg = m.segment();
        let ring_map = Ring::map(seg.fd(), off + STATE_SIZE, ring as usize, !seg.is_read_only(), &what)?;
        Ok(Queue {
            ring: ring_map,
            m,
            cap: ring,
            max_msgs,
            variant,
            head_hint: AtomicU64::new(0),
            got_hint: AtomicU64::new(0),
            tail_hint: AtomicU64::new(0),
            spin: Spin::new(),
            lock_spin: Spin::new(),
        })
    }

    fn segment(&self) -> &Segment {
        self.m.segment()
    }

    fn summary(&self) -> Option<String> {
        let mut t = format!("{} msgs, {} of {} bytes", self.qsize(), self.bytes_used(), self.capacity());
        if self.is_shutdown() {
            t.push_str(", shut down");
        }
        Some(t)
    }
}

impl Queue {
    pub(super) fn ctx(&self, e: Error) -> Error {
        e.context(self.describe())
    }

    pub(super) fn corrupt(&self, why: String) -> Error {
        err!(Corrupt, "indices or records are corrupt: {why}")
    }

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
    /// The counts live in shared memory: a value no queue of this size can hold (a count
    /// written over by a buggy or hostile process) reads as the most it can hold, never as 1e19.
    pub fn qsize(&self) -> u64 {
        let st = self.m.state();
        // Gets never outrun puts, so reading the get count first keeps the difference >= 0.
        let got = st.cpub.count.load(Acquire);
        let put = st.ppub.count.load(Acquire);
        put.saturating_sub(got).min(self.most_messages())
    }

    /// The most messages the queue can hold at once: every record takes at least 8 bytes.
    fn most_messages(&self) -> u64 {
        let by_bytes = self.cap / REC_HEADER;
        if self.max_msgs != 0 {
            by_bytes.min(self.max_msgs)
        } else {
            by_bytes
        }
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
        let st = self.m.state();
        let head = st.cpub.index.load(Acquire);
        let tail = st.ppub.index.load(Acquire);
        tail.saturating_sub(head).min(self.cap)
    }

    /// Whether shutdown() was called (by any process).
    pub fn is_shutdown(&self) -> bool {
        self.m.state().meta.closed.load(Acquire) != 0
    }

    /// How many times a process found a side's lock held by a dead process and repaired it.
    pub fn recoveries(&self) -> u64 {
        self.m.state().meta.recoveries.load(Relaxed)
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
