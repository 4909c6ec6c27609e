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

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

use crate::sync::futex;
use crate::sync::RawLock;
use crate::{err, Error, Result};

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

/// A futex word that sleepers mark with WAITERS, so a waker makes a system call only when
/// someone sleeps. Wakers bump the counter (clearing WAITERS) and wake everyone; a sleeper that
/// died leaves WAITERS set, which costs the next waker one needless FUTEX_WAKE and no more.
#[repr(C, align(64))]
pub(crate) struct Signal {
    pub word: AtomicU32,
    _reserved: [u32; 15],
}

const WAITERS: u32 = 1 << 31;

impl Signal {
    /// Wakes the sleepers, if any. Must follow (in SeqCst order) the store that makes their
    /// condition true: together with `arm` this is the store-buffering pattern, so either the
    /// sleeper sees the new state or the waker sees WAITERS.
    #[inline]
    pub fn notify(&self) {
        if self.word.load(SeqCst) & WAITERS != 0 {
            self.wake_all();
        }
    }

    /// Wakes every sleeper unconditionally (close, recovery).
    #[cold]
    pub fn wake_all(&self) {
        let mut s = self.word.load(Relaxed);
        loop {
            match self.word.compare_exchange_weak(s, s.wrapping_add(1) & !WAITERS, SeqCst, Relaxed) {
                Ok(_) => break,
                Err(x) => s = x,
            }
        }
        futex::wake(&self.word, futex::ALL);
    }

    /// Announces a sleeper; returns the value to sleep on. Re-check the condition after this.
    pub fn arm(&self) -> u32 {
        let mut s = self.word.load(SeqCst);
        loop {
            if s & WAITERS != 0 {
                return s;
            }
            match self.word.compare_exchange_weak(s, s | WAITERS, SeqCst, SeqCst) {
                Ok(_) => return s | WAITERS,
                Err(x) => s = x,
            }
        }
    }

    /// Sleeps while the word is `armed`, at most `d`.
    pub fn sleep(&self, armed: u32, d: Duration) {
        futex::wait(&self.word, armed, Some(d));
    }
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

/// The system page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p <= 0 {
        4096
    } else {
        p as usize
    }
}

/// The ring, mapped twice in a row: a record that runs past the end of the ring continues in
/// the second mapping, which is the same memory as the ring's start. So every message is one
/// contiguous slice (zero-copy reads and writes need that) and no padding records are needed.
pub(crate) struct Ring {
    base: *mut u8,
    len: usize,
}

impl Ring {
    /// Maps `len` bytes of the file `fd` at `offset` (both page multiples) twice back to back.
    pub fn map(fd: i32, offset: usize, len: usize, what: &str) -> Result<Ring> {
        let total = len.checked_mul(2).ok_or_else(|| err!(Invalid, "{what}: ring of {len} bytes is too large"))?;
        // Reserve the address range first so that the two halves are adjacent.
        // SAFETY: an anonymous PROT_NONE mapping; the result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::last_os(format!("{what}: reserving {total} bytes of address space for the ring")));
        }
        for half in 0..2 {
            // SAFETY: MAP_FIXED inside the range reserved above, which we own.
            let p = unsafe {
                libc::mmap(
                    base.cast::<u8>().add(half * len).cast(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_FIXED,
                    fd,
                    offset as libc::off_t,
                )
            };
            if p == libc::MAP_FAILED {
                let e = Error::last_os(format!("{what}: mapping the ring"));
                // SAFETY: unmapping the range we reserved.
                unsafe { libc::munmap(base, total) };
                return Err(e);
            }
        }
        Ok(Ring { base: base.cast(), len })
    }

    /// Pointer to ring position `pos` (< len); `len` bytes from there are valid.
    #[inline]
    pub fn at(&self, pos: usize) -> *mut u8 {
        debug_assert!(pos < self.len);
        // SAFETY: pos < len and the mapping is 2 * len bytes.
        unsafe { self.base.add(pos) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: our own mapping; nothing borrowed from it outlives the queue.
        unsafe { libc::munmap(self.base.cast(), self.len * 2) };
    }
}
