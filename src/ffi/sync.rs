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

use super::handle::{self, object_handle, ObjectHandle};
use super::{acquired, args, guard, mpx_status, MPX_OK};
use crate::object::Object;
use crate::sync::{Arrival, Barrier, CondLock, Condition, Event, Lock, RLock, Semaphore, SemaphoreSpec, Waiter};
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

// ---- Lock ------------------------------------------------------------------------------------

/// A lock handle (opaque): Python's multiprocessing.Lock across processes. Free with
/// `mpx_lock_close`.
pub struct mpx_lock {
    inner: Lock,
    name: CString,
}

object_handle!(mpx_lock, Lock, "lock");

/// Creates a named lock (free). `flags`: 0 or MPX_F_UNLINK_ON_LAST_CLOSE | MPX_F_MODE_GROUP |
/// MPX_F_MODE_ALL. MPX_E_EXISTS if the name is taken.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_create(name: *const c_char, flags: u32, out: *mut *mut mpx_lock) -> mpx_status {
    guard("mpx_lock_create", || handle::create(out, name, (), flags))
}

/// Creates an anonymous lock; share it with a child through `mpx_lock_fd` + `mpx_lock_open_fd`.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_create_anonymous(out: *mut *mut mpx_lock) -> mpx_status {
    guard("mpx_lock_create_anonymous", || handle::create_anonymous(out, ()))
}

/// Opens a named lock. `flags`: 0 or MPX_F_UNLINK_ON_LAST_CLOSE (MPX_F_READ_ONLY is refused).
/// MPX_E_NOT_FOUND if there is none, MPX_E_KIND if the object is not a lock.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_open(name: *const c_char, flags: u32, out: *mut *mut mpx_lock) -> mpx_status {
    guard("mpx_lock_open", || handle::open(out, name, flags))
}

/// Opens the lock behind an inherited or received fd (duplicated: the caller keeps `fd`).
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_lock) -> mpx_status {
    guard("mpx_lock_open_fd", || handle::open_fd(out, fd, flags))
}

/// Acquires the lock, waiting at most `timeout_ns` (MPX_FOREVER, 0 = try once). MPX_OK;
/// MPX_E_OWNER_DIED: acquired, but the previous holder died holding it (the protected data may
/// be inconsistent); MPX_E_TIMEOUT. Not recursive: a second acquire by the holder waits.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_acquire(lock: *const mpx_lock, timeout_ns: i64) -> mpx_status {
    // Fast path before the guard: a CAS and two stores, which cannot panic.
    if let Some(l) = args::opt_handle(lock) {
        if args::timeout_ok(timeout_ns) && l.inner.raw().try_fast(false) {
            return MPX_OK;
        }
    }
    guard("mpx_lock_acquire", || {
        let l = args::handle(lock)?;
        let a = l.inner.acquire(args::timeout(timeout_ns)?)?;
        Ok(acquired(a, || l.inner.describe()))
    })
}

/// Releases the lock. Any process or thread may release it (as in Python); releasing a lock
/// that is not held is MPX_E_STATE.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_release(lock: *const mpx_lock) -> mpx_status {
    // Fast path before the guard (no waiters): a CAS and three stores, which cannot panic.
    if let Some(l) = args::opt_handle(lock) {
        if l.inner.raw().try_release_fast() {
            return MPX_OK;
        }
    }
    guard("mpx_lock_release", || {
        args::handle(lock)?.inner.release()?;
        Ok(MPX_OK)
    })
}

/// Whether some process holds the lock now (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_is_locked(lock: *const mpx_lock) -> bool {
    args::opt_handle(lock).is_some_and(|l| l.inner.is_locked())
}

/// Whether the calling thread holds the lock (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_is_mine(lock: *const mpx_lock) -> bool {
    args::opt_handle(lock).is_some_and(|l| l.inner.is_mine())
}

/// Writes the lock's fd to `*fd` (owned by the handle; dup it to keep it).
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_fd(lock: *const mpx_lock, fd: *mut c_int) -> mpx_status {
    guard("mpx_lock_fd", || handle::fd(lock, fd))
}

