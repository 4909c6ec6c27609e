//! C ABI for process-shared synchronization: `mpx_lock_*`, `mpx_rlock_*`, `mpx_semaphore_*`,
//! `mpx_condition_*`, `mpx_event_*`, `mpx_barrier_*`. Thin shims over crate::sync.
//!
//! Every kind has the same life-cycle functions: `_create(name, ..., flags, out)`,
//! `_create_anonymous(..., out)`, `_open(name, flags, out)`, `_open_fd(fd, flags, out)`,
//! `_fd`, `_name`, `_close` (frees the handle, never releases or unlinks) and `_unlink(name)`.
//! Waits take an int64_t timeout in ns: MPX_FOREVER (-1) waits without limit, 0 tries once,
//! other negative values are MPX_E_INVALID. A lock acquisition that took the lock over from a
//! holder that died returns MPX_E_OWNER_DIED: the lock IS held by the caller then.

use std::ffi::{c_char, c_int, CString};

use super::{fail, free_handle, guard, guard_void, handle, mpx_status, out_arg, str_arg, write_handle, MPX_OK};
use crate::sync::{Acquired, Barrier, CondLock, Condition, Event, Lock, RLock, Semaphore, SemaphoreSpec};
use crate::util::Timeout;
use crate::{err, Flags, Result};

/// Semaphore flag (create): give back the permits of processes that die holding them (an undo
/// table of MPX_SEM_UNDO_SLOTS processes; see docs/SYNC.md).
pub const MPX_SEM_UNDO: u32 = 0x1_0000;
/// Slots in an undo semaphore's table: processes that may hold its permits at once.
pub const MPX_SEM_UNDO_SLOTS: u32 = 128;
/// The largest value and maximum of a semaphore (Linux's SEM_VALUE_MAX).
pub const MPX_SEM_VALUE_MAX: u32 = 2147483647;
/// The most parties a barrier can have.
pub const MPX_BARRIER_MAX_PARTIES: u32 = 32767;

/// A timeout argument: -1 forever, 0 try, n > 0 nanoseconds; other negatives are refused.
pub(crate) fn timeout_arg(ns: i64) -> Result<Timeout> {
    match ns {
        -1 => Ok(Timeout::Forever),
        n if n < 0 => Err(err!(Invalid, "timeout {n} ns is negative (use MPX_FOREVER = -1 to wait without limit)")),
        n => Ok(Timeout::from_ns(n)),
    }
}

/// Splits a flags word: the low 16 bits are object flags (MPX_F_*), the high 16 bits the kind's
/// own (`own_known` lists those it accepts).
pub(crate) fn split_flags(flags: u32, own_known: u32, what: &str) -> Result<(Flags, u32)> {
    let own = flags & 0xFFFF_0000;
    if own & !own_known != 0 {
        return Err(err!(Invalid, "{what}: unknown flag bits {:#x}", own & !own_known));
    }
    Ok((Flags(flags & 0xFFFF), own))
}

/// The status for an acquisition: MPX_OK, or MPX_E_OWNER_DIED with a message naming the dead
/// holder (the caller holds the lock either way).
#[inline(always)]
pub(crate) fn acquired(a: Acquired, what: impl FnOnce() -> String) -> mpx_status {
    match a {
        Acquired::Clean => MPX_OK,
        Acquired::OwnerDied { pid } => owner_died(pid, what()),
    }
}

#[cold]
#[inline(never)]
fn owner_died(pid: u32, what: String) -> mpx_status {
    fail(&err!(OwnerDied, "{what}: acquired, but the previous holder (pid {pid}) died holding it"))
}

pub(crate) fn c_name(n: Option<&str>) -> CString {
    CString::new(n.unwrap_or("")).unwrap_or_default()
}

// ---- Lock ------------------------------------------------------------------------------------

/// A lock handle (opaque): Python's multiprocessing.Lock across processes. Free with
/// `mpx_lock_close`.
pub struct mpx_lock {
    inner: Lock,
    name: CString,
}

impl mpx_lock {
    fn new(inner: Lock) -> mpx_lock {
        mpx_lock { name: c_name(inner.name()), inner }
    }
}

/// Creates a named lock (free). `flags`: 0 or MPX_F_UNLINK_ON_LAST_CLOSE | MPX_F_MODE_GROUP |
/// MPX_F_MODE_ALL. MPX_E_EXISTS if the name is taken.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_create(name: *const c_char, flags: u32, out: *mut *mut mpx_lock) -> mpx_status {
    guard("mpx_lock_create", || {
        out_arg(out, "out")?;
        let l = Lock::create(str_arg(name, "name")?, Flags(flags))?;
        Ok(write_handle(out, mpx_lock::new(l)))
    })
}

