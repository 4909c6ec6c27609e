"""Connections with the API of :mod:`multiprocessing.connection`, over mpx's C connections.

``Pipe(duplex=True)``, ``Connection`` (``send``/``recv`` of pickled objects, ``send_bytes``,
``recv_bytes``, ``recv_bytes_into``, ``poll``, ``fileno``, ``close``), ``Listener``, ``Client``
and ``wait`` behave as the standard library's, raise the same exceptions (EOFError when the
peer has closed, OSError "handle is closed", OSError "bad message length",
multiprocessing.BufferTooShort, multiprocessing.AuthenticationError) and speak the same wire
protocol and authkey handshake, so an mpx program and one that uses only the standard library
(in Python, or C/C++/Rust with mpx) talk to each other in both directions.

Addresses are the standard library's: a ``str`` path for a Unix socket (``"\\0name"`` or
``b"\\0name"`` for a Linux abstract name), a ``(host, port)`` tuple for TCP (an IPv6 host such
as ``"::1"`` works too: family ``'AF_INET6'``). ``Listener()`` without an address listens on a
fresh abstract Unix name (nothing on disk). A path listener removes its socket file on close.

mpx's additions:

* ``Listener.accept(timeout=None)`` and ``Client(..., timeout=None)`` take a timeout in seconds
  (TimeoutError when it runs out); the standard library's wait without limit.
* ``Connection.send_fds(fds)`` / ``recv_fds()`` pass file descriptors over Unix connections (a
  duplex Pipe, a Unix Listener/Client) in the standard library's ``reduction.sendfds`` form,
  and ``send_shm(shm)`` / ``recv_shm()`` pass an mpx SharedMemory (typically
  ``SharedMemory.anonymous(size)``, which has no name and cannot leak).
* ``Connection.from_fd(fd)`` (or ``Connection(fd)``, as in the standard library) wraps an
  inherited descriptor: a stream socket or a pipe end, e.g. one passed to a program started
  with ``mpx.spawn_executable(..., pass_fds=[fd])`` in any language.

Passing connections to other processes: a forked child (mpx or multiprocessing 'fork')
inherits them. For 'spawn' and 'forkserver' children (mpx's and the standard library's),
a Connection pickles as the standard library's does: its descriptor
is handed to the child at start (``multiprocessing.reduction.DupFd``), and sent through a
queue or pipe outside a start it travels through the standard library's resource sharer.
Pickle a connection before receiving on it: bytes it has already read ahead stay in this process.

Blocking calls release the GIL. Receiving, polling and accepting without a timeout wait in
slices of 0.1 s, so Ctrl-C (KeyboardInterrupt) and other signal handlers run while they wait.
``send`` blocks in one call until the peer has room (as the standard library's, without a
timeout); a peer that has gone is BrokenPipeError, never SIGPIPE.

Closing a connection while another thread of this process is inside a call on it is safe:
new calls raise OSError("handle is closed") at once, and the descriptor is closed when the
last call in progress returns (a blocked receive notices within a slice).
"""

import collections
import copyreg
import errno
import io
import operator
import os
import pickle
import select
import selectors
import socket
import threading
import time
from ctypes import (
    POINTER,
    Structure,
    byref,
    c_bool,
    c_char,
    c_char_p,
    c_int,
    c_int64,
    c_size_t,
    c_ssize_t,
    c_uint32,
    c_void_p,
    cast,
    create_string_buffer,
    py_object,
    pythonapi,
)
import ctypes
from multiprocessing import AuthenticationError, BufferTooShort, reduction

from . import errors
from ._lib import (
    MPX_CONN_MAX_FDS,
    MPX_CONN_READABLE,
    MPX_CONN_UNIX,
    MPX_CONN_WRITABLE,
    MPX_F_READ_ONLY,
    MPX_FOREVER,
    check,
    conn_p,
    entry,
    error,
    last_error,
    lib,
    listener_p,
    shm_p,
)
from ._objects import _SLICE_NS, _deadline, _step
from ._objects import _wait_timeout_ns as _timeout_ns

__all__ = ["AuthenticationError", "BufferTooShort", "Client", "Connection", "Listener", "Pipe", "wait"]

#: The address families understood here ('AF_INET6' is mpx's addition).
families = ["AF_UNIX", "AF_INET", "AF_INET6"]

_OK = errors.MPX_OK
_TIMEOUT = errors.MPX_E_TIMEOUT
_CLOSED = errors.MPX_E_CLOSED
_INVALID = errors.MPX_E_INVALID
_TOO_SMALL = errors.MPX_E_BUFFER_TOO_SMALL
_STATE = errors.MPX_E_STATE
_AUTH = errors.MPX_E_AUTH

# A listener's accept after a client showed up, when the caller set no timeout: the bound of
# the handshake (the library's default handshake timeout), and of the wait should another
# process have taken the client meanwhile.
_ACCEPT_NS = 30_000_000_000

# The receive buffer each connection reuses starts at this size and grows to _REUSED_MAX for
# messages that need it; a larger message is received straight into a bytes object of its size.
_INITIAL_BUFFER = 1024
_REUSED_MAX = 64 * 1024
# A larger message goes in parts (mpx_conn_recv_part) straight into the bytes object returned,
# so it is held once, never also by the library. Up to this size that object is made at the
# message's size at once (memory it has not received into yet is only reserved, not used); a
# longer one is received into a bytearray that grows as its bytes arrive, and copied into bytes
# at the end, so a peer announcing more than it sends costs nothing.
_WHOLE_AT_ONCE_MAX = 1 << 30

#
# Fast entry points for the hot calls (send, recv, poll), as mpx.synchronize makes them: no
# per-call argument conversion (argtypes None: every call passes ctypes objects of exactly the
# prototype's types, or bytes / None for pointers), blocking ones through CDLL (the GIL is
# released), non-blocking ones through PyDLL (the GIL stays held, which is cheaper).
#