/// The lock's name ("" if anonymous; NULL for a NULL handle). Valid until `mpx_lock_close`.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_name(lock: *const mpx_lock) -> *const c_char {
    handle::name(lock)
}

/// Frees the handle. Does not release the lock nor remove its name. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_close(lock: *mut mpx_lock) {
    handle::close("mpx_lock_close", lock)
}

/// Removes a lock's name (processes that have it open keep using it).
#[no_mangle]
pub unsafe extern "C" fn mpx_lock_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_lock_unlink", || handle::unlink::<mpx_lock>(name))
}

// ---- RLock -----------------------------------------------------------------------------------

/// A recursive lock handle (opaque): owned by one thread of one process, which may acquire it
/// again. Free with `mpx_rlock_close`.
pub struct mpx_rlock {
    inner: RLock,
    name: CString,
}

object_handle!(mpx_rlock, RLock, "rlock");

/// Creates a named recursive lock (free). `flags` as for `mpx_lock_create`.
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_create(name: *const c_char, flags: u32, out: *mut *mut mpx_rlock) -> mpx_status {
    guard("mpx_rlock_create", || handle::create(out, name, (), flags))
}

/// Creates an anonymous recursive lock (share it by fd).
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_create_anonymous(out: *mut *mut mpx_rlock) -> mpx_status {
    guard("mpx_rlock_create_anonymous", || handle::create_anonymous(out, ()))
}

/// Opens a named recursive lock.
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_open(name: *const c_char, flags: u32, out: *mut *mut mpx_rlock) -> mpx_status {
    guard("mpx_rlock_open", || handle::open(out, name, flags))
}

/// Opens the recursive lock behind an fd (duplicated).
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_rlock) -> mpx_status {
    guard("mpx_rlock_open_fd", || handle::open_fd(out, fd, flags))
}

/// Acquires (one more level if the calling thread owns it), waiting at most `timeout_ns`.
/// MPX_OK, MPX_E_OWNER_DIED (acquired from a dead owner), MPX_E_TIMEOUT.
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_acquire(rlock: *const mpx_rlock, timeout_ns: i64) -> mpx_status {
    // Fast path before the guard: atomics only, cannot panic.
    if let Some(l) = args::opt_handle(rlock) {
        if args::timeout_ok(timeout_ns) && l.inner.raw().try_fast_recursive() {
            return MPX_OK;
        }
    }
    guard("mpx_rlock_acquire", || {
        let l = args::handle(rlock)?;
        let a = l.inner.acquire(args::timeout(timeout_ns)?)?;
        Ok(acquired(a, || l.inner.describe()))
    })
}

/// Releases one level. MPX_E_STATE if the calling thread does not own it.
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_release(rlock: *const mpx_rlock) -> mpx_status {
    // Fast path before the guard: atomics only, cannot panic.
    if let Some(l) = args::opt_handle(rlock) {
        if l.inner.raw().try_release_fast_recursive() {
            return MPX_OK;
        }
    }
    guard("mpx_rlock_release", || {
        args::handle(rlock)?.inner.release()?;
        Ok(MPX_OK)
    })
}

/// Recursion depth the calling thread holds (0 if it is not the owner, or for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_depth(rlock: *const mpx_rlock) -> u32 {
    args::opt_handle(rlock).map_or(0, |l| l.inner.depth())
}

/// Whether any thread of any process holds it (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_is_locked(rlock: *const mpx_rlock) -> bool {
    args::opt_handle(rlock).is_some_and(|l| l.inner.is_locked())
}

/// Writes the recursive lock's fd to `*fd` (owned by the handle).
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_fd(rlock: *const mpx_rlock, fd: *mut c_int) -> mpx_status {
    guard("mpx_rlock_fd", || handle::fd(rlock, fd))
}

/// The recursive lock's name ("" if anonymous, NULL for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_name(rlock: *const mpx_rlock) -> *const c_char {
    handle::name(rlock)
}

/// Frees the handle (does not release the lock). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_close(rlock: *mut mpx_rlock) {
    handle::close("mpx_rlock_close", rlock)
}

