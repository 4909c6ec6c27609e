"""Process-shared synchronization primitives with the API of :mod:`multiprocessing.synchronize`.

``Lock``, ``RLock``, ``Semaphore``, ``BoundedSemaphore``, ``Condition``, ``Event`` and ``Barrier``
behave as multiprocessing's (and threading's): ``acquire(block=True, timeout=None)`` returns
True or False, context managers, ``Condition.wait/wait_for/notify/notify_all``, ``Event.wait``
returning the flag, ``Barrier.wait`` returning the arrival index and raising
``threading.BrokenBarrierError``. Each one is an mpx object in shared memory; one made by name
(``Lock.create(name)``) is the same lock, semaphore, event or barrier that C, C++ and Rust
programs using mpx open by that name.

Errors, as multiprocessing raises them:

* ``Lock.release()`` / ``BoundedSemaphore.release()`` past the maximum: ValueError ("semaphore
  or lock released too many times").
* ``RLock.release()`` by a thread that does not own it, ``Condition.wait()``/``notify()``
  without the lock: :class:`NotOwnedError`, which is both an AssertionError (what
  multiprocessing raises) and a RuntimeError (what threading raises).
* Opening a name that holds another kind of object: mpx.KindError; no such name:
  FileNotFoundError; a name taken: FileExistsError.
* Using an object after ``close()``: ValueError.
* Timeouts follow multiprocessing: ``None`` waits without limit, a negative timeout is 0 (try
  once), ``block=False`` ignores the timeout.

Owner death (mpx's addition): when a process dies holding a Lock or RLock (or the lock of a
Condition or of a Value), the next acquirer gets the lock instead of hanging. ``acquire()``
then returns True, as for any acquisition, and emits an :class:`OwnerDiedWarning` (a
RuntimeWarning) with the library's message naming the dead process: the data the lock protects
may be half-updated. Catch it with ``warnings.catch_warnings()`` or turn it into an exception
with ``warnings.simplefilter("error", mpx.OwnerDiedWarning)``. Python's default filter shows a
warning once per code location.

Semaphores have no owner; ``Semaphore(value, undo=True)`` gives back the permits of a process
that dies holding them (an undo table of 128 processes; see docs/SYNC.md).

Sharing with other processes:

* Objects made without a name (``mpx.Lock()``) are anonymous, as multiprocessing's: a memfd,
  nothing in /dev/shm, gone when the last process holding it ends, however it ends (killed
  too). They travel to children as multiprocessing's do: a forked child inherits the object;
  for spawn and forkserver (mpx's and multiprocessing's) an object pickled while the child is
  being started (a Process argument) goes with its descriptor, and the child opens the same
  object. Pickling one at any other time (through a queue or a pipe) raises RuntimeError, as
  multiprocessing does ("... should only be shared between processes through inheritance").
  Their ``name`` is None. Handles are closed when collected, by ``close()``, and at the exit of
  the main process and of every child multiprocessing or mpx starts.
* Named objects for other programs: ``Lock.create(name)`` makes ``/dev/shm/mpx.<name>``, which a
  C program opens with ``mpx_lock_open(name, ...)``; ``Lock.open(name)`` opens one made by any
  language. Named objects stay until ``unlink()`` (or ``Lock.unlink_name(name)``); pass
  ``unlink_on_last_close=True`` to ``create`` to have them removed with their last user.
* ``from_fd(fd)`` opens an object from an inherited descriptor (``.fd``), e.g. one made by C.

``close()`` frees this process's handle (the object itself lives on for others); the garbage
collector does it too. Closing an object while another thread of this process is inside one of
its calls is safe: the call in progress finishes against the still-open handle (a wait ends
after its current slice, at most 0.1 s, with ValueError), the handle is freed when the last such
call returns, and any call that starts after ``close()`` raises ValueError. A ``release()``
after ``close()`` still releases while another thread's call keeps the handle open, so that a
thread holding the lock across the close() cannot leave a waiter stuck.

Blocking calls release the GIL. ``Lock``, ``RLock``, ``Semaphore``, ``Event`` and
``Condition`` waits run in slices of 0.1 s so that signal handlers (Ctrl-C) run while they
wait; ``Condition.wait`` resumes its place between slices (mpx_condition_wait_part: no notify
is lost or taken twice, and KeyboardInterrupt leaves it with the lock held, as threading's).
``Barrier.wait`` arrives once and waits in parts too (mpx_barrier_wait_part, the same arrival
index as one call); KeyboardInterrupt between the parts gives the wait up, which breaks the
barrier for the other parties (as a timeout does), and propagates.
With the C accelerator (mpx/_speedups.c), ``acquire``, ``release``, ``__enter__`` and
``__exit__`` of Lock, RLock, the semaphores and a Value's lock are C methods, as
multiprocessing's are; their first attempt keeps the GIL for at most the library's brief spin
(a few µs, never a sleep) before the wait releases it.
"""

import operator
import threading
import time
import warnings
from ctypes import byref, c_int, c_int64, c_uint32, c_uint64, c_void_p
from multiprocessing import process as std_process

