"""The optional C accelerator (mpx/_speedups.c): built by `make test`, it must agree with the
ctypes path it replaces, refuse bad calls cleanly and never dereference a closed handle.

These tests exercise the module itself, also when the suite runs with MPX_NO_SPEEDUPS=1 (the
package then uses ctypes; test_sync.py and the others test that path)."""
import ctypes
import os
import threading
import time

import pytest

import mpx
from mpx import _lib, errors, synchronize

# Whether the package runs without the accelerator in this run (read before any test changes it).
DISABLED = bool(os.environ.get("MPX_NO_SPEEDUPS"))


@pytest.fixture(autouse=True)
def _accelerator_on(monkeypatch):
    # _lib.fast() honours MPX_NO_SPEEDUPS; these tests need the calls it makes either way.
    monkeypatch.delenv("MPX_NO_SPEEDUPS", raising=False)


def test_built_and_in_use():
    # make test builds it (make pyext); a missing build would silently test only ctypes.
    assert _lib._speedups is not None, "mpx/_speedups*.so was not built (make pyext)"
    assert _lib.fast("mpx_lock_release", "p") is not None
    # The package uses it unless told not to.
    assert (synchronize._LockCore is None) == DISABLED
    assert issubclass(mpx.Lock, _lib._speedups.LockCore) != DISABLED


def test_signatures_and_argument_errors():
    acquire = _lib.fast("mpx_lock_acquire", "pq")
    with pytest.raises(TypeError):
        acquire(0)
    with pytest.raises(TypeError):
        acquire(0, 1, x=2)
    with pytest.raises(ValueError):
        _lib._speedups.bind("x", 0, "p")
    with pytest.raises(ValueError):
        _lib._speedups.bind("x", 1, "zz")
    with pytest.raises(AttributeError):
        _lib.fast("mpx_no_such_function", "p")


def test_null_handles_are_refused_not_dereferenced():
    acquire = _lib.fast("mpx_lock_acquire", "pq")
    release = _lib.fast("mpx_lock_release", "p")
    assert acquire(None, 0) == _lib.errors.MPX_E_INVALID
    assert acquire(0, -1) == _lib.errors.MPX_E_INVALID
    assert release(ctypes.c_void_p(None)) == _lib.errors.MPX_E_INVALID


def test_same_results_as_ctypes(unique_name):
    lock = mpx.Lock.create(unique_name)
    try:
        h = ctypes.cast(lock._h, ctypes.c_void_p).value
        acquire = _lib.fast("mpx_lock_acquire", "pq")
        release = _lib.fast("mpx_lock_release", "p")
        assert acquire(h, 0) == 0
        assert acquire(h, 0) == _lib.errors.MPX_E_TIMEOUT  # held: a try fails
        assert acquire(ctypes.c_void_p(h), ctypes.c_int64(1_000_000)) == _lib.errors.MPX_E_TIMEOUT
        assert release(h) == 0
        assert release(h) == _lib.errors.MPX_E_STATE  # not held
        assert _lib.lib.mpx_lock_acquire(lock._h, 0) == 0 and _lib.lib.mpx_lock_release(lock._h) == 0
    finally:
        lock.unlink()
        lock.close()
    with pytest.raises(ValueError):
        lock.acquire()  # closed: a clear error, not a use of freed memory


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("MPX_NO_SPEEDUPS", "1")
    assert _lib.fast("mpx_lock_release", "p") is None


#
# LockCore: the C base class of mpx's lock-like classes (acquire, release, __enter__, __exit__)
#


class Probe(_lib._speedups.LockCore):
    """A LockCore whose Python fallbacks record how they were called."""

    def __init__(self):
        self.calls = []

    def _acquired_slow(self, st):
        self.calls.append(("slow", st))
        return "slow"

    def _release_failed(self, st):
        self.calls.append(("release_failed", st))
        return True  # a true value must not come back from __exit__ (it would swallow errors)

    def _acquire_py(self, *args, **kw):
        self.calls.append(("py", args, kw))
        return "py"


def bound_probe(handle_address, slice_ns=20_000_000, first_ns=1):
    p = Probe()
    p._bind(_lib.fast("mpx_lock_acquire", "pq"), _lib.fast("mpx_lock_release", "p"), slice_ns, first_ns, False)
    p._a = handle_address
    return p