/// Removes a recursive lock's name.
#[no_mangle]
pub unsafe extern "C" fn mpx_rlock_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_rlock_unlink", || handle::unlink::<mpx_rlock>(name))
}

// ---- Semaphore -------------------------------------------------------------------------------

/// A semaphore handle (opaque): Semaphore or BoundedSemaphore, optionally with undo.
pub struct mpx_semaphore {
    inner: Semaphore,
    name: CString,
}

object_handle!(mpx_semaphore, Semaphore, "sem");

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
        handle::create_with(out, name, |name| {
            let (f, own) = args::flags(flags, MPX_SEM_UNDO, &format!("semaphore '{name}'"))?;
            Ok((sem_spec(value, max_value, own), f))
        })
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
        let own = args::anonymous_flags(flags, MPX_SEM_UNDO, "MPX_SEM_UNDO", "anonymous semaphore")?;
        handle::create_anonymous(out, sem_spec(value, max_value, own))
    })
}

/// Opens a named semaphore.
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_open(
    name: *const c_char,
    flags: u32,
    out: *mut *mut mpx_semaphore,
) -> mpx_status {
    guard("mpx_semaphore_open", || handle::open(out, name, flags))
}

/// Opens the semaphore behind an fd (duplicated).
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_semaphore) -> mpx_status {
    guard("mpx_semaphore_open_fd", || handle::open_fd(out, fd, flags))
}

/// Takes one permit, waiting at most `timeout_ns`. MPX_OK or MPX_E_TIMEOUT; with undo,
/// MPX_E_FULL if MPX_SEM_UNDO_SLOTS other live processes already hold permits.
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_acquire(sem: *const mpx_semaphore, timeout_ns: i64) -> mpx_status {
    // Fast path before the guard: a CAS, cannot panic.
    if let Some(s) = args::opt_handle(sem) {
        if args::timeout_ok(timeout_ns) && s.inner.try_fast() {
            return MPX_OK;
        }
    }
    guard("mpx_semaphore_acquire", || {
        args::handle(sem)?.inner.acquire(args::timeout(timeout_ns)?)?;
        Ok(MPX_OK)
    })
}

/// Gives back one permit. MPX_E_STATE past the maximum (a BoundedSemaphore released more
/// often than acquired); nothing changes then. Never blocks, except with MPX_SEM_UNDO, where
/// the permit and the undo table change together under a guard held for nanoseconds: if a
/// process stopped inside it (SIGSTOP, a debugger) holds it for 1 s, the release returns
/// MPX_E_TIMEOUT and nothing changed (call it again).
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_release(sem: *const mpx_semaphore) -> mpx_status {
    // Fast path before the guard: a CAS (and FUTEX_WAKE if someone sleeps), cannot panic.
    if let Some(s) = args::opt_handle(sem) {
        if s.inner.try_release_fast() {
            return MPX_OK;
        }
    }
    guard("mpx_semaphore_release", || {
        args::handle(sem)?.inner.release()?;
        Ok(MPX_OK)
    })
}

/// Permits available now (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_get_value(sem: *const mpx_semaphore) -> u32 {
    args::opt_handle(sem).map_or(0, |s| s.inner.get_value())
}

/// The maximum value: the bound of a bounded semaphore, MPX_SEM_VALUE_MAX otherwise (0 for
/// NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_max_value(sem: *const mpx_semaphore) -> u32 {
    args::opt_handle(sem).map_or(0, |s| s.inner.max_value())
}

/// Whether the semaphore was created with MPX_SEM_UNDO (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_is_undo(sem: *const mpx_semaphore) -> bool {
    args::opt_handle(sem).is_some_and(|s| s.inner.is_undo())
}

/// Undo semaphores: gives back now the permits of processes that died holding them, and writes
/// how many came back to `*returned` (may be NULL). Waiters do this themselves; call it to make
/// `mpx_semaphore_get_value` whole. 0 without undo. MPX_E_TIMEOUT as for
/// `mpx_semaphore_release` when a stopped process holds the undo guard for 1 s.
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_reclaim(sem: *const mpx_semaphore, returned: *mut u32) -> mpx_status {
    guard("mpx_semaphore_reclaim", || {
        let n = args::handle(sem)?.inner.reclaim()?;
        args::write_opt(returned, n);
        Ok(MPX_OK)
    })
}

