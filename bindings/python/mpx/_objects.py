"""What the named objects of mpx share (synchronize, queues, sharedctypes, connection,
shared_memory): names, anonymous objects' descriptors for a child being started, closing handles with their objects
and at exit, descriptor arguments, timeouts, deadlines and waits in slices, and the fast entry
points of the hot paths.

Of mpx it imports only the library (mpx._lib, mpx.errors). Loading it costs next to nothing
(no module that `import mpx` does not load already), so every capability module can use it.
"""

import operator
import os
import threading
import time
from ctypes import c_int64, c_void_p, cast

# weakref.ref itself: the weakref module, which `import mpx` does not load, is not needed for it.
from _weakref import ref as _weak_ref

from . import errors
from ._lib import MPX_F_UNLINK_ON_LAST_CLOSE, PROTOTYPES, _speedups, entry, fast, speedups_enabled

_TIMEOUT = errors.MPX_E_TIMEOUT

#
# Names
#


def _flags(unlink_on_last_close):
    return MPX_F_UNLINK_ON_LAST_CLOSE if unlink_on_last_close else 0


def _assert_spawning(obj, what=None):
    """RuntimeError unless a process is being started, as the standard library's Lock raises:
    an anonymous object lives only as long as the processes that hold it, so it travels by
    inheritance only. ``what`` names the object (default: its type's name)."""
    from multiprocessing import context  # lazily: only pickling needs it

    if context.get_spawning_popen() is None:
        raise RuntimeError("%s objects should only be shared between processes through inheritance"
                           % (what or type(obj).__name__))


def _share_fd(obj, fd, what=None):
    """What an anonymous object pickles instead of a name: its descriptor, handed to the child
    being started (multiprocessing.reduction.DupFd: the spawning machinery of mpx and of the
    standard library keeps it for the child; ``.detach()`` there gives the child's descriptor).
    Outside the start of a process RuntimeError (_assert_spawning)."""
    _assert_spawning(obj, what)
    from multiprocessing import reduction  # lazily: only pickling needs it

    return reduction.DupFd(fd)


def _open_shared_fd(dupfd, open_fd):
    """In the child: ``open_fd(fd)`` (which duplicates) on the descriptor ``_share_fd`` handed
    over, which is then closed: the child keeps only its handle's own."""
    fd = dupfd.detach()
    try:
        return open_fd(fd)
    finally:
        os.close(fd)


def _decode_name(n):
    """The name a C object reports (``mpx_<kind>_name``) as str; None for none."""
    return n.decode("utf-8", "surrogateescape") if n else None


def _fd_arg(fd):
    fd = operator.index(fd)
    # ctypes would truncate a larger integer into some other, valid, descriptor.
    if not -(1 << 31) <= fd < (1 << 31):
        raise ValueError("invalid file descriptor %d" % fd)
    return fd


#
# Fast entry points. The hot calls (acquire, release, wait, put, get) go through function
# objects of the same C functions as PROTOTYPES declares them, made cheaper in two ways measured
# to matter (a ctypes call costs several times the C work here): no per-call argument conversion
# (argtypes is None; every call passes ctypes objects of exactly the prototype's types: the
# handle as a c_void_p made once per object, timeouts as c_int64), and calls that never block
# keep the GIL (PyDLL), sparing its release and re-acquisition. The handle addresses are our own
# handles'.
#

# With the optional C accelerator (mpx/_speedups.c) the hot calls skip ctypes altogether and
# take plain ints (a handle's address, a timeout); without it they take ctypes objects.
_SPEEDUPS = speedups_enabled()


def _fast(name, blocking):
    """The C function ``name`` for the hot paths; ``blocking`` releases the GIL during the call
    (the accelerator does that for any call with a non-zero timeout)."""
    restype, argtypes = PROTOTYPES[name]
    if _SPEEDUPS and argtypes:
        sig = {(): "p", (c_int64,): "pq"}.get(tuple(argtypes[1:]))
        if sig == "pq" or (sig == "p" and not blocking):
            return fast(name, sig)
        return entry(name, blocking, [c_void_p] + list(argtypes[1:]))  # the handle arrives as an int
    return entry(name, blocking)


def _address(h):
    """A handle as the fast entry points take it: an int, or a c_void_p made once per object;
    None once the handle is closed."""
    a = cast(h, c_void_p).value
    return a if _SPEEDUPS else c_void_p(a)


#
# Timeouts and waits
#

# Waits without limit run in slices of this many ns, so that signal handlers get to run.
_SLICE_NS = 100_000_000

# Timeouts as the fast entry points take them (ints with the accelerator, else c_int64), and
# the two they pass most, made once.
_tns = int if _SPEEDUPS else c_int64
_T0 = _tns(0)
_TSLICE = _tns(_SLICE_NS)


def _timeout_ns(block, timeout):
    """multiprocessing's (block, timeout) as the C ABI's ns: -1 forever, 0 try once."""
    if not block:
        return 0
    if timeout is None:
        return -1
    if not (hasattr(type(timeout), "__float__") or hasattr(type(timeout), "__index__")):
        raise TypeError("timeout must be a number or None, not %s" % type(timeout).__name__)
    t = float(timeout)
    if t != t:
        raise ValueError("timeout is NaN")
    if t <= 0:
        return 0  # multiprocessing treats a negative timeout as 0
    if t >= 9.2e9:  # beyond int64 ns (~292 years): without limit
        return -1
    return max(1, int(t * 1e9))


def _wait_timeout_ns(timeout):
    """A wait's timeout in seconds (None: without limit; <= 0: do not wait) as the C ABI's ns."""
    return _timeout_ns(True, timeout)