from . import _lib as _lib_module
from . import errors
from . import process as mpx_process
from ._lib import (
    MPX_SEM_UNDO,
    MPX_SEM_VALUE_MAX,
    barrier_p,
    check,
    condition_p,
    error,
    event_p,
    last_error,
    lib,
    lock_p,
    name_arg,
    rlock_p,
    semaphore_p,
)
from ._objects import (
    _SLICE_NS,
    _SPEEDUPS,
    _T0,
    _TSLICE,
    _address,
    _deadline,
    _decode_name,
    _fast,
    _fd_arg,
    _flags,
    _handle_after_close,
    _open_shared_fd,
    _share_fd,
    _sliced,
    _step,
    _timeout_ns,
    _tns,
    _track,
    _untrack,
    _wait_timeout_ns,
)

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Condition",
    "Event",
    "Lock",
    "NotOwnedError",
    "OwnerDiedWarning",
    "RLock",
    "SEM_VALUE_MAX",
    "Semaphore",
]

SEM_VALUE_MAX = MPX_SEM_VALUE_MAX

#: Raised by Barrier.wait when the barrier is or becomes broken (abort, reset, a timeout):
#: threading's class itself, as multiprocessing.Barrier raises it.
BrokenBarrierError = threading.BrokenBarrierError

_OK = errors.MPX_OK
_TIMEOUT = errors.MPX_E_TIMEOUT
_OWNER_DIED = errors.MPX_E_OWNER_DIED
_STATE = errors.MPX_E_STATE
_INVALID = errors.MPX_E_INVALID
_BROKEN = errors.MPX_E_BROKEN

# The accelerator's first attempt keeps the GIL; only if it times out is the GIL released for a
# wait in slices. Its timeout is 1 ns: the library takes a free lock or permit with one CAS, or
# spins its short while (about 2 µs here) before the deadline counts, and never sleeps. (A try,
# timeout 0, would not spin, but a Lock's try checks a holder's liveness in /proc, and for the
# semaphore handoff the spin measured better: 0.66-0.84 µs median against 1.2-47 µs.)
_FIRST_NS = 1


class OwnerDiedWarning(RuntimeWarning):
    """A lock was acquired from a process that died holding it. The acquisition succeeded (the
    caller holds the lock); the data the lock protects may be inconsistent."""


class NotOwnedError(AssertionError, RuntimeError):
    """An RLock released, or a Condition waited on or notified, by a thread that does not hold
    the lock. An AssertionError, as multiprocessing raises, and a RuntimeError, as threading
    raises, so either ``except`` catches it."""


def _warn_owner_died(stacklevel=3):
    # Read at once: the message belongs to the call that just returned on this thread.
    warnings.warn(OwnerDiedWarning(last_error() or "acquired from a holder that died"), stacklevel=stacklevel)


def _rebuild(cls, name, state):
    """Unpickles a sync object: opens it by name in this process."""
    return cls._open_for_pickle(name, state)


def _rebuild_fd(cls, dupfd, state):
    """Unpickles an anonymous sync object in a child being started: opens the descriptor the
    parent handed over."""
    return _open_shared_fd(dupfd, lambda fd: cls._from_fd_for_pickle(fd, state))


class _SyncObject:
    """What every primitive shares: a C handle, its name, close/unlink/fd, pickling by name."""

    _kind = None  # the C ABI's kind: "lock", "rlock", ...
    _h = None
    _a = None
    _name = None

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def _c(cls, op):
        return getattr(lib, "mpx_%s_%s" % (cls._kind, op))

    @classmethod
    def _new(cls, name, create, flags=0):
        """Creates the named C object with ``create(name_bytes, flags, out)``; returns the
        Python object."""
        h = cls._htype()
        check(create(name_arg(name), flags, byref(h)))
        return cls._adopt(h, name)

    @classmethod
    def _new_anonymous(cls, create, *args):
        """Creates an anonymous C object with ``create(*args, out)`` (what an object made
        without a name is: it goes with the last process holding it, however that ends)."""
        h = cls._htype()
        check(create(*args, byref(h)))
        return cls._adopt(h, None)

    @classmethod
    def _adopt(cls, h, name):
        self = _alloc(cls)
        self._h = h
        self._a = _address(h)
        self._name = name
        _track(self, h, cls._c("close"))
        return self

    @classmethod
    def _open_handle(cls, name):
        h = cls._htype()
        check(cls._c("open")(name_arg(name), 0, byref(h)))
        return h

    @classmethod
    def open(cls, name):
        """Opens the existing object ``name`` (made by any language). FileNotFoundError if there
        is none, mpx.KindError if it is another kind of object."""
        return cls._adopt(cls._open_handle(name), name)

    @classmethod
    def from_fd(cls, fd):
        """Opens the object behind an inherited descriptor (duplicated: the caller keeps ``fd``)."""
        h = cls._htype()
        check(cls._c("open_fd")(_fd_arg(fd), 0, byref(h)))
        return cls._adopt(h, _decode_name(cls._c("name")(h)))

    @classmethod
    def _open_for_pickle(cls, name, state):
        return cls.open(name)

    @classmethod
    def _from_fd_for_pickle(cls, fd, state):
        return cls.from_fd(fd)

    @classmethod
    def unlink_name(cls, name):
        """Removes the name ``name`` (processes that have the object open keep using it)."""
        check(cls._c("unlink")(name_arg(name)))

    # -- common API ------------------------------------------------------------------------

    @property
    def name(self):
        """The object's name (as C programs open it). An object opened with from_fd learns it
        from the segment's header while the name still refers to it; None for an anonymous one."""
        return self._name

    @property
    def fd(self):
        """The segment's descriptor, owned by this object (dup it to keep it)."""
        fd = c_int()
        self._check(self._c("fd")(self._h, byref(fd)))
        return fd.value

    @property
    def closed(self):
        return not self._h  # a closed handle is NULL

    def close(self):
        """Frees this process's handle. Never releases a lock and never removes the name
        (except a generated one, when this was its last user); another process (or this one,
        by opening it again) keeps using the object."""
        _untrack(self)

    def unlink(self):
        """Removes the object's name: new opens fail with FileNotFoundError; processes that have
        it open keep using it."""
        if self._name is None:
            raise ValueError("%s has no name to unlink" % self._what())
        check(self._c("unlink")(name_arg(self._name)))

    def __reduce__(self):
        if not self._h:
            raise ValueError("cannot pickle a closed %s" % type(self).__name__)
        if self._name is None:
            # Anonymous: only to a child being started, by descriptor.
            return (_rebuild_fd, (type(self), _share_fd(self, self.fd), self._pickle_state()))
        return (_rebuild, (type(self), self._name, self._pickle_state()))

    def _pickle_state(self):
        return None

    # -- errors ----------------------------------------------------------------------------

    def _what(self):
        return "%s %r" % (type(self).__name__, self._name) if self._name else type(self).__name__

    def _closed_error(self):
        return ValueError("%s is closed" % self._what())

    def _live(self):
        """The Handle for a call (the call holds it; see mpx._objects), or ValueError once closed."""
        h = self._h
        if h is None:
            raise self._closed_error()
        return h

    def _check(self, status, allow=()):
        """check() that reports a closed object as such rather than as a NULL argument."""
        if status == _OK or status in allow:
            return status
        if not self._h:
            raise self._closed_error()
        raise error(status)


