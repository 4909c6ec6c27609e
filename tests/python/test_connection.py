"""mpx.Pipe and mpx.connection (Listener, Client, wait) with real processes, against the
semantics of the standard library's multiprocessing.connection, and interoperating with it.

Children are mpx.Process (fork and spawn) and multiprocessing.Process (fork and spawn); their
targets are the functions at the top of this module (spawned children import it by name).
Every blocking call has a timeout and every child is joined with one: a hang is a failure.
"""

import array
import errno
import multiprocessing
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from multiprocessing import connection as std_conn

import numpy as np
import pytest

import mpx
from mpx import connection as mc
from mpx.shared_memory import SharedMemory
from patterns import pattern

TIMEOUT = 60  # seconds for any wait, child or call; generous for a loaded 2-core machine
KEY = b"conn-test-secret"
SIZES = [0, 1, 64 * 1024, 16 * 1024 * 1024 + 7]  # 0 bytes, 1 byte, 64 KiB, over 16 MiB


def recv(conn, timeout=TIMEOUT):
    assert conn.poll(timeout), "no message within %s s" % timeout
    return conn.recv_bytes()


# ---- child targets (module level: spawned children import them by name) ------------------------


def child_respond(conn, count):
    """Message i must be pattern(len, i); replies with pattern(len, i + 1). Exit 10 + i on a
    wrong message, 9 when nothing comes."""
    for i in range(count):
        if not conn.poll(TIMEOUT):
            sys.exit(9)
        m = conn.recv_bytes()
        if m != pattern(len(m), i):
            sys.exit(10 + i)
        conn.send_bytes(pattern(len(m), i + 1))
    conn.close()


def child_send_sizes(w, sizes):
    for i, n in enumerate(sizes):
        w.send_bytes(pattern(n, i))
    w.close()


def child_echo_objects(conn):
    while conn.poll(TIMEOUT):
        try:
            obj = conn.recv()
        except EOFError:
            return
        conn.send(obj)


def child_exit_quietly(conn):
    conn.close()


def child_client(address, authkey, sizes, expect):
    """Connects with mpx's Client; expect 'ok' (drive the sizes), 'auth' (AuthenticationError)."""
    try:
        conn = mc.Client(address, authkey=authkey, timeout=TIMEOUT)
    except multiprocessing.AuthenticationError:
        sys.exit(0 if expect == "auth" else 3)
    if expect == "auth":
        sys.exit(4)
    with conn:
        for i, n in enumerate(sizes):
            conn.send_bytes(pattern(n, i))
            if recv(conn) != pattern(n, i + 1):
                sys.exit(10 + i)


def child_std_client(address, authkey, sizes, expect):
    """The same with the standard library's Client (nothing from mpx)."""
    try:
        conn = std_conn.Client(address, authkey=authkey)
    except multiprocessing.AuthenticationError:
        sys.exit(0 if expect == "auth" else 3)
    if expect == "auth":
        sys.exit(4)
    with conn:
        for i, n in enumerate(sizes):
            conn.send_bytes(pattern(n, i))
            if not conn.poll(TIMEOUT) or conn.recv_bytes() != pattern(n, i + 1):
                sys.exit(10 + i)


def child_partial_frame(conn_fd, header_len, body_bytes):
    """Writes a frame header announcing header_len bytes, then body_bytes of them, and dies."""
    os.write(conn_fd, struct.pack("!i", header_len) + b"x" * body_bytes)
    os._exit(0)


def child_big_send(w, ready, size):
    ready.send_bytes(b"sending")
    w.send_bytes(b"z" * size)  # blocks: nobody reads; the parent kills us in the middle
    os._exit(0)


def child_use_passed_conn(carrier):
    """Receives a Connection over another connection and says hello through it."""
    if not carrier.poll(TIMEOUT):
        sys.exit(9)
    conn = carrier.recv()
    conn.send_bytes(b"hello through a passed connection")
    conn.close()


def child_fds(conn):
    """Receives two descriptors (a memfd and a pipe's write end) and an anonymous SharedMemory:
    reads the memfd, writes into the pipe, doubles the shm's numbers, replies."""
    fds = conn.recv_fds(8, timeout=TIMEOUT)
    if len(fds) != 2:
        sys.exit(3)
    memfd, pw = fds
    data = os.pread(memfd, 100, 0)
    os.write(pw, b"child saw " + data)
    os.close(memfd)
    os.close(pw)
    shm = conn.recv_shm(timeout=TIMEOUT)
    arr = np.frombuffer(shm.buf, dtype=np.int64)
    arr *= 2
    del arr
    shm.close()
    conn.send_bytes(b"done")


# ---- helpers -----------------------------------------------------------------------------------


CHILD_KINDS = ["mpx-fork", "mpx-spawn", "mp-fork", "mp-spawn"]


def start(kind, target, *args):
    lib, method = kind.split("-")
    ctx = mpx.get_context(method) if lib == "mpx" else multiprocessing.get_context(method)
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def finish(p, expect=0):
    p.join(TIMEOUT)
    if p.is_alive():
        p.kill()
        p.join(10)
        pytest.fail("child %r did not finish within %s s" % (p, TIMEOUT))
    assert p.exitcode == expect, "child exited with %r, wanted %r" % (p.exitcode, expect)


@pytest.fixture
def children():
    """start(kind, target, *args) -> process; whatever is still running at the end is killed."""
    started = []

    def run(kind, target, *args):
        p = start(kind, target, *args)
        started.append(p)
        return p

    try:
        yield run
    finally:
        for p in started:
            if p.is_alive():
                p.kill()
                p.join(10)


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Watchdog:
    """Runs ``action`` after ``seconds`` unless cancelled: unblocks a call a test expects to be
    interrupted otherwise, so a failure is an assertion, not a hang."""

    def __init__(self, seconds, action):
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire, args=(action,))
        self._timer.daemon = True
        self._timer.start()

    def _fire(self, action):
        self.fired = True
        action()

    def cancel(self):
        self._timer.cancel()


# ---- Pipe and Connection -----------------------------------------------------------------------


def test_names_and_exceptions_are_the_standard_librarys():
    assert mpx.Pipe is mc.Pipe
    assert mc.AuthenticationError is multiprocessing.AuthenticationError
    assert mc.BufferTooShort is multiprocessing.BufferTooShort
    for name in ("Client", "Listener", "Pipe", "wait"):
        assert callable(getattr(mc, name))
    for method in ("fork", "spawn", "forkserver"):
        a, b = mpx.get_context(method).Pipe()
        with a, b:
            a.send_bytes(b"ctx")
            assert recv(b) == b"ctx"
            assert isinstance(a, mc.Connection)