/// Creates an anonymous lock; share it with a child through `mpx_lock_fd` + `mpx_lock_open_fd`.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_create_anonymous(out: *mut *mut mpx_lock) -> mpx_status {
    guard("mpx_lock_create_anonymous", || {
        out_arg(out, "out")?;
        Ok(write_handle(out, mpx_lock::new(Lock::create_anonymous()?)))
    })
}

/// Opens a named lock. `flags`: 0 or MPX_F_UNLINK_ON_LAST_CLOSE (MPX_F_READ_ONLY is refused).
/// MPX_E_NOT_FOUND if there is none, MPX_E_KIND if the object is not a lock.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_open(name: *const c_char, flags: u32, out: *mut *mut mpx_lock) -> mpx_status {
    guard("mpx_lock_open", || {
        out_arg(out, "out")?;
        let l = Lock::open(str_arg(name, "name")?, Flags(flags))?;
        Ok(write_handle(out, mpx_lock::new(l)))
    })
}

/// Opens the lock behind an inherited or received fd (duplicated: the caller keeps `fd`).
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_lock) -> mpx_status {
    guard("mpx_lock_open_fd", || {
        out_arg(out, "out")?;
        Ok(write_handle(out, mpx_lock::new(Lock::from_fd(fd, Flags(flags))?)))
    })
}

/// Acquires the lock, waiting at most `timeout_ns` (MPX_FOREVER, 0 = try once). MPX_OK;
/// MPX_E_OWNER_DIED: acquired, but the previous holder died holding it (the protected data may
/// be inconsistent); MPX_E_TIMEOUT. Not recursive: a second acquire by the holder waits.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_acquire(lock: *const mpx_lock, timeout_ns: i64) -> mpx_status {
    // Fast path before the guard: a CAS and two stores, which cannot panic.
    if let Some(l) = lock.as_ref() {
        if timeout_ns >= -1 && l.inner.raw().try_fast(false) {
            return MPX_OK;
        }
    }
    guard("mpx_lock_acquire", || {
        let l = handle(lock, "lock")?;
        let a = l.inner.acquire(timeout_arg(timeout_ns)?)?;
        Ok(acquired(a, || l.inner.segment().describe()))
    })
}

/// Releases the lock. Any process or thread may release it (as in Python); releasing a lock
/// that is not held is MPX_E_STATE.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_release(lock: *const mpx_lock) -> mpx_status {
    // Fast path before the guard (no waiters): a CAS and three stores, which cannot panic.
    if let Some(l) = lock.as_ref() {
        if l.inner.raw().try_release_fast() {
            return MPX_OK;
        }
    }
    guard("mpx_lock_release", || {
        handle(lock, "lock")?.inner.release()?;
        Ok(MPX_OK)
    })
}

/// Whether some process holds the lock now (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_is_locked(lock: *const mpx_lock) -> bool {
    lock.as_ref().is_some_and(|l| l.inner.is_locked())
}

/// Whether the calling thread holds the lock (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_is_mine(lock: *const mpx_lock) -> bool {
    lock.as_ref().is_some_and(|l| l.inner.is_mine())
}

/// Writes the lock's fd to `*fd` (owned by the handle; dup it to keep it).
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_fd(lock: *const mpx_lock, fd: *mut c_int) -> mpx_status {
    guard("mpx_lock_fd", || {
        out_arg(fd, "fd")?;
        *fd = handle(lock, "lock")?.inner.fd();
        Ok(MPX_OK)
    })
}

/// The lock's name ("" if anonymous; NULL for a NULL handle). Valid until `mpx_lock_close`.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_name(lock: *const mpx_lock) -> *const c_char {
    lock.as_ref().map_or(std::ptr::null(), |l| l.name.as_ptr())
}

/// Frees the handle. Does not release the lock nor remove its name. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_close(lock: *mut mpx_lock) {
    guard_void("mpx_lock_close", || free_handle(lock))
}

/// Removes a lock's name (processes that have it open keep using it).
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_lock_unlink", || {
        Lock::unlink_name(str_arg(name, "name")?)?;
        Ok(MPX_OK)
    })
}

// ---- RLock -----------------------------------------------------------------------------------