#
# Lock
#

_lock_acquire = _fast("mpx_lock_acquire", blocking=True)
_lock_try = _fast("mpx_lock_acquire", blocking=False)
_lock_release = _fast("mpx_lock_release", blocking=False)


# With the accelerator, lock-like classes get their hot methods (acquire, release, __enter__,
# __exit__) from its C base class LockCore, as multiprocessing's SemLock has them: in `with
# lock:` a Python method's frames would run while the lock is held, lengthening every critical
# section. LockCore comes first in the MRO, so its methods shadow the Python ones of
# _HotMethods, which serve without the accelerator; both hand every outcome except "acquired",
# "released" and "a try failed" to the Python methods below (_acquired_slow, _release_failed,
# _acquire_py), which hold the logic.
# getattr: a stale accelerator built before LockCore (no `make pyext` since) is ignored here.
_LockCore = getattr(_lib_module._speedups, "LockCore", None) if _SPEEDUPS else None


def _core_bases(*bases):
    return ((_LockCore,) if _LockCore is not None else ()) + bases


def _alloc(cls):
    """A new uninitialised instance (LockCore's __new__ when it is a base)."""
    return _LockCore.__new__(cls) if _LockCore is not None and issubclass(cls, _LockCore) else object.__new__(cls)


class _HotMethods:
    """acquire/release/context manager in Python, over the entry points ``_acq(a, t)``,
    ``_try(a, 0)`` and ``_rel(a)`` of the class: what runs without the accelerator."""

    __slots__ = ()

    def acquire(self, block=True, timeout=None):
        """Acquires: True, or False if ``timeout`` seconds ran out (``block=False``: try once)."""
        if block and timeout is None:
            # The whole uncontended acquisition is this one call.
            st = self._acq(self._a, _TSLICE)
            return True if st == _OK else self._acquired_slow(st, 1)
        return self._acquire_py(block, timeout, _frames=1)

    def __enter__(self):
        # One slice first: the whole uncontended acquisition is this one call.
        st = self._acq(self._a, _TSLICE)
        return True if st == _OK else self._acquired_slow(st, 1)

    def __exit__(self, *exc):
        st = self._rel(self._a)
        if st != _OK:
            self._release_failed(st)

    def release(self):
        st = self._rel(self._a)
        if st != _OK:
            self._release_failed(st)


class _Acquirable:
    """The logic behind the hot methods (C or Python): waiting on, timeouts, outcomes. ``_frames``:
    Python frames between the caller and these methods (0 from LockCore's C methods), so that a
    warning points at the caller's line either way."""

    __slots__ = ()

    _acq = None  # f(a, timeout_ns): waits, releasing the GIL
    _try = None  # f(a, 0): tries once, keeping the GIL
    _rel = None  # f(a)
    _rel_blocking = False  # whether a release may wait (then the GIL is released)
    _first_ns = _FIRST_NS  # the timeout of LockCore's first, GIL-held attempt (None: none)

    def _bind_hot(self, release=None):
        """Gives LockCore its C functions (``release``: a fast call for ``_rel``'s function)."""
        if _LockCore is not None:
            first = -1 if self._first_ns is None else self._first_ns
            self._bind(self._acq, release or self._rel, _SLICE_NS, first, self._rel_blocking)

    def _acquire_py(self, block=True, timeout=None, *, _frames=0):
        if block and timeout is None:
            st = self._acq(self._a, _TSLICE)
            return True if st == _OK else self._acquired_slow(st, _frames + 1)
        ns = _timeout_ns(block, timeout)
        st = self._try(self._a, _T0) if ns == 0 else _sliced(self._acq, self, ns)
        return self._outcome(st, _frames + 1)

    def _acquired_slow(self, st, _frames=0):
        """After a first wait (one slice) or a try that did not return MPX_OK: a timeout of a
        wait goes on waiting without limit, in slices. True, or raises."""
        if st == _TIMEOUT:
            st = _sliced(self._acq, self, -1)
        return self._outcome(st, _frames + 1)

    def _outcome(self, st, frames):
        if st == _OK:
            return True
        if st == _TIMEOUT:
            return False
        if st == _OWNER_DIED:
            # Levels: 1 _warn_owner_died, 2 _outcome, then ``frames`` frames, then the caller.
            _warn_owner_died(stacklevel=3 + frames)
            return True
        self._check(st)

    def _release_failed(self, st):
        self._check(st)

    def _release_closed(self, st, rel=None):
        """After a release that failed because close() came first: releases through the handle
        if a call in progress keeps it (see _handle_after_close); the status."""
        if st == _INVALID and self._a is None:
            h = _handle_after_close(self)
            if h is not None:
                return (rel or self._rel)(h)
        return st