def test_duplex_pipe_sends_objects_both_ways():
    a, b = mpx.Pipe()
    with a, b:
        assert a.readable and a.writable and b.readable and b.writable
        objs = [None, 0, -1, 2**80, "text", b"\0bytes\0", (1, [2, {3: "4"}]), set(range(100)), 1.5, np.arange(10)]
        for o in objs:
            a.send(o)
        for o in objs:
            assert b.poll(TIMEOUT)
            got = b.recv()
            if isinstance(o, np.ndarray):
                assert np.array_equal(got, o)
            else:
                assert got == o
        # Larger than the socket buffer: a thread sends while this one receives.
        big = {"back": list(range(100000))}
        t = threading.Thread(target=b.send, args=(big,))
        t.start()
        assert a.poll(TIMEOUT)
        assert a.recv() == big
        t.join(TIMEOUT)


def test_one_way_pipe_directions_are_cpythons():
    r, w = mpx.Pipe(duplex=False)
    with r, w:
        assert r.readable and not r.writable
        assert w.writable and not w.readable
        with pytest.raises(OSError, match="connection is read-only"):
            r.send_bytes(b"x")
        with pytest.raises(OSError, match="connection is read-only"):
            r.send("x")
        with pytest.raises(OSError, match="connection is write-only"):
            w.recv_bytes()
        with pytest.raises(OSError, match="connection is write-only"):
            w.poll()
        w.send_bytes(b"one way")
        assert recv(r) == b"one way"


@pytest.mark.parametrize("duplex", [True, False])
def test_message_sizes_in_one_process(duplex):
    r, w = mpx.Pipe(duplex)
    with r, w:
        # The largest ones do not fit the pipe: a thread writes while this one reads.
        t = threading.Thread(target=lambda: [w.send_bytes(pattern(n, i)) for i, n in enumerate(SIZES)])
        t.start()
        try:
            for i, n in enumerate(SIZES):
                m = recv(r)
                assert type(m) is bytes
                assert len(m) == n and m == pattern(n, i), "message %d of %d bytes" % (i, n)
        finally:
            t.join(TIMEOUT)
        assert not t.is_alive()
        # Bytes with NULs and every value survive; an empty message is an empty message.
        w.send_bytes(bytes(range(256)) * 3)
        w.send_bytes(b"")
        assert recv(r) == bytes(range(256)) * 3
        assert recv(r) == b""


@pytest.mark.parametrize("kind", CHILD_KINDS)
def test_message_sizes_with_a_child_process(kind, children):
    a, b = mpx.Pipe()
    with a:
        p = children(kind, child_respond, b, len(SIZES))
        b.close()  # the child's copy is the only other end now
        for i, n in enumerate(SIZES):
            a.send_bytes(pattern(n, i))
            m = recv(a)
            assert len(m) == n and m == pattern(n, i + 1), "reply %d" % i
        finish(p)
        # The child closed its end and exited: the end of the stream.
        assert a.poll(TIMEOUT)
        with pytest.raises(EOFError):
            a.recv_bytes()


@pytest.mark.parametrize("kind", ["mpx-fork", "mp-spawn"])
def test_one_way_pipe_from_a_child(kind, children):
    r, w = mpx.Pipe(duplex=False)
    p = children(kind, child_send_sizes, w, SIZES)
    w.close()
    with r:
        for i, n in enumerate(SIZES):
            assert recv(r) == pattern(n, i)
        finish(p)
        assert r.poll(TIMEOUT)
        with pytest.raises(EOFError):
            r.recv()


def test_objects_to_a_spawned_child_and_back(children):
    a, b = mpx.Pipe()
    p = children("mpx-spawn", child_echo_objects, b)
    b.close()
    with a:
        for obj in [1, "two", {"three": [3.0]}, b"x" * 100000]:
            a.send(obj)
            assert a.poll(TIMEOUT)
            assert a.recv() == obj
        a.close()
        finish(p)


def test_end_of_stream_is_eoferror():
    a, b = mpx.Pipe()
    a.send_bytes(b"last words")
    a.close()
    with b:
        assert b.poll(TIMEOUT)
        assert b.recv_bytes() == b"last words"
        assert b.poll(0), "a closed peer counts as ready, as in CPython"
        for _ in range(2):
            with pytest.raises(EOFError):
                b.recv_bytes()
        with pytest.raises(EOFError):
            b.recv()
        with pytest.raises(EOFError):
            b.recv_bytes_into(bytearray(10))
        # Sending to a peer that has gone: BrokenPipeError, never SIGPIPE.
        with pytest.raises(BrokenPipeError):
            for _ in range(1000):
                b.send_bytes(b"x" * 1000)
    r, w = mpx.Pipe(duplex=False)
    r.close()
    with w, pytest.raises(BrokenPipeError):
        w.send_bytes(b"nobody reads")


def test_end_of_stream_when_the_child_exits(children):
    a, b = mpx.Pipe()
    p = children("mpx-fork", child_exit_quietly, b)
    b.close()
    with a:
        assert a.poll(TIMEOUT)
        with pytest.raises(EOFError):
            a.recv_bytes()
    finish(p)


def test_closed_handle_is_oserror_everywhere():
    a, b = mpx.Pipe()
    fd = a.fileno()
    with a:
        pass
    assert a.closed and not b.closed
    a.close()  # again: nothing
    calls = [
        lambda: a.send(1),
        lambda: a.send_bytes(b"x"),
        lambda: a.send_bytes(bytearray(b"x")),
        lambda: a.recv(),
        lambda: a.recv_bytes(),
        lambda: a.recv_bytes(10),
        lambda: a.recv_bytes_into(bytearray(10)),
        lambda: a.poll(),
        lambda: a.poll(0.1),
        lambda: a.fileno(),
        lambda: a.send_fds([0]),
        lambda: a.recv_fds(),
        lambda: pickle.dumps(a),
    ]
    for call in calls:
        with pytest.raises(OSError, match="handle is closed"):
            call()
    assert "closed" in repr(a)
    # The descriptor is really closed: the peer sees the end of the stream.
    with b:
        assert b.poll(TIMEOUT)
        with pytest.raises(EOFError):
            b.recv_bytes()
    del fd


