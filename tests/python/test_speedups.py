"""The optional C accelerator (mpx/_speedups.c): built by `make test`, it must agree with the
ctypes path it replaces, refuse bad calls cleanly and never dereference a closed handle."""
import ctypes
import os

import pytest

import mpx
from mpx import _lib


def test_built_and_in_use():
    # make test builds it (make pyext); a missing build would silently test only ctypes.
    assert _lib._speedups is not None, "mpx/_speedups.so was not built (make pyext)"
    assert _lib.fast("mpx_lock_release", "p") is not None


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
