//! Every argument check of the C ABI, with one behaviour each (docs/C-API.md):
//!
//! - a string (names, paths) is non-NULL UTF-8; a name is then validated by the object model;
//! - a timeout is MPX_FOREVER (-1), 0 (never wait) or a positive number of nanoseconds; any
//!   other negative value is MPX_E_INVALID;
//! - flags are checked against the bits the call knows (the low 16 bits are the MPX_F_* object
//!   flags, the high 16 bits a kind's own);
//! - a byte range is (pointer, length): NULL only with length 0, length at most isize::MAX;
//! - an out-parameter is non-NULL, checked before any work so a NULL never costs a side effect;
//! - a handle is non-NULL and typed: [`handle`] only takes the handle types of
//!   [`super::handle::CHandle`].

use std::ffi::{c_char, c_void, CStr};

use super::handle::CHandle;
use crate::object::Flags;
use crate::wait::Timeout;
use crate::{err, Result};

/// A C string argument as &str: NULL and non-UTF-8 are MPX_E_INVALID naming the parameter.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the returned reference.
pub(crate) unsafe fn string<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(err!(Invalid, "{what} is NULL"));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| err!(Invalid, "{what} is not valid UTF-8"))
}

/// An object name argument (validated when the object layer uses it).
///
/// # Safety
/// As [`string`].
pub(crate) unsafe fn name<'a>(p: *const c_char) -> Result<&'a str> {
    // SAFETY: forwarded contract.
    unsafe { string(p, "name") }
}

/// A timeout argument: -1 forever, 0 try, n > 0 nanoseconds; other negatives are refused.
pub(crate) fn timeout(ns: i64) -> Result<Timeout> {
    match ns {
        -1 => Ok(Timeout::Forever),
        n if n < 0 => Err(err!(Invalid, "timeout {n} ns is negative (use MPX_FOREVER = -1 to wait without limit)")),
        n => Ok(Timeout::from_ns(n)),
    }
}

/// Whether a timeout argument is one the fast paths may act on before the guard (the guard
/// then reports a bad one).
#[inline(always)]
pub(crate) fn timeout_ok(ns: i64) -> bool {
    ns >= -1
}

/// Splits a flags word: the low 16 bits are object flags (MPX_F_*, checked by the object layer),
/// the high 16 bits the kind's own (`own_known` lists those it accepts).
pub(crate) fn flags(flags: u32, own_known: u32, what: &str) -> Result<(Flags, u32)> {
    let own = flags & 0xFFFF_0000;
    if own & !own_known != 0 {
        return Err(err!(Invalid, "{what}: unknown flag bits {:#x}", own & !own_known));
    }
    Ok((Flags(flags & 0xFFFF), own))
}

/// Flags of an anonymous object: only the kind's own bits (`own_known`, named by `own_names`
/// in the message) apply.
pub(crate) fn anonymous_flags(flags: u32, own_known: u32, own_names: &str, what: &str) -> Result<u32> {
    let (obj, own) = self::flags(flags, own_known, what)?;
    if obj.0 != 0 {
        return Err(err!(Invalid, "{what}: flags {:#x} apply to named objects only (only {own_names} applies)", obj.0));
    }
    Ok(own)
}

fn check_len(p: *const c_void, len: usize, what: &str) -> Result<bool> {
    if len > isize::MAX as usize {
        return Err(err!(Invalid, "{what}: length {len} is out of range"));
    }
    if p.is_null() {
        if len == 0 {
            return Ok(false);
        }
        return Err(err!(Invalid, "{what} is NULL (with length {len})"));
    }
    Ok(len > 0)
}

/// A byte range argument to read: NULL only with length 0.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that outlive the returned slice.
pub(crate) unsafe fn bytes<'a>(p: *const c_void, len: usize, what: &str) -> Result<&'a [u8]> {
    if !check_len(p, len, what)? {
        return Ok(&[]);
    }
    // SAFETY: non-NULL, len bytes by the caller's contract, len <= isize::MAX checked.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// A byte range argument to write into: NULL only with length 0.
///
/// # Safety
/// `p` is NULL or points to `len` writable bytes, not otherwise borrowed, that outlive the
/// returned slice.
pub(crate) unsafe fn bytes_mut<'a>(p: *mut c_void, len: usize, what: &str) -> Result<&'a mut [u8]> {
    if !check_len(p, len, what)? {
        return Ok(&mut []);
    }
    // SAFETY: as in `bytes`, and writable.
    Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) })
}

/// An array argument of `n` elements: NULL only with n 0.
///
/// # Safety
/// `p` is NULL or points to `n` initialised elements that outlive the returned slice.
pub(crate) unsafe fn array<'a, T>(p: *const T, n: usize, what: &str) -> Result<&'a [T]> {
    if n > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(err!(Invalid, "{what}: {n} elements is out of range"));
    }
    if p.is_null() {
        return if n == 0 { Ok(&[]) } else { Err(err!(Invalid, "{what} is NULL (with {n} elements)")) };
    }
    // SAFETY: non-NULL, n elements by the caller's contract, size checked above.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// An array argument to write `n` elements into: NULL only with n 0.
///
/// # Safety
/// As [`array`], and writable and not otherwise borrowed.
pub(crate) unsafe fn array_mut<'a, T>(p: *mut T, n: usize, what: &str) -> Result<&'a mut [T]> {
    // SAFETY: forwarded contract (checks only).
    unsafe { array(p as *const T, n, what)? };
    if n == 0 {
        return Ok(&mut []);
    }
    // SAFETY: checked non-NULL with n elements above; writable by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
}

