"""Connections from Python: mpx.Pipe against multiprocessing.Pipe in the same run.

1. 64-byte messages one way, a forked writer (send_bytes) to the reader here (recv_bytes):
   messages/s through mpx.Pipe beside multiprocessing.Pipe, one-way (a pipe, duplex=False) and
   duplex (a socketpair). Goal: at least 1.5x multiprocessing's Pipe.
2. 64-byte round trip to a forked echo process (send_bytes, recv_bytes both ways, duplex
   Pipe): median and p99 microseconds, mpx beside multiprocessing.
3. Pickled objects one way (send/recv of a small tuple): messages/s, informational beside
   multiprocessing.

mpx and multiprocessing alternate in blocks so both see the same machine load; figures are
medians over blocks. BENCH_QUICK=1: a smoke run. Output convention: benches/README.md."""

import multiprocessing as mp
import os
import signal
import sys

import benchlib as bl
import mpx

BENCH = "conn-py"
MSG = b"m" * 64
_fork = mpx.get_context("fork")


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _writer(w, n, msg):
    send = w.send_bytes
    for _ in range(n):
        send(msg)


def _obj_writer(w, n):
    send = w.send
    obj = (1, "two", 3.0)
    for _ in range(n):
        send(obj)


def _echo(c, other):
    # The forked child holds a copy of the parent's end too: close it, or the parent's close
    # never reaches us as the end of the stream.
    other.close()
    recv, send = c.recv_bytes, c.send_bytes
    try:
        while True:
            send(recv())
    except EOFError:
        pass


def _start(target, *args):
    p = _fork.Process(target=target, args=args, daemon=True)
    p.start()
    return p


def one_way(pipe, n, duplex, objects=False):
    """Messages/s received here from a forked writer: timed from the first message to the last,
    so the child's start is not counted."""
    r, w = pipe(duplex)
    p = _start(_obj_writer if objects else _writer, *((w, n) if objects else (w, n, MSG)))
    w.close()
    recv = r.recv if objects else r.recv_bytes
    recv()
    t = bl.now_ns()
    for _ in range(n - 1):
        recv()
    dt = bl.now_ns() - t
    p.join(30)
    r.close()
    return (n - 1) / (dt / 1e9)


def round_trips(pipe, n):
    """Per round trip times (ns) of a 64-byte message to a forked echo process."""
    a, b = pipe(True)
    p = _start(_echo, b, a)
    b.close()
    send, recv = a.send_bytes, a.recv_bytes
    for _ in range(min(1000, n)):  # warm up
        send(MSG)
        recv()
    now = bl.now_ns
    times = []
    for _ in range(n):
        t = now()
        send(MSG)
        recv()
        times.append(now() - t)
    a.close()
    p.join(30)
    return times


def bench_one_way():
    n = bl.pick(200_000, 20_000)
    blocks = bl.pick(5, 2)
    for duplex, label in ((False, "one-way Pipe(duplex=False)"), (True, "duplex Pipe()")):
        m, s = [], []
        for _ in range(blocks):
            m.append(one_way(mpx.Pipe, n, duplex))
            s.append(one_way(mp.Pipe, n, duplex))
        goal = (">= 1.5x multiprocessing.Pipe", 1.5) if not duplex else (None, None)
        bl.result(BENCH, "64 B messages one way, send_bytes/recv_bytes, %s" % label, bl.median(m), "msgs/s",
                  anchor="multiprocessing.Pipe (same run)", anchor_value=bl.median(s), higher_is_better=True,
                  goal=goal[0], goal_ratio=goal[1], messages=n, blocks=blocks,
                  best=max(m), anchor_best=max(s))


def bench_objects():
    n = bl.pick(100_000, 10_000)
    blocks = bl.pick(3, 1)
    m, s = [], []
    for _ in range(blocks):
        m.append(one_way(mpx.Pipe, n, True, objects=True))
        s.append(one_way(mp.Pipe, n, True, objects=True))
    bl.result(BENCH, "small pickled objects one way, send/recv, duplex Pipe()", bl.median(m), "msgs/s",
              anchor="multiprocessing.Pipe (same run)", anchor_value=bl.median(s), higher_is_better=True,
              messages=n, blocks=blocks)


def bench_round_trip():
    n = bl.pick(20_000, 2_000)
    blocks = bl.pick(5, 2)
    m, s = [], []
    for _ in range(blocks):
        m += round_trips(mpx.Pipe, n)
        s += round_trips(mp.Pipe, n)
    for q, name in ((0.5, "median"), (0.99, "p99")):
        bl.result(BENCH, "64 B round trip, duplex Pipe, %s" % name, bl.quantile(m, q) / 1000, "us",
                  anchor="multiprocessing.Pipe (same run)", anchor_value=bl.quantile(s, q) / 1000,
                  higher_is_better=False, samples=len(m))


def main():
    signal.signal(signal.SIGTERM, _on_sigterm)
    bl.header("conn-py: mpx.Pipe vs multiprocessing.Pipe (pid %d, python %s)" % (os.getpid(), sys.version.split()[0]))
    bench_one_way()
    bench_round_trip()
    bench_objects()


if __name__ == "__main__":
    main()
