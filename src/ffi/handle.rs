//! C handles: the opaque structs the C ABI hands out, tied to their Rust types, and the
//! lifecycle every object kind's shims are one line over (create, open, fd, name, close,
//! unlink). cbindgen does not expand macros on stable, so the `extern "C"` functions stay
//! written out in each capability's file and call these helpers for their bodies.

use std::ffi::{c_char, c_int, CStr, CString};

use super::{args, guard_void, mpx_status, MPX_OK};
use crate::object::{Flags, Object};
use crate::Result;

/// An opaque handle type of the C ABI. `ARG` is how messages name an argument of this type
/// ("lock is NULL"): the C parameter name the header uses.
pub(crate) trait CHandle: Sized {
    const ARG: &'static str;
}

/// A handle of an object kind: the Rust object and its name as a C string (for `_name`).
pub(crate) trait ObjectHandle: CHandle {
    type Inner: Object;
    fn new(inner: Self::Inner) -> Self;
    fn inner(&self) -> &Self::Inner;
    fn c_name(&self) -> &CStr;
}

/// The name as a C string ("" for an anonymous object).
pub(crate) fn c_name(n: Option<&str>) -> CString {
    CString::new(n.unwrap_or("")).unwrap_or_default()
}

/// Implements [`CHandle`] and [`ObjectHandle`] for a handle struct `{ inner: T, name: CString }`
/// (the struct itself stays written out, so that cbindgen declares it in the header).
macro_rules! object_handle {
    ($handle:ident, $inner:ty, $arg:literal) => {
        impl $crate::ffi::handle::CHandle for $handle {
            const ARG: &'static str = $arg;
        }

        impl $crate::ffi::handle::ObjectHandle for $handle {
            type Inner = $inner;

            fn new(inner: $inner) -> $handle {
                use $crate::object::Object;
                $handle { name: $crate::ffi::handle::c_name(inner.name()), inner }
            }

            fn inner(&self) -> &$inner {
                &self.inner
            }

            fn c_name(&self) -> &std::ffi::CStr {
                &self.name
            }
        }
    };
}
pub(crate) use object_handle;

/// Implements [`CHandle`] for a handle that is not an object kind (connections, processes).
macro_rules! plain_handle {
    ($handle:ident, $arg:literal) => {
        impl $crate::ffi::handle::CHandle for $handle {
            const ARG: &'static str = $arg;
        }
    };
}
pub(crate) use plain_handle;

type Spec<'a, H> = <<H as ObjectHandle>::Inner as Object>::Spec<'a>;

/// Moves a value into a new heap handle and writes it to the out-parameter.
///
/// # Safety
/// `out` was checked non-NULL and is valid for a write.
pub(crate) unsafe fn put<H: CHandle>(out: *mut *mut H, value: H) -> mpx_status {
    // SAFETY: by the caller's contract.
    unsafe { *out = Box::into_raw(Box::new(value)) };
    MPX_OK
}

/// Frees a handle made by [`put`]; NULL is a no-op. Never lets a panic (from a Drop) out.
///
/// # Safety
/// `p` is NULL or a live handle of this library, not used again.
pub(crate) unsafe fn close<H: CHandle>(fname: &str, p: *mut H) {
    if !p.is_null() {
        // SAFETY: made by Box::into_raw in `put`, freed once (the caller's contract).
        guard_void(fname, || drop(unsafe { Box::from_raw(p) }))
    }
}

/// `_create(name, ..., flags, out)`: `make` turns the checked name into the kind's spec and
/// object flags (it may refuse them).
///
/// # Safety
/// `out` NULL or writable; `name` NULL or a C string.
pub(crate) unsafe fn create_with<'a, H: ObjectHandle>(
    out: *mut *mut H,
    name: *const c_char,
    make: impl FnOnce(&str) -> Result<(Spec<'a, H>, Flags)>,
) -> Result<mpx_status> {
    args::out(out, "out")?;
    // SAFETY: forwarded contract.
    let name = unsafe { args::name(name) }?;
    let (spec, flags) = make(name)?;
    let h = H::new(H::Inner::create(name, spec, flags)?);
    // SAFETY: checked above.
    Ok(unsafe { put(out, h) })
}

