"""Process-shared queues with the API of :mod:`multiprocessing.queues`: ``Queue``,
``JoinableQueue`` and ``SimpleQueue``.

Each queue is an mpx queue in one shared-memory segment (a ring of byte messages; see
docs/QUEUES.md), so C, C++ and Rust programs using mpx can put to and get from the same queue by
name. There is no feeder thread and no pipe: ``put`` copies the message into shared memory
before it returns, and ``get`` copies it out.

multiprocessing's API, with its semantics:

* ``Queue(maxsize=0)``: ``put(obj, block=True, timeout=None)``, ``get(block=True,
  timeout=None)``, ``put_nowait``, ``get_nowait``, ``qsize()`` (exact), ``empty()``, ``full()``,
  ``close()``, ``join_thread()`` and ``cancel_join_thread()`` (no-ops: there is no feeder thread
  whose data could be lost). Objects are pickled (highest protocol). ``queue.Empty`` and
  ``queue.Full`` when nothing came or no room came in time; a negative timeout is 0 (try
  once), ``block=False`` ignores the timeout.
* ``JoinableQueue(maxsize=0)`` adds ``task_done()`` (ValueError "task_done() called too many
  times" past the number of messages put) and ``join()``.
* ``SimpleQueue()``: ``put``, ``get``, ``empty``, ``close``.
* ``close()``: this process will use the queue no more; later puts and gets here raise
  ValueError ("Queue ... is closed"), as multiprocessing's do. Other processes are not affected.

mpx's additions:

* ``capacity=`` (keyword): the ring's size in bytes, 4 MiB by default. ``maxsize`` limits the
  number of messages (0: no limit); every queue is also bounded in bytes, so a ``put`` into a
  full ring waits for room even when ``maxsize`` is 0. A message that can never fit raises
  :class:`MessageTooBig` (a ValueError) at once, never a hang; ``max_message`` is the limit.
* ``put_bytes(data)`` / ``get_bytes()``: raw bytes, not pickled: the interchange with C and C++
  (a C program putting ``"abc"`` is read here as ``b"abc"``), and the fastest path.
* Batches, one lock round trip each: ``put_many(objs)`` / ``put_many_bytes(msgs)`` put all the
  messages or none, next to each other in the queue; ``get_many(max_messages=None, block=True,
  timeout=None)`` / ``get_many_bytes(...)`` wait for the first message like ``get``, then return
  every message that is ready, up to ``max_messages`` (None: up to 65536 per call).
* ``shutdown()``: closes the queue for every process: puts fail, gets return what is left and
  then fail, and every caller blocked in any process wakes. The failure is
  :class:`QueueClosed`, which is a ValueError (what a closed multiprocessing queue raises), an
  EOFError (what a reader at the end of a stream expects), and on Python >= 3.13 also a
  ``queue.ShutDown``.
* Named queues for other programs: ``Queue.create(name, maxsize=0, capacity=...)`` makes
  ``/dev/shm/mpx.<name>``, which C opens with ``mpx_queue_open(name, ...)``; ``Queue.open(name)``
  opens a queue made by any language (a JoinableQueue comes back as a JoinableQueue; opening
  another kind of object is mpx.KindError). Named queues stay until ``unlink()`` (or
  ``Queue.unlink_name(name)``), or with ``unlink_on_last_close=True`` until their last user
  closes them.

Sharing with other processes, as mpx's synchronization objects: a queue made without a name is
anonymous (a memfd, nothing in /dev/shm), gone when the last process holding it ends, however it
ends. Forked children (mpx.Process or multiprocessing.Process) inherit the queue; for spawn and
forkserver a queue pickled while the child is being started (a Process argument) goes with its
descriptor and the child opens the same queue. Pickling it at any other time raises
RuntimeError, as multiprocessing does. Named queues (``Queue.create``) pickle by name with any
pickler, so they can also be sent through another queue or a pipe while some process holds
them.

The handle itself is freed when the object is collected, and at the exit of the process (not by
``close()``: another thread may still be inside a call on it, which a freed handle would crash).

Blocking calls release the GIL and wait in slices of 0.1 s, so signal handlers (Ctrl-C) run
while a ``get`` or ``put`` waits without limit. A process killed in the middle of a put or get
does not break the queue for the others (docs/QUEUES.md, "Fault tolerance").

Threads may share one queue object. Messages put by one thread (or process) arrive in the order
they were put; messages from different producers interleave.
"""

