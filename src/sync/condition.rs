//! [`Condition`]: a condition variable shared between processes, with its own recursive lock (as
//! Python's Condition() has) or with a given [`Lock`] / [`RLock`] object.
//!
//! Parameters: [lock mode (0 own RLock, 2 external Lock, 3 external RLock), 0, 0, 0].
//! State (data area):
//! ```text
//! offset size field
//!      0    4 seq       futex word, bumped by every notify that hands out wakeups
//!      4    4 waiting   waiters registered (changed under the lock)
//!      8    4 tokens    wakeups handed out and not yet taken (changed under the lock)
//!     64   64 lock      the own lock (a RawLock; unused with an external lock)
//!    128    4 ext_kind  external lock: its Kind as u32 (0 = none)
//!    132    4 name_len  external lock's name length (0 = anonymous)
//!    136    8 ext_dev   external lock's segment file: st_dev ...
//!    144    8 ext_ino   ... and st_ino, to check a lock passed at open is the right one
//!    152  200 name      external lock's name
//! ```
//! wait: register (waiting += 1), read seq, release the lock fully, sleep while seq is unchanged,
//! re-acquire, and take a token if there is one (notified) or go round again. notify(n) hands
//! out min(n, waiting - tokens) tokens, bumps seq and wakes that many sleepers; a waiter between
//! its release and its sleep sees seq changed and does not sleep, so no wakeup is lost, and
//! tokens make sure exactly the notified number of waiters return as notified.
//!
//! A waiter takes a token only if seq moved since it registered: a notify hands its tokens to
//! the waiters registered before it, never to one that came later (which matters for a wait
//! carried out in parts, `wait_begin` / `wait_on` / `wait_end`, whose waiter stays registered
//! between the parts while the caller holds the lock and runs other code, e.g. signal handlers).
//! Tokens never exceed the waiters that may take them: a notify makes every registered waiter
//! eligible, and an eligible waiter leaves without a token only when there is none. (seq is 32
//! bits: a waiter that stays through exactly 2^32 notifies would miss its wakeup.)
//!
//! A waiter killed while waiting stays registered: a later notify may hand a token to nobody,
//! and a later waiter may then return once without a notify (a spurious wakeup, allowed by the
//! usual "wait in a loop on a predicate" rule).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use super::lock::RawLock;
use super::{Acquired, Lock, RLock};
use crate::object::{create_segment, name, open_segment, At, Flags, Kind, Layout, Mapped, Object, Segment};
use crate::wait::{futex, Deadline, Spin, Timeout};
use crate::{err, Result};

const MODE_OWN: u64 = 0;
const MODE_LOCK: u64 = 2;
const MODE_RLOCK: u64 = 3;

#[repr(C, align(64))]
struct Head {
    seq: AtomicU32,
    waiting: AtomicU32,
    tokens: AtomicU32,
    _reserved: [u32; 13],
}

#[repr(C)]
struct ExtRef {
    kind: AtomicU32,
    name_len: AtomicU32,
    dev: AtomicU64,
    ino: AtomicU64,
    name: [u8; name::MAX_NAME_LEN],
}

#[repr(C)]
struct State {
    head: Head,
    lock: RawLock,
    ext: ExtRef,
}

/// A lock object a condition uses instead of its own.
#[derive(Clone, Copy)]
pub enum CondLock<'a> {
    Lock(&'a Lock),
    RLock(&'a RLock),
}

impl CondLock<'_> {
    fn fd(&self) -> RawFd {
        match self {
            CondLock::Lock(l) => l.fd(),
            CondLock::RLock(l) => l.fd(),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            CondLock::Lock(_) => Kind::Lock,
            CondLock::RLock(_) => Kind::RLock,
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            CondLock::Lock(l) => l.name(),
            CondLock::RLock(l) => l.name(),
        }
    }
}

/// The condition's own mapping of its lock.
enum Held {
    Own,
    Lock(Lock),
    RLock(RLock),
}

fn file_id(fd: RawFd) -> Result<(u64, u64)> {
    // SAFETY: the fd belongs to a live Lock/RLock handle the caller holds for this call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let st = nix::sys::stat::fstat(fd).map_err(|e| crate::Error::os(e, "fstat"))?;
    Ok((st.st_dev, st.st_ino))
}