/// A recursive lock handle (opaque): owned by one thread of one process, which may acquire it
/// again. Free with `mpx_rlock_close`.
pub struct mpx_rlock {
    inner: RLock,
    name: CString,
}

impl mpx_rlock {
    fn new(inner: RLock) -> mpx_rlock {
        mpx_rlock { name: c_name(inner.name()), inner }
    }
}

/// Creates a named recursive lock (free). `flags` as for `mpx_lock_create`.
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_create(name: *const c_char, flags: u32, out: *mut *mut mpx_rlock) -> mpx_status {
    guard("mpx_rlock_create", || {
        out_arg(out, "out")?;
        let l = RLock::create(str_arg(name, "name")?, Flags(flags))?;
        Ok(write_handle(out, mpx_rlock::new(l)))
    })
}

/// Creates an anonymous recursive lock (share it by fd).
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_create_anonymous(out: *mut *mut mpx_rlock) -> mpx_status {
    guard("mpx_rlock_create_anonymous", || {
        out_arg(out, "out")?;
        Ok(write_handle(out, mpx_rlock::new(RLock::create_anonymous()?)))
    })
}

/// Opens a named recursive lock.
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_open(name: *const c_char, flags: u32, out: *mut *mut mpx_rlock) -> mpx_status {
    guard("mpx_rlock_open", || {
        out_arg(out, "out")?;
        let l = RLock::open(str_arg(name, "name")?, Flags(flags))?;
        Ok(write_handle(out, mpx_rlock::new(l)))
    })
}

/// Opens the recursive lock behind an fd (duplicated).
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_rlock) -> mpx_status {
    guard("mpx_rlock_open_fd", || {
        out_arg(out, "out")?;
        Ok(write_handle(out, mpx_rlock::new(RLock::from_fd(fd, Flags(flags))?)))
    })
}

/// Acquires (one more level if the calling thread owns it), waiting at most `timeout_ns`.
/// MPX_OK, MPX_E_OWNER_DIED (acquired from a dead owner), MPX_E_TIMEOUT.
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_acquire(rlock: *const mpx_rlock, timeout_ns: i64) -> mpx_status {
    // Fast path before the guard: atomics only, cannot panic.
    if let Some(l) = rlock.as_ref() {
        if timeout_ns >= -1 && l.inner.raw().try_fast_recursive() {
            return MPX_OK;
        }
    }
    guard("mpx_rlock_acquire", || {
        let l = handle(rlock, "rlock")?;
        let a = l.inner.acquire(timeout_arg(timeout_ns)?)?;
        Ok(acquired(a, || l.inner.segment().describe()))
    })
}

/// Releases one level. MPX_E_STATE if the calling thread does not own it.
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_release(rlock: *const mpx_rlock) -> mpx_status {
    // Fast path before the guard: atomics only, cannot panic.
    if let Some(l) = rlock.as_ref() {
        if l.inner.raw().try_release_fast_recursive() {
            return MPX_OK;
        }
    }
    guard("mpx_rlock_release", || {
        handle(rlock, "rlock")?.inner.release()?;
        Ok(MPX_OK)
    })
}

/// Recursion depth the calling thread holds (0 if it is not the owner, or for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_depth(rlock: *const mpx_rlock) -> u32 {
    rlock.as_ref().map_or(0, |l| l.inner.depth())
}

/// Whether any thread of any process holds it (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_is_locked(rlock: *const mpx_rlock) -> bool {
    rlock.as_ref().is_some_and(|l| l.inner.is_locked())
}

/// Writes the recursive lock's fd to `*fd` (owned by the handle).
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_fd(rlock: *const mpx_rlock, fd: *mut c_int) -> mpx_status {
    guard("mpx_rlock_fd", || {
        out_arg(fd, "fd")?;
        *fd = handle(rlock, "rlock")?.inner.fd();
        Ok(MPX_OK)
    })
}

/// The recursive lock's name ("" if anonymous, NULL for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_name(rlock: *const mpx_rlock) -> *const c_char {
    rlock.as_ref().map_or(std::ptr::null(), |l| l.name.as_ptr())
}

/// Frees the handle (does not release the lock). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_close(rlock: *mut mpx_rlock) {
    guard_void("mpx_rlock_close", || free_handle(rlock))
}

/// Removes a recursive lock's name.
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_rlock_unlink", || {
        RLock::unlink_name(str_arg(name, "name")?)?;
        Ok(MPX_OK)
    })
}

