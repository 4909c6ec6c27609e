"""Synchronization across languages, with real processes: C and C++ programs
(tests/c/tool_sync.c, tests/cpp/tool_sync.cpp, built into $MPX_BUILD by `make native`) and
Python (the mpx package) on the same named locks, values, barriers, events and semaphores.

Tool exit codes: 0 ok, 2 usage, 100 - status for an mpx error (102 = MPX_E_NOT_FOUND,
104 = MPX_E_TIMEOUT, 109 = MPX_E_KIND). Every subprocess and every wait is bounded.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

import mpx

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MPX_BUILD", ROOT / "build"))
C_TOOL = BUILD / "tests" / "c" / "tool_sync"
CPP_TOOL = BUILD / "tests" / "cpp" / "tool_sync"
TIMEOUT = 120  # seconds for any subprocess; a hang is a failure

EXIT_NOT_FOUND = 100 + 2
EXIT_TIMEOUT = 100 + 4
EXIT_KIND = 100 + 9


@pytest.fixture(scope="module", autouse=True)
def tools_built():
    for tool in (C_TOOL, CPP_TOOL):
        assert tool.exists(), "%s is missing: run `make native` (or set MPX_BUILD)" % tool


@pytest.fixture
def new_name(make_name):
    """Names for this test, removed afterwards whatever happened."""
    made = []

    def make(tag):
        name = make_name(tag)
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


class Tool:
    """A running tool (stdout/stderr captured), finished with .finish()."""

    def __init__(self, exe, *args):
        from conftest import OWN_PIDS

        self.args = [str(exe), *map(str, args)]
        self.p = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        OWN_PIDS.add(self.p.pid)

    def finish(self, expect=0, timeout=TIMEOUT):
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate(timeout=10)
            pytest.fail("%s hung; stderr: %s" % (" ".join(self.args), err))
        self.err = err
        assert self.p.returncode == expect, "%s exited %d, wanted %d; stderr: %s" % (
            " ".join(self.args), self.p.returncode, expect, err)
        return out

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.communicate(timeout=10)


def tool(exe, *args, expect=0):
    return Tool(exe, *args).finish(expect)


def test_c_and_python_keep_one_counter_exact_over_a_million_increments(new_name):
    """A C process and a Python process contend on one named Lock; the counter is a named
    Value both increment with a plain read and write under the lock."""
    lock = mpx.Lock.create(new_name("lock"))
    counter = mpx.RawValue.create(new_name("counter"), "q", 0)
    half = 500_000
    c = Tool(C_TOOL, "incr", lock.name, counter._wrapper.name, half)
    try:
        for _ in range(half):
            with lock:
                counter.value += 1
    finally:
        out = c.finish()
    assert out.split() == ["done", str(half)]
    assert counter.value == 2 * half
    assert not lock.locked()


def test_three_languages_under_a_values_own_lock(new_name):
    """C, C++ and Python increment one Value under its embedded lock (Python's get_lock())."""
    v = mpx.Value.create(new_name("value"), "q", 0)
    n = 50_000
    tools = [Tool(C_TOOL, "incr-vlock", v.name, n), Tool(CPP_TOOL, "incr-vlock", v.name, n)]
    try:
        for _ in range(n):
            with v.get_lock():
                v.value += 1
    finally:
        outs = [t.finish() for t in tools]
    assert outs == ["done %d\n" % n] * 2
    assert v.value == 3 * n


def test_c_and_cpp_inline_fetch_add_python_reads(new_name):
    """C (mpx_value_int_ptr + mpx_elem_fetch_add_i64) and C++ (value::fetch_add) add to one
    Value lock-free at once, inline on the element; Python reads the exact total."""
    v = mpx.RawValue.create(new_name("counter"), "q", 5)
    n = 200_000
    tools = [Tool(C_TOOL, "fetch-add", v._wrapper.name, n), Tool(CPP_TOOL, "fetch-add", v._wrapper.name, n)]
    outs = [t.finish() for t in tools]
    assert outs == ["done %d\n" % n] * 2
    assert v.value == 5 + 2 * n


def test_cpp_and_python_on_one_lock(new_name):
    lock = mpx.Lock.create(new_name("lock"))
    counter = mpx.Value.create(new_name("counter"), "l", 0, lock=False)
    n = 50_000
    t = Tool(CPP_TOOL, "incr", lock.name, counter._wrapper.name, n)
    try:
        for _ in range(n):
            with lock:
                counter.value += 1
    finally:
        t.finish()
    assert counter.value == 2 * n


def test_barrier_of_c_cpp_and_python(new_name):
    b = mpx.Barrier.create(new_name("barrier"), 3)
    rounds = 30
    c = Tool(C_TOOL, "barrier", b.name, rounds, 60_000)
    cpp = Tool(CPP_TOOL, "barrier", b.name, rounds, 60_000)
    mine = []
    try:
        for _ in range(rounds):
            mine.append(b.wait(timeout=60))
    finally:
        if len(mine) < rounds:
            b.abort()
        c_out, cpp_out = c.finish(), cpp.finish()

    def indices(out):
        pairs = [tuple(map(int, line.split())) for line in out.splitlines()]
        assert [r for r, _ in pairs] == list(range(rounds))
        return [i for _, i in pairs]

    for r, trio in enumerate(zip(indices(c_out), indices(cpp_out), mine)):
        assert sorted(trio) == [0, 1, 2], "round %d: indices %s" % (r, trio)


def test_broken_barrier_reaches_c(new_name):
    b = mpx.Barrier.create(new_name("barrier"), 3)
    c = Tool(C_TOOL, "barrier", b.name, 1, 60_000)
    deadline = time.monotonic() + 30
    while b.n_waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    with pytest.raises(mpx.BrokenBarrierError):
        b.wait(timeout=0.05)  # times out: broken for the C waiter too
    c.finish(expect=100 + 19)  # MPX_E_BROKEN


def test_event_set_from_cpp_wakes_python(new_name):
    ev = mpx.Event.create(new_name("event"))
    t0 = time.monotonic()
    setter = Tool(CPP_TOOL, "event-set", ev.name, 300)
    try:
        assert ev.wait(timeout=60) is True
        waited = time.monotonic() - t0
    finally:
        assert setter.finish() == "set\n"
    assert waited >= 0.25, "the Python waiter slept until the C++ set (%.3f s)" % waited
    assert ev.is_set()


def test_event_set_from_python_wakes_c_and_cpp(new_name):
    ev = mpx.Event.create(new_name("event"))
    waiters = [Tool(C_TOOL, "event-wait", ev.name, 60_000), Tool(CPP_TOOL, "event-wait", ev.name, 60_000)]
    time.sleep(0.2)
    ev.set()
    assert [w.finish() for w in waiters] == ["set\n", "set\n"]
    ev.clear()
    tool(C_TOOL, "event-wait", ev.name, 50, expect=EXIT_TIMEOUT)
    tool(CPP_TOOL, "event-wait", ev.name, 50, expect=EXIT_TIMEOUT)


def test_python_writes_c_and_cpp_read(new_name):
    d = mpx.Value.create(new_name("double"), "d", 3.25)
    q = mpx.Value.create(new_name("int64"), "q", -(2**40), lock=False)
    a = mpx.Array.create(new_name("ints"), "i", [1, -2, 3, 2**31 - 1])
    assert tool(C_TOOL, "value-get", d.name) == "d 1 3.25\n"
    assert tool(CPP_TOOL, "value-get", d.name) == "d 1 3.25\n"
    assert tool(C_TOOL, "value-get", q._wrapper.name) == "q 1 %d\n" % -(2**40)
    assert tool(CPP_TOOL, "value-get", q._wrapper.name) == "q 1 %d\n" % -(2**40)
    assert tool(C_TOOL, "value-get", a.name) == "i 4 1 -2 3 2147483647\n"
    assert tool(CPP_TOOL, "value-get", a.name) == "i 4 1 -2 3 2147483647\n"
    d.value = 0.1
    assert tool(C_TOOL, "value-get", d.name) == "d 1 0.10000000000000001\n"
    a[1:3] = [20, 30]
    assert tool(C_TOOL, "value-get", a.name) == "i 4 1 20 30 2147483647\n"


def test_a_python_structure_is_its_bytes_in_c(new_name):
    import ctypes

    class Point(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int32), ("flag", ctypes.c_uint8), ("y", ctypes.c_int64)]

    v = mpx.Value.create(new_name("struct"), Point, 1, 2, -3)
    # Typecode 'B', sizeof(Point) bytes in the layout C gives the same struct (padding included).
    layout = bytes(Point(1, 2, -3))
    assert len(layout) == 16
    expect = "B 16 %s\n" % " ".join(str(b) for b in layout)
    assert tool(C_TOOL, "value-get", v.name) == expect
    tool(C_TOOL, "value-set", v.name, Point.flag.offset, "200")  # C writes the field's byte
    assert v.flag == 200 and (v.x, v.y) == (1, -3)