class _LockBase(*_core_bases(_HotMethods, _Acquirable, _SyncObject)):
    """acquire/release/context manager over a lock-like C kind (Lock, RLock). ``acquire(block=True,
    timeout=None)``: True, or False if ``timeout`` seconds ran out (``block=False``: try once). A
    lock taken from a holder that died is acquired too (True, with an OwnerDiedWarning)."""

    @classmethod
    def _adopt(cls, h, name):
        self = super()._adopt(h, name)
        self._bind_hot()
        return self


class Lock(_LockBase):
    """A non-recursive lock, as multiprocessing.Lock: any process or thread may release it.

    ``Lock()`` makes a new one (shared with children of every start method);
    ``Lock.create(name)`` / ``Lock.open(name)`` share one by name with other programs."""

    _kind = "lock"
    _htype = lock_p
    _acq = staticmethod(_lock_acquire)
    _try = staticmethod(_lock_try)
    _rel = staticmethod(_lock_release)

    def __new__(cls, *, ctx=None):
        return cls._new_anonymous(lib.mpx_lock_create_anonymous)

    def __init__(self, *, ctx=None):
        pass

    @classmethod
    def create(cls, name, *, unlink_on_last_close=False):
        """Creates the named lock ``name`` (free). FileExistsError if the name is taken."""
        return cls._new(name, lib.mpx_lock_create, _flags(unlink_on_last_close))

    def _release_failed(self, st):
        st = self._release_closed(st)
        if st == _OK:
            return
        if st == _STATE:
            raise ValueError("semaphore or lock released too many times")
        self._check(st)

    def locked(self):
        """Whether some process holds the lock now."""
        return bool(lib.mpx_lock_is_locked(self._live()))

    def _is_mine(self):
        return bool(lib.mpx_lock_is_mine(self._live()))

    def __repr__(self):
        try:
            if not self._h:
                owner = "closed"
            elif self._is_mine():
                owner = _current_name()
            elif not self.locked():
                owner = "None"
            else:
                owner = "SomeOtherProcess"
        except Exception:
            owner = "unknown"
        return "<%s(owner=%s)>" % (type(self).__name__, owner)


_rlock_acquire = _fast("mpx_rlock_acquire", blocking=True)
_rlock_try = _fast("mpx_rlock_acquire", blocking=False)
_rlock_release = _fast("mpx_rlock_release", blocking=False)


class RLock(_LockBase):
    """A recursive lock, as multiprocessing.RLock: owned by one thread of one process, which may
    acquire it again; only the owner releases it (:class:`NotOwnedError` otherwise)."""

    _kind = "rlock"
    _htype = rlock_p
    _acq = staticmethod(_rlock_acquire)
    _try = staticmethod(_rlock_try)
    _rel = staticmethod(_rlock_release)

    def __new__(cls, *, ctx=None):
        return cls._new_anonymous(lib.mpx_rlock_create_anonymous)

    def __init__(self, *, ctx=None):
        pass

    @classmethod
    def create(cls, name, *, unlink_on_last_close=False):
        """Creates the named recursive lock ``name`` (free)."""
        return cls._new(name, lib.mpx_rlock_create, _flags(unlink_on_last_close))

    def _release_failed(self, st):
        st = self._release_closed(st)
        if st == _OK:
            return
        if st == _STATE:
            raise NotOwnedError("attempt to release recursive lock not owned by thread")
        self._check(st)

    def _count(self):
        """Levels the calling thread holds (0 if it is not the owner)."""
        return lib.mpx_rlock_depth(self._live())

    def _is_mine(self):
        return self._count() > 0

    def locked(self):
        return bool(lib.mpx_rlock_is_locked(self._live()))

    def __repr__(self):
        try:
            if not self._h:
                name, count = "closed", 0
            elif self._is_mine():
                name, count = _current_name(), self._count()
            elif not self.locked():
                name, count = "None", 0
            else:
                name, count = "SomeOtherProcess", "nonzero"
        except Exception:
            name, count = "unknown", "unknown"
        return "<%s(%s, %s)>" % (type(self).__name__, name, count)


def _current_name():
    try:
        name = mpx_process.current_process().name
    except Exception:
        name = std_process.current_process().name
    if threading.current_thread().name != "MainThread":
        name += "|" + threading.current_thread().name
    return name


#
# Semaphores
#