// ---- Semaphore -------------------------------------------------------------------------------

/// A semaphore handle (opaque): Semaphore or BoundedSemaphore, optionally with undo.
pub struct mpx_semaphore {
    inner: Semaphore,
    name: CString,
}

impl mpx_semaphore {
    fn new(inner: Semaphore) -> mpx_semaphore {
        mpx_semaphore { name: c_name(inner.name()), inner }
    }
}

fn sem_spec(value: u32, max_value: u32, own: u32) -> SemaphoreSpec {
    SemaphoreSpec { value, max: (max_value != 0).then_some(max_value), undo: own & MPX_SEM_UNDO != 0 }
}

/// Creates a named semaphore with `value` permits. `max_value`: 0 for an ordinary Semaphore
/// (up to MPX_SEM_VALUE_MAX), or the bound of a BoundedSemaphore (usually = `value`): releasing
/// past it is MPX_E_STATE. `flags`: MPX_F_* | MPX_SEM_UNDO.
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_create(
    name: *const c_char,
    value: u32,
    max_value: u32,
    flags: u32,
    out: *mut *mut mpx_semaphore,
) -> mpx_status {
    guard("mpx_semaphore_create", || {
        out_arg(out, "out")?;
        let name = str_arg(name, "name")?;
        let (obj, own) = split_flags(flags, MPX_SEM_UNDO, &format!("semaphore '{name}'"))?;
        let s = Semaphore::create(name, sem_spec(value, max_value, own), obj)?;
        Ok(write_handle(out, mpx_semaphore::new(s)))
    })
}

/// Creates an anonymous semaphore (`flags`: 0 or MPX_SEM_UNDO); share it by fd.
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_create_anonymous(
    value: u32,
    max_value: u32,
    flags: u32,
    out: *mut *mut mpx_semaphore,
) -> mpx_status {
    guard("mpx_semaphore_create_anonymous", || {
        out_arg(out, "out")?;
        let (obj, own) = split_flags(flags, MPX_SEM_UNDO, "anonymous semaphore")?;
        if obj.0 != 0 {
            return Err(err!(Invalid, "anonymous semaphore: only MPX_SEM_UNDO applies"));
        }
        let s = Semaphore::create_anonymous(sem_spec(value, max_value, own))?;
        Ok(write_handle(out, mpx_semaphore::new(s)))
    })
}

/// Opens a named semaphore.
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_open(
    name: *const c_char,
    flags: u32,
    out: *mut *mut mpx_semaphore,
) -> mpx_status {
    guard("mpx_semaphore_open", || {
        out_arg(out, "out")?;
        let s = Semaphore::open(str_arg(name, "name")?, Flags(flags))?;
        Ok(write_handle(out, mpx_semaphore::new(s)))
    })
}

/// Opens the semaphore behind an fd (duplicated).
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_semaphore) -> mpx_status {
    guard("mpx_semaphore_open_fd", || {
        out_arg(out, "out")?;
        Ok(write_handle(out, mpx_semaphore::new(Semaphore::from_fd(fd, Flags(flags))?)))
    })
}

/// Takes one permit, waiting at most `timeout_ns`. MPX_OK or MPX_E_TIMEOUT; with undo,
/// MPX_E_FULL if MPX_SEM_UNDO_SLOTS other live processes already hold permits.
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_acquire(sem: *const mpx_semaphore, timeout_ns: i64) -> mpx_status {
    // Fast path before the guard: a CAS, cannot panic.
    if let Some(s) = sem.as_ref() {
        if timeout_ns >= -1 && s.inner.try_fast() {
            return MPX_OK;
        }
    }
    guard("mpx_semaphore_acquire", || {
        handle(sem, "sem")?.inner.acquire(timeout_arg(timeout_ns)?)?;
        Ok(MPX_OK)
    })
}

/// Gives back one permit. MPX_E_STATE past the maximum (a BoundedSemaphore released more
/// often than acquired); nothing changes then.
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_release(sem: *const mpx_semaphore) -> mpx_status {
    // Fast path before the guard: a CAS (and FUTEX_WAKE if someone sleeps), cannot panic.
    if let Some(s) = sem.as_ref() {
        if s.inner.try_release_fast() {
            return MPX_OK;
        }
    }
    guard("mpx_semaphore_release", || {
        handle(sem, "sem")?.inner.release()?;
        Ok(MPX_OK)
    })
}