def test_recv_bytes_into_and_buffer_too_short():
    a, b = mpx.Pipe()
    with a, b:
        a.send_bytes(b"0123456789")
        buf = bytearray(b"." * 16)
        assert b.poll(TIMEOUT)
        assert b.recv_bytes_into(buf, 3) == 10
        assert buf == b"...0123456789..."
        # Too small: BufferTooShort carrying the whole message, which is consumed.
        for msg in (b"x" * 17, pattern(200_000, 3)):
            a.send_bytes(msg)
            assert b.poll(TIMEOUT)
            with pytest.raises(multiprocessing.BufferTooShort) as e:
                b.recv_bytes_into(buf)
            assert e.value.args[0] == msg
            assert buf == b"...0123456789...", "a message that does not fit writes nothing"
        # An offset that leaves too little room.
        a.send_bytes(b"abcdef")
        assert b.poll(TIMEOUT)
        with pytest.raises(multiprocessing.BufferTooShort) as e:
            b.recv_bytes_into(buf, 12)
        assert e.value.args[0] == b"abcdef"
        # The next message arrives normally; an exact fit works.
        a.send_bytes(b"y" * 16)
        assert b.poll(TIMEOUT)
        assert b.recv_bytes_into(buf) == 16 and buf == b"y" * 16
        # Any writable buffer: numpy arrays, array.array (offset in bytes), memoryview.
        a.send_bytes(np.arange(4, dtype=np.int32).tobytes())
        arr = np.zeros(6, dtype=np.int32)
        assert b.poll(TIMEOUT)
        assert b.recv_bytes_into(arr, 8) == 16
        assert arr.tolist() == [0, 0, 0, 1, 2, 3]
        a.send_bytes(struct.pack("=2d", 1.5, -2.0))
        darr = array.array("d", [0.0] * 3)
        assert b.poll(TIMEOUT)
        assert b.recv_bytes_into(darr) == 16 and darr.tolist() == [1.5, -2.0, 0.0]
        a.send_bytes(b"mv")
        mv = memoryview(bytearray(4))
        assert b.poll(TIMEOUT)
        assert b.recv_bytes_into(mv[1:]) == 2 and mv.tobytes() == b"\0mv\0"
        # A big message straight into a big buffer.
        big = pattern(16 * 1024 * 1024 + 7, 9)
        t = threading.Thread(target=a.send_bytes, args=(big,))
        t.start()
        into = np.zeros(len(big) + 1, dtype=np.uint8)
        assert b.poll(TIMEOUT)
        assert b.recv_bytes_into(into) == len(big)
        t.join(TIMEOUT)
        assert into[:-1].tobytes() == big


def test_recv_bytes_into_argument_errors_as_the_standard_library():
    a, b = mpx.Pipe()
    sa, sb = multiprocessing.Pipe()
    with a, b, sa, sb:
        for conn in (b, sb):  # the same exceptions from both
            with pytest.raises(ValueError, match="negative offset"):
                conn.recv_bytes_into(bytearray(4), -1)
            with pytest.raises(ValueError, match="offset too large"):
                conn.recv_bytes_into(bytearray(4), 5)
        # Read-only memory is refused before anything is received (CPython refuses it only
        # after taking a message off the connection).
        with pytest.raises(TypeError):
            b.recv_bytes_into(b"read-only bytes")
        # Nothing was consumed by the refused calls.
        a.send_bytes(b"still here")
        assert recv(b) == b"still here"


def test_send_bytes_offset_and_size_as_the_standard_library():
    a, b = mpx.Pipe()
    sa, sb = multiprocessing.Pipe()
    data = b"0123456789"
    cases = [
        ((data,), b"0123456789"),
        ((data, 3), b"3456789"),
        ((data, 3, 4), b"3456"),
        ((data, 10), b""),
        ((data, 0, 0), b""),
        ((bytearray(data), 2, 2), b"23"),
        ((memoryview(data)[5:], 1), b"6789"),
        ((array.array("i", [1, 2]),), struct.pack("=2i", 1, 2)),
        ((array.array("i", [1, 2, 3]), 4, 4), struct.pack("=i", 2)),
        ((np.arange(3, dtype=np.int64),), np.arange(3, dtype=np.int64).tobytes()),
    ]
    with a, b, sa, sb:
        for args, want in cases:
            a.send_bytes(*args)
            sa.send_bytes(*args)
            assert recv(b) == want, args
            assert recv(sb) == want, args
        errors_ = [
            ((data, -1), "offset is negative"),
            ((data, 11), "buffer length < offset"),
            ((data, 0, -1), "size is negative"),
            ((data, 5, 6), r"buffer length < offset \+ size"),
        ]
        for args, message in errors_:
            for conn in (a, sa):
                with pytest.raises(ValueError, match=message):
                    conn.send_bytes(*args)
        for conn in (a, sa):
            with pytest.raises(TypeError):
                conn.send_bytes("a str is not bytes-like")
        # Nothing was sent by the refused calls.
        assert not b.poll(0.05)


def test_maxlength_is_bad_message_length():
    # Duplex: the connection stops receiving but still sends, as in CPython.
    a, b = mpx.Pipe()
    with a, b:
        a.send_bytes(b"x" * 100)
        assert b.poll(TIMEOUT)
        with pytest.raises(ValueError, match="negative maxlength"):
            b.recv_bytes(-1)
        with pytest.raises(OSError, match="bad message length"):
            b.recv_bytes(99)
        assert not b.readable and b.writable
        with pytest.raises(OSError, match="write-only"):
            b.recv_bytes()
        b.send_bytes(b"still sending")
        assert recv(a) == b"still sending"
    # One way: the connection is closed.
    r, w = mpx.Pipe(duplex=False)
    # Larger than the pipe and than the reused buffer (refused at its header): a thread sends,
    # and fails once the reader has closed.
    t = threading.Thread(target=lambda: pytest.raises(BrokenPipeError, w.send_bytes, b"y" * (1 << 20)))
    t.start()
    with r, w:
        assert r.poll(TIMEOUT)
        with pytest.raises(OSError, match="bad message length"):
            r.recv_bytes(1000)
        assert r.closed
        with pytest.raises(OSError, match="handle is closed"):
            r.recv_bytes()
        t.join(TIMEOUT)
        assert not t.is_alive()
    # A message of exactly maxlength is fine.
    r, w = mpx.Pipe(duplex=False)
    with r, w:
        w.send_bytes(b"z" * 64)
        assert r.poll(TIMEOUT)
        assert r.recv_bytes(64) == b"z" * 64


