"""Shared memory across languages, with real processes: C and C++ programs (tests/c/tool_shm.c,
tests/cpp/tool_shm.cpp, built into $MPX_BUILD by `make native`) and Python (the mpx package)
on the same named buffers.

The tools fill with a documented pattern (byte i = (i * 31 + seed) mod 256), verify it, and
print "<size> <fnv1a32>" of the bytes; exit codes are 0 ok, 1 mismatch, 100 - status for an
mpx error (102 = MPX_E_NOT_FOUND, 103 = MPX_E_EXISTS).
"""

import fcntl
import itertools
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mpx.shared_memory import SharedMemory
from patterns import fnv1a, pattern_array as pattern

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MPX_BUILD", ROOT / "build"))
C_TOOL = BUILD / "tests" / "c" / "tool_shm"
CPP_TOOL = BUILD / "tests" / "cpp" / "tool_shm"
TIMEOUT = 60  # seconds for any subprocess; a hang is a failure

EXIT_MISMATCH = 1
EXIT_NOT_FOUND = 100 + 2
EXIT_EXISTS = 100 + 3


@pytest.fixture(scope="module", autouse=True)
def tools_built():
    for tool in (C_TOOL, CPP_TOOL):
        assert tool.exists(), "%s is missing: run `make native` (or set MPX_BUILD)" % tool


_counter = itertools.count()


@pytest.fixture
def new_name():
    """Makes unique names for this test and removes them afterwards, whatever happened."""
    made = []

    def make(tag):
        name = "x-cross-%d-%d-%s" % (os.getpid(), next(_counter), tag)
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in made:
            try:
                os.unlink("/dev/shm/mpx." + name)
            except FileNotFoundError:
                pass


