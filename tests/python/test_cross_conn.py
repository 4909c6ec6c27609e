"""Connections across languages: the Python binding (mpx.Pipe, mpx.connection) with the C tool
tests/c/tool_conn.c and the C++ tool tests/cpp/tool_conn.cpp (built into $MPX_BUILD by
`make native`; their header comments document the commands, the message pattern and the exit
codes), over Unix listeners, TCP, and descriptors inherited through mpx.spawn_executable; and
descriptor passing: an anonymous shared-memory buffer made in C++ mapped by Python with numpy,
and one made in Python checked by C++. Every subprocess and every wait has a timeout.
"""

import mmap
import os
import selectors
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import mpx
from mpx import connection as mc
from mpx.shared_memory import SharedMemory
from patterns import fnv1a, pattern

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MPX_BUILD", ROOT / "build"))
C_TOOL = BUILD / "tests" / "c" / "tool_conn"
CPP_TOOL = BUILD / "tests" / "cpp" / "tool_conn"
TIMEOUT = 60

KEY = b"cross-secret"
SIZES = [0, 1, 64 * 1024, 16 * 1024 * 1024 + 7]
EXIT_AUTH = 100 + 15  # MPX_E_AUTH

HEADER_DATA_OFFSET = 32  # u64 data offset, then u64 data size (src/object/header.rs)


@pytest.fixture(scope="module", autouse=True)
def tools_built():
    for tool in (C_TOOL, CPP_TOOL):
        assert tool.exists(), "%s is missing: run `make native` (or set MPX_BUILD)" % tool


def recv(conn):
    assert conn.poll(TIMEOUT), "no message within %s s" % TIMEOUT
    return conn.recv_bytes()


class Tool:
    """A running tool (subprocess.Popen, or an mpx ExecProcess with its output in pipes)."""

    def __init__(self, *args, pass_fds=()):
        self.args = [str(a) for a in args]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds)

    def readline(self):
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(TIMEOUT):
                pytest.fail("%s printed nothing within %s s" % (self.args[0], TIMEOUT))
        return self.proc.stdout.readline().decode()

    def listening_address(self):
        line = self.readline()
        assert line.startswith("listening "), "unexpected first line %r" % line
        return line.split(" ", 1)[1].strip()

    def finish(self, expect=0):
        try:
            out, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            pytest.fail("%s did not finish within %s s" % (" ".join(self.args), TIMEOUT))
        assert self.proc.returncode == expect, "%s exited %d, wanted %d; stderr: %s" % (
            " ".join(self.args), self.proc.returncode, expect, err.decode())
        return out.decode(), err.decode()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


@pytest.fixture
def tools():
    started = []

    def start(*args, **kw):
        t = Tool(*args, **kw)
        started.append(t)
        return t

    try:
        yield start
    finally:
        for t in started:
            t.kill()


def c_address(py_address):
    """A Python listener's address as the tools take it."""
    if isinstance(py_address, tuple):
        return "tcp:%s:%d" % py_address
    if isinstance(py_address, bytes):
        py_address = py_address.decode()
    if py_address.startswith("\0"):  # an abstract name (str for a default Listener())
        return "unix:@" + py_address[1:]
    return "unix:" + py_address


def py_address(c_addr):
    if c_addr.startswith("tcp:"):
        host, port = c_addr[4:].rsplit(":", 1)
        return (host.strip("[]"), int(port))
    if c_addr.startswith("unix:@"):
        return "\0" + c_addr[6:]
    return c_addr[5:]


def respond(conn, count):
    """The Python half of a tool's `drive`."""
    for i in range(count):
        m = recv(conn)
        assert m == pattern(len(m), i), "message %d (%d bytes)" % (i, len(m))
        conn.send_bytes(pattern(len(m), i + 1))


def drive(conn, sizes):
    """The Python half of a tool's `respond`."""
    for i, n in enumerate(sizes):
        conn.send_bytes(pattern(n, i))
        r = recv(conn)
        assert len(r) == n and r == pattern(n, i + 1), "reply %d" % i