/// Permits available now (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_get_value(sem: *const mpx_semaphore) -> u32 {
    sem.as_ref().map_or(0, |s| s.inner.get_value())
}

/// The maximum value: the bound of a bounded semaphore, MPX_SEM_VALUE_MAX otherwise (0 for
/// NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_max_value(sem: *const mpx_semaphore) -> u32 {
    sem.as_ref().map_or(0, |s| s.inner.max_value())
}

/// Whether the semaphore was created with MPX_SEM_UNDO (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_is_undo(sem: *const mpx_semaphore) -> bool {
    sem.as_ref().is_some_and(|s| s.inner.is_undo())
}

/// Undo semaphores: gives back now the permits of processes that died holding them, and writes
/// how many came back to `*returned` (may be NULL). Waiters do this themselves; call it to make
/// `mpx_semaphore_get_value` whole. 0 without undo.
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_reclaim(sem: *const mpx_semaphore, returned: *mut u32) -> mpx_status {
    guard("mpx_semaphore_reclaim", || {
        let n = handle(sem, "sem")?.inner.reclaim()?;
        if !returned.is_null() {
            *returned = n;
        }
        Ok(MPX_OK)
    })
}

/// Writes the semaphore's fd to `*fd` (owned by the handle).
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_fd(sem: *const mpx_semaphore, fd: *mut c_int) -> mpx_status {
    guard("mpx_semaphore_fd", || {
        out_arg(fd, "fd")?;
        *fd = handle(sem, "sem")?.inner.fd();
        Ok(MPX_OK)
    })
}

/// The semaphore's name ("" if anonymous, NULL for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_name(sem: *const mpx_semaphore) -> *const c_char {
    sem.as_ref().map_or(std::ptr::null(), |s| s.name.as_ptr())
}

/// Frees the handle (permits held stay held). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_close(sem: *mut mpx_semaphore) {
    guard_void("mpx_semaphore_close", || free_handle(sem))
}

/// Removes a semaphore's name.
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_semaphore_unlink", || {
        Semaphore::unlink_name(str_arg(name, "name")?)?;
        Ok(MPX_OK)
    })
}

// ---- Condition -------------------------------------------------------------------------------

/// A condition variable handle (opaque), with its own recursive lock or a given lock.
pub struct mpx_condition {
    inner: Condition,
    name: CString,
}

impl mpx_condition {
    fn new(inner: Condition) -> mpx_condition {
        mpx_condition { name: c_name(inner.name()), inner }
    }
}

unsafe fn cond_lock<'a>(lock: *const mpx_lock, rlock: *const mpx_rlock) -> Result<Option<CondLock<'a>>> {
    match (lock.as_ref(), rlock.as_ref()) {
        (Some(_), Some(_)) => Err(err!(Invalid, "pass a lock or an rlock, not both")),
        (Some(l), None) => Ok(Some(CondLock::Lock(&l.inner))),
        (None, Some(r)) => Ok(Some(CondLock::RLock(&r.inner))),
        (None, None) => Ok(None),
    }
}

/// Creates a named condition. `lock` / `rlock` (at most one, both may be NULL): the lock it
/// uses; with both NULL it has its own recursive lock (Python's Condition()). `flags`: MPX_F_*.
/// A named lock is re-opened by name in `mpx_condition_open`; an anonymous one must be passed
/// there again.
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_create(
    name: *const c_char,
    lock: *const mpx_lock,
    rlock: *const mpx_rlock,
    flags: u32,
    out: *mut *mut mpx_condition,
) -> mpx_status {
    guard("mpx_condition_create", || {
        out_arg(out, "out")?;
        let c = Condition::create(str_arg(name, "name")?, cond_lock(lock, rlock)?, Flags(flags))?;
        Ok(write_handle(out, mpx_condition::new(c)))
    })
}

/// Creates an anonymous condition (lock choice as in `mpx_condition_create`).
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_create_anonymous(
    lock: *const mpx_lock,
    rlock: *const mpx_rlock,
    out: *mut *mut mpx_condition,
) -> mpx_status {
    guard("mpx_condition_create_anonymous", || {
        out_arg(out, "out")?;
        let c = Condition::create_anonymous(cond_lock(lock, rlock)?)?;
        Ok(write_handle(out, mpx_condition::new(c)))
    })
}

