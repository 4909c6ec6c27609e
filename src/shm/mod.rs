//! Shared-memory buffers: a named or anonymous block of bytes every process maps at once.

use crate::object::{Kind, Layout, Object, Segment};
use crate::{err, Result};

/// Alignment of a buffer's data within its segment: a page, so the pointer suits any SIMD width
/// and a binding can map the data alone with `mmap(fd, size, offset = data_offset)`.
const DATA_ALIGN: usize = 4096;

/// A shared-memory buffer. The bytes are shared with every process that has it open, so reading
/// and writing them is the caller's concurrency problem (use a lock, or atomics).
pub struct SharedMemory {
    seg: Segment,
}

impl Object for SharedMemory {
    const KIND: Kind = Kind::Buffer;
    const READ_ONLY_OK: bool = true;
    /// The size in bytes (> 0).
    type Spec<'a> = usize;

    fn layout(size: &usize) -> Result<Layout> {
        if *size == 0 {
            return Err(err!(Invalid, "shm size must be greater than 0"));
        }
        Ok(Layout { data_size: *size, data_align: DATA_ALIGN, params: [0; 4] })
    }

    /// What the header promises a buffer's users: data on its own page (so the pointer is
    /// page-aligned and the data can be mapped alone), and at least one byte.
    fn attach(seg: Segment) -> Result<SharedMemory> {
        let (off, size) = (seg.data_offset(), seg.data_size());
        if off % DATA_ALIGN != 0 {
            return Err(err!(Corrupt, "{}: data offset {off} is not page-aligned ({DATA_ALIGN})", seg.describe()));
        }
        if size == 0 {
            return Err(err!(Corrupt, "{}: data size 0 (a buffer holds at least one byte)", seg.describe()));
        }
        Ok(SharedMemory { seg })
    }

    fn segment(&self) -> &Segment {
        &self.seg
    }
}

impl SharedMemory {
    pub fn as_ptr(&self) -> *mut u8 {
        self.seg.data_ptr()
    }

    pub fn len(&self) -> usize {
        self.seg.data_size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, for reading.
    ///
    /// # Safety
    /// Another process may write them concurrently; the caller must synchronise (or accept
    /// torn reads of plain bytes).
    pub unsafe fn as_slice(&self) -> &[u8] {
        std::slice::from_raw_parts(self.as_ptr(), self.len())
    }

    /// The bytes, for writing.
    ///
    /// # Safety
    /// As [`as_slice`](Self::as_slice), and the buffer must not be open read-only; no other
    /// reference from this handle may be alive.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [u8] {
        std::slice::from_raw_parts_mut(self.as_ptr(), self.len())
    }

    pub fn is_read_only(&self) -> bool {
        self.seg.is_read_only()
    }

    /// Byte offset of the data within the segment file (a multiple of the page size).
    pub fn data_offset(&self) -> usize {
        self.seg.data_offset()
    }
}