import operator
import pickle
import queue as _stdqueue
import time
from array import array
from ctypes import byref, c_char, c_int, c_int64, c_size_t, c_void_p, sizeof

from . import errors
from ._lib import (
    MPX_F_UNLINK_ON_LAST_CLOSE,
    MPX_QUEUE_JOINABLE,
    MPX_QUEUE_SIMPLE,
    check,
    entry,
    error,
    fast,
    last_error,
    lib,
    name_arg,
    queue_p,
    size_arg,
)
from ._objects import (
    _SPEEDUPS,
    _T0,
    _TSLICE,
    _address,
    _deadline,
    _decode_name,
    _fast,
    _fd_arg,
    _open_shared_fd,
    _share_fd,
    _step,
    _timeout_ns,
    _tns,
    _track,
    _untrack,
)

__all__ = [
    "DEFAULT_CAPACITY",
    "Empty",
    "Full",
    "JoinableQueue",
    "MessageTooBig",
    "Queue",
    "QueueClosed",
    "SimpleQueue",
]

#: The ring size in bytes of a queue made without ``capacity=``.
DEFAULT_CAPACITY = 4 << 20

#: The exceptions of the standard library's queue module, as multiprocessing raises them.
Empty = _stdqueue.Empty
Full = _stdqueue.Full

_OK = errors.MPX_OK
_INVALID = errors.MPX_E_INVALID
_TIMEOUT = errors.MPX_E_TIMEOUT
_FULL = errors.MPX_E_FULL
_EMPTY = errors.MPX_E_EMPTY
_CLOSED = errors.MPX_E_CLOSED
_TOO_BIG = errors.MPX_E_TOO_BIG
_STATE = errors.MPX_E_STATE
_UNSUPPORTED = errors.MPX_E_UNSUPPORTED
_BUFFER_TOO_SMALL = errors.MPX_E_BUFFER_TOO_SMALL

_SHUTDOWN_BASES = (errors.MpxError, ValueError, EOFError)
if hasattr(_stdqueue, "ShutDown"):  # Python >= 3.13
    _SHUTDOWN_BASES += (_stdqueue.ShutDown,)


class QueueClosed(*_SHUTDOWN_BASES):
    """The queue was shut down (``shutdown()``, by any process, or ``mpx_queue_shutdown`` from C):
    a put, or a get once the queue is empty. A ValueError and an EOFError (and on Python >= 3.13
    a queue.ShutDown), so the ``except`` clauses written for closed queues and ended streams
    catch it."""

    status = errors.MPX_E_CLOSED


class MessageTooBig(errors.MpxError, ValueError):
    """A message (or a batch) that can never fit in the queue, whatever the wait: larger than
    the queue's ``max_message``, or a batch over its capacity or ``maxsize``."""

    status = errors.MPX_E_TOO_BIG


#
# Entry points. The hot calls (put, get) are one call each into the C ABI: through the optional
# C accelerator (mpx._speedups, `make pyext`) when it is built, which takes the handle's address
# as an int, any buffer, and an int timeout, and keeps the GIL only for zero timeouts; otherwise
# through ctypes with argtypes None and arguments that are already ctypes objects (measured to
# matter: ctypes' argument conversion costs more than the C work). Batches always go through
# ctypes (one call per batch, so the conversion is amortised). The handle an object passes is
# its Handle (see mpx._objects: the call holds it, so a close() from another thread cannot free
# it under the call); None once closed; timeouts are _tns (int, or c_int64).
#

if _SPEEDUPS:
    _put = fast("mpx_queue_put", "pbq")  # (h, buffer, timeout)
    _get = fast("mpx_queue_get", "pwoq")  # (h, writable buffer, c_size_t out, timeout)
    _put_try = _put  # a zero timeout keeps the GIL
    _get_try = _get
else:
    def _shims(blocking):
        put_c = entry("mpx_queue_put", blocking)
        get_c = entry("mpx_queue_get", blocking)

        def put(h, data, t):
            if type(data) is bytes:
                return put_c(h, data, c_size_t(len(data)), t)
            data = (c_char * data.nbytes).from_buffer(data) if data.nbytes else b""
            return put_c(h, data, c_size_t(len(data)), t)

        def get(h, buf, n, t):
            return get_c(h, buf, c_size_t(len(buf)), byref(n), t)

        return put, get

    _put, _get = _shims(blocking=True)
    _put_try, _get_try = _shims(blocking=False)

