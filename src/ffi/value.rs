//! C ABI for shared values and arrays (`mpx_value_*`). Thin shims over crate::value.

use std::ffi::{c_char, c_int, c_void, CString};

use super::sync::{acquired, c_name, split_flags, timeout_arg};
use super::{free_handle, guard, guard_void, handle, mpx_status, out_arg, str_arg, write_handle, MPX_OK};
use crate::value::{Value, ValueSpec};
use crate::{err, Result};

/// Value flag (create): embed a recursive lock in the value (Python's lock=True), used with
/// `mpx_value_acquire` / `mpx_value_release`.
pub const MPX_VALUE_LOCK: u32 = 0x1_0000;

/// A shared value or array handle (opaque): `count` elements of one typecode
/// (c u b B h H i I l L q Q f d, as Python's array/ctypes use them).
pub struct mpx_value {
    inner: Value,
    name: CString,
}

impl mpx_value {
    fn new(inner: Value) -> mpx_value {
        mpx_value { name: c_name(inner.name()), inner }
    }
}

unsafe fn bytes_in<'a>(p: *const c_void, len: usize, what: &str) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(err!(Invalid, "{what} is NULL"));
    }
    Ok(std::slice::from_raw_parts(p.cast::<u8>(), len))
}

unsafe fn bytes_out<'a>(p: *mut c_void, len: usize, what: &str) -> Result<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(err!(Invalid, "{what} is NULL"));
    }
    Ok(std::slice::from_raw_parts_mut(p.cast::<u8>(), len))
}

unsafe fn spec_and_init<'a>(
    typecode: c_char,
    count: usize,
    init: *const c_void,
    init_size: usize,
    own: u32,
) -> Result<(ValueSpec, Option<&'a [u8]>)> {
    let spec = ValueSpec::new(typecode as u8, count, own & MPX_VALUE_LOCK != 0);
    let init = if init.is_null() && init_size == 0 { None } else { Some(bytes_in(init, init_size, "init")?) };
    Ok((spec, init))
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
        out_arg(out, "out")?;
        let name = str_arg(name, "name")?;
        let (obj, own) = split_flags(flags, MPX_VALUE_LOCK, &format!("value '{name}'"))?;
        let (spec, init) = spec_and_init(typecode, count, init, init_size, own)?;
        Ok(write_handle(out, mpx_value::new(Value::create(name, spec, init, obj)?)))
    })
}

/// Creates an anonymous value or array (`flags`: 0 or MPX_VALUE_LOCK); share it by fd.
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
        out_arg(out, "out")?;
        let (obj, own) = split_flags(flags, MPX_VALUE_LOCK, "anonymous value")?;
        if obj.0 != 0 {
            return Err(err!(Invalid, "anonymous value: only MPX_VALUE_LOCK applies"));
        }
        let (spec, init) = spec_and_init(typecode, count, init, init_size, own)?;
        Ok(write_handle(out, mpx_value::new(Value::create_anonymous(spec, init)?)))
    })
}

/// Opens a named value. `flags`: 0, MPX_F_READ_ONLY (gets work; sets and the lock are
/// MPX_E_PERMISSION), MPX_F_UNLINK_ON_LAST_CLOSE.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_open(name: *const c_char, flags: u32, out: *mut *mut mpx_value) -> mpx_status {
    guard("mpx_value_open", || {
        out_arg(out, "out")?;
        let v = Value::open(str_arg(name, "name")?, crate::Flags(flags))?;
        Ok(write_handle(out, mpx_value::new(v)))
    })
}

/// Opens the value behind an fd (duplicated).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_value) -> mpx_status {
    guard("mpx_value_open_fd", || {
        out_arg(out, "out")?;
        Ok(write_handle(out, mpx_value::new(Value::from_fd(fd, crate::Flags(flags))?)))
    })
}

/// The typecode ('i', 'd', ...; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_typecode(value: *const mpx_value) -> c_char {
    value.as_ref().map_or(0, |v| v.inner.typecode() as c_char)
}

/// Bytes per element (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_itemsize(value: *const mpx_value) -> usize {
    value.as_ref().map_or(0, |v| v.inner.itemsize())
}

/// Number of elements (1 for a Value; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_count(value: *const mpx_value) -> usize {
    value.as_ref().map_or(0, |v| v.inner.len())
}

/// The first element (64-byte aligned) for zero-copy access, NULL for NULL. Valid until
/// `mpx_value_close`. Plain accesses through it are not synchronized: use the lock or atomics.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_ptr(value: *const mpx_value) -> *mut c_void {
    value.as_ref().map_or(std::ptr::null_mut(), |v| v.inner.as_ptr().cast())
}

