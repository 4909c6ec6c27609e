"""mpx connections against the real CPython standard library.

The Python side uses only multiprocessing.connection (Listener, Client, Connection,
answer_challenge/deliver_challenge) and multiprocessing.reduction; the mpx side is the C tool
tests/c/tool_conn.c (built into $MPX_BUILD by `make native`; its header comment documents the
commands, the message pattern and the exit codes). Every subprocess and every blocking call has a
timeout: a hang is a failure.
"""

import glob
import hmac
import itertools
import mmap
import os
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import threading
from multiprocessing import reduction
from multiprocessing.connection import (
    AuthenticationError,
    Client,
    Connection,
    Listener,
    answer_challenge,
    deliver_challenge,
)
from pathlib import Path

import numpy as np
import pytest
from patterns import fnv1a, pattern

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MPX_BUILD", ROOT / "build"))
TOOL = BUILD / "tests" / "c" / "tool_conn"
TIMEOUT = 60  # seconds for any subprocess or wait

EXIT_AUTH = 100 + 15  # MPX_E_AUTH
KEY = b"interop-secret"
SIZES = [0, 1, 64 * 1024, 16 * 1024 * 1024 + 7]  # 0 bytes, 1 byte, 64 KiB, over 16 MiB

_counter = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def tool_built():
    assert TOOL.exists(), "%s is missing: run `make native` (or set MPX_BUILD)" % TOOL


class Tool:
    """A running tool_conn, killed at the end of the test whatever happened."""

    def __init__(self, *args):
        self.args = [str(TOOL), *map(str, args)]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def readline(self, timeout=TIMEOUT):
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                pytest.fail("tool_conn printed nothing within %s s" % timeout)
        return self.proc.stdout.readline().decode()

    def listening_address(self):
        line = self.readline()
        assert line.startswith("listening "), "unexpected first line %r; stderr: %s" % (line, self.stderr())
        return line.split(" ", 1)[1].strip()

    def finish(self, expect=0):
        try:
            out, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail("tool_conn did not finish within %s s: %s" % (TIMEOUT, " ".join(self.args)))
        assert self.proc.returncode == expect, "tool_conn %s exited %d, wanted %d; stderr: %s" % (
            " ".join(self.args[1:]), self.proc.returncode, expect, err.decode()
        )
        return out.decode(), err.decode()

    def stderr(self):
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read().decode()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


@pytest.fixture
def tools():
    started = []

    def start(*args):
        t = Tool(*args)
        started.append(t)
        return t

    try:
        yield start
    finally:
        for t in started:
            t.kill()


def accept(listener, timeout=TIMEOUT):
    """Listener.accept with a bound: CPython's accept has no timeout of its own."""
    box = {}

    def run():
        try:
            box["conn"] = listener.accept()
        except BaseException as e:  # noqa: B036 - handed to the test thread
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        pytest.fail("Listener.accept did not return within %s s" % timeout)
    if "error" in box:
        raise box["error"]
    return box["conn"]


def recv(conn):
    assert conn.poll(TIMEOUT), "no message within %s s" % TIMEOUT
    return conn.recv_bytes()


def respond(conn, count):
    """The Python half of the tool's `drive`: check message i, reply with pattern(len, i+1)."""
    for i in range(count):
        m = recv(conn)
        assert m == pattern(len(m), i), "message %d (%d bytes) is not pattern %d" % (i, len(m), i)
        conn.send_bytes(pattern(len(m), i + 1))


def drive(conn, sizes):
    """The Python half of the tool's `respond`."""
    for i, n in enumerate(sizes):
        conn.send_bytes(pattern(n, i))
        r = recv(conn)
        assert len(r) == n and r == pattern(n, i + 1), "reply %d" % i


def python_listener_address(kind, tmp_path):
    """(address for multiprocessing.connection.Listener, or None for TCP port 0) by kind."""
    if kind == "tcp":
        return ("127.0.0.1", 0)
    if kind == "unix":
        return str(tmp_path / "py.sock")
    return "\0mpx-interop-%d-%d" % (os.getpid(), next(_counter))


def mpx_address(py_addr):
    if isinstance(py_addr, tuple):
        return "tcp:%s:%d" % py_addr
    if isinstance(py_addr, bytes):  # getsockname() of an abstract socket
        py_addr = py_addr.decode()
    if py_addr.startswith("\0"):
        return "unix:@" + py_addr[1:]
    return "unix:" + py_addr


