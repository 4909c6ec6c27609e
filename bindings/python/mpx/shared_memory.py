"""Shared-memory buffers with the API of :mod:`multiprocessing.shared_memory`.

``SharedMemory(name=None, create=False, size=0)`` behaves like the standard library's class
(same arguments, ``buf``/``name``/``size``, ``close()``, ``unlink()``, pickling by name, repr),
so ``from mpx.shared_memory import SharedMemory`` is a drop-in replacement, and the same object
can be opened by name from C, C++ and Rust programs using mpx.

Differences that are the point of mpx:

* No resource tracker. Nothing is unlinked behind your back: a process that attaches to a
  buffer and exits (even killed) leaves it alone. The creator decides when to ``unlink()``;
  ``mpx ls`` shows every buffer and whether a live process still uses it, ``mpx gc`` removes
  the unused ones. (``track=`` is accepted for source compatibility with Python 3.13 and
  ignored: there is never any tracking.)
* Names are 1..200 bytes of ``[A-Za-z0-9._-]``; the buffer appears as ``/dev/shm/mpx.<name>``.
  Anything else is a ValueError that says why.
* Opening validates the segment (magic, layout version, kind, sizes, checksum): opening another
  kind of mpx object, or a corrupt or truncated segment, raises mpx.errors.KindError,
  CorruptError or VersionError instead of mapping garbage.
* ``size`` is exactly the size the creator asked for (not rounded to pages), in every process.

Extras: ``readonly=True`` maps the buffer read-only (``buf.readonly`` is True);
``SharedMemory.anonymous(size)`` makes an unnamed buffer (a sealed memfd that cannot leak) and
``SharedMemory.from_fd(fd)`` opens one from an inherited descriptor (``.fd``).

``buf`` is a memoryview (format 'B') of the library's own mapping of the segment, exported by a
small buffer object of the optional accelerator (``mpx._speedups.Mapping``, built by ``make
pyext``); without the accelerator, of a Python :class:`mmap.mmap` of the segment, as in the
standard library. Either way mmap's safety rules hold: ``close()`` raises BufferError while a
numpy array or a slice of ``buf`` still uses the memory, and the memory stays valid until it
succeeds. One case goes further than the standard library: an array made with
``np.ndarray(shape, dtype, buffer=shm.buf)`` holds no buffer export (numpy keeps only the raw
pointer and a reference to the buffer object), so the standard library unmaps under it and the
array then crashes the interpreter; here close() raises BufferError for it too. If the
SharedMemory object itself is garbage-collected while such users remain, the mapping is left to
them and goes away with the last one.

``ShareableList`` and ``SharedMemoryManager`` are out of scope of this module.
"""

import mmap
import operator
import os
import sys
from ctypes import byref, c_char_p, c_int, c_int32, c_size_t, c_uint32, c_void_p, cast

from . import errors
from ._lib import MPX_F_READ_ONLY, _cdll, _speedups, check, error, lib, name_arg, shm_p, size_arg
from ._objects import _fd_arg, _own

__all__ = ["SharedMemory"]

# Generated names, as the standard library makes them ("psm_" and 8 hex digits). Tests may
# patch _make_filename, as CPython's own tests do.
_SHM_NAME_PREFIX = "psm_"


def _lean(name, restype, argtypes):
    """A private function object for a call on the lifecycle's path, with plain ``void *``
    pointer parameters: ctypes checks a typed pointer (``POINTER(shm_p)``) argument by argument,
    about 1 us per call, and create/attach make five such calls. Only this module calls these,
    always with a handle it owns and out-parameters it made (the public ``lib`` prototypes keep
    their type checks)."""
    getattr(lib, name)  # a clear error for a missing prototype or symbol
    fn = _cdll[name]
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