/// Writes the semaphore's fd to `*fd` (owned by the handle).
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_fd(sem: *const mpx_semaphore, fd: *mut c_int) -> mpx_status {
    guard("mpx_semaphore_fd", || handle::fd(sem, fd))
}

/// The semaphore's name ("" if anonymous, NULL for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_name(sem: *const mpx_semaphore) -> *const c_char {
    handle::name(sem)
}

/// Frees the handle (permits held stay held). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_close(sem: *mut mpx_semaphore) {
    handle::close("mpx_semaphore_close", sem)
}

/// Removes a semaphore's name.
#[no_mangle]
pub unsafe extern "C" fn mpx_semaphore_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_semaphore_unlink", || handle::unlink::<mpx_semaphore>(name))
}

// ---- Condition -------------------------------------------------------------------------------

/// A condition variable handle (opaque), with its own recursive lock or a given lock.
pub struct mpx_condition {
    inner: Condition,
    name: CString,
}

object_handle!(mpx_condition, Condition, "cond");

unsafe fn cond_lock<'a>(lock: *const mpx_lock, rlock: *const mpx_rlock) -> Result<Option<CondLock<'a>>> {
    match (args::opt_handle(lock), args::opt_handle(rlock)) {
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
        let lock = cond_lock(lock, rlock)?;
        handle::create(out, name, lock, flags)
    })
}

/// Creates an anonymous condition (lock choice as in `mpx_condition_create`).
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_create_anonymous(
    lock: *const mpx_lock,
    rlock: *const mpx_rlock,
    out: *mut *mut mpx_condition,
) -> mpx_status {
    guard("mpx_condition_create_anonymous", || handle::create_anonymous(out, cond_lock(lock, rlock)?))
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
        args::out(out, "out")?;
        let c = Condition::open(args::name(name)?, cond_lock(lock, rlock)?, Flags(flags))?;
        Ok(handle::put(out, mpx_condition::new(c)))
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
        args::out(out, "out")?;
        let c = Condition::from_fd(fd, cond_lock(lock, rlock)?, Flags(flags))?;
        Ok(handle::put(out, mpx_condition::new(c)))
    })
}

/// Acquires the condition's lock (MPX_OK, MPX_E_OWNER_DIED, MPX_E_TIMEOUT).
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_acquire(cond: *const mpx_condition, timeout_ns: i64) -> mpx_status {
    guard("mpx_condition_acquire", || {
        let c = args::handle(cond)?;
        let a = c.inner.acquire(args::timeout(timeout_ns)?)?;
        Ok(acquired(a, || c.inner.describe()))
    })
}

/// Releases the condition's lock.
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_release(cond: *const mpx_condition) -> mpx_status {
    guard("mpx_condition_release", || {
        args::handle(cond)?.inner.release()?;
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
        let c = args::handle(cond)?;
        let a = c.inner.wait(args::timeout(timeout_ns)?)?;
        Ok(acquired(a, || c.inner.describe()))
    })
}

const TICKET_SET: u64 = 1 << 32;

/// The waiter a ticket stands for (None: 0, no wait begun), or MPX_E_INVALID for a value no
/// call wrote.
fn ticket_waiter(t: u64) -> Result<Option<Waiter>> {
    match t {
        0 => Ok(None),
        t if t >> 32 == 1 => Ok(Some(Waiter { since: t as u32 })),
        t => Err(err!(Invalid, "ticket {t:#x} was not written by mpx_condition_wait_part")),
    }
}