_sem_acquire = _fast("mpx_semaphore_acquire", blocking=True)
_sem_try = _fast("mpx_semaphore_acquire", blocking=False)
_sem_release = _fast("mpx_semaphore_release", blocking=False)
# An undo semaphore's release may wait for its small guard lock: let other threads run.
_sem_release_blocking = _fast("mpx_semaphore_release", blocking=True)


class Semaphore(*_core_bases(_HotMethods, _Acquirable, _SyncObject)):
    """A counting semaphore, as multiprocessing.Semaphore(value=1).

    ``undo=True`` (mpx's addition) gives back the permits of a process that dies holding them,
    for semaphores used as resource limits; :meth:`reclaim` does it at once."""

    _kind = "semaphore"
    _htype = semaphore_p
    _acq = staticmethod(_sem_acquire)
    _try = staticmethod(_sem_try)
    _max = 0  # 0: unbounded (up to SEM_VALUE_MAX)

    def __new__(cls, value=1, *, undo=False, ctx=None):
        return cls._make(None, value, undo, 0)

    def __init__(self, value=1, *, undo=False, ctx=None):
        pass

    @classmethod
    def _make(cls, name, value, undo, flags):
        value = cls._check_value(value)
        maximum = cls._bound(value)
        flags |= MPX_SEM_UNDO if undo else 0
        if name is None:
            return cls._new_anonymous(lib.mpx_semaphore_create_anonymous, value, maximum, flags)
        return cls._new(name, lambda n, f, out: lib.mpx_semaphore_create(n, value, maximum, f, out), flags)

    @staticmethod
    def _check_value(value):
        value = operator.index(value)
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        if value > SEM_VALUE_MAX:
            raise ValueError("semaphore initial value %d exceeds SEM_VALUE_MAX (%d)" % (value, SEM_VALUE_MAX))
        return value

    @classmethod
    def _bound(cls, value):
        return 0

    @classmethod
    def create(cls, name, value=1, *, undo=False, unlink_on_last_close=False):
        """Creates the named semaphore ``name`` with ``value`` permits."""
        return cls._make(name, value, undo, _flags(unlink_on_last_close))

    @classmethod
    def _adopt(cls, h, name):
        self = super()._adopt(h, name)
        self._undo = bool(lib.mpx_semaphore_is_undo(h))
        # An undo semaphore's acquire and release may wait for its small guard lock: let other
        # threads run (no GIL-held first attempt, releases without the GIL).
        self._rel_blocking = self._undo
        self._first_ns = None if self._undo else _FIRST_NS
        self._rel = _sem_release_blocking if self._undo else _sem_release
        self._bind_hot(_sem_release)
        return self

    @classmethod
    def open(cls, name):
        """Opens the semaphore ``name``. A BoundedSemaphore opened as a Semaphore still refuses
        releases past its bound (the bound is the object's)."""
        return super().open(name)

    # acquire(block=True, timeout=None): takes a permit: True, or False if ``timeout`` seconds ran
    # out (``block=False``: try once). With undo, mpx.MpxError (MPX_E_FULL) if 128 other live
    # processes hold permits. release(): gives back a permit; ValueError past the maximum
    # (BoundedSemaphore). Both from _HotMethods / LockCore.

    def _release_failed(self, st):
        st = self._release_closed(st)
        if st == _OK:
            return
        if st == _STATE:
            raise ValueError("semaphore or lock released too many times")
        self._check(st)

    def get_value(self):
        """Permits available now."""
        if not self._h:
            raise self._closed_error()
        return lib.mpx_semaphore_get_value(self._h)

    @property
    def undo(self):
        """Whether the permits of dead processes come back."""
        return self._undo

    @property
    def maxvalue(self):
        """The bound (BoundedSemaphore) or SEM_VALUE_MAX."""
        return lib.mpx_semaphore_max_value(self._h)

    def reclaim(self):
        """Undo semaphores: gives back now the permits of processes that died holding them and
        returns how many came back (0 without undo). Waiters do this by themselves."""
        n = c_uint32()
        self._check(lib.mpx_semaphore_reclaim(self._h, byref(n)))
        return n.value

    def __repr__(self):
        try:
            value = self.get_value()
        except Exception:
            value = "unknown"
        return "<%s(value=%s)>" % (type(self).__name__, value)


class BoundedSemaphore(Semaphore):
    """A semaphore whose value never exceeds its initial value, as
    multiprocessing.BoundedSemaphore: a release past it raises ValueError and changes nothing."""

    def __new__(cls, value=1, *, undo=False, ctx=None):
        return cls._make(None, value, undo, 0)

    @classmethod
    def _bound(cls, value):
        if value == 0:
            # The C ABI reads a maximum of 0 as "unbounded"; a bound of 0 admits no release.
            raise ValueError("a BoundedSemaphore needs an initial value of at least 1")
        return value

    def __repr__(self):
        try:
            value = self.get_value()
        except Exception:
            value = "unknown"
        return "<%s(value=%s, maxvalue=%s)>" % (type(self).__name__, value, self.maxvalue if self._h else "unknown")


#
# Condition
#

_cond_wait = _fast("mpx_condition_wait", blocking=True)
# A wait longer than a slice goes in parts (mpx_condition_wait_part): (handle, ns, ticket).
if _SPEEDUPS:
    _cond_wait_part = _lib_module.fast("mpx_condition_wait_part", "pqo")
else:
    _cond_wait_part_c = _lib_module.entry("mpx_condition_wait_part", True, [c_void_p, c_int64, c_void_p])

    def _cond_wait_part(h, ns, ticket):
        return _cond_wait_part_c(h, ns, byref(ticket))