def _deadline(ns):
    """The time.monotonic_ns() deadline of a wait of ``ns`` (None: without limit)."""
    return None if ns < 0 else time.monotonic_ns() + ns


def _step(deadline):
    """The next slice of a wait: at most _SLICE_NS, and what is left before the deadline (0 once
    it has passed)."""
    if deadline is None:
        return _SLICE_NS
    return max(0, min(_SLICE_NS, deadline - time.monotonic_ns()))


def _sliced(fn, owner, ns):
    """Calls the blocking ``fn(owner._a, slice)`` until it stops timing out or ``ns`` ran out, in
    slices that let Python run signal handlers between them. Returns the last status. The handle
    is read again for every slice: after a close() from another thread it is None, which the
    library refuses, so the wait ends instead of going on with a freed handle."""
    if 0 <= ns <= _SLICE_NS:
        return fn(owner._a, c_int64(ns))
    deadline = _deadline(ns)
    while True:
        step = _step(deadline)
        if step <= 0:
            return _TIMEOUT
        st = fn(owner._a, c_int64(step))
        if st != _TIMEOUT:
            return st


#
# Handles. Each object owns its C handle through a Handle: the accelerator's (mpx._speedups.Handle)
# or, without it, _PyHandle below. A Handle closes the C handle when its last reference goes, and
# every call on the handle holds a reference for its duration (the caller's frame holds the
# argument; LockCore takes one for a wait without the GIL). close() only drops the object's
# references, so a close() from another thread never frees a handle under a call: the call
# finishes against the live handle, the handle is freed when it returns, and the next call reads
# None (NULL to the library: MPX_E_INVALID, reported as "closed"). The object passes the same
# Handle to the hot entry points (``_a``, an int-like pointer argument) and to the typed
# prototypes of mpx._lib (``_h``; ctypes takes it through ``_as_parameter_``).
#
# A handle is also closed at the exit of every process that has it (the main process, and
# children of every start method: forked children re-register what they inherited). Closing at
# exit matters for objects created with unlink_on_last_close: the last process to close one
# removes the name. (Objects made without a name are anonymous and need nothing: the kernel
# frees them with the last descriptor, however the process ends.) This uses multiprocessing.util's
# finalizers, which multiprocessing and mpx run at the exit of every process they start.
#

_std_util = None


def _util():
    global _std_util
    if _std_util is None:
        from multiprocessing import util  # lazily: `import mpx` does not load it

        _std_util = util
    return _std_util


class _PyHandle(c_void_p):
    """The Handle without the accelerator: a c_void_p (what the hot entry points, whose argtypes
    are None, take as it is) that closes its C handle when it is collected, which is when the
    last reference goes (reference counting: at once)."""

    def __init__(self, address, close, param):
        super().__init__(address)
        self._as_parameter_ = param  # the typed pointer, for prototypes that want one
        self._close = close

    def __del__(self):
        close, self._close = self._close, None
        if close is not None:
            close(self._as_parameter_)


_CHandle = getattr(_speedups, "Handle", None) if _SPEEDUPS else None


def _own(h, close):
    """A Handle owning the typed handle ``h`` (closed with the C function ``close``)."""
    if _CHandle is not None:
        return _CHandle(cast(h, c_void_p).value, cast(close, c_void_p).value, h)
    return _PyHandle(cast(h, c_void_p).value, close, h)


def _drop(obj):
    """Drops the object's references to its Handle (the C handle closes once no call uses it)."""
    h = obj._h
    if h is not None:
        try:
            obj._h_after_close = _weak_ref(h)  # see _handle_after_close
        except (AttributeError, TypeError):
            pass
    obj._a = None
    obj._h = None
    if getattr(obj, "_ha", None) is not None:
        obj._ha = None


def _handle_after_close(obj):
    """The Handle of a closed object while a call in progress (another thread's) still holds
    it, else None. release() uses it: a thread that held a lock across another thread's close()
    must still be able to release it, or a waiter inside the call (re-acquiring it) would wait
    for ever."""
    ref = getattr(obj, "_h_after_close", None)
    return ref() if ref is not None else None


def _finalize(holder, at_exit):
    """At exit: drops the object's Handle. (On collection there is nothing to do: the Handle
    goes with the object.)"""
    if not holder:
        return
    if _std_util._exiting:
        if not at_exit or threading.active_count() > 1:
            # Another thread (a daemon) may go on using the object: leave it to the process's end.
            return
    obj = holder[0]()
    holder.clear()
    if obj is not None:
        _drop(obj)


def _register_finalizer(obj):
    obj._finalizer = _util().Finalize(obj, _finalize, args=(obj._holder, True), exitpriority=0)


def _track(obj, h, close, at_exit=True):
    """Makes ``obj`` own the typed handle ``h``: ``obj._h`` and ``obj._a`` become its Handle
    (returned), closed with ``close`` when the object and every call in progress are done with
    it, or at the process's exit (``at_exit``)."""
    handle = _own(h, close)
    obj._h = handle
    obj._a = handle
    obj._holder = [_weak_ref(obj)]  # non-empty while the object owns its handle
    if at_exit:
        _register_finalizer(obj)
        _std_util.register_after_fork(obj, _register_finalizer)
    return handle


def _untrack(obj):
    """close(): drops the handle now (it closes when the last call in progress returns) and the
    finalizer."""
    holder = getattr(obj, "_holder", None)
    if holder:
        holder.clear()
    _drop(obj)
    fin = getattr(obj, "_finalizer", None)
    if fin is not None:
        fin.cancel()
