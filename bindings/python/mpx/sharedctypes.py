"""Shared ctypes objects with the API of :mod:`multiprocessing.sharedctypes`.

``Value(typecode_or_type, *args, lock=True)``, ``Array(typecode_or_type, size_or_initializer,
*, lock=True)``, ``RawValue`` and ``RawArray`` return what multiprocessing's return:

* ``RawValue`` / ``RawArray`` / ``lock=False``: a plain ctypes object (``c_int``,
  ``c_double_Array_10``, ...) whose memory is an mpx Value segment: ``.value``, indexing,
  slices, ``len``, iteration, and the buffer protocol (``memoryview(a)``,
  ``numpy.frombuffer(a, dtype)``) work on the shared memory itself, zero-copy.
* ``lock=True`` (default) or ``lock=None``: a synchronized wrapper (``Synchronized``,
  ``SynchronizedArray``, ``SynchronizedString`` for 'c') with ``get_obj()``, ``get_lock()``,
  ``acquire()``/``release()`` and the context manager; its lock is a recursive lock embedded in
  the same segment (C programs take it with ``mpx_value_acquire``).
* ``lock=<a lock object>``: the wrapper uses that lock (an mpx Lock/RLock, or anything with
  ``acquire``/``release``, as multiprocessing allows).

Typecodes are multiprocessing's (``c u b B h H i I l L q Q f d``), and the matching ctypes types
are accepted too (``ctypes.c_int``, ``c_double``, ...); the segment then has that typecode, and
C sees its elements as the matching C type. Any other ctypes type works as in multiprocessing:
a ``Structure`` or ``Union`` (nested ones and ``c_char`` array fields included), ``c_bool``, an
array type, ...: ``Value(Point, 1, 2)``, ``Array(Point, [(1, 2), (3, 4)])``. Such a value is
stored as bytes, a segment of typecode 'B' of ``n * sizeof(type)`` elements, viewed through
the type (its layout is ctypes', i.e. the C compiler's: C reads the same struct at
``mpx_value_ptr``, 64-byte aligned). Its synchronized wrapper takes the lock for every access
(``v.x``, ``v.x = 3``: a property per field, as multiprocessing makes; ``a[i]`` of an array of
structures). ``Value.open(name, typecode_or_type=Point)`` views a named one again.

Differences from multiprocessing, and why:

* ``.value`` and single-item ``a[i]`` / ``a[i] = x`` of a synchronized wrapper are one atomic
  load or store of the element and do not take the lock (multiprocessing takes it around each
  access; either way a single access is indivisible). Slices and ``.raw`` take the lock, since
  they are several loads or stores. Read-modify-write (``v.value += 1``) needs the lock, as in
  multiprocessing: ``with v.get_lock(): v.value += 1``.
* Each object is its own segment, anonymous (a memfd: nothing in /dev/shm), so it is gone
  when the last process using it ends, however it ends (killed too). Forked children inherit
  it; for spawn and forkserver (mpx's and multiprocessing's) a wrapper or raw ctypes object
  pickled while the child is being started (as a Process argument) travels with its
  descriptor and the child maps the same memory. Pickling one at any other time raises
  RuntimeError, as multiprocessing does ("... should only be shared between processes through
  inheritance"). Raw ctypes objects travel this way with
  :class:`multiprocessing.reduction.ForkingPickler` (what starting a process uses); plain
  :mod:`pickle` copies the value of a named one, as ctypes does, and refuses an anonymous one
  in the same way.
* The mapping is never closed at exit (code that runs later may still read a value); the
  kernel frees it with the process.
* Named objects for other programs: ``Value.create(name, 'i', 0)`` makes a Value that a C
  program opens with ``mpx_value_open(name, ...)`` (``mpx_value_ptr`` is the same memory);
  ``Value.open(name)`` / ``Array.open(name)`` open one made by any language, with the typecode
  it was made with. ``Value.unlink_name(name)`` (or ``wrapper.unlink()``) removes the name.
  Named objects stay until then (``unlink_on_last_close=True``: until their last user closes
  them), pickle by name with any pickler, and are what ``name`` reports (None: anonymous).

The memory stays mapped as long as any object made from it lives (the ctypes object, a
wrapper, a memoryview or numpy array over it): there is no way to unmap it under a user.
"""

import ctypes
from ctypes import byref
from multiprocessing.reduction import ForkingPickler

