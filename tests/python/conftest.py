"""Shared fixtures for the Python tests of mpx.

- ``unique_name``: a fresh object name (pid + counter + random), so parallel runs and other
  people's tests on the machine never collide; ``make_name()`` makes more.
- ``run_py`` / ``popen_py``: run Python code in a real child process that imports this
  checkout's mpx package (every wait is bounded).
- an autouse check that fails a test which leaves new /dev/shm/mpx.* entries behind (and then
  removes them, so one leak does not fail every later test).

The machine is shared: only entries this test run made count as leaks (names made by
``unique_name``, or segments whose header says a process of this run created them).
"""

import itertools
import os
import re
import secrets
import signal
import stat
import struct
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINDINGS = os.path.join(ROOT, "bindings", "python")
SHM_DIR = "/dev/shm"
PREFIX = "mpx."

# Make the package importable in this process even without PYTHONPATH.
if BINDINGS not in sys.path:
    sys.path.insert(0, BINDINGS)

_counter = itertools.count()
# Every name from unique_name starts with this, so leftovers are recognisably ours.
NAME_TAG = "t%d-" % os.getpid()
# Processes this run started (children create segments too).
OWN_PIDS = {os.getpid()}


def _make_name(label="obj"):
    return "%s%s-%d-%s" % (NAME_TAG, label, next(_counter), secrets.token_hex(3))


@pytest.fixture
def unique_name():
    """A fresh object name (str) for this test: "t<pid>-<label>-<counter>-<random>"."""
    return _make_name("t")


@pytest.fixture
def make_name(request):
    """A function returning more fresh names: ``make_name()`` or ``make_name("label")``."""

    def make(label=None):
        return _make_name(label or re.sub(r"[^A-Za-z0-9._-]", "_", request.node.name)[:40])

    return make


def child_env():
    env = dict(os.environ)
    paths = [BINDINGS] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class ChildResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self):
        return "ChildResult(rc=%r, stdout=%r, stderr=%r)" % (self.returncode, self.stdout, self.stderr[-2000:])


@pytest.fixture
def run_py():
    """``run_py(code, *args, input=b"", pass_fds=(), timeout=60, check=True)``: runs
    ``python -c code args...`` (code is dedented), returns a ChildResult with text output.
    With check, a non-zero exit fails the test with the child's stderr."""

    def run(code, *args, input=b"", pass_fds=(), timeout=60, check=True):
        p = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)] + [str(a) for a in args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
            pass_fds=tuple(pass_fds),
        )
        OWN_PIDS.add(p.pid)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate(timeout=10)
            pytest.fail("child timed out after %ss; stderr:\n%s" % (timeout, err.decode(errors="replace")))
        res = ChildResult(p.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and p.returncode != 0:
            pytest.fail("child exited with %r; stderr:\n%s" % (p.returncode, res.stderr))
        return res

    return run


@pytest.fixture
def popen_py():
    """``popen_py(code, *args, **popen_kwargs)``: a running child (stdout/stdin pipes, text mode).
    Children still alive at the end of the test are killed."""
    procs = []

    def start(code, *args, **kw):
        kw.setdefault("stdin", subprocess.PIPE)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        p = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)] + [str(a) for a in args],
            env=child_env(),
            text=True,
            **kw,
        )
        OWN_PIDS.add(p.pid)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        try:
            p.communicate(timeout=10)
        except Exception:
            pass


@pytest.fixture
def own_pid():
    """``own_pid(pid)``: declares a process this test started some other way (multiprocessing),
    so segments it creates count for the leak check."""
    return OWN_PIDS.add


def _creator_pid(path):
    # Header: creator_pid is an i32 at offset 48 (see src/object/header.rs). Other people's
    # tests may leave FIFOs or symlinks named mpx.*: never block on or follow them.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.pread(fd, 52, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(head) < 52:
        return None
    return struct.unpack_from("<i", head, 48)[0]


def _entries():
    try:
        return {e for e in os.listdir(SHM_DIR) if e.startswith(PREFIX)}
    except FileNotFoundError:
        return set()


def _ours(entry):
    if entry[len(PREFIX):].startswith(NAME_TAG):
        return True
    return _creator_pid(os.path.join(SHM_DIR, entry)) in OWN_PIDS


@pytest.fixture(autouse=True)
def no_shm_leftovers():
    """Fails a test that leaves new /dev/shm/mpx.* entries of this run behind, then removes them."""
    before = _entries()
    yield
    leaked = sorted(e for e in _entries() - before if _ours(e))
    for e in leaked:
        try:
            os.unlink(os.path.join(SHM_DIR, e))
        except OSError:
            pass
    if leaked:
        pytest.fail("test left shared-memory objects behind in %s: %s" % (SHM_DIR, ", ".join(leaked)))
