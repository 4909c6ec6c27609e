"""mpx.Queue, JoinableQueue and SimpleQueue with real processes (mpx's fork, spawn and
forkserver, and the standard library's fork and spawn): multiprocessing's semantics (Empty and
Full with timeouts, close, task_done/join), mpx's additions (bytes, batches, shutdown, named
queues, capacity), pickled objects of many types, large messages, bad input, signals
interrupting a blocked call, and SIGKILLed producers and consumers.

Every blocking call has a timeout; children are joined with a timeout and killed if they hang.
"""

import array
import collections
import ctypes
import datetime
import decimal
import fractions
import gc
import multiprocessing
import os
import pickle
import queue
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

import mpx
from mpx import queues

TIMEOUT = 30  # seconds for any wait or join: a hang is a failure

METHODS = ["fork", "spawn", "forkserver", "stdlib-fork", "stdlib-spawn"]


#
# Targets for child processes (module level: spawned children import this module).
#


def _exit(code):
    os._exit(code)


def child_echo(inq, outq, n):
    """Gets n objects and puts each back (as a tuple with the child's pid)."""
    for _ in range(n):
        obj = inq.get(timeout=TIMEOUT)
        outq.put(("echo", os.getpid(), obj), timeout=TIMEOUT)


def child_worker(jq, results):
    """A JoinableQueue worker: squares numbers until None; marks every message done."""
    while True:
        item = jq.get(timeout=TIMEOUT)
        try:
            if item is None:
                return
            results.put(item * item, timeout=TIMEOUT)
        finally:
            jq.task_done()


def child_put_bytes(q, ident, count, size):
    for seq in range(count):
        q.put_bytes(message(ident, seq, size), timeout=TIMEOUT)


def child_get_expect_closed(q, ready, mode):
    """Blocks in a get (or a put into a full queue) until another process shuts the queue down;
    exit 0 if that raised QueueClosed."""
    ready.put("waiting", timeout=TIMEOUT)
    try:
        if mode == "get":
            q.get(timeout=TIMEOUT * 2)
        elif mode == "get_many":
            q.get_many(timeout=TIMEOUT * 2)
        else:
            q.put("more", timeout=TIMEOUT * 2)
    except queues.QueueClosed:
        _exit(0)
    except queue.Empty:
        _exit(3)
    except queue.Full:
        _exit(4)
    _exit(5)


def child_put_then_close(q):
    q.put("from child", timeout=TIMEOUT)
    q.close()
    q.join_thread()
    try:
        q.put("after close")
    except ValueError:
        _exit(0)
    _exit(6)


def child_hold_queue(q, to_parent, to_child):
    """Holds a queue while the parent drops it, then checks it still works."""
    to_parent.put("opened", timeout=TIMEOUT)
    to_child.get(timeout=TIMEOUT)
    q.put_bytes(b"still works", timeout=TIMEOUT)
    to_parent.put(q.get_bytes(timeout=TIMEOUT) == b"still works", timeout=TIMEOUT)


#
# Helpers
#


def message(ident, seq, size=0):
    m = b"%d:%d" % (ident, seq)
    if size > len(m):
        m += b"|" + b"x" * (size - len(m) - 1)
    return m


def parse(m):
    head = m.split(b"|", 1)[0]
    ident, seq = head.split(b":")
    return int(ident), int(seq)


def start(method, target, *args):
    if method.startswith("stdlib-"):
        ctx = multiprocessing.get_context(method[len("stdlib-"):])
    else:
        ctx = mpx.get_context(method)
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def join_all(*procs):
    """Joins (bounded) and returns the exit codes; a hung child is killed and counts as None."""
    codes = []
    for p in procs:
        p.join(TIMEOUT * 2)
        if p.exitcode is None:
            p.kill()
            p.join(10)
            codes.append(None)
        else:
            codes.append(p.exitcode)
    return codes


def shm_exists(name):
    return os.path.exists("/dev/shm/mpx." + name)