_send = entry("mpx_conn_send", blocking=True)
_recv = entry("mpx_conn_recv", blocking=True)
_recv_part = entry("mpx_conn_recv_part", blocking=True)
_poll = entry("mpx_conn_poll", blocking=True)
_poll_now = entry("mpx_conn_poll", blocking=False)

_T0 = c_int64(0)
_ZERO = c_size_t(0)
_TSLICE = c_int64(_SLICE_NS)
_TFOREVER = c_int64(MPX_FOREVER)

# c_size_t objects for message lengths, made once each and never changed (so threads can share
# them): making one per call costs more than the rest of a small send's Python side.
_SIZES = {}
_SIZES_MAX = 4096


def _size(n):
    s = _SIZES.get(n)
    if s is None:
        s = c_size_t(n)
        if n <= _SIZES_MAX:
            _SIZES[n] = s
    return s


#
# Buffers of any bytes-like object, without copying: the buffer protocol through the C API.
#


class _Py_buffer(Structure):
    _fields_ = [
        ("buf", c_void_p),
        ("obj", c_void_p),
        ("len", c_ssize_t),
        ("itemsize", c_ssize_t),
        ("readonly", c_int),
        ("ndim", c_int),
        ("format", c_char_p),
        ("shape", c_void_p),
        ("strides", c_void_p),
        ("suboffsets", c_void_p),
        ("internal", c_void_p),
    ]


_PyBUF_SIMPLE = 0
_PyBUF_WRITABLE = 1

# PyDLL functions: ctypes raises the Python exception they set (TypeError, BufferError).
_get_buffer = pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [py_object, POINTER(_Py_buffer), c_int]
_get_buffer.restype = c_int
_release_buffer = pythonapi.PyBuffer_Release
_release_buffer.argtypes = [POINTER(_Py_buffer)]
_release_buffer.restype = None
# A bytes object of n bytes, filled by the receive that follows (it has no other reference yet,
# so writing into it is what CPython itself does when it builds a bytes object).
_new_bytes = pythonapi.PyBytes_FromStringAndSize
_new_bytes.argtypes = [c_void_p, c_ssize_t]
_new_bytes.restype = py_object
# Grows a bytearray without filling the new part (MemoryError when it cannot).
_resize_bytearray = pythonapi.PyByteArray_Resize
_resize_bytearray.argtypes = [py_object, c_ssize_t]
_resize_bytearray.restype = c_int
_FIRST_PART = 1 << 20


class _Buffer:
    """The contiguous memory of a bytes-like object, held (exported) until release()."""

    __slots__ = ("view", "held")

    def __init__(self, obj, writable=False):
        self.view = _Py_buffer()
        self.held = False
        try:
            _get_buffer(obj, byref(self.view), _PyBUF_WRITABLE if writable else _PyBUF_SIMPLE)
        except TypeError as e:
            # The standard library's message (it takes a memoryview of the object).
            raise TypeError("memoryview: %s" % e) from None
        except (BufferError, ValueError) as e:
            if writable and "not writable" in str(e):
                # What the standard library raises for read-only memory (bytes, ...).
                raise TypeError("a writable bytes-like object is required, not %r" % type(obj).__name__) from None
            if "contiguous" in str(e):
                # A strided view (numpy a[::2], a Fortran-order array): the standard library's
                # memoryview cast refuses it with TypeError, so do we (nothing is sent).
                raise TypeError("memoryview: casts are restricted to C-contiguous views") from None
            raise
        self.held = True

    def release(self):
        if self.held:
            self.held = False
            _release_buffer(byref(self.view))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _index(value, what):
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError("%s must be an integer, not %s" % (what, type(value).__name__)) from None


#
# Connection
#


class _State:
    """What one call in progress uses: out-parameters and the reusable receive buffer. A
    connection keeps them in a pool; a call takes one and puts it back, so calls from several
    threads never share out-parameters, and close() knows whether a call is in progress."""

    __slots__ = ("buf", "bref", "cap", "len", "plen", "ready", "pready")

    def __init__(self):
        self.set_buffer(_INITIAL_BUFFER)
        self.len = c_size_t()
        self.plen = byref(self.len)
        self.ready = c_bool()
        self.pready = byref(self.ready)

    def set_buffer(self, n):
        self.buf = (c_char * n)()
        self.bref = byref(self.buf)
        self.cap = c_size_t(n)


class _Part:
    """A message of ``n`` bytes being received in parts (mpx_conn_recv_part): where its bytes
    go and how many are there."""

    __slots__ = ("n", "whole", "buf", "view", "cap", "got", "pgot")

    def __init__(self, n):
        self.n = n
        self.got = c_size_t(0)
        self.pgot = byref(self.got)
        self.whole = n <= _WHOLE_AT_ONCE_MAX
        if self.whole:
            # Filled by the receives that follow: it has no other reference until it is returned.
            self.buf = _new_bytes(None, n)
            self.cap = c_size_t(n)
        else:
            self.buf = bytearray()
            _resize_bytearray(self.buf, _FIRST_PART)
            self.cap = c_size_t(_FIRST_PART)
        self.view = None

    def dest(self):
        if self.whole:
            return self.buf
        self.view = (c_char * len(self.buf)).from_buffer(self.buf)
        return byref(self.view)

    def grow(self):
        """Doubles a bytearray that is full (the library asked for room), up to the message."""
        if self.whole:
            raise AssertionError("mpx_conn_recv_part: no room in a buffer of the message's size")
        self.view = None  # releases the export, so the bytearray may be resized
        size = min(self.n, 2 * len(self.buf))
        _resize_bytearray(self.buf, size)  # new bytes are not zeroed: the receive writes them
        self.cap = c_size_t(size)

    def result(self):
        self.view = None
        return self.buf if self.whole else bytes(self.buf)


