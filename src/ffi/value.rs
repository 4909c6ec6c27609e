//! C ABI for shared values and arrays (`mpx_value_*`). Thin shims over crate::value.

use std::ffi::{c_char, c_int, c_void, CString};

use super::handle::{self, object_handle};
use super::{acquired, args, guard, mpx_status, MPX_OK};
use crate::object::Object;
use crate::value::{Value, ValueSpec};
use crate::Result;

/// Value flag (create): embed a recursive lock in the value (Python's lock=True), used with
/// `mpx_value_acquire` / `mpx_value_release`.
pub const MPX_VALUE_LOCK: u32 = 0x1_0000;

/// A shared value or array handle (opaque): `count` elements of one typecode
/// (c u b B h H i I l L q Q f d, as Python's array/ctypes use them).
pub struct mpx_value {
    inner: Value,
    name: CString,
}

object_handle!(mpx_value, Value, "value");

/// The spec from the C arguments (`init` NULL with `init_size` 0: zeros).
///
/// # Safety
/// `init` NULL or `init_size` readable bytes.
unsafe fn spec<'a>(
    typecode: c_char,
    count: usize,
    init: *const c_void,
    init_size: usize,
    own: u32,
) -> Result<ValueSpec<'a>> {
    let spec = ValueSpec::new(typecode as u8, count, own & MPX_VALUE_LOCK != 0);
    let init = if init.is_null() && init_size == 0 {
        None
    } else {
        // SAFETY: forwarded contract: `init` NULL or `init_size` readable bytes.
        Some(unsafe { args::bytes(init, init_size, "init") }?)
    };
    Ok(spec.with_init(init))
}

/// Creates a named value (`count` 1) or array of `count` elements of `typecode`, zeroed, or
/// copied from `init` (`init_size` bytes = count * itemsize, native byte order; NULL/0 for
/// zeros). `flags`: MPX_F_* | MPX_VALUE_LOCK.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_create(
    name: *const c_char,
    typecode: c_char,
    count: usize,
    init: *const c_void,
    init_size: usize,
    flags: u32,
    out: *mut *mut mpx_value,
) -> mpx_status {
    guard("mpx_value_create", || {
        handle::create_with(out, name, |name| {
            let (f, own) = args::flags(flags, MPX_VALUE_LOCK, &format!("value '{name}'"))?;
            Ok((spec(typecode, count, init, init_size, own)?, f))
        })
    })
}

/// Creates an anonymous value or array (`flags`: 0 or MPX_VALUE_LOCK; `init` as for
/// `mpx_value_create`, NULL/0 for zeros); share it by fd.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_create_anonymous(
    typecode: c_char,
    count: usize,
    init: *const c_void,
    init_size: usize,
    flags: u32,
    out: *mut *mut mpx_value,
) -> mpx_status {
    guard("mpx_value_create_anonymous", || {
        let own = args::anonymous_flags(flags, MPX_VALUE_LOCK, "MPX_VALUE_LOCK", "anonymous value")?;
        handle::create_anonymous(out, spec(typecode, count, init, init_size, own)?)
    })
}

/// Opens a named value. `flags`: 0, MPX_F_READ_ONLY (gets work; sets and the lock are
/// MPX_E_PERMISSION), MPX_F_UNLINK_ON_LAST_CLOSE.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_open(name: *const c_char, flags: u32, out: *mut *mut mpx_value) -> mpx_status {
    guard("mpx_value_open", || handle::open(out, name, flags))
}

/// Opens the value behind an fd (duplicated).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_value) -> mpx_status {
    guard("mpx_value_open_fd", || handle::open_fd(out, fd, flags))
}

/// The typecode ('i', 'd', ...; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_typecode(value: *const mpx_value) -> c_char {
    args::opt_handle(value).map_or(0, |v| v.inner.typecode() as c_char)
}

/// Bytes per element (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_itemsize(value: *const mpx_value) -> usize {
    args::opt_handle(value).map_or(0, |v| v.inner.itemsize())
}