/// Opens a named condition. `lock` / `rlock`: NULL unless it was created with an anonymous
/// lock (then pass that lock; MPX_E_INVALID if it is another one).
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_open(
    name: *const c_char,
    lock: *const mpx_lock,
    rlock: *const mpx_rlock,
    flags: u32,
    out: *mut *mut mpx_condition,
) -> mpx_status {
    guard("mpx_condition_open", || {
        out_arg(out, "out")?;
        let c = Condition::open(str_arg(name, "name")?, cond_lock(lock, rlock)?, Flags(flags))?;
        Ok(write_handle(out, mpx_condition::new(c)))
    })
}

/// Opens the condition behind an fd (duplicated); `lock` / `rlock` as in `mpx_condition_open`.
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_open_fd(
    fd: c_int,
    lock: *const mpx_lock,
    rlock: *const mpx_rlock,
    flags: u32,
    out: *mut *mut mpx_condition,
) -> mpx_status {
    guard("mpx_condition_open_fd", || {
        out_arg(out, "out")?;
        let c = Condition::from_fd(fd, cond_lock(lock, rlock)?, Flags(flags))?;
        Ok(write_handle(out, mpx_condition::new(c)))
    })
}

/// Acquires the condition's lock (MPX_OK, MPX_E_OWNER_DIED, MPX_E_TIMEOUT).
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_acquire(cond: *const mpx_condition, timeout_ns: i64) -> mpx_status {
    guard("mpx_condition_acquire", || {
        let c = handle(cond, "cond")?;
        let a = c.inner.acquire(timeout_arg(timeout_ns)?)?;
        Ok(acquired(a, || c.inner.segment().describe()))
    })
}

/// Releases the condition's lock.
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_release(cond: *const mpx_condition) -> mpx_status {
    guard("mpx_condition_release", || {
        handle(cond, "cond")?.inner.release()?;
        Ok(MPX_OK)
    })
}

/// Waits for a notify, at most `timeout_ns`. The calling thread must hold the lock
/// (MPX_E_STATE otherwise); it is released while waiting and held again on return in every
/// case: MPX_OK (notified), MPX_E_TIMEOUT, or MPX_E_OWNER_DIED (re-acquired from a dead holder;
/// notified or not, re-check your predicate). Spurious returns are possible only after a
/// waiter was killed while waiting.
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_wait(cond: *const mpx_condition, timeout_ns: i64) -> mpx_status {
    guard("mpx_condition_wait", || {
        let c = handle(cond, "cond")?;
        let a = c.inner.wait(timeout_arg(timeout_ns)?)?;
        Ok(acquired(a, || c.inner.segment().describe()))
    })
}

/// Wakes up to `n` waiters. The calling thread must hold the lock (MPX_E_STATE otherwise).
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_notify(cond: *const mpx_condition, n: u32) -> mpx_status {
    guard("mpx_condition_notify", || {
        handle(cond, "cond")?.inner.notify(n)?;
        Ok(MPX_OK)
    })
}

/// Wakes every waiter. The calling thread must hold the lock.
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_notify_all(cond: *const mpx_condition) -> mpx_status {
    guard("mpx_condition_notify_all", || {
        handle(cond, "cond")?.inner.notify_all()?;
        Ok(MPX_OK)
    })
}

/// Writes the condition's fd to `*fd` (owned by the handle).
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_fd(cond: *const mpx_condition, fd: *mut c_int) -> mpx_status {
    guard("mpx_condition_fd", || {
        out_arg(fd, "fd")?;
        *fd = handle(cond, "cond")?.inner.fd();
        Ok(MPX_OK)
    })
}

/// The condition's name ("" if anonymous, NULL for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_name(cond: *const mpx_condition) -> *const c_char {
    cond.as_ref().map_or(std::ptr::null(), |c| c.name.as_ptr())
}

/// Frees the handle. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_close(cond: *mut mpx_condition) {
    guard_void("mpx_condition_close", || free_handle(cond))
}

/// Removes a condition's name (not its lock's).
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_condition_unlink", || {
        Condition::unlink_name(str_arg(name, "name")?)?;
        Ok(MPX_OK)
    })
}

// ---- Event -----------------------------------------------------------------------------------

/// An event handle (opaque): a flag processes can wait for.
pub struct mpx_event {
    inner: Event,
    name: CString,
}

impl mpx_event {
    fn new(inner: Event) -> mpx_event {
        mpx_event { name: c_name(inner.name()), inner }
    }
}