_state_lock = threading.Lock()


def _rebuild_connection(df, readable, writable):
    """Unpickles a Connection in the receiving process: the descriptor from DupFd."""
    fd = df.detach()
    flags = (MPX_CONN_READABLE if readable else 0) | (MPX_CONN_WRITABLE if writable else 0)
    try:
        h = _open_fd(fd, flags)
    except BaseException:
        os.close(fd)  # still ours: nothing took it
        raise
    return Connection._adopt(h)  # from here the handle owns fd (and closes it on failure)


class Connection:
    """One end of a connection: whole messages to another process (pickled objects with
    send/recv, bytes with send_bytes/recv_bytes), as multiprocessing.connection.Connection.

    ``Connection(fd, readable=True, writable=True)`` wraps a descriptor this process owns (a
    stream socket or a pipe end; with both flags left True it goes every way the descriptor
    allows); the connection then owns it. Pipe(), Listener.accept() and Client() make them too.
    """

    # The handle as the fast entry points take it (a ctypes reference whose value is the
    # handle's address: passed as is, where a c_void_p would be converted on every call); None
    # once closed, which the C functions refuse as NULL.
    _a = None
    _ra = None
    _h = None
    _fd = -1
    _readable = False
    _writable = False
    _unix = False
    # Set once a receive met the end of the stream inside a message: as in the standard
    # library, that message's bytes are gone and later receives see the plain end (EOFError).
    _ended_mid_message = False

    def __init__(self, handle, readable=True, writable=True):
        fd = _index(handle, "handle")
        if fd < 0:
            raise ValueError("invalid handle")
        if not readable and not writable:
            raise ValueError("at least one of `readable` and `writable` must be True")
        flags = 0 if (readable and writable) else (MPX_CONN_READABLE if readable else MPX_CONN_WRITABLE)
        h = _open_fd(fd, flags)
        try:
            self._init(h)
        except BaseException:
            lib.mpx_conn_close(h)
            raise

    @classmethod
    def from_fd(cls, fd, readable=None, writable=None):
        """A connection over the descriptor ``fd`` (inherited from a parent, received with
        recv_fds, or a standard-library Connection's ``fileno()`` after ``os.dup``): a stream
        socket (Unix or TCP) or a pipe end. ``readable``/``writable`` None: whatever the
        descriptor allows; True/False restricts. On success the connection owns ``fd``; on
        failure (ValueError for a descriptor that is not a socket or pipe) the caller still
        does."""
        fd = _index(fd, "fd")
        if readable is None and writable is None:
            flags = 0
        else:
            r = readable if readable is not None else not writable
            w = writable if writable is not None else not readable
            if not r and not w:
                raise ValueError("at least one of `readable` and `writable` must be True")
            flags = (MPX_CONN_READABLE if r else 0) | (MPX_CONN_WRITABLE if w else 0)
        return cls._from_fd(fd, flags)

    @classmethod
    def _from_fd(cls, fd, flags):
        return cls._adopt(_open_fd(fd, flags))

    @classmethod
    def _adopt(cls, h):
        self = cls.__new__(cls)
        try:
            self._init(h)
        except BaseException:
            lib.mpx_conn_close(h)
            raise
        return self

    def _init(self, h):
        fd, flags = c_int(), c_uint32()
        check(lib.mpx_conn_fileno(h, byref(fd)))
        check(lib.mpx_conn_flags(h, byref(flags)))
        self._h = h
        self._fd = fd.value
        self._readable = bool(flags.value & MPX_CONN_READABLE)
        self._writable = bool(flags.value & MPX_CONN_WRITABLE)
        self._unix = bool(flags.value & MPX_CONN_UNIX)
        self._pool = [_State()]
        self._nstates = 1
        # A large message being received in parts (_Part), kept should a wait for it end early,
        # and the lock of the one thread receiving it.
        self._part = None
        self._part_lock = threading.Lock()
        self._closing = []
        self._a = byref(c_char.from_address(cast(h, c_void_p).value))
        # Receiving calls pass this one: None (NULL, refused by C) once the connection may not
        # receive (closed, write-only, after a bad message length), at no cost per call.
        self._ra = self._a if self._readable else None

    # -- call bookkeeping (see _State) ---------------------------------------------------------

    def _new_state(self):
        with _state_lock:
            self._nstates += 1
        return _State()

    def _take(self):
        """A _State for one call (the hot paths, send_bytes and recv_bytes, do this inline)."""
        try:
            return self._pool.pop()
        except IndexError:
            return self._new_state()

    def _give(self, s):
        """Puts back what _take gave, and frees the handle if close() came meanwhile."""
        self._pool.append(s)
        if self._a is None:
            self._finish_close()

    def _finish_close(self):
        """Frees the handle once close() was called and no call is in progress."""
        if len(self._pool) >= self._nstates:
            try:
                h = self._closing.pop()
            except IndexError:
                return
            lib.mpx_conn_close(h)

    # -- properties ----------------------------------------------------------------------------

    @property
    def closed(self):
        """True if the connection is closed."""
        return self._a is None

    @property
    def readable(self):
        """True if the connection can receive."""
        return self._readable

    @property
    def writable(self):
        """True if the connection can send."""
        return self._writable

    def fileno(self):
        """The descriptor (owned by the connection). A message may already be buffered inside
        the connection while the descriptor is quiet: use poll() or wait(), not select on it
        alone."""
        self._check_closed()
        return self._fd

    def close(self):
        """Closes the connection (the peer then sees the end of the stream). Calling it again
        does nothing."""
        if self._a is None:
            return
        self._a = self._ra = None
        self._closing.append(self._h)
        self._finish_close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()

    def __repr__(self):
        if self._a is None:
            return "<%s closed>" % type(self).__name__
        ways = "duplex" if self._readable and self._writable else ("read-only" if self._readable else "write-only")
        return "<%s fd=%d %s%s>" % (type(self).__name__, self._fd, ways, " unix" if self._unix else "")

    def __reduce__(self):
        # As the standard library's reduce_connection: the descriptor travels with DupFd (to a
        # spawning child at start, else through the resource sharer).
        df = reduction.DupFd(self.fileno())
        return (_rebuild_connection, (df, self._readable, self._writable))

    # -- errors --------------------------------------------------------------------------------

    def _check_closed(self):
        if self._a is None:
            raise OSError("handle is closed")

    def _check_readable(self):
        if not self._readable:
            raise OSError("connection is write-only")

    def _check_writable(self):
        if not self._writable:
            raise OSError("connection is read-only")

    def _recv_error(self, st):
        """The exception for a failed receive (call right after it, on the same thread)."""
        msg = last_error()
        if st == _CLOSED:
            if "middle" in msg and not self._ended_mid_message:
                self._ended_mid_message = True
                return OSError("got end of file during message: %s" % msg)
            # The standard library's EOFError carries no message.
            return EOFError()
        if st == _INVALID:
            if self._a is None:
                return OSError("handle is closed")
            if not self._readable:
                return OSError("connection is write-only")
        if st == _TOO_SMALL:  # recv_fds: more descriptors than asked for (they are kept)
            return ValueError(msg)
        return error(st, msg)

    def _send_error(self, st):
        msg = last_error()
        if st == _CLOSED:
            # As the standard library's (os.write's): errno EPIPE with the OS's text.
            return BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
        if st == _INVALID:
            if self._a is None:
                return OSError("handle is closed")
            if not self._writable:
                return OSError("connection is read-only")
        return error(st, msg)

    def _bad_message_length(self):
        # As the standard library: a duplex connection stops receiving, a one-way one closes.
        if self._writable:
            self._readable = False
            self._ra = None
        else:
            self.close()
        raise OSError("bad message length")

    # -- sending -------------------------------------------------------------------------------

    def send_bytes(self, buf, offset=0, size=None):
        """Sends the bytes of a bytes-like object (``buf[offset:offset + size]``, in bytes) as
        one message."""
        if type(buf) is bytes and offset == 0 and size is None:
            # The common case in one C call: bytes pass as a pointer to their contents.
            pool = self._pool
            try:
                s = pool.pop()
            except IndexError:
                s = self._new_state()
            try:
                st = _send(self._a, buf, _SIZES.get(len(buf)) or _size(len(buf)))
            finally:
                pool.append(s)
                if self._a is None:
                    self._finish_close()
            if st:
                raise self._send_error(st)
            return
        self._check_closed()
        self._check_writable()
        with _Buffer(buf) as b:
            n = b.view.len
            offset = _index(offset, "offset")
            if offset < 0:
                raise ValueError("offset is negative")
            if n < offset:
                raise ValueError("buffer length < offset")
            if size is None:
                size = n - offset
            else:
                size = _index(size, "size")
                if size < 0:
                    raise ValueError("size is negative")
                if offset + size > n:
                    raise ValueError("buffer length < offset + size")
            self._send_ptr((b.view.buf or 0) + offset, size)

    def _send_ptr(self, address, size):
        s = self._take()
        try:
            st = _send(self._a, c_void_p(address), _size(size))
        finally:
            self._give(s)
        if st:
            raise self._send_error(st)

    def send(self, obj):
        """Sends a picklable object (pickled with multiprocessing's ForkingPickler, so the
        objects it knows how to pass, e.g. connections and sockets, travel too)."""
        self._check_closed()
        self._check_writable()
        buf = io.BytesIO()
        (_pickler or _get_pickler())(buf).dump(obj)
        # getvalue() hands over the BytesIO's own bytes object (no copy), which passes to C
        # as it is.
        self.send_bytes(buf.getvalue())

    # -- receiving -----------------------------------------------------------------------------

    def recv_bytes(self, maxlength=None):
        """Receives one message as bytes, waiting as long as it takes. EOFError when the peer
        has closed; with ``maxlength``, a longer message is OSError("bad message length")."""
        if maxlength is not None:
            # The standard library's order of checks; maxlength is compared, not converted
            # (a float works, a str is the comparison's TypeError).
            if self._ra is None:
                self._check_closed()
                self._check_readable()
            if maxlength < 0:
                raise ValueError("negative maxlength")
        pool = self._pool
        try:
            s = pool.pop()
        except IndexError:
            s = self._new_state()
        try:
            st = _recv(self._ra, s.bref, s.cap, s.plen, _TSLICE)
            if st == _OK:
                n = s.len.value
                if maxlength is None or n <= maxlength:
                    return s.buf[:n]
            return self._recv_rest(s, st, maxlength, None)
        finally:
            pool.append(s)
            if self._a is None:
                self._finish_close()

    def _recv_rest(self, s, st, maxlength, deadline):
        """The rest of a receive that did not complete in its first slice: waits in slices until
        ``deadline`` (None: without limit), grows the buffer or receives into a bytes object of
        the message's size. Returns the bytes; raises TimeoutError when the deadline passes."""
        dest, cap = s.bref, s.cap
        while True:
            if st == _OK:
                n = s.len.value
                if maxlength is not None and n > maxlength:
                    self._bad_message_length()
                return s.buf[:n] if dest is s.bref else dest
            if st == _TIMEOUT:
                ns = _step(deadline)
                if ns == 0:
                    raise TimeoutError("no complete message within the timeout (what arrived is kept)")
                st = _recv(self._ra, dest, cap, s.plen, _TSLICE if ns == _SLICE_NS else c_int64(ns))
                continue
            if st == _TOO_SMALL:
                n = s.len.value
                if maxlength is not None and n > maxlength:
                    self._bad_message_length()
                if n > _REUSED_MAX:
                    return self._recv_large(s, maxlength, deadline)
                size = _INITIAL_BUFFER
                while size < n:
                    size *= 2
                s.set_buffer(size)
                dest, cap = s.bref, s.cap
                st = _recv(self._ra, dest, cap, s.plen, _T0)
                continue
            if st == _STATE:
                # A large message that an earlier call began (and was interrupted in), or that
                # another thread is receiving now.
                return self._recv_large(s, maxlength, deadline)
            raise self._recv_error(st)

    def _recv_large(self, s, maxlength, deadline):
        """Receives the pending message in parts into memory of this binding (see
        _WHOLE_AT_ONCE_MAX), waiting in slices until ``deadline``. If the wait ends early
        (TimeoutError, or an exception from a signal handler between slices), what arrived stays
        in self._part and the next receive goes on with it."""
        # One large receive at a time on a connection: a second thread that finds one in
        # progress waits for it here, then receives whatever message is next.
        with self._part_lock:
            part = self._part
            if part is not None and part.got.value == part.n:
                # Completed by a call that was interrupted before it could hand it over.
                self._part = None
                return part.result()
            if part is None:
                n = self._pending_length(s, deadline)
                if n == 0:
                    return b""
                if maxlength is not None and n > maxlength:
                    self._bad_message_length()
                part = self._part = _Part(n)
            elif maxlength is not None and part.n > maxlength:
                self._bad_message_length()
            return self._recv_part_loop(s, part, deadline)

    def _pending_length(self, s, deadline):
        """The length of the next message (0: an empty one, now received), asked of the
        library with no room given, waiting in slices until ``deadline`` for its header."""
        got = c_size_t(0)
        while True:
            ns = _step(deadline)
            st = _recv_part(self._ra, None, _ZERO, byref(got), s.plen, _c_ns(ns))
            if st == _TOO_SMALL:
                return s.len.value
            if st == _OK:
                return 0
            if st == _TIMEOUT:
                if ns == 0:
                    raise TimeoutError("no complete message within the timeout (what arrived is kept)")
                continue
            raise self._recv_error(st)

    def _recv_part_loop(self, s, part, deadline):
        while True:
            ns = _step(deadline)
            st = _recv_part(self._ra, part.dest(), part.cap, part.pgot, s.plen, _c_ns(ns))
            if st == _OK:
                self._part = None
                return part.result()
            if st == _TOO_SMALL:
                part.grow()
                continue
            if st == _TIMEOUT:
                if ns == 0:
                    raise TimeoutError("no complete message within the timeout (what arrived is kept)")
                continue
            self._part = None
            raise self._recv_error(st)

    def recv(self):
        """Receives one pickled object (what send() sent), waiting as long as it takes."""
        return pickle.loads(self.recv_bytes())

    def recv_bytes_into(self, buf, offset=0):
        """Receives one message into the writable bytes-like ``buf`` at byte ``offset`` and
        returns its size. A message that does not fit raises multiprocessing.BufferTooShort
        with the whole message as ``args[0]``."""
        self._check_closed()
        self._check_readable()
        offset = _index(offset, "offset")
        with _Buffer(buf, writable=True) as b:
            n = b.view.len
            if offset < 0:
                raise ValueError("negative offset")
            if offset > n:
                raise ValueError("offset too large")
            s = self._take()
            try:
                dest, cap = c_void_p((b.view.buf or 0) + offset), c_size_t(n - offset)
                if self._part is not None:
                    # Finish the large message an earlier call began, then hand it over here.
                    whole = self._recv_rest(s, _STATE, None, None)
                    if len(whole) > cap.value:
                        raise BufferTooShort(whole)
                    ctypes.memmove(dest, whole, len(whole))
                    return len(whole)
                deadline = None
                st = _recv(self._ra, dest, cap, s.plen, _TSLICE)
                while st == _TIMEOUT:
                    st = _recv(self._ra, dest, cap, s.plen, _c_ns(_step(deadline)))
                if st == _OK:
                    return s.len.value
                if st != _TOO_SMALL:
                    raise self._recv_error(st)
                # As the standard library: the message is consumed and handed over whole.
                whole = self._recv_rest(s, st, None, None)
            finally:
                self._give(s)
        raise BufferTooShort(whole)

    def poll(self, timeout=0.0):
        """Whether there is something to receive (a message, or the end of the stream), waiting
        up to ``timeout`` seconds (None: as long as it takes)."""
        if self._ra is None:
            self._check_closed()
            self._check_readable()
        ns = _timeout_ns(timeout)
        s = self._take()
        try:
            if ns == 0:
                st = _poll_now(self._ra, _T0, s.pready)
            else:
                deadline = _deadline(ns)
                while True:
                    st = _poll(self._ra, _c_ns(_step(deadline)), s.pready)
                    if st != _OK or s.ready.value:
                        break
                    if deadline is not None and time.monotonic_ns() >= deadline:
                        break
            if st:
                raise self._recv_error(st)
            return s.ready.value
        finally:
            self._give(s)

    # -- descriptors and shared memory (mpx's additions) -----------------------------------------

    def send_fds(self, fds):
        """Sends file descriptors (1 to 253) over a Unix connection; the peer gets duplicates
        and this process keeps its own. The form is the standard library's
        ``multiprocessing.reduction.sendfds``, so a peer may receive them with
        ``reduction.recvfds`` / ``recv_handle``."""
        fds = [_index(fd, "descriptor") for fd in fds]
        if not 1 <= len(fds) <= MPX_CONN_MAX_FDS:
            raise ValueError("send_fds: %d descriptors (1 to %d can be sent at once)" % (len(fds), MPX_CONN_MAX_FDS))
        arr = (c_int * len(fds))(*fds)
        self._call(lambda a: lib.mpx_conn_send_fds(a, arr, len(fds)), self._send_error)

    def recv_fds(self, maxfds=MPX_CONN_MAX_FDS, timeout=None):
        """Receives descriptors sent with send_fds (or the standard library's ``sendfds``):
        a list of ints the caller owns (close-on-exec). At most ``maxfds`` (more: ValueError,
        and they stay for the next call). TimeoutError when ``timeout`` seconds pass."""
        maxfds = _index(maxfds, "maxfds")
        if not 1 <= maxfds <= MPX_CONN_MAX_FDS:
            raise ValueError("maxfds must be in 1..%d" % MPX_CONN_MAX_FDS)
        arr = (c_int * maxfds)()
        n = c_size_t()
        self._call_sliced(lambda a, t: lib.mpx_conn_recv_fds(a, arr, maxfds, byref(n), t), timeout)
        return list(arr[: n.value])

    def send_shm(self, shm):
        """Sends an mpx SharedMemory (typically ``SharedMemory.anonymous(size)``) over a Unix
        connection by its descriptor; it stays usable here. The peer opens the same memory with
        recv_shm (or maps the descriptor itself: see docs/CONNECTIONS.md)."""
        from .shared_memory import SharedMemory  # lazily: a program of connections alone never loads it

        if not isinstance(shm, SharedMemory):
            raise TypeError("send_shm: expected an mpx.shared_memory.SharedMemory, not %s" % type(shm).__name__)
        h = shm._live_handle()
        if h is None:
            raise ValueError("send_shm: the SharedMemory is closed")
        if not hasattr(h, "handle"):  # a Handle (mpx._objects): the call holds it
            self._call(lambda a: lib.mpx_conn_send_shm(a, h), self._send_error)
            return
        # A Mapping: an export of its memory for the call, so that a close() from another
        # thread fails with BufferError instead of freeing the handle under the call.
        with memoryview(h):
            p = cast(c_void_p(h.handle), shm_p)
            self._call(lambda a: lib.mpx_conn_send_shm(a, p), self._send_error)

    def recv_shm(self, readonly=False, timeout=None):
        """Receives a buffer sent with send_shm (from any language) and returns it as an mpx
        SharedMemory (``name`` None; ``buf`` a memoryview, ready for numpy.frombuffer). Its
        header is validated as for any open. TimeoutError when ``timeout`` seconds pass."""
        from .shared_memory import SharedMemory  # lazily, as in send_shm

        h = shm_p()
        flags = MPX_F_READ_ONLY if readonly else 0
        self._call_sliced(lambda a, t: lib.mpx_conn_recv_shm(a, flags, t, byref(h)), timeout)
        return SharedMemory._from_handle(h, readonly)

    def _call(self, fn, on_error):
        """Runs ``fn(handle)`` (a non-hot call) with the bookkeeping of a call in progress."""
        self._check_closed()
        s = self._take()
        try:
            st = fn(self._h_live())
            if st:
                raise on_error(st)
        finally:
            self._give(s)

    def _call_sliced(self, fn, timeout):
        """Runs the blocking ``fn(handle, timeout_ns)`` in slices until it stops timing out or
        ``timeout`` seconds (None: without limit) pass: TimeoutError then."""
        self._check_closed()
        deadline = _deadline(_timeout_ns(timeout))
        s = self._take()
        try:
            while True:
                ns = _step(deadline)
                st = fn(self._h_live(), ns)
                if st != _TIMEOUT:
                    break
                if deadline is not None and time.monotonic_ns() >= deadline:
                    raise TimeoutError("nothing arrived within the timeout")
            if st:
                raise self._recv_error(st)
        finally:
            self._give(s)

    def _h_live(self):
        # The typed handle for lib calls; a NULL one once closed (the call then fails cleanly).
        return self._h if self._a is not None else conn_p()