from . import errors
from ._lib import MPX_VALUE_LOCK, check, error, lib, name_arg, value_p
from ._objects import _address, _assert_spawning, _fast, _flags, _open_shared_fd, _share_fd, _track

# The embedded lock of a Value is a lock of mpx.synchronize's making (its hot methods and logic).
from .synchronize import NotOwnedError, _Acquirable, _core_bases, _HotMethods, _LockCore

__all__ = [
    "Array",
    "RawArray",
    "RawValue",
    "Synchronized",
    "SynchronizedArray",
    "SynchronizedBase",
    "SynchronizedString",
    "Value",
    "synchronized",
    "typecode_to_type",
]

#: multiprocessing's table: typecode -> ctypes type.
typecode_to_type = {
    "c": ctypes.c_char,
    "u": ctypes.c_wchar,
    "b": ctypes.c_byte,
    "B": ctypes.c_ubyte,
    "h": ctypes.c_short,
    "H": ctypes.c_ushort,
    "i": ctypes.c_int,
    "I": ctypes.c_uint,
    "l": ctypes.c_long,
    "L": ctypes.c_ulong,
    "q": ctypes.c_longlong,
    "Q": ctypes.c_ulonglong,
    "f": ctypes.c_float,
    "d": ctypes.c_double,
}

# ctypes type -> typecode. Where two typecodes share one ctypes type (c_longlong is c_long on
# LP64), the first one, 'l', wins; both are 8-byte signed integers.
_type_to_typecode = {}
for _code, _t in typecode_to_type.items():
    _type_to_typecode.setdefault(_t, _code)
del _code, _t

_OK = errors.MPX_OK
_STATE = errors.MPX_E_STATE


def _typecode_of(typecode_or_type):
    """(typecode, ctypes type) for a typecode string or a ctypes type. The typecode is None
    for a ctypes type of no typecode (a Structure, c_bool, an array type, ...): stored as
    bytes."""
    if isinstance(typecode_or_type, str):
        t = typecode_to_type.get(typecode_or_type)
        if t is None:
            raise TypeError(
                "unsupported typecode %r (use one of %s)" % (typecode_or_type, " ".join(typecode_to_type))
            )
        return typecode_or_type, t
    code = _type_to_typecode.get(typecode_or_type) if isinstance(typecode_or_type, type) else None
    if code is None:
        try:
            if not isinstance(typecode_or_type, type):
                raise TypeError
            ctypes.sizeof(typecode_or_type)
        except TypeError:
            raise TypeError(
                "unsupported type %r: pass a typecode (%s) or a ctypes type"
                % (typecode_or_type, " ".join(typecode_to_type))
            ) from None
    return code, typecode_or_type


#
# The segment and the ctypes views over it
#