/// `_create(name, flags, out)` for a spec known up front.
///
/// # Safety
/// As [`create_with`].
pub(crate) unsafe fn create<H: ObjectHandle>(
    out: *mut *mut H,
    name: *const c_char,
    spec: Spec<'_, H>,
    flags: u32,
) -> Result<mpx_status> {
    // SAFETY: forwarded contract.
    unsafe { create_with(out, name, |_| Ok((spec, Flags(flags)))) }
}

/// `_create_anonymous(..., out)`.
///
/// # Safety
/// `out` NULL or writable.
pub(crate) unsafe fn create_anonymous<H: ObjectHandle>(out: *mut *mut H, spec: Spec<'_, H>) -> Result<mpx_status> {
    args::out(out, "out")?;
    let h = H::new(H::Inner::create_anonymous(spec)?);
    // SAFETY: checked above.
    Ok(unsafe { put(out, h) })
}

/// `_open(name, flags, out)`.
///
/// # Safety
/// `out` NULL or writable; `name` NULL or a C string.
pub(crate) unsafe fn open<H: ObjectHandle>(out: *mut *mut H, name: *const c_char, flags: u32) -> Result<mpx_status> {
    args::out(out, "out")?;
    // SAFETY: forwarded contract.
    let h = H::new(H::Inner::open(unsafe { args::name(name) }?, Flags(flags))?);
    // SAFETY: checked above.
    Ok(unsafe { put(out, h) })
}

/// `_open_fd(fd, flags, out)`: the fd is duplicated; the caller keeps its own.
///
/// # Safety
/// `out` NULL or writable.
pub(crate) unsafe fn open_fd<H: ObjectHandle>(out: *mut *mut H, fd: c_int, flags: u32) -> Result<mpx_status> {
    args::out(out, "out")?;
    let h = H::new(H::Inner::from_fd(fd, Flags(flags))?);
    // SAFETY: checked above.
    Ok(unsafe { put(out, h) })
}

/// `_fd(handle, out)`: the handle keeps owning the descriptor.
///
/// # Safety
/// `h` NULL or a live handle; `fd` NULL or writable.
pub(crate) unsafe fn fd<H: ObjectHandle>(h: *const H, fd: *mut c_int) -> Result<mpx_status> {
    args::out(fd, "fd")?;
    // SAFETY: forwarded contract; fd checked non-NULL.
    unsafe { *fd = args::handle(h)?.inner().fd() };
    Ok(MPX_OK)
}

/// `_name(handle)`: "" for an anonymous object, NULL for a NULL handle; valid until close.
///
/// # Safety
/// `h` NULL or a live handle.
pub(crate) unsafe fn name<H: ObjectHandle>(h: *const H) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { args::opt_handle(h) }.map_or(std::ptr::null(), |h| h.c_name().as_ptr())
}

/// `_unlink(name)`: removes a name; processes that have the object open keep using it.
///
/// # Safety
/// `name` NULL or a C string.
pub(crate) unsafe fn unlink<H: ObjectHandle>(name: *const c_char) -> Result<mpx_status> {
    // SAFETY: forwarded contract.
    H::Inner::unlink_name(unsafe { args::name(name) }?)?;
    Ok(MPX_OK)
}

/// `_unlink_self(handle)`: removes the name only if it still refers to this object.
///
/// # Safety
/// `h` NULL or a live handle.
pub(crate) unsafe fn unlink_self<H: ObjectHandle>(h: *const H) -> Result<mpx_status> {
    // SAFETY: forwarded contract.
    unsafe { args::handle(h) }?.inner().unlink()?;
    Ok(MPX_OK)
}