@pytest.fixture(autouse=True)
def collect_cycles():
    """A queue is freed (and its generated name removed) when it is collected. An exception
    kept by ``pytest.raises(...) as info`` makes a cycle through the test's frame that holds
    its queues until the cycle collector runs: run it before conftest's /dev/shm check."""
    yield
    gc.collect()


@pytest.fixture
def named(make_name):
    """``named(cls, *args, **kw)``: creates a named queue and unlinks it at the end."""
    made = []

    def create(cls, *args, **kw):
        name = make_name("q")
        obj = cls.create(name, *args, **kw)
        made.append(name)
        return obj

    yield create
    for name in made:
        try:
            mpx.Queue.unlink_name(name)
        except FileNotFoundError:
            pass


class Point(collections.namedtuple("Point", "x y")):
    pass


SAMPLES = [
    None,
    True,
    0,
    -(2 ** 70),
    3.5,
    float("inf"),
    1 + 2j,
    "text ünïcödé",
    b"\x00bytes\xff",
    bytearray(b"mutable"),
    (1, "two", 3.0),
    [1, [2, [3]]],
    {"k": [1, 2], 3: {"nested": None}},
    {1, 2, 3},
    frozenset({"a"}),
    decimal.Decimal("1.10"),
    fractions.Fraction(3, 7),
    datetime.datetime(2024, 2, 29, 12, 30),
    Point(1, 2),
    array.array("d", [1.5, 2.5]),
    range(3, 30, 3),
    ValueError("an exception travels too"),
    b"",
    "",
]


#
# Semantics in one process
#


def test_put_get_objects_bytes_and_order():
    q = mpx.Queue()
    for obj in SAMPLES:
        q.put(obj)
    assert q.qsize() == len(SAMPLES) and not q.empty()
    for obj in SAMPLES:
        got = q.get(timeout=TIMEOUT)
        if isinstance(obj, Exception):
            assert type(got) is type(obj) and got.args == obj.args
        else:
            assert got == obj and type(got) is type(obj)
    assert q.empty() and q.qsize() == 0
    # Raw bytes go as they are; any bytes-like object is accepted.
    for data in (b"abc", bytearray(b"def"), memoryview(b"ghi"), array.array("i", [1, 2]), b""):
        q.put_bytes(data)
    assert [q.get_bytes(timeout=TIMEOUT) for _ in range(5)] == [
        b"abc", b"def", b"ghi", array.array("i", [1, 2]).tobytes(), b""]
    # put pickles: get_bytes of a put object is its pickle; get of a raw message unpickles it.
    q.put({"x": 1})
    assert pickle.loads(q.get_bytes(timeout=TIMEOUT)) == {"x": 1}
    q.put_bytes(pickle.dumps([1, 2]))
    assert q.get(timeout=TIMEOUT) == [1, 2]
    with pytest.raises(TypeError):
        q.put_bytes("a str is not bytes")
    with pytest.raises(TypeError):
        q.put_bytes(12)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        q.put(lambda: None)  # not picklable: nothing is put
    assert q.empty()
    # non-contiguous buffers are copied
    mv = memoryview(bytes(range(10)))[::2]
    q.put_bytes(mv)
    assert q.get_bytes(timeout=TIMEOUT) == bytes(range(0, 10, 2))


def test_empty_and_full_with_timeouts():
    q = mpx.Queue(2)
    assert q.maxsize == 2
    with pytest.raises(queue.Empty):
        q.get(block=False)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    with pytest.raises(queue.Empty):
        q.get(timeout=-1)  # negative: try once
    with pytest.raises(queue.Empty):
        q.get_bytes(timeout=0.01)
    with pytest.raises(queue.Empty):
        q.get_many(timeout=0.01)
    with pytest.raises(queue.Empty):
        q.get_many_bytes(block=False)
    q.put(1)
    q.put_nowait(2)
    assert q.full() and q.qsize() == 2
    with pytest.raises(queue.Full):
        q.put(3, block=False)
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.05)
    with pytest.raises(queue.Full):
        q.put_bytes(b"3", timeout=0.01)
    with pytest.raises(queue.Full):
        q.put_many([3], timeout=0.01)
    assert q.get(block=False, timeout=99) == 1  # block=False ignores the timeout
    assert not q.full()
    q.put(3, timeout=1)
    assert [q.get(timeout=TIMEOUT) for _ in range(2)] == [2, 3]
    # A full ring (in bytes) makes a put wait too, with maxsize 0.
    r = mpx.Queue(capacity=4096)
    assert r.maxsize == 0 and r.capacity >= 4096  # the ring: capacity + 8, whole pages
    n = 0
    while True:
        try:
            r.put_bytes(b"x" * 100, block=False)
        except queue.Full:
            break
        n += 1
    assert n == r.capacity // 112 and r.qsize() == n  # 8-byte header + 100, padded to 8
    with pytest.raises(queue.Full):
        r.put_bytes(b"x" * 100, timeout=0.02)
    with pytest.raises(TypeError):
        q.get(timeout="soon")