/// Waits for a notify like `mpx_condition_wait`, in parts the caller strings together (to run
/// signal handlers or check for cancellation between them) without losing its place: a notify
/// that comes while the caller is between parts, or during one, is neither lost nor taken by a
/// waiter that came after it.
///
/// `*ticket` is 0 to begin a wait (the calling thread must hold the lock: MPX_E_STATE
/// otherwise), or what the previous part of the same wait left there. Each part waits at most
/// `timeout_ns` and returns with the lock held, as `mpx_condition_wait` does: MPX_OK (notified)
/// or MPX_E_OWNER_DIED, and the wait is over (`*ticket` is 0 again); or MPX_E_TIMEOUT: no notify
/// yet, and the thread is still a registered waiter (`*ticket` says so): call this again with
/// the same ticket, while still holding the lock, or end the wait with
/// `mpx_condition_wait_end`. MPX_E_INVALID for a NULL argument or a ticket no call wrote.
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_wait_part(
    cond: *const mpx_condition,
    timeout_ns: i64,
    ticket: *mut u64,
) -> mpx_status {
    guard("mpx_condition_wait_part", || {
        let c = args::handle(cond)?;
        args::out(ticket, "ticket")?;
        let timeout = args::timeout(timeout_ns)?;
        // SAFETY: checked non-NULL above; the caller's contract makes it readable and writable.
        let t = unsafe { ticket.read() };
        let w = match ticket_waiter(t)? {
            Some(w) => w,
            None => {
                let w = c.inner.wait_begin()?;
                // SAFETY: as above.
                unsafe { ticket.write(TICKET_SET | w.since as u64) };
                w
            }
        };
        let done = c.inner.wait_on(&w, timeout);
        let over = match &done {
            Ok(r) => r.is_some(),
            // Not holding the lock: nothing changed, the wait can go on once it is held.
            Err(e) => e.kind() != crate::ErrorKind::State,
        };
        if over {
            // SAFETY: as above.
            unsafe { ticket.write(0) };
        }
        match done? {
            Some(a) => Ok(acquired(a, || c.inner.describe())),
            None => Err(err!(Timeout, "{}: no notify yet (the wait goes on with this ticket)", c.inner.describe())),
        }
    })
}

/// Ends a wait that `mpx_condition_wait_part` left pending (MPX_E_TIMEOUT), with the lock still
/// held: MPX_OK if a notify meant for this waiter came after all (it takes it, as a wait that
/// times out with one pending does), MPX_E_TIMEOUT if it just stops waiting. `*ticket` is 0
/// afterwards. A ticket of 0 is MPX_E_TIMEOUT and changes nothing; MPX_E_STATE if the calling
/// thread does not hold the lock (the ticket is kept); MPX_E_INVALID for NULL or a ticket no
/// call wrote.
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_wait_end(cond: *const mpx_condition, ticket: *mut u64) -> mpx_status {
    guard("mpx_condition_wait_end", || {
        let c = args::handle(cond)?;
        args::out(ticket, "ticket")?;
        // SAFETY: checked non-NULL above; the caller's contract makes it readable and writable.
        let Some(w) = ticket_waiter(unsafe { ticket.read() })? else {
            return Err(err!(Timeout, "{}: no wait in progress", c.inner.describe()));
        };
        if !c.inner.is_mine() {
            return Err(err!(State, "{}: cannot end a wait: the lock is not held by this thread", c.inner.describe()));
        }
        let notified = c.inner.wait_end(w);
        // SAFETY: as above.
        unsafe { ticket.write(0) };
        if notified {
            Ok(MPX_OK)
        } else {
            Err(err!(Timeout, "{}: timed out waiting for a notify", c.inner.describe()))
        }
    })
}

/// Wakes up to `n` waiters. The calling thread must hold the lock (MPX_E_STATE otherwise).
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_notify(cond: *const mpx_condition, n: u32) -> mpx_status {
    guard("mpx_condition_notify", || {
        args::handle(cond)?.inner.notify(n)?;
        Ok(MPX_OK)
    })
}

/// Wakes every waiter. The calling thread must hold the lock.
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_notify_all(cond: *const mpx_condition) -> mpx_status {
    guard("mpx_condition_notify_all", || {
        args::handle(cond)?.inner.notify_all()?;
        Ok(MPX_OK)
    })
}

/// Writes the condition's fd to `*fd` (owned by the handle).
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_fd(cond: *const mpx_condition, fd: *mut c_int) -> mpx_status {
    guard("mpx_condition_fd", || handle::fd(cond, fd))
}