@pytest.fixture
def raw_lock(unique_name):
    lock = mpx.Lock.create(unique_name)
    try:
        yield lock, ctypes.cast(lock._h, ctypes.c_void_p).value
    finally:
        lock.unlink()
        lock.close()


def test_status_constant_matches_the_library():
    assert _lib._speedups.MPX_E_TIMEOUT == errors.MPX_E_TIMEOUT


@pytest.mark.parametrize("first_ns", [-1, 0, 1])
def test_lock_core_fast_paths_and_fallbacks(raw_lock, first_ns):
    lock, h = raw_lock
    p = bound_probe(h, first_ns=first_ns)
    assert p._a == h
    assert p.acquire() is True and lock.locked()
    assert p.release() is None and not lock.locked()
    assert p.__enter__() is True and lock.locked()
    assert p.__exit__(None, None, None) is None and not lock.locked()
    assert p.acquire(True) is True
    assert p.acquire(False) is False  # held: a failed try, in C
    assert p.calls == []
    # A wait whose slice runs out goes to the Python fallback with the status.
    t = time.monotonic()
    assert p.acquire() == "slow"
    assert time.monotonic() - t >= 0.015
    assert p.__enter__() == "slow"
    assert p.calls == [("slow", errors.MPX_E_TIMEOUT)] * 2
    p.calls.clear()
    # Anything but acquire(), acquire(True/False): the Python method, with the arguments as given.
    assert p.acquire(timeout=1) == "py"
    assert p.acquire(True, 0.5) == "py"
    assert p.acquire(1) == "py"
    assert p.acquire(block=False) == "py"
    assert p.calls == [("py", (), {"timeout": 1}), ("py", (True, 0.5), {}), ("py", (1,), {}),
                       ("py", (), {"block": False})]
    p.calls.clear()
    assert p.release() is None and not lock.locked()
    # A failed release: the fallback runs, and its result never reaches the caller.
    assert p.release() is None
    assert p.__exit__(KeyError, KeyError("x"), None) is None
    assert p.calls == [("release_failed", errors.MPX_E_STATE)] * 2


def test_lock_core_waits_without_the_gil(raw_lock):
    """While one thread waits in acquire() (past the first, GIL-held spin), another runs Python."""
    lock, h = raw_lock
    p = bound_probe(h, slice_ns=5_000_000_000)
    assert lock.acquire(False)
    result = []
    th = threading.Thread(target=lambda: result.append(p.acquire()))
    th.start()
    try:
        time.sleep(0.05)
        n, end = 0, time.monotonic() + 0.1
        while time.monotonic() < end:  # pure Python: needs the GIL the waiter must not hold
            n += 1
        assert n > 1000 and th.is_alive() and result == []
    finally:
        lock.release()
        th.join(30)
    assert result == [True] and p.calls == []
    assert p.release() is None


def test_lock_core_closed_and_bad_use(raw_lock):
    lock, h = raw_lock
    unbound = Probe()
    for use in (unbound.acquire, unbound.release, unbound.__enter__, lambda: unbound.__exit__(None, None, None)):
        with pytest.raises(TypeError, match="not initialised"):
            use()
    assert unbound._a is None
    p = bound_probe(h)
    p._a = None  # what close() does: the library refuses NULL, never dereferences it
    assert p.acquire() == "slow" and p.acquire(False) == "slow" and p.release() is None
    assert p.calls == [("slow", errors.MPX_E_INVALID)] * 2 + [("release_failed", errors.MPX_E_INVALID)]
    with pytest.raises(TypeError):
        p._a = "0x10"
    with pytest.raises(TypeError):
        p._a = ctypes.c_void_p(h)
    with pytest.raises(AttributeError):
        del p._a
    acq, rel = _lib.fast("mpx_lock_acquire", "pq"), _lib.fast("mpx_lock_release", "p")
    with pytest.raises(TypeError):
        p._bind(rel, rel, 1, 1, False)  # wrong signature
    with pytest.raises(TypeError):
        p._bind(acq, lambda h: 0, 1, 1, False)  # not a fast call
    with pytest.raises(ValueError):
        p._bind(acq, rel, 0, 1, False)
    with pytest.raises(ValueError):
        p._bind(acq, rel, 1, -2, False)
    with pytest.raises(ValueError):
        p._bind(acq, rel, 1, 10_000_000, False)  # a first attempt keeps the GIL: never a long one
    assert not lock.locked()