_pickler = None


def _get_pickler():
    """The pickler send() uses: multiprocessing's ForkingPickler's reductions (connections,
    sockets, ... and whatever is registered with it or with copyreg), looked up live instead of
    copied into every new pickler as ForkingPickler does (most of its cost for small objects)."""
    global _pickler

    class _ForkingPickler(pickle.Pickler):
        dispatch_table = collections.ChainMap(reduction.ForkingPickler._extra_reducers, copyreg.dispatch_table)

    _pickler = _ForkingPickler
    return _pickler


def _c_ns(ns):
    return _TSLICE if ns == _SLICE_NS else c_int64(ns)


def _open_fd(fd, flags):
    """An mpx_conn over ``fd`` (owned by it on success; still the caller's on failure)."""
    h = conn_p()
    check(lib.mpx_conn_from_fd(fd, flags, byref(h)))
    return h


def Pipe(duplex=True):
    """A pair of connected Connections, as multiprocessing.Pipe: duplex over a Unix socketpair
    (both ends send and receive, and can pass descriptors), or one way over a pipe, where the
    first end only receives and the second only sends."""
    a, b = conn_p(), conn_p()
    check(lib.mpx_pipe(bool(duplex), byref(a), byref(b)))
    try:
        c1 = Connection._adopt(a)
    except BaseException:
        lib.mpx_conn_close(b)
        raise
    return c1, Connection._adopt(b)


