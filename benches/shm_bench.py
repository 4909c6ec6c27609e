"""Shared-memory buffers from Python/numpy, against the standard library and numpy in the same run.

1. Lifecycle: create + attach + close + unlink with mpx.shared_memory.SharedMemory beside
   multiprocessing.shared_memory.SharedMemory (median µs per cycle and per step).
2. Bandwidth: filling a 256 MiB buffer through numpy (np.copyto into
   np.ndarray(buffer=shm.buf)) beside a numpy copy between two private arrays (memcpy
   equivalent) and beside the same fill into multiprocessing.shared_memory; warm (second and
   later passes) and first touch (fresh pages) reported apart. Goal: >= 95% of memcpy.

BENCH_QUICK=1: 32 MiB and few repetitions (a smoke run). Output convention: benches/README.md.
Every name this creates is removed, also on failure or SIGTERM."""

import signal
import sys
from multiprocessing import shared_memory as std_shm

import numpy as np

import benchlib as bl
import mpx
from mpx import shared_memory as mpx_shm

BENCH = "shm-py"

# Names created and not yet unlinked: (kind, name).
_live = set()


def _cleanup():
    for kind, name in list(_live):
        try:
            if kind == "mpx":
                s = mpx_shm.SharedMemory(name)
            else:
                s = std_shm.SharedMemory(name)
            s.close()
            s.unlink()
        except (FileNotFoundError, OSError):
            pass
        _live.discard((kind, name))


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


class Impl:
    """One SharedMemory implementation under test."""

    def __init__(self, kind, cls):
        self.kind = kind
        self.cls = cls

    def create(self, name, size):
        _live.add((self.kind, name))
        return self.cls(name, create=True, size=size)

    def attach(self, name):
        return self.cls(name)

    def unlink(self, shm):
        shm.unlink()
        _live.discard((self.kind, shm.name.lstrip("/")))


MPX = Impl("mpx", mpx_shm.SharedMemory)
STD = Impl("std", std_shm.SharedMemory)

STEPS = ["create", "attach", "close (attacher)", "close (creator)", "unlink"]


