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
from ctypes import POINTER, byref, c_int64, c_void_p, cast

# weakref.ref itself: the weakref module, which `import mpx` does not load, is not needed for it.
from _weakref import ref as _weak_ref

from . import errors
from ._lib import MPX_F_UNLINK_ON_LAST_CLOSE, PROTOTYPES, entry, fast, speedups_enabled

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
# Closing handles. A handle is closed when its object is collected, by close(), and at the exit
# of every process that has it (the main process, and children of every start method: forked
# children re-register what they inherited). Closing at exit matters for generated names: the
# last process to close one removes the name, so a child that outlives the parent's object does
# not leave it behind. This uses multiprocessing.util's finalizers, which multiprocessing and mpx
# run at the exit of every process they start. A closed handle is nulled in place, so a call
# made later (say from another atexit handler) gets a "closed" error, never freed memory.
#

_std_util = None


def _util():
    global _std_util
    if _std_util is None:
        from multiprocessing import util  # lazily: `import mpx` does not load it

        _std_util = util
    return _std_util


def _close_holder(holder, close):
    """Closes the handle in ``holder`` ([handle, its address, a weak reference to the object],
    shared by every finalizer of the object, so it is closed once) and nulls both in place."""
    h, vp, ref = holder
    holder.clear()
    if isinstance(vp, c_void_p):
        vp.value = None
    else:
        # With the accelerator the object holds the address as an int: point it at NULL, so
        # a call after the close is MPX_E_INVALID, never a use of freed memory.
        obj = ref()
        if obj is not None:
            obj._a = None
    close(h)
    cast(byref(h), POINTER(c_void_p)).contents.value = None


def _finalize(holder, close, at_exit):
    if not holder:
        return
    if _std_util._exiting:
        if not at_exit or threading.active_count() > 1:
            # Another thread (a daemon) may be inside a call on this handle, or (values) the
            # memory may still be read by code that runs later: leave it to the process's end.
            return
    _close_holder(holder, close)


def _register_finalizer(obj):
    obj._finalizer = _util().Finalize(obj, _finalize, args=(obj._holder, obj._closer, obj._close_at_exit),
                                      exitpriority=0 if obj._close_at_exit else None)


def _track(obj, h, close, at_exit=True):
    """Arranges for ``obj``'s handle ``h`` (and its c_void_p ``obj._a``) to be closed with
    ``close``: when obj is collected, and (``at_exit``) at the process's exit."""
    obj._holder = [h, obj._a, _weak_ref(obj)]
    obj._closer = close
    obj._close_at_exit = at_exit
    _register_finalizer(obj)
    if at_exit:
        _std_util.register_after_fork(obj, _register_finalizer)


def _untrack(obj):
    """close(): closes the handle now and drops its finalizer."""
    holder = getattr(obj, "_holder", None)
    if holder:
        _close_holder(holder, obj._closer)
    fin = getattr(obj, "_finalizer", None)
    if fin is not None:
        fin.cancel()
