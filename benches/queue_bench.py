"""Queues from Python: mpx against multiprocessing.Queue and faster-fifo, in the same run.

Every figure moves 64-byte messages from one producer process to one consumer process (both
forked from this one, started together by a go byte; the consumer times from the go to its last
message), or bounces one between two processes for the round trip:

1. put_bytes/get_bytes (raw bytes: mpx's interchange with C): msgs/s, against
   multiprocessing.Queue put/get of the same bytes object (goal: at least 3x) and faster-fifo
   put/get with pickling turned off (loads=bytes, dumps=bytes).
2. Batches of 256, put_many_bytes/get_many_bytes: msgs/s, against multiprocessing.Queue's
   single put/get (it has no batches; goal: at least 15x) and faster-fifo put_many/get_many
   (raw bytes, at most 4096 per get_many: its fastest setting here).
3. Pickled objects (a tuple whose pickle is 64 bytes), put/get: msgs/s, against
   multiprocessing.Queue (goal: at least 2x) and faster-fifo put/get (pickling). Also batches of
   pickled objects, put_many/get_many, against faster-fifo's.
4. Round trip of a 64-byte message between two processes (put_bytes one way, get_bytes back):
   median and p99 µs against multiprocessing.Queue and faster-fifo.

Each figure runs its implementations in alternating order, in passes (3, 1 with BENCH_QUICK=1),
and reports medians over passes. Queues hold 1 MiB (faster-fifo's default; multiprocessing's
pipe is unbounded). faster-fifo is installed into .venv by `make bench`; without it its lines are
left out with a note. Output convention: benches/README.md. Every mpx queue is named
bench-queue-<pid>-<n>, removed with its last user and in a finally (also on SIGTERM)."""

import multiprocessing as mp
import os
import pickle
import signal
import sys
import time

import benchlib as bl
import mpx

BENCH = "queue-py"
MSG = b"m" * 64
OBJ = (123456, 2.5, "0123456789abcdef0123456789abcdef0")  # its pickle is 64 bytes
BATCH = 256
CAPACITY = 1 << 20
# faster-fifo's get_many takes up to 1e9 messages by default; a limit of 4096 was its fastest
# setting here (1024 to 65536 tried), so it gets that. mpx's get_many takes what is ready.
FF_GET_MANY = {"max_messages_to_get": 4096}

try:
    import faster_fifo
except ImportError:  # optional anchor
    faster_fifo = None

_made = []  # names of the mpx queues made, removed in a finally


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


#
# Queues of each kind, made in this process and inherited by the forked children.
#


def new_mpx():
    name = bl.unique_name("queue")
    _made.append(name)
    return mpx.Queue.create(name, capacity=CAPACITY, unlink_on_last_close=True)


def new_mp():
    return mp.get_context("fork").Queue()


def new_ff(raw):
    if raw:  # no pickling: the bytes go as they are, as with mpx's put_bytes
        return faster_fifo.Queue(max_size_bytes=CAPACITY, loads=bytes, dumps=bytes)
    return faster_fifo.Queue(max_size_bytes=CAPACITY)


def _done_mp(q):
    # multiprocessing's put hands the message to a feeder thread: flush it before exiting.
    q.close()
    q.join_thread()


#
# Children
#


def _fork(fn, go_r):
    """Forks a child that waits for the go byte, runs fn() and sends its result back pickled.
    Returns (pid, fd to read the result from)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            os.read(go_r, 1)
            out = pickle.dumps(fn())
            while out:
                out = out[os.write(w, out):]
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def _read_all(fd):
    chunks = []
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    return b"".join(chunks)


def run_pair(first, second):
    """Runs first() and second() in two children started together; returns second()'s result."""
    go_r, go_w = os.pipe()
    kids = [_fork(first, go_r), _fork(second, go_r)]
    os.close(go_r)
    os.write(go_w, b"gg")
    os.close(go_w)
    results = [_read_all(fd) for _, fd in kids]
    for pid, _ in kids:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit("queue_bench.py: a child failed")
    return pickle.loads(results[1])


def timed(consume):
    """A consumer body that returns the seconds it took."""

    def run():
        t = bl.now()
        consume()
        return bl.now() - t

    return run


#
# 1-3. Throughput, one producer and one consumer
#


