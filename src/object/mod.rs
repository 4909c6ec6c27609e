//! The object model: every shareable object lives in one segment (named POSIX shared memory at
//! `/dev/shm/mpx.<name>`, or an anonymous memfd) that starts with a validated [`header::Header`].
//!
//! Liveness without a tracker process: every process that maps a segment holds a shared `flock`
//! on its file; the kernel drops it when the process dies. A segment nobody holds a lock on is
//! unused, which is what `mpx gc` and [`Flags::UNLINK_ON_LAST_CLOSE`] rely on.

pub mod header;
pub mod name;
pub mod registry;
mod segment;

pub use header::{Header, HEADER_SIZE, LAYOUT_VERSION};
pub use segment::{Flags, Segment, SegmentSpec};

/// What an object is. Stored in the header as a u32; opening a segment as the wrong kind is
/// [`crate::ErrorKind::Kind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Kind {
    Buffer = 1,
    Lock = 2,
    RLock = 3,
    Semaphore = 4,
    Condition = 5,
    Event = 6,
    Barrier = 7,
    Value = 8,
    Queue = 9,
    Pool = 10,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Buffer,
        Kind::Lock,
        Kind::RLock,
        Kind::Semaphore,
        Kind::Condition,
        Kind::Event,
        Kind::Barrier,
        Kind::Value,
        Kind::Queue,
        Kind::Pool,
    ];

    pub fn from_u32(v: u32) -> Option<Kind> {
        Self::ALL.iter().copied().find(|k| *k as u32 == v)
    }

    /// Lower-case name used in messages and by `mpx ls`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Buffer => "shm",
            Kind::Lock => "lock",
            Kind::RLock => "rlock",
            Kind::Semaphore => "semaphore",
            Kind::Condition => "condition",
            Kind::Event => "event",
            Kind::Barrier => "barrier",
            Kind::Value => "value",
            Kind::Queue => "queue",
            Kind::Pool => "pool",
        }
    }
}

impl Kind {
    /// "a lock", "an event": for messages.
    pub fn with_article(self) -> String {
        let n = self.name();
        let an = matches!(n.as_bytes()[0], b'a' | b'e' | b'i' | b'o' | b'u');
        format!("{} {}", if an { "an" } else { "a" }, n)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