#
# Addresses
#


def address_type(address):
    """The family of an address: 'AF_INET' for a (host, port) tuple ('AF_INET6' when the host is
    an IPv6 address), 'AF_UNIX' for a path or an abstract name; TypeError otherwise."""
    if type(address) is tuple:
        host = address[0] if address else ""
        return "AF_INET6" if isinstance(host, str) and ":" in host else "AF_INET"
    if isinstance(address, (str, bytes, os.PathLike)):
        return "AF_UNIX"
    # The standard library's exception for an object of another type.
    raise TypeError("address type of %r unrecognized" % (address,))


def _validate_family(family):
    if family == "AF_PIPE":
        raise ValueError("Family %s is not recognized." % family)
    if family not in families:
        raise ValueError("Family %s is not recognized." % family)


def _c_address(address, family):
    """An address in the standard library's form as the C ABI's address string."""
    kind = address_type(address)
    if family is not None and family != kind and not (family == "AF_INET6" and kind == "AF_INET"):
        # What binding a socket of one family to another's address raises.
        raise TypeError("%s address must be %s, not %s" % (family, "str" if family == "AF_UNIX" else "tuple", type(address).__name__))
    if kind in ("AF_INET", "AF_INET6"):
        if family == "AF_INET6" or kind == "AF_INET6":
            # (host, port[, flowinfo[, scope_id]]), as socket.AF_INET6 takes it.
            if not 2 <= len(address) <= 4:
                raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
        elif len(address) != 2:
            raise TypeError("AF_INET address must be a pair (host, port)")
        host, port = address[0], address[1]
        if not isinstance(host, str):
            raise TypeError("host must be a str, not %s" % type(host).__name__)
        port = _index(port, "port")
        if not 0 <= port <= 65535:
            raise OverflowError("port must be 0-65535.")
        if host == "":
            host = "::" if family == "AF_INET6" else "0.0.0.0"
        if ":" in host or family == "AF_INET6":
            s = "tcp:[%s]:%d" % (host.strip("[]"), port)
        else:
            s = "tcp:%s:%d" % (host, port)
    else:
        path = os.fsdecode(address)
        if path.startswith("\0"):
            s = "unix:@" + path[1:]
        else:
            s = "unix:" + path
    if "\0" in s:
        raise ValueError("address %r contains a null character" % (address,))
    return s.encode("utf-8", "surrogateescape")