def cycle(impl, name, size, times):
    """create, attach, close both, unlink; appends each step's µs to times[i]."""
    clock = bl.now_ns
    t0 = clock()
    a = impl.create(name, size)
    t1 = clock()
    b = impl.attach(name)
    t2 = clock()
    b.close()
    t3 = clock()
    a.close()
    t4 = clock()
    impl.unlink(a)
    t5 = clock()
    if times is not None:
        for i, (x, y) in enumerate(((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
            times[i].append((y - x) / 1e3)
    return (t5 - t0) / 1e3


def bench_lifecycle(size, label, n, per_step):
    base_m = bl.unique_name("py-mpx")
    base_s = bl.unique_name("py-std")
    # Warm up both (imports, ctypes prototypes, the standard library's resource tracker process).
    for i in range(20):
        cycle(MPX, base_m, size, None)
        cycle(STD, base_s, size, None)
    mc, sc = [], []
    ms = [[] for _ in STEPS]
    ss = [[] for _ in STEPS]
    block = 50
    # Alternate blocks of each, so both see the same noise.
    for i in range(0, n, block):
        k = min(block, n - i)
        for _ in range(k):
            mc.append(cycle(MPX, base_m, size, ms))
        for _ in range(k):
            sc.append(cycle(STD, base_s, size, ss))
    bl.result(BENCH, "create+attach+close+unlink cycle, %s" % label, bl.median(mc), "us",
              "multiprocessing.shared_memory (same run)", bl.median(sc), higher_is_better=False,
              goal="not slower than stdlib", goal_ratio=1.0)
    if per_step:
        for i, step in enumerate(STEPS):
            bl.result(BENCH, "step: %s, %s" % (step, label), bl.median(ms[i]), "us",
                      "multiprocessing.shared_memory %s" % step, bl.median(ss[i]),
                      higher_is_better=False)


def timed_copy(dst, src):
    t = bl.now()
    np.copyto(dst, src)
    return bl.now() - t


def bench_bandwidth(size, label, warm_passes, cold_reps):
    src = np.full(size, 0xA5, dtype=np.uint8)  # warm source: every page written
    src[::4096] = 0x5A

    # First touch: a fresh destination each repetition, every page faults during the copy.
    cold = {"private": [], "mpx": [], "std": []}
    kinds = ["private", MPX, STD]
    for r in range(cold_reps):
        # Rotate which kind goes first, so none always runs on the freshest CPU state.
        for impl in kinds[r % 3:] + kinds[:r % 3]:
            if impl == "private":
                d = np.empty(size, dtype=np.uint8)
                cold["private"].append(bl.gbps(size, timed_copy(d, src)))
                del d
                continue
            shm = impl.create(bl.unique_name("py-bw-" + impl.kind), size)
            try:
                arr = np.ndarray((size,), dtype=np.uint8, buffer=shm.buf)
                cold[impl.kind].append(bl.gbps(size, timed_copy(arr, src)))
                del arr
            finally:
                shm.close()
                impl.unlink(shm)
    fig = "fill %s buffer from numpy (np.copyto), first touch" % label
    m = bl.median(cold["mpx"])
    bl.result(BENCH, fig, m, "GB/s", "numpy copy into a fresh private array",
              bl.median(cold["private"]))
    bl.result(BENCH, fig + " (vs stdlib)", m, "GB/s",
              "same fill into fresh multiprocessing.shared_memory", bl.median(cold["std"]),
              goal=">= 0.95 of stdlib shm", goal_ratio=0.95)

    # Warm: destinations' pages present; rotate the order of the three each pass.
    private = np.empty(size, dtype=np.uint8)
    private.fill(1)
    shms = {impl.kind: impl.create(bl.unique_name("py-bw-" + impl.kind), size) for impl in (MPX, STD)}
    try:
        dests = {"private": private}
        for kind, shm in shms.items():
            dests[kind] = np.ndarray((size,), dtype=np.uint8, buffer=shm.buf)
            dests[kind].fill(1)
        order = ["private", "mpx", "std"]
        for k in order:  # one untimed pass each
            timed_copy(dests[k], src)
        warm = {k: [] for k in order}
        for p in range(warm_passes):
            for k in order[p % 3:] + order[:p % 3]:
                warm[k].append(bl.gbps(size, timed_copy(dests[k], src)))
        if not np.array_equal(dests["mpx"][::65536], src[::65536]):
            raise SystemExit("shm_bench.py: copy check failed")
        fig = "fill %s buffer from numpy (np.copyto), warm" % label
        m = bl.median(warm["mpx"])
        bl.result(BENCH, fig, m, "GB/s", "numpy copy between private arrays (memcpy)",
                  bl.median(warm["private"]), goal=">= 0.95 of memcpy", goal_ratio=0.95)
        bl.result(BENCH, fig + " (vs stdlib)", m, "GB/s", "same fill into multiprocessing.shared_memory",
                  bl.median(warm["std"]), goal=">= 0.95 of stdlib shm", goal_ratio=0.95)
        del dests
    finally:
        for kind, shm in shms.items():
            shm.close()
            (MPX if kind == "mpx" else STD).unlink(shm)


def main():
    signal.signal(signal.SIGTERM, _on_sigterm)
    q = bl.quick()
    size = (32 if q else 256) << 20
    label = "%d MiB" % (size >> 20)
    cycles = bl.pick(2000, 200)
    bl.header("shm_bench.py: mpx %s, numpy %s, Python %s, %s mode"
              % (mpx.__version__ if hasattr(mpx, "__version__") else "?", np.__version__,
                 sys.version.split()[0], "quick" if q else "full"))
    try:
        bl.header("lifecycle of a named buffer, median of %d cycles (lower is better)" % cycles)
        bench_lifecycle(4096, "4 KiB", cycles, per_step=True)
        bench_lifecycle(size, label, cycles // 4, per_step=False)
        bl.header("bandwidth of filling a %s buffer through numpy (higher is better)" % label)
        bench_bandwidth(size, label, bl.pick(9, 3), bl.pick(3, 1))
    finally:
        _cleanup()


if __name__ == "__main__":
    main()