class _Shared:
    """Owns one mpx_value handle (one mapping of the segment). Every ctypes view made from it
    references it (``view._wrapper``), so the mapping lives until the last view is gone.

    ``ctype`` is the element type of the views and ``length`` their number: the typecode's
    type and the segment's count, or, for a type of no typecode (``bytes_stored``), the
    user's type over a segment of typecode 'B' holding ``length * sizeof(ctype)`` bytes.

    It is also the ``_wrapper`` multiprocessing's own ctypes reducer expects (it pickles as
    below and has ``create_memoryview()``), so a view pickles correctly whichever of the two
    reducers is registered for its type. A named segment pickles by name (with any pickler);
    an anonymous one (``name`` None) only to a child being started, by descriptor."""

    __slots__ = ("_h", "name", "typecode", "count", "has_lock", "ctype", "length", "bytes_stored", "_a",
                 "_holder", "_closer", "_close_at_exit", "_finalizer", "__weakref__")

    def __init__(self, h, name, ctype=None, length=None):
        self._h = h
        self._a = _address(h)
        self.name = name
        self.typecode = lib.mpx_value_typecode(h).decode("ascii")
        self.count = lib.mpx_value_count(h)
        self.has_lock = bool(lib.mpx_value_has_lock(h))
        self._set_type(ctype, length)  # before _track: if it raises, the caller closes h
        # Closed when the last view goes. Not at exit: views may still be read by code that
        # runs later, and closing unmaps the memory under them.
        _track(self, h, lib.mpx_value_close, at_exit=False)

    def _set_type(self, ctype, length):
        """Views of ``ctype`` (None: the typecode's type); ``length`` None: as many as fit."""
        natural = typecode_to_type[self.typecode]
        if ctype is None or ctype is natural:
            self.ctype, self.length, self.bytes_stored = natural, self.count, False
            return
        if _type_to_typecode.get(ctype) is not None or self.typecode != "B":
            raise TypeError("value %r holds typecode %r, not %r" % (self.name, self.typecode, ctype))
        size = ctypes.sizeof(ctype)
        if length is None:
            if size == 0 or self.count % size:
                raise ValueError("value %r holds %d bytes: not a whole number of %r (%d bytes)"
                                 % (self.name, self.count, ctype, size))
            length = self.count // size
        elif length * size > self.count:
            raise ValueError("value %r is too small for %d of %r" % (self.name, length, ctype))
        self.ctype, self.length, self.bytes_stored = ctype, length, True

    @classmethod
    def create(cls, name, typecode, count, lock, flags=0, ctype=None, length=None):
        """A new segment (``name`` None: anonymous) of ``count`` elements of ``typecode``,
        viewed as ``length`` elements of ``ctype`` (see _set_type)."""
        h = value_p()
        fl = flags | (MPX_VALUE_LOCK if lock else 0)
        if name is None:
            check(lib.mpx_value_create_anonymous(typecode.encode(), count, None, 0, fl, byref(h)))
        else:
            check(lib.mpx_value_create(name_arg(name), typecode.encode(), count, None, 0, fl, byref(h)))
        try:
            return cls(h, name, ctype, length)
        except BaseException:
            lib.mpx_value_close(h)
            raise

    @classmethod
    def open(cls, name, ctype=None):
        h = value_p()
        check(lib.mpx_value_open(name_arg(name), 0, byref(h)))
        try:
            return cls(h, name, ctype)
        except BaseException:
            lib.mpx_value_close(h)
            raise

    @classmethod
    def _from_fd(cls, fd, ctype, length):
        h = value_p()
        check(lib.mpx_value_open_fd(fd, 0, byref(h)))
        try:
            return cls(h, None, ctype, length)
        except BaseException:
            lib.mpx_value_close(h)
            raise

    def __reduce__(self):
        ctype = self.ctype if self.bytes_stored else None
        if self.name is not None:
            return (_Shared.open, (self.name, ctype)) if ctype is not None else (_Shared.open, (self.name,))
        # Anonymous: only to a child being started, by descriptor.
        return (_rebuild_shared_fd, (_share_fd(self, self.fd(), "shared ctypes (%s)" % self.ctype.__name__),
                                     ctype, self.length))

    def fd(self):
        """The segment's descriptor, owned by the handle (dup it to keep it)."""
        fd = ctypes.c_int()
        check(lib.mpx_value_fd(self._h, byref(fd)))
        return fd.value

    def view(self, array):
        """A ctypes object over the elements: the element type (array=False) or an array."""
        t = self.ctype
        if array:
            t = t * self.length
        elif self.length != 1:
            raise ValueError("value %r is an array of %d elements: open it with Array.open" % (self.name, self.length))
        ptr = lib.mpx_value_ptr(self._h)
        obj = t.from_address(ptr)
        obj._wrapper = self
        _register(t)
        return obj

    def create_memoryview(self):
        """The elements' bytes (for multiprocessing's rebuild_ctype)."""
        size = self.count * ctypes.sizeof(typecode_to_type[self.typecode])
        raw = (ctypes.c_ubyte * size).from_address(lib.mpx_value_ptr(self._h))
        raw._wrapper = self
        return memoryview(raw)

    def unlink(self):
        if self.name is None:
            raise ValueError("an anonymous shared value has no name to unlink")
        check(lib.mpx_value_unlink(name_arg(self.name)))


def _rebuild_shared_fd(dupfd, ctype, length):
    return _open_shared_fd(dupfd, lambda fd: _Shared._from_fd(fd, ctype, length))


def _rebuild_view(shared, array):
    return shared.view(array)


def _reduce_ctype(obj):
    """ForkingPickler's reducer for ctypes types that mpx shares: an mpx view travels with its
    segment (see _Shared); anything else as multiprocessing (or ctypes) would send it."""
    w = getattr(obj, "_wrapper", None)
    if isinstance(w, _Shared):
        return (_rebuild_view, (w, type(obj) is not w.ctype))
    if w is not None:
        # Lazily: only for ctypes objects of multiprocessing's own (its sharedctypes loads heap,
        # mmap and tempfile).
        from multiprocessing import sharedctypes as std_sharedctypes

        return std_sharedctypes.reduce_ctype(obj)
    return obj.__reduce__()