# Batches: every pointer declared as c_void_p, which takes an int, bytes, None, a ctypes array or
# byref(); sizes and timeouts as ints.
_PUT_MANY_ARGS = [c_void_p, c_void_p, c_void_p, c_size_t, c_int64]
_GET_MANY_ARGS = [c_void_p, c_void_p, c_size_t, c_void_p, c_size_t, c_void_p, c_int64]
_put_many = entry("mpx_queue_put_many", True, _PUT_MANY_ARGS)
_put_many_try = entry("mpx_queue_put_many", False, _PUT_MANY_ARGS)
_get_many = entry("mpx_queue_get_many", True, _GET_MANY_ARGS)
_get_many_try = entry("mpx_queue_get_many", False, _GET_MANY_ARGS)

_task_done = _fast("mpx_queue_task_done", blocking=False)
_join = _fast("mpx_queue_join", blocking=True)

_dumps = pickle.dumps
_loads = pickle.loads
_PROTOCOL = pickle.HIGHEST_PROTOCOL

# The receive buffer of get/get_bytes starts at this size and grows to the largest message seen,
# up to _RX_KEEP; a larger message gets a buffer of its own for that one call.
_RX_START = 64 << 10
_RX_KEEP = 16 << 20
# get_many's buffer: the ring's size (everything ready fits), at most this much at first.
_BATCH_BUF = 1 << 20
# The most messages one get_many call returns (the size of its lengths array).
_BATCH_MAX = 65536
# The library's largest message limit (src/queue/mod.rs, MAX_MESSAGES).
_MAX_MESSAGES = 0xFFFFFFFF * 64

# put_many passes its lengths in an array('Q') when that is size_t (it is on Linux), which is
# much cheaper to fill than a ctypes array.
_LENS_ARRAY = "Q" if array("Q").itemsize == sizeof(c_size_t) else None
_SIZE_T_CODE = "Q" if sizeof(c_size_t) == 8 else "I"


def _new_rx(size):
    """A receive buffer for get: (buffer, c_size_t for the length, memoryview)."""
    buf = (c_char * size)()
    return (buf, c_size_t(), memoryview(buf).cast("B"))


def _new_batch(size, max_n):
    """A receive buffer for get_many: (buffer, lengths array, its max_n, count, memoryview of
    the buffer, memoryview of the lengths as integers: tolist() is much faster than slicing
    the ctypes array)."""
    buf = (c_char * size)()
    lens = (c_size_t * max_n)()
    return (buf, lens, max_n, c_size_t(), memoryview(buf).cast("B"), memoryview(lens).cast("B").cast(_SIZE_T_CODE))


def _data_arg(data):
    """A message other than bytes as a C-contiguous byte buffer (no copy when it is one)."""
    if isinstance(data, str):
        raise TypeError("a message must be bytes-like, not str (encode it, or use put() to pickle it)")
    try:
        mv = memoryview(data)
    except TypeError:
        raise TypeError("a message must be bytes-like, not %s (use put() to pickle objects)"
                        % type(data).__name__) from None
    if not mv.c_contiguous:
        return mv.tobytes()
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    if mv.readonly and not _SPEEDUPS:
        return mv.tobytes()  # ctypes' from_buffer needs a writable buffer
    return mv


def _join_messages(msgs):
    """A batch for mpx_queue_put_many: (flat bytes, lengths array, its address, count)."""
    if not isinstance(msgs, (list, tuple)):
        msgs = list(msgs)
    data = b"".join(msgs)  # TypeError for an item that is not bytes-like
    n = len(msgs)
    if _LENS_ARRAY is not None:
        lens = array(_LENS_ARRAY, map(len, msgs))
        if sum(lens) != len(data):  # a buffer whose len() counts items, not bytes
            lens = array(_LENS_ARRAY, [memoryview(m).nbytes for m in msgs])
        addr = lens.buffer_info()[0]
    else:  # pragma: no cover - platforms where unsigned long long is not size_t
        lens = (c_size_t * max(n, 1))(*[memoryview(m).nbytes for m in msgs])
        addr = lens
    return data, lens, addr, n


def _handle_int(a):
    """A fast-call handle (a Handle, or None once closed) as what c_void_p argtypes take: the
    Handle itself, so that the call holds it (see mpx._objects)."""
    return a


def _rebuild(cls, name):
    """Unpickles a queue: opens it by name in this process."""
    return cls._open_as(name)


def _rebuild_fd(cls, dupfd):
    """Unpickles an anonymous queue in a child being started: opens the descriptor the parent
    handed over."""
    return _open_shared_fd(dupfd, cls._open_as_fd)


