"""Signal handlers run while Python code waits in mpx: Ctrl-C (SIGINT) interrupts a
Condition.wait without a timeout, or with a long one, promptly, as the standard library's does,
and the lock is held again when KeyboardInterrupt leaves the wait. The wait goes in parts for
this (mpx_condition_wait_part); a notify is never lost or counted twice across them.
Barrier.wait too (mpx_barrier_wait_part): KeyboardInterrupt gives the wait up, which breaks
the barrier for the other parties, as a timeout does.

Every case runs with and without the C accelerator. Nothing here measures time: a wait that
did not end is caught by a 30 s limit on the child, far beyond the 0.1 s parts.
"""

import random
import signal
import threading
import time

import pytest

import mpx

WAITER = r"""
import sys, threading
import mpx

how, lock_kind = sys.argv[1], sys.argv[2]
lock = {"own": None, "lock": mpx.Lock, "rlock": mpx.RLock}[lock_kind]
c = mpx.Condition(lock() if lock else None)
c.acquire()
print("ready", flush=True)
try:
    if how == "forever":
        c.wait()
    elif how == "long":
        c.wait(3600)
    else:
        c.wait_for(lambda: False)
    print("returned", flush=True)
except KeyboardInterrupt:
    # notify() needs the lock: it raises NotOwnedError if the wait left without it.
    try:
        c.notify()
        held = "held"
    except mpx.NotOwnedError:
        held = "not held"
    c.release()
    print("interrupted, lock " + held, flush=True)
"""


@pytest.fixture(params=["speedups", "ctypes"])
def accel(request, monkeypatch):
    if request.param == "ctypes":
        monkeypatch.setenv("MPX_NO_SPEEDUPS", "1")
    else:
        monkeypatch.delenv("MPX_NO_SPEEDUPS", raising=False)
    return request.param


@pytest.mark.parametrize("how", ["forever", "long", "wait_for"])
@pytest.mark.parametrize("lock_kind", ["own", "lock", "rlock"])
def test_sigint_interrupts_condition_wait(how, lock_kind, accel, popen_py):
    p = popen_py(WAITER, how, lock_kind)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.3)  # into the wait (a SIGINT before it would interrupt just the same)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert out.strip() == "interrupted, lock held", err


def test_notify_is_neither_lost_nor_counted_twice_across_parts(accel, run_py):
    # Waiters without a timeout wait in parts of 0.1 s; notifies come at random moments, so
    # some fall between parts. Each notify(1) must wake exactly one waiter.
    run_py(r"""
        import random, threading, time
        import mpx

        c = mpx.Condition()
        N = 6
        registered, woken = [0], [0]
        def waiter():
            with c:
                registered[0] += 1
                if c.wait():
                    woken[0] += 1
        ts = [threading.Thread(target=waiter, daemon=True) for _ in range(N)]
        for t in ts:
            t.start()
        end = time.monotonic() + 30
        while True:
            with c:
                if registered[0] == N:
                    break
            assert time.monotonic() < end, "waiters did not start"
            time.sleep(0.01)
        random.seed(11)
        for i in range(N):
            time.sleep(random.random() * 0.25)  # lands in a part, or between two
            with c:
                c.notify(1)
            while True:
                with c:
                    if woken[0] >= i + 1:
                        break
                assert time.monotonic() < end, "notify %d was lost" % i
                time.sleep(0.002)
            time.sleep(0.25)  # more than two parts: a second wakeup would show by now
            with c:
                assert woken[0] == i + 1, "notify %d woke %d waiters" % (i, woken[0] - i)
        for t in ts:
            t.join(30)
            assert not t.is_alive()
        print("ok")
    """, timeout=120)


def test_notify_stress_with_short_and_long_waits():
    # Producer/consumer over one condition: consumers wait in parts (no timeout) and with
    # short timeouts, mixed; every item put must be taken exactly once.
    c = mpx.Condition()
    items, taken = [], []
    total, consumers = 400, 4
    done = threading.Event()

    def consumer(k):
        while True:
            with c:
                while not items and not done.is_set():
                    c.wait(None if k % 2 else 0.05)
                if not items:
                    return
                taken.append(items.pop())

    ts = [threading.Thread(target=consumer, args=(k,)) for k in range(consumers)]
    for t in ts:
        t.start()
    rnd = random.Random(5)
    for i in range(total):
        with c:
            items.append(i)
            c.notify(1)
        if rnd.random() < 0.05:
            time.sleep(rnd.random() * 0.15)
    end = time.monotonic() + 30
    while True:
        with c:
            if len(taken) == total:
                break
        assert time.monotonic() < end, "items left untaken: a notify was lost (%d of %d)" % (len(taken), total)
        time.sleep(0.01)
    done.set()
    with c:
        c.notify_all()
    for t in ts:
        t.join(30)
        assert not t.is_alive()
    assert sorted(taken) == list(range(total))
    c.close()


BARRIER_WAITER = r"""
import sys, threading, time
import mpx

how = sys.argv[1]
b = mpx.Barrier(3)
other = []
def helper():
    # Tell the parent once the main thread's arrival counts, then wait as the second party.
    end = time.monotonic() + 30
    while b.n_waiting < 1 and time.monotonic() < end:
        time.sleep(0.005)
    print("ready", flush=True)
    try:
        b.wait(60)
        other.append("passed")
    except threading.BrokenBarrierError:
        other.append("broken")
t = threading.Thread(target=helper, daemon=True)
t.start()
try:
    if how == "forever":
        b.wait()
    else:
        b.wait(3600)
    print("returned", flush=True)
except KeyboardInterrupt:
    t.join(30)
    print("interrupted, broken=%s, other %s" % (b.broken, other), flush=True)
"""


@pytest.mark.parametrize("how", ["forever", "long"])
def test_sigint_interrupts_barrier_wait(how, accel, popen_py):
    p = popen_py(BARRIER_WAITER, how)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.3)  # both threads into their waits (the main thread's arrival already counts)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert out.strip() == "interrupted, broken=True, other ['broken']", err


def test_barrier_waits_in_parts_keep_indexes_and_timeouts(accel, run_py):
    # Parties arriving more than a part (0.1 s) apart: each waits across several parts and
    # still gets its own index; a wait whose whole timeout (longer than a part) runs out breaks
    # the barrier as before.
    run_py(r"""
        import threading, time
        import mpx

        b = mpx.Barrier(3)
        got = []
        def party():
            got.append(b.wait(60))
        ts = []
        for _ in range(2):
            ts.append(threading.Thread(target=party))
            ts[-1].start()
            time.sleep(0.25)
        got.append(b.wait(60))
        for t in ts:
            t.join(30)
        assert sorted(got) == [0, 1, 2], got
        assert not b.broken and b.n_waiting == 0

        bt = mpx.Barrier(2)
        try:
            bt.wait(0.35)
            raise AssertionError("a lone party passed")
        except threading.BrokenBarrierError:
            pass
        assert bt.broken
        print("ok")
    """)