def test_poll_timeouts():
    a, b = mpx.Pipe()
    with a, b:
        assert b.poll() is False
        assert b.poll(0) is False
        assert b.poll(-5) is False
        t0 = time.monotonic()
        assert b.poll(0.3) is False
        assert time.monotonic() - t0 >= 0.25, "poll(0.3) returned early"
        with pytest.raises(ValueError):
            b.poll(float("nan"))
        with pytest.raises(TypeError):
            b.poll("1")
        # poll(None) waits as long as it takes (here until a thread sends).
        timer = threading.Timer(0.2, a.send_bytes, args=(b"late",))
        timer.start()
        try:
            assert b.poll(None) is True
        finally:
            timer.join(TIMEOUT)
        assert b.poll(TIMEOUT) is True
        assert b.recv_bytes() == b"late"
        assert b.poll(0) is False


def test_buffered_messages_count_for_poll_and_wait():
    a, b = mpx.Pipe()
    with a, b:
        a.send_bytes(b"first")
        a.send_bytes(b"second")
        assert recv(b) == b"first"
        # The second message may already be inside b (read ahead) with the descriptor quiet:
        # poll and wait look inside first.
        assert b.poll(0)
        assert mc.wait([b], timeout=0) == [b]
        assert mc.wait([b], timeout=TIMEOUT) == [b]
        assert b.recv_bytes() == b"second"
        assert mc.wait([b], timeout=0.05) == []


def test_wait_on_every_kind_of_object(children):
    mine_a, mine_b = mpx.Pipe()
    std_a, std_b = multiprocessing.Pipe()
    s1, s2 = socket.socketpair()
    r_fd, w_fd = os.pipe()
    ctl_a, ctl_b = mpx.Pipe()
    p = children("mpx-fork", child_respond, ctl_b, 1)  # ends after one message
    ctl_b.close()
    try:
        objects = [mine_b, std_b, s2, r_fd, p.sentinel]
        assert mc.wait(objects, timeout=0.05) == []
        mine_a.send_bytes(b"1")
        std_a.send_bytes(b"2")
        assert mc.wait(objects, timeout=TIMEOUT)[:2] == [mine_b, std_b]
        assert mine_b.recv_bytes() == b"1" and std_b.recv_bytes() == b"2"
        s1.send(b"3")
        os.write(w_fd, b"4")
        ready = mc.wait(objects, timeout=TIMEOUT)
        assert s2 in ready and r_fd in ready and mine_b not in ready
        ctl_a.send_bytes(pattern(3, 0))
        assert recv(ctl_a) == pattern(3, 1)
        finish(p)
        assert p.sentinel in mc.wait(objects, timeout=TIMEOUT)
        # The standard library's wait works on mpx connections too (their fileno()).
        mine_a.send_bytes(b"5")
        assert std_conn.wait([mine_b], timeout=TIMEOUT) == [mine_b]
    finally:
        for c in (mine_a, mine_b, std_a, std_b, s1, s2, ctl_a):
            c.close()
        os.close(r_fd)
        os.close(w_fd)


def test_peer_disconnecting_mid_message(children):
    # A raw peer writes a header announcing 1000 bytes, sends 10 of them and dies.
    s1, s2 = socket.socketpair()
    conn = mc.Connection(s2.detach())
    p = children("mpx-fork", child_partial_frame, s1.fileno(), 1000, 10)
    s1.close()
    with conn:
        finish(p)
        assert conn.poll(TIMEOUT)
        with pytest.raises(OSError, match="got end of file during message") as e:
            conn.recv_bytes()
        assert not isinstance(e.value, EOFError)
        assert "10 of 1000 bytes" in str(e.value)
        # As the standard library: that message's bytes are gone, and the stream is at its end.
        with pytest.raises(EOFError):
            conn.recv_bytes()
        with pytest.raises(EOFError):
            conn.recv()
        assert conn.poll(0)
    # A peer that dies in the middle of a header.
    s1, s2 = socket.socketpair()
    conn = mc.Connection.from_fd(s2.detach())
    s1.send(b"\0\0")
    s1.close()
    with conn, pytest.raises(OSError, match="end of file during message"):
        conn.recv_bytes()
    # An mpx sender killed while it is blocked sending a large message.
    r, w = mpx.Pipe()
    ready_r, ready_w = mpx.Pipe(duplex=False)
    p = children("mpx-fork", child_big_send, w, ready_w, 32 << 20)
    w.close()
    ready_w.close()
    with r, ready_r:
        assert recv(ready_r) == b"sending"
        assert r.poll(TIMEOUT)  # part of it is in the socket; the rest cannot follow
        time.sleep(0.2)
        p.kill()
        p.join(TIMEOUT)
        with pytest.raises(OSError, match="end of file during message"):
            r.recv_bytes()


def test_garbage_length_is_an_error_not_a_hang():
    s1, s2 = socket.socketpair()
    conn = mc.Connection(s2.detach())
    with conn, s1:
        s1.send(struct.pack("!i", -5))
        assert conn.poll(TIMEOUT)
        with pytest.raises(OSError):
            conn.recv_bytes()


def test_close_from_another_thread_while_receiving():
    a, b = mpx.Pipe()
    box = {}

    def reader():
        try:
            box["got"] = b.recv_bytes()
        except BaseException as e:  # noqa: B036 - checked below
            box["error"] = e

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    b.close()
    t.join(TIMEOUT)
    assert not t.is_alive(), "the blocked recv did not notice close()"
    assert isinstance(box.get("error"), OSError) and "handle is closed" in str(box["error"])
    # Once the receiving thread has left, the descriptor is closed: the peer sees the end.
    with a:
        assert a.poll(TIMEOUT)
        with pytest.raises(EOFError):
            a.recv_bytes()


def test_concurrent_senders_never_interleave():
    a, b = mpx.Pipe()
    n_threads, count = 4, 300

    def sender(tid):
        for i in range(count):
            a.send_bytes(pattern(1000 + 37 * (i % 50), tid))

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(n_threads)]
    with a, b:
        for t in threads:
            t.start()
        seen = [0] * n_threads
        for _ in range(n_threads * count):
            m = recv(b)
            seed = m[0]
            assert m == pattern(len(m), seed)
            seen[seed] += 1
        for t in threads:
            t.join(TIMEOUT)
        assert seen == [count] * n_threads


class _Interrupted(Exception):
    pass


def _raise_interrupted(signum, frame):
    raise _Interrupted()


