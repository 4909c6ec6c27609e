"""close() racing calls from other threads, for every kind of object the binding wraps.

Each case runs in a child process (a crash there is a failure here, with its signal, instead of
taking pytest down), with and without the C accelerator (MPX_NO_SPEEDUPS=1). In every round,
threads hammer calls on a fresh object while another thread closes it; the threads must end
with the "closed" error (ValueError; OSError for connections, as the standard library's) and
nothing else, and a thread blocked in a wait when the object is closed must end too (within a
slice). The rule being tested: a close() from another thread never frees a handle under a call
(mpx._objects, "Handles"); the call finishes against the live handle, later calls say "closed".
"""

import signal

import pytest

ROUNDS = 60

# The child: CASES maps a kind to (make, calls, close), calls being a list of functions each
# thread runs in a loop. Every blocking call in it has a timeout.
CHILD = r"""
import os, random, sys, threading, time
import mpx
from mpx import connection, queues, shared_memory, sharedctypes, synchronize

kind, rounds = sys.argv[1], int(sys.argv[2])
CLOSED = (ValueError, OSError)


def lock_calls(o):
    def a():
        if o.acquire(timeout=0.01):
            o.release()
    def b():
        with o:
            pass
    return [a, b, lambda: o.locked() if hasattr(o, "locked") else o.get_value()]


def cond_calls(c):
    def w():
        with c:
            c.wait(0.001)
    def n():
        with c:
            c.notify_all()
    return [w, n, w]


def event_calls(e):
    return [e.set, e.clear, lambda: e.wait(0.001), e.is_set]


def barrier_calls(b):
    return [b.wait, lambda: b.n_waiting, lambda: b.parties]


def queue_calls(q):
    def g():
        try:
            q.get_bytes(timeout=0.001)
        except queues.Empty:
            pass
    def p():
        try:
            q.put_bytes(b"x" * 16, timeout=0.001)
        except queues.Full:
            pass
    def m():
        try:
            q.get_many_bytes(timeout=0.001)
        except queues.Empty:
            pass
    calls = [g, p, q.qsize, m]
    if isinstance(q, queues.JoinableQueue):
        def d():
            try:
                q.task_done()
            except ValueError as e:
                if "too many" not in str(e):
                    raise
        calls += [d, lambda: q.join(0.001)]
    return calls


def queue_free(q):
    q._free()  # frees the handle now, as the exit's finalizer does


def shm_calls(s):
    return [lambda: s.fd, lambda: s.fd]


def shm_close(s):
    while True:
        try:
            s.close()
            return
        except BufferError:
            time.sleep(0)


def conn_make():
    a, b = connection.Pipe()
    conn_make.keep.append(b)
    return a
conn_make.keep = []


def conn_calls(c):
    peer = conn_make.keep[-1]
    def r():
        if c.poll(0.001):
            c.recv_bytes()
    def s():
        c.send_bytes(b"ping")
        peer.recv_bytes()
    return [r, s, c.fileno]


def proc_make():
    p = mpx.Process(target=time.sleep, args=(0,))
    p.start()
    p.join(30)
    return p


def proc_calls(p):
    return [lambda: p.exitcode, p.is_alive, lambda: p.join(0.001), lambda: p.sentinel]


CASES = {
    "Lock": (mpx.Lock, lock_calls, None),
    "RLock": (mpx.RLock, lock_calls, None),
    "Semaphore": (lambda: mpx.Semaphore(2), lock_calls, None),
    "BoundedSemaphore": (lambda: mpx.BoundedSemaphore(2), lock_calls, None),
    "Condition": (mpx.Condition, cond_calls, None),
    "Event": (mpx.Event, event_calls, None),
    "Barrier": (lambda: mpx.Barrier(1), barrier_calls, None),
    "Queue": (mpx.Queue, queue_calls, queue_free),
    "SimpleQueue": (mpx.SimpleQueue, queue_calls, queue_free),
    "JoinableQueue": (mpx.JoinableQueue, queue_calls, queue_free),
    "SharedMemory": (lambda: shared_memory.SharedMemory.anonymous(4096), shm_calls, shm_close),
    "Connection": (conn_make, conn_calls, None),
    "Process": (proc_make, proc_calls, None),
}

make, calls_of, close = CASES[kind]
errors = []


def hammer(fn, start, closed):
    start.wait(10)
    try:
        while not closed.is_set():
            fn()
        fn()  # after close() has returned: must say so
    except CLOSED:
        return
    except BaseException as e:
        errors.append("%s: %r" % (fn.__qualname__, e))
    else:
        errors.append("%s: no error after close()" % fn.__qualname__)


for r in range(rounds):
    obj = make()
    start, closed = threading.Event(), threading.Event()
    ts = [threading.Thread(target=hammer, args=(fn, start, closed)) for fn in calls_of(obj)]
    for t in ts:
        t.start()
    start.set()
    time.sleep(random.random() * 0.003)
    (close or type(obj).close)(obj)
    closed.set()
    for t in ts:
        t.join(30)
        if t.is_alive():
            print("a thread is still inside a call 30 s after close()", file=sys.stderr)
            os._exit(3)
    del obj, ts
    for c in conn_make.keep:
        c.close()
    conn_make.keep.clear()
if errors:
    print("\n".join(sorted(set(errors))), file=sys.stderr)
    sys.exit(1)
print("ok")
"""

