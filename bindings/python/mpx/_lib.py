"""Loading libmpx.so and the C prototypes of every function the package calls.

Where the library comes from, first match wins:
  1. the environment variable MPX_LIBRARY (a path; an error if it does not load),
  2. libmpx.so next to this package (a self-contained install),
  3. the repository's build: <repo>/target/release/libmpx.so (bindings/python/mpx -> ../../..),
  4. the system search path (ctypes.util.find_library("mpx")).

Every C function is declared once in PROTOTYPES below, one section per capability: a module
that wraps a new capability adds its section there and then calls ``lib.mpx_<kind>_<op>``.
Calling a function without a prototype is an AttributeError rather than an undeclared call
(ctypes would otherwise guess ``int`` for every argument and the result).

``check(status)`` turns a failed status into the matching exception (see mpx.errors), with the
library's message for it (mpx_last_error is thread-local, and ctypes calls it on the same thread
right after the failing call, so the message belongs to that call).
"""

import ctypes
import ctypes.util
import operator
import os
from ctypes import POINTER, c_char_p, c_int, c_int32, c_size_t, c_uint8, c_uint32

from . import errors

#: The C ABI version this package is written for (MPX_ABI_VERSION in include/mpx.h).
ABI_VERSION = 1

# Flags (include/mpx.h).
MPX_F_UNLINK_ON_LAST_CLOSE = 1
MPX_F_READ_ONLY = 2
MPX_F_MODE_GROUP = 4
MPX_F_MODE_ALL = 8

#: Timeout that blocks without limit (timeouts are int64 nanoseconds; 0 never blocks).
MPX_FOREVER = -1

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _load():
    """Returns (CDLL, path) or raises ImportError saying what was tried."""
    env = os.environ.get("MPX_LIBRARY")
    if env:
        # An explicit choice must not silently fall back to another copy of the library.
        if not os.path.exists(env):
            raise ImportError("mpx: MPX_LIBRARY=%r does not exist (build it with `cargo build --release`)" % env)
        try:
            return ctypes.CDLL(env), env
        except OSError as e:
            raise ImportError("mpx: cannot load MPX_LIBRARY=%r: %s" % (env, e)) from e

    tried = []
    candidates = [
        os.path.join(_PACKAGE_DIR, "libmpx.so"),
        os.path.normpath(os.path.join(_PACKAGE_DIR, "..", "..", "..", "target", "release", "libmpx.so")),
    ]
    for path in candidates:
        if not os.path.exists(path):
            tried.append("%s (absent)" % path)
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    found = ctypes.util.find_library("mpx")
    if found:
        try:
            return ctypes.CDLL(found), found
        except OSError as e:
            tried.append("%s (%s)" % (found, e))
    else:
        tried.append("system library path (no libmpx found)")
    raise ImportError(
        "mpx: cannot find the native library libmpx.so. Build it with `cargo build --release` in the "
        "mpx repository, or set MPX_LIBRARY to its path. Tried: " + "; ".join(tried)
    )


def handle_type(cname):
    """A distinct pointer type for an opaque C handle (``mpx_shm *``), so that passing one kind
    of handle where another is expected is a ctypes.ArgumentError, not memory corruption."""
    return POINTER(type(cname, (ctypes.Structure,), {"_fields_": []}))


mpx_status = c_int32

# Opaque handle types, one per capability.
shm_p = handle_type("mpx_shm")

# name: (restype, [argtypes]). One section per capability; keep in the header's order.
PROTOTYPES = {
    # core
    "mpx_version": (c_char_p, []),
    "mpx_abi_version": (c_uint32, []),
    "mpx_last_error": (c_char_p, []),
    "mpx_status_name": (c_char_p, [mpx_status]),
    "mpx_last_errno": (c_int, []),
    # shared memory
    "mpx_shm_create": (mpx_status, [c_char_p, c_size_t, c_uint32, POINTER(shm_p)]),
    "mpx_shm_open": (mpx_status, [c_char_p, c_uint32, POINTER(shm_p)]),
    "mpx_shm_create_anonymous": (mpx_status, [c_size_t, POINTER(shm_p)]),
    "mpx_shm_open_fd": (mpx_status, [c_int, c_uint32, POINTER(shm_p)]),
    "mpx_shm_ptr": (POINTER(c_uint8), [shm_p]),
    "mpx_shm_size": (c_size_t, [shm_p]),
    "mpx_shm_name": (c_char_p, [shm_p]),
    "mpx_shm_fd": (mpx_status, [shm_p, POINTER(c_int)]),
    "mpx_shm_data_offset": (mpx_status, [shm_p, POINTER(c_size_t)]),
    "mpx_shm_close": (None, [shm_p]),
    "mpx_shm_unlink": (mpx_status, [c_char_p]),
    "mpx_shm_unlink_self": (mpx_status, [shm_p]),
}