/// The condition's name ("" if anonymous, NULL for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_name(cond: *const mpx_condition) -> *const c_char {
    handle::name(cond)
}

/// Frees the handle. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_close(cond: *mut mpx_condition) {
    handle::close("mpx_condition_close", cond)
}

/// Removes a condition's name (not its lock's).
#[no_mangle]
pub unsafe extern "C" fn mpx_condition_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_condition_unlink", || handle::unlink::<mpx_condition>(name))
}

// ---- Event -----------------------------------------------------------------------------------

/// An event handle (opaque): a flag processes can wait for.
pub struct mpx_event {
    inner: Event,
    name: CString,
}

object_handle!(mpx_event, Event, "event");

/// Creates a named event (not set). `flags`: MPX_F_*.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_create(name: *const c_char, flags: u32, out: *mut *mut mpx_event) -> mpx_status {
    guard("mpx_event_create", || handle::create(out, name, (), flags))
}

/// Creates an anonymous event (share it by fd).
#[no_mangle]
pub unsafe extern "C" fn mpx_event_create_anonymous(out: *mut *mut mpx_event) -> mpx_status {
    guard("mpx_event_create_anonymous", || handle::create_anonymous(out, ()))
}

/// Opens a named event.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_open(name: *const c_char, flags: u32, out: *mut *mut mpx_event) -> mpx_status {
    guard("mpx_event_open", || handle::open(out, name, flags))
}

/// Opens the event behind an fd (duplicated).
#[no_mangle]
pub unsafe extern "C" fn mpx_event_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_event) -> mpx_status {
    guard("mpx_event_open_fd", || handle::open_fd(out, fd, flags))
}

/// Sets the flag and wakes every waiter.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_set(event: *const mpx_event) -> mpx_status {
    guard("mpx_event_set", || {
        args::handle(event)?.inner.set();
        Ok(MPX_OK)
    })
}

/// Clears the flag.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_clear(event: *const mpx_event) -> mpx_status {
    guard("mpx_event_clear", || {
        args::handle(event)?.inner.clear();
        Ok(MPX_OK)
    })
}

/// Whether the flag is set (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_event_is_set(event: *const mpx_event) -> bool {
    args::opt_handle(event).is_some_and(|e| e.inner.is_set())
}

/// Waits until the flag is set (MPX_OK at once if it is), at most `timeout_ns`: MPX_OK or
/// MPX_E_TIMEOUT. A set followed at once by a clear still wakes the waiters present at the set.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_wait(event: *const mpx_event, timeout_ns: i64) -> mpx_status {
    guard("mpx_event_wait", || {
        args::handle(event)?.inner.wait(args::timeout(timeout_ns)?)?;
        Ok(MPX_OK)
    })
}

/// Writes the event's fd to `*fd` (owned by the handle).
#[no_mangle]
pub unsafe extern "C" fn mpx_event_fd(event: *const mpx_event, fd: *mut c_int) -> mpx_status {
    guard("mpx_event_fd", || handle::fd(event, fd))
}

/// The event's name ("" if anonymous, NULL for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_event_name(event: *const mpx_event) -> *const c_char {
    handle::name(event)
}

/// Frees the handle. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_close(event: *mut mpx_event) {
    handle::close("mpx_event_close", event)
}

/// Removes an event's name.
#[no_mangle]
pub unsafe extern "C" fn mpx_event_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_event_unlink", || handle::unlink::<mpx_event>(name))
}

// ---- Barrier ---------------------------------------------------------------------------------

/// A barrier handle (opaque) for a fixed number of parties.
pub struct mpx_barrier {
    inner: Barrier,
    name: CString,
}

object_handle!(mpx_barrier, Barrier, "barrier");

/// Creates a named barrier for `parties` (1..=MPX_BARRIER_MAX_PARTIES) waiters.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_create(
    name: *const c_char,
    parties: u32,
    flags: u32,
    out: *mut *mut mpx_barrier,
) -> mpx_status {
    guard("mpx_barrier_create", || handle::create(out, name, parties, flags))
}

