"""The mpx demo (`make demo`): one named shared-memory buffer, three languages, three processes.

  1. C      (examples/c/demo_fill.c)              creates it and writes a float32 ramp
  2. Python (examples/python/demo_transform.py)   maps it as a numpy array, transforms in place
  3. C++    (examples/cpp/demo_verify.cpp)        verifies every value and removes the name

No bytes are copied between them: each maps the same memory. The compiled programs are found
in $MPX_BUILD (default: build/ next to this folder). Nothing is left in /dev/shm, even when a
step fails.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("MPX_BUILD", ROOT / "build"))
COUNT = 1 << 20  # floats: 4 MiB
TIMEOUT = 60  # seconds per step


def main():
    name = "demo-%d" % os.getpid()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(ROOT / "bindings" / "python"), env.get("PYTHONPATH")] if p
    )
    steps = [
        ("demo_fill (C)", [str(BUILD / "examples" / "c" / "demo_fill"), name, str(COUNT)]),
        ("demo_transform (Python)",
         [sys.executable, str(ROOT / "examples" / "python" / "demo_transform.py"), name]),
        ("demo_verify (C++)", [str(BUILD / "examples" / "cpp" / "demo_verify"), name, str(COUNT)]),
    ]
    print("mpx demo: buffer '%s' (%d float32) shared by C, Python and C++\n" % (name, COUNT))
    try:
        for label, argv in steps:
            try:
                r = subprocess.run(argv, env=env, timeout=TIMEOUT)
            except FileNotFoundError:
                print("demo: %s is missing: run `make native` first" % argv[0], file=sys.stderr)
                return 1
            except subprocess.TimeoutExpired:
                print("demo: %s took longer than %d s" % (label, TIMEOUT), file=sys.stderr)
                return 1
            if r.returncode != 0:
                print("demo: %s failed (exit %d)" % (label, r.returncode), file=sys.stderr)
                return 1
    finally:
        leftover = Path("/dev/shm/mpx." + name)
        if leftover.exists():
            leftover.unlink()
            print("demo: removed leftover %s" % leftover, file=sys.stderr)
    print("\nmpx demo: OK (one buffer, three languages, zero copies; /dev/shm is clean)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
