"""Helpers shared by the Python benchmarks: quick mode, clocks, medians, unique names, and the
RESULT line that benches/run.py collects (the convention is in benches/README.md).

A benchmark is a plain script (``benches/<topic>_bench.py``); ``import benchlib`` works because
Python puts the script's directory on sys.path."""

import json
import math
import os
import statistics
import sys
import time

__all__ = [
    "quick",
    "pick",
    "now",
    "now_ns",
    "median",
    "quantile",
    "ratio",
    "result",
    "info",
    "unique_name",
    "gbps",
    "header",
]

now = time.perf_counter
now_ns = time.perf_counter_ns


def quick():
    """True when BENCH_QUICK is set to anything but "" or "0": a smoke run with small sizes and
    few repetitions that checks the benchmark works, not a measurement."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def pick(full, quick_value):
    """The full or the quick value of a parameter."""
    return quick_value if quick() else full


def median(xs):
    """The median of a non-empty sequence."""
    return statistics.median(xs)


def quantile(xs, p):
    """The p-quantile (0..1, nearest rank) of a non-empty sequence."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * (len(s) - 1) + 0.5))]


def gbps(nbytes, seconds):
    """Bytes per second as GB/s (10^9)."""
    return nbytes / seconds / 1e9


def ratio(value, anchor_value, higher_is_better=True):
    """> 1 always means mpx is better: value/anchor when higher is better, anchor/value when
    lower is better. None when either is missing or not positive."""
    if not _positive(value) or not _positive(anchor_value):
        return None
    return value / anchor_value if higher_is_better else anchor_value / value


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _num(x):
    # JSON has no NaN or infinity.
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


_seen_names = 0


def unique_name(tag):
    """A name for an object this benchmark creates: "bench-<tag>-<pid>-<n>". The "bench-"
    prefix lets run.py notice benchmark objects left in /dev/shm."""
    global _seen_names
    _seen_names += 1
    return "bench-%s-%d-%d" % (tag, os.getpid(), _seen_names)


def header(text):
    """A human-readable section line."""
    print(text, flush=True)


def result(bench, figure, value, unit, anchor=None, anchor_value=None, higher_is_better=True,
           goal=None, goal_ratio=None, **extra):
    """Reports one figure: a human-readable line, then the machine-readable line

        RESULT {"bench": ..., "figure": ..., "value": ..., "unit": ..., "anchor": ...,
                "anchor_value": ..., "ratio": ..., "higher_is_better": ..., "goal": ...,
                "goal_ratio": ...}

    anchor: what the figure is compared with, measured in the same run (None: no anchor).
    goal: the goal in words; goal_ratio: the ratio that meets it (ratio >= goal_ratio).
    Extra keyword arguments are added to the JSON object (e.g. samples=..., p99=...)."""
    if anchor is None:
        anchor_value = None
    r = ratio(value, anchor_value, higher_is_better) if anchor is not None else None
    line = "  %-46s %10.4g %-8s" % (figure, value, unit)
    if anchor is not None:
        line += "  | %s %.4g, ratio %s" % (
            anchor, anchor_value if anchor_value is not None else float("nan"),
            "%.3f" % r if r is not None else "n/a")
    if goal:
        line += "  (goal %s)" % goal
    print(line)
    obj = {
        "bench": bench,
        "figure": figure,
        "value": _num(value),
        "unit": unit,
        "anchor": anchor,
        "anchor_value": _num(anchor_value),
        "ratio": _num(r),
        "higher_is_better": bool(higher_is_better),
        "goal": goal,
        "goal_ratio": _num(goal_ratio),
    }
    for k, v in extra.items():
        obj.setdefault(k, v)
    # flush: results reach run.py even if the program dies later.
    print("RESULT " + json.dumps(obj, allow_nan=False), flush=True)
    return r


def info(bench, figure, value, unit, higher_is_better=True, **extra):
    """A figure without an anchor (informational: shown, never judged)."""
    return result(bench, figure, value, unit, higher_is_better=higher_is_better, **extra)


if __name__ == "__main__":
    sys.exit("benchlib is a module for the benchmarks in benches/, not a program")