@pytest.mark.parametrize("call", ["recv_bytes", "recv", "poll", "recv_bytes_into", "recv_fds", "accept"])
def test_blocking_calls_run_signal_handlers(call):
    """A blocking wait without a timeout still lets Python run signal handlers (Ctrl-C)."""
    a, b = mpx.Pipe()
    listener = mc.Listener()
    old = signal.signal(signal.SIGALRM, _raise_interrupted)
    # If the handler never gets to run, unblock the call so that the test fails, not hangs.
    dog = Watchdog(20, lambda: (a.send_bytes(b"watchdog"), mc.Client(listener.address).close()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        t0 = time.monotonic()
        with pytest.raises(_Interrupted):
            if call == "accept":
                listener.accept()
            elif call == "recv_bytes_into":
                b.recv_bytes_into(bytearray(10))
            elif call == "poll":
                b.poll(None)
            elif call == "recv_fds":
                b.recv_fds()
            else:
                getattr(b, call)()
        assert not dog.fired
        assert time.monotonic() - t0 < 15
    finally:
        dog.cancel()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        a.close()
        b.close()
        listener.close()


def test_ctrl_c_interrupts_a_blocked_recv(popen_py):
    p = popen_py(
        """
        import mpx
        r, w = mpx.Pipe()
        print("ready", flush=True)
        try:
            r.recv()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    )
    assert select.select([p.stdout], [], [], TIMEOUT)[0]
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    assert out.strip() == "interrupted"


# ---- descriptors, shared memory, pickling --------------------------------------------------------


def test_descriptors_and_shared_memory_to_a_child(children):
    a, b = mpx.Pipe()
    memfd = os.memfd_create("conn-test")
    pr, pw = os.pipe()
    shm = SharedMemory.anonymous(8 * 1000)
    try:
        os.write(memfd, b"memfd contents")
        arr = np.frombuffer(shm.buf, dtype=np.int64)
        arr[:] = np.arange(1000)
        p = children("mpx-fork", child_fds, b)
        b.close()
        a.send_fds([memfd, pw])
        a.send_shm(shm)
        assert recv(a) == b"done"
        finish(p)
        os.close(pw)
        pw = -1
        assert os.read(pr, 100) == b"child saw memfd contents"
        assert np.array_equal(arr, np.arange(1000) * 2), "the child's writes are in our mapping"
        del arr
    finally:
        a.close()
        os.close(memfd)
        os.close(pr)
        if pw >= 0:
            os.close(pw)
        shm.close()


def test_descriptor_items_and_messages_keep_their_order():
    a, b = mpx.Pipe()
    r_fd, w_fd = os.pipe()
    try:
        with a, b:
            a.send_bytes(b"before")
            a.send_fds([r_fd])
            a.send_bytes(b"after")
            assert b.poll(TIMEOUT)
            with pytest.raises(OSError):
                b.recv_fds(timeout=TIMEOUT)  # the next item is a message
            assert b.recv_bytes() == b"before"
            with pytest.raises(OSError):
                b.recv_bytes()  # the next item carries descriptors
            with pytest.raises(ValueError):
                b.recv_fds(0)
            got = b.recv_fds(timeout=TIMEOUT)
            assert len(got) == 1 and got[0] != r_fd
            os.write(w_fd, b"!")
            assert os.read(got[0], 1) == b"!"
            os.close(got[0])
            assert b.recv_bytes() == b"after"
            with pytest.raises(TimeoutError):
                b.recv_fds(timeout=0.05)
            with pytest.raises(ValueError):
                a.send_fds([])
        # Not over a pipe (no descriptors pass there).
        r, w = mpx.Pipe(duplex=False)
        with r, w, pytest.raises(OSError):
            w.send_fds([r_fd])
    finally:
        os.close(r_fd)
        os.close(w_fd)


def test_the_standard_library_receives_our_descriptors():
    from multiprocessing import reduction

    a, b = mpx.Pipe()
    r_fd, w_fd = os.pipe()
    try:
        with a, b:
            a.send_fds([w_fd])
            s = socket.socket(fileno=os.dup(b.fileno()))
            try:
                got = reduction.recvfds(s, 1)
            finally:
                s.close()
            os.write(got[0], b"via the standard library")
            os.close(got[0])
            assert os.read(r_fd, 100) == b"via the standard library"
    finally:
        os.close(r_fd)
        os.close(w_fd)


@pytest.mark.parametrize("kind", ["mpx-spawn", "mpx-forkserver", "mp-spawn", "mp-forkserver"])
def test_connection_passed_to_a_child_at_start(kind, children):
    # child_respond gets the Connection pickled: its descriptor is handed over at start.
    a, b = mpx.Pipe()
    p = children(kind, child_respond, b, 2)
    b.close()
    with a:
        for i, n in enumerate([5, 100000]):
            a.send_bytes(pattern(n, i))
            assert recv(a) == pattern(n, i + 1)
        finish(p)


def child_conn_and_socket(conn, sock):
    """Echoes one message from each, changed: the Connection's doubled, the socket's upper-cased."""
    sock.settimeout(TIMEOUT)
    # stdin is still /dev/null: a passed descriptor never lands on the server's stdin file.
    dn, st = os.stat(os.devnull), os.fstat(sys.stdin.fileno())
    if (st.st_dev, st.st_ino) != (dn.st_dev, dn.st_ino) or sys.stdin.read() != "":
        sys.exit(8)
    if not conn.poll(TIMEOUT):
        sys.exit(9)
    conn.send(conn.recv() * 2)
    data = sock.recv(100)
    sock.sendall(data.upper())
    conn.close()
    sock.close()


def test_mpx_forkserver_passes_connections_and_sockets(children):
    # The descriptors travel with the fork-server request and keep their numbers in the child.
    a, b = mpx.Pipe()
    s1, s2 = socket.socketpair()
    with a, s1:
        p = children("mpx-forkserver", child_conn_and_socket, b, s2)
        b.close()
        s2.close()
        a.send(["hi", 1])
        assert a.poll(TIMEOUT) and a.recv() == ["hi", 1, "hi", 1]
        s1.settimeout(TIMEOUT)
        s1.sendall(b"through a socket")
        assert s1.recv(100) == b"THROUGH A SOCKET"
        finish(p)
        # Only the child held the other ends: they closed with it.
        assert a.poll(TIMEOUT)
        with pytest.raises(EOFError):
            a.recv()
        assert s1.recv(100) == b""


def test_connection_sent_through_a_connection(children):
    # Outside a start, a Connection travels through the standard library's resource sharer.
    carrier_a, carrier_b = mpx.Pipe()
    x1, x2 = mpx.Pipe()
    p = children("mpx-spawn", child_use_passed_conn, carrier_b)
    carrier_b.close()
    with carrier_a, x1:
        carrier_a.send(x2)
        x2.close()
        assert recv(x1) == b"hello through a passed connection"
        finish(p)
        assert x1.poll(TIMEOUT)
        with pytest.raises(EOFError):
            x1.recv_bytes()


def test_connection_over_inherited_descriptors():
    # Connection(fd) takes a stream socket or a pipe end, as the standard library's.
    r_fd, w_fd = os.pipe()
    r = mc.Connection(r_fd)
    w = mc.Connection(w_fd)
    with r, w:
        assert r.readable and not r.writable and w.writable and not w.readable
        w.send_bytes(b"over a plain pipe")
        assert recv(r) == b"over a plain pipe"
    # from_fd restricts directions; a failure leaves the descriptor with the caller.
    s1, s2 = socket.socketpair()
    c = mc.Connection.from_fd(s1.detach(), writable=False)
    with c, s2:
        assert c.readable and not c.writable
        with pytest.raises(OSError, match="read-only"):
            c.send_bytes(b"x")
    with open(__file__, "rb") as f:
        with pytest.raises(ValueError, match="not a socket or a pipe"):
            mc.Connection(f.fileno())
        os.fstat(f.fileno())  # still open: still the caller's
    with pytest.raises(ValueError):
        mc.Connection(-1)
    with pytest.raises(ValueError):
        mc.Connection(0, readable=False, writable=False)


def test_interop_with_standard_library_connection_objects():
    # An mpx Connection over a standard-library Pipe's descriptor, and the reverse.
    std_a, std_b = multiprocessing.Pipe()
    mine = mc.Connection(os.dup(std_b.fileno()))
    std_b.close()
    with std_a, mine:
        for i, n in enumerate(SIZES[:3]):
            std_a.send_bytes(pattern(n, i))
            assert recv(mine) == pattern(n, i)
            mine.send_bytes(pattern(n, i + 1))
            assert std_a.poll(TIMEOUT) and std_a.recv_bytes() == pattern(n, i + 1)
        std_a.send({"obj": 1})
        assert mine.poll(TIMEOUT) and mine.recv() == {"obj": 1}
        mine.send([2])
        assert std_a.poll(TIMEOUT) and std_a.recv() == [2]
    a, b = mpx.Pipe()
    std = std_conn.Connection(os.dup(b.fileno()))
    b.close()
    with a, std:
        a.send_bytes(b"to the standard library")
        assert std.poll(TIMEOUT) and std.recv_bytes() == b"to the standard library"
        std.send_bytes(b"from the standard library")
        assert recv(a) == b"from the standard library"


# ---- Listener and Client ---------------------------------------------------------------------


def _listen_address(kind, tmp_path):
    if kind == "unix":
        return str(tmp_path / "l.sock")
    if kind == "abstract":
        return "\0mpx-conn-test-%d-%d" % (os.getpid(), time.monotonic_ns())
    if kind == "tcp":
        return ("127.0.0.1", 0)
    if kind == "ipv6":
        if not has_ipv6_loopback():
            pytest.skip("this machine has no IPv6 loopback (::1)")
        return ("::1", 0)
    return None  # default: a fresh abstract name


@pytest.mark.parametrize("authkey", [KEY, None], ids=["key", "nokey"])
@pytest.mark.parametrize("kind", ["unix", "abstract", "tcp", "ipv6", "default"])
def test_listener_and_client(kind, authkey, tmp_path, children):
    address = _listen_address(kind, tmp_path)
    with mc.Listener(address, authkey=authkey) as listener:
        got = listener.address
        if kind == "unix":
            assert got == address and os.path.exists(address)
        elif kind == "abstract":  # as socket.getsockname() gives it
            assert isinstance(got, bytes) and got == address.encode()
        elif kind == "default":  # a str, as the standard library's default address
            assert isinstance(got, str) and got.startswith("\0")
        else:
            assert isinstance(got, tuple) and got[0] == address[0] and got[1] > 0
        assert listener.last_accepted is None
        p = children("mpx-fork", child_client, got, authkey, SIZES, "ok")
        with listener.accept(timeout=TIMEOUT) as conn:
            if kind in ("tcp", "ipv6"):
                assert listener.last_accepted[0] == address[0] and listener.last_accepted[1] > 0
            else:
                assert listener.last_accepted == ""
            for i, n in enumerate(SIZES):
                m = recv(conn)
                assert m == pattern(n, i)
                conn.send_bytes(pattern(n, i + 1))
        finish(p)
    if kind == "unix":
        assert not os.path.exists(address), "the listener removes its socket path"
    with pytest.raises(OSError, match="listener is closed"):
        listener.accept(timeout=0)


def test_listener_defaults_and_families():
    # The standard library's default address is a str; mpx's (a fresh abstract name) too, and
    # both libraries' clients reach it.
    with mc.Listener() as l:
        assert isinstance(l.address, str) and l.address.startswith("\0")
        with mc.Client(l.address, timeout=TIMEOUT) as c, l.accept(TIMEOUT) as s:
            c.send_bytes(b"mpx")
            assert s.poll(TIMEOUT) and s.recv_bytes() == b"mpx"
        with std_conn.Client(l.address) as c, l.accept(TIMEOUT) as s:
            c.send_bytes(b"std")
            assert s.poll(TIMEOUT) and s.recv_bytes() == b"std"
    with mc.Listener(family="AF_INET") as l:
        host, port = l.address
        assert host == "127.0.0.1" and port > 0
        with mc.Client(l.address, timeout=TIMEOUT) as c:
            with l.accept(TIMEOUT) as s:
                c.send(("tcp", 1))
                assert s.poll(TIMEOUT) and s.recv() == ("tcp", 1)
    with mc.Listener(("", 0)) as l:
        assert l.address[0] == "0.0.0.0"
    with pytest.raises(ValueError):
        mc.Listener(family="AF_PIPE")
    # The standard library's exceptions: an address of no known type, or of another family.
    with pytest.raises(TypeError, match="address type of 12345 unrecognized"):
        mc.Listener(12345)
    with pytest.raises(TypeError):
        mc.Listener(("127.0.0.1", 0), family="AF_UNIX")
    with pytest.raises(TypeError, match="authkey should be a byte string"):
        mc.Listener(authkey="text")
    with pytest.raises(TypeError, match="authkey should be a byte string"):
        mc.Client("/nonexistent", authkey="text")
    with pytest.raises(OverflowError):
        mc.Listener(("127.0.0.1", 70000))


def test_accept_and_client_timeouts():
    with mc.Listener() as l:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            l.accept(timeout=0.3)
        assert time.monotonic() - t0 >= 0.25
        with pytest.raises(TimeoutError):
            l.accept(timeout=0)
        # A listener without a key never challenges: a client expecting one times out.
        with pytest.raises(TimeoutError):
            mc.Client(l.address, authkey=KEY, timeout=0.3)


def test_address_in_use_and_nothing_listening(tmp_path):
    path = str(tmp_path / "busy.sock")
    with mc.Listener(path):
        with pytest.raises(OSError) as e:
            mc.Listener(path)
        assert e.value.errno == errno.EADDRINUSE
    with mc.Listener(("127.0.0.1", 0)) as l:
        with pytest.raises(OSError) as e:
            mc.Listener(l.address)
        assert e.value.errno == errno.EADDRINUSE
        port = l.address[1]
    with pytest.raises(FileNotFoundError):
        mc.Client(path, timeout=TIMEOUT)
    with pytest.raises(ConnectionRefusedError):
        mc.Client(("127.0.0.1", port), timeout=TIMEOUT)


@pytest.mark.parametrize("side", ["mpx-listener", "mpx-client"])
def test_wrong_key_is_authentication_error_on_both_sides(side, children):
    if side == "mpx-listener":
        listener = mc.Listener(authkey=KEY)
        p = children("mp-fork", child_std_client, listener.address, b"wrong key", [1], "auth")
    else:
        listener = std_conn.Listener(("127.0.0.1", 0), authkey=KEY)
        p = children("mpx-fork", child_client, listener.address, b"wrong key", [1], "auth")
    with listener:
        with pytest.raises(multiprocessing.AuthenticationError):
            if side == "mpx-listener":
                listener.accept(timeout=TIMEOUT)
            else:
                listener.accept()
        finish(p)
    # mpx on both sides, and a client without a key against a listener with one.
    with mc.Listener(authkey=KEY) as listener:
        p = children("mpx-fork", child_client, listener.address, b"other", [1], "auth")
        with pytest.raises(multiprocessing.AuthenticationError):
            listener.accept(timeout=TIMEOUT)
        finish(p)
        p = children("mpx-fork", child_client, listener.address, None, [1], "ok")
        with pytest.raises(multiprocessing.AuthenticationError):
            listener.accept(timeout=TIMEOUT)
        p.kill()
        p.join(TIMEOUT)


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_mpx_listener_and_standard_library_client(kind, tmp_path, children):
    address = str(tmp_path / "std.sock") if kind == "unix" else ("127.0.0.1", 0)
    with mc.Listener(address, authkey=KEY) as listener:
        p = children("mp-fork", child_std_client, listener.address, KEY, SIZES, "ok")
        with listener.accept(timeout=TIMEOUT) as conn:
            for i, n in enumerate(SIZES):
                assert recv(conn) == pattern(n, i)
                conn.send_bytes(pattern(n, i + 1))
        finish(p)


@pytest.mark.parametrize("kind", ["unix", "abstract", "tcp"])
def test_standard_library_listener_and_mpx_client(kind, tmp_path, children):
    address = {
        "unix": str(tmp_path / "std.sock"),
        "abstract": "\0mpx-std-%d" % os.getpid(),
        "tcp": ("127.0.0.1", 0),
    }[kind]
    with std_conn.Listener(address, authkey=KEY) as listener:
        p = children("mpx-fork", child_client, listener.address, KEY, SIZES, "ok")
        with listener.accept() as conn:
            for i, n in enumerate(SIZES):
                assert conn.poll(TIMEOUT)
                assert conn.recv_bytes() == pattern(n, i)
                conn.send_bytes(pattern(n, i + 1))
        finish(p)


def test_listener_in_a_forked_child_keeps_the_parents_path(tmp_path, run_py):
    # A forked child that closes its copy of the listener must not remove the parent's path.
    path = str(tmp_path / "shared.sock")
    with mc.Listener(path) as listener:
        pid = os.fork()
        if pid == 0:
            try:
                listener.close()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert os.path.exists(path)
        with mc.Client(path, timeout=TIMEOUT) as c, listener.accept(TIMEOUT) as s:
            c.send_bytes(b"still listening")
            assert recv(s) == b"still listening"
    assert not os.path.exists(path)


def test_spawned_python_program_reopens_an_inherited_descriptor(run_py):
    # A program started with spawn_executable keeps the descriptor and wraps it.
    a, b = mpx.Pipe()
    fd = os.dup(b.fileno())
    b.close()
    code = (
        "import sys; from mpx.connection import Connection\n"
        "c = Connection(int(sys.argv[1]))\n"
        "assert c.poll(60); m = c.recv_bytes(); c.send_bytes(m[::-1]); c.close()\n"
    )
    from conftest import child_env

    e = mpx.spawn_executable([sys.executable, "-c", code, str(fd)], pass_fds=[fd], env=child_env())
    os.close(fd)
    try:
        with a:
            a.send_bytes(b"inherited")
            assert recv(a) == b"detirehni"
        e.join(TIMEOUT)
        assert e.exitcode == 0
    finally:
        if e.is_alive():
            e.kill()
            e.join(10)


# ---- Differences from the standard library found by running the same scenario on both ----------


def both(scenario):
    """Runs ``scenario(Pipe, Listener, Client)`` with the standard library and with mpx, and
    returns the two outcomes: ("ok", value) or ("raised", exception type, args)."""
    out = []
    for pipe, listener, client in (
        (multiprocessing.Pipe, std_conn.Listener, std_conn.Client),
        (mpx.Pipe, mc.Listener, mc.Client),
    ):
        try:
            out.append(("ok", scenario(pipe, listener, client)))
        except Exception as e:
            out.append(("raised", type(e), e.args))
    return out


def test_send_bytes_refuses_what_the_standard_library_refuses():
    a, b = mpx.Pipe()
    with a, b:
        for obj in ("text", 5, None):
            with pytest.raises(TypeError, match="memoryview: a bytes-like object is required"):
                a.send_bytes(obj)
        with pytest.raises(TypeError, match="memoryview: a bytes-like object is required"):
            b.recv_bytes_into(5)
        # Strided or Fortran-order memory: the standard library's memoryview cast refuses it
        # with TypeError (it was ValueError / BufferError here), and nothing is sent.
        strided = [
            np.arange(6, dtype="i4")[::2],
            np.arange(6, dtype="u1")[::2],
            np.asfortranarray(np.arange(6, dtype="i2").reshape(2, 3)),
            memoryview(b"abcdef")[::2],
        ]
        for buf in strided:
            with pytest.raises(TypeError):
                a.send_bytes(buf)
        with pytest.raises(TypeError):
            b.recv_bytes_into(np.zeros(8, dtype="u1")[::2])
        assert not b.poll(0)
        a.send_bytes(np.arange(3, dtype="i4"), 4, 8)  # offset and size in bytes
        assert recv(b) == np.arange(3, dtype="i4").tobytes()[4:12]


def test_closed_and_direction_are_checked_before_the_arguments():
    # The standard library checks the connection before recv_bytes' maxlength and poll's
    # timeout: a closed or write-only end says so, whatever the arguments.
    def scenario(Pipe, Listener, Client):
        seen = []
        r, w = Pipe(duplex=False)
        c, d = Pipe()
        c.close()
        for call in (
            lambda: w.recv_bytes(-1),
            lambda: c.recv_bytes(-1),
            lambda: w.poll("soon"),
            lambda: c.poll("soon"),
            lambda: c.recv_bytes("10"),
        ):
            try:
                call()
            except Exception as e:
                seen.append((type(e), str(e)))
        r.close(), w.close(), d.close()
        return seen

    std, ours = both(scenario)
    assert std == ours
    assert ours[1] == [
        (OSError, "connection is write-only"),
        (OSError, "handle is closed"),
        (OSError, "connection is write-only"),
        (OSError, "handle is closed"),
        (OSError, "handle is closed"),
    ]


def test_maxlength_is_compared_as_the_standard_library_compares_it():
    def scenario(Pipe, Listener, Client):
        seen = []
        for maxlength in (4.5, 4, 3.5, "3"):
            a, b = Pipe()
            with a, b:
                a.send_bytes(b"abcd")
                assert b.poll(TIMEOUT)
                try:
                    seen.append(b.recv_bytes(maxlength))
                except Exception as e:
                    seen.append((type(e), str(e)[:20], b.readable))
        return seen

    std, ours = both(scenario)
    assert std == ours
    assert ours[1][:3] == [b"abcd", b"abcd", (OSError, "bad message length", False)]
    assert ours[1][3][0] is TypeError


def test_end_of_stream_and_broken_pipe_are_the_standard_librarys():
    def scenario(Pipe, Listener, Client):
        seen = []
        for duplex in (True, False):
            r, w = Pipe(duplex)
            w.send_bytes(b"last")
            w.close()
            assert r.poll(TIMEOUT)
            seen.append(r.recv_bytes())
            for call in (r.recv, r.recv_bytes, lambda: r.recv_bytes_into(bytearray(8))):
                try:
                    call()
                except EOFError as e:
                    seen.append((type(e), e.args))
            seen.append(r.poll(0))
            r.close()
            r, w = Pipe(duplex)
            r.close()
            for call in (lambda: w.send(1), lambda: w.send_bytes(b""), lambda: w.send_bytes(b"x" * 100000)):
                try:
                    call()
                except OSError as e:
                    seen.append((type(e), e.errno, e.strerror))
            w.close()
        return seen

    std, ours = both(scenario)
    assert std == ours
    assert (EOFError, ()) in ours[1]
    assert (BrokenPipeError, errno.EPIPE, "Broken pipe") in ours[1]


def test_after_the_end_inside_a_message_the_stream_is_at_its_end():
    def scenario(Pipe, Listener, Client):
        s1, s2 = socket.socketpair()
        conn = (std_conn.Connection if Pipe is multiprocessing.Pipe else mc.Connection)(s2.detach())
        with conn, s1:
            s1.sendall(struct.pack("!i", 16) + b"abc")
            s1.shutdown(socket.SHUT_WR)
            assert conn.poll(TIMEOUT)
            seen = []
            for _ in range(3):
                try:
                    conn.recv_bytes()
                except Exception as e:
                    seen.append((type(e), str(e)[:30]))
            return seen

    std, ours = both(scenario)
    assert std == ours
    assert ours[1] == [(OSError, "got end of file during message")] + [(EOFError, "")] * 2


def test_connection_of_a_negative_handle():
    with pytest.raises(ValueError, match="invalid handle"):
        mc.Connection(-1)


def test_addresses_and_families_as_the_standard_library(tmp_path):
    path = str(tmp_path / "s")
    # An empty address is no address: a fresh one of the (default) family.
    for empty in ("", ()):
        with mc.Listener(empty) as l:
            with mc.Client(l.address, timeout=TIMEOUT) as c, l.accept(TIMEOUT) as s:
                c.send_bytes(b"hi")
                assert recv(s) == b"hi"
    # Objects of no address type, and addresses of another family, are TypeError.
    for api in (std_conn, mc):
        for bad in (12345, ["127.0.0.1", 0], 1.5):
            with pytest.raises(TypeError, match="address type of .* unrecognized"):
                api.Listener(bad)
            with pytest.raises(TypeError, match="address type of .* unrecognized"):
                api.Client(bad)
        with pytest.raises(TypeError):
            api.Listener(path, family="AF_INET")
        with pytest.raises(TypeError):
            api.Listener(("127.0.0.1",))
        with pytest.raises(TypeError):
            api.Listener(("127.0.0.1", 0, 0))
        with pytest.raises(ValueError):
            api.Client(path, family="AF_PIPE")
    assert not os.path.exists(path)
    # Client connects by the address alone: a family that does not match it is not checked.
    with mc.Listener(path) as l:
        with mc.Client(path, family="AF_INET", timeout=TIMEOUT) as c, l.accept(TIMEOUT) as s:
            c.send(1)
            assert s.poll(TIMEOUT) and s.recv() == 1


def test_unresolvable_host_is_socket_gaierror():
    host = "no-such-host.invalid"
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(host, 0)  # the standard library's Listener and Client raise this
    with pytest.raises(socket.gaierror):
        mc.Listener((host, 0))
    with pytest.raises(socket.gaierror):
        mc.Client((host, 1), timeout=TIMEOUT)


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_ipv6_addresses_have_four_fields_as_the_standard_librarys():
    def scenario(Pipe, Listener, Client):
        with Listener(("::1", 0), family="AF_INET6") as l:
            out = []
            t = threading.Thread(target=lambda: out.append(l.accept()), daemon=True)
            t.start()
            with socket.create_connection(l.address[:2], timeout=TIMEOUT):
                t.join(TIMEOUT)
                assert out, "no accept within the timeout"
                out[0].close()
            return [(len(a), a[0], type(a[1])) for a in (l.address, l.last_accepted)]

    std, ours = both(scenario)
    assert std == ours
    assert ours[1][0] == (4, "::1", int)
    with mc.Listener(("::1", 0, 0, 0), family="AF_INET6") as l:
        assert len(l.address) == 4