/// Creates a named event (not set). `flags`: MPX_F_*.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_create(name: *const c_char, flags: u32, out: *mut *mut mpx_event) -> mpx_status {
    guard("mpx_event_create", || {
        out_arg(out, "out")?;
        let e = Event::create(str_arg(name, "name")?, Flags(flags))?;
        Ok(write_handle(out, mpx_event::new(e)))
    })
}

/// Creates an anonymous event (share it by fd).
#[no_mangle]
pub unsafe extern "C" fn mpx_event_create_anonymous(out: *mut *mut mpx_event) -> mpx_status {
    guard("mpx_event_create_anonymous", || {
        out_arg(out, "out")?;
        Ok(write_handle(out, mpx_event::new(Event::create_anonymous()?)))
    })
}

/// Opens a named event.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_open(name: *const c_char, flags: u32, out: *mut *mut mpx_event) -> mpx_status {
    guard("mpx_event_open", || {
        out_arg(out, "out")?;
        let e = Event::open(str_arg(name, "name")?, Flags(flags))?;
        Ok(write_handle(out, mpx_event::new(e)))
    })
}

/// Opens the event behind an fd (duplicated).
#[no_mangle]
pub unsafe extern "C" fn mpx_event_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_event) -> mpx_status {
    guard("mpx_event_open_fd", || {
        out_arg(out, "out")?;
        Ok(write_handle(out, mpx_event::new(Event::from_fd(fd, Flags(flags))?)))
    })
}

/// Sets the flag and wakes every waiter.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_set(event: *const mpx_event) -> mpx_status {
    guard("mpx_event_set", || {
        handle(event, "event")?.inner.set();
        Ok(MPX_OK)
    })
}

/// Clears the flag.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_clear(event: *const mpx_event) -> mpx_status {
    guard("mpx_event_clear", || {
        handle(event, "event")?.inner.clear();
        Ok(MPX_OK)
    })
}

/// Whether the flag is set (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_event_is_set(event: *const mpx_event) -> bool {
    event.as_ref().is_some_and(|e| e.inner.is_set())
}

/// Waits until the flag is set (MPX_OK at once if it is), at most `timeout_ns`: MPX_OK or
/// MPX_E_TIMEOUT. A set followed at once by a clear still wakes the waiters present at the set.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_wait(event: *const mpx_event, timeout_ns: i64) -> mpx_status {
    guard("mpx_event_wait", || {
        handle(event, "event")?.inner.wait(timeout_arg(timeout_ns)?)?;
        Ok(MPX_OK)
    })
}

/// Writes the event's fd to `*fd` (owned by the handle).
#[no_mangle]
pub unsafe extern "C" fn mpx_event_fd(event: *const mpx_event, fd: *mut c_int) -> mpx_status {
    guard("mpx_event_fd", || {
        out_arg(fd, "fd")?;
        *fd = handle(event, "event")?.inner.fd();
        Ok(MPX_OK)
    })
}

/// The event's name ("" if anonymous, NULL for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_event_name(event: *const mpx_event) -> *const c_char {
    event.as_ref().map_or(std::ptr::null(), |e| e.name.as_ptr())
}

/// Frees the handle. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_close(event: *mut mpx_event) {
    guard_void("mpx_event_close", || free_handle(event))
}

/// Removes an event's name.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_event_unlink", || {
        Event::unlink_name(str_arg(name, "name")?)?;
        Ok(MPX_OK)
    })
}

// ---- Barrier ---------------------------------------------------------------------------------

/// A barrier handle (opaque) for a fixed number of parties.
pub struct mpx_barrier {
    inner: Barrier,
    name: CString,
}

impl mpx_barrier {
    fn new(inner: Barrier) -> mpx_barrier {
        mpx_barrier { name: c_name(inner.name()), inner }
    }
}

/// Creates a named barrier for `parties` (1..=MPX_BARRIER_MAX_PARTIES) waiters.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_create(
    name: *const c_char,
    parties: u32,
    flags: u32,
    out: *mut *mut mpx_barrier,
) -> mpx_status {
    guard("mpx_barrier_create", || {
        out_arg(out, "out")?;
        let b = Barrier::create(str_arg(name, "name")?, parties, Flags(flags))?;
        Ok(write_handle(out, mpx_barrier::new(b)))
    })
}

/// Creates an anonymous barrier (share it by fd).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_create_anonymous(parties: u32, out: *mut *mut mpx_barrier) -> mpx_status {
    guard("mpx_barrier_create_anonymous", || {
        out_arg(out, "out")?;
        Ok(write_handle(out, mpx_barrier::new(Barrier::create_anonymous(parties)?)))
    })
}