/// Number of elements (1 for a Value; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_count(value: *const mpx_value) -> usize {
    args::opt_handle(value).map_or(0, |v| v.inner.len())
}

/// The first element (64-byte aligned) for zero-copy access, NULL for NULL. Valid until
/// `mpx_value_close`. Plain accesses through it are not synchronized: use the lock or atomics.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_ptr(value: *const mpx_value) -> *mut c_void {
    args::opt_handle(value).map_or(std::ptr::null_mut(), |v| v.inner.as_ptr().cast())
}

/// Whether it was created with MPX_VALUE_LOCK (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_has_lock(value: *const mpx_value) -> bool {
    args::opt_handle(value).is_some_and(|v| v.inner.has_lock())
}

/// Copies element `index` into `out`; `size` must equal the itemsize (the type check of the
/// typed-bytes API). The element is read atomically.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_get(
    value: *const mpx_value,
    index: usize,
    out: *mut c_void,
    size: usize,
) -> mpx_status {
    guard("mpx_value_get", || {
        let v = args::handle(value)?;
        args::out(out, "out")?;
        v.inner.get_bytes(index, args::bytes_mut(out, size, "out")?)?;
        Ok(MPX_OK)
    })
}

/// Sets element `index` from `size` bytes at `in_` (`size` = itemsize), atomically.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_set(
    value: *const mpx_value,
    index: usize,
    in_: *const c_void,
    size: usize,
) -> mpx_status {
    guard("mpx_value_set", || {
        let v = args::handle(value)?;
        v.inner.set_bytes(index, args::bytes(in_, size, "in")?)?;
        Ok(MPX_OK)
    })
}

/// Copies `size` bytes (whole elements) starting at element `start` into `out`. Not atomic as a
/// whole: hold the lock if writers may run.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_read(
    value: *const mpx_value,
    start: usize,
    out: *mut c_void,
    size: usize,
) -> mpx_status {
    guard("mpx_value_read", || {
        let v = args::handle(value)?;
        v.inner.read(start, args::bytes_mut(out, size, "out")?)?;
        Ok(MPX_OK)
    })
}

/// Copies `size` bytes (whole elements) from `in_` to the elements starting at `start`.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_write(
    value: *const mpx_value,
    start: usize,
    in_: *const c_void,
    size: usize,
) -> mpx_status {
    guard("mpx_value_write", || {
        let v = args::handle(value)?;
        v.inner.write(start, args::bytes(in_, size, "in")?)?;
        Ok(MPX_OK)
    })
}

/// Reads an integer element (any integer typecode) as int64 into `*out`. MPX_E_INVALID for a
/// float typecode or a 'Q'/'L' value above INT64_MAX.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_get_i64(value: *const mpx_value, index: usize, out: *mut i64) -> mpx_status {
    // Fast path before the guard (checks and one atomic load, which cannot panic); anything
    // unusual goes the checked way for its error.
    if let (Some(v), false) = (args::opt_handle(value), out.is_null()) {
        if let Some(x) = v.inner.int_elem(index, false).and_then(|p| v.inner.get_i64_at(p)) {
            *out = x;
            return MPX_OK;
        }
    }
    guard("mpx_value_get_i64", || {
        args::out(out, "out")?;
        *out = args::handle(value)?.inner.get_i64(index)?;
        Ok(MPX_OK)
    })
}

/// Sets an integer element; MPX_E_INVALID if `v` is outside the typecode's range.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_set_i64(value: *const mpx_value, index: usize, v: i64) -> mpx_status {
    // Fast path before the guard, as for get; an out-of-range value goes the checked way.
    if let Some(h) = args::opt_handle(value) {
        if h.inner.int_elem(index, true).is_some_and(|p| h.inner.set_i64_at(p, v)) {
            return MPX_OK;
        }
    }
    guard("mpx_value_set_i64", || {
        args::handle(value)?.inner.set_i64(index, v)?;
        Ok(MPX_OK)
    })
}

