//! mpx: multiprocessing for every language on the machine.
//!
//! The Rust API is the core: capability modules ([`shm`], [`sync`], [`value`], [`queue`],
//! [`conn`], [`process`], [`pool`]) on top of the object model ([`object`]: every shareable kind implements
//! [`Object`], which gives it create, open, name, fd and unlink) and the one waiting policy
//! ([`wait`]), with the C ABI in `ffi` as a thin layer over it. See docs/ARCHITECTURE.md.

pub mod conn;
pub mod error;
mod ffi;
pub mod object;
pub mod pool;
pub mod process;
pub mod queue;
pub mod shm;
pub mod stats;
pub mod sync;
pub mod util;
pub mod value;
pub mod wait;

pub use error::{Error, ErrorKind, Result};
pub use object::{Flags, Kind, Object};
pub use pool::{Pool, PoolOptions, Registry, TaskError};
pub use queue::{Queue, QueueSpec};
pub use shm::SharedMemory;
pub use sync::{Acquired, Barrier, CondLock, Condition, Event, Lock, RLock, Semaphore, SemaphoreSpec};
pub use value::{Value, ValueSpec};
pub use wait::Timeout;

/// The version of the C ABI (`MPX_ABI_VERSION` in include/mpx.h).
pub const ABI_VERSION: u32 = 1;

/// The library's version ("0.1.0").
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
