//! Shared-memory buffers: a named or anonymous block of bytes every process maps at once.

use std::os::fd::RawFd;

use crate::object::{Flags, Kind, Segment, SegmentSpec};
use crate::{err, Result};

/// Alignment of a buffer's data within its segment: a page, so the pointer suits any SIMD width
/// and a binding can map the data alone with `mmap(fd, size, offset = data_offset)`.
const DATA_ALIGN: usize = 4096;

/// A shared-memory buffer. The bytes are shared with every process that has it open, so reading
/// and writing them is the caller's concurrency problem (use a lock, or atomics).
pub struct SharedMemory {
    seg: Segment,
}

impl SharedMemory {
    fn spec(size: usize) -> Result<SegmentSpec> {
        if size == 0 {
            return Err(err!(Invalid, "shm size must be greater than 0"));
        }
        Ok(SegmentSpec { kind: Kind::Buffer, data_size: size, data_align: DATA_ALIGN, params: [0; 4] })
    }

    /// Creates a named buffer of `size` zeroed bytes. Fails with Exists if the name is taken.
    pub fn create(name: &str, size: usize, flags: Flags) -> Result<SharedMemory> {
        let spec = Self::spec(size).map_err(|e| e.context(format!("shm '{name}'")))?;
        Ok(SharedMemory { seg: Segment::create(name, spec, flags, |_| Ok(()))? })
    }

    /// Opens an existing named buffer (Flags::READ_ONLY maps it read-only).
    pub fn open(name: &str, flags: Flags) -> Result<SharedMemory> {
        Ok(SharedMemory { seg: Segment::open(name, Kind::Buffer, flags)? })
    }

    /// Creates an anonymous buffer (memfd, sealed against resizing): share it by fd.
    pub fn create_anonymous(size: usize) -> Result<SharedMemory> {
        Ok(SharedMemory { seg: Segment::create_anonymous(Self::spec(size)?, |_| Ok(()))? })
    }

    /// Opens the buffer behind an inherited or received fd (duplicated; the caller keeps its fd).
    pub fn from_fd(fd: RawFd, flags: Flags) -> Result<SharedMemory> {
        Ok(SharedMemory { seg: Segment::from_fd(fd, Kind::Buffer, flags)? })
    }

    /// Removes a buffer's name (processes that have it open keep their mapping).
    pub fn unlink_name(name: &str) -> Result<()> {
        Segment::unlink(name)
    }

    /// Removes this buffer's name.
    pub fn unlink(&self) -> Result<()> {
        self.seg.unlink_self()
    }

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

    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    pub fn is_read_only(&self) -> bool {
        self.seg.is_read_only()
    }

    /// The segment's fd (owned by this handle): pass it to a child or over a Unix socket.
    pub fn fd(&self) -> RawFd {
        self.seg.fd()
    }

    /// Byte offset of the data within the segment file (a multiple of the page size).
    pub fn data_offset(&self) -> usize {
        self.seg.data_offset()
    }

    pub fn segment(&self) -> &Segment {
        &self.seg
    }
}
