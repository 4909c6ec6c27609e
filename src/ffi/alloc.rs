//! Memory the library allocates for the caller: malloc'd, so `mpx_free` (free) releases it.

use std::ffi::c_void;

/// Copies bytes into a malloc'd block (at least one byte, so an empty result is not NULL).
pub(crate) unsafe fn malloc_copy(b: &[u8]) -> *mut u8 {
    let p = libc::malloc(b.len().max(1)) as *mut u8;
    if p.is_null() {
        std::alloc::handle_alloc_error(std::alloc::Layout::from_size_align(b.len().max(1), 1).unwrap());
    }
    std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len());
    p
}

/// Frees memory the library returned to the caller (documented per function). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mpx_free(p: *mut c_void) {
    libc::free(p)
}