class _QueueBase:
    """What every queue shares: the C handle, put/get of objects and bytes, batches, state,
    shutdown, names and pickling by name."""

    _variant = 0  # MPX_QUEUE_JOINABLE / MPX_QUEUE_SIMPLE for the subclasses
    _h = None  # the typed handle (for the calls through mpx._lib.lib)
    _a = None  # the handle for the fast calls; None once close()d or freed
    _ha = None  # the same, kept after close() (task_done, join); valid while _holder is set
    _name = None
    _closed = False
    _holder = ()
    _maxsize = 0
    _capacity = 0
    _max_message = 0

    # -- construction ---------------------------------------------------------------------

    def _create(self, name, maxsize, capacity, flags):
        """Creates the C queue under ``name`` (None: anonymous) and adopts it into self."""
        if capacity is None:
            capacity = DEFAULT_CAPACITY
        if isinstance(capacity, bool) or not hasattr(type(capacity), "__index__"):
            raise TypeError("capacity must be an int (bytes), not %s" % type(capacity).__name__)
        capacity = operator.index(capacity)
        if capacity <= 0:
            raise ValueError("capacity must be a positive number of bytes, not %d" % capacity)
        capacity = size_arg(capacity, "capacity")
        if isinstance(maxsize, bool) or not hasattr(type(maxsize), "__index__"):
            raise TypeError("maxsize must be an int, not %s" % type(maxsize).__name__)
        maxsize = operator.index(maxsize)
        # multiprocessing: maxsize <= 0 means no limit (and so does 0 in the C ABI).
        # Larger limits than the library's are clamped: no ring of at most 2 GiB holds that many
        # 8-byte records, so they all mean "no limit in practice".
        maxsize = 0 if maxsize <= 0 else min(maxsize, _MAX_MESSAGES)
        flags |= self._variant
        h = queue_p()
        if name is None:
            check(lib.mpx_queue_create_anonymous(capacity, maxsize, flags, byref(h)))
        else:
            check(lib.mpx_queue_create(name_arg(name), capacity, maxsize, flags, byref(h)))
        self._adopt(h, name)

    def _adopt(self, h, name):
        self._h = h
        self._a = self._ha = _address(h)
        self._name = name
        self._closed = False
        # Pools of receive buffers: a call takes one and gives it back, so threads sharing the
        # object never share a buffer.
        self._rx = []
        self._batches = []
        self._maxsize = lib.mpx_queue_max_messages(h)
        self._max_message = lib.mpx_queue_max_message(h)
        self._capacity = lib.mpx_queue_capacity(h)
        self._ha = _track(self, h, lib.mpx_queue_close)
        return self

    @classmethod
    def _class_for(cls, variant, name):
        """The class a queue of this variant opens as when asked for through ``cls``."""
        if cls is Queue and variant == MPX_QUEUE_JOINABLE:
            return JoinableQueue
        if issubclass(cls, JoinableQueue) and variant != MPX_QUEUE_JOINABLE:
            raise errors.KindError("queue %r is not a JoinableQueue (it was created as a %s)"
                                   % (name, "SimpleQueue" if variant == MPX_QUEUE_SIMPLE else "Queue"))
        return cls

    @classmethod
    def _from_handle(cls, h, name):
        try:
            klass = cls._class_for(lib.mpx_queue_variant(h), name)
        except BaseException:
            lib.mpx_queue_close(h)
            raise
        return object.__new__(klass)._adopt(h, name)

    @classmethod
    def open(cls, name):
        """Opens the existing queue ``name`` (made by any language). ``Queue.open`` of a
        JoinableQueue returns a JoinableQueue; ``JoinableQueue.open`` of another queue is
        mpx.KindError, as is opening an object that is not a queue. FileNotFoundError if there
        is no such name."""
        h = queue_p()
        check(lib.mpx_queue_open(name_arg(name), 0, byref(h)))
        return cls._from_handle(h, name)

    @classmethod
    def _open_as(cls, name):
        """Opens ``name`` as this very class (unpickling)."""
        h = queue_p()
        check(lib.mpx_queue_open(name_arg(name), 0, byref(h)))
        if cls is Queue:  # a pickled Queue stays a Queue
            return object.__new__(cls)._adopt(h, name)
        return cls._from_handle(h, name)

    @classmethod
    def _open_as_fd(cls, fd):
        """Opens the anonymous queue behind ``fd`` as this very class (unpickling)."""
        h = queue_p()
        check(lib.mpx_queue_open_fd(_fd_arg(fd), 0, byref(h)))
        if cls is Queue:
            return object.__new__(cls)._adopt(h, None)
        return cls._from_handle(h, None)

    @classmethod
    def from_fd(cls, fd):
        """Opens the queue behind an inherited descriptor (``.fd`` of a queue, or
        ``mpx_queue_fd`` in C); the descriptor is duplicated, the caller keeps ``fd``."""
        h = queue_p()
        check(lib.mpx_queue_open_fd(_fd_arg(fd), 0, byref(h)))
        return cls._from_handle(h, _decode_name(lib.mpx_queue_name(h)))

    @classmethod
    def unlink_name(cls, name):
        """Removes the queue name ``name`` (processes that have it open keep using it)."""
        check(lib.mpx_queue_unlink(name_arg(name)))

    # -- put --------------------------------------------------------------------------------

    def put(self, obj, block=True, timeout=None):
        """Puts ``obj`` (pickled) into the queue, waiting for room as multiprocessing's put:
        ``block=False`` or a ``timeout`` in seconds raise queue.Full if there is none.
        MessageTooBig at once if the pickle can never fit; QueueClosed after shutdown();
        ValueError after close()."""
        data = _dumps(obj, _PROTOCOL)
        if block and timeout is None:
            st = _put(self._a, data, _TSLICE)
            if st != _OK:
                self._put_wait(st, data, None)
        else:
            self._put_timed(data, block, timeout)

    def put_nowait(self, obj):
        """put(obj, block=False)."""
        self.put(obj, False)

    def put_bytes(self, data, block=True, timeout=None):
        """Puts the bytes of ``data`` (bytes, bytearray, memoryview, a numpy array, ...) as one
        message, not pickled: what a C ``mpx_queue_get`` receives. Waits as ``put``."""
        if type(data) is not bytes:
            data = _data_arg(data)
        if block and timeout is None:
            st = _put(self._a, data, _TSLICE)
            if st != _OK:
                self._put_wait(st, data, None)
        else:
            self._put_timed(data, block, timeout)

    def _put_timed(self, data, block, timeout):
        ns = _timeout_ns(block, timeout)
        if ns == 0:
            st = _put_try(self._a, data, _T0)
            if st != _OK:
                raise self._put_error(st)
        else:
            self._put_wait(_TIMEOUT, data, _deadline(ns))

    def _put_wait(self, st, data, deadline):
        """The rest of a put that has not succeeded yet (``st``): waits in slices until the
        deadline (None: without limit)."""
        while st == _TIMEOUT:
            step = _step(deadline)
            if step <= 0:
                break
            st = _put(self._a, data, _tns(step))
        if st != _OK:
            raise self._put_error(st)

    def _put_error(self, st):
        if st in (_TIMEOUT, _FULL):
            return Full()
        return self._error(st)

    def put_many(self, objs, block=True, timeout=None):
        """Puts every object of ``objs`` (pickled), all or none, next to each other in the
        queue, in one lock round trip. Waits until all fit (queue.Full if they did not in
        time); MessageTooBig at once if the batch can never fit (its bytes exceed the capacity,
        or its count ``maxsize``)."""
        self._put_batch(_join_messages([_dumps(o, _PROTOCOL) for o in objs]), block, timeout)

    def put_many_bytes(self, msgs, block=True, timeout=None):
        """Puts every bytes-like message of ``msgs`` (not pickled), as ``put_many``."""
        self._put_batch(_join_messages(msgs), block, timeout)

    def _put_batch(self, batch, block, timeout):
        data, lens, addr, n = batch
        ns = _timeout_ns(block, timeout)
        if ns == 0:
            st = _put_many_try(_handle_int(self._a), data, addr, n, 0)
        else:
            deadline = _deadline(ns)
            st = _TIMEOUT
            while st == _TIMEOUT:
                step = _step(deadline)
                if step <= 0:
                    break
                st = _put_many(_handle_int(self._a), data, addr, n, step)
        if st != _OK:
            raise self._put_error(st)

    # -- get --------------------------------------------------------------------------------

    def get(self, block=True, timeout=None):
        """Removes and returns the next object, waiting as multiprocessing's get:
        ``block=False`` or a ``timeout`` in seconds raise queue.Empty if none came. After
        shutdown() the messages left are returned, then QueueClosed. ValueError after
        close()."""
        try:
            rx = self._rx.pop()
        except IndexError:
            rx = _new_rx(_RX_START)
        if block and timeout is None:
            if _get(self._a, rx[0], rx[1], _TSLICE) == _OK:
                obj = _loads(rx[2][:rx[1].value])
                self._rx.append(rx)
                return obj
            rx = self._get_wait(rx, None)
        else:
            rx = self._get_timed(rx, block, timeout)
        obj = _loads(rx[2][:rx[1].value])
        if len(rx[0]) <= _RX_KEEP:
            self._rx.append(rx)
        return obj

    def get_nowait(self):
        """get(block=False)."""
        return self.get(False)

    def get_bytes(self, block=True, timeout=None):
        """Removes and returns the next message as bytes, not unpickled (what a C
        ``mpx_queue_put`` put). Waits as ``get``."""
        try:
            rx = self._rx.pop()
        except IndexError:
            rx = _new_rx(_RX_START)
        if block and timeout is None:
            if _get(self._a, rx[0], rx[1], _TSLICE) == _OK:
                data = rx[2][:rx[1].value].tobytes()
                self._rx.append(rx)
                return data
            rx = self._get_wait(rx, None)
        else:
            rx = self._get_timed(rx, block, timeout)
        data = rx[2][:rx[1].value].tobytes()
        if len(rx[0]) <= _RX_KEEP:
            self._rx.append(rx)
        return data

    def _get_timed(self, rx, block, timeout):
        ns = _timeout_ns(block, timeout)
        if ns == 0:
            while True:
                st = _get_try(self._a, rx[0], rx[1], _T0)
                if st == _OK:
                    return rx
                if st != _BUFFER_TOO_SMALL:
                    raise Empty() if st == _EMPTY else self._error(st)
                rx = self._grow(rx)
        return self._get_wait(rx, _deadline(ns))

    def _get_wait(self, rx, deadline):
        """Gets one message into ``rx``, or into a larger buffer when it does not fit, waiting
        in slices until the deadline (None: without limit). Returns the buffer used."""
        while True:
            step = _step(deadline)
            if step <= 0:
                raise Empty()
            st = _get(self._a, rx[0], rx[1], _tns(step))
            if st == _OK:
                return rx
            if st == _BUFFER_TOO_SMALL:
                rx = self._grow(rx)
            elif st != _TIMEOUT:
                raise self._error(st)

    @staticmethod
    def _grow(rx):
        """A buffer for a message that did not fit (it stays queued; rx[1] holds its size): the
        next one is taken into it (or another message, if another consumer took that one). A
        very large message gets a buffer of its own, not kept."""
        need, cap = rx[1].value, len(rx[0])
        return _new_rx(need if need > _RX_KEEP else min(_RX_KEEP, max(need, 2 * cap)))

    def get_many(self, max_messages=None, block=True, timeout=None):
        """Waits for the first message as ``get``, then returns a list of every object that is
        ready, up to ``max_messages`` (None: up to 65536), in one lock round trip."""
        batch, sizes = self._get_batch(max_messages, block, timeout)
        mv = batch[4]
        out = []
        o = 0
        for size in sizes:
            e = o + size
            out.append(_loads(mv[o:e]))
            o = e
        self._batches.append(batch)
        return out

    def get_many_bytes(self, max_messages=None, block=True, timeout=None):
        """Waits for the first message as ``get``, then returns a list of every message that
        is ready (bytes, not unpickled), up to ``max_messages`` (None: up to 65536)."""
        batch, sizes = self._get_batch(max_messages, block, timeout)
        blob = batch[4][:sum(sizes)].tobytes()
        self._batches.append(batch)
        out = []
        o = 0
        for size in sizes:
            e = o + size
            out.append(blob[o:e])
            o = e
        return out

    def _get_batch(self, max_messages, block, timeout):
        """mpx_queue_get_many, repeated while it waits, and with a larger buffer if the first
        message does not fit. Returns (batch buffer, the messages' lengths as a list); the
        caller gives the buffer back to the pool once it has read the data."""
        if max_messages is None:
            max_n = _BATCH_MAX
        else:
            max_n = operator.index(max_messages)
            if max_n < 1:
                raise ValueError("max_messages must be at least 1, not %d" % max_n)
            max_n = min(max_n, _BATCH_MAX)
        try:
            batch = self._batches.pop()
        except IndexError:
            batch = _new_batch(min(self._capacity, _BATCH_BUF) or _BATCH_BUF, max_n)
        if batch[2] < max_n:
            batch = _new_batch(len(batch[0]), max_n)
        ns = _timeout_ns(block, timeout)
        deadline = _deadline(ns)
        while True:
            buf, lens, _, count, _, _ = batch
            if ns == 0:
                st = _get_many_try(_handle_int(self._a), buf, len(buf), lens, max_n, byref(count), 0)
            else:
                step = _step(deadline)
                if step <= 0:
                    raise Empty()
                st = _get_many(_handle_int(self._a), buf, len(buf), lens, max_n, byref(count), step)
            if st == _OK:
                return batch, batch[5][:count.value].tolist()
            if st == _BUFFER_TOO_SMALL:
                batch = _new_batch(max(lens[0], 2 * len(buf)), batch[2])
            elif st == _EMPTY:
                raise Empty()
            elif st != _TIMEOUT:
                raise self._error(st)

    # -- state ------------------------------------------------------------------------------

    def _live(self):
        """The typed handle, or ValueError once this process's handle was freed."""
        if not self._holder:
            raise self._closed_error()
        return self._h

    def qsize(self):
        """The number of messages in the queue now (exact: counted in shared memory)."""
        return lib.mpx_queue_qsize(self._live())

    def empty(self):
        """Whether the queue holds no message now."""
        if self._closed:
            raise self._closed_error()  # as multiprocessing's, whose reader is closed
        return bool(lib.mpx_queue_empty(self._live()))

    def full(self):
        """Whether a put would wait now (``maxsize`` messages are queued, or the ring has no
        room at all; a large message may not fit even when this is False)."""
        return bool(lib.mpx_queue_full(self._live()))

    @property
    def maxsize(self):
        """The message limit (0: none)."""
        return self._maxsize

    @property
    def capacity(self):
        """The ring's size in bytes (messages take 8 bytes of header each, padded to 8)."""
        return self._capacity

    @property
    def max_message(self):
        """The largest message (in bytes, after pickling for put) that fits."""
        return self._max_message

    def bytes_used(self):
        """Ring bytes in use now (headers and padding included)."""
        return lib.mpx_queue_bytes_used(self._live())

    def is_shutdown(self):
        """Whether some process called shutdown()."""
        return bool(lib.mpx_queue_is_shutdown(self._live()))

    def recoveries(self):
        """How many times a process found a side of the queue held by a dead process and
        repaired it."""
        return lib.mpx_queue_recoveries(self._live())

    @property
    def name(self):
        """The queue's name (as C programs open it), or None when it is not known."""
        return self._name

    @property
    def fd(self):
        """The segment's descriptor, owned by this object (dup it to keep it)."""
        fd = c_int()
        st = lib.mpx_queue_fd(self._live(), byref(fd))
        if st != _OK:
            raise self._error(st)
        return fd.value

    @property
    def closed(self):
        """Whether close() was called here (or the handle was freed)."""
        return self._closed or not self._holder

    # -- closing ----------------------------------------------------------------------------

    def close(self):
        """This process will neither put nor get any more: later calls here raise ValueError,
        as multiprocessing's. The queue itself stays usable by every other process (and its
        messages stay); the handle is freed when the object is collected or at exit."""
        self._closed = True
        self._a = None  # the fast calls now fail at once with MPX_E_INVALID

    def join_thread(self):
        """A no-op: there is no feeder thread (a put has copied its message when it returns)."""

    def cancel_join_thread(self):
        """A no-op: there is no feeder thread, so nothing can be lost at exit."""

    def shutdown(self):
        """Closes the queue for every process: puts fail with QueueClosed, gets return the
        messages left and then fail with QueueClosed, and every put or get blocked in any
        process wakes. Idempotent."""
        if self._closed:
            raise self._closed_error()
        st = lib.mpx_queue_shutdown(self._live())
        if st != _OK:
            raise self._error(st)

    def unlink(self):
        """Removes the queue's name: new opens fail with FileNotFoundError; processes that have
        it open keep using it."""
        if self._name is None:
            raise ValueError("%s has no name to unlink" % self._what())
        st = lib.mpx_queue_unlink_self(self._live())
        if st != _OK:
            raise self._error(st)

    def _free(self):
        """Frees this process's handle now (for tests; the caller makes sure no other thread
        is inside a call)."""
        self.close()
        _untrack(self)

    # -- pickling ---------------------------------------------------------------------------

    def __reduce__(self):
        if not self._holder:
            raise ValueError("cannot pickle a freed %s" % type(self).__name__)
        if self._name is None:
            # Anonymous: only to a child being started, by descriptor.
            fd = c_int()
            st = lib.mpx_queue_fd(self._h, byref(fd))
            if st != _OK:
                raise self._error(st)
            return (_rebuild_fd, (type(self), _share_fd(self, fd.value)))
        return (_rebuild, (type(self), self._name))

    # -- errors -----------------------------------------------------------------------------

    def _what(self):
        return "%s %r" % (type(self).__name__, self._name) if self._name else type(self).__name__

    def _closed_error(self):
        return ValueError("Queue %r is closed" % self)

    def _error(self, st):
        """The exception for a failed call's status. Call it right after the call: the message
        is the library's last error on this thread."""
        if st == _INVALID and not self._a and (self._closed or not self._holder):
            return self._closed_error()
        if st == _CLOSED:
            return QueueClosed(last_error() or "queue %r was shut down" % self._name, st)
        if st == _TOO_BIG:
            return MessageTooBig((last_error() or "message too big") + " (make the queue with a larger capacity=)", st)
        return error(st)

    def __repr__(self):
        if self.closed:
            state = "closed"
        else:
            try:
                state = "qsize=%d" % self.qsize()
            except Exception:
                state = "qsize=?"
        return "<mpx.%s name=%r maxsize=%d %s>" % (type(self).__name__, self._name, self._maxsize, state)