/// Opens a named barrier.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_open(name: *const c_char, flags: u32, out: *mut *mut mpx_barrier) -> mpx_status {
    guard("mpx_barrier_open", || {
        out_arg(out, "out")?;
        let b = Barrier::open(str_arg(name, "name")?, Flags(flags))?;
        Ok(write_handle(out, mpx_barrier::new(b)))
    })
}

/// Opens the barrier behind an fd (duplicated).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_barrier) -> mpx_status {
    guard("mpx_barrier_open_fd", || {
        out_arg(out, "out")?;
        Ok(write_handle(out, mpx_barrier::new(Barrier::from_fd(fd, Flags(flags))?)))
    })
}

/// Waits until all parties have arrived, at most `timeout_ns`, and writes this waiter's
/// arrival index (0 .. parties-1; the last arrival gets parties-1) to `*index` (may be NULL).
/// MPX_E_BROKEN if the barrier is or becomes broken (abort, reset, another's timeout);
/// MPX_E_TIMEOUT if this waiter's time ran out (the barrier is then broken for everyone).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_wait(barrier: *const mpx_barrier, timeout_ns: i64, index: *mut u32) -> mpx_status {
    guard("mpx_barrier_wait", || {
        let i = handle(barrier, "barrier")?.inner.wait(timeout_arg(timeout_ns)?)?;
        if !index.is_null() {
            *index = i;
        }
        Ok(MPX_OK)
    })
}

/// Breaks the barrier: waiters now and later get MPX_E_BROKEN until `mpx_barrier_reset`.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_abort(barrier: *const mpx_barrier) -> mpx_status {
    guard("mpx_barrier_abort", || {
        handle(barrier, "barrier")?.inner.abort();
        Ok(MPX_OK)
    })
}

/// Returns the barrier to its empty, unbroken state; current waiters get MPX_E_BROKEN.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_reset(barrier: *const mpx_barrier) -> mpx_status {
    guard("mpx_barrier_reset", || {
        handle(barrier, "barrier")?.inner.reset();
        Ok(MPX_OK)
    })
}

/// The number of parties (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_parties(barrier: *const mpx_barrier) -> u32 {
    barrier.as_ref().map_or(0, |b| b.inner.parties())
}

/// Waiters in the current round (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_n_waiting(barrier: *const mpx_barrier) -> u32 {
    barrier.as_ref().map_or(0, |b| b.inner.n_waiting())
}

/// Whether the barrier is broken (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_is_broken(barrier: *const mpx_barrier) -> bool {
    barrier.as_ref().is_some_and(|b| b.inner.is_broken())
}

/// Writes the barrier's fd to `*fd` (owned by the handle).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_fd(barrier: *const mpx_barrier, fd: *mut c_int) -> mpx_status {
    guard("mpx_barrier_fd", || {
        out_arg(fd, "fd")?;
        *fd = handle(barrier, "barrier")?.inner.fd();
        Ok(MPX_OK)
    })
}

/// The barrier's name ("" if anonymous, NULL for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_name(barrier: *const mpx_barrier) -> *const c_char {
    barrier.as_ref().map_or(std::ptr::null(), |b| b.name.as_ptr())
}

/// Frees the handle. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_close(barrier: *mut mpx_barrier) {
    guard_void("mpx_barrier_close", || free_handle(barrier))
}

/// Removes a barrier's name.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_barrier_unlink", || {
        Barrier::unlink_name(str_arg(name, "name")?)?;
        Ok(MPX_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_core() {
        assert_eq!(MPX_SEM_UNDO_SLOTS, crate::sync::UNDO_SLOTS);
        assert_eq!(MPX_SEM_VALUE_MAX, crate::sync::MAX_VALUE);
        assert_eq!(MPX_BARRIER_MAX_PARTIES, crate::sync::MAX_PARTIES);
        assert_eq!(MPX_SEM_UNDO & crate::Flags::KNOWN, 0);
    }

    #[test]
    fn timeouts() {
        assert_eq!(timeout_arg(-1).unwrap(), Timeout::Forever);
        assert_eq!(timeout_arg(0).unwrap(), Timeout::After(std::time::Duration::ZERO));
        assert_eq!(timeout_arg(-2).unwrap_err().kind(), crate::ErrorKind::Invalid);
        assert_eq!(timeout_arg(i64::MIN).unwrap_err().kind(), crate::ErrorKind::Invalid);
    }
}