_cond_wait_end_c = _lib_module.entry("mpx_condition_wait_end", False, [c_void_p, c_void_p])
_cond_acquire = _fast("mpx_condition_acquire", blocking=True)
_cond_try = _fast("mpx_condition_acquire", blocking=False)
_cond_release = _fast("mpx_condition_release", blocking=False)


def _cond_lock_args(lock):
    """The (lock, rlock) handle pair for the C condition functions."""
    if lock is None:
        return None, None
    if isinstance(lock, Lock):
        if not lock._h:
            raise lock._closed_error()
        return lock._h, None
    if isinstance(lock, RLock):
        if not lock._h:
            raise lock._closed_error()
        return None, lock._h
    raise TypeError(
        "mpx.Condition needs an mpx.Lock or mpx.RLock (or None for its own RLock), not %s" % type(lock).__name__
    )


class Condition(_SyncObject):
    """A condition variable, as multiprocessing.Condition(lock=None): with no lock it has its own
    recursive lock; with an mpx Lock or RLock it uses that one.

    ``wait``, ``notify`` and ``notify_all`` need the caller's thread to hold the lock
    (:class:`NotOwnedError` otherwise). ``wait(timeout)`` returns False if the time ran out,
    True otherwise; it re-acquires the lock before returning in every case. A wait may return
    True without a notify after a waiting process was killed (a spurious wakeup): use
    ``wait_for(predicate)`` or a loop."""

    _kind = "condition"
    _htype = condition_p
    _lock = None

    def __new__(cls, lock=None, *, ctx=None):
        return cls._make(None, lock, 0)

    def __init__(self, lock=None, *, ctx=None):
        pass

    @classmethod
    def _make(cls, name, lock, flags):
        lh, rh = _cond_lock_args(lock)
        if name is None:
            self = cls._new_anonymous(lib.mpx_condition_create_anonymous, lh, rh)
        else:
            self = cls._new(name, lambda n, f, out: lib.mpx_condition_create(n, lh, rh, f, out), flags)
        self._lock = lock
        return self

    @classmethod
    def create(cls, name, lock=None, *, unlink_on_last_close=False):
        """Creates the named condition ``name``. A named lock is found again by ``open``; other
        programs open the condition with ``mpx_condition_open(name, NULL, NULL, ...)``."""
        return cls._make(name, lock, _flags(unlink_on_last_close))

    @classmethod
    def open(cls, name, lock=None):
        """Opens the condition ``name``. Its lock is opened by name; pass ``lock`` to use an
        object you already have (it must be the condition's lock: ValueError otherwise)."""
        lh, rh = _cond_lock_args(lock)
        h = condition_p()
        check(lib.mpx_condition_open(name_arg(name), lh, rh, 0, byref(h)))
        self = cls._adopt(h, name)
        self._lock = lock
        return self

    @classmethod
    def from_fd(cls, fd, lock=None):
        lh, rh = _cond_lock_args(lock)
        h = condition_p()
        check(lib.mpx_condition_open_fd(_fd_arg(fd), lh, rh, 0, byref(h)))
        self = cls._adopt(h, _decode_name(lib.mpx_condition_name(h)))
        self._lock = lock
        return self

    @classmethod
    def _open_for_pickle(cls, name, state):
        return cls.open(name, state)

    @classmethod
    def _from_fd_for_pickle(cls, fd, state):
        return cls.from_fd(fd, state)

    def _pickle_state(self):
        return self._lock

    def acquire(self, block=True, timeout=None):
        """Acquires the condition's lock (as Lock/RLock.acquire)."""
        if block and timeout is None:
            st = _cond_acquire(self._a, _TSLICE)
            if st == _TIMEOUT:
                st = _sliced(_cond_acquire, self, -1)
        else:
            ns = _timeout_ns(block, timeout)
            st = _cond_try(self._a, _T0) if ns == 0 else _sliced(_cond_acquire, self, ns)
        if st == _OK:
            return True
        if st == _TIMEOUT:
            return False
        if st == _OWNER_DIED:
            _warn_owner_died()
            return True
        self._check(st)

    def release(self):
        st = _cond_release(self._a)
        if st != _OK:
            st = _Acquirable._release_closed(self, st, _cond_release)
            if st == _OK:
                return
            if st == _STATE:
                if isinstance(self._lock, Lock):
                    raise ValueError("semaphore or lock released too many times")
                raise NotOwnedError("attempt to release recursive lock not owned by thread")
            self._check(st)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def wait(self, timeout=None):
        """Releases the lock, waits for a notify or ``timeout`` seconds, re-acquires the lock.
        Returns False if the time ran out, True otherwise. A wait longer than 0.1 s goes in
        parts, so that signal handlers run between them (Ctrl-C: KeyboardInterrupt within a
        part, with the lock held again, as threading's); a notify is never lost or counted
        twice across the parts (mpx_condition_wait_part)."""
        ns = _wait_timeout_ns(timeout)
        if 0 <= ns <= _SLICE_NS:
            st = _cond_wait(self._a, c_int64(ns))
        else:
            st = self._wait_in_parts(ns)
        if st == _OK:
            return True
        if st == _TIMEOUT:
            return False
        if st == _OWNER_DIED:
            _warn_owner_died()
            return True
        if st == _STATE and self._h:
            raise NotOwnedError("must acquire() condition before using wait()")
        self._check(st)

    def _wait_in_parts(self, ns):
        """A wait of ``ns`` (-1: without limit) in parts of at most a slice; the status. The
        wait holds the handle throughout (a close() from another thread ends it after the part
        in progress: ValueError); between parts the thread holds the lock, so any exception
        raised there (KeyboardInterrupt from a signal handler) leaves with the lock held, after
        the wait is ended (a notify it had been handed is then taken by it, as a wait that
        times out with one pending does)."""
        h = self._a
        if h is None:
            return _cond_wait(h, _T0)  # refused: the "closed" error
        ticket = c_uint64(0)
        deadline = _deadline(ns)
        closed = False
        try:
            while True:
                step = _step(deadline)
                if step <= 0:
                    st = _cond_wait_end_c(h, byref(ticket))
                    break
                st = _cond_wait_part(h, _tns(step), ticket)
                if st != _TIMEOUT or not ticket.value:
                    break
                if self._a is None:  # closed meanwhile
                    closed = True
                    break
        finally:
            if ticket.value:
                st = _cond_wait_end_c(h, byref(ticket))
        if closed and st != _OK:
            raise self._closed_error()
        return st

    def wait_for(self, predicate, timeout=None):
        """Waits until ``predicate()`` is true or ``timeout`` seconds ran out; returns the last
        value of ``predicate()``."""
        result = predicate()
        if result:
            return result
        endtime = None if timeout is None else time.monotonic() + timeout
        waittime = None
        while not result:
            if endtime is not None:
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n=1):
        """Wakes up to ``n`` waiters (the lock must be held)."""
        n = operator.index(n)
        if n < 0:
            raise ValueError("n must be >= 0")
        self._notified(lib.mpx_condition_notify(self._h, min(n, 0xFFFFFFFF)))

    def notify_all(self):
        """Wakes every waiter (the lock must be held)."""
        self._notified(lib.mpx_condition_notify_all(self._h))

    def _notified(self, st):
        if st == _STATE and self._h:
            raise NotOwnedError("lock is not owned")
        self._check(st)

    def __repr__(self):
        return "<%s(%r, %s)>" % (type(self).__name__, self._lock if self._lock is not None else "own RLock", self._name)