/// A registered waiter of a [`Condition`] (see [`Condition::wait_begin`]): the notify sequence
/// when it registered. Only a notify after that may wake it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub since: u32,
}

pub struct Condition {
    m: Mapped<State>,
    held: Held,
    /// Waits for a notify, and for the lock.
    spin: Spin,
    lock_spin: Spin,
}

impl Object for Condition {
    const KIND: Kind = Kind::Condition;
    /// The lock to use: None gives the condition its own recursive lock (Python's Condition()).
    type Spec<'a> = Option<CondLock<'a>>;

    fn layout(lock: &Option<CondLock>) -> Result<Layout> {
        let mode = match lock {
            None => MODE_OWN,
            Some(CondLock::Lock(_)) => MODE_LOCK,
            Some(CondLock::RLock(_)) => MODE_RLOCK,
        };
        Ok(Layout::of::<State>([mode, 0, 0, 0]))
    }

    fn init(seg: &Segment, lock: &Option<CondLock>) -> Result<()> {
        let Some(l) = lock else { return Ok(()) };
        let (dev, ino) = file_id(l.fd())?;
        // SAFETY: the area holds a State (Layout::of), aligned, not yet published.
        let st = unsafe { &mut *seg.data_ptr().cast::<State>() };
        let n = l.name().unwrap_or("").as_bytes();
        st.ext.kind.store(l.kind() as u32, Relaxed);
        st.ext.dev.store(dev, Relaxed);
        st.ext.ino.store(ino, Relaxed);
        st.ext.name[..n.len()].copy_from_slice(n);
        st.ext.name_len.store(n.len() as u32, Relaxed);
        Ok(())
    }

    /// Without a lock handle: a condition with an external lock opens it by name.
    fn attach(seg: Segment) -> Result<Condition> {
        Self::bind(seg, None)
    }

    /// Creates a named condition. `lock`: None gives it its own recursive lock (Python's
    /// Condition()); a Lock or RLock makes it use that one. A named lock is found again by
    /// `open`; an anonymous lock must be passed to `open`/`from_fd` by every user.
    fn create(name: &str, lock: Option<CondLock>, flags: Flags) -> Result<Condition> {
        Self::bind(create_segment::<Self>(Some(name), &lock, flags)?, lock)
    }

    fn create_anonymous(lock: Option<CondLock>) -> Result<Condition> {
        Self::bind(create_segment::<Self>(None, &lock, Flags::default())?, lock)
    }

    fn segment(&self) -> &Segment {
        self.m.segment()
    }
}

impl Condition {
    /// Opens a named condition. With an external lock, pass it as `lock` or (if the lock is
    /// named) leave None to have it opened by name. (Shadows [`Object::open`], which can only do
    /// the latter.)
    pub fn open(name: &str, lock: Option<CondLock>, flags: Flags) -> Result<Condition> {
        Self::bind(open_segment::<Self>(At::Name(name), flags)?, lock)
    }

    /// Opens the condition behind an fd; `lock` as for [`Condition::open`].
    pub fn from_fd(fd: RawFd, lock: Option<CondLock>, flags: Flags) -> Result<Condition> {
        Self::bind(open_segment::<Self>(At::Fd(fd), flags)?, lock)
    }

