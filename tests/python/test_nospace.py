"""A full /dev/shm is OSError(ENOSPC) in Python, never a "Bus error" (issue 11).

The checks run in a subprocess that has a private mount namespace with a 16 MiB tmpfs on
/dev/shm (unshare(CLONE_NEWNS) as root, as tests/c/test_nospace.c does for C), so filling it
disturbs nothing else and leaves nothing behind: the tmpfs goes with the namespace. Where a
mount namespace cannot be made (not root, no CAP_SYS_ADMIN), the test is skipped with the
reason. Before the library reserved memory at creation, a too-big SharedMemory was created
"successfully" and the process died of SIGBUS when it touched the memory.

Objects made without a name live in memfds, outside /dev/shm: its size does not bound them.
"""

import pytest

CHECKS = r"""
import ctypes, errno, os, sys

CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x00020000, 16384, 1 << 18
libc = ctypes.CDLL(None, use_errno=True)

def skip(what):
    print("SKIP %s: %s" % (what, os.strerror(ctypes.get_errno())), flush=True)
    sys.exit(0)

if libc.unshare(CLONE_NEWNS) != 0:
    skip("cannot make a mount namespace here (unshare; needs root)")
if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
    skip("cannot make mounts private")
if libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", 0, b"size=16m,mode=1777") != 0:
    skip("cannot mount a tmpfs on /dev/shm")

import mpx
from mpx.shared_memory import SharedMemory

MiB = 1 << 20

def no_space(what, make):
    try:
        make()
    except OSError as e:
        assert e.errno == errno.ENOSPC, (what, e)
        assert "free" in str(e) and "needed" in str(e), (what, str(e))
        return
    raise AssertionError("%s: created on a 16 MiB /dev/shm" % what)

# Larger than the whole tmpfs: refused at create, and no file is left.
no_space("SharedMemory", lambda: SharedMemory("big", create=True, size=64 * MiB))
no_space("Value array", lambda: mpx.Array.create("arr", "q", 8 * MiB))
no_space("RawArray", lambda: mpx.RawArray.create("raw", "B", 64 * MiB))
no_space("Queue", lambda: mpx.Queue.create("q", capacity=64 * MiB))
assert os.listdir("/dev/shm") == [], os.listdir("/dev/shm")

# One that fits is usable to its last byte.
fits = SharedMemory("fits", create=True, size=8 * MiB)
fits.buf[:] = b"\xa5" * (8 * MiB)
assert fits.buf[8 * MiB - 1] == 0xA5

# Fill the rest with values: the create that finds no room fails cleanly; those before stay
# usable, and so does a queue made before /dev/shm filled up.
q = mpx.Queue.create("small", capacity=64 * 1024)
values = []
while True:
    try:
        values.append(mpx.Array.create("v%d" % len(values), "q", 32768, lock=False))
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
        break
    assert len(values) < 1000, "/dev/shm never filled up"
assert values, "no value fitted at all"
for i, v in enumerate(values):
    v[32767] = i
    assert v[32767] == i
small = []
while True:  # the last pages, with the smallest values
    try:
        small.append(mpx.Value.create("s%d" % len(small), "i", len(small)))
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
        break
    assert len(small) < 1000, "/dev/shm never filled up"
no_space("Value when full", lambda: mpx.Value.create("one-more", "i", 0))
assert all(v.value == i for i, v in enumerate(small))
q.put_bytes(b"x" * 1000)
assert q.get_bytes(timeout=10) == b"x" * 1000
print("OK %d values" % len(values), flush=True)
"""


def test_a_full_dev_shm_is_enospc_and_the_process_lives(run_py):
    r = run_py(CHECKS, timeout=120)
    out = r.stdout.strip()
    if out.startswith("SKIP"):
        pytest.skip(out[5:])
    assert out.startswith("OK"), "stdout %r; stderr:\n%s" % (r.stdout, r.stderr)