def tp_single(q, n, put, get, done=None):
    """msgs/s of n single puts and gets (put/get: the methods to use)."""

    def produce():
        p = getattr(q, put)
        for _ in range(n):
            p(MSG)
        if done:
            done(q)

    def consume():
        g = getattr(q, get)
        for _ in range(n):
            g()

    return n / run_pair(produce, timed(consume))


def tp_objects(q, n, done=None):
    def produce():
        p = q.put
        obj = OBJ
        for _ in range(n):
            p(obj)
        if done:
            done(q)

    def consume():
        g = q.get
        for _ in range(n):
            g()

    return n / run_pair(produce, timed(consume))


def tp_batches(q, n, put_many, get_many, items, get_kw=None):
    """msgs/s of n messages put in batches of BATCH and taken with get_many."""
    batch = [items] * BATCH
    rounds = n // BATCH
    total = rounds * BATCH
    kw = get_kw or {}

    def produce():
        p = getattr(q, put_many)
        for _ in range(rounds):
            p(batch)

    def consume():
        g = getattr(q, get_many)
        got = 0
        while got < total:
            got += len(g(**kw))

    return total / run_pair(produce, timed(consume))


def passes():
    return bl.pick(3, 1)


def alternate(runs):
    """Runs each (label, fn) in alternating order for a number of passes; returns
    {label: median}."""
    values = {label: [] for label, _ in runs}
    for k in range(passes()):
        order = runs if k % 2 == 0 else list(reversed(runs))
        for label, fn in order:
            values[label].append(fn())
    return {label: bl.median(v) for label, v in values.items()}


def bench_bytes():
    n_mpx, n_mp, n_ff = bl.pick(400_000, 20_000), bl.pick(60_000, 5_000), bl.pick(150_000, 10_000)
    runs = [
        ("mpx", lambda: tp_single(new_mpx(), n_mpx, "put_bytes", "get_bytes")),
        ("mp", lambda: tp_single(new_mp(), n_mp, "put", "get", _done_mp)),
    ]
    if faster_fifo:
        runs.append(("ff", lambda: tp_single(new_ff(True), n_ff, "put", "get")))
    r = alternate(runs)
    figure = "1 producer -> 1 consumer process, 64 B, put_bytes/get_bytes"
    bl.result(BENCH, figure, r["mpx"], "msgs/s", "multiprocessing.Queue put/get (same run)", r["mp"],
              goal=">= 3x multiprocessing.Queue", goal_ratio=3.0)
    if faster_fifo:
        bl.result(BENCH, figure + " vs faster-fifo", r["mpx"], "msgs/s",
                  "faster-fifo put/get, no pickling (same run)", r["ff"])
    return r["mp"]


def bench_batches(mp_single):
    n_mpx, n_ff = bl.pick(2_000_000, 100_000), bl.pick(400_000, 50_000)
    runs = [("mpx", lambda: tp_batches(new_mpx(), n_mpx, "put_many_bytes", "get_many_bytes", MSG))]
    if faster_fifo:
        runs.append(("ff", lambda: tp_batches(new_ff(True), n_ff, "put_many", "get_many", MSG, FF_GET_MANY)))
    r = alternate(runs)
    figure = "1 producer -> 1 consumer process, 64 B, put_many_bytes/get_many_bytes x%d" % BATCH
    bl.result(BENCH, figure, r["mpx"], "msgs/s", "multiprocessing.Queue put/get, one by one (same run)",
              mp_single, goal=">= 15x multiprocessing.Queue", goal_ratio=15.0,
              note="multiprocessing.Queue has no batches")
    if faster_fifo:
        bl.result(BENCH, figure + " vs faster-fifo", r["mpx"], "msgs/s",
                  "faster-fifo put_many/get_many x%d, no pickling (same run)" % BATCH, r["ff"])


