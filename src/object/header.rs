//! The fixed header at the start of every segment (layout version 1).
//!
//! ```text
//! offset size field
//!      0    8 magic          "MPXSEG\0\x01"
//!      8    4 layout_version 1
//!     12    4 kind           Kind as u32
//!     16    4 flags          creation flags (informational)
//!     20    4 header_size    512
//!     24    8 total_size     bytes in the whole segment (= the file's size)
//!     32    8 data_offset    where the kind's area starts (>= header_size)
//!     40    8 data_size      bytes in the kind's area (data_offset + data_size <= total_size)
//!     48    4 creator_pid
//!     52    4 name_len       0..=200 (0 for anonymous segments)
//!     56    8 created_ns     creation time, ns since the Unix epoch
//!     64   32 params         four u64 a kind may use for immutable parameters
//!     96    4 checksum       FNV-1a over bytes 0..96 and the name
//!    100    4 ready          0 while initialising, READY once published (release ordering)
//!    104   24 reserved       zero
//!    128  200 name           the name's bytes
//!    328  184 reserved       zero
//! ```
//! Everything but `ready` is written once before `ready` is published and never changes, so the
//! checksum detects a header that was corrupted afterwards.

use std::sync::atomic::AtomicU32;

use crate::object::Kind;
use crate::{err, Result};

pub const MAGIC: [u8; 8] = *b"MPXSEG\0\x01";
pub const LAYOUT_VERSION: u32 = 1;
pub const HEADER_SIZE: usize = 512;
pub const READY: u32 = 0x5245_4459; // "READ" in ASCII-ish; any non-zero constant

#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub layout_version: u32,
    pub kind: u32,
    pub flags: u32,
    pub header_size: u32,
    pub total_size: u64,
    pub data_offset: u64,
    pub data_size: u64,
    pub creator_pid: i32,
    pub name_len: u32,
    pub created_ns: u64,
    pub params: [u64; 4],
    pub checksum: u32,
    pub ready: AtomicU32,
    pub reserved0: [u8; 24],
    pub name: [u8; 200],
    pub reserved1: [u8; 184],
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_SIZE);
const _: () = assert!(std::mem::offset_of!(Header, checksum) == 96);
const _: () = assert!(std::mem::offset_of!(Header, name) == 128);

/// FNV-1a 32-bit: tiny, dependency-free, good enough to catch accidental corruption.
fn fnv1a(chunks: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for chunk in chunks {
        for &b in *chunk {
            h ^= b as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

impl Header {
    /// The checksum the header should carry.
    pub fn compute_checksum(&self) -> u32 {
        // SAFETY: Header is repr(C), 512 bytes, and bytes 0..96 are plain integers.
        let fixed = unsafe { std::slice::from_raw_parts((self as *const Header).cast::<u8>(), 96) };
        let n = (self.name_len as usize).min(self.name.len());
        fnv1a(&[fixed, &self.name[..n]])
    }

    /// The name stored in the header ("" for anonymous segments), if it is valid UTF-8.
    pub fn name(&self) -> &str {
        let n = (self.name_len as usize).min(self.name.len());
        std::str::from_utf8(&self.name[..n]).unwrap_or("")
    }

    /// Validates everything a reader relies on, against the real size of the mapping.
    /// `what` names the object in messages ("shm 'frames'").
    pub fn validate(&self, mapped_len: u64, what: &str) -> Result<Kind> {
        if self.magic != MAGIC {
            return Err(err!(Corrupt, "{what}: not an mpx segment (bad magic)"));
        }
        if self.layout_version != LAYOUT_VERSION {
            return Err(err!(
                Version,
                "{what}: segment layout version {} is not supported (this library reads version {})",
                self.layout_version,
                LAYOUT_VERSION
            ));
        }
        if self.header_size as usize != HEADER_SIZE {
            return Err(err!(Corrupt, "{what}: header size {} is not {}", self.header_size, HEADER_SIZE));
        }
        if self.name_len as usize > self.name.len() {
            return Err(err!(Corrupt, "{what}: name length {} exceeds {}", self.name_len, self.name.len()));
        }
        let sum = self.compute_checksum();
        if sum != self.checksum {
            return Err(err!(
                Corrupt,
                "{what}: header checksum mismatch (stored {:#010x}, computed {:#010x})",
                self.checksum,
                sum
            ));
        }
        if self.total_size != mapped_len {
            return Err(err!(
                Corrupt,
                "{what}: segment is {} bytes but its header says {} (truncated or resized)",
                mapped_len,
                self.total_size
            ));
        }
        let end = self.data_offset.checked_add(self.data_size);
        if self.data_offset < HEADER_SIZE as u64 || end.map_or(true, |e| e > self.total_size) {
            return Err(err!(
                Corrupt,
                "{what}: data area {}+{} lies outside the {}-byte segment",
                self.data_offset,
                self.data_size,
                self.total_size
            ));
        }
        Kind::from_u32(self.kind).ok_or_else(|| err!(Corrupt, "{what}: unknown object kind {}", self.kind))
    }
}