class _Functions:
    """The declared C functions as attributes (``lib.mpx_shm_open(...)``)."""

    def __init__(self, cdll, path):
        self._cdll = cdll
        self._path = path
        self._missing = set()
        for name, (restype, argtypes) in PROTOTYPES.items():
            try:
                fn = getattr(cdll, name)
            except AttributeError:
                # An older library: fail when (and only when) the function is used.
                self._missing.add(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    def __getattr__(self, name):
        if name in self.__dict__.get("_missing", ()):
            raise AttributeError("%s does not export %s (rebuild it: cargo build --release)" % (self._path, name))
        raise AttributeError("%s has no prototype in mpx._lib.PROTOTYPES" % name)


_cdll, library_path = _load()
lib = _Functions(_cdll, library_path)

if lib.mpx_abi_version() != ABI_VERSION:
    raise ImportError(
        "mpx: %s implements C ABI version %d but this package needs version %d"
        % (library_path, lib.mpx_abi_version(), ABI_VERSION)
    )

version = lib.mpx_version().decode("ascii", "replace")


def last_error():
    """The calling thread's last error message from the library ("" if none)."""
    msg = lib.mpx_last_error()
    return msg.decode("utf-8", "replace") if msg else ""


def status_name(status):
    """The constant name of a status code, as the library spells it."""
    return lib.mpx_status_name(status).decode("ascii", "replace")


def error(status, message=None):
    """The exception for a failed status; the message defaults to mpx_last_error()."""
    if message is None:
        message = last_error()
    return errors.from_status(status, message, status_name(status), lib.mpx_last_errno())


def check(status, allow=()):
    """Returns ``status`` if it is MPX_OK (or in ``allow``, e.g. MPX_E_OWNER_DIED for a lock,
    which means success with news); otherwise raises the matching exception. Call it right
    after the C call, on the same thread."""
    if status == errors.MPX_OK or status in allow:
        return status
    raise error(status)


def name_arg(name, what="name"):
    """A Python object name as the bytes the C functions take. Validation of the characters is
    the library's (it says exactly why a name is refused); here only what C strings cannot carry:
    non-str types, and NUL bytes (C would silently cut the name at the NUL)."""
    if not isinstance(name, str):
        raise TypeError("%s must be str, not %s" % (what, type(name).__name__))
    if "\0" in name:
        raise ValueError("invalid %s %r: embedded null character" % (what, name))
    try:
        # surrogateescape turns undecodable bytes (from os.fsdecode) back into those bytes, so
        # the library reports "not UTF-8" itself.
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ValueError("invalid %s %r: not valid UTF-8 (use A-Z a-z 0-9 . _ -)" % (what, name)) from None


def size_arg(size, what="size"):
    """An integer size for a size_t parameter. ctypes truncates out-of-range integers silently,
    so anything that does not fit is refused here."""
    size = operator.index(size)
    if size > (1 << (8 * ctypes.sizeof(c_size_t))) - 1:
        raise ValueError("%s %d is too large" % (what, size))
    return size


__all__ = [
    "ABI_VERSION",
    "MPX_FOREVER",
    "MPX_F_MODE_ALL",
    "MPX_F_MODE_GROUP",
    "MPX_F_READ_ONLY",
    "MPX_F_UNLINK_ON_LAST_CLOSE",
    "PROTOTYPES",
    "check",
    "error",
    "handle_type",
    "last_error",
    "lib",
    "library_path",
    "mpx_status",
    "name_arg",
    "size_arg",
    "status_name",
    "version",
]