def test_c_writes_python_reads(new_name):
    a = mpx.Array.create(new_name("arr"), "d", 3)
    import numpy as np

    view = np.frombuffer(a.get_obj(), dtype=np.float64)  # zero-copy: sees the C writes
    tool(C_TOOL, "value-set", a.name, 2, "-7.5")
    tool(C_TOOL, "value-set", a.name, 0, "1e300")
    assert a[:] == [1e300, 0.0, -7.5] and view[2] == -7.5
    v = mpx.Value.create(new_name("int"), "i", 0)
    tool(C_TOOL, "value-set", v.name, 0, "123456")
    assert v.value == 123456
    tool(C_TOOL, "value-set", v.name, 0, str(2**31), expect=100 + 1)  # out of range for 'i'
    tool(C_TOOL, "value-set", v.name, 1, "5", expect=100 + 1)  # index out of range
    assert v.value == 123456


def test_semaphore_handoff_with_c(new_name):
    s = mpx.Semaphore.create(new_name("sem"), 0)
    c = Tool(C_TOOL, "sem-release", s.name, 100)
    for _ in range(100):
        assert s.acquire(timeout=60)
    c.finish()
    assert s.get_value() == 0
    waiter = Tool(C_TOOL, "sem-acquire", s.name, 3, 60_000)
    for _ in range(3):
        s.release()
    assert waiter.finish() == "done 3\n"
    tool(C_TOOL, "sem-acquire", s.name, 1, 20, expect=EXIT_TIMEOUT)
    bs = mpx.BoundedSemaphore.create(new_name("bsem"), 1)
    tool(C_TOOL, "sem-release", bs.name, 1, expect=100 + 20)  # MPX_E_STATE: past the bound