/// Whether it was created with MPX_VALUE_LOCK (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_has_lock(value: *const mpx_value) -> bool {
    value.as_ref().is_some_and(|v| v.inner.has_lock())
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
        let v = handle(value, "value")?;
        out_arg(out, "out")?;
        v.inner.get_bytes(index, bytes_out(out, size, "out")?)?;
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
        let v = handle(value, "value")?;
        if in_.is_null() {
            return Err(err!(Invalid, "in is NULL"));
        }
        v.inner.set_bytes(index, bytes_in(in_, size, "in")?)?;
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
        let v = handle(value, "value")?;
        v.inner.read(start, bytes_out(out, size, "out")?)?;
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
        let v = handle(value, "value")?;
        v.inner.write(start, bytes_in(in_, size, "in")?)?;
        Ok(MPX_OK)
    })
}

/// Reads an integer element (any integer typecode) as int64 into `*out`. MPX_E_INVALID for a
/// float typecode or a 'Q'/'L' value above INT64_MAX.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_get_i64(value: *const mpx_value, index: usize, out: *mut i64) -> mpx_status {
    guard("mpx_value_get_i64", || {
        out_arg(out, "out")?;
        *out = handle(value, "value")?.inner.get_i64(index)?;
        Ok(MPX_OK)
    })
}

/// Sets an integer element; MPX_E_INVALID if `v` is outside the typecode's range.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_set_i64(value: *const mpx_value, index: usize, v: i64) -> mpx_status {
    guard("mpx_value_set_i64", || {
        handle(value, "value")?.inner.set_i64(index, v)?;
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
    guard("mpx_value_fetch_add_i64", || {
        let o = handle(value, "value")?.inner.fetch_add_i64(index, delta)?;
        if !old.is_null() {
            *old = o;
        }
        Ok(MPX_OK)
    })
}

/// Reads a float element ('f' or 'd') as double into `*out`.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_get_f64(value: *const mpx_value, index: usize, out: *mut f64) -> mpx_status {
    guard("mpx_value_get_f64", || {
        out_arg(out, "out")?;
        *out = handle(value, "value")?.inner.get_f64(index)?;
        Ok(MPX_OK)
    })
}

/// Sets a float element ('f' rounds to float).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_set_f64(value: *const mpx_value, index: usize, v: f64) -> mpx_status {
    guard("mpx_value_set_f64", || {
        handle(value, "value")?.inner.set_f64(index, v)?;
        Ok(MPX_OK)
    })
}

/// Acquires the value's embedded recursive lock (MPX_OK, MPX_E_OWNER_DIED, MPX_E_TIMEOUT;
/// MPX_E_UNSUPPORTED if it was created without MPX_VALUE_LOCK).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_acquire(value: *const mpx_value, timeout_ns: i64) -> mpx_status {
    // Fast path before the guard: atomics only, cannot panic.
    if let Some(l) = value.as_ref().and_then(|v| v.inner.usable_lock()) {
        if timeout_ns >= -1 && l.try_fast_recursive() {
            return MPX_OK;
        }
    }
    guard("mpx_value_acquire", || {
        let v = handle(value, "value")?;
        let a = v.inner.acquire(timeout_arg(timeout_ns)?)?;
        Ok(acquired(a, || v.inner.segment().describe()))
    })
}

/// Releases one level of the embedded lock (MPX_E_STATE if the calling thread does not own it).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_release(value: *const mpx_value) -> mpx_status {
    // Fast path before the guard: atomics only, cannot panic.
    if let Some(l) = value.as_ref().and_then(|v| v.inner.usable_lock()) {
        if l.try_release_fast_recursive() {
            return MPX_OK;
        }
    }
    guard("mpx_value_release", || {
        handle(value, "value")?.inner.release()?;
        Ok(MPX_OK)
    })
}

/// Writes the value's fd to `*fd` (owned by the handle).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_fd(value: *const mpx_value, fd: *mut c_int) -> mpx_status {
    guard("mpx_value_fd", || {
        out_arg(fd, "fd")?;
        *fd = handle(value, "value")?.inner.fd();
        Ok(MPX_OK)
    })
}

/// The value's name ("" if anonymous, NULL for NULL).
#[no_mangle]
pub unsafe extern "C" fn mpx_value_name(value: *const mpx_value) -> *const c_char {
    value.as_ref().map_or(std::ptr::null(), |v| v.name.as_ptr())
}

/// Frees the handle. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_close(value: *mut mpx_value) {
    guard_void("mpx_value_close", || free_handle(value))
}

/// Removes a value's name.
#[no_mangle]
pub unsafe extern "C" fn mpx_value_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_value_unlink", || {
        Value::unlink_name(str_arg(name, "name")?)?;
        Ok(MPX_OK)
    })
}
