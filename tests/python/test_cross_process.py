"""Processes across languages: a Python parent starting a C worker (mpx.spawn_executable) and a
C parent (mpx_spawn) starting a Python worker, handing each a named shared-memory buffer by
name; exit codes checked both ways.

The C side is tests/c/tool_process.c, built into $MPX_BUILD/tests/c/tool_process by
`make native`. Pattern SEED: byte i = (i * 31 + SEED) mod 256.
"""

import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import mpx
from conftest import OWN_PIDS, child_env
from mpx.shared_memory import SharedMemory
from patterns import pattern_array as pattern

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MPX_BUILD", ROOT / "build"))
TOOL = BUILD / "tests" / "c" / "tool_process"
TIMEOUT = 60


@pytest.fixture(scope="module", autouse=True)
def tool_built():
    assert TOOL.exists(), "%s is missing: run `make native` (or set MPX_BUILD)" % TOOL


@pytest.fixture
def shm_name(unique_name):
    yield unique_name
    try:
        os.unlink("/dev/shm/mpx." + unique_name)
    except FileNotFoundError:
        pass


def read_all(fd):
    out = b""
    while True:
        r, _, _ = select.select([fd], [], [], TIMEOUT)
        assert r, "no output within %ss" % TIMEOUT
        chunk = os.read(fd, 65536)
        if not chunk:
            return out.decode()
        out += chunk


# Python parent, C worker


@pytest.mark.parametrize("size,seed,code", [(1, 3, 0), (4096, 17, 7), ((1 << 20) + 13, 200, 42)])
def test_python_parent_c_worker(shm_name, size, seed, code):
    shm = SharedMemory(shm_name, create=True, size=size)
    try:
        r, w = os.pipe()
        try:
            p = mpx.spawn_executable([str(TOOL), "worker", shm_name, str(seed), str(code)], name="c-worker", stdout=w)
        finally:
            os.close(w)
        try:
            out = read_all(r)
        finally:
            os.close(r)
        p.join(TIMEOUT)
        assert p.exitcode == code
        # The C worker knows the name it was given and who its parent is.
        assert out == "worker c-worker %d\n" % os.getpid()
        data = np.frombuffer(shm.buf, dtype=np.uint8)
        assert np.array_equal(data, pattern(size, seed))
        del data
    finally:
        shm.close()
        shm.unlink()


def test_c_worker_missing_buffer_is_its_exit_code(shm_name):
    p = mpx.spawn_executable([str(TOOL), "worker", shm_name, "1", "0"], stderr="null")
    p.join(TIMEOUT)
    assert p.exitcode == 100 + 2  # MPX_E_NOT_FOUND in the worker


def test_c_worker_signals():
    p = mpx.spawn_executable([str(TOOL), "sleep", "60"])
    p.join(0.1)
    assert p.is_alive()
    p.terminate()
    p.join(TIMEOUT)
    assert p.exitcode == -signal.SIGTERM
    k = mpx.spawn_executable([str(TOOL), "sleep", "60"])
    k.kill()
    k.join(TIMEOUT)
    assert k.exitcode == -signal.SIGKILL


def test_c_worker_from_a_python_child(shm_name):
    """A Python child (each start method) starts the C worker on the parent's buffer."""
    shm = SharedMemory(shm_name, create=True, size=10000)
    try:
        for seed, method in enumerate(("fork", "spawn", "forkserver"), start=1):
            p = mpx.get_context(method).Process(target=_run_c_worker, args=(str(TOOL), shm_name, seed))
            p.start()
            p.join(TIMEOUT)
            assert p.exitcode == 9, method
            assert np.array_equal(np.frombuffer(shm.buf, dtype=np.uint8), pattern(10000, seed)), method
    finally:
        shm.close()
        shm.unlink()


def _run_c_worker(tool, name, seed):
    p = mpx.spawn_executable([tool, "worker", name, str(seed), "9"], stdout="null")
    p.join(TIMEOUT)
    sys.exit(p.exitcode)


# C parent, Python worker

PY_WORKER = """
import os, signal, sys
import mpx
from mpx.shared_memory import SharedMemory

name, seed, code = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
shm = SharedMemory(name)
n = shm.size
shm.buf[:n] = bytes((i * 31 + seed) & 0xFF for i in range(n))
shm.close()
if code < 0:
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


@pytest.fixture
def py_worker(tmp_path):
    path = tmp_path / "py_worker.py"
    path.write_text(textwrap.dedent(PY_WORKER))
    return str(path)


def run_c_parent(name, size, seed, expect, argv):
    p = subprocess.Popen(
        [str(TOOL), "parent", name, str(size), str(seed), str(expect), "--"] + argv,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), text=True,
    )
    OWN_PIDS.add(p.pid)
    try:
        out, err = p.communicate(timeout=TIMEOUT + 30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
        pytest.fail("C parent timed out; stderr: %s" % err)
    return p.returncode, out, err


@pytest.mark.parametrize("size,seed,code", [(1, 9, 0), (5000, 77, 5), (70000, 255, 123)])
def test_c_parent_python_worker(shm_name, py_worker, size, seed, code):
    rc, out, err = run_c_parent(shm_name, size, seed, code, [sys.executable, py_worker, shm_name, str(seed), str(code)])
    assert rc == 0, "C parent exited %d: %s" % (rc, err)
    assert out.startswith("parent child=") and out.rstrip().endswith("exitcode=%d" % code)
    assert not os.path.exists("/dev/shm/mpx." + shm_name)  # the C parent unlinked it


def test_c_parent_sees_python_worker_killed_by_signal(shm_name, py_worker):
    code = -signal.SIGTERM
    rc, out, err = run_c_parent(shm_name, 100, 1, code, [sys.executable, py_worker, shm_name, "1", str(code)])
    assert rc == 0, err
    assert out.rstrip().endswith("exitcode=-15")


def test_c_parent_detects_wrong_exit_code(shm_name, py_worker):
    # The checks can fail: the worker exits 4 where 5 is expected.
    rc, out, err = run_c_parent(shm_name, 100, 1, 5, [sys.executable, py_worker, shm_name, "1", "4"])
    assert rc == 3
    assert "child exit code 4, expected 5" in err


def test_c_parent_detects_wrong_pattern(shm_name, py_worker):
    rc, out, err = run_c_parent(shm_name, 100, 1, 0, [sys.executable, py_worker, shm_name, "2", "0"])
    assert rc == 1
    assert "expected" in err


def test_c_parent_missing_program(shm_name):
    rc, out, err = run_c_parent(shm_name, 100, 1, 0, ["/nonexistent/mpx-python"])
    assert rc == 100 + 2  # MPX_E_NOT_FOUND at spawn, not a child exiting 127
    assert "MPX_E_NOT_FOUND" in err
    assert not os.path.exists("/dev/shm/mpx." + shm_name)