def python_address(mpx_addr):
    if mpx_addr.startswith("tcp:"):
        host, port = mpx_addr[4:].rsplit(":", 1)
        return (host, int(port))
    if mpx_addr.startswith("unix:@"):
        return "\0" + mpx_addr[6:]
    assert mpx_addr.startswith("unix:")
    return mpx_addr[5:]


def mpx_addr_for_c(kind, tmp_path):
    if kind == "tcp":
        return "tcp:127.0.0.1:0"
    if kind == "unix":
        return "unix:%s" % (tmp_path / "c.sock")
    return "unix:@mpx-interop-c-%d-%d" % (os.getpid(), next(_counter))


KINDS = ["tcp", "unix", "abstract"]


@pytest.mark.parametrize("kind", KINDS)
def test_python_listener_and_c_client_exchange_both_ways(kind, tmp_path, tools):
    with Listener(python_listener_address(kind, tmp_path), authkey=KEY) as listener:
        tool = tools("client", mpx_address(listener.address), KEY.decode(), "drive", *SIZES)
        with accept(listener) as conn:
            respond(conn, len(SIZES))
        out, _ = tool.finish(0)
        assert out.strip() == "ok %d" % len(SIZES)


@pytest.mark.parametrize("kind", KINDS)
def test_c_listener_and_python_client_exchange_both_ways(kind, tmp_path, tools):
    tool = tools("serve", mpx_addr_for_c(kind, tmp_path), KEY.decode(), "respond", len(SIZES))
    addr = tool.listening_address()
    if kind == "tcp":
        assert not addr.endswith(":0"), addr
    with Client(python_address(addr), authkey=KEY) as conn:
        drive(conn, SIZES)
    out, _ = tool.finish(0)
    assert out.strip().endswith("ok %d" % len(SIZES))
    if kind == "unix":
        assert not (tmp_path / "c.sock").exists(), "the mpx listener removes its socket path"


def test_wrong_key_python_listener_rejects_c_client(tools):
    with Listener(("127.0.0.1", 0), authkey=KEY) as listener:
        tool = tools("client", mpx_address(listener.address), "not-the-key", "drive", 1)
        with pytest.raises(AuthenticationError):
            accept(listener)
        _, err = tool.finish(EXIT_AUTH)
        assert "MPX_E_AUTH" in err


def test_wrong_key_c_listener_rejects_python_client(tools):
    tool = tools("serve", "unix:@mpx-interop-key-%d" % os.getpid(), KEY.decode(), "respond", 1)
    addr = python_address(tool.listening_address())
    with pytest.raises(AuthenticationError):
        Client(addr, authkey=b"not-the-key")
    _, err = tool.finish(EXIT_AUTH)
    assert "MPX_E_AUTH" in err and "wrong" in err


def test_no_key_both_sides(tools):
    with Listener(("127.0.0.1", 0)) as listener:
        tool = tools("client", mpx_address(listener.address), "-", "drive", 5, 100000)
        with accept(listener) as conn:
            respond(conn, 2)
        tool.finish(0)
    tool = tools("serve", "tcp:127.0.0.1:0", "-", "respond", 2)
    with Client(python_address(tool.listening_address())) as conn:
        drive(conn, [3, 0])
    tool.finish(0)


def test_ipv6_with_the_stdlib_handshake_functions(tools):
    """multiprocessing.connection has no IPv6 family, but its Connection and handshake
    functions work over any stream socket: use them against an mpx listener on [::1]."""
    tool = tools("serve", "tcp:[::1]:0", KEY.decode(), "respond", 2)
    addr = tool.listening_address()
    assert addr.startswith("tcp:[::1]:")
    port = int(addr.rsplit(":", 1)[1])
    s = socket.create_connection(("::1", port), timeout=TIMEOUT)
    s.settimeout(None)
    conn = Connection(s.detach())
    try:
        answer_challenge(conn, KEY)  # what Client() does: answer, then challenge
        deliver_challenge(conn, KEY)
        drive(conn, [10, 70000])
    finally:
        conn.close()
    tool.finish(0)


# ---- the Python 3.12+ form of the handshake ({sha256} prefix) ----------------------------------
# Python 3.11 (this machine's python3) only speaks the legacy HMAC-MD5 form, so these helpers
# follow CPython 3.12's _create_response/_verify_challenge to check mpx's sha256 paths too; the
# real 3.12+ interpreters are tested below when installed.