_registered = set()


def _register(t):
    # multiprocessing registers its reducer for the types it shares (in rebuild_ctype); ours
    # handles its objects and theirs, so register it again if theirs took over.
    if ForkingPickler._extra_reducers.get(t) is not _reduce_ctype:
        ForkingPickler.register(t, _reduce_ctype)
    _registered.add(t)


def _new_raw(name, typecode_or_type, args, array, lock, flags=0, size_or_initializer=None):
    """A ctypes view over a new segment, filled as multiprocessing fills its objects (the
    ctypes constructor's own conversions and errors apply)."""
    code, t = _typecode_of(typecode_or_type)
    if not array:
        count = 1
    elif isinstance(size_or_initializer, int) and not isinstance(size_or_initializer, bool):
        count = size_or_initializer
        if count < 0:
            raise ValueError("array size must be >= 0, not %d" % count)
    else:
        count = len(size_or_initializer)
    if code is None:
        # No typecode: bytes (typecode 'B') viewed through the type.
        shared = _Shared.create(name, "B", count * ctypes.sizeof(t), lock, flags, t, count)
    else:
        shared = _Shared.create(name, code, count, lock, flags)
    obj = shared.view(array)
    try:
        if not array:
            if args:
                obj.__init__(*args)
        elif count and not isinstance(size_or_initializer, int):
            obj.__init__(*size_or_initializer)
    except BaseException:
        if name is not None:
            try:
                shared.unlink()
            except OSError:
                pass
        raise
    return obj


def _open_type(typecode_or_type):
    return None if typecode_or_type is None else _typecode_of(typecode_or_type)[1]


def _wrap(obj, lock, had_embedded):
    """multiprocessing's lock= rules: False -> raw; True/None -> the embedded RLock; an object
    with acquire -> that object."""
    if lock is False:
        return obj
    if lock is True or lock is None:
        if not had_embedded:
            raise ValueError("this value has no lock of its own: pass lock=<a lock> or lock=False")
        lock = _ValueLock(obj._wrapper)
    elif not hasattr(lock, "acquire"):
        raise AttributeError("%r has no method 'acquire'" % lock)
    return synchronized(obj, lock)


#
# Factories with multiprocessing's names
#


class RawValue:
    """``RawValue(typecode_or_type, *args)``: a ctypes object in shared memory (no lock)."""

    def __new__(cls, typecode_or_type, *args):
        return _new_raw(None, typecode_or_type, args, False, False)

    @staticmethod
    def create(name, typecode_or_type, *args, unlink_on_last_close=False):
        """A named raw value other programs open as ``name``."""
        return _new_raw(name, typecode_or_type, args, False, False, _flags(unlink_on_last_close))

    @staticmethod
    def open(name, typecode_or_type=None):
        """The raw view of the value ``name`` (made by any language). ``typecode_or_type``:
        the ctypes type a value of bytes (typecode 'B') was made with, e.g. a Structure."""
        return _Shared.open(name, _open_type(typecode_or_type)).view(False)

    @staticmethod
    def unlink_name(name):
        """Removes the name ``name``."""
        check(lib.mpx_value_unlink(name_arg(name)))


class RawArray:
    """``RawArray(typecode_or_type, size_or_initializer)``: a ctypes array in shared memory."""

    def __new__(cls, typecode_or_type, size_or_initializer):
        return _new_raw(None, typecode_or_type, (), True, False, 0, size_or_initializer)

    @staticmethod
    def create(name, typecode_or_type, size_or_initializer, *, unlink_on_last_close=False):
        return _new_raw(name, typecode_or_type, (), True, False, _flags(unlink_on_last_close), size_or_initializer)

    @staticmethod
    def open(name, typecode_or_type=None):
        return _Shared.open(name, _open_type(typecode_or_type)).view(True)

    unlink_name = RawValue.unlink_name


