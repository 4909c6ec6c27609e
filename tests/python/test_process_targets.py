"""Targets for the process tests (tests/python/test_process.py).

They live in their own light module (no pytest import) because children started by 'spawn'
and 'forkserver' import the module of their target by name; importing the test module itself
would make every such child load pytest. No tests here.

Results come back as exit codes, so the tests need no other channel: a check that fails exits
with a distinct code.
"""

import ctypes
import os
import signal
import sys
import time

import mpx


def noop():
    pass


def exit_sum(a, b, c=0):
    sys.exit(a + b + c)


def check_blob(blob, digest):
    import hashlib

    sys.exit(0 if hashlib.sha256(blob).hexdigest() == digest else 1)


def exit_with(code):
    sys.exit(code)


def raise_value_error():
    raise ValueError("boom in the child")


def kill_self(sig):
    os.kill(os.getpid(), sig)
    time.sleep(30)


def sleep_long(seconds=60):
    time.sleep(seconds)


def check_identity(expected_name, parent_pid, parent_name):
    """0 if the child knows its name (in Python and in C), its parent and its start."""
    me = mpx.current_process()
    if me.name != expected_name:
        return sys.exit(10)
    if me.pid != os.getpid() or not me.is_alive():
        return sys.exit(11)
    parent = mpx.parent_process()
    if parent is None or parent.pid != parent_pid or parent.name != parent_name:
        return sys.exit(12)
    if not parent.is_alive():
        return sys.exit(13)
    buf = ctypes.create_string_buffer(256)
    from mpx._lib import lib

    if lib.mpx_current_name(buf, len(buf), None) != 0 or buf.value.decode() != expected_name:
        return sys.exit(14)
    if lib.mpx_parent_pid() != parent_pid:
        return sys.exit(15)
    # The standard library's view agrees (for code mixing the two).
    import multiprocessing

    if multiprocessing.current_process().name != expected_name:
        return sys.exit(16)
    sys.exit(0)


def start_grandchild():
    """Starts a child of the child: its default name is "<Class>-<n>:1" (stdlib style)."""
    me = mpx.current_process()
    p = mpx.Process(target=exit_with, args=(5,))
    expected = "Process-%d:1" % me._identity[-1]
    if p.name != expected:
        sys.exit(20)
    p.start()
    p.join(30)
    if p.exitcode != 5:
        sys.exit(21)
    if mpx.active_children():
        sys.exit(22)
    sys.exit(0)


def report_start_method(expected):
    sys.exit(0 if mpx.get_start_method() == expected else 30)


def check_daemon_flag(expected):
    sys.exit(0 if mpx.current_process().daemon == expected else 40)


def read_stdin():
    # As in the standard library, a child's stdin is /dev/null: reading gives EOF at once.
    sys.exit(0 if sys.stdin.read() == "" else 50)


def wait_parent_then_exit():
    """Waits (bounded) for the parent to end, through parent_process().join()."""
    parent = mpx.parent_process()
    parent.join(30)
    sys.exit(0 if not parent.is_alive() else 60)


class Worker(mpx.Process):
    """A subclass overriding run(): exits with the value given at construction."""

    def __init__(self, value, **kw):
        super().__init__(**kw)
        self.value = value

    def run(self):
        if mpx.current_process() is not self:
            sys.exit(70)
        sys.exit(self.value)


def _subclass_for(method):
    base = mpx.get_context(method).Process

    class W(base):
        def __init__(self, value, **kw):
            base.__init__(self, **kw)
            self.value = value

        def run(self):
            if mpx.current_process() is not self:
                sys.exit(70)
            sys.exit(self.value)

    W.__name__ = W.__qualname__ = "Worker_" + method
    return W


# One subclass per start method, at module level so that they pickle by reference.
WORKERS = {}
for _m in ("fork", "spawn", "forkserver"):
    WORKERS[_m] = globals()["Worker_" + _m] = _subclass_for(_m)


def handler_exit(signum, frame):
    sys.exit(3)


def mark_ready(path):
    with open(path, "w") as f:
        f.write("ready")


def exit_on_sigterm(ready_path):
    signal.signal(signal.SIGTERM, handler_exit)
    mark_ready(ready_path)
    time.sleep(60)


def sleep_when_ready(ready_path):
    mark_ready(ready_path)
    time.sleep(60)


def check_identity_box(box, parent_pid, parent_name):
    """check_identity with the expected name in a list filled after the Process was made."""
    check_identity(box[0], parent_pid, parent_name)


def put_pid(q):
    q.put(os.getpid())


def send_and_close(conn, message):
    conn.send(message)
    conn.close()