TOOLS = [pytest.param(C_TOOL, id="c"), pytest.param(CPP_TOOL, id="cpp")]


def listen_address(kind, tmp_path):
    return {"unix": str(tmp_path / "x.sock"), "abstract": "\0mpx-cross-%d" % os.getpid(), "tcp": ("127.0.0.1", 0)}[kind]


# ---- over listeners ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unix", "abstract", "tcp"])
@pytest.mark.parametrize("tool", TOOLS)
def test_python_listener_and_native_client(tool, kind, tmp_path, tools):
    with mc.Listener(listen_address(kind, tmp_path), authkey=KEY) as listener:
        t = tools(tool, "client", c_address(listener.address), KEY.decode(), "drive", *SIZES)
        with listener.accept(timeout=TIMEOUT) as conn:
            respond(conn, len(SIZES))
        out, _ = t.finish(0)
        assert out.strip() == "ok %d" % len(SIZES)


@pytest.mark.parametrize("kind", ["unix", "abstract", "tcp"])
@pytest.mark.parametrize("tool", TOOLS)
def test_native_listener_and_python_client(tool, kind, tmp_path, tools):
    addr = {"unix": "unix:%s" % (tmp_path / "n.sock"), "abstract": "unix:@mpx-cross-n-%d" % os.getpid(),
            "tcp": "tcp:127.0.0.1:0"}[kind]
    t = tools(tool, "serve", addr, KEY.decode(), "respond", len(SIZES))
    real = t.listening_address()
    with mc.Client(py_address(real), authkey=KEY, timeout=TIMEOUT) as conn:
        drive(conn, SIZES)
    out, _ = t.finish(0)
    assert out.strip().endswith("ok %d" % len(SIZES))


@pytest.mark.parametrize("tool", TOOLS)
def test_wrong_key_across_languages(tool, tools):
    with mc.Listener(authkey=KEY) as listener:
        t = tools(tool, "client", c_address(listener.address), "not-the-key", "drive", 1)
        with pytest.raises(mpx.AuthenticationError):
            listener.accept(timeout=TIMEOUT)
        _, err = t.finish(EXIT_AUTH)
        assert "MPX_E_AUTH" in err or "wrong" in err or "digest" in err
    t = tools(tool, "serve", "unix:@mpx-cross-key-%d" % os.getpid(), KEY.decode(), "respond", 1)
    addr = py_address(t.listening_address())
    with pytest.raises(mpx.AuthenticationError):
        mc.Client(addr, authkey=b"not-the-key", timeout=TIMEOUT)
    t.finish(EXIT_AUTH)


# ---- over inherited descriptors -------------------------------------------------------------------


def spawn_tool(*args, pass_fds):
    """The C++ tool started by mpx.spawn_executable keeping ``pass_fds``; returns
    (process, stdout read end)."""
    r, w = os.pipe()
    try:
        e = mpx.spawn_executable([str(CPP_TOOL), *map(str, args)], pass_fds=pass_fds, stdout=w)
    finally:
        os.close(w)
    return e, r


def finish_exec(e, out_fd, expect=0):
    try:
        e.join(TIMEOUT)
        if e.is_alive():
            e.kill()
            e.join(10)
            pytest.fail("the tool did not finish within %s s" % TIMEOUT)
        with os.fdopen(out_fd, "rb") as f:
            out = f.read().decode()
        assert e.exitcode == expect, "tool exited %r; stdout %r" % (e.exitcode, out)
        return out
    finally:
        if e.is_alive():
            e.kill()
            e.join(10)


@pytest.mark.parametrize("role", ["tool-drives", "python-drives"])
def test_pipe_to_a_spawned_native_program(role):
    a, b = mpx.Pipe()
    fd = b.fileno()
    action = ["drive", *SIZES] if role == "tool-drives" else ["respond", len(SIZES)]
    e, out = spawn_tool("fd", fd, *action, pass_fds=[fd])
    b.close()  # the child has its own copy now
    with a:
        if role == "tool-drives":
            respond(a, len(SIZES))
        else:
            drive(a, SIZES)
        assert finish_exec(e, out).strip() == "ok %d" % len(SIZES)
        # The child's end closed with it: the end of the stream.
        assert a.poll(TIMEOUT)
        with pytest.raises(EOFError):
            a.recv_bytes()


