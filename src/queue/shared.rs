//! The queue's shared layout: the state page (locks, indices, journals, futex words) and the
//! ring, mapped twice back to back so every record is contiguous in memory.
//!
//! Data area of the segment (page-aligned; the segment header's params are
//! `[ring bytes R, max messages, variant, STATE_SIZE]`):
//! ```text
//! offset  size  line           written by                  fields
//!      0    64  plock          producers                   RawLock (owner-death aware)
//!     64    64  pjournal       producer holding plock      active, view, index, count, view_len
//!    128    64  ppub           producer holding plock      tail (byte counter), put count
//!    192    64  clock          consumers                   RawLock
//!    256    64  cjournal       consumer holding clock      active, view, index, count, view_len
//!    320    64  cpub           consumer holding clock      head (byte counter), get count
//!    384    64  data signal    futex word: counter | WAITERS (bit 31); consumers sleep on it
//!    448    64  space signal   futex word; producers sleep on it
//!    512    64  meta           magic "MPXQ", closed, recoveries
//!    576    64  join           done count (task_done calls)
//!    640    64  join signal    futex word; join() sleeps on it
//!    704  3392  reserved
//!   4096     R  ring           records: u32 len, u32 check, payload padded to 8 bytes
//! ```
//! `tail` and `head` count bytes since creation (they never wrap in practice: 2^64 bytes);
//! a record starts at `index % R`. The put and get counts give the exact size; the done count
//! (JoinableQueue) the unfinished tasks, `put count - done`.

use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::sync::RawLock;
use crate::wait::Signal;

/// Bytes of the state before the ring: one page, so the ring starts page-aligned in the file
/// and can be mapped on its own.
pub(crate) const STATE_SIZE: usize = 4096;
/// "MPXQ": written last at creation, checked at open.
pub(crate) const STATE_MAGIC: u32 = 0x5158_504D;
/// Bytes in front of every payload.
pub(crate) const REC_HEADER: u64 = 8;
/// Mixed into a record's check word (check = len rotated ^ REC_SALT), so garbage is caught.
const REC_SALT: u32 = 0x9E37_79B9;

/// Bytes a record of `len` payload bytes occupies: header + payload rounded up to 8.
#[inline]
pub(crate) fn record_size(len: u64) -> u64 {
    REC_HEADER + ((len + 7) & !7)
}

#[inline]
pub(crate) fn record_check(len: u32) -> u32 {
    len.rotate_left(13) ^ REC_SALT
}

/// A journal: what the holder of a side's lock is about to publish, so that the next holder
/// can finish the job if it dies half-way (redo; publishing is idempotent). `view` is set
/// while a reservation (producers) or an in-place read (consumers) is open.
#[repr(C, align(64))]
pub(crate) struct Journal {
    pub active: AtomicU32,
    pub view: AtomicU32,
    pub index: AtomicU64,
    pub count: AtomicU64,
    pub view_len: AtomicU64,
    _reserved: [u64; 4],
}

/// What one side publishes: the index (tail or head) and the message count (put or get).
#[repr(C, align(64))]
pub(crate) struct Published {
    pub index: AtomicU64,
    pub count: AtomicU64,
    _reserved: [u64; 6],
}

#[repr(C, align(64))]
pub(crate) struct Meta {
    pub magic: AtomicU32,
    pub closed: AtomicU32,
    /// How many times a side was taken over from a process that died holding it.
    pub recoveries: AtomicU64,
    _reserved: [u64; 6],
}

#[repr(C, align(64))]
pub(crate) struct Join {
    /// task_done() calls so far; unfinished = put count - done.
    pub done: AtomicU64,
    _reserved: [u64; 7],
}

#[repr(C)]
pub(crate) struct State {
    pub plock: RawLock,
    pub pj: Journal,
    pub ppub: Published,
    pub clock: RawLock,
    pub cj: Journal,
    pub cpub: Published,
    pub data: Signal,
    pub space: Signal,
    pub meta: Meta,
    pub join: Join,
    pub joined: Signal,
}

const _: () = assert!(std::mem::size_of::<State>() == 704);
const _: () = assert!(std::mem::size_of::<State>() <= STATE_SIZE);
