//! What an object is: the kind stored in every segment's header.

/// What an object is. Stored in the header as a u32; opening a segment as the wrong kind is
/// [`crate::ErrorKind::Kind`]. The numbers are part of the segment layout: never reuse one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Kind {
    /// A shared-memory buffer ([`crate::SharedMemory`]).
    Buffer = 1,
    Lock = 2,
    RLock = 3,
    Semaphore = 4,
    Condition = 5,
    Event = 6,
    Barrier = 7,
    /// A typed value or array ([`crate::Value`]).
    Value = 8,
    Queue = 9,
    /// A process pool's table: counters and worker slots ([`crate::pool::PoolTable`]).
    Pool = 10,
    /// A frame pool: fixed-size slots loaned, published and released with reference counts.
    /// Reserved.
    FramePool = 11,
    /// A shared hash table of byte keys and values (the Manager's dict). Reserved.
    Dict = 12,
    /// A shared list of byte records (the Manager's list). Reserved.
    List = 13,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
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
        Kind::FramePool,
        Kind::Dict,
        Kind::List,
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
            Kind::FramePool => "framepool",
            Kind::Dict => "dict",
            Kind::List => "list",
        }
    }

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
