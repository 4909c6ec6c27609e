//! The C ABI: thin `extern "C"` shims over the Rust API, one file per capability, with no
//! logic of their own: every argument check is in [`args`], the lifecycle every object kind
//! shares (create, open, fd, name, close, unlink) in [`handle`], and the rest is the core's.
//!
//! Conventions (docs/C-API.md): every fallible call returns an `mpx_status`; results go through
//! out-parameters written only on success; NULL or out-of-range arguments are MPX_E_INVALID;
//! every entry point runs inside [`guard`], which turns a panic into MPX_E_PANIC and records the
//! message that `mpx_last_error()` returns.

#![allow(non_camel_case_types)]

pub mod alloc;
pub(crate) mod args;
pub mod conn;
pub mod core;
pub(crate) mod handle;
pub mod pool;
pub mod process;
pub mod queue;
pub mod shm;
pub mod sync;
pub mod value;

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::sync::Acquired;
use crate::util::panic_message;
use crate::{err, Error, Result};

/// Status code returned by every fallible function: MPX_OK (0) or a negative MPX_E_* code.
pub type mpx_status = i32;

// The values below are literals so that cbindgen, which parses only src/ffi, can emit them;
// the test at the end of this file checks that they equal ErrorKind's codes and Flags' bits.

/// Success.
pub const MPX_OK: mpx_status = 0;
/// An argument is NULL, out of range or malformed.
pub const MPX_E_INVALID: mpx_status = -1;
/// The named object does not exist.
pub const MPX_E_NOT_FOUND: mpx_status = -2;
/// An object of that name already exists.
pub const MPX_E_EXISTS: mpx_status = -3;
/// The timeout expired first.
pub const MPX_E_TIMEOUT: mpx_status = -4;
/// A non-blocking put found no room.
pub const MPX_E_FULL: mpx_status = -5;
/// A non-blocking get found nothing.
pub const MPX_E_EMPTY: mpx_status = -6;
/// The object or the peer was closed.
pub const MPX_E_CLOSED: mpx_status = -7;
/// A message or request can never fit.
pub const MPX_E_TOO_BIG: mpx_status = -8;
/// The object is of another kind than the call expects.
pub const MPX_E_KIND: mpx_status = -9;
/// The segment was made by an incompatible layout version.
pub const MPX_E_VERSION: mpx_status = -10;
/// The segment's contents fail validation.
pub const MPX_E_CORRUPT: mpx_status = -11;
/// The operating system denied access.
pub const MPX_E_PERMISSION: mpx_status = -12;
/// Acquired, but the previous holder died holding it (the caller now holds it).
pub const MPX_E_OWNER_DIED: mpx_status = -13;
/// The worker running a task died.
pub const MPX_E_WORKER_DIED: mpx_status = -14;
/// Authentication failed.
pub const MPX_E_AUTH: mpx_status = -15;
/// Another operating-system error (the message has the errno text).
pub const MPX_E_OS: mpx_status = -16;
/// A panic inside mpx was caught at the boundary (a bug in mpx; please report it).
pub const MPX_E_PANIC: mpx_status = -17;
/// The caller's buffer is too small; the needed size is reported.
pub const MPX_E_BUFFER_TOO_SMALL: mpx_status = -18;
/// The object is in a broken state (e.g. an aborted barrier).
pub const MPX_E_BROKEN: mpx_status = -19;
/// The operation is not valid in the object's current state.
pub const MPX_E_STATE: mpx_status = -20;
/// The operation is not supported here.
pub const MPX_E_UNSUPPORTED: mpx_status = -21;

/// Timeout value that blocks without limit (timeouts are int64_t nanoseconds; 0 never blocks).
pub const MPX_FOREVER: i64 = -1;

/// Version of the C ABI described by this header; `mpx_abi_version()` returns the library's.
/// It changes only when a released signature or layout changes (see docs/C-API.md).
pub const MPX_ABI_VERSION: u32 = 1;

