//! mpx: multiprocessing for every language on the machine.
//!
//! The Rust API is the core: capability modules ([`shm`], ...) on top of the object model
//! ([`object`]), with the C ABI in `ffi` as a thin layer over it. See docs/ARCHITECTURE.md.

pub mod conn;
pub mod error;
pub mod ffi;
pub mod object;
pub mod process;
pub mod queue;
pub mod shm;
pub mod stats;
pub mod sync;
pub mod util;
pub mod value;

pub use error::{Error, ErrorKind, Result};
pub use object::{Flags, Kind};
pub use queue::{Queue, QueueSpec};
pub use shm::SharedMemory;
pub use sync::{Acquired, Barrier, CondLock, Condition, Event, Lock, RLock, Semaphore, SemaphoreSpec};
pub use util::Timeout;
pub use value::{Value, ValueSpec};

/// The library's version ("0.1.0").
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