# A thread blocked without a timeout when another thread closes the object: it must end (with
# the "closed" error), not wait for ever.
BLOCKED = r"""
import sys, threading, time
import mpx
from mpx import queues

kind = sys.argv[1]


def blocked():
    if kind == "Lock":
        o = mpx.Lock(); o.acquire(); return o, o.acquire
    if kind == "Semaphore":
        o = mpx.Semaphore(0); return o, o.acquire
    if kind == "Event":
        o = mpx.Event(); return o, o.wait
    if kind == "Condition":
        o = mpx.Condition()
        def w():
            with o:
                o.wait()
        return o, w
    if kind == "Barrier":
        o = mpx.Barrier(2); return o, o.wait
    if kind == "Queue":
        o = mpx.Queue(); return o, o.get
    raise SystemExit("unknown kind " + kind)


obj, call = blocked()
out = []


def run():
    try:
        call()
        out.append("returned")
    except (ValueError, threading.BrokenBarrierError) as e:
        out.append("closed" if "closed" in str(e) or isinstance(e, threading.BrokenBarrierError) else repr(e))
    except BaseException as e:
        out.append(repr(e))


t = threading.Thread(target=run, daemon=True)
t.start()
time.sleep(0.3)  # in the wait by now (the test only needs it to be, most of the time)
if kind == "Queue":
    obj._free()
else:
    obj.close()
t.join(30)
print("alive" if t.is_alive() else out[0])
"""

KINDS = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier", "Queue",
         "SimpleQueue", "JoinableQueue", "SharedMemory", "Connection", "Process"]


@pytest.fixture(params=["speedups", "ctypes"])
def accel(request, monkeypatch):
    if request.param == "ctypes":
        monkeypatch.setenv("MPX_NO_SPEEDUPS", "1")
    else:
        monkeypatch.delenv("MPX_NO_SPEEDUPS", raising=False)
    return request.param


@pytest.mark.parametrize("kind", KINDS)
def test_close_while_other_threads_call(kind, accel, run_py):
    r = run_py(CHILD, kind, ROUNDS, timeout=240, check=False)
    if r.returncode < 0:
        pytest.fail("%s (%s): the child died of %s; stderr:\n%s"
                    % (kind, accel, signal.Signals(-r.returncode).name, r.stderr[-3000:]))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "ok"


@pytest.mark.parametrize("kind", ["Lock", "Semaphore", "Event", "Condition", "Queue"])
def test_close_ends_a_blocked_wait(kind, accel, run_py):
    r = run_py(BLOCKED, kind, timeout=60, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "closed", r.stderr[-3000:]


def test_values_outlive_their_last_python_reference(accel, run_py):
    # Value/Array have no close(): the mapping lives while any view, wrapper or lock of it does,
    # so threads using one never see it go, even when every other reference is dropped.
    run_py(r"""
        import gc, threading
        import mpx
        for _ in range(50):
            v = mpx.Value("q", 0)
            a = mpx.Array("i", 8)
            def work(v=v, a=a):
                for _ in range(200):
                    with v.get_lock():
                        v.value += 1
                    a[3] = a[3] + 1
            ts = [threading.Thread(target=work) for _ in range(3)]
            for t in ts:
                t.start()
            del v, a
            gc.collect()
            for t in ts:
                t.join(30)
                assert not t.is_alive()
        print("ok")
    """, timeout=120)