def _py_address(s):
    """The C ABI's address string in the standard library's form (as socket.getsockname()
    gives it: a str path, b"\\0name" for an abstract name, (host, port) for TCP)."""
    if s.startswith("tcp:"):
        host, port = s[4:].rsplit(":", 1)
        if host.startswith("["):
            # An IPv6 socket's name has four fields (host, port, flowinfo, scope_id).
            return (host[1:-1], int(port), 0, 0)
        return (host, int(port))
    if s.startswith("unix:@"):
        return b"\0" + os.fsencode(s[6:])
    if s.startswith("unix:"):
        return s[5:]
    return s


def _check_address(st):
    """check() for listener_create / client_connect: a host name that does not resolve is
    socket.gaierror, as the standard library's socket calls raise it."""
    if st == errors.MPX_E_NOT_FOUND:
        msg = last_error()
        if "cannot resolve host" in msg:
            raise socket.gaierror(socket.EAI_NONAME, msg)
        raise error(st, msg)
    check(st)


def _authkey_arg(authkey):
    if authkey is not None and not isinstance(authkey, bytes):
        raise TypeError("authkey should be a byte string")
    return authkey


def _read_string(fn, h):
    """A string the C ABI writes with (buf, cap, &len) and MPX_E_BUFFER_TOO_SMALL."""
    n = c_size_t()
    buf = create_string_buffer(256)
    st = fn(h, buf, 256, byref(n))
    if st == _TOO_SMALL:
        buf = create_string_buffer(n.value + 1)
        st = fn(h, buf, n.value + 1, byref(n))
    check(st)
    return buf.raw[: n.value].decode("utf-8", "surrogateescape")


