//! Where a received message body goes, and how memory for it is found.
//!
//! A header announces a length, but nothing says the bytes will follow: a peer may announce a
//! terabyte and hang up. So memory the library allocates for a body grows as the bytes arrive
//! ([`Grow`]), never from the announced length alone; only a buffer the caller already owns is
//! filled in place ([`Dest::Buffer`]).

use crate::{err, Result};

/// Bodies up to this size get all their memory at once (one allocation); a larger one starts
/// here and doubles as it fills, so an announced length costs nothing until its bytes come.
pub(crate) const FIRST_GROWTH: usize = 1 << 20;

/// Memory a body is received into, grown by the library as bytes arrive. `len` counts the body
/// bytes written so far; they are kept by every growth.
pub(crate) trait Grow {
    fn len(&self) -> usize;
    fn capacity(&self) -> usize;
    /// The start of the memory (valid for `capacity()` bytes).
    fn as_mut_ptr(&mut self) -> *mut u8;
    /// Records that the first `len` bytes (len <= capacity) are written.
    ///
    /// # Safety
    /// Those bytes must have been written.
    unsafe fn set_len(&mut self, len: usize);
    /// Grows the capacity to at least `cap`, keeping the written bytes. An error (the memory
    /// cannot be had) changes nothing.
    fn try_grow(&mut self, cap: usize) -> Result<()>;
    /// The sink as a Vec, if it is one (so kept bytes can move in and out without a copy).
    fn as_vec(&mut self) -> Option<&mut Vec<u8>> {
        None
    }
}

impl Grow for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
    fn as_mut_ptr(&mut self) -> *mut u8 {
        Vec::as_mut_ptr(self)
    }
    unsafe fn set_len(&mut self, len: usize) {
        Vec::set_len(self, len)
    }
    fn try_grow(&mut self, cap: usize) -> Result<()> {
        let more = cap.saturating_sub(Vec::len(self));
        self.try_reserve_exact(more).map_err(|_| no_memory(cap))
    }
    fn as_vec(&mut self) -> Option<&mut Vec<u8>> {
        Some(self)
    }
}

/// A byte block from malloc/realloc, so a C caller can take it over and release it with free
/// (`mpx_free`). Freed on drop unless taken with [`into_raw`](Self::into_raw).
pub struct MallocBuf {
    ptr: *mut u8,
    len: usize,
    cap: usize,
}

// SAFETY: the block is owned exclusively, like a Vec's.
unsafe impl Send for MallocBuf {}

impl Default for MallocBuf {
    fn default() -> MallocBuf {
        MallocBuf { ptr: std::ptr::null_mut(), len: 0, cap: 0 }
    }
}

impl MallocBuf {
    /// Hands the block over (never NULL: an empty one is still one malloc'd byte) and its length.
    pub fn into_raw(mut self) -> Result<(*mut u8, usize)> {
        if self.ptr.is_null() {
            self.try_grow(1)?;
        }
        let r = (self.ptr, self.len);
        std::mem::forget(self);
        Ok(r)
    }

    pub fn as_slice(&self) -> &[u8] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: the first len bytes of the block are written.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for MallocBuf {
    fn drop(&mut self) {
        // SAFETY: ptr is NULL or a block from malloc/realloc that nobody else owns.
        unsafe { libc::free(self.ptr.cast()) }
    }
}

impl Grow for MallocBuf {
    fn len(&self) -> usize {
        self.len
    }
    fn capacity(&self) -> usize {
        self.cap
    }
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.cap);
        self.len = len;
    }
    fn try_grow(&mut self, cap: usize) -> Result<()> {
        if cap <= self.cap {
            return Ok(());
        }
        // SAFETY: ptr is NULL or our block; realloc keeps the contents and leaves the old block
        // intact if it fails.
        let p = unsafe { libc::realloc(self.ptr.cast(), cap) } as *mut u8;
        if p.is_null() {
            return Err(no_memory(cap));
        }
        self.ptr = p;
        self.cap = cap;
        Ok(())
    }
}

fn no_memory(cap: usize) -> crate::Error {
    err!(Os, "recv: cannot allocate {cap} bytes for the message (it stays pending)")
}

/// The capacity to grow to for a body of `len` bytes whose first `need` bytes must fit: the
/// whole body when it is small, else doubling from FIRST_GROWTH (never past `len`).
pub(crate) fn next_capacity(cap: usize, need: usize, len: usize) -> usize {
    if len <= FIRST_GROWTH {
        return len;
    }
    cap.saturating_mul(2).max(FIRST_GROWTH).max(need).min(len)
}

/// Where a message body goes.
pub(crate) enum Dest<'a> {
    /// The caller's memory: `cap` bytes at `ptr`, filled in place (a longer message is
    /// BufferTooSmall and stays pending). With `part`, the caller keeps the bytes across calls
    /// (mpx_conn_recv_part): a timeout leaves them in the buffer, their count in `*part`.
    Buffer { ptr: *mut u8, cap: usize, part: Option<&'a mut usize> },
    /// Memory the library grows as bytes arrive.
    Grow(&'a mut dyn Grow),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_grows_with_the_bytes_not_the_announcement() {
        assert_eq!(next_capacity(0, 0, 100), 100);
        assert_eq!(next_capacity(0, 0, FIRST_GROWTH), FIRST_GROWTH);
        assert_eq!(next_capacity(0, 10, 1 << 40), FIRST_GROWTH);
        assert_eq!(next_capacity(FIRST_GROWTH, FIRST_GROWTH + 1, 1 << 40), 2 * FIRST_GROWTH);
        assert_eq!(next_capacity(4 * FIRST_GROWTH, 0, 5 * FIRST_GROWTH), 5 * FIRST_GROWTH);
        assert_eq!(next_capacity(FIRST_GROWTH, 9 * FIRST_GROWTH, 1 << 40), 9 * FIRST_GROWTH);
    }

    #[test]
    fn malloc_buf_keeps_bytes_across_growth_and_hands_them_over() {
        let mut b = MallocBuf::default();
        assert_eq!(b.as_slice(), &[] as &[u8]);
        b.try_grow(3).unwrap();
        // SAFETY: 3 bytes of capacity.
        unsafe {
            std::ptr::copy_nonoverlapping(b"abc".as_ptr(), b.as_mut_ptr(), 3);
            b.set_len(3);
        }
        b.try_grow(1 << 20).unwrap();
        assert_eq!(b.as_slice(), b"abc");
        assert!(b.try_grow(usize::MAX / 2).is_err());
        assert_eq!(b.as_slice(), b"abc");
        let (p, n) = b.into_raw().unwrap();
        // SAFETY: the block is ours now, n bytes written; it came from malloc.
        unsafe {
            assert_eq!(std::slice::from_raw_parts(p, n), b"abc");
            libc::free(p.cast());
        }
        let (p, n) = MallocBuf::default().into_raw().unwrap();
        assert!(!p.is_null() && n == 0);
        // SAFETY: as above.
        unsafe { libc::free(p.cast()) };
    }
}
