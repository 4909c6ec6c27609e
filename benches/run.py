#!/usr/bin/env python3
"""Runs every benchmark and writes the report (`make bench` calls this).

Discovers benches/*_bench.py (run with the project's venv Python) and the compiled
build/benches/*_bench programs (from benches/*.c and *.cpp, built by `make native`), runs them
one at a time with a timeout, collects their `RESULT {json}` lines (the convention is in
benches/README.md), and writes

    <out>/results.json   every figure, every program's status, the machine and its load
    <out>/summary.md     a table: bench, figure, mpx, anchor, ratio, goal, met?

It prints the table too. The exit status is non-zero only when a program failed (crashed,
exited non-zero, timed out, or printed a RESULT line that is not valid JSON): a missed goal is
a measurement, never a failure.

    BENCH_QUICK=1 python benches/run.py     smoke mode: small sizes, a few seconds per program,
                                            results in bench-results/quick/
    python benches/run.py --only shm        only programs whose name contains "shm"
    python benches/run.py --timeout 600     per-program timeout in seconds (env BENCH_TIMEOUT)
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHES = os.path.join(ROOT, "benches")


def quick_mode():
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def child_env(quick):
    """What every benchmark sees: the library, the build dir, the tools, the Python package
    (defaults when run outside make, which exports the same)."""
    env = dict(os.environ)
    env.setdefault("MPX_LIBRARY", os.path.join(ROOT, "target", "release", "libmpx.so"))
    env.setdefault("MPX_BUILD", os.path.join(ROOT, "build"))
    env.setdefault("MPX_BIN", os.path.join(ROOT, "target", "release", "mpx"))
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    for p in (os.path.join(ROOT, "bindings", "python"), BENCHES):
        if p not in paths:
            paths.append(p)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    if quick:
        env["BENCH_QUICK"] = "1"
    return env


def venv_python():
    py = os.path.join(ROOT, ".venv", "bin", "python")
    return py if os.access(py, os.X_OK) else sys.executable


def discover(build_dir, only):
    """(name, argv) for every benchmark, Python ones first, each group sorted by name."""
    progs = []
    py = venv_python()
    for path in sorted(glob.glob(os.path.join(BENCHES, "*_bench.py"))):
        progs.append((os.path.relpath(path, ROOT), [py, path]))
    for path in sorted(glob.glob(os.path.join(build_dir, "benches", "*_bench"))):
        if os.path.isfile(path) and os.access(path, os.X_OK):
            progs.append((_show(path), [path]))
    if only:
        progs = [p for p in progs if any(o in p[0] for o in only)]
    return progs


def missing_binaries(build_dir):
    """Sources named *_bench.c/.cpp with no compiled program (make native not run, or it failed)."""
    out = []
    for src in sorted(glob.glob(os.path.join(BENCHES, "*_bench.c")) + glob.glob(os.path.join(BENCHES, "*_bench.cpp"))):
        stem = os.path.splitext(os.path.basename(src))[0]
        if not os.path.exists(os.path.join(build_dir, "benches", stem)):
            out.append(os.path.relpath(src, ROOT))
    return out


def shm_bench_objects():
    """Benchmark objects in /dev/shm (the convention: names start with "bench-")."""
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith(("bench-", "mpx.bench-"))}
    except OSError:
        return set()


def machine_limits(build_dir, env, timeout):
    """The machine's own limits (build/benches/machine_limits: spin and futex ping-pong, raw pipe,
    memcpy) as a list of {name, value, unit, higher_is_better}; [] with a warning when the
    program is missing or fails. Run first, on a machine as quiet as the benchmarks will see."""
    path = os.path.join(build_dir, "benches", "machine_limits")
    if not os.access(path, os.X_OK):
        print("warning: %s not built (run `make native`): no machine limits" % _show(path), file=sys.stderr)
        return []
    try:
        out = subprocess.run([path], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, timeout=timeout, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        print("warning: machine_limits failed: %s" % e, file=sys.stderr)
        return []
    limits = []
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith("LIMIT "):
            try:
                limits.append(json.loads(line[len("LIMIT "):]))
            except ValueError:
                print("warning: bad LIMIT line: %s" % line[:200], file=sys.stderr)
    return limits


def limits_md(limits):
    if not limits:
        return ["Machine limits: not measured (build/benches/machine_limits missing or failed).", ""]
    rows = ["Machine limits, measured first in this run (no mpx code; benches/machine_limits.c):", "",
            "| limit | value |", "|---|---:|"]
    rows += ["| %s | %s %s |" % (md_cell(x.get("name", "")), fmt_num(x.get("value")), x.get("unit", ""))
             for x in limits]
    return rows + [""]


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def run_one(name, argv, env, timeout, verbose):
    """Runs one program in its own process group; echoes its output (RESULT lines only with
    --verbose) and returns its record."""
    rec = {"program": name, "argv": argv, "results": [], "errors": []}
    print("\n== %s" % name, flush=True)
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        rec.update(status="failed", returncode=None, seconds=0.0, errors=["cannot start: %s" % e])
        print("   cannot start: %s" % e, flush=True)
        return rec

    timed_out = threading.Event()

    def kill_on_timeout():
        # The program and anything it started share its process group: stop them all, politely
        # first so a benchmark can remove its shared-memory names.
        timed_out.set()
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            if wait is not None:
                try:
                    proc.wait(wait)
                    return
                except subprocess.TimeoutExpired:
                    pass

    timer = threading.Timer(timeout, kill_on_timeout)
    timer.daemon = True
    timer.start()
    tail = []
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            tail = (tail + [line])[-20:]
            if line.startswith("RESULT "):
                try:
                    obj = json.loads(line[len("RESULT "):])
                    if not isinstance(obj, dict) or "figure" not in obj or "value" not in obj:
                        raise ValueError("not an object with 'figure' and 'value'")
                except ValueError as e:
                    rec["errors"].append("bad RESULT line (%s): %s" % (e, line[:200]))
                    print("   !! bad RESULT line: %s" % line[:200], flush=True)
                    continue
                obj.setdefault("bench", re.sub(r"_bench(\.py)?$", "", os.path.basename(name)))
                obj["program"] = name
                rec["results"].append(obj)
                if verbose:
                    print("   " + line, flush=True)
            else:
                print("   " + line, flush=True)
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            kill_on_timeout()
            proc.wait()
    seconds = time.monotonic() - t0
    rc = proc.returncode
    rec["returncode"] = rc
    rec["seconds"] = round(seconds, 3)
    if timed_out.is_set():
        rec["status"] = "timeout"
        rec["errors"].append("timed out after %g s" % timeout)
    elif rc != 0:
        rec["status"] = "crashed" if rc < 0 else "failed"
        rec["errors"].append("killed by signal %d" % -rc if rc < 0 else "exit status %d" % rc)
    elif rec["errors"]:
        rec["status"] = "bad-output"
    elif not rec["results"]:
        rec["status"] = "no-results"
    else:
        rec["status"] = "ok"
    if rec["status"] not in ("ok", "no-results"):
        rec["tail"] = tail
    print("   -> %s, %d figures, %.1f s%s" % (rec["status"], len(rec["results"]), seconds,
                                              "" if not rec["errors"] else " (%s)" % "; ".join(rec["errors"])),
          flush=True)
    return rec


_GOAL_RE = re.compile(r"^\s*>=?\s*([0-9]*\.?[0-9]+)")


def goal_threshold(r):
    """The ratio that meets the goal: goal_ratio if given, else a leading ">= X" in the goal text."""
    g = r.get("goal_ratio")
    if isinstance(g, (int, float)) and g > 0:
        return float(g)
    m = _GOAL_RE.match(r.get("goal") or "")
    return float(m.group(1)) if m else None


def judge(r):
    """Fills in ratio (if the program left it out) and met (True/False/None)."""
    v, a = r.get("value"), r.get("anchor_value")
    hib = r.get("higher_is_better", True)
    if r.get("ratio") is None and r.get("anchor") and isinstance(v, (int, float)) and isinstance(a, (int, float)) \
            and v > 0 and a > 0:
        r["ratio"] = v / a if hib else a / v
    thr = goal_threshold(r)
    ratio = r.get("ratio")
    r["met"] = None if thr is None or not isinstance(ratio, (int, float)) else ratio >= thr
    return r


def fmt_num(x):
    if not isinstance(x, (int, float)):
        return "—"
    ax = abs(x)
    if ax >= 1000:
        return "{:,.0f}".format(x)
    if ax >= 100:
        return "%.0f" % x
    if ax >= 10:
        return "%.1f" % x
    if ax >= 1:
        return "%.2f" % x
    return "%.3g" % x


def md_cell(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def table(results):
    rows = ["| bench | figure | mpx | anchor | ratio | goal | met? |",
            "|---|---|---:|---|---:|---|:---:|"]
    for r in results:
        unit = r.get("unit") or ""
        mpx = "%s %s" % (fmt_num(r.get("value")), unit)
        if r.get("anchor"):
            anchor = "%s: %s %s" % (r["anchor"], fmt_num(r.get("anchor_value")), unit)
        else:
            anchor = "—"
        ratio = "%.2f" % r["ratio"] if isinstance(r.get("ratio"), (int, float)) else "—"
        met = {True: "yes", False: "**no**", None: "—"}[r.get("met")]
        rows.append("| %s |" % " | ".join(md_cell(c) for c in (
            r.get("bench", ""), r.get("figure", ""), mpx, anchor, ratio, r.get("goal") or "—", met)))
    return "\n".join(rows)


def summary_md(report):
    lines = ["# mpx benchmark results", ""]
    m = report["machine"]
    lines.append("Run %s on %s (%s CPUs, %s), %s mode; load average %s before, %s after. "
                 "Ratios > 1 mean mpx is better; each anchor was measured in the same run."
                 % (report["started"], m["node"], m["cpus"], m["platform"],
                    "quick (smoke, not a measurement)" if report["quick"] else "full",
                    _load(report["load_before"]), _load(report["load_after"])))
    lines += [""] + limits_md(report.get("limits") or [])
    lines += [table(report["results"]), ""]
    lines += ["## Programs", "", "| program | status | figures | seconds | notes |", "|---|---|---:|---:|---|"]
    for p in report["programs"]:
        lines.append("| %s | %s | %d | %.1f | %s |" % (md_cell(p["program"]), p["status"], len(p["results"]),
                                                     p.get("seconds") or 0.0, md_cell("; ".join(p["errors"]))))
    for note in report["notes"]:
        lines.append("")
        lines.append("Note: %s" % note)
    return "\n".join(lines) + "\n"


def _show(path):
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def _load(la):
    return "/".join("%.2f" % x for x in la) if la else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timeout", type=float, default=None,
                    help="per-program timeout in seconds (default: env BENCH_TIMEOUT, else 300; quick: 60)")
    ap.add_argument("--only", action="append", default=[], help="run only programs whose path contains this")
    ap.add_argument("--out", default=None, help="output directory (default bench-results, quick: bench-results/quick)")
    ap.add_argument("--quick", action="store_true", help="same as BENCH_QUICK=1")
    ap.add_argument("--verbose", "-v", action="store_true", help="echo RESULT lines too")
    ap.add_argument("--list", action="store_true", help="list the programs and exit")
    args = ap.parse_args()

    quick = args.quick or quick_mode()
    timeout = args.timeout or float(os.environ.get("BENCH_TIMEOUT") or (60 if quick else 300))
    out = args.out or os.path.join(ROOT, "bench-results", "quick" if quick else "")
    env = child_env(quick)
    build_dir = env["MPX_BUILD"]
    progs = discover(build_dir, args.only)
    if args.list:
        for name, argv in progs:
            print(name)
        return 0

    notes = []
    missing = missing_binaries(build_dir)
    if missing:
        notes.append("not compiled (run `make native`): %s" % ", ".join(missing))
        print("warning: " + notes[-1], file=sys.stderr)
    if not os.path.exists(env["MPX_LIBRARY"]):
        notes.append("MPX_LIBRARY %s does not exist (run `make lib`)" % env["MPX_LIBRARY"])
        print("warning: " + notes[-1], file=sys.stderr)

    report = {
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": quick,
        "timeout_s": timeout,
        "machine": {"node": platform.node(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "load_before": loadavg(),
    }
    print("mpx benchmarks: %d programs, %s mode, timeout %g s each, load %s"
          % (len(progs), "quick" if quick else "full", timeout, _load(report["load_before"])), flush=True)

    report["limits"] = machine_limits(build_dir, env, timeout)
    for x in report["limits"]:
        print("   limit: %-52s %s %s" % (x.get("name"), fmt_num(x.get("value")), x.get("unit")), flush=True)
    shm_before = shm_bench_objects()
    t0 = time.monotonic()
    programs = [run_one(name, argv, env, timeout, args.verbose) for name, argv in progs]
    report["seconds"] = round(time.monotonic() - t0, 1)
    report["load_after"] = loadavg()
    leftovers = sorted(shm_bench_objects() - shm_before)
    if leftovers:
        notes.append("benchmark objects left in /dev/shm: %s" % ", ".join(leftovers))
        print("warning: " + notes[-1], file=sys.stderr)
    report["programs"] = programs
    report["results"] = [judge(r) for p in programs for r in p["results"]]
    report["notes"] = notes

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    md = summary_md(report)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(md)

    print("\n" + md)
    print("wrote %s and %s (%.1f s)" % (_show(os.path.join(out, "results.json")), _show(os.path.join(out, "summary.md")),
                                        report["seconds"]))
    failed = [p["program"] for p in programs if p["status"] not in ("ok", "no-results")]
    if failed:
        print("FAILED: %s" % ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