def tool(exe, *args, expect=0):
    """Runs a tool to completion (bounded) and checks its exit code; returns its stdout."""
    r = subprocess.run(
        [str(exe), *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert r.returncode == expect, "%s %s exited %d, wanted %d; stderr: %s" % (
        exe.name, " ".join(map(str, args)), r.returncode, expect, r.stderr
    )
    return r.stdout


def tool_read(exe, name):
    size, digest = tool(exe, "read", name).split()
    return int(size), int(digest, 16)


def test_c_creates_python_reads(new_name):
    name = new_name("c2py")
    tool(C_TOOL, "create", name, 10000, 7)
    shm = SharedMemory(name)
    try:
        assert shm.name == name
        assert shm.size == 10000
        assert len(shm.buf) == 10000
        assert bytes(shm.buf) == pattern(10000, 7).tobytes()
    finally:
        shm.close()
    # Python attaching and closing changed nothing for the others.
    tool(CPP_TOOL, "verify", name, 7)


def test_python_creates_cpp_writes(new_name):
    name = new_name("py2cpp")
    shm = SharedMemory(name, create=True, size=12345)
    try:
        assert bytes(shm.buf) == bytes(12345)
        tool(CPP_TOOL, "fill", name, 11)
        assert bytes(shm.buf) == pattern(12345, 11).tobytes()
        # The C tool agrees on size and contents.
        assert tool_read(C_TOOL, name) == (12345, fnv1a(shm.buf))
        tool(C_TOOL, "verify", name, 11)
    finally:
        shm.close()
        shm.unlink()
    tool(C_TOOL, "read", name, expect=EXIT_NOT_FOUND)


def test_cpp_creates_python_writes_c_reads(new_name):
    name = new_name("cpp2py2c")
    tool(CPP_TOOL, "create", name, 65536, 3)
    shm = SharedMemory(name)
    try:
        view = np.frombuffer(shm.buf, dtype=np.uint8)
        assert np.array_equal(view, pattern(65536, 3))
        view[:] = pattern(65536, 200)
        del view  # release the export so close() can unmap
        tool(C_TOOL, "verify", name, 200)
        # The check can fail: the old pattern is gone, and the C tool says so.
        tool(C_TOOL, "verify", name, 3, expect=EXIT_MISMATCH)
        assert tool_read(C_TOOL, name) == (65536, fnv1a(shm.buf))
    finally:
        shm.close()
    tool(CPP_TOOL, "verify", name, 200)


def test_numpy_over_the_same_bytes(new_name):
    name = new_name("numpy")
    n = 4096
    tool(C_TOOL, "create", name, n * 4, 0)
    shm = SharedMemory(name)
    try:
        as_u8 = np.frombuffer(shm.buf, dtype=np.uint8)
        as_u32 = np.ndarray((n,), dtype="<u4", buffer=shm.buf)
        assert np.array_equal(as_u8, pattern(n * 4, 0))
        assert as_u32[1] == int.from_bytes(pattern(8, 0)[4:8].tobytes(), "little")
        # Write float32 through numpy; C++ sees exactly those bytes.
        f = np.ndarray((n,), dtype=np.float32, buffer=shm.buf)
        f[:] = np.linspace(-1.0, 1.0, n, dtype=np.float32)
        expect = fnv1a(np.linspace(-1.0, 1.0, n, dtype=np.float32).tobytes())
        assert tool_read(CPP_TOOL, name) == (n * 4, expect)
        # A C++ write is seen by the live numpy views at once.
        tool(CPP_TOOL, "fill", name, 9)
        assert np.array_equal(as_u8, pattern(n * 4, 9))
        del as_u8, as_u32, f
    finally:
        shm.close()


def test_errors_cross_languages(new_name):
    missing = new_name("missing")
    tool(C_TOOL, "verify", missing, 1, expect=EXIT_NOT_FOUND)
    tool(CPP_TOOL, "read", missing, expect=EXIT_NOT_FOUND)
    with pytest.raises(FileNotFoundError):
        SharedMemory(missing)

    name = new_name("taken")
    tool(C_TOOL, "create", name, 100, 1)
    with pytest.raises(FileExistsError):
        SharedMemory(name, create=True, size=100)
    tool(CPP_TOOL, "create", name, 100, 2, expect=EXIT_EXISTS)
    tool(C_TOOL, "verify", name, 1)  # the failed creates did not touch it

    with pytest.raises(ValueError):
        SharedMemory("bad/name", create=True, size=10)
    tool(C_TOOL, "create", "bad/name", 10, 0, expect=100 + 1)


def test_python_user_exiting_does_not_unlink(new_name):
    """CPython's resource tracker unlinks segments that other processes still use; mpx never
    does: a Python process that attaches and exits, even killed, leaves the buffer alone."""
    name = new_name("tracker")
    tool(C_TOOL, "create", name, 4096, 5)
    script = (
        "import os, signal, sys\n"
        "from mpx.shared_memory import SharedMemory\n"
        "s = SharedMemory(sys.argv[1])\n"
        "assert s.size == 4096\n"
        "if sys.argv[2] == 'kill':\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "s.close()\n"
    )
    for how in ("close", "kill"):
        r = subprocess.run(
            [sys.executable, "-c", script, name, how], capture_output=True, text=True, timeout=TIMEOUT
        )
        assert r.returncode == (0 if how == "close" else -signal.SIGKILL), r.stderr
        tool(C_TOOL, "verify", name, 5)


def test_liveness_lock_held_by_a_c_process(new_name):
    """A process that has a buffer open holds a shared flock on its file (what `mpx gc` and
    unlink-on-last-close rely on); the kernel drops it when the process dies, even by SIGKILL."""
    name = new_name("hold")
    tool(CPP_TOOL, "create", name, 4096, 1)
    path = "/dev/shm/mpx." + name

    def in_use():
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also drops our probe lock

    assert not in_use()
    holder = subprocess.Popen([str(C_TOOL), "hold", name, "60"], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([holder.stdout], [], [], TIMEOUT)
        assert ready, "the holder did not report within %d s" % TIMEOUT
        assert holder.stdout.readline().strip() == "holding " + name
        assert in_use()
        # Python opening it too does not disturb the holder; the name stays after we close.
        shm = SharedMemory(name)
        shm.close()
        assert os.path.exists(path) and in_use()
        holder.kill()
        assert holder.wait(timeout=TIMEOUT) == -signal.SIGKILL
        assert not in_use()
        tool(C_TOOL, "verify", name, 1)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=TIMEOUT)
        holder.stdout.close()


def test_corrupt_segment_refused_everywhere(new_name):
    """A header damaged behind the library's back is refused by C, C++ and Python alike."""
    import mpx

    name = new_name("corrupt")
    tool(C_TOOL, "create", name, 4096, 1)
    with open("/dev/shm/mpx." + name, "r+b") as f:
        f.seek(48)  # creator_pid: covered by the header checksum
        f.write(b"\x01\x00\x00\x00")
    tool(C_TOOL, "read", name, expect=100 + 11)
    tool(CPP_TOOL, "read", name, expect=100 + 11)
    with pytest.raises(mpx.CorruptError, match="checksum"):
        SharedMemory(name)


@pytest.mark.parametrize(
    "argv, expect",
    [
        ([str(BUILD / "examples" / "c" / "shm_hello")], "hello from C (4096 bytes, /dev/shm/mpx.hello-c)"),
        ([str(BUILD / "examples" / "cpp" / "shm_hello")], "hello from C++: 1024 ints, the last is 1046529"),
        ([sys.executable, str(ROOT / "examples" / "python" / "shm_hello.py")], "hello from Py! (4096 bytes)"),
        ([sys.executable, str(ROOT / "examples" / "demo.py")], "mpx demo: OK"),
    ],
    ids=["c-hello", "cpp-hello", "python-hello", "demo"],
)
def test_examples_run_and_leave_nothing(argv, expect):
    before = {n for n in os.listdir("/dev/shm") if n.startswith("mpx.")}
    r = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert expect in r.stdout
    after = {n for n in os.listdir("/dev/shm") if n.startswith("mpx.")}
    ours = {n for n in after - before if n.startswith(("mpx.hello-", "mpx.demo-"))}
    assert not ours, "the example left %s" % sorted(ours)