def modern_deliver(conn, key):
    message = b"{sha256}" + os.urandom(40)
    conn.send_bytes(b"#CHALLENGE#" + message)
    response = recv(conn)
    assert response.startswith(b"{sha256}"), "mpx must answer a {sha256} challenge with sha256: %r" % response[:12]
    expected = hmac.new(key, message, "sha256").digest()
    ok = hmac.compare_digest(response[len(b"{sha256}"):], expected)
    conn.send_bytes(b"#WELCOME#" if ok else b"#FAILURE#")
    if not ok:
        raise AuthenticationError("digest received was wrong")


def modern_answer(conn, key):
    message = recv(conn)
    assert message.startswith(b"#CHALLENGE#")
    message = message[len(b"#CHALLENGE#"):]
    assert message.startswith(b"{sha256}") and len(message) == 8 + 40, "mpx challenges in the 3.12 form"
    conn.send_bytes(b"{sha256}" + hmac.new(key, message, "sha256").digest())
    if recv(conn) != b"#WELCOME#":
        raise AuthenticationError("digest sent was rejected")


@pytest.mark.parametrize("key_ok", [True, False])
def test_modern_sha256_handshake_both_roles(key_ok, tools):
    key = KEY if key_ok else b"other"
    expect = 0 if key_ok else EXIT_AUTH
    # mpx client: the Python server challenges first, then answers.
    srv = socket.create_server(("127.0.0.1", 0))
    try:
        tool = tools("client", "tcp:127.0.0.1:%d" % srv.getsockname()[1], KEY.decode(), "drive", 3)
        srv.settimeout(TIMEOUT)
        s, _ = srv.accept()
        s.settimeout(None)
        with Connection(s.detach()) as conn:
            if key_ok:
                modern_deliver(conn, key)
                modern_answer(conn, key)
                respond(conn, 1)
            else:
                with pytest.raises(AuthenticationError):
                    modern_deliver(conn, key)
        tool.finish(expect)
    finally:
        srv.close()
    # mpx listener: the Python client answers first, then challenges.
    tool = tools("serve", "tcp:127.0.0.1:0", KEY.decode(), "respond", 1)
    port = int(tool.listening_address().rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.settimeout(None)
    with Connection(s.detach()) as conn:
        if key_ok:
            modern_answer(conn, key)
            modern_deliver(conn, key)
            drive(conn, [4])
        else:
            with pytest.raises(AuthenticationError):
                modern_answer(conn, key)
    tool.finish(expect)


def other_pythons():
    """Other CPython versions installed here (pyenv or PATH), to run their own stdlib."""
    found = {}
    for pattern_ in ("/root/.pyenv/versions/3.*/bin/python3", os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")):
        for p in glob.glob(pattern_):
            found.setdefault(os.path.realpath(p), p)
    for name in ("python3.8", "python3.9", "python3.10", "python3.12", "python3.13", "python3.14"):
        p = shutil.which(name)
        if p:
            found.setdefault(os.path.realpath(p), p)
    here = os.path.realpath(sys.executable)
    out = []
    for real, p in sorted(found.items()):
        if real == here:
            continue
        r = subprocess.run([p, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, timeout=TIMEOUT)
        if r.returncode == 0 and tuple(map(int, r.stdout.split("."))) >= (3, 8):
            out.append(pytest.param(p, id="python" + r.stdout.strip()))
    return out


PEER = r"""
import sys
from multiprocessing.connection import Client, Listener
mode, addr, key, sizes = sys.argv[1], sys.argv[2], sys.argv[3].encode(), [int(x) for x in sys.argv[4:]]
def pattern(n, seed):
    block = bytes(((j * 31 + seed) & 0xFF) for j in range(256))
    return (block * (n // 256 + 1))[:n]
if mode == "listen":
    with Listener("\0" + addr, authkey=key) as l:
        print("ready", flush=True)
        with l.accept() as c:
            for i in range(len(sizes)):
                m = c.recv_bytes()
                assert m == pattern(len(m), i)
                c.send_bytes(pattern(len(m), i + 1))
else:
    with Client("\0" + addr, authkey=key) as c:
        for i, n in enumerate(sizes):
            c.send_bytes(pattern(n, i))
            assert c.recv_bytes() == pattern(n, i + 1)
print("peer ok", flush=True)
"""


@pytest.mark.parametrize("python", other_pythons() or [pytest.param(None, marks=pytest.mark.skip(reason="no other CPython installed"))])
def test_other_cpython_versions_both_roles(python, tools):
    sizes = [0, 1, 65536, 1 << 20]
    name = "mpx-interop-ver-%d-%d" % (os.getpid(), next(_counter))
    peer = subprocess.Popen([python, "-c", PEER, "listen", name, KEY.decode(), *map(str, sizes)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(peer.stdout, selectors.EVENT_READ)
            assert sel.select(TIMEOUT), "the peer did not start"
        assert peer.stdout.readline().strip() == "ready"
        tool = tools("client", "unix:@" + name, KEY.decode(), "drive", *sizes)
        tool.finish(0)
        out, err = peer.communicate(timeout=TIMEOUT)
        assert peer.returncode == 0 and "peer ok" in out, err
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait(TIMEOUT)
    tool = tools("serve", "unix:@" + name + "-c", KEY.decode(), "respond", len(sizes))
    tool.listening_address()
    r = subprocess.run([python, "-c", PEER, "connect", name + "-c", KEY.decode(), *map(str, sizes)], capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0 and "peer ok" in r.stdout, r.stderr
    tool.finish(0)
    # A wrong key is refused by both, whichever version.
    tool = tools("serve", "unix:@" + name + "-w", KEY.decode(), "respond", 1)
    tool.listening_address()
    r = subprocess.run([python, "-c", PEER, "connect", name + "-w", "wrong", "1"], capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode != 0 and "AuthenticationError" in r.stderr, r.stderr
    tool.finish(EXIT_AUTH)


# ---- descriptors and anonymous shared memory ------------------------------------------------------

HEADER_DATA_OFFSET = 32  # u64, see src/object/header.rs and tests/c/testutil.h
HEADER_DATA_SIZE = 40


def test_c_sends_anonymous_shm_python_maps_it_with_numpy(tools):
    size, seed = 3 * 1024 * 1024 + 5, 77
    with Listener("\0mpx-interop-shm-%d" % os.getpid(), authkey=KEY) as listener:
        tool = tools("client", mpx_address(listener.address), KEY.decode(), "send-shm", size, seed)
        with accept(listener) as conn:
            assert conn.poll(TIMEOUT)
            fd = reduction.recv_handle(conn)  # the standard library's receiving side
            try:
                offset, data_size = struct.unpack("<QQ", os.pread(fd, 16, HEADER_DATA_OFFSET))
                assert data_size == size and offset % mmap.PAGESIZE == 0
                with mmap.mmap(fd, offset + data_size) as mm:
                    arr = np.frombuffer(mm, dtype=np.uint8, count=data_size, offset=offset)
                    want = ((np.arange(size, dtype=np.uint64) * 31 + seed) & 0xFF).astype(np.uint8)
                    assert np.array_equal(arr, want)
                    del arr
                    mm[offset] = 0xAB  # the C side checks it sees this write
            finally:
                os.close(fd)
            conn.send_bytes(b"ok")
        out, _ = tool.finish(0)
        assert out.strip() == "ok shm %d" % size


def test_python_sends_a_memfd_c_receives_it(tools):
    data = pattern(200_003, 5)
    fd = os.memfd_create("interop")
    try:
        os.write(fd, data)
        with Listener("\0mpx-interop-fd-%d" % os.getpid()) as listener:
            tool = tools("client", mpx_address(listener.address), "-", "recv-fd")
            with accept(listener) as conn:
                reduction.send_handle(conn, fd, tool.proc.pid)
                reply = recv(conn).decode()
            tool.finish(0)
    finally:
        os.close(fd)
    assert reply == "%d %08x" % (len(data), fnv1a(data))


def test_oversized_handshake_message_is_refused_by_the_c_listener(tools):
    tool = tools("serve", "tcp:127.0.0.1:0", KEY.decode(), "respond", 1)
    port = int(tool.listening_address().rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    with Connection(s.detach()) as conn:
        challenge = recv(conn)
        assert challenge.startswith(b"#CHALLENGE#")
        conn.send_bytes(b"x" * 300)  # CPython refuses more than 256 bytes here too
        with pytest.raises(EOFError):  # refused before reading it: the listener hangs up
            recv(conn)
    _, err = tool.finish(EXIT_AUTH)
    assert "256" in err