/// Creates an anonymous barrier (share it by fd).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_create_anonymous(parties: u32, out: *mut *mut mpx_barrier) -> mpx_status {
    guard("mpx_barrier_create_anonymous", || handle::create_anonymous(out, parties))
}

/// Opens a named barrier.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_open(name: *const c_char, flags: u32, out: *mut *mut mpx_barrier) -> mpx_status {
    guard("mpx_barrier_open", || handle::open(out, name, flags))
}

/// Opens the barrier behind an fd (duplicated).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_barrier) -> mpx_status {
    guard("mpx_barrier_open_fd", || handle::open_fd(out, fd, flags))
}

/// Waits until all parties have arrived, at most `timeout_ns`, and writes this waiter's
/// arrival index (0 .. parties-1; the last arrival gets parties-1) to `*index` (may be NULL).
/// MPX_E_BROKEN if the barrier is or becomes broken (abort, reset, another's timeout);
/// MPX_E_TIMEOUT if this waiter's time ran out (the barrier is then broken for everyone).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_wait(barrier: *const mpx_barrier, timeout_ns: i64, index: *mut u32) -> mpx_status {
    guard("mpx_barrier_wait", || {
        let i = args::handle(barrier)?.inner.wait(args::timeout(timeout_ns)?)?;
        args::write_opt(index, i);
        Ok(MPX_OK)
    })
}

/// The arrival a barrier ticket stands for (None: 0, no wait begun), or MPX_E_INVALID for a
/// value no call wrote. Layout: 1 << 32 | generation << 16 | index (index < parties <= 0x7FFF).
fn ticket_arrival(b: &Barrier, t: u64) -> Result<Option<Arrival>> {
    let (gen, index) = ((t >> 16) as u32 & 0xFF, t as u32 & 0xFFFF);
    match t {
        0 => Ok(None),
        t if t >> 32 == 1 && (t >> 24) & 0xFF == 0 && index < b.parties() => Ok(Some(Arrival { gen, index })),
        t => Err(err!(Invalid, "ticket {t:#x} was not written by mpx_barrier_wait_part for {}", b.describe())),
    }
}

fn arrival_ticket(a: &Arrival) -> u64 {
    TICKET_SET | ((a.gen as u64 & 0xFF) << 16) | a.index as u64
}

/// Waits until all parties have arrived like `mpx_barrier_wait`, in parts the caller strings
/// together (to run signal handlers or check for cancellation between them) without arriving
/// twice: the arrival index is the one a single `mpx_barrier_wait` would have had.
///
/// `*ticket` is 0 to begin a wait (this arrives; MPX_E_BROKEN if the barrier is broken), or
/// what the previous part of the same wait left there. Each part waits at most `timeout_ns`:
/// MPX_OK, the barrier tripped, this waiter's arrival index is written to `*index` (may be
/// NULL) and `*ticket` is 0 again; MPX_E_BROKEN (abort, reset, another's timeout), `*ticket` is
/// 0; or MPX_E_TIMEOUT: not yet, the arrival still counts (`*ticket` says so, and the barrier
/// is not broken): call this again with the same ticket, or give up with
/// `mpx_barrier_wait_end`, which breaks the barrier as a timeout of `mpx_barrier_wait` does.
/// MPX_E_INVALID for a NULL barrier or ticket, or a ticket no call wrote for this barrier.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_wait_part(
    barrier: *const mpx_barrier,
    timeout_ns: i64,
    ticket: *mut u64,
    index: *mut u32,
) -> mpx_status {
    guard("mpx_barrier_wait_part", || {
        let b = &args::handle(barrier)?.inner;
        args::out(ticket, "ticket")?;
        let timeout = args::timeout(timeout_ns)?;
        // SAFETY: checked non-NULL above; the caller's contract makes it readable and writable.
        let a = match ticket_arrival(b, unsafe { ticket.read() })? {
            Some(a) => a,
            None => {
                let a = b.arrive()?;
                // SAFETY: as above.
                unsafe { ticket.write(arrival_ticket(&a)) };
                a
            }
        };
        let done = b.wait_on(&a, timeout);
        if !matches!(done, Ok(None)) {
            // SAFETY: as above.
            unsafe { ticket.write(0) };
        }
        match done? {
            Some(i) => {
                args::write_opt(index, i);
                Ok(MPX_OK)
            }
            None => Err(err!(Timeout, "{}: not all parties yet (the wait goes on with this ticket)", b.describe())),
        }
    })
}

