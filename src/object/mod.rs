//! The object model: every shareable object lives in one segment (named POSIX shared memory at
//! `/dev/shm/mpx.<name>`, or an anonymous memfd) that starts with a validated [`header::Header`].
//! A kind declares itself by implementing [`Object`] and gets its whole lifecycle from it.
//!
//! Liveness without a tracker process: every process that maps a segment holds a shared `flock`
//! on its file; the kernel drops it when the process dies. A segment nobody holds a lock on is
//! unused, which is what `mpx gc` and [`Flags::UNLINK_ON_LAST_CLOSE`] rely on.

pub mod header;
mod kind;
mod lifecycle;
pub mod name;
pub mod registry;
mod segment;

pub use header::{Header, HEADER_SIZE, LAYOUT_VERSION};
pub use kind::Kind;
pub use lifecycle::{create_segment, open_segment, At, Layout, Mapped, Object, STATE_ALIGN};
pub use segment::{Flags, Segment, SegmentSpec};