def test_wrong_kinds_across_languages(new_name):
    ev = mpx.Event.create(new_name("event"))
    tool(C_TOOL, "open-lock", ev.name, expect=EXIT_KIND)
    tool(C_TOOL, "open-lock", new_name("missing"), expect=EXIT_NOT_FOUND)
    tool(CPP_TOOL, "hold", ev.name, 0, expect=EXIT_KIND)
    lock = mpx.Lock.create(new_name("lock"))
    assert tool(C_TOOL, "open-lock", lock.name) == "lock\n"
    tool(C_TOOL, "value-get", lock.name, expect=EXIT_KIND)
    tool(C_TOOL, "barrier", lock.name, 1, 10, expect=EXIT_KIND)
    with pytest.raises(mpx.KindError):
        mpx.Semaphore.open(lock.name)


@pytest.mark.parametrize("exe", [C_TOOL, CPP_TOOL], ids=["c", "cpp"])
def test_killed_holder_in_another_language(new_name, exe):
    """A C or C++ process SIGKILLed while holding the lock: Python gets it with a warning."""
    lock = mpx.Lock.create(new_name("lock"))
    holder = Tool(exe, "hold", lock.name, 600)
    try:
        assert holder.p.stdout.readline() == "held\n"
        assert lock.acquire(timeout=0.05) is False
        holder.p.send_signal(signal.SIGKILL)
        holder.p.wait(timeout=30)
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            assert lock.acquire(timeout=30) is True
        assert [w.category for w in rec] == [mpx.OwnerDiedWarning]
        assert "pid %d" % holder.p.pid in str(rec[0].message)
        lock.release()
    finally:
        holder.kill()


def test_python_holder_killed_c_takes_over(new_name, popen_py):
    """The other way: a Python holder SIGKILLed; the C tool acquires (reports the death)."""
    name = new_name("lock")
    lock = mpx.Lock.create(name)
    py = popen_py(
        """
        import sys, time, mpx
        l = mpx.Lock.open(sys.argv[1])
        l.acquire()
        print("held", flush=True)
        time.sleep(600)
        """,
        name,
    )
    assert py.stdout.readline() == "held\n"
    py.send_signal(signal.SIGKILL)
    py.wait(timeout=30)
    t = Tool(C_TOOL, "hold", name, 0)
    assert t.finish() == "held\n"
    assert "died holding it" in t.err
    assert not lock.locked()
