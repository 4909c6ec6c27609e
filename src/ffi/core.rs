//! Library-wide C entry points: version, status names, the last error.

use std::ffi::c_char;

use super::{last_errno, last_error_ptr, mpx_status, MPX_ABI_VERSION};
use crate::ErrorKind;

/// The library's version as a static string, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn mpx_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The C ABI version the library implements. A program compiled against this header should
/// check `mpx_abi_version() == MPX_ABI_VERSION` once at start.
#[no_mangle]
pub extern "C" fn mpx_abi_version() -> u32 {
    MPX_ABI_VERSION
}

/// The message describing the most recent failed call on the calling thread, with context
/// (e.g. "shm 'frames': no such object"); "" if none failed yet. Calls that succeed leave it
/// unchanged. The pointer stays valid until the next mpx call on this thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn mpx_last_error() -> *const c_char {
    last_error_ptr()
}

/// The errno behind the most recent failed call on the calling thread, when an OS call failed
/// (useful with MPX_E_OS), else 0.
#[no_mangle]
pub extern "C" fn mpx_last_errno() -> i32 {
    last_errno()
}

/// The constant name of a status code ("MPX_OK", "MPX_E_NOT_FOUND", ...), or "MPX_E_UNKNOWN"
/// for a value that is not one. Never NULL; the string is static.
#[no_mangle]
pub extern "C" fn mpx_status_name(status: mpx_status) -> *const c_char {
    let name: &'static str = if status == 0 {
        "MPX_OK\0"
    } else {
        match ErrorKind::from_code(status) {
            Some(k) => STATUS_NAMES[ErrorKind::ALL.iter().position(|x| *x == k).unwrap()],
            None => "MPX_E_UNKNOWN\0",
        }
    };
    name.as_ptr().cast()
}

/// NUL-terminated copies of ErrorKind::name, in ErrorKind::ALL order (checked by a test).
const STATUS_NAMES: [&str; 21] = [
    "MPX_E_INVALID\0",
    "MPX_E_NOT_FOUND\0",
    "MPX_E_EXISTS\0",
    "MPX_E_TIMEOUT\0",
    "MPX_E_FULL\0",
    "MPX_E_EMPTY\0",
    "MPX_E_CLOSED\0",
    "MPX_E_TOO_BIG\0",
    "MPX_E_KIND\0",
    "MPX_E_VERSION\0",
    "MPX_E_CORRUPT\0",
    "MPX_E_PERMISSION\0",
    "MPX_E_OWNER_DIED\0",
    "MPX_E_WORKER_DIED\0",
    "MPX_E_AUTH\0",
    "MPX_E_OS\0",
    "MPX_E_PANIC\0",
    "MPX_E_BUFFER_TOO_SMALL\0",
    "MPX_E_BROKEN\0",
    "MPX_E_STATE\0",
    "MPX_E_UNSUPPORTED\0",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_match_kinds() {
        for (k, n) in ErrorKind::ALL.iter().zip(STATUS_NAMES) {
            assert_eq!(format!("{}\0", k.name()), n);
            // SAFETY: mpx_status_name returns a static NUL-terminated string, never NULL.
            let c = unsafe { std::ffi::CStr::from_ptr(mpx_status_name(k.code())) };
            assert_eq!(c.to_str().unwrap(), k.name());
        }
        // SAFETY: as above.
        let c = unsafe { std::ffi::CStr::from_ptr(mpx_status_name(12345)) };
        assert_eq!(c.to_str().unwrap(), "MPX_E_UNKNOWN");
    }
}