    /// Attaches the condition's lock: its own, the handle given, or the named one it records.
    fn bind(seg: Segment, lock: Option<CondLock>) -> Result<Condition> {
        let what = seg.describe();
        let m = Mapped::<State>::new(seg, 0)?;
        let state = m.state();
        let mode = m.segment().params()[0];
        let held = match mode {
            MODE_OWN => {
                if lock.is_some() {
                    return Err(err!(Invalid, "{what}: has its own lock; do not pass one"));
                }
                Held::Own
            }
            MODE_LOCK | MODE_RLOCK => {
                let kind = if mode == MODE_LOCK { Kind::Lock } else { Kind::RLock };
                let ext = &state.ext;
                let want = (ext.dev.load(Relaxed), ext.ino.load(Relaxed));
                if ext.kind.load(Relaxed) != kind as u32 {
                    return Err(err!(Corrupt, "{what}: lock reference does not match its mode"));
                }
                let by_name = match lock {
                    Some(l) => {
                        if l.kind() != kind || file_id(l.fd())? != want {
                            return Err(err!(
                                Invalid,
                                "{what}: the lock passed is not the {kind} this condition was created with"
                            ));
                        }
                        None
                    }
                    None => {
                        let n = ext.name_len.load(Relaxed) as usize;
                        if n == 0 {
                            return Err(err!(
                                Invalid,
                                "{what}: was created with an anonymous {kind}; pass that {kind} to open it"
                            ));
                        }
                        let bytes = ext.name.get(..n).ok_or_else(|| err!(Corrupt, "{what}: lock name length {n}"))?;
                        let lname = name::validate_bytes(bytes).map_err(|e| e.context(&what))?.to_string();
                        Some(lname)
                    }
                };
                // Our own mapping of the lock: by the given handle's fd, or by name.
                let h = match (kind, by_name, lock) {
                    (Kind::Lock, None, Some(l)) => Held::Lock(Lock::from_fd(l.fd(), Flags::default())?),
                    (Kind::RLock, None, Some(l)) => Held::RLock(RLock::from_fd(l.fd(), Flags::default())?),
                    (Kind::Lock, Some(n), _) => {
                        Held::Lock(Lock::open(&n, Flags::default()).map_err(|e| e.context(&what))?)
                    }
                    (_, Some(n), _) => Held::RLock(RLock::open(&n, Flags::default()).map_err(|e| e.context(&what))?),
                    _ => unreachable!(),
                };
                let fd = match &h {
                    Held::Lock(l) => l.fd(),
                    Held::RLock(l) => l.fd(),
                    Held::Own => unreachable!(),
                };
                if file_id(fd)? != want {
                    return Err(err!(NotFound, "{what}: its {kind} was removed and its name reused by another object"));
                }
                h
            }
            m => return Err(err!(Corrupt, "{what}: unknown lock mode {m}")),
        };
        Ok(Condition { m, held, spin: Spin::new(), lock_spin: Spin::new() })
    }

    fn state(&self) -> &State {
        self.m.state()
    }

    /// The lock and whether it is recursive.
    fn lock(&self) -> (&RawLock, bool) {
        match &self.held {
            Held::Own => (&self.state().lock, true),
            Held::Lock(l) => (l.raw(), false),
            Held::RLock(l) => (l.raw(), true),
        }
    }

    /// Whether the condition uses its own lock (not a Lock/RLock object).
    pub fn has_own_lock(&self) -> bool {
        matches!(self.held, Held::Own)
    }

    /// Acquires the condition's lock.
    pub fn acquire(&self, timeout: impl Into<Timeout>) -> Result<Acquired> {
        let (l, rec) = self.lock();
        l.acquire(rec, timeout.into(), &self.lock_spin).map_err(|e| e.context(self.describe()))
    }

    /// Releases the condition's lock.
    pub fn release(&self) -> Result<()> {
        let (l, rec) = self.lock();
        l.release(rec).map_err(|e| e.context(self.describe()))
    }

    /// Whether the calling thread holds the condition's lock.
    pub fn is_mine(&self) -> bool {
        self.lock().0.is_mine()
    }

    /// Waits for a notify, at most `timeout`. The calling thread must hold the lock; it is
    /// released while waiting (fully, for a recursive lock) and held again when this returns,
    /// in every case: Ok (notified), Err(Timeout), or Ok(OwnerDied) if re-acquiring it took it
    /// over from a dead holder (notified or not: check the predicate).
    pub fn wait(&self, timeout: impl Into<Timeout>) -> Result<Acquired> {
        let w = self.wait_begin()?;
        match self.wait_on(&w, timeout)? {
            Some(a) => Ok(a),
            None => {
                if self.wait_end(w) {
                    return Ok(Acquired::Clean);
                }
                Err(err!(Timeout, "{}: timed out waiting for a notify", self.describe()))
            }
        }
    }

    /// Registers the calling thread (which must hold the lock) as a waiter: the first step of
    /// a wait that [`Condition::wait_on`] carries out in as many parts as the caller likes.
    pub fn wait_begin(&self) -> Result<Waiter> {
        if !self.lock().0.is_mine() {
            return Err(err!(State, "{}: cannot wait: the lock is not held by this thread", self.describe()));
        }
        let h = &self.state().head;
        h.waiting.fetch_add(1, Relaxed);
        Ok(Waiter { since: h.seq.load(SeqCst) })
    }