class Value:
    """``Value(typecode_or_type, *args, lock=True)``: a shared value, synchronized unless
    ``lock=False`` (see the module's documentation)."""

    def __new__(cls, typecode_or_type, *args, lock=True, ctx=None):
        embedded = lock is True or lock is None
        obj = _new_raw(None, typecode_or_type, args, False, embedded)
        return _wrap(obj, lock, embedded)

    @staticmethod
    def create(name, typecode_or_type, *args, lock=True, unlink_on_last_close=False):
        """A named value (C: ``mpx_value_open(name, ...)``). ``lock=True`` embeds the recursive
        lock that C takes with ``mpx_value_acquire``."""
        embedded = lock is True or lock is None
        obj = _new_raw(name, typecode_or_type, args, False, embedded, _flags(unlink_on_last_close))
        return _wrap(obj, lock, embedded)

    @staticmethod
    def open(name, lock=None, typecode_or_type=None):
        """Opens the value ``name``. ``lock=None``: synchronized by its embedded lock if it has
        one, else raw; ``lock=False``: raw; a lock object: synchronized by that lock.
        ``typecode_or_type``: as for RawValue.open."""
        shared = _Shared.open(name, _open_type(typecode_or_type))
        obj = shared.view(False)
        if lock is None and not shared.has_lock:
            return obj
        return _wrap(obj, lock, shared.has_lock)

    unlink_name = RawValue.unlink_name


class Array:
    """``Array(typecode_or_type, size_or_initializer, *, lock=True)``: a shared array,
    synchronized unless ``lock=False`` (see the module's documentation)."""

    def __new__(cls, typecode_or_type, size_or_initializer, *, lock=True, ctx=None):
        embedded = lock is True or lock is None
        obj = _new_raw(None, typecode_or_type, (), True, embedded, 0, size_or_initializer)
        return _wrap(obj, lock, embedded)

    @staticmethod
    def create(name, typecode_or_type, size_or_initializer, *, lock=True, unlink_on_last_close=False):
        embedded = lock is True or lock is None
        obj = _new_raw(name, typecode_or_type, (), True, embedded, _flags(unlink_on_last_close), size_or_initializer)
        return _wrap(obj, lock, embedded)

    @staticmethod
    def open(name, lock=None, typecode_or_type=None):
        """Opens the array ``name`` (lock and typecode_or_type as for Value.open)."""
        shared = _Shared.open(name, _open_type(typecode_or_type))
        obj = shared.view(True)
        if lock is None and not shared.has_lock:
            return obj
        return _wrap(obj, lock, shared.has_lock)

    unlink_name = RawValue.unlink_name


#
# The embedded lock
#

_value_acquire = _fast("mpx_value_acquire", blocking=True)
_value_try = _fast("mpx_value_acquire", blocking=False)
_value_release = _fast("mpx_value_release", blocking=False)


def _rebuild_value_lock(shared):
    return _ValueLock(shared)


class _ValueLock(*_core_bases(_HotMethods, _Acquirable)):
    """The recursive lock embedded in a Value/Array segment, with RLock's API: what
    ``get_lock()`` returns for ``lock=True``. acquire/release/__enter__/__exit__ come from the
    accelerator's C base class (or, without it, from _HotMethods); the logic is _Acquirable's."""

    # With the accelerator the handle's address (_a) lives in the C base.
    __slots__ = ("_shared",) if _LockCore is not None else ("_shared", "_a")

    _acq = staticmethod(_value_acquire)
    _try = staticmethod(_value_try)
    _rel = staticmethod(_value_release)

    def __init__(self, shared):
        self._shared = shared
        self._a = shared._a
        self._bind_hot()

    def _check(self, st):
        if st != _OK:
            raise error(st)

    def _release_failed(self, st):
        if st == _STATE:
            raise NotOwnedError("attempt to release recursive lock not owned by thread")
        raise error(st)

    def __reduce__(self):
        return (_rebuild_value_lock, (self._shared,))

    def __repr__(self):
        return "<ValueLock of %r>" % (self._shared.name,)


#
# Synchronized wrappers (multiprocessing's names)
#


def _rebuild_synchronized(shared, array, lock):
    return synchronized(shared.view(array), lock)


def synchronized(obj, lock=None, ctx=None):
    """A synchronized wrapper for an mpx ctypes object (RawValue/RawArray), with ``lock``
    (None: the object's embedded lock, if it has one)."""
    if isinstance(obj, SynchronizedBase):
        raise TypeError("object already synchronized")
    shared = getattr(obj, "_wrapper", None)
    if not isinstance(shared, _Shared):
        raise TypeError("mpx.sharedctypes.synchronized needs an object made by mpx (RawValue, RawArray)")
    if lock is None:
        if not shared.has_lock:
            raise ValueError("this value has no lock of its own: pass a lock")
        lock = _ValueLock(shared)
    # Elements of a typecode are read and written with one atomic access without the lock;
    # others (bytes_stored: c_bool, structures, ...) take the lock as multiprocessing does.
    locked = shared.bytes_stored
    if isinstance(obj, ctypes._SimpleCData):
        return (_LockedSynchronized if locked else Synchronized)(obj, lock)
    if isinstance(obj, ctypes.Array):
        if obj._type_ is ctypes.c_char:
            return SynchronizedString(obj, lock)
        return (_LockedSynchronizedArray if locked else SynchronizedArray)(obj, lock)
    return _synchronized_class(type(obj))(obj, lock)


