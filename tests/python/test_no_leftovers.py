"""Objects that mpx makes without a name leave nothing in /dev/shm (issue 11).

A typical program (a counter Value with its lock incremented by children, an Array, RawValue
and RawArray, a structure Value, a Queue and a JoinableQueue fed by the children, and Lock,
RLock, Event, Condition, Semaphore and Barrier shared with them) runs in a subprocess under
each start method, to its end or killed with SIGKILL midway (parent and children). Before the
fix each of its objects was a /dev/shm/mpx.py-<kind>-<pid>-<hex> file, left behind at exit.

/dev/shm is shared with everyone on the machine, so "nothing new remains" is checked for what
this program made: new mpx.* entries whose header names one of its processes as creator (or
whose name carries one of its pids, as the generated names did). A named control object that
the program does not unlink shows that the check sees what a run leaves. Every wait is bounded.
"""

import os
import select
import signal
import struct
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import OWN_PIDS, SHM_DIR, child_env

TIMEOUT = 60  # seconds for any wait of the program or of the test; a hang is a failure

PROGRAM = textwrap.dedent(
    """
    import ctypes, os, sys, mpx

    class Point(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double)]

    T = %(timeout)d

    def child(i, counter, arr, rv, ra, pt, q, jq, pids, lock, rlock, ev, cond, sem, bar, mode):
        pids.put(os.getpid())
        for _ in range(100):
            with counter.get_lock():
                counter.value += 1
        with lock:
            arr[i] += 1.5
        with rlock, rlock:
            rv.value += 1
        ra[i] = i + 1
        with pt:
            pt.x += 1
        q.put(("item", i), timeout=T)
        jq.put(i, timeout=T)
        sem.release()
        with cond:
            cond.notify_all()
        bar.wait(T)
        if mode == "kill":
            counter.get_lock().acquire(timeout=T)  # one child is killed holding it
        if not ev.wait(T):
            sys.exit(5)

    if __name__ == "__main__":
        method, mode, control = sys.argv[1:4]
        ctx = mpx.get_context(method)
        counter = mpx.Value("i", 0)
        arr = mpx.Array("d", 2)
        rv = mpx.RawValue("q", 0)
        ra = mpx.RawArray("i", 2)
        pt = mpx.Value(Point, 0, 0.5)
        q, jq, pids = mpx.Queue(), mpx.JoinableQueue(), mpx.SimpleQueue()
        lock, rlock, ev, cond = mpx.Lock(), mpx.RLock(), mpx.Event(), mpx.Condition()
        sem, bar = mpx.Semaphore(0), mpx.Barrier(3)
        ctl = mpx.Lock.create(control)  # named, never unlinked: the check must see it
        print("pid", os.getpid(), flush=True)
        procs = [ctx.Process(target=child, args=(i, counter, arr, rv, ra, pt, q, jq, pids, lock, rlock, ev,
                                                 cond, sem, bar, mode)) for i in range(2)]
        for p in procs:
            p.start()
        for _ in procs:
            print("pid", pids.get(timeout=T), flush=True)
        for _ in procs:
            assert q.get(timeout=T)[0] == "item"
            jq.get(timeout=T)
            jq.task_done()
            assert sem.acquire(timeout=T)
        assert jq.join(timeout=T)
        bar.wait(T)
        if mode == "kill":
            print("ready", flush=True)
            ev.wait(T)  # the test kills every process of the program here
            sys.exit(4)
        ev.set()
        for p in procs:
            p.join(T)
            assert p.exitcode == 0, p.exitcode
        assert counter.value == 200 and arr[:] == [1.5, 1.5] and rv.value == 2 and ra[:] == [1, 2]
        assert pt.x == 2 and pt.y == 0.5
        print("done", flush=True)
    """
) % {"timeout": TIMEOUT}


def _creator_pid(path):
    # The header's creator_pid: an i32 at offset 48 (src/object/header.rs). Never block on or
    # follow what others may have put there.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        head = os.pread(fd, 52, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    return struct.unpack_from("<i", head, 48)[0] if len(head) >= 52 else None


def _entries():
    return {e for e in os.listdir(SHM_DIR) if e.startswith("mpx.")}


def _made_by(entries, pids):
    marks = ["-%d-" % p for p in pids]
    return {e for e in entries if _creator_pid(os.path.join(SHM_DIR, e)) in pids or any(m in e for m in marks)}


def _gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie holds nothing
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


def _wait_gone(pids):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        alive = [p for p in pids if not _gone(p)]
        if not alive:
            return
        time.sleep(0.05)
    pytest.fail("processes of the program still alive after %ss: %s" % (TIMEOUT, alive))


class _Lines:
    """Reads the program's stdout line by line, each read bounded by the deadline."""

    def __init__(self, p):
        self.p = p
        self.buf = b""
        self.deadline = time.monotonic() + 3 * TIMEOUT

    def next(self):
        while b"\n" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.p.stdout.fileno(), 4096)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


@pytest.mark.parametrize("mode", ["exit", "kill"])
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_typical_program_leaves_nothing(method, mode, tmp_path, make_name):
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    control = make_name("control")
    before = _entries()
    p = subprocess.Popen([sys.executable, str(script), method, mode, control], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=child_env(), cwd=str(tmp_path), start_new_session=True)
    OWN_PIDS.add(p.pid)
    pids, lines, last = set(), _Lines(p), None
    try:
        while True:
            line = lines.next()
            if line is None:
                break
            last = line
            if line.startswith("pid "):
                pids.add(int(line.split()[1]))
                OWN_PIDS.add(int(line.split()[1]))
            elif line == "ready":
                # Killed midway: parent and children, wherever they are (one child holds the
                # counter's lock, the queues and the barrier have been used).
                assert len(pids) == 3
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                os.killpg(p.pid, signal.SIGKILL)
                break
            elif line == "done":
                break
        try:
            _, err = p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            _, err = p.communicate(timeout=10)
        expected = -signal.SIGKILL if mode == "kill" else 0
        assert p.returncode == expected and last == ("ready" if mode == "kill" else "done"), (
            "program ended with %r after %r; stderr:\n%s" % (p.returncode, last, err.decode(errors="replace")))
        assert len(pids) == 3
        _wait_gone(pids)  # children of every start method are gone (the kernel freed their memory)
        left = _made_by(_entries() - before, pids)
        control_entry = "mpx." + control
        assert control_entry in left, "the check must see the named object the program left"
        assert left == {control_entry}, "objects made without a name were left: %s" % sorted(left - {control_entry})
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate(timeout=10)
        try:
            os.unlink(os.path.join(SHM_DIR, "mpx." + control))
        except FileNotFoundError:
            pass
