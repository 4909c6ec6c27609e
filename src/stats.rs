//! A one-line summary of an object's live state ("held by pid 812", "3 msgs, 192 B of 64 KiB"),
//! for `mpx ls` and `mpx info`. Opens the object by its kind, which validates it first; the
//! summary reads atomics and changes nothing.

use crate::object::Kind;
use crate::{Flags, Result};

/// The state of the named object of `kind`, or None for kinds with nothing to show.
pub fn summary(name: &str, kind: Kind) -> Result<Option<String>> {
    let f = Flags::default();
    Ok(Some(match kind {
        Kind::Lock => {
            let l = crate::sync::Lock::open(name, f)?;
            match l.holder_pid() {
                Some(pid) => format!("held by pid {pid}"),
                None if l.is_locked() => "held".into(),
                None => "free".into(),
            }
        }
        Kind::RLock => {
            let r = crate::sync::RLock::open(name, f)?;
            (if r.is_locked() { "held" } else { "free" }).into()
        }
        Kind::Semaphore => {
            let s = crate::sync::Semaphore::open(name, f)?;
            let mut t = format!("value {}", s.get_value());
            if s.is_bounded() {
                t.push_str(&format!(" of {}", s.max_value()));
            }
            if s.is_undo() {
                t.push_str(", undo");
            }
            t
        }
        Kind::Event => (if crate::sync::Event::open(name, f)?.is_set() { "set" } else { "clear" }).into(),
        Kind::Barrier => {
            let b = crate::sync::Barrier::open(name, f)?;
            let mut t = format!("{} of {} waiting", b.n_waiting(), b.parties());
            if b.is_broken() {
                t.push_str(", broken");
            }
            t
        }
        Kind::Value => {
            let v = crate::value::Value::open(name, f)?;
            format!("'{}' x {}{}", v.typecode() as char, v.len(), if v.has_lock() { ", with lock" } else { "" })
        }
        Kind::Queue => {
            let q = crate::queue::Queue::open(name, f)?;
            let mut t = format!("{} msgs, {} of {} bytes", q.qsize(), q.bytes_used(), q.capacity());
            if q.is_shutdown() {
                t.push_str(", shut down");
            }
            t
        }
        Kind::Buffer | Kind::Condition | Kind::Pool => return Ok(None),
    }))
}