#
# Listener and Client
#


class Listener:
    """A listening socket that accepts authenticated (with ``authkey``) connections, as
    multiprocessing.connection.Listener.

    ``Listener(address=None, family=None, backlog=1, authkey=None)``: ``address`` a Unix path,
    an abstract name (``"\\0name"``) or ``(host, port)`` (port 0: the kernel picks one; read
    ``address``). Without an address: a fresh abstract Unix name (or ``('localhost', 0)`` for
    family 'AF_INET'). An address in use is OSError EADDRINUSE.
    """

    _h = None
    _address = None
    _last_accepted = None
    _closing = False

    def __init__(self, address=None, family=None, backlog=1, authkey=None):
        if not address:
            address = None  # as the standard library: an empty address is no address
        if family is not None:
            _validate_family(family)
        family = family or (address is not None and address_type(address)) or "AF_UNIX"
        _validate_family(family)
        authkey = _authkey_arg(authkey)
        backlog = _index(backlog, "backlog")
        if address is None:
            c_address = {"AF_UNIX": b"unix:@", "AF_INET": b"tcp:127.0.0.1:0", "AF_INET6": b"tcp:[::1]:0"}[family]
        else:
            c_address = _c_address(address, family)
        # As the standard library's Listener: an empty key means no handshake.
        key = bytes(authkey) if authkey else None
        h = listener_p()
        st = lib.mpx_listener_create(c_address, max(1, backlog), key, len(key) if key else 0, byref(h))
        if st == errors.MPX_E_EXISTS:
            raise OSError(errno.EADDRINUSE, "Address already in use: %s" % last_error())
        _check_address(st)
        self._h = h
        self._owner = os.getpid()
        self._authkey = key
        # accept() calls in progress, so that close() from another thread never frees the
        # handle under one of them (it is freed when the last one returns).
        self._lock = threading.Lock()
        self._busy = 0
        self._closing = False
        try:
            fd = c_int()
            check(lib.mpx_listener_fileno(h, byref(fd)))
            self._fd = fd.value
            self._address = _py_address(_read_string(lib.mpx_listener_address, h))
            if address is None and isinstance(self._address, bytes):
                # The standard library's default address is a str (a path); this fresh
                # abstract name is given as a str too ("\0..."), which every Client accepts.
                self._address = os.fsdecode(self._address)
        except BaseException:
            self.close()
            raise

    def accept(self, timeout=None):
        """Waits for a client and returns its Connection, after the authkey handshake when
        the listener has a key (AuthenticationError if the client fails it; accept again for
        the next one). ``timeout`` (mpx's addition): seconds to wait for a client and its
        handshake, TimeoutError when they pass; None waits as long as it takes."""
        deadline = _deadline(_timeout_ns(timeout))
        with self._lock:
            if self._h is None:
                raise OSError("listener is closed")
            self._busy += 1
        try:
            out = self._accept(deadline)
        finally:
            with self._lock:
                self._busy -= 1
                h = self._free_now()
            if h is not None:
                lib.mpx_listener_close(h)
        conn = Connection._adopt(out)
        try:
            self._last_accepted = _py_address(_read_string(lib.mpx_conn_peer_address, out))
        except Exception:
            self._last_accepted = None
        return conn

    def _accept(self, deadline):
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while True:
            # Wait in Python, in slices (signal handlers run; a close() from another thread is
            # noticed), then accept and authenticate in C once a client is there.
            if self._closing:
                raise OSError("listener is closed")
            ns = _step(deadline)
            ready = poller.poll((ns + 999_999) // 1_000_000)
            if not ready:
                if deadline is not None and time.monotonic_ns() >= deadline:
                    raise TimeoutError("accept: no client within the timeout")
                continue
            if self._closing:
                raise OSError("listener is closed")
            out = conn_p()
            wait_ns = _ACCEPT_NS if deadline is None else max(1, deadline - time.monotonic_ns())
            st = lib.mpx_listener_accept(self._h, wait_ns, byref(out))
            if st == _OK:
                return out
            msg = last_error()
            if st == _AUTH:
                raise AuthenticationError(msg)
            if st == _TIMEOUT:
                if "handshake" in msg:
                    # A client that stayed silent through the handshake failed to authenticate.
                    if deadline is None:
                        raise AuthenticationError(msg)
                    raise TimeoutError(msg)
                if deadline is not None and time.monotonic_ns() >= deadline:
                    raise TimeoutError(msg)
                continue  # another process took the client: wait again
            raise error(st, msg)

    def _free_now(self):
        """The handle to free, once close() was called and no accept is in progress (call
        with the lock held)."""
        if self._closing and self._busy == 0 and self._h is not None:
            h, self._h = self._h, None
            return h
        return None

    def close(self):
        """Closes the listener (a Unix path it made is removed). Accepted connections stay."""
        lock = getattr(self, "_lock", None)
        if lock is None or self._h is None:
            return
        if getattr(self, "_owner", None) != os.getpid():
            # A forked child's copy: closing the handle would remove the socket path the
            # parent still listens on. Close only this process's descriptor; the handle's
            # memory goes with the process.
            self._h = None
            try:
                os.close(self._fd)
            except OSError:
                pass
            return
        with lock:
            self._closing = True
            h = self._free_now()
        if h is not None:
            lib.mpx_listener_close(h)

    @property
    def address(self):
        """The address clients connect to, with the kernel's choices filled in."""
        return self._address

    @property
    def last_accepted(self):
        """The address of the last accepted client ('' for an unnamed Unix client)."""
        return self._last_accepted

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        closed = self._h is None or self._closing
        return "<%s address=%r%s>" % (type(self).__name__, self._address, " closed" if closed else "")


def Client(address, family=None, authkey=None, *, timeout=None):
    """Connects to a Listener at ``address`` (any language's, the standard library's
    included) and returns the Connection. With ``authkey`` the mutual handshake runs
    (AuthenticationError if the keys differ). ``timeout`` (mpx's addition): seconds for the
    connection and the handshake together; TimeoutError when they pass."""
    if family == "AF_PIPE":
        _validate_family(family)
    authkey = _authkey_arg(authkey)
    # As the standard library's Client, the address alone says how to connect (the family is
    # only checked against 'AF_PIPE').
    c_address = _c_address(address, None)
    key = bytes(authkey) if authkey is not None else None
    out = conn_p()
    st = lib.mpx_client_connect(c_address, key, len(key) if key is not None else 0, _timeout_ns(timeout), byref(out))
    if st == _AUTH:
        raise AuthenticationError(last_error())
    _check_address(st)
    return Connection._adopt(out)


#
# wait
#


def wait(object_list, timeout=None):
    """Waits until one or more of the objects in ``object_list`` is ready, and returns those
    ready (an empty list when ``timeout`` seconds passed; None: as long as it takes), as
    multiprocessing.connection.wait: mpx Connections, the standard library's Connections,
    sockets, process sentinels, descriptors, anything with fileno()."""
    object_list = list(object_list)
    ready = set()
    for i, o in enumerate(object_list):
        # A message may be buffered inside an mpx connection while its descriptor is quiet.
        if isinstance(o, Connection) and o._readable and o.poll(0):
            ready.add(i)
    if ready:
        timeout = 0
    with selectors.PollSelector() as sel:
        for i, o in enumerate(object_list):
            sel.register(o, selectors.EVENT_READ, i)
        if timeout is not None:
            deadline = time.monotonic() + timeout
        while True:
            events = sel.select(timeout)
            if events or ready:
                ready.update(key.data for key, _ in events)
                return [object_list[i] for i in sorted(ready)]
            if timeout is not None:
                timeout = deadline - time.monotonic()
                if timeout < 0:
                    return []

