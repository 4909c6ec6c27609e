"""Timeouts of connection waits behave as the standard library's (issue 11): a negative timeout
is no wait at all (CPython's poll and wait go through selectors, which treat it as 0), never an
error from the C ABI (which refuses timeouts below -1)."""

import multiprocessing as mp
import multiprocessing.connection as mpc

import pytest

import mpx
import mpx.connection


@pytest.mark.parametrize("timeout", [-1, -5, -0.5, -1e30, 0, 0.0])
@pytest.mark.parametrize("duplex", [True, False])
def test_poll_with_a_negative_or_zero_timeout_does_not_wait(timeout, duplex):
    for mod in (mp, mpx):
        r, w = mod.Pipe(duplex)
        try:
            assert r.poll(timeout) is False, mod.__name__
            w.send_bytes(b"x")
            # Data that is there is reported at once, whatever the timeout.
            assert r.poll(None) is True
            assert r.poll(timeout) is True, mod.__name__
            assert r.recv_bytes() == b"x"
        finally:
            r.close()
            w.close()


@pytest.mark.parametrize("timeout", [-3, -0.001, 0])
def test_wait_with_a_negative_timeout_returns_what_is_ready(timeout):
    for mod, wait in ((mp, mpc.wait), (mpx, mpx.connection.wait)):
        a, b = mod.Pipe()
        try:
            assert wait([a], timeout) == [], mod.__name__
            b.send_bytes(b"y")
            assert wait([a], None) == [a]
            assert wait([a], timeout) == [a], mod.__name__
        finally:
            a.close()
            b.close()