class Queue(_QueueBase):
    """A process-shared FIFO queue, as multiprocessing.Queue(maxsize=0): ``maxsize`` messages
    at most (0: no limit), in a ring of ``capacity`` bytes (default 4 MiB).

    ``Queue()`` makes a new one (shared with children of every start method);
    ``Queue.create(name, ...)`` / ``Queue.open(name)`` share one by name with other programs."""

    def __init__(self, maxsize=0, *, capacity=None, ctx=None):
        self._create(None, maxsize, capacity, 0)

    @classmethod
    def create(cls, name, maxsize=0, *, capacity=None, unlink_on_last_close=False):
        """Creates the named queue ``name``. FileExistsError if the name is taken."""
        self = object.__new__(cls)
        self._create(name, maxsize, capacity, MPX_F_UNLINK_ON_LAST_CLOSE if unlink_on_last_close else 0)
        return self


class JoinableQueue(Queue):
    """A Queue whose consumers mark each message done, as multiprocessing.JoinableQueue:
    ``task_done()`` after processing a message, ``join()`` waits until every message put has
    been marked done (counted in shared memory, across every process and language)."""

    _variant = MPX_QUEUE_JOINABLE

    def task_done(self):
        """Marks one message taken from the queue as done. ValueError if called more times than
        messages were put."""
        if not self._holder:
            raise self._closed_error()
        st = _task_done(self._ha)
        if st != _OK:
            if st == _STATE:
                raise ValueError("task_done() called too many times")
            raise self._error(st)

    def join(self, timeout=None):
        """Waits until every message put has been marked done; True, or False if ``timeout``
        seconds ran out (multiprocessing's join has no timeout and returns None)."""
        ns = _timeout_ns(True, timeout)
        deadline = _deadline(ns)
        while True:
            if not self._holder:
                raise self._closed_error()
            step = _step(deadline)
            st = _join(self._ha, _tns(max(step, 0)))
            if st == _OK:
                return True
            if st != _TIMEOUT:
                raise self._error(st)
            if step <= 0 or (deadline is not None and deadline - time.monotonic_ns() <= 0):
                return False

    def unfinished_tasks(self):
        """Messages put and not yet marked done."""
        return lib.mpx_queue_unfinished(self._live())


class SimpleQueue(_QueueBase):
    """A simplified queue, as multiprocessing.SimpleQueue: ``put``, ``get``, ``empty``,
    ``close`` (the other methods of Queue work too). No message limit; bounded in bytes by
    ``capacity`` (default 4 MiB) like every queue in shared memory."""

    _variant = MPX_QUEUE_SIMPLE

    def __init__(self, *, capacity=None, ctx=None):
        self._create(None, 0, capacity, 0)

    @classmethod
    def create(cls, name, *, capacity=None, unlink_on_last_close=False):
        """Creates the named simple queue ``name``."""
        self = object.__new__(cls)
        self._create(name, 0, capacity, MPX_F_UNLINK_ON_LAST_CLOSE if unlink_on_last_close else 0)
        return self