_create = _lean("mpx_shm_create", c_int32, [c_char_p, c_size_t, c_uint32, c_void_p])
_open = _lean("mpx_shm_open", c_int32, [c_char_p, c_uint32, c_void_p])
_fd = _lean("mpx_shm_fd", c_int32, [c_void_p, c_void_p])
_data_offset = _lean("mpx_shm_data_offset", c_int32, [c_void_p, c_void_p])
_size = _lean("mpx_shm_size", c_size_t, [c_void_p])
_close = _lean("mpx_shm_close", None, [c_void_p])
_ptr = _lean("mpx_shm_ptr", c_void_p, [c_void_p])
_unlink_self = _lean("mpx_shm_unlink_self", c_int32, [c_void_p])

# With the accelerator, buf exports the memory of the library's own mapping through a small
# buffer object (mpx._speedups.Mapping: mmap's export rule, owns the handle) instead of mapping
# the segment a second time with Python's mmap; that second mapping cost more than the standard
# library's whole attach. Without it (or with MPX_NO_SPEEDUPS=1), Python's mmap as before.
_Mapping = None if os.environ.get("MPX_NO_SPEEDUPS") else getattr(_speedups, "Mapping", None)
_MAPPING_FNS = tuple(cast(f, c_void_p).value for f in (_close, _ptr, _size, _fd, _unlink_self))

_ACCESS = (mmap.ACCESS_WRITE, mmap.ACCESS_READ)
_E_EXISTS = errors.MPX_E_EXISTS


def _make_filename():
    """A random name for a buffer created without one."""
    return _SHM_NAME_PREFIX + os.urandom(4).hex()


def _rebuild_readonly(cls, name):
    """Unpickles a read-only SharedMemory (opened read-only again in the receiving process)."""
    return cls(name, readonly=True)


