//! C ABI for shared-memory buffers (`mpx_shm_*`).

use std::ffi::{c_char, c_int, CString};

use super::handle::{self, object_handle};
use super::{args, guard, mpx_status, MPX_OK};
use crate::SharedMemory;

/// A shared-memory buffer handle (opaque). Free with `mpx_shm_close`.
pub struct mpx_shm {
    inner: SharedMemory,
    /// The name as a C string, kept for `mpx_shm_name` ("" for anonymous buffers).
    name: CString,
}

object_handle!(mpx_shm, SharedMemory, "shm");

/// Creates a named shared-memory buffer of `size` zeroed bytes (`size` > 0) and writes its handle
/// to `*out`.
///
/// `name`: 1..=200 bytes of [A-Za-z0-9._-]; the object appears as /dev/shm/mpx.<name>.
/// `flags`: 0 or MPX_F_UNLINK_ON_LAST_CLOSE | MPX_F_MODE_GROUP | MPX_F_MODE_ALL.
/// Returns MPX_E_EXISTS if the name is taken, MPX_E_INVALID for a bad name, size or flag.
#[no_mangle]
pub unsafe extern "C" fn mpx_shm_create(
    name: *const c_char,
    size: usize,
    flags: u32,
    out: *mut *mut mpx_shm,
) -> mpx_status {
    guard("mpx_shm_create", || handle::create(out, name, size, flags))
}

/// Opens an existing named buffer and writes its handle to `*out`.
///
/// `flags`: 0 or MPX_F_READ_ONLY | MPX_F_UNLINK_ON_LAST_CLOSE. Waits up to 2 s for a creator
/// that is still initialising. Returns MPX_E_NOT_FOUND if there is no such object, MPX_E_KIND if
/// it is not a buffer, MPX_E_VERSION or MPX_E_CORRUPT if its header does not validate.
#[no_mangle]
pub unsafe extern "C" fn mpx_shm_open(name: *const c_char, flags: u32, out: *mut *mut mpx_shm) -> mpx_status {
    guard("mpx_shm_open", || handle::open(out, name, flags))
}

/// Creates an anonymous buffer of `size` bytes in a memfd sealed against resizing. It has no
/// name and cannot leak; share it by passing `mpx_shm_fd` to a child or over a Unix socket.
#[no_mangle]
pub unsafe extern "C" fn mpx_shm_create_anonymous(size: usize, out: *mut *mut mpx_shm) -> mpx_status {
    guard("mpx_shm_create_anonymous", || handle::create_anonymous(out, size))
}

/// Opens the buffer behind a file descriptor (inherited, or received over a Unix socket). The
/// descriptor is duplicated: the caller still owns and must close `fd`. `flags`: 0 or
/// MPX_F_READ_ONLY.
#[no_mangle]
pub unsafe extern "C" fn mpx_shm_open_fd(fd: c_int, flags: u32, out: *mut *mut mpx_shm) -> mpx_status {
    guard("mpx_shm_open_fd", || handle::open_fd(out, fd, flags))
}

/// The first byte of the buffer (page-aligned), or NULL if `shm` is NULL. Valid until
/// `mpx_shm_close`.
#[no_mangle]
pub unsafe extern "C" fn mpx_shm_ptr(shm: *const mpx_shm) -> *mut u8 {
    args::opt_handle(shm).map_or(std::ptr::null_mut(), |s| s.inner.as_ptr())
}

/// The buffer's size in bytes (as created), or 0 if `shm` is NULL.
#[no_mangle]
pub unsafe extern "C" fn mpx_shm_size(shm: *const mpx_shm) -> usize {
    args::opt_handle(shm).map_or(0, |s| s.inner.len())
}

/// The buffer's name ("" for an anonymous buffer), or NULL if `shm` is NULL. Valid until
/// `mpx_shm_close`.
#[no_mangle]
pub unsafe extern "C" fn mpx_shm_name(shm: *const mpx_shm) -> *const c_char {
    handle::name(shm)
}

/// Writes the buffer's file descriptor to `*fd`. The handle keeps owning it (do not close it);
/// `dup` it to keep it beyond `mpx_shm_close`.
#[no_mangle]
pub unsafe extern "C" fn mpx_shm_fd(shm: *const mpx_shm, fd: *mut c_int) -> mpx_status {
    guard("mpx_shm_fd", || handle::fd(shm, fd))
}

/// Writes the offset of the data within the segment file to `*offset` (a multiple of the page
/// size), so a binding can map the data itself: `mmap(NULL, size, prot, MAP_SHARED, fd, offset)`.
#[no_mangle]
pub unsafe extern "C" fn mpx_shm_data_offset(shm: *const mpx_shm, offset: *mut usize) -> mpx_status {
    guard("mpx_shm_data_offset", || {
        args::out(offset, "offset")?;
        *offset = args::handle(shm)?.inner.data_offset();
        Ok(MPX_OK)
    })
}

/// Unmaps the buffer and frees the handle. Never removes the name, unless the buffer was
/// created or opened with MPX_F_UNLINK_ON_LAST_CLOSE and this was the last user anywhere.
/// NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_shm_close(shm: *mut mpx_shm) {
    handle::close("mpx_shm_close", shm)
}

/// Removes a buffer's name. Processes that have it open keep using it; the memory is freed when
/// the last one closes. Returns MPX_E_NOT_FOUND if there is no such name.
#[no_mangle]
pub unsafe extern "C" fn mpx_shm_unlink(name: *const c_char) -> mpx_status {
    guard("mpx_shm_unlink", || handle::unlink::<mpx_shm>(name))
}

/// Removes this buffer's name, but only if the name still refers to this buffer (a name that
/// was unlinked and reused by a new object is left alone: MPX_E_NOT_FOUND). Safer than
/// `mpx_shm_unlink` when names are reused.
#[no_mangle]
pub unsafe extern "C" fn mpx_shm_unlink_self(shm: *const mpx_shm) -> mpx_status {
    guard("mpx_shm_unlink_self", || handle::unlink_self(shm))
}