/// Flag: remove the name when the last process using the object closes it.
pub const MPX_F_UNLINK_ON_LAST_CLOSE: u32 = 1;
/// Flag (open only): map the object read-only.
pub const MPX_F_READ_ONLY: u32 = 2;
/// Flag (create only): permissions 0660 instead of 0600.
pub const MPX_F_MODE_GROUP: u32 = 4;
/// Flag (create only): permissions 0666 instead of 0600.
pub const MPX_F_MODE_ALL: u32 = 8;
/// Flag (buffers, create only): do not reserve the buffer's memory at creation. By default every
/// page is reserved (posix_fallocate), so a create that /dev/shm cannot back fails with MPX_E_OS
/// and errno ENOSPC; with this flag creating costs no time whatever the size, but if /dev/shm
/// fills up, the first touch of an unbacked page kills the toucher with SIGBUS.
pub const MPX_F_NORESERVE: u32 = 16;

// The C constants are literals (cbindgen cannot evaluate `ErrorKind::X as i32`); these checks
// keep them equal to the core's codes and bits at compile time.
const _: () = {
    use crate::ErrorKind as K;
    let pairs = [
        (MPX_E_INVALID, K::Invalid),
        (MPX_E_NOT_FOUND, K::NotFound),
        (MPX_E_EXISTS, K::Exists),
        (MPX_E_TIMEOUT, K::Timeout),
        (MPX_E_FULL, K::Full),
        (MPX_E_EMPTY, K::Empty),
        (MPX_E_CLOSED, K::Closed),
        (MPX_E_TOO_BIG, K::TooBig),
        (MPX_E_KIND, K::Kind),
        (MPX_E_VERSION, K::Version),
        (MPX_E_CORRUPT, K::Corrupt),
        (MPX_E_PERMISSION, K::Permission),
        (MPX_E_OWNER_DIED, K::OwnerDied),
        (MPX_E_WORKER_DIED, K::WorkerDied),
        (MPX_E_AUTH, K::Auth),
        (MPX_E_OS, K::Os),
        (MPX_E_PANIC, K::Panic),
        (MPX_E_BUFFER_TOO_SMALL, K::BufferTooSmall),
        (MPX_E_BROKEN, K::Broken),
        (MPX_E_STATE, K::State),
        (MPX_E_UNSUPPORTED, K::Unsupported),
    ];
    assert!(pairs.len() == K::ALL.len());
    let mut i = 0;
    while i < pairs.len() {
        assert!(pairs[i].0 == pairs[i].1 as i32);
        i += 1;
    }
    assert!(MPX_OK == 0 && MPX_FOREVER == -1 && MPX_ABI_VERSION == crate::ABI_VERSION);
    assert!(MPX_F_UNLINK_ON_LAST_CLOSE == crate::Flags::UNLINK_ON_LAST_CLOSE.0);
    assert!(MPX_F_READ_ONLY == crate::Flags::READ_ONLY.0);
    assert!(MPX_F_MODE_GROUP == crate::Flags::MODE_GROUP.0);
    assert!(MPX_F_MODE_ALL == crate::Flags::MODE_ALL.0);
    assert!(MPX_F_NORESERVE == crate::Flags::NORESERVE.0);
    assert!(crate::Flags::KNOWN == 0b1_1111);
};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    static LAST_ERRNO: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

pub(crate) fn set_last_error(msg: &str) {
    // Interior NULs cannot be represented in a C string; replace them rather than lose the text.
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // try_with: during thread or process teardown (an atexit handler calling mpx) the
    // thread-local may be gone; losing the message then beats panicking.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

pub(crate) fn last_errno() -> i32 {
    LAST_ERRNO.try_with(|n| n.get()).unwrap_or(0)
}

pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.try_with(|e| e.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// Records an error for `mpx_last_error()` and returns its status.
pub(crate) fn fail(e: &Error) -> mpx_status {
    set_last_error(e.message());
    let _ = LAST_ERRNO.try_with(|n| n.set(e.errno().unwrap_or(0)));
    e.kind().code()
}

/// The boundary every entry point goes through: runs `f`, converts its error or panic into a
/// status and records the message. `f` returns Ok(MPX_OK) or Ok(another non-error status such
/// as MPX_E_OWNER_DIED) on success.
pub(crate) fn guard(name: &str, f: impl FnOnce() -> Result<mpx_status>) -> mpx_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => fail(&e),
        Err(p) => fail(&err!(Panic, "{name}: internal panic: {}", panic_message(&*p))),
    }
}

/// As [`guard`] for functions that return no status (close, free): a panic is swallowed and
/// recorded, never propagated into C.
pub(crate) fn guard_void(name: &str, f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        set_last_error(&format!("{name}: internal panic: {}", panic_message(&*p)));
    }
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
