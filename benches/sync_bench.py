"""Synchronization from Python: mpx against multiprocessing in the same run.

1. Uncontended Lock acquire() + release(), and `with lock:`: ns per pair, mpx.Lock beside
   multiprocessing.Lock (a C method each: this measures ctypes' call cost against it), and the
   cost of one ctypes call of a C function that does nothing, the floor of every mpx call.
2. Two processes incrementing one counter under the lock, the multiprocessing idiom
   `with v.get_lock(): v.value += 1`: increments/s with mpx.Value('q') beside
   multiprocessing.Value('q'). Goal: at least 2x multiprocessing. Also with a separate Lock and
   a raw value (mpx.Lock + RawValue beside multiprocessing.Lock + RawValue).
3. Semaphore handoff round trip between two processes (ping: release one semaphore, pong:
   acquire the other): median and p99 µs, mpx.Semaphore beside multiprocessing.Semaphore.

mpx and multiprocessing alternate in short blocks so both see the same machine load; figures
are medians over blocks. BENCH_QUICK=1: a smoke run. Output convention: benches/README.md.
Every object is removed at exit (objects made without a name are anonymous), also on SIGTERM."""

import multiprocessing as mp
import os
import signal
import sys
import time

import benchlib as bl
import mpx

BENCH = "sync-py"


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


#
# 1. Uncontended
#


def pairs_acquire_release(lock, n):
    acquire, release = lock.acquire, lock.release
    t = bl.now_ns()
    for _ in range(n):
        acquire()
        release()
    return (bl.now_ns() - t) / n


def pairs_with(lock, n):
    t = bl.now_ns()
    for _ in range(n):
        with lock:
            pass
    return (bl.now_ns() - t) / n


def ctypes_floor(n):
    """ns of CPU per ctypes call of a C function that does nothing (mpx_abi_version): the
    binding's fixed cost per operation, which a C method like multiprocessing's does not pay."""
    from mpx.synchronize import _fast

    fn = _fast("mpx_abi_version", blocking=False)
    t = time.thread_time_ns()
    for _ in range(n):
        fn()
    return (time.thread_time_ns() - t) / n


def bench_uncontended():
    n = bl.pick(100_000, 10_000)
    blocks = bl.pick(15, 3)
    bl.info(BENCH, "ctypes call floor (no-op C function, CPU time)", min(ctypes_floor(n) for _ in range(blocks)),
            "ns", higher_is_better=False)
    ml, sl = mpx.Lock(), mp.Lock()
    for fn, label in ((pairs_acquire_release, "acquire() + release()"), (pairs_with, "`with lock:`")):
        fn(ml, 1000)
        fn(sl, 1000)
        m, s = [], []
        for _ in range(blocks):
            m.append(fn(ml, n))
            s.append(fn(sl, n))
        bl.result(BENCH, "uncontended Lock %s, Python" % label, bl.median(m), "ns",
                  "multiprocessing.Lock (same run)", bl.median(s), higher_is_better=False,
                  note="ctypes call per operation against a C method")


#
# 2. Two processes, one counter
#


def _run_pair(body):
    """Forks two children that wait for a go byte, run body(), and exit; returns the seconds
    from go to both exits."""
    pids, gos = [], []
    for _ in range(2):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(w)
                os.read(r, 1)
                body()
                code = 0
            finally:
                os._exit(code)
        os.close(r)
        pids.append(pid)
        gos.append(w)
    t = time.perf_counter()
    for w in gos:
        os.write(w, b"g")
        os.close(w)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit("sync_bench.py: a counter child failed")
    return time.perf_counter() - t


def counter_value_lock(make_value, n):
    v = make_value()

    def body():
        for _ in range(n):
            with v.get_lock():
                v.value += 1

    secs = _run_pair(body)
    if v.value != 2 * n:
        raise SystemExit("sync_bench.py: counter %d, expected %d" % (v.value, 2 * n))
    return 2 * n / secs


def counter_separate_lock(make_lock, make_raw, n):
    lock, v = make_lock(), make_raw()

    def body():
        for _ in range(n):
            with lock:
                v.value += 1

    secs = _run_pair(body)
    if v.value != 2 * n:
        raise SystemExit("sync_bench.py: counter %d, expected %d" % (v.value, 2 * n))
    return 2 * n / secs


def bench_counter():
    n = bl.pick(100_000, 5_000)
    rounds = bl.pick(7, 2)
    m, s, ml, sl = [], [], [], []
    for _ in range(rounds):
        m.append(counter_value_lock(lambda: mpx.Value("q", 0), n))
        s.append(counter_value_lock(lambda: mp.Value("q", 0), n))
        ml.append(counter_separate_lock(mpx.Lock, lambda: mpx.RawValue("q", 0), n))
        sl.append(counter_separate_lock(mp.Lock, lambda: mp.RawValue("q", 0), n))
    bl.result(BENCH, "2 processes x %d increments, `with v.get_lock(): v.value += 1`" % n, bl.median(m),
              "incr/s", "multiprocessing.Value (same run)", bl.median(s), higher_is_better=True,
              goal=">= 2x multiprocessing", goal_ratio=2.0, rounds=rounds)
    bl.result(BENCH, "2 processes x %d increments, Lock + RawValue" % n, bl.median(ml), "incr/s",
              "multiprocessing.Lock + RawValue (same run)", bl.median(sl), higher_is_better=True,
              goal=">= 2x multiprocessing", goal_ratio=2.0, rounds=rounds)


#
# 3. Semaphore handoff
#


def handoff(make_sem, n):
    """Round trips between this process and a forked one: per-round µs."""
    ping, pong = make_sem(0), make_sem(0)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for _ in range(n + 100):
                ping.acquire()
                pong.release()
            code = 0
        finally:
            os._exit(code)
    clock = bl.now_ns
    samples = []
    for i in range(n + 100):
        t = clock()
        ping.release()
        pong.acquire()
        if i >= 100:  # the first rounds warm up both sides
            samples.append((clock() - t) / 1e3)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("sync_bench.py: handoff child failed")
    return samples


def bench_handoff():
    n = bl.pick(5_000, 500)
    rounds = bl.pick(6, 2)
    m, s = [], []
    for _ in range(rounds):
        m += handoff(lambda v: mpx.Semaphore(v), n)
        s += handoff(lambda v: mp.Semaphore(v), n)
    bl.result(BENCH, "semaphore handoff round trip, 2 processes, median", bl.median(m), "us",
              "multiprocessing.Semaphore (same run)", bl.median(s), higher_is_better=False,
              goal="beat multiprocessing", goal_ratio=1.0, samples=len(m))
    bl.result(BENCH, "semaphore handoff round trip, 2 processes, p99", bl.quantile(m, 0.99), "us",
              "multiprocessing.Semaphore p99 (same run)", bl.quantile(s, 0.99), higher_is_better=False)


def main():
    signal.signal(signal.SIGTERM, _on_sigterm)
    bl.header("sync_bench.py: mpx %s, Python %s, %s mode, %d CPUs, load %.2f"
              % (mpx.__version__, sys.version.split()[0], "quick" if bl.quick() else "full",
                 os.cpu_count(), os.getloadavg()[0]))
    bl.header("uncontended, ns per acquire+release (lower is better)")
    bench_uncontended()
    bl.header("two processes incrementing one counter under the lock (higher is better)")
    bench_counter()
    bl.header("semaphore handoff between two processes (lower is better)")
    bench_handoff()


if __name__ == "__main__":
    main()
