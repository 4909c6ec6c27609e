//! The C ABI: thin `extern "C"` shims over the Rust API, one file per capability.
//!
//! Conventions (docs/C-API.md): every fallible call returns an `mpx_status`; results go through
//! out-parameters written only on success; NULL or out-of-range arguments are MPX_E_INVALID;
//! every entry point runs inside [`guard`], which turns a panic into MPX_E_PANIC and records the
//! message that `mpx_last_error()` returns.

#![allow(non_camel_case_types)]

pub mod alloc;
pub mod conn;
pub mod core;
pub mod process;
pub mod queue;
pub mod shm;
pub mod sync;
pub mod value;

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

#[cfg(test)]
use crate::ErrorKind;
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

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
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

/// A C string argument as &str: NULL and non-UTF-8 are MPX_E_INVALID naming the parameter.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(err!(Invalid, "{what} is NULL"));
    }
    CStr::from_ptr(p).to_str().map_err(|_| err!(Invalid, "{what} is not valid UTF-8"))
}

/// A handle argument as a reference: NULL is MPX_E_INVALID.
pub(crate) unsafe fn handle<'a, T>(p: *const T, what: &str) -> Result<&'a T> {
    p.as_ref().ok_or_else(|| err!(Invalid, "{what} is NULL"))
}

/// Checks an out-parameter before doing any work, so a NULL never costs a side effect.
pub(crate) fn out_arg<T>(p: *mut T, what: &str) -> Result<()> {
    if p.is_null() {
        Err(err!(Invalid, "{what} (out-parameter) is NULL"))
    } else {
        Ok(())
    }
}

/// Moves a value into a new heap handle and writes it to the out-parameter.
pub(crate) unsafe fn write_handle<T>(out: *mut *mut T, value: T) -> mpx_status {
    *out = Box::into_raw(Box::new(value));
    MPX_OK
}

/// Frees a handle made by [`write_handle`]; NULL is a no-op.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        drop(Box::from_raw(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_core() {
        let pairs = [
            (MPX_E_INVALID, ErrorKind::Invalid),
            (MPX_E_NOT_FOUND, ErrorKind::NotFound),
            (MPX_E_EXISTS, ErrorKind::Exists),
            (MPX_E_TIMEOUT, ErrorKind::Timeout),
            (MPX_E_FULL, ErrorKind::Full),
            (MPX_E_EMPTY, ErrorKind::Empty),
            (MPX_E_CLOSED, ErrorKind::Closed),
            (MPX_E_TOO_BIG, ErrorKind::TooBig),
            (MPX_E_KIND, ErrorKind::Kind),
            (MPX_E_VERSION, ErrorKind::Version),
            (MPX_E_CORRUPT, ErrorKind::Corrupt),
            (MPX_E_PERMISSION, ErrorKind::Permission),
            (MPX_E_OWNER_DIED, ErrorKind::OwnerDied),
            (MPX_E_WORKER_DIED, ErrorKind::WorkerDied),
            (MPX_E_AUTH, ErrorKind::Auth),
            (MPX_E_OS, ErrorKind::Os),
            (MPX_E_PANIC, ErrorKind::Panic),
            (MPX_E_BUFFER_TOO_SMALL, ErrorKind::BufferTooSmall),
            (MPX_E_BROKEN, ErrorKind::Broken),
            (MPX_E_STATE, ErrorKind::State),
            (MPX_E_UNSUPPORTED, ErrorKind::Unsupported),
        ];
        assert_eq!(pairs.len(), ErrorKind::ALL.len());
        for (c, k) in pairs {
            assert_eq!(c, k.code(), "{}", k.name());
        }
        assert_eq!(MPX_F_UNLINK_ON_LAST_CLOSE, crate::Flags::UNLINK_ON_LAST_CLOSE.0);
        assert_eq!(MPX_F_READ_ONLY, crate::Flags::READ_ONLY.0);
        assert_eq!(MPX_F_MODE_GROUP, crate::Flags::MODE_GROUP.0);
        assert_eq!(MPX_F_MODE_ALL, crate::Flags::MODE_ALL.0);
        assert_eq!(crate::Flags::KNOWN, 0b1111);
    }
}