/// Checks an out-parameter before doing any work, so a NULL never costs a side effect.
pub(crate) fn out<T>(p: *mut T, what: &str) -> Result<()> {
    if p.is_null() {
        Err(err!(Invalid, "{what} (out-parameter) is NULL"))
    } else {
        Ok(())
    }
}

/// Writes an optional out-parameter (NULL: the caller does not want it).
///
/// # Safety
/// `p` is NULL or valid for a write of T.
pub(crate) unsafe fn write_opt<T>(p: *mut T, v: T) {
    if !p.is_null() {
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { p.write(v) };
    }
}

/// Copies `s` NUL-terminated into `buf` (`cap` bytes) and its length (without the NUL) to `*len`
/// if not NULL; MPX_E_BUFFER_TOO_SMALL when it does not fit (`*len` still tells the length).
/// NULL `buf` is a length query and only valid with `cap` 0.
///
/// # Safety
/// `buf` NULL or `cap` writable bytes; `len` NULL or writable.
pub(crate) unsafe fn write_str(s: &str, buf: *mut c_char, cap: usize, len: *mut usize) -> Result<i32> {
    if buf.is_null() && cap > 0 {
        return Err(err!(Invalid, "buf is NULL (with capacity {cap})"));
    }
    // SAFETY: forwarded contract.
    unsafe { write_opt(len, s.len()) };
    if buf.is_null() || cap < s.len() + 1 {
        return Err(err!(BufferTooSmall, "the string needs {} bytes plus NUL, the buffer has {cap}", s.len()));
    }
    // SAFETY: buf has cap > s.len() writable bytes (checked).
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
    }
    Ok(0)
}

/// A handle argument as a reference: NULL is MPX_E_INVALID naming the parameter. Only the
/// library's handle types are accepted, so a pointer of another type does not compile.
///
/// # Safety
/// `p` is NULL or a handle of type H made by this library and not yet closed.
#[inline(always)]
pub(crate) unsafe fn handle<'a, H: CHandle>(p: *const H) -> Result<&'a H> {
    // SAFETY: a live handle by the caller's contract.
    unsafe { p.as_ref() }.ok_or_else(|| err!(Invalid, "{} is NULL", H::ARG))
}

/// An optional handle argument (NULL allowed).
///
/// # Safety
/// As [`handle`].
pub(crate) unsafe fn opt_handle<'a, H: CHandle>(p: *const H) -> Option<&'a H> {
    // SAFETY: a live handle or NULL by the caller's contract.
    unsafe { p.as_ref() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn timeouts() {
        assert_eq!(timeout(-1).unwrap(), Timeout::Forever);
        assert_eq!(timeout(0).unwrap(), Timeout::After(std::time::Duration::ZERO));
        assert_eq!(timeout(5).unwrap(), Timeout::After(std::time::Duration::from_nanos(5)));
        assert_eq!(timeout(-2).unwrap_err().kind(), ErrorKind::Invalid);
        assert_eq!(timeout(-5).unwrap_err().kind(), ErrorKind::Invalid);
        assert_eq!(timeout(i64::MIN).unwrap_err().kind(), ErrorKind::Invalid);
        assert!(timeout_ok(-1) && timeout_ok(0) && !timeout_ok(-2));
    }

    #[test]
    fn byte_ranges() {
        let b = [1u8, 2, 3];
        // SAFETY: b is 3 readable bytes; NULL with 0 is allowed.
        unsafe {
            assert_eq!(bytes(b.as_ptr().cast(), 3, "data").unwrap(), &b);
            assert!(bytes(std::ptr::null(), 0, "data").unwrap().is_empty());
            assert!(bytes(b.as_ptr().cast(), 0, "data").unwrap().is_empty());
            assert_eq!(bytes(std::ptr::null(), 1, "data").unwrap_err().kind(), ErrorKind::Invalid);
            assert_eq!(bytes(b.as_ptr().cast(), usize::MAX, "data").unwrap_err().kind(), ErrorKind::Invalid);
            let mut m = [0u8; 2];
            assert_eq!(bytes_mut(m.as_mut_ptr().cast(), 2, "buf").unwrap().len(), 2);
            assert_eq!(bytes_mut(std::ptr::null_mut(), 2, "buf").unwrap_err().kind(), ErrorKind::Invalid);
            assert_eq!(array::<usize>(std::ptr::null(), 1, "lens").unwrap_err().kind(), ErrorKind::Invalid);
            assert_eq!(array::<usize>(std::ptr::null(), usize::MAX, "lens").unwrap_err().kind(), ErrorKind::Invalid);
        }
    }

    #[test]
    fn flags_split() {
        assert_eq!(flags(0x1_0001, 0x1_0000, "x").unwrap(), (Flags(1), 0x1_0000));
        assert_eq!(flags(0x2_0000, 0x1_0000, "x").unwrap_err().kind(), ErrorKind::Invalid);
        assert_eq!(anonymous_flags(1, 0, "none", "x").unwrap_err().kind(), ErrorKind::Invalid);
        assert_eq!(anonymous_flags(0x1_0000, 0x1_0000, "X", "x").unwrap(), 0x1_0000);
    }
}