#
# Event
#

_event_wait = _fast("mpx_event_wait", blocking=True)


class Event(_SyncObject):
    """An event flag, as multiprocessing.Event: ``set``, ``clear``, ``is_set``, and
    ``wait(timeout)`` returning the flag (True, or False if the time ran out)."""

    _kind = "event"
    _htype = event_p

    def __new__(cls, *, ctx=None):
        return cls._new_anonymous(lib.mpx_event_create_anonymous)

    def __init__(self, *, ctx=None):
        pass

    @classmethod
    def create(cls, name, *, unlink_on_last_close=False):
        """Creates the named event ``name`` (not set)."""
        return cls._new(name, lib.mpx_event_create, _flags(unlink_on_last_close))

    def is_set(self):
        if not self._h:
            raise self._closed_error()
        return bool(lib.mpx_event_is_set(self._h))

    def set(self):
        """Sets the flag and wakes every waiter."""
        self._check(lib.mpx_event_set(self._h))

    def clear(self):
        self._check(lib.mpx_event_clear(self._h))

    def wait(self, timeout=None):
        """Waits until the flag is set, at most ``timeout`` seconds; returns the flag. A set
        followed at once by a clear still wakes the waiters present at the set (True)."""
        ns = _wait_timeout_ns(timeout)
        st = _sliced(_event_wait, self, ns)
        if st == _OK:
            return True
        if st == _TIMEOUT:
            return False
        self._check(st)

    def __repr__(self):
        try:
            state = "set" if self.is_set() else "unset"
        except Exception:
            state = "closed"
        return "<%s at %#x %s>" % (type(self).__qualname__, id(self), state)


#
# Barrier
#

_barrier_wait = _fast("mpx_barrier_wait", blocking=True)
# A wait longer than a slice goes in parts (mpx_barrier_wait_part): (handle, ns, ticket, index).
if _SPEEDUPS:
    _barrier_wait_part = _lib_module.fast("mpx_barrier_wait_part", "pqoo")
else:
    _barrier_wait_part_c = _lib_module.entry("mpx_barrier_wait_part", True, [c_void_p, c_int64, c_void_p, c_void_p])

    def _barrier_wait_part(h, ns, ticket, index):
        return _barrier_wait_part_c(h, ns, byref(ticket), byref(index))
_barrier_wait_end_c = _lib_module.entry("mpx_barrier_wait_end", False, [c_void_p, c_void_p, c_void_p])