def test_batches():
    q = mpx.Queue()
    q.put_many([1, "two", (3,)])
    q.put_many_bytes([b"a", b"", bytearray(b"ccc"), memoryview(b"dd")])
    q.put_many([])  # nothing
    q.put_many_bytes(iter([b"gen"]))
    assert q.qsize() == 8
    assert q.get_many(2, timeout=TIMEOUT) == [1, "two"]
    assert q.get_many(1, timeout=TIMEOUT) == [(3,)]
    assert q.get_many_bytes(timeout=TIMEOUT) == [b"a", b"", b"ccc", b"dd", b"gen"]
    assert q.empty()
    with pytest.raises(ValueError):
        q.get_many(0)
    with pytest.raises(TypeError):
        q.put_many_bytes(["str"])
    # A batch is all or none: a batch that does not fit now is Full and puts nothing.
    small = mpx.Queue(3)
    small.put(0)
    with pytest.raises(queue.Full):
        small.put_many([1, 2, 3], block=False)
    assert small.qsize() == 1
    small.put_many([1, 2])
    assert small.get_many(timeout=TIMEOUT) == [0, 1, 2]
    # ...and one that can never fit (count over maxsize, bytes over capacity) is too big at once.
    with pytest.raises(mpx.MessageTooBig):
        small.put_many([1, 2, 3, 4])
    r = mpx.Queue(capacity=4096)
    with pytest.raises(ValueError, match="capacity"):
        r.put_many_bytes([b"x" * 2000] * (r.capacity // 2000 + 1))
    assert r.empty()
    # get_many returns what is ready, up to the limit, in order; many small messages.
    msgs = [b"%d" % i for i in range(5000)]
    q.put_many_bytes(msgs)
    got = []
    while len(got) < 5000:
        got += q.get_many_bytes(1000, timeout=TIMEOUT)
    assert got == msgs
    # A first message larger than the batch buffer (1 MiB at first) grows it.
    big = mpx.Queue(capacity=4 << 20)
    blob = os.urandom(3 << 20)
    big.put_bytes(blob)
    big.put_bytes(b"after")
    got = big.get_many_bytes(timeout=TIMEOUT)
    assert got[0] == blob  # and b"after" too if it fitted in the grown buffer
    if len(got) == 1:
        got += big.get_many_bytes(timeout=TIMEOUT)
    assert got == [blob, b"after"]


def test_large_messages_and_too_big():
    q = mpx.Queue(capacity=40 << 20)
    assert q.capacity >= 40 << 20 and q.max_message == q.capacity - 8
    for size in (65535, 65536, 65537, 1 << 20, 17 << 20, 17 << 20):  # grows past 64 KiB and 16 MiB
        data = os.urandom(16) * (size // 16) + b"t" * (size % 16)
        q.put_bytes(data, timeout=TIMEOUT)
        assert q.get_bytes(timeout=TIMEOUT) == data
    import numpy

    arr = numpy.arange(1 << 20, dtype=numpy.float64)
    q.put(arr, timeout=TIMEOUT)
    back = q.get(timeout=TIMEOUT)
    assert back.dtype == arr.dtype and (back == arr).all()
    q.put_bytes(arr)  # raw bytes of the array, no copy on the way in
    assert numpy.frombuffer(q.get_bytes(timeout=TIMEOUT), dtype=numpy.float64)[-1] == arr[-1]
    # Too big: a clear ValueError at once, whatever the timeout; nothing is put.
    small = mpx.Queue(capacity=4096)
    with pytest.raises(mpx.MessageTooBig) as info:
        small.put_bytes(b"x" * (small.max_message + 1))
    assert isinstance(info.value, ValueError) and "capacity" in str(info.value)
    with pytest.raises(ValueError):
        small.put(b"x" * small.max_message)  # the pickle is larger than the bytes
    small.put_bytes(b"x" * small.max_message)
    assert len(small.get_bytes(timeout=TIMEOUT)) == small.max_message


def test_close_semantics():
    q = mpx.Queue()
    q.put("kept")
    q.close()
    assert q.closed
    q.join_thread()
    q.cancel_join_thread()
    for call in (lambda: q.put(1), lambda: q.put_bytes(b"x"), lambda: q.get(timeout=1), lambda: q.get_nowait(),
                 lambda: q.get_bytes(block=False), lambda: q.put_many([1]), lambda: q.get_many(timeout=1),
                 lambda: q.empty(), q.shutdown):
        with pytest.raises(ValueError, match="is closed"):
            call()
    assert q.qsize() == 1  # as multiprocessing's: the size is still known
    # Another handle on the same queue (another process, in effect) is unaffected.
    other = queues.Queue.from_fd(q.fd)
    assert other.get(timeout=TIMEOUT) == "kept"
    q.close()  # idempotent


def test_shutdown_semantics():
    q = mpx.Queue()
    q.put_many(["a", "b"])
    q.shutdown()
    q.shutdown()  # idempotent
    assert q.is_shutdown()
    with pytest.raises(mpx.QueueClosed):
        q.put("c")
    with pytest.raises(mpx.QueueClosed):
        q.put_many_bytes([b"c"])
    assert q.get(timeout=TIMEOUT) == "a"  # what is left drains
    assert q.get_many(timeout=TIMEOUT) == ["b"]
    for call in (q.get, q.get_nowait, q.get_bytes, q.get_many):
        with pytest.raises(mpx.QueueClosed) as info:
            call()
        # a ValueError (a closed queue) and an EOFError (the end of a stream)
        assert isinstance(info.value, ValueError) and isinstance(info.value, EOFError)
        assert info.value.status_name == "MPX_E_CLOSED"


def test_joinable_semantics():
    jq = mpx.JoinableQueue()
    assert jq.join(timeout=0) is True
    with pytest.raises(ValueError, match="task_done\\(\\) called too many times"):
        jq.task_done()
    jq.put(1)
    jq.put_many([2, 3])
    assert jq.unfinished_tasks() == 3
    assert jq.join(timeout=0.05) is False
    for _ in range(3):
        jq.get(timeout=TIMEOUT)
    assert jq.join(timeout=0.01) is False  # taken is not done
    jq.task_done()
    jq.task_done()
    jq.task_done()
    assert jq.join(timeout=TIMEOUT) is True
    with pytest.raises(ValueError, match="too many times"):
        jq.task_done()
    # A consumer that closed its queue can still mark its tasks done.
    jq.put("x")
    c = queues.JoinableQueue.from_fd(jq.fd)
    assert c.get(timeout=TIMEOUT) == "x"
    c.close()
    c.task_done()
    assert jq.join(timeout=TIMEOUT)


def test_simple_queue():
    sq = mpx.SimpleQueue()
    assert sq.empty()
    sq.put([1, 2])
    assert not sq.empty()
    assert sq.get(timeout=TIMEOUT) == [1, 2]
    assert sq.maxsize == 0
    with pytest.raises(TypeError):
        mpx.SimpleQueue(5)  # no maxsize, as multiprocessing's
    sq.close()
    with pytest.raises(ValueError):
        sq.put(1)


def test_contexts_offer_the_queues():
    for method in ("fork", "spawn", "forkserver"):
        ctx = mpx.get_context(method)
        assert isinstance(ctx.Queue(3), mpx.Queue) and ctx.Queue(3).maxsize == 3
        assert isinstance(ctx.JoinableQueue(), mpx.JoinableQueue)
        assert isinstance(ctx.SimpleQueue(), mpx.SimpleQueue)
    assert mpx.Queue is queues.Queue and mpx.QueueClosed is queues.QueueClosed


def test_bad_arguments(unique_name):
    for bad in (0, -1):
        with pytest.raises(ValueError):
            mpx.Queue(capacity=bad)
    with pytest.raises(ValueError):
        mpx.Queue(capacity=(2 << 30) + 1)  # over MPX_QUEUE_MAX_CAPACITY
    with pytest.raises(TypeError):
        mpx.Queue(capacity="big")
    with pytest.raises(TypeError):
        mpx.Queue(capacity=1.5)
    with pytest.raises(TypeError):
        mpx.Queue("3")
    assert mpx.Queue(-5).maxsize == 0  # <= 0: no limit, as multiprocessing
    assert mpx.Queue(1 << 80).maxsize == 0xFFFFFFFF * 64  # the library's limit: none in practice
    from mpx._lib import lib, queue_p
    h = queue_p()
    # The C ABI refuses a larger limit at once (not as a corrupt queue after creating it).
    assert lib.mpx_queue_create(unique_name.encode(), 4096, 1 << 40, 0, ctypes.byref(h)) == mpx.errors.MPX_E_INVALID
    with pytest.raises(ValueError):
        mpx.Queue.create("bad/name")
    with pytest.raises(ValueError):
        mpx.Queue.open("nul\0name")
    with pytest.raises(TypeError):
        mpx.Queue.open(b"bytes-name")
    with pytest.raises(TypeError):
        mpx.Queue().get_many("many")


def test_threads_share_a_queue():
    q = mpx.Queue(capacity=8192)
    n, producers = 3000, 3
    got = [[] for _ in range(producers)]
    errors = []

    def produce(k):
        try:
            for i in range(n):
                if i % 3 == 0:
                    q.put((k, i), timeout=TIMEOUT)
                else:
                    q.put_bytes(b"%d:%d" % (k, i), timeout=TIMEOUT)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def consume(out):
        try:
            for _ in range(n * producers // 2):
                data = q.get_bytes(timeout=TIMEOUT)
                if data.startswith(b"\x80"):
                    k, i = pickle.loads(data)
                else:
                    k, i = map(int, data.split(b":"))
                out.append((k, i))
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    outs = [[], []]
    threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
    threads += [threading.Thread(target=consume, args=(o,)) for o in outs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
        assert not t.is_alive()
    assert not errors, errors
    for out in outs:
        last = {}
        for k, i in out:
            assert i > last.get(k, -1)  # each producer's order, as each consumer sees it
            last[k] = i
            got[k].append(i)
    for k in range(producers):
        assert sorted(got[k]) == list(range(n))


#
# Names, kinds, pickling
#


def test_named_queues_and_wrong_kinds(named, make_name):
    q = named(mpx.Queue, 5, capacity=8192)
    other = mpx.Queue.open(q.name)
    assert type(other) is mpx.Queue and other.maxsize == 5 and other.capacity >= 8192
    q.put("hello")
    assert other.get(timeout=TIMEOUT) == "hello"
    with pytest.raises(FileExistsError):
        mpx.Queue.create(q.name)
    jq = named(mpx.JoinableQueue)
    opened = mpx.Queue.open(jq.name)
    assert type(opened) is mpx.JoinableQueue  # the kind is stored in the queue
    with pytest.raises(mpx.KindError):
        mpx.JoinableQueue.open(q.name)
    sq = named(mpx.SimpleQueue)
    assert type(mpx.SimpleQueue.open(sq.name)) is mpx.SimpleQueue
    assert type(mpx.Queue.open(sq.name)) is mpx.Queue
    # Another kind of object under the name: KindError (a ValueError), never a crash.
    lock_name = make_name("lock")
    lock = mpx.Lock.create(lock_name)
    try:
        with pytest.raises(mpx.KindError) as info:
            mpx.Queue.open(lock_name)
        assert isinstance(info.value, ValueError) and info.value.status_name == "MPX_E_KIND"
        with pytest.raises(mpx.KindError):
            mpx.Lock.open(q.name)
    finally:
        lock.unlink()
        lock.close()
    missing = make_name("missing")
    with pytest.raises(FileNotFoundError):
        mpx.Queue.open(missing)
    # unlink: the name goes, the handles keep working
    q.unlink()
    with pytest.raises(FileNotFoundError):
        mpx.Queue.open(q.name)
    q.put(1)
    assert other.get(timeout=TIMEOUT) == 1
    with pytest.raises(FileNotFoundError):
        q.unlink()
    # unlink_on_last_close
    auto = named(mpx.Queue, unlink_on_last_close=True)
    name = auto.name
    assert shm_exists(name)
    del auto
    assert not shm_exists(name)


def test_from_fd():
    q = mpx.Queue()
    q2 = mpx.Queue.from_fd(q.fd)
    assert q2.name == q.name
    q.put_bytes(b"via fd")
    assert q2.get_bytes(timeout=TIMEOUT) == b"via fd"


def test_pickling_named_queues_by_name(make_name):
    name = make_name("q")
    q = mpx.Queue.create(name, 7, unlink_on_last_close=True)
    assert shm_exists(name)
    copy = pickle.loads(pickle.dumps(q))
    assert type(copy) is mpx.Queue and copy.name == name and copy.maxsize == 7
    copy.put("x")
    assert q.get(timeout=TIMEOUT) == "x"
    jq = mpx.JoinableQueue.create(make_name("jq"), unlink_on_last_close=True)
    assert type(pickle.loads(pickle.dumps(jq))) is mpx.JoinableQueue
    # a named queue travels through another queue (by name)
    carrier = mpx.Queue()
    carrier.put(jq)
    got = carrier.get(timeout=TIMEOUT)
    assert type(got) is mpx.JoinableQueue and got.name == jq.name
    # an unlink-on-last-close name goes with the last user
    del copy
    assert shm_exists(name)
    q.close()  # close() does not free the handle: another thread may be inside a call
    assert shm_exists(name)
    del q
    assert not shm_exists(name)
    freed = mpx.Queue.create(make_name("q"), unlink_on_last_close=True)
    freed._free()
    with pytest.raises(ValueError):
        pickle.dumps(freed)
    with pytest.raises(ValueError, match="closed"):
        freed.qsize()


def test_anonymous_queues_pickle_only_for_a_child_being_started():
    before = set(os.listdir("/dev/shm"))
    for q in (mpx.Queue(7), mpx.JoinableQueue(), mpx.SimpleQueue()):
        assert q.name is None
        from multiprocessing.reduction import ForkingPickler

        # As multiprocessing's Queue: RuntimeError outside process start, with any pickler.
        with pytest.raises(RuntimeError, match="through inheritance"):
            pickle.dumps(q)
        with pytest.raises(RuntimeError, match="through inheritance"):
            ForkingPickler.dumps(q)
        with pytest.raises(ValueError, match="no name"):
            q.unlink()
        carrier = mpx.Queue()
        with pytest.raises(RuntimeError):
            carrier.put(q)
        assert carrier.empty()
    assert set(os.listdir("/dev/shm")) == before, "an anonymous queue is not in /dev/shm"


#
# Across processes, every start method
#


@pytest.mark.parametrize("method", METHODS)
def test_objects_round_trip_through_a_child(method):
    inq, outq = mpx.Queue(), mpx.SimpleQueue()
    p = start(method, child_echo, inq, outq, len(SAMPLES))
    try:
        for obj in SAMPLES:
            inq.put(obj, timeout=TIMEOUT)
        for obj in SAMPLES:
            tag, pid, got = outq.get(timeout=TIMEOUT)
            assert tag == "echo" and pid == p.pid
            if isinstance(obj, Exception):
                assert type(got) is type(obj) and got.args == obj.args
            else:
                assert got == obj and type(got) is type(obj)
    finally:
        assert join_all(p) == [0]
    assert inq.empty() and outq.empty()


@pytest.mark.parametrize("method", METHODS)
def test_joinable_queue_with_workers(method):
    jq, results = mpx.JoinableQueue(), mpx.Queue()
    workers = [start(method, child_worker, jq, results) for _ in range(2)]
    try:
        for i in range(200):
            jq.put(i, timeout=TIMEOUT)
        assert jq.join(timeout=TIMEOUT)  # every task done: every result is in
        assert results.qsize() == 200
        assert sorted(results.get(timeout=TIMEOUT) for _ in range(200)) == [i * i for i in range(200)]
        for _ in workers:
            jq.put(None)
        assert jq.join(timeout=TIMEOUT)
    finally:
        assert join_all(*workers) == [0, 0]
    with pytest.raises(ValueError, match="too many times"):
        jq.task_done()


@pytest.mark.parametrize("method", METHODS)
def test_producers_in_children_keep_their_order(method):
    q = mpx.Queue(capacity=16384)  # small: producers wait for room
    n = 2000
    procs = [start(method, child_put_bytes, q, k, n, 40) for k in range(3)]
    try:
        last, counts = {}, collections.Counter()
        for _ in range(3 * n):
            k, seq = parse(q.get_bytes(timeout=TIMEOUT))
            assert seq == last.get(k, -1) + 1  # in order, none lost, none twice
            last[k] = seq
            counts[k] += 1
        assert counts == {0: n, 1: n, 2: n}
        with pytest.raises(queue.Empty):
            q.get_bytes(timeout=0.05)
    finally:
        assert join_all(*procs) == [0, 0, 0]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", ["get", "get_many", "put"])
def test_shutdown_wakes_blocked_callers_in_other_processes(method, mode):
    q = mpx.Queue(1)
    if mode == "put":
        q.put("fills it")
    ready = mpx.Queue()
    procs = [start(method, child_get_expect_closed, q, ready, mode) for _ in range(2)]
    try:
        for _ in procs:
            assert ready.get(timeout=TIMEOUT) == "waiting"
        time.sleep(0.2)  # let them block (they would also fail if the wake came first)
        q.shutdown()
    finally:
        assert join_all(*procs) == [0, 0]


@pytest.mark.parametrize("method", ["fork", "stdlib-fork", "spawn"])
def test_close_in_a_child_affects_only_that_child(method):
    q = mpx.Queue()
    p = start(method, child_put_then_close, q)
    assert join_all(p) == [0]
    assert q.get(timeout=TIMEOUT) == "from child"
    q.put("parent still puts")
    assert q.get(timeout=TIMEOUT) == "parent still puts"


@pytest.mark.parametrize("method", ["fork", "stdlib-fork", "spawn"])
@pytest.mark.parametrize("by_name", [False, True])
def test_child_keeps_a_queue_alive(method, by_name, make_name):
    name = make_name("q") if by_name else None
    q = mpx.Queue.create(name, unlink_on_last_close=True) if by_name else mpx.Queue()
    to_parent, to_child = mpx.Queue(), mpx.Queue()
    p = start(method, child_hold_queue, q, to_parent, to_child)
    try:
        assert to_parent.get(timeout=TIMEOUT) == "opened"
        del q  # the parent's last handle: the child still uses the queue (and its name)
        gc.collect()
        if by_name:
            assert shm_exists(name)
        to_child.put("go")
        assert to_parent.get(timeout=TIMEOUT) is True
    finally:
        assert join_all(p) == [0]
    if by_name:
        assert not shm_exists(name)  # the last user (the child) removed it


#
# Signals: a blocked call without a timeout stays interruptible
#


@pytest.mark.parametrize("call", ["get", "get_bytes", "get_many", "put", "join"])
def test_ctrl_c_interrupts_a_blocked_call(call, popen_py):
    p = popen_py(
        """
        import sys, mpx
        q = mpx.JoinableQueue(1)
        if sys.argv[1] in ("put", "join"):
            q.put("full")
        print("ready", flush=True)
        try:
            if sys.argv[1] == "put":
                q.put("more")          # no timeout: waits until interrupted
            elif sys.argv[1] == "join":
                q.join()
            else:
                getattr(q, sys.argv[1])()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(0)
        sys.exit(3)
        """,
        call,
    )
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    assert out.strip() == "interrupted"


#
# SIGKILL: producers and consumers killed at random moments do not break the queue
#


def _killable_producer(q, ident):
    seq = 0
    while True:
        q.put_bytes(message(ident, seq, 24), timeout=TIMEOUT)
        seq += 1


def _consumer(q, path):
    """Gets messages and appends each to a file (one write each) right after its get returns:
    a consumer killed at any moment has lost at most the one message in its hands."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    while True:
        m = q.get_bytes(timeout=TIMEOUT)
        if m == b"STOP":
            return
        os.write(fd, m.split(b"|")[0] + b"\n")


def _steady_producer(q, ident, n):
    for seq in range(0, n, 50):  # batches of 50, and single puts
        if seq % 100 == 0:
            q.put_many_bytes([message(ident, seq + j, 24) for j in range(min(50, n - seq))], timeout=TIMEOUT)
        else:
            for j in range(min(50, n - seq)):
                q.put_bytes(message(ident, seq + j, 24), timeout=TIMEOUT)


def test_sigkilled_producers_and_consumers_do_not_break_the_queue(tmp_path):
    rnd = random.Random(0x51C)
    q = mpx.Queue(capacity=8192)  # small: producers often wait for room, with the lock taken
    ctx = mpx.get_context("fork")
    steady_n = 4000
    steady = [ctx.Process(target=_steady_producer, args=(q, k, steady_n)) for k in range(2)]
    survivor_file = str(tmp_path / "survivor")
    survivor = ctx.Process(target=_consumer, args=(q, survivor_file))
    for p in steady + [survivor]:
        p.start()
    kills = 12
    consumer_files, killed_producers = [], []
    try:
        for i in range(kills):
            path = str(tmp_path / ("killed-consumer-%d" % i))
            consumer_files.append(path)
            c = ctx.Process(target=_consumer, args=(q, path))
            pr = ctx.Process(target=_killable_producer, args=(q, 100 + i))
            c.start()
            pr.start()
            time.sleep(rnd.uniform(0.005, 0.05))
            for victim in rnd.sample([c, pr], 2):
                victim.kill()
                time.sleep(rnd.uniform(0, 0.003))
            assert join_all(c, pr) == [-signal.SIGKILL, -signal.SIGKILL]
            killed_producers.append(100 + i)
        assert join_all(*steady) == [0, 0]
        q.put_bytes(b"STOP", timeout=TIMEOUT)  # after everything else: FIFO
        assert join_all(survivor) == [0]
    finally:
        for p in steady + [survivor]:
            if p.exitcode is None:
                p.kill()
                p.join(10)

    # Every consumer saw each producer's messages in order; nothing arrived twice; the steady
    # producers' messages all arrived, and each killed producer's arrived as a prefix 0..m,
    # except at most one per killed consumer (taken and then killed before recording it).
    seen = collections.Counter()
    for path in [survivor_file] + consumer_files:
        if not os.path.exists(path):
            continue
        last = {}
        with open(path, "rb") as f:
            for line in f.read().splitlines():
                k, seq = parse(line)
                assert seq > last.get(k, -1), "out of order at %s: %r" % (path, line)
                last[k] = seq
                seen[(k, seq)] += 1
    dups = [key for key, c in seen.items() if c > 1]
    assert not dups, "delivered twice: %r" % dups[:10]
    missing = 0
    for k in range(2):
        missing += sum(1 for seq in range(steady_n) if (k, seq) not in seen)
    for k in killed_producers:
        seqs = [s for (kk, s) in seen if kk == k]
        if seqs:
            missing += sum(1 for s in range(max(seqs)) if (k, s) not in seen)
    assert missing <= kills, "%d messages lost, %d consumers killed" % (missing, kills)
    # The queue still works, for every kind of call.
    q.put("alive")
    q.put_many_bytes([b"1", b"2"])
    assert q.get(timeout=TIMEOUT) == "alive"
    assert q.get_many_bytes(timeout=TIMEOUT) == [b"1", b"2"]
    assert q.empty() and q.qsize() == 0