def test_one_way_pipe_to_a_spawned_native_program():
    r, w = mpx.Pipe(duplex=False)
    fd = r.fileno()
    e, out = spawn_tool("fd", fd, "read-eof", pass_fds=[fd])
    r.close()
    with w:
        for i in range(5):
            w.send_bytes(pattern(1000 * i, i))
    assert finish_exec(e, out).strip() == "eof after 5"


# ---- descriptors: anonymous shared memory across languages ---------------------------------------


@pytest.mark.parametrize("via", ["listener", "inherited"])
def test_cpp_sends_anonymous_shm_python_maps_it_with_numpy(via, tools):
    size, seed = 3 * 1024 * 1024 + 5, 77
    want = ((np.arange(size, dtype=np.uint64) * 31 + seed) & 0xFF).astype(np.uint8)
    if via == "listener":
        listener = mc.Listener(authkey=KEY)
        t = tools(CPP_TOOL, "client", c_address(listener.address), KEY.decode(), "send-shm", size, seed)
        conn = listener.accept(timeout=TIMEOUT)
        listener.close()
    else:
        conn, b = mpx.Pipe()
        e, out = spawn_tool("fd", b.fileno(), "send-shm", size, seed, pass_fds=[b.fileno()])
        b.close()
    with conn:
        shm = conn.recv_shm(timeout=TIMEOUT)
        assert shm.name is None and shm.size == size
        arr = np.frombuffer(shm.buf, dtype=np.uint8)
        assert np.array_equal(arr, want)
        arr[0] = 0xAB  # the C++ side checks it sees this write
        del arr
        shm.close()
        conn.send_bytes(b"ok")
        if via == "listener":
            out_text, _ = t.finish(0)
        else:
            out_text = finish_exec(e, out)
    assert out_text.strip() == "ok shm %d" % size


def test_cpp_sends_anonymous_shm_python_maps_the_raw_descriptor(tools):
    # Without mpx's SharedMemory: the descriptor, the header's data offset and size, mmap.
    size, seed = 1 << 20, 5
    with mc.Listener() as listener:
        t = tools(CPP_TOOL, "client", c_address(listener.address), "-", "send-shm", size, seed)
        conn = listener.accept(timeout=TIMEOUT)
    with conn:
        (fd,) = conn.recv_fds(1, timeout=TIMEOUT)
        try:
            offset, data_size = struct.unpack("<QQ", os.pread(fd, 16, HEADER_DATA_OFFSET))
            assert data_size == size
            with mmap.mmap(fd, offset + data_size) as mm:
                arr = np.frombuffer(mm, dtype=np.uint8, count=data_size, offset=offset)
                assert arr.tobytes() == pattern(size, seed)
                del arr
                mm[offset] = 0xAB
        finally:
            os.close(fd)
        conn.send_bytes(b"ok")
        t.finish(0)


def test_python_sends_anonymous_shm_cpp_checks_it(tools):
    size, seed = 300_003, 19  # the checksum below is a Python loop: keep it short
    shm = SharedMemory.anonymous(size)
    try:
        arr = np.frombuffer(shm.buf, dtype=np.uint8)
        arr[:] = ((np.arange(size, dtype=np.uint64) * 31 + seed) & 0xFF).astype(np.uint8)
        with mc.Listener() as listener:
            t = tools(CPP_TOOL, "client", c_address(listener.address), "-", "recv-shm", seed)
            conn = listener.accept(timeout=TIMEOUT)
        with conn:
            conn.send_shm(shm)
            reply = recv(conn).decode()
        t.finish(0)
        # The C++ program wrote byte 0 through its own mapping of the same memory.
        assert arr[0] == 0xCD
        got_size, got_hash = reply.split()
        assert int(got_size) == size
        assert int(got_hash, 16) == fnv1a(arr.tobytes())
        del arr
    finally:
        shm.close()