/// Atomically adds `delta` to an integer element (wrapping in its width) without the lock and
/// writes the previous value to `*old` (may be NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_fetch_add_i64(
    value: *const mpx_value,
    index: usize,
    delta: i64,
    old: *mut i64,
) -> mpx_status {
    // Fast path before the guard: range and class checks and the atomic, which cannot panic.
    if let Some(v) = args::opt_handle(value) {
        if let Some(p) = v.inner.int_elem(index, true) {
            args::write_opt(old, v.inner.fetch_add_at(p, delta));
            return MPX_OK;
        }
    }
    guard("mpx_value_fetch_add_i64", || {
        let o = args::handle(value)?.inner.fetch_add_i64(index, delta)?;
        args::write_opt(old, o);
        Ok(MPX_OK)
    })
}

/// Writes to `*out` the address of integer element `index`, for doing its atomics inline (the
/// `mpx_elem_*` helpers at the end of this header, C11 atomics, std::atomic_ref). `size` must be
/// the itemsize (1, 2, 4 or 8: the width those atomics use); `for_write` asks for a handle that
/// may write (MPX_E_PERMISSION if opened read-only). MPX_E_INVALID for a float typecode, another
/// size or an index out of range. The element is naturally aligned; the address is valid until
/// `mpx_value_close` of this handle and is the same element every process and language sees.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_int_ptr(
    value: *const mpx_value,
    index: usize,
    size: usize,
    for_write: bool,
    out: *mut *mut c_void,
) -> mpx_status {
    guard("mpx_value_int_ptr", || {
        args::out(out, "out")?;
        *out = args::handle(value)?.inner.int_ptr(index, size, for_write)?.cast();
        Ok(MPX_OK)
    })
}

/// Reads a float element ('f' or 'd') as double into `*out`.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_get_f64(value: *const mpx_value, index: usize, out: *mut f64) -> mpx_status {
    guard("mpx_value_get_f64", || {
        args::out(out, "out")?;
        *out = args::handle(value)?.inner.get_f64(index)?;
        Ok(MPX_OK)
    })
}

/// Sets a float element ('f' rounds to float).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_set_f64(value: *const mpx_value, index: usize, v: f64) -> mpx_status {
    guard("mpx_value_set_f64", || {
        args::handle(value)?.inner.set_f64(index, v)?;
        Ok(MPX_OK)
    })
}

/// Acquires the value's embedded recursive lock (MPX_OK, MPX_E_OWNER_DIED, MPX_E_TIMEOUT;
/// MPX_E_UNSUPPORTED if it was created without MPX_VALUE_LOCK).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_acquire(value: *const mpx_value, timeout_ns: i64) -> mpx_status {
    // Fast path before the guard: atomics only, cannot panic.
    if let Some(l) = args::opt_handle(value).and_then(|v| v.inner.usable_lock()) {
        if args::timeout_ok(timeout_ns) && l.try_fast_recursive() {
            return MPX_OK;
        }
    }
    guard("mpx_value_acquire", || {
        let v = args::handle(value)?;
        let a = v.inner.acquire(args::timeout(timeout_ns)?)?;
        Ok(acquired(a, || v.inner.describe()))
    })
}

/// Releases one level of the embedded lock (MPX_E_STATE if the calling thread does not own it).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_release(value: *const mpx_value) -> mpx_status {
    // Fast path before the guard: atomics only, cannot panic.
    if let Some(l) = args::opt_handle(value).and_then(|v| v.inner.usable_lock()) {
        if l.try_release_fast_recursive() {
            return MPX_OK;
        }
    }
    guard("mpx_value_release", || {
        args::handle(value)?.inner.release()?;
        Ok(MPX_OK)
    })
}

/// Writes the value's fd to `*fd` (owned by the handle).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_fd(value: *const mpx_value, fd: *mut c_int) -> mpx_status {
    guard("mpx_value_fd", || handle::fd(value, fd))
}

/// The value's name ("" if anonymous, NULL for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_name(value: *const mpx_value) -> *const c_char {
    handle::name(value)
}

/// Frees the handle. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_close(value: *mut mpx_value) {
    handle::close("mpx_value_close", value)
}

/// Removes a value's name.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_value_unlink", || handle::unlink::<mpx_value>(name))
}
