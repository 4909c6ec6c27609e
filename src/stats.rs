//! A one-line summary of an object's live state ("held by pid 812", "3 msgs, 192 of 4096
//! bytes"), for `mpx ls` and `mpx info`: each kind's [`Object::summary`], reached from the kind
//! stored in the header. The object is opened with [`Object::inspect`] (read-only, no liveness
//! lock), which validates it first and changes nothing: looking never unlinks.

use crate::object::{Kind, Object};
use crate::pool::PoolTable;
use crate::queue::Queue;
use crate::shm::SharedMemory;
use crate::sync::{Barrier, Event, Lock, RLock, Semaphore};
use crate::value::Value;
use crate::Result;

/// The state of the named object of `kind`, or None for kinds with nothing to show.
pub fn summary(name: &str, kind: Kind) -> Result<Option<String>> {
    fn of<K: Object>(name: &str) -> Result<Option<String>> {
        Ok(K::inspect(name)?.summary())
    }
    match kind {
        Kind::Buffer => of::<SharedMemory>(name),
        Kind::Lock => of::<Lock>(name),
        Kind::RLock => of::<RLock>(name),
        Kind::Semaphore => of::<Semaphore>(name),
        Kind::Event => of::<Event>(name),
        Kind::Barrier => of::<Barrier>(name),
        Kind::Value => of::<Value>(name),
        Kind::Queue => of::<Queue>(name),
        Kind::Pool => of::<PoolTable>(name),
        // A condition's summary would need its external lock opened (a side effect); the
        // reserved kinds have no implementation yet.
        Kind::Condition | Kind::FramePool | Kind::Dict | Kind::List => Ok(None),
    }
}