    /// One part of the wait `w` began, at most `timeout`, with the lock held on entry and on
    /// return. Some(acquired): the wait is over (notified, or the lock was taken over from a
    /// dead holder: check the predicate). None: the part timed out and `w` is still registered
    /// (no notify is meant for it yet): call this again, or [`Condition::wait_end`].
    ///
    /// A waiter takes a wakeup only if a notify came after it registered (the sequence moved
    /// since `w.since`), so one that keeps waiting across parts never takes the wakeup of a
    /// waiter that was there before the notify and it was not.
    pub fn wait_on(&self, w: &Waiter, timeout: impl Into<Timeout>) -> Result<Option<Acquired>> {
        let what = || self.describe();
        let (lk, _) = self.lock();
        if !lk.is_mine() {
            return Err(err!(State, "{}: cannot wait: the lock is not held by this thread", what()));
        }
        let h = &self.state().head;
        let deadline = Deadline::new(timeout.into());
        let mut acquired = Acquired::Clean;
        let mut timed_out = false;
        loop {
            let s = h.seq.load(SeqCst);
            let depth = match lk.release_save() {
                Ok(d) => d,
                Err(e) => {
                    h.waiting.store(h.waiting.load(Relaxed).saturating_sub(1), Relaxed);
                    return Err(e.context(what()));
                }
            };
            self.spin.until(&deadline, 1, || h.seq.load(Acquire) != s);
            if h.seq.load(Acquire) == s {
                let left = deadline.remaining();
                if left == Some(std::time::Duration::ZERO) || (futex::wait(&h.seq, s, left) && deadline.expired()) {
                    timed_out = true;
                }
            }
            // Held again from here on, whatever happens.
            acquired = acquired.or(lk.acquire_restore(depth, &self.lock_spin).map_err(|e| e.context(what()))?);
            if self.take_token(w) {
                return Ok(Some(acquired));
            }
            if timed_out || deadline.expired() {
                if acquired.owner_died() {
                    h.waiting.store(h.waiting.load(Relaxed).saturating_sub(1), Relaxed);
                    return Ok(Some(acquired));
                }
                return Ok(None);
            }
        }
    }

    /// Ends the wait `w` (the lock held): true if a notify meant for it came meanwhile (it
    /// takes it), false if it just stops waiting.
    pub fn wait_end(&self, w: Waiter) -> bool {
        if self.take_token(&w) {
            return true;
        }
        let h = &self.state().head;
        h.waiting.store(h.waiting.load(Relaxed).saturating_sub(1), Relaxed);
        false
    }

    /// Takes a wakeup for `w` if there is one it may take (the lock held), ending its wait.
    fn take_token(&self, w: &Waiter) -> bool {
        let h = &self.state().head;
        let t = h.tokens.load(Relaxed);
        if t == 0 || h.seq.load(Relaxed) == w.since {
            return false;
        }
        h.tokens.store(t - 1, Relaxed);
        h.waiting.store(h.waiting.load(Relaxed).saturating_sub(1), Relaxed);
        true
    }

    /// Wakes up to `n` waiters. The calling thread must hold the lock.
    pub fn notify(&self, n: u32) -> Result<()> {
        if !self.lock().0.is_mine() {
            return Err(err!(State, "{}: cannot notify: the lock is not held by this thread", self.describe()));
        }
        let h = &self.state().head;
        let waiting = h.waiting.load(Relaxed);
        let tokens = h.tokens.load(Relaxed).min(waiting);
        let k = n.min(waiting - tokens);
        if k == 0 {
            return Ok(());
        }
        h.tokens.store(tokens + k, Relaxed);
        h.seq.fetch_add(1, SeqCst);
        futex::wake(&h.seq, k);
        Ok(())
    }

    /// Wakes every waiter. The calling thread must hold the lock.
    pub fn notify_all(&self) -> Result<()> {
        self.notify(u32::MAX)
    }

    /// Waiters registered now (including any that died while waiting).
    pub fn n_waiting(&self) -> u32 {
        let h = &self.state().head;
        h.waiting.load(Relaxed).saturating_sub(h.tokens.load(Relaxed))
    }
}