class Barrier(_SyncObject):
    """A barrier for ``parties`` processes, as multiprocessing.Barrier(parties, action=None,
    timeout=None): ``wait(timeout=None)`` returns the arrival index (0 .. parties-1), and raises
    threading.BrokenBarrierError if the barrier is or becomes broken (``abort()``, ``reset()``
    while waiting, or a wait that timed out, which breaks it for everyone, as in Python).

    ``action``: a callable the last party to arrive runs before any party is released (it
    travels with the barrier when pickled). It is implemented with a second round of the
    barrier, so every party of a barrier with an action must be an mpx Python Barrier with that
    action; a barrier shared with C or C++ programs should have none."""

    _kind = "barrier"
    _htype = barrier_p
    _action = None
    _timeout = None

    def __new__(cls, parties, action=None, timeout=None, *, ctx=None):
        return cls._make(None, parties, action, timeout, 0)

    def __init__(self, parties, action=None, timeout=None, *, ctx=None):
        pass

    @classmethod
    def _make(cls, name, parties, action, timeout, flags):
        parties = operator.index(parties)
        if parties < 1:
            raise ValueError("parties must be >= 1")
        if action is not None and not callable(action):
            raise TypeError("action must be callable")
        p = min(parties, 0xFFFFFFFF)
        if name is None:
            self = cls._new_anonymous(lib.mpx_barrier_create_anonymous, p)
        else:
            self = cls._new(name, lambda n, f, out: lib.mpx_barrier_create(n, p, f, out), flags)
        self._action = action
        self._timeout = timeout
        return self

    @classmethod
    def create(cls, name, parties, action=None, timeout=None, *, unlink_on_last_close=False):
        """Creates the named barrier ``name`` for ``parties`` waiters."""
        return cls._make(name, parties, action, timeout, _flags(unlink_on_last_close))

    @classmethod
    def open(cls, name, action=None, timeout=None):
        """Opens the barrier ``name``; ``action`` and ``timeout`` are this object's own."""
        self = super().open(name)
        self._action = action
        self._timeout = timeout
        return self

    @classmethod
    def _open_for_pickle(cls, name, state):
        return cls.open(name, *state)

    @classmethod
    def _from_fd_for_pickle(cls, fd, state):
        self = cls.from_fd(fd)
        self._action, self._timeout = state
        return self

    def _pickle_state(self):
        return (self._action, self._timeout)

    def _wait_once(self, ns):
        """One round of the barrier, at most ``ns`` (-1: without limit): the arrival index."""
        index = c_uint32()
        if 0 <= ns <= _SLICE_NS:
            st = _barrier_wait(self._a, c_int64(ns), byref(index))
        else:
            st = self._wait_in_parts(ns, index)
        if st == _OK:
            return index.value
        if st in (_BROKEN, _TIMEOUT) and self._h:
            raise BrokenBarrierError
        self._check(st)

    def _wait_in_parts(self, ns, index):
        """A round of ``ns`` (-1: without limit) in parts of at most a slice, arriving once; the
        status (the arrival index in ``index``). Signal handlers run between the parts; any
        exception raised there (KeyboardInterrupt) gives the wait up, which breaks the barrier
        for every party (as a timeout does: the arrival cannot be taken back), and propagates.
        The wait holds the handle throughout: a close() from another thread ends it after the
        part in progress (the barrier broken, ValueError)."""
        h = self._a
        if h is None:
            return _barrier_wait(h, c_int64(0), byref(index))  # refused: the "closed" error
        ticket = c_uint64(0)
        deadline = _deadline(ns)
        closed = False
        try:
            while True:
                st = _barrier_wait_part(h, _tns(_step(deadline)), ticket, index)
                if st != _TIMEOUT or not ticket.value:
                    break
                if self._a is None:  # closed meanwhile
                    closed = True
                    break
                if _step(deadline) <= 0:
                    break  # the whole wait's time ran out: wait_end breaks the barrier
        finally:
            if ticket.value:
                st = _barrier_wait_end_c(h, byref(ticket), byref(index))
        if closed and st != _OK:
            raise self._closed_error()
        return st

    def wait(self, timeout=None):
        """Waits until all parties arrived; returns this party's arrival index. ``timeout``
        (None: the barrier's default) in seconds. A wait longer than 0.1 s goes in parts, so
        that signal handlers run between them (Ctrl-C: KeyboardInterrupt, after the wait is
        given up, which breaks the barrier for the other parties, as a timeout does)."""
        if timeout is None:
            timeout = self._timeout
        ns = _wait_timeout_ns(timeout)
        if self._action is None:
            return self._wait_once(ns)
        deadline = None if ns < 0 else time.monotonic_ns() + ns
        index = self._wait_once(ns)
        if index == self.parties - 1:
            try:
                self._action()
            except BaseException:
                self.abort()  # the others, held in the second round, get BrokenBarrierError
                raise
        left = -1 if deadline is None else max(0, deadline - time.monotonic_ns())
        self._wait_once(left)
        return index

    def abort(self):
        """Breaks the barrier: waiters now and later get BrokenBarrierError until reset()."""
        self._check(lib.mpx_barrier_abort(self._h))

    def reset(self):
        """Returns the barrier to its empty state; current waiters get BrokenBarrierError."""
        self._check(lib.mpx_barrier_reset(self._h))

    @property
    def parties(self):
        if not self._h:
            raise self._closed_error()
        return lib.mpx_barrier_parties(self._h)

    @property
    def n_waiting(self):
        """Parties waiting in the current round."""
        if not self._h:
            raise self._closed_error()
        return lib.mpx_barrier_n_waiting(self._h)

    @property
    def broken(self):
        if not self._h:
            raise self._closed_error()
        return bool(lib.mpx_barrier_is_broken(self._h))

    def __repr__(self):
        if not self._h:
            return "<%s closed>" % type(self).__name__
        if self.broken:
            return "<%s.%s at %#x: broken>" % (self.__class__.__module__, self.__class__.__qualname__, id(self))
        return "<%s.%s at %#x: waiters=%d/%d>" % (
            self.__class__.__module__, self.__class__.__qualname__, id(self), self.n_waiting, self.parties)
