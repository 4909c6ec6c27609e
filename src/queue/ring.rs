//! The ring, mapped twice in a row: a record that runs past the end of the ring continues in
//! the second mapping, which is the same memory as the ring's start. So every message is one
//! contiguous slice (zero-copy reads and writes need that) and no padding records are needed.

use std::num::NonZeroUsize;
use std::os::fd::{BorrowedFd, RawFd};
use std::ptr::NonNull;

use nix::sys::mman::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};

use crate::{err, Error, Result};

/// The system page size.
pub(crate) fn page_size() -> usize {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(p)) if p > 0 => p as usize,
        _ => 4096,
    }
}

pub(crate) struct Ring {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the ring is process-wide shared memory; what may be read or written where is decided
// by the queue's locks and published indices, not by which thread holds the handle.
unsafe impl Send for Ring {}
// SAFETY: as above; the handle itself has no interior state.
unsafe impl Sync for Ring {}

impl Ring {
    /// Maps `len` bytes of the file `fd` at `offset` (both page multiples) twice back to back.
    /// memmap2 cannot place a mapping at a given address, which the second half needs (MAP_FIXED
    /// inside a reserved range), so this uses nix's mmap directly.
    pub fn map(fd: RawFd, offset: usize, len: usize, writable: bool, what: &str) -> Result<Ring> {
        let total = len.checked_mul(2).ok_or_else(|| err!(Invalid, "{what}: ring of {len} bytes is too large"))?;
        let (Some(half), Some(whole)) = (NonZeroUsize::new(len), NonZeroUsize::new(total)) else {
            return Err(err!(Corrupt, "{what}: empty ring"));
        };
        // Reserve the address range first so that the two halves are adjacent.
        // SAFETY: a new anonymous PROT_NONE mapping at an address the kernel picks; nothing else
        // refers to that memory.
        let base = unsafe {
            mmap_anonymous(None, whole, ProtFlags::PROT_NONE, MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE)
        }
        .map_err(|e| Error::os(e, format!("{what}: reserving {total} bytes of address space for the ring")))?;
        let prot = if writable { ProtFlags::PROT_READ | ProtFlags::PROT_WRITE } else { ProtFlags::PROT_READ };
        // SAFETY: the caller's segment descriptor is open for the whole call (it owns it).
        let file = unsafe { BorrowedFd::borrow_raw(fd) };
        for i in 0..2 {
            // SAFETY: MAP_FIXED inside the range reserved above, which only this function knows;
            // it replaces our own PROT_NONE reservation and nothing else.
            let at = unsafe { NonZeroUsize::new_unchecked(base.as_ptr() as usize + i * len) };
            let flags = MapFlags::MAP_SHARED | MapFlags::MAP_FIXED;
            // SAFETY: as above; the file range lies inside the segment (checked by the caller).
            if let Err(e) = unsafe { mmap(Some(at), half, prot, flags, file, offset as libc::off_t) } {
                // SAFETY: unmapping the range we reserved; nothing else uses it.
                let _ = unsafe { munmap(base, total) };
                return Err(Error::os(e, format!("{what}: mapping the ring")));
            }
        }
        Ok(Ring { base: base.cast(), len })
    }

    /// Pointer to ring position `pos` (< len); `len` bytes from there are valid.
    #[inline]
    pub fn at(&self, pos: usize) -> *mut u8 {
        debug_assert!(pos < self.len);
        // SAFETY: pos < len and the mapping is 2 * len bytes.
        unsafe { self.base.as_ptr().add(pos) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: our own mapping; nothing borrowed from it outlives the queue.
        let _ = unsafe { munmap(self.base.cast(), self.len * 2) };
    }
}