def bench_objects():
    size = len(pickle.dumps(OBJ, pickle.HIGHEST_PROTOCOL))
    n_mpx, n_mp, n_ff = bl.pick(300_000, 20_000), bl.pick(60_000, 5_000), bl.pick(100_000, 10_000)
    runs = [
        ("mpx", lambda: tp_objects(new_mpx(), n_mpx)),
        ("mp", lambda: tp_objects(new_mp(), n_mp, _done_mp)),
    ]
    if faster_fifo:
        runs.append(("ff", lambda: tp_objects(new_ff(False), n_ff)))
    r = alternate(runs)
    figure = "1 producer -> 1 consumer process, pickled %d-byte tuple, put/get" % size
    bl.result(BENCH, figure, r["mpx"], "msgs/s", "multiprocessing.Queue put/get (same run)", r["mp"],
              goal=">= 2x multiprocessing.Queue", goal_ratio=2.0)
    if faster_fifo:
        bl.result(BENCH, figure + " vs faster-fifo", r["mpx"], "msgs/s", "faster-fifo put/get (same run)", r["ff"])
        n_b, n_bff = bl.pick(1_000_000, 50_000), bl.pick(200_000, 20_000)
        rb = alternate([
            ("mpx", lambda: tp_batches(new_mpx(), n_b, "put_many", "get_many", OBJ)),
            ("ff", lambda: tp_batches(new_ff(False), n_bff, "put_many", "get_many", OBJ, FF_GET_MANY)),
        ])
        bl.result(BENCH, "1 producer -> 1 consumer process, pickled %d-byte tuple, put_many/get_many x%d"
                  % (size, BATCH), rb["mpx"], "msgs/s", "faster-fifo put_many/get_many (same run)", rb["ff"])


#
# 4. Round trip
#


def round_trips(a, b, n, put, get, done=None):
    """Per-round-trip µs (after 10% warm-up) of n messages sent on a and returned on b."""

    def ping():
        p, g = getattr(a, put), getattr(b, get)
        now = time.perf_counter_ns
        samples = []
        for _ in range(n):
            t = now()
            p(MSG)
            g()
            samples.append(now() - t)
        if done:
            done(a)
        return [s / 1000 for s in samples[n // 10:]]

    def pong():
        g, p = getattr(a, get), getattr(b, put)
        for _ in range(n):
            p(g())
        if done:
            done(b)
        return None

    go_r, go_w = os.pipe()
    kids = [_fork(ping, go_r), _fork(pong, go_r)]
    os.close(go_r)
    os.write(go_w, b"gg")
    os.close(go_w)
    results = [_read_all(fd) for _, fd in kids]
    for pid, _ in kids:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit("queue_bench.py: a round-trip child failed")
    return pickle.loads(results[0])


def bench_latency():
    n = bl.pick(20_000, 2_000)
    n_slow = bl.pick(5_000, 500)
    impls = [
        ("mpx", lambda: round_trips(new_mpx(), new_mpx(), n, "put_bytes", "get_bytes")),
        ("mp", lambda: round_trips(new_mp(), new_mp(), n_slow, "put", "get", _done_mp)),
    ]
    if faster_fifo:
        impls.append(("ff", lambda: round_trips(new_ff(True), new_ff(True), n_slow, "put", "get")))
    med = {label: [] for label, _ in impls}
    p99 = {label: [] for label, _ in impls}
    for k in range(passes()):
        for label, fn in (impls if k % 2 == 0 else list(reversed(impls))):
            s = fn()
            med[label].append(bl.median(s))
            p99[label].append(bl.quantile(s, 0.99))
    m = {label: bl.median(v) for label, v in med.items()}
    p = {label: bl.median(v) for label, v in p99.items()}
    figure = "round trip between 2 processes, 64 B, put_bytes/get_bytes"
    bl.result(BENCH, figure + ", median", m["mpx"], "us", "multiprocessing.Queue put/get (same run)", m["mp"],
              higher_is_better=False, p99_us=p["mpx"], anchor_p99_us=p["mp"])
    bl.result(BENCH, figure + ", p99", p["mpx"], "us", "multiprocessing.Queue put/get (same run)", p["mp"],
              higher_is_better=False)
    if faster_fifo:
        bl.result(BENCH, figure + ", median vs faster-fifo", m["mpx"], "us", "faster-fifo put/get (same run)",
                  m["ff"], higher_is_better=False, p99_us=p["mpx"], anchor_p99_us=p["ff"])


def main():
    signal.signal(signal.SIGTERM, _on_sigterm)
    bl.header("queue_bench.py: 64-byte messages, 1 producer + 1 consumer process; mpx %s%s; %s"
              % (mpx.__version__, " with the C accelerator" if mpx.queues._SPEEDUPS else " (ctypes only)",
                 "faster-fifo %s" % getattr(faster_fifo, "__version__", "installed") if faster_fifo
                 else "faster-fifo not installed (`make bench` installs it): its figures are left out"))
    try:
        mp_single = bench_bytes()
        bench_batches(mp_single)
        bench_objects()
        bench_latency()
    finally:
        for name in _made:
            try:
                mpx.Queue.unlink_name(name)
            except FileNotFoundError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