/// Gives up a wait that `mpx_barrier_wait_part` left pending (MPX_E_TIMEOUT): the barrier
/// breaks for everyone, as when the time of `mpx_barrier_wait` runs out, and this returns
/// MPX_E_TIMEOUT. If the barrier tripped meanwhile the wait passed after all: MPX_OK and the
/// arrival index in `*index` (may be NULL); MPX_E_BROKEN if it was broken or reset meanwhile.
/// `*ticket` is 0 afterwards. A ticket of 0 is MPX_E_TIMEOUT and changes nothing; MPX_E_INVALID
/// for a NULL barrier or ticket, or a ticket no call wrote for this barrier.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_wait_end(
    barrier: *const mpx_barrier,
    ticket: *mut u64,
    index: *mut u32,
) -> mpx_status {
    guard("mpx_barrier_wait_end", || {
        let b = &args::handle(barrier)?.inner;
        args::out(ticket, "ticket")?;
        // SAFETY: checked non-NULL above; the caller's contract makes it readable and writable.
        let Some(a) = ticket_arrival(b, unsafe { ticket.read() })? else {
            return Err(err!(Timeout, "{}: no wait in progress", b.describe()));
        };
        let r = b.wait_end(a);
        // SAFETY: as above.
        unsafe { ticket.write(0) };
        args::write_opt(index, r?);
        Ok(MPX_OK)
    })
}

/// Breaks the barrier: waiters now and later get MPX_E_BROKEN until `mpx_barrier_reset`.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_abort(barrier: *const mpx_barrier) -> mpx_status {
    guard("mpx_barrier_abort", || {
        args::handle(barrier)?.inner.abort();
        Ok(MPX_OK)
    })
}

/// Returns the barrier to its empty, unbroken state; current waiters get MPX_E_BROKEN.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_reset(barrier: *const mpx_barrier) -> mpx_status {
    guard("mpx_barrier_reset", || {
        args::handle(barrier)?.inner.reset();
        Ok(MPX_OK)
    })
}

/// The number of parties (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_parties(barrier: *const mpx_barrier) -> u32 {
    args::opt_handle(barrier).map_or(0, |b| b.inner.parties())
}

/// Waiters in the current round (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_n_waiting(barrier: *const mpx_barrier) -> u32 {
    args::opt_handle(barrier).map_or(0, |b| b.inner.n_waiting())
}

/// Whether the barrier is broken (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_is_broken(barrier: *const mpx_barrier) -> bool {
    args::opt_handle(barrier).is_some_and(|b| b.inner.is_broken())
}

/// Writes the barrier's fd to `*fd` (owned by the handle).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_fd(barrier: *const mpx_barrier, fd: *mut c_int) -> mpx_status {
    guard("mpx_barrier_fd", || handle::fd(barrier, fd))
}

/// The barrier's name ("" if anonymous, NULL for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_name(barrier: *const mpx_barrier) -> *const c_char {
    handle::name(barrier)
}

/// Frees the handle. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_close(barrier: *mut mpx_barrier) {
    handle::close("mpx_barrier_close", barrier)
}

/// Removes a barrier's name.
#[no_mangle]
pub unsafe extern "C" fn mpx_barrier_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_barrier_unlink", || handle::unlink::<mpx_barrier>(name))
}

// The limits C reads from the header equal the core's (checked at compile time).
const _: () = {
    assert!(MPX_SEM_UNDO_SLOTS == crate::sync::UNDO_SLOTS);
    assert!(MPX_SEM_VALUE_MAX == crate::sync::MAX_VALUE);
    assert!(MPX_BARRIER_MAX_PARTIES == crate::sync::MAX_PARTIES);
    assert!(MPX_SEM_UNDO & crate::Flags::KNOWN == 0);
};