_class_cache = {}


def _synchronized_class(cls):
    """multiprocessing's wrapper class for a Structure or Union ``cls``: SynchronizedBase with a
    property per field of ``cls._fields_`` that reads or writes it under the lock."""
    scls = _class_cache.get(cls)
    if scls is None:
        props = {f[0]: _locked_property(f[0]) for f in getattr(cls, "_fields_", ())}
        scls = _class_cache[cls] = type("Synchronized" + cls.__name__, (SynchronizedBase,), props)
    return scls


def _locked_property(field):
    def get(self):
        with self._lock:
            return getattr(self._obj, field)

    def set(self, value):
        with self._lock:
            setattr(self._obj, field, value)

    return property(get, set)


class SynchronizedBase:
    """A shared ctypes object with a lock: ``get_obj()``, ``get_lock()``, ``acquire()``,
    ``release()``, the context manager, ``name`` and ``unlink()``."""

    def __init__(self, obj, lock):
        self._obj = obj
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def __reduce__(self):
        # With the segment (see _Shared); the embedded lock comes with it.
        if self._obj._wrapper.name is None:
            _assert_spawning(self)  # naming the wrapper; the segment itself travels by descriptor
        lock = None if isinstance(self._lock, _ValueLock) else self._lock
        return (_rebuild_synchronized, (self._obj._wrapper, type(self._obj) is not self._obj._wrapper.ctype, lock))

    def get_obj(self):
        """The ctypes object (its memory is the shared memory: zero-copy)."""
        return self._obj

    def get_lock(self):
        return self._lock

    @property
    def name(self):
        """The segment's name (how C programs open it)."""
        return self._obj._wrapper.name

    @property
    def typecode(self):
        return self._obj._wrapper.typecode

    def unlink(self):
        """Removes the name (processes that have it open keep using it)."""
        self._obj._wrapper.unlink()

    def __repr__(self):
        return "<%s wrapper for %s>" % (type(self).__name__, self._obj)


class Synchronized(SynchronizedBase):
    @property
    def value(self):
        return self._obj.value

    @value.setter
    def value(self, v):
        self._obj.value = v


class _LockedSynchronized(Synchronized):
    """Synchronized over a type of no typecode (c_bool, ...): ``value`` under the lock."""

    @property
    def value(self):
        with self._lock:
            return self._obj.value

    @value.setter
    def value(self, v):
        with self._lock:
            self._obj.value = v


class SynchronizedArray(SynchronizedBase):
    def __len__(self):
        return len(self._obj)

    def __getitem__(self, i):
        if isinstance(i, slice):
            with self:
                return self._obj[i]
        return self._obj[i]

    def __setitem__(self, i, value):
        if isinstance(i, slice):
            with self:
                self._obj[i] = value
        else:
            self._obj[i] = value

    def __iter__(self):
        # A consistent snapshot, taken under the lock.
        return iter(self[:])


class _LockedSynchronizedArray(SynchronizedArray):
    """SynchronizedArray over elements of no typecode (structures, ...): every access under
    the lock, as multiprocessing's."""

    def __getitem__(self, i):
        with self._lock:
            return self._obj[i]

    def __setitem__(self, i, value):
        with self._lock:
            self._obj[i] = value


# They show as multiprocessing's classes do (its wrappers always take the lock).
_LockedSynchronized.__name__ = _LockedSynchronized.__qualname__ = "Synchronized"
_LockedSynchronizedArray.__name__ = _LockedSynchronizedArray.__qualname__ = "SynchronizedArray"


class SynchronizedString(SynchronizedArray):
    @property
    def value(self):
        with self:
            return self._obj.value

    @value.setter
    def value(self, v):
        with self:
            self._obj.value = v

    @property
    def raw(self):
        with self:
            return self._obj.raw

    @raw.setter
    def raw(self, v):
        with self:
            self._obj.raw = v
