"""Exceptions raised by mpx and the mapping from C status codes (``mpx_status``) to them.

Errors map to the exceptions Python users already catch:

==================  =========================================================
MPX_E_NOT_FOUND     FileNotFoundError
MPX_E_EXISTS        FileExistsError
MPX_E_INVALID       ValueError
MPX_E_PERMISSION    PermissionError
MPX_E_TIMEOUT       TimeoutError
MPX_E_KIND          KindError (MpxError and ValueError)
MPX_E_CORRUPT       CorruptError (MpxError and ValueError)
MPX_E_VERSION       VersionError (MpxError and ValueError)
MPX_E_OS            OSError
anything else       MpxError (an OSError)
==================  =========================================================

Every exception raised for a status carries ``.status`` (the negative code) and
``.status_name`` ("MPX_E_NOT_FOUND", ...), and its text is the library's message
(``mpx_last_error()``), e.g. ``shm 'frames': no such object``.

This module does not need the native library, so it can be imported on its own.
"""

import errno as _errno

# Status codes: the values of include/mpx.h (a test checks them against the library).
MPX_OK = 0
MPX_E_INVALID = -1
MPX_E_NOT_FOUND = -2
MPX_E_EXISTS = -3
MPX_E_TIMEOUT = -4
MPX_E_FULL = -5
MPX_E_EMPTY = -6
MPX_E_CLOSED = -7
MPX_E_TOO_BIG = -8
MPX_E_KIND = -9
MPX_E_VERSION = -10
MPX_E_CORRUPT = -11
MPX_E_PERMISSION = -12
MPX_E_OWNER_DIED = -13
MPX_E_WORKER_DIED = -14
MPX_E_AUTH = -15
MPX_E_OS = -16
MPX_E_PANIC = -17
MPX_E_BUFFER_TOO_SMALL = -18
MPX_E_BROKEN = -19
MPX_E_STATE = -20
MPX_E_UNSUPPORTED = -21

STATUS_NAMES = {
    value: key for key, value in globals().items() if key.startswith("MPX_") and isinstance(value, int)
}


def status_name(status):
    """The constant's name for a status code ("MPX_E_NOT_FOUND"), or "MPX_E_UNKNOWN"."""
    return STATUS_NAMES.get(status, "MPX_E_UNKNOWN")


class MpxError(OSError):
    """Base of the errors specific to mpx. ``status`` is the C status code, ``status_name``
    its constant's name; ``str(err)`` is the library's message."""

    status = None

    def __init__(self, message="", status=None, status_name=None):
        # A custom __init__ keeps OSError from reading (message, status) as (errno, strerror).
        super().__init__(message)
        if status is not None:
            self.status = status
        if status_name is not None:
            self.status_name = status_name

    @property
    def status_name(self):
        return self.__dict__.get("_status_name") or status_name(self.status)

    @status_name.setter
    def status_name(self, value):
        self.__dict__["_status_name"] = value


class KindError(MpxError, ValueError):
    """The named object exists but is of another kind (e.g. a queue opened as a buffer)."""

    status = MPX_E_KIND


class CorruptError(MpxError, ValueError):
    """The object's segment fails validation (bad magic, checksum, sizes, truncated file)."""

    status = MPX_E_CORRUPT


class VersionError(MpxError, ValueError):
    """The object was made by an incompatible layout version of mpx."""

    status = MPX_E_VERSION


# Statuses raised as built-in OSError subclasses, with the errno they correspond to.
_BUILTIN_OS = {
    MPX_E_NOT_FOUND: (FileNotFoundError, _errno.ENOENT),
    MPX_E_EXISTS: (FileExistsError, _errno.EEXIST),
    MPX_E_PERMISSION: (PermissionError, _errno.EACCES),
    MPX_E_TIMEOUT: (TimeoutError, _errno.ETIMEDOUT),
}

# Statuses raised as an exception class called with the message alone. Later capabilities add
# theirs with register() (e.g. a broken barrier's error).
_CLASSES = {
    MPX_E_INVALID: ValueError,
    MPX_E_OS: OSError,
    MPX_E_KIND: KindError,
    MPX_E_CORRUPT: CorruptError,
    MPX_E_VERSION: VersionError,
}


def register(status, cls):
    """Raise ``cls(message)`` for ``status`` from now on (used by capability modules)."""
    _CLASSES[status] = cls


def from_status(status, message, name=None, os_errno=0):
    """The exception for a failed call's status and message (not raised here). ``os_errno``
    (mpx_last_errno()) makes an MPX_E_OS failure an OSError subclass with that errno, as
    Python's own OS errors are (e.g. ENOSPC -> OSError(28, ...))."""
    name = name or status_name(status)
    if not message:
        message = name
    if status == MPX_E_OS and os_errno:
        exc = OSError(os_errno, message)
    elif status in _BUILTIN_OS:
        cls, code = _BUILTIN_OS[status]
        exc = cls(code, message)
    else:
        cls = _CLASSES.get(status, MpxError)
        if issubclass(cls, MpxError):
            return cls(message, status, name)
        exc = cls(message)
    # Built-in exceptions accept attributes: keep the status for callers that want it.
    exc.status = status
    exc.status_name = name
    return exc