class SharedMemory:
    """A block of shared memory, named (``/dev/shm/mpx.<name>``) or anonymous.

    ``SharedMemory(name=None, create=False, size=0, *, readonly=False)``: with ``create=True``
    make a new buffer of ``size`` bytes (zeroed) under ``name``, or under a generated name if
    ``name`` is None; otherwise attach to the existing buffer ``name`` (``size`` is ignored).
    ``readonly=True`` maps an existing buffer read-only. ``track`` is accepted for Python 3.13
    compatibility and ignored: mpx never tracks, so nothing is unlinked but by ``unlink()``.

    Raises FileExistsError (create, name taken), FileNotFoundError (attach, no such buffer),
    ValueError (bad name or size), PermissionError, and mpx.errors.KindError / CorruptError /
    VersionError for a segment that is not a valid mpx buffer.
    """

    # Class-level defaults, so close() and __del__ work on a half-constructed instance.
    _name = None
    _handle = None
    _mmap = None
    _buf = None
    _offset = 0
    _size = 0
    _readonly = False
    _mmap_refs_alone = 0
    _buf_refs_alone = 0

    def __init__(self, name=None, create=False, size=0, *, readonly=False, track=True):
        size = operator.index(size)
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if create:
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
            size = size_arg(size)
        if name is None and not create:
            raise ValueError("'name' can only be None if create=True")
        flags = MPX_F_READ_ONLY if readonly else 0
        handle = shm_p()
        out = byref(handle)
        if create and name is None:
            while True:
                name = _make_filename()
                st = _create(name_arg(name), size, flags, out)
                if st != _E_EXISTS:
                    break
        elif create:
            st = _create(name_arg(name), size, flags, out)
        else:
            st = _open(name_arg(name), flags, out)
        if st:
            raise error(st)
        self._name = name
        try:
            self._attach(handle, readonly)  # closes the handle if it fails
        except BaseException:
            if create:
                # Do not leave behind a buffer this call failed to set up.
                lib.mpx_shm_unlink(name_arg(name))
            raise

    @classmethod
    def anonymous(cls, size):
        """An unnamed buffer of ``size`` zeroed bytes in a memfd sealed against resizing.

        It cannot leak (the kernel frees it when the last process closes it). Share it with a
        child by passing ``.fd`` (``subprocess.Popen(..., pass_fds=[shm.fd])`` or fork) and
        ``SharedMemory.from_fd(fd)`` there. ``name`` is None; it cannot be pickled by name."""
        size = size_arg(size)
        if size <= 0:
            raise ValueError("'size' must be a positive number different from zero")
        handle = shm_p()
        check(lib.mpx_shm_create_anonymous(size, byref(handle)))
        return cls._from_handle(handle, readonly=False)

    @classmethod
    def from_fd(cls, fd, *, readonly=False):
        """Opens the buffer behind a file descriptor (inherited from a parent, or received over
        a Unix socket): an anonymous buffer's or a named one's. The descriptor is duplicated;
        the caller keeps and closes its own. ``name`` is None."""
        handle = shm_p()
        check(lib.mpx_shm_open_fd(_fd_arg(fd), MPX_F_READ_ONLY if readonly else 0, byref(handle)))
        return cls._from_handle(handle, readonly)

    @classmethod
    def _from_handle(cls, handle, readonly):
        self = cls.__new__(cls)
        self._attach(handle, readonly)  # closes the handle if it fails
        return self

    def _attach(self, handle, readonly):
        """Makes ``buf`` over the handle's memory, with an object that refuses to unmap while
        the memory is exported (close() raises BufferError then): the accelerator's Mapping over
        the library's own mapping, or Python's mmap of the segment's fd. The C handle stays open
        as long as this object: it holds the liveness lock other processes see. On failure the
        handle is closed here (once: a Mapping takes it over, setting ``handle`` to NULL, as soon
        as it exists; closing NULL does nothing)."""
        try:
            if _Mapping is not None:
                m = _Mapping(_MAPPING_FNS, handle, readonly)
                start = 0
                size = m.size
            else:
                m, start, size = self._map(handle, readonly)
        except BaseException:
            _close(handle)
            raise
        # A Mapping owns the handle from here: if this fails, it closes it when it goes.
        buf = self._view(m, start, size)
        # Nothing can fail from here on. With a Mapping the handle is the Mapping's alone (see
        # _live_handle); else this object's, through a Handle (mpx._objects): a call holds it,
        # so a close() from another thread frees it only once the call returned.
        self._handle = None if type(m) is not mmap.mmap else _own(handle, _close)
        self._mmap = m
        self._offset = start
        self._size = size
        self._readonly = bool(readonly)
        self._buf = buf
        del m, buf  # not counted in the baselines below
        self._mmap_refs_alone = self._mmap_refs()
        self._buf_refs_alone = self._buf_refs()

    @staticmethod
    def _map(handle, readonly):
        """Python's mmap of the segment's data: (mmap, offset of the data in it, size)."""
        fd = c_int()
        offset = c_size_t()
        st = _fd(handle, byref(fd)) or _data_offset(handle, byref(offset))
        if st:
            raise error(st)
        size = _size(handle)
        offset = offset.value
        access = _ACCESS[1] if readonly else _ACCESS[0]
        if offset % mmap.ALLOCATIONGRANULARITY == 0:
            return mmap.mmap(fd.value, size, access=access, offset=offset), 0, size
        # Pages larger than the library's 4096-byte data alignment: map from the start.
        return mmap.mmap(fd.value, offset + size, access=access), offset, size

    def _mmap_refs(self):
        # References to the mmap object: ours, our memoryview's, the call's; any more means
        # some object holds the mapping itself (see close()).
        return sys.getrefcount(self._mmap)

    def _buf_refs(self):
        return sys.getrefcount(self._buf)

    @staticmethod
    def _view(m, start, size):
        if start:
            with memoryview(m) as whole:
                return whole[start : start + size]
        return memoryview(m)

    def __del__(self):
        try:
            if self._buf is not None and (
                self._buf_refs() > self._buf_refs_alone or self._mmap_refs() > self._mmap_refs_alone
            ):
                # The object goes but its memory is still in use, e.g. the view of a temporary
                # in `SharedMemory(name).buf[0] = 1` (the standard library releases it under
                # the statement, which then fails). Leave the mapping to its users: it goes
                # away with the last of them.
                self._detach()
                return
            self.close()
        except BufferError:
            self._detach()
        except Exception:
            pass

    def _detach(self):
        self._buf = None
        if self._mmap is not None and type(self._mmap) is not mmap.mmap:
            # A Mapping owns the handle and closes it when its last user goes.
            self._handle = None
            self._mmap = None
            return
        self._mmap = None
        self._close_handle()

    def __reduce__(self):
        if self._name is None:
            raise TypeError(
                "an anonymous SharedMemory cannot be pickled: pass its fd to the other process "
                "and open it with SharedMemory.from_fd"
            )
        if self._readonly:
            return (_rebuild_readonly, (self.__class__, self._name))
        return (self.__class__, (self._name, False, self._size))

    def __repr__(self):
        return "%s(%r, size=%d)" % (self.__class__.__name__, self.name, self.size)

    @property
    def buf(self):
        """A memoryview of the contents (format 'B'); None after close()."""
        return self._buf

    @property
    def name(self):
        """The buffer's name (without the "mpx." file prefix), or None if it is anonymous."""
        return self._name

    @property
    def size(self):
        """The size in bytes, as created."""
        return self._size

    @property
    def readonly(self):
        """Whether this mapping is read-only."""
        return self._readonly

    def _live_handle(self):
        """The handle while open, else None: a Mapping (whose calls on the handle run with the
        GIL held, so that a close() from another thread cannot come between), or the Handle
        this object holds (a call holds it; see mpx._objects)."""
        m = self._mmap
        if m is not None and type(m) is not mmap.mmap:
            return None if m.closed else m
        return self._handle

    @property
    def fd(self):
        """The segment's file descriptor, owned by this object (dup it to keep it longer).
        Pass it to a child to share the buffer without a name."""
        h = self._live_handle()
        if h is None:
            raise ValueError("SharedMemory is closed")
        if type(h) is _Mapping:
            st, fd = h.fd()
            check(st)
            return fd
        fd = c_int()
        check(_fd(h, byref(fd)))
        return fd.value

    def close(self):
        """Unmaps the buffer in this process; it stays alive for others. Never unlinks.

        Raises BufferError while something (a numpy array, a memoryview slice) still uses the
        memory; everything stays valid then, and close() can be called again later."""
        if self._mmap is not None and self._mmap_refs() > self._mmap_refs_alone:
            # np.ndarray(buffer=shm.buf) keeps no buffer export: it references the mmap object
            # and its raw pointer. The standard library unmaps under it (the array then crashes
            # the interpreter when used); refuse instead, like for an export.
            raise BufferError(
                "cannot close %r: an object still uses its memory (e.g. a numpy array made with "
                "np.ndarray(buffer=shm.buf)); delete it first" % self
            )
        if self._buf is not None:
            self._buf.release()
            self._buf = None
        if self._mmap is not None:
            try:
                self._mmap.close()
            except BufferError:
                # A slice of buf still points into the mapping: keep the object usable.
                self._buf = self._view(self._mmap, self._offset, self._size)
                raise
            if type(self._mmap) is not mmap.mmap:
                self._handle = None  # a Mapping: its close() closed the handle
            self._mmap = None
        self._close_handle()

    def _close_handle(self):
        # The Handle closes the C handle once no call uses it.
        self._handle = None

    def unlink(self):
        """Removes the buffer's name: new attaches fail with FileNotFoundError, while every
        process that has it open keeps using it until it closes. Call it once, in one process
        (a second unlink raises FileNotFoundError). An anonymous buffer has no name: ValueError."""
        if self._name is None:
            raise ValueError("an anonymous SharedMemory has no name to unlink")
        name = name_arg(self._name)  # validates, as the stdlib does, even when the handle is used
        h = self._live_handle()
        if h is not None:
            # While open, remove the name only if it is still ours (not a newer object's).
            check(h.unlink_self() if type(h) is _Mapping else _unlink_self(h))
        else:
            check(lib.mpx_shm_unlink(name))

