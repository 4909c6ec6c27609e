"""Start + join of a trivial child, per start method: mpx against multiprocessing in one run.

    python benches/process_bench.py [--runs N] [--rounds R]
    BENCH_QUICK=1: a few runs (a smoke test, not a measurement)

Figure: ``p = ctx.Process(target=noop); p.start(); p.join()``, median over the runs, for each
start method (fork, spawn, forkserver) and each library. Each library is measured in its own
worker interpreter whose ``__main__`` imports only that library, as a user's program would (a
spawned child re-imports ``__main__``, so a driver importing both libraries would make each
child pay for both). Workers of the two libraries alternate in rounds, so both see the same
machine load, and each starts with one warm-up start (the first forkserver start launches the
server; the standard library's first spawn starts its resource tracker). Workers run with
bytecode caching on, as Python normally does.

Goal: mpx faster than multiprocessing for every start method (ratio = multiprocessing / mpx
above 1). Prints a table, then one ``RESULT {json}`` line per figure (the convention of
benches/README.md).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
BINDINGS = os.path.normpath(os.path.join(HERE, "..", "bindings", "python"))
METHODS = ("fork", "spawn", "forkserver")


def noop():
    pass


def worker(library, method, runs):
    """Runs in a worker interpreter: prints the start+join times in seconds as JSON."""
    if library == "mpx":
        sys.path.insert(0, BINDINGS)
        import mpx as lib
    else:
        import multiprocessing as lib
    ctx = lib.get_context(method)
    times = []
    for i in range(runs + 1):
        t = time.perf_counter()
        p = ctx.Process(target=noop)
        p.start()
        p.join(60)
        dt = time.perf_counter() - t
        if p.exitcode != 0:
            raise SystemExit("%r exited with %r" % (p, p.exitcode))
        if i:  # the first start is the warm-up
            times.append(dt)
    print(json.dumps(times))


def run_worker(library, method, runs):
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", library, method, str(runs)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit("%s %s worker failed (%d): %s" % (library, method, out.returncode, out.stderr))
    return json.loads(out.stdout.splitlines()[-1])


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    import benchlib as bl

    quick = bl.quick()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=None, help="runs per method, library and round")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds per method")
    args = ap.parse_args()
    # Many short alternating rounds: the machine's load drifts, and both must see the same.
    runs = {"fork": 40, "spawn": 5, "forkserver": 25}
    rounds = args.rounds or (1 if quick else 8)
    if args.runs:
        runs = dict.fromkeys(runs, args.runs)
    elif quick:
        runs = dict.fromkeys(runs, 3)

    rows = []
    for method in METHODS:
        ours, theirs = [], []
        for _ in range(rounds):
            ours += run_worker("mpx", method, runs[method])
            theirs += run_worker("multiprocessing", method, runs[method])
        rows.append((method, statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3, len(ours)))

    print("start+join of a trivial child (median, ms; ratio = multiprocessing / mpx)")
    print("  %-11s %10s %16s %8s %6s" % ("method", "mpx", "multiprocessing", "ratio", "runs"))
    for method, ours, theirs, n in rows:
        print("  %-11s %10.2f %16.2f %7.2fx %6d" % (method, ours, theirs, theirs / ours, n))
    for method, ours, theirs, n in rows:
        bl.result("process-py", "Python %s start+join" % method, ours, "ms", anchor="multiprocessing %s" % method,
                  anchor_value=theirs, higher_is_better=False, goal="beat multiprocessing", goal_ratio=1.0, samples=n)


if __name__ == "__main__":
    main()
