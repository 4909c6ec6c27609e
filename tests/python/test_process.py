"""mpx.Process and friends with real processes, for each start method (fork, spawn,
forkserver): arguments in, exit codes out, join timeouts, terminate and kill, identity,
subclasses, daemons killed with their parent (checked from outside), sentinels, close(),
active_children, misuse errors, pickling errors, the start-method API, exit-time behaviour, and
the same script run with `import mpx as multiprocessing` and with the real multiprocessing.

Every wait is bounded; an autouse fixture kills leftover children and checks that no zombie
child of this process remains.
"""

import errno
import gc
import hashlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import re
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import mpx
import test_process_targets as T
from conftest import child_env

METHODS = ["fork", "spawn", "forkserver"]
TIMEOUT = 60  # seconds for any join: a hang is a failure, never a stuck suite
HERE = os.path.dirname(os.path.abspath(__file__))


def script_env():
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([HERE, env["PYTHONPATH"]])
    return env


@pytest.fixture
def run_script(tmp_path):
    """``run_script(code, *args, timeout=60, check=True)``: writes ``code`` (dedented) to a
    file and runs it with Python (a real main module, as 'spawn' needs to re-import it), with
    this checkout's mpx and the test targets importable. Returns a ChildResult."""
    from conftest import OWN_PIDS, ChildResult

    counter = [0]

    def run(code, *args, timeout=TIMEOUT, check=True):
        counter[0] += 1
        path = tmp_path / ("script_%d.py" % counter[0])
        path.write_text(textwrap.dedent(code))
        p = subprocess.Popen(
            [sys.executable, str(path)] + [str(a) for a in args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=script_env(),
        )
        OWN_PIDS.add(p.pid)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate(timeout=10)
            pytest.fail("script timed out after %ss; stderr:\n%s" % (timeout, err.decode(errors="replace")))
        res = ChildResult(p.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and p.returncode != 0:
            pytest.fail("script exited with %r; stderr:\n%s" % (p.returncode, res.stderr))
        return res

    return run


@pytest.fixture
def start_script(tmp_path):
    """``start_script(code, *args)``: a running script (text-mode stdout pipe); killed at the end."""
    from conftest import OWN_PIDS

    procs = []

    def start(code, *args):
        path = tmp_path / ("bg_%d.py" % len(procs))
        path.write_text(textwrap.dedent(code))
        p = subprocess.Popen(
            [sys.executable, str(path)] + [str(a) for a in args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=script_env(), text=True,
        )
        OWN_PIDS.add(p.pid)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        try:
            p.communicate(timeout=10)
        except Exception:
            pass


def proc_state(pid):
    """The state letter of a process ('R', 'S', 'Z', ...) or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2]


def is_gone(pid):
    return proc_state(pid) in (None, "Z", "X")


def wait_until(cond, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def zombie_children():
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                data = f.read()
        except OSError:
            continue
        tail = data[data.rindex(")") + 2:].split()
        if tail[0] == "Z" and int(tail[1]) == me:
            found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def no_leftover_children():
    yield
    for p in mpx.active_children():
        p.kill()
        p.join(TIMEOUT)
    # Handles dropped while their child ran go to the library's reaper (it polls every 100 ms).
    assert wait_until(lambda: not zombie_children(), timeout=10), "zombie children: %s" % zombie_children()


@pytest.fixture(params=METHODS)
def ctx(request):
    return mpx.get_context(request.param)


def started(ctx, target, *args, **kw):
    p = ctx.Process(target=target, args=args, **kw)
    p.start()
    return p


def joined(p, timeout=TIMEOUT):
    p.join(timeout)
    assert p.exitcode is not None, "%r did not end within %ss" % (p, timeout)
    return p.exitcode


# --------------------------------------------------------------------------------------------
# Arguments and exit codes


def test_args_and_kwargs_reach_the_child(ctx):
    p = ctx.Process(target=T.exit_sum, args=(3, 4), kwargs={"c": 5})
    p.start()
    assert joined(p) == 12


@pytest.mark.parametrize(
    "target,args,code",
    [
        (T.noop, (), 0),
        (T.exit_with, (7,), 7),
        (T.exit_with, (None,), 0),
        (T.exit_with, ("a message",), 1),
        (T.raise_value_error, (), 1),
        (T.kill_self, (signal.SIGTERM,), -signal.SIGTERM),
        (T.kill_self, (signal.SIGKILL,), -signal.SIGKILL),
    ],
    ids=["return", "exit7", "exit-none", "exit-str", "exception", "sigterm", "sigkill"],
)
def test_exit_codes(ctx, target, args, code):
    p = started(ctx, target, *args)
    assert joined(p) == code
    assert p.exitcode == code  # stable on repeated reads
    assert not p.is_alive()


def test_uncaught_exception_prints_traceback_and_exits_1(run_script):
    # In a subprocess, so that the children's stderr (the fork server's too) is captured.
    r = run_script(
        """
        import sys, mpx
        import test_process_targets as T
        if __name__ == "__main__":
            for m in ("fork", "spawn", "forkserver"):
                p = mpx.get_context(m).Process(target=T.raise_value_error, name="bad-" + m)
                p.start(); p.join(60)
                print(m, p.exitcode, flush=True)
                sys.stderr.flush()
        """,
        check=True,
    )
    assert r.stdout.split() == ["fork", "1", "spawn", "1", "forkserver", "1"]
    for m in ("fork", "spawn", "forkserver"):
        assert "Process bad-%s:" % m in r.stderr
    assert r.stderr.count("ValueError: boom in the child") == 3
    assert r.stderr.count("Traceback (most recent call last)") == 3


def test_exit_with_string_prints_it(run_script):
    r = run_script(
        """
        import mpx
        import test_process_targets as T
        if __name__ == "__main__":
            for m in ("fork", "spawn", "forkserver"):
                p = mpx.get_context(m).Process(target=T.exit_with, args=("bye from " + m,))
                p.start(); p.join(60); print(p.exitcode, flush=True)
        """
    )
    assert r.stdout.split() == ["1", "1", "1"]
    for m in ("fork", "spawn", "forkserver"):
        assert "bye from %s\n" % m in r.stderr


@pytest.fixture
def ready_file(tmp_path):
    """A path a child creates once it is ready; ``wait_ready(path)`` waits for it (bounded)."""
    return str(tmp_path / "ready")


def wait_ready(path):
    assert wait_until(lambda: os.path.exists(path), timeout=TIMEOUT), "the child never got ready"


def test_sigterm_handler_in_child_decides_the_code(ctx, ready_file):
    p = started(ctx, T.exit_on_sigterm, ready_file)
    wait_ready(ready_file)
    p.terminate()
    assert joined(p) == 3


# --------------------------------------------------------------------------------------------
# Waiting and signals


def test_join_timeout_then_terminate(ctx):
    p = started(ctx, T.sleep_long)
    t = time.monotonic()
    assert p.join(0.3) is None
    elapsed = time.monotonic() - t
    assert 0.25 <= elapsed < 10
    assert p.is_alive()
    assert p.exitcode is None
    assert p.join(0) is None and p.is_alive()
    p.terminate()
    assert joined(p) == -signal.SIGTERM
    assert not p.is_alive()
    p.terminate()  # on an ended process: nothing, as in the standard library
    p.kill()
    assert p.exitcode == -signal.SIGTERM


def test_kill(ctx):
    p = started(ctx, T.sleep_long)
    p.kill()
    assert joined(p) == -signal.SIGKILL


def test_interrupt_raises_keyboardinterrupt_in_child(ctx, ready_file):
    p = started(ctx, T.sleep_when_ready, ready_file)
    wait_ready(ready_file)
    p.interrupt()
    assert joined(p) == 1  # an uncaught KeyboardInterrupt


def test_join_is_interruptible_by_signal_handlers(ctx):
    class Alarm(Exception):
        pass

    def on_alarm(signum, frame):
        raise Alarm()

    old = signal.signal(signal.SIGALRM, on_alarm)
    p = started(ctx, T.sleep_long)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        t = time.monotonic()
        with pytest.raises(Alarm):
            p.join()  # no timeout: only the handler can end this wait early
        assert time.monotonic() - t < 20
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        p.kill()
        p.join(TIMEOUT)
    assert p.exitcode == -signal.SIGKILL


def test_sentinel_with_poll_and_connection_wait(ctx):
    a = started(ctx, T.sleep_long)
    b = started(ctx, T.sleep_long)
    assert isinstance(a.sentinel, int) and a.sentinel != b.sentinel
    poller = select.poll()
    poller.register(a.sentinel, select.POLLIN)
    assert poller.poll(0) == []
    assert multiprocessing.connection.wait([a.sentinel, b.sentinel], timeout=0.05) == []
    a.terminate()
    assert poller.poll(TIMEOUT * 1000) != []
    assert multiprocessing.connection.wait([a.sentinel, b.sentinel], timeout=TIMEOUT) == [a.sentinel]
    assert a.exitcode == -signal.SIGTERM  # readable sentinel: the exit code is there at once
    b.kill()
    assert multiprocessing.connection.wait([b.sentinel], timeout=TIMEOUT) == [b.sentinel]
    assert joined(b) == -signal.SIGKILL
    # select() works too, and stays readable after the process was joined.
    r, _, _ = select.select([a.sentinel, b.sentinel], [], [], 0)
    assert sorted(r) == sorted([a.sentinel, b.sentinel])


def test_no_zombies_without_join(ctx):
    # Children nobody joins: reaped when active_children() looks (as in the standard library)...
    pids = [started(ctx, T.noop).pid for _ in range(3)]
    assert wait_until(lambda: not mpx.active_children(), timeout=TIMEOUT)
    for pid in pids:
        assert proc_state(pid) is None or ctx.get_start_method() == "forkserver" and is_gone(pid)
    # ... and executables whose handle is dropped while they run: by the library's reaper.
    e = mpx.spawn_executable(["sleep", "0.2"])
    pid = e.pid
    del e
    gc.collect()
    assert wait_until(lambda: proc_state(pid) is None, timeout=10), "pid %d left a zombie" % pid


def test_active_children(ctx):
    assert mpx.active_children() == []
    a = started(ctx, T.sleep_long)
    b = started(ctx, T.exit_with, 0)
    assert a in mpx.active_children()
    joined(b)
    assert mpx.active_children() == [a]
    a.kill()
    assert wait_until(lambda: not mpx.active_children(), timeout=TIMEOUT)  # joins finished ones
    assert a.exitcode == -signal.SIGKILL


# --------------------------------------------------------------------------------------------
# Identity


def test_main_process_identity():
    me = mpx.current_process()
    assert me.name == "MainProcess"
    assert me.pid == me.ident == os.getpid()
    assert me.is_alive()
    assert mpx.parent_process() is None
    assert mpx.current_process() is me
    assert "MainProcess" in repr(me) and "started" in repr(me)
    assert mpx.cpu_count() == os.cpu_count()


def test_child_knows_its_name_and_parent(ctx):
    p = ctx.Process(target=T.check_identity, args=("worker-7", os.getpid(), "MainProcess"), name="worker-7")
    p.start()
    assert p.name == "worker-7"
    assert joined(p) == 0


def test_default_names(ctx):
    cls = type(ctx.Process(target=T.noop)).__name__
    p = ctx.Process(target=T.noop)
    m = re.fullmatch(r"%s-(\d+)" % cls, p.name)
    assert m, p.name
    q = ctx.Process(target=T.noop)
    assert q.name == "%s-%d" % (cls, int(m.group(1)) + 1)
    p.name = "renamed"
    assert p.name == "renamed"
    with pytest.raises(AssertionError):
        p.name = 5
    # The child sees the default name too.
    box = []
    r = ctx.Process(target=T.check_identity_box, args=(box, os.getpid(), "MainProcess"))
    box.append(r.name)  # before start(): the arguments are copied or pickled at start
    r.start()
    assert joined(r) == 0


def test_grandchild_name_and_join(ctx):
    p = started(ctx, T.start_grandchild)
    assert joined(p) == 0


def test_child_start_method(ctx):
    method = ctx.get_start_method()
    p = started(ctx, T.report_start_method, method)
    assert joined(p) == 0


def test_child_stdin_is_devnull(ctx):
    assert joined(started(ctx, T.read_stdin)) == 0


def test_parent_process_join_in_child(ctx, start_script):
    # A parent that exits at once; its child waits for it through parent_process().join().
    # The grandchild's exit code comes back through a file.
    out = "/tmp/mpx-test-parent-join-%d-%s" % (os.getpid(), ctx.get_start_method())
    code = """
        import sys, os, mpx
        import test_process_targets as T
        def child(path):
            parent = mpx.parent_process()
            parent.join(30)
            with open(path, "w") as f:
                f.write("gone" if not parent.is_alive() else "alive")
        if __name__ == "__main__":
            p = mpx.get_context(sys.argv[1]).Process(target=child, args=(sys.argv[2],))
            p.start()
            print(p.pid, flush=True)
            os._exit(0)  # no atexit join: the child outlives us
        """
    try:
        proc = start_script(code, ctx.get_start_method(), out)
        pid = int(proc.stdout.readline())
        proc.wait(TIMEOUT)
        assert wait_until(lambda: os.path.exists(out) and open(out).read(), timeout=TIMEOUT)
        assert open(out).read() == "gone"
        assert wait_until(lambda: is_gone(pid), timeout=TIMEOUT)
    finally:
        if os.path.exists(out):
            os.unlink(out)


# --------------------------------------------------------------------------------------------
# Subclasses, daemons


def test_subclass_with_run(ctx):
    cls = T.WORKERS[ctx.get_start_method()]
    w = cls(9)
    assert w.name.startswith(cls.__name__ + "-")
    w.start()
    assert joined(w) == 9


def test_default_context_subclass():
    w = T.Worker(4, name="sub")
    w.start()
    assert joined(w) == 4


def test_daemon_flag(ctx):
    p = ctx.Process(target=T.check_daemon_flag, args=(True,), daemon=True)
    assert p.daemon
    p.start()
    assert "daemon" in repr(p)
    assert joined(p) == 0
    q = ctx.Process(target=T.check_daemon_flag, args=(False,))
    assert not q.daemon
    q.daemon = True
    q.daemon = False
    q.start()
    with pytest.raises(AssertionError):
        q.daemon = True
    assert joined(q) == 0


DAEMON_PARENT = """
import sys, time, mpx
import test_process_targets as T
if __name__ == "__main__":
    ctx = mpx.get_context(sys.argv[1])
    d = ctx.Process(target=T.sleep_long, args=(120,), daemon=True)
    n = ctx.Process(target=T.sleep_long, args=(120,))
    d.start(); n.start()
    time.sleep(1.0 if sys.argv[1] != "spawn" else 2.0)  # both children up and running
    print(d.pid, n.pid, flush=True)
    time.sleep(120)
"""


def test_daemon_dies_when_parent_is_sigkilled(ctx, start_script):
    parent = start_script(DAEMON_PARENT, ctx.get_start_method())
    line = ""
    r, _, _ = select.select([parent.stdout], [], [], TIMEOUT)
    if r:
        line = parent.stdout.readline()
    assert line, "the parent did not report its children"
    daemon_pid, normal_pid = map(int, line.split())
    try:
        assert not is_gone(daemon_pid) and not is_gone(normal_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(TIMEOUT)
        assert wait_until(lambda: is_gone(daemon_pid), timeout=10), "daemon %d outlived its parent" % daemon_pid
        time.sleep(0.3)
        assert not is_gone(normal_pid), "the non-daemon child died with its parent"
    finally:
        for pid in (daemon_pid, normal_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert wait_until(lambda: is_gone(normal_pid), timeout=10)


EXIT_PARENT = """
import sys, time, mpx
import test_process_targets as T

def slow_then_mark(path):
    time.sleep(1.0)
    with open(path, "w") as f:
        f.write("done")

if __name__ == "__main__":
    ctx = mpx.get_context(sys.argv[1])
    d = ctx.Process(target=T.sleep_long, args=(120,), daemon=True)
    n = ctx.Process(target=slow_then_mark, args=(sys.argv[2],))
    d.start(); n.start()
    print(d.pid, n.pid, flush=True)
    # Leaving main without join: the daemon is terminated, the other child joined.
"""


def test_exit_terminates_daemons_and_joins_others(ctx, run_script):
    mark = "/tmp/mpx-test-exit-%d-%s" % (os.getpid(), ctx.get_start_method())
    try:
        t = time.monotonic()
        r = run_script(EXIT_PARENT, ctx.get_start_method(), mark, timeout=TIMEOUT)
        elapsed = time.monotonic() - t
        daemon_pid, normal_pid = map(int, r.stdout.split())
        assert open(mark).read() == "done"  # the parent waited for it
        assert elapsed >= 1.0
        assert wait_until(lambda: is_gone(daemon_pid), timeout=5)
        assert is_gone(normal_pid)
    finally:
        if os.path.exists(mark):
            os.unlink(mark)


def test_daemon_may_not_have_children(run_script):
    r = run_script(
        """
        import sys, mpx
        def child():
            try:
                mpx.Process(target=print).start()
            except AssertionError as e:
                sys.exit(0 if "daemonic processes are not allowed to have children" in str(e) else 2)
            sys.exit(3)
        if __name__ == "__main__":
            for m in ("fork", "spawn", "forkserver"):
                p = mpx.get_context(m).Process(target=child, daemon=True)
                p.start(); p.join(60); print(p.exitcode)
        """
    )
    assert r.stdout.split() == ["0", "0", "0"]


# --------------------------------------------------------------------------------------------
# close(), repr, misuse


def test_close(ctx):
    p = started(ctx, T.sleep_long)
    with pytest.raises(ValueError, match="still running"):
        p.close()
    p.kill()
    joined(p)
    p.close()
    p.close()  # twice is fine
    assert "closed" in repr(p)
    for attr in ("exitcode", "pid", "ident", "sentinel"):
        with pytest.raises(ValueError, match="closed"):
            getattr(p, attr)
    for call in (p.join, p.is_alive, p.terminate, p.kill, p.start):
        with pytest.raises(ValueError, match="closed"):
            call()
    assert p not in mpx.active_children()


def test_close_before_start():
    p = mpx.Process(target=T.noop)
    p.close()
    with pytest.raises(ValueError):
        p.start()


def test_repr_states(ctx):
    p = ctx.Process(target=T.sleep_long, name="r1")
    assert re.fullmatch(r"<\w+ name='r1' parent=%d initial>" % os.getpid(), repr(p))
    p.start()
    assert re.fullmatch(r"<\w+ name='r1' pid=%d parent=%d started>" % (p.pid, os.getpid()), repr(p))
    p.terminate()
    joined(p)
    assert repr(p).endswith("stopped exitcode=SIGTERM>")
    q = started(ctx, T.exit_with, 3)
    joined(q)
    assert repr(q).endswith("stopped exitcode=3>")


def test_misuse_errors(ctx):
    p = ctx.Process(target=T.sleep_long)
    assert p.pid is None and p.exitcode is None and not p.is_alive()
    with pytest.raises(AssertionError, match="can only join a started process"):
        p.join()
    with pytest.raises(AssertionError):
        p.terminate()
    with pytest.raises(ValueError, match="not started"):
        p.sentinel
    p.start()
    with pytest.raises(AssertionError, match="cannot start a process twice"):
        p.start()
    with pytest.raises(AssertionError, match="process has already started"):
        p.daemon = True
    p.kill()
    joined(p)
    with pytest.raises(AssertionError, match="cannot start a process twice"):
        p.start()
    with pytest.raises(AssertionError, match="group argument must be None"):
        ctx.Process(group=1, target=T.noop)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_unpicklable_target_fails_in_parent_at_start(method):
    ctx = mpx.get_context(method)

    def local_function():
        pass

    for target in (lambda: None, local_function):
        p = ctx.Process(target=target)
        before = set(_children_pids())
        with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
            p.start()
        assert p.pid is None and p._popen is None
        assert p not in mpx.active_children()
        # No child was started for it (the fork server, started earlier, is not counted).
        assert set(_children_pids()) - before == set()
    # Unpicklable arguments too.
    p = ctx.Process(target=T.exit_with, args=(lambda: 1,))
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        p.start()


def test_unpicklable_target_is_fine_with_fork():
    p = mpx.get_context("fork").Process(target=lambda: sys.exit(6))
    p.start()
    assert joined(p) == 6


def _children_pids():
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    data = f.read()
            except OSError:
                continue
            if int(data[data.rindex(")") + 2:].split()[1]) == me:
                out.append(int(entry))
    return out


def test_join_from_another_process_is_refused(ctx):
    p = started(ctx, T.sleep_long)
    try:
        pid = os.fork()
        if pid == 0:
            try:
                p.join(0)
            except AssertionError as e:
                os._exit(0 if "can only join a child process" in str(e) else 2)
            os._exit(3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        p.kill()
        joined(p)


# --------------------------------------------------------------------------------------------
# Start methods


def test_start_method_api(run_script):
    r = run_script(
        """
        import multiprocessing, mpx
        import test_process_targets as T
        out = []
        out.append(mpx.get_all_start_methods())
        out.append(mpx.get_start_method(allow_none=True))
        mpx.set_start_method("spawn")
        out.append(mpx.get_start_method())
        try:
            mpx.set_start_method("fork")
        except RuntimeError as e:
            out.append(str(e))
        mpx.set_start_method("forkserver", force=True)
        out.append(mpx.get_start_method())
        try:
            mpx.get_context("nope")
        except ValueError as e:
            out.append(str(e))
        ctx = mpx.get_context("spawn")
        out.append((ctx.get_start_method(), type(ctx.Process(target=T.noop)).__name__))
        try:
            ctx.set_start_method("fork")
        except ValueError as e:
            out.append(str(e))
        if __name__ == "__main__":
            p = mpx.Process(target=T.report_start_method, args=("forkserver",))
            p.start(); p.join(60); out.append(p.exitcode)
            # The standard library's own setting is left alone.
            out.append(multiprocessing.get_start_method(allow_none=True))
            mpx.set_start_method(None, force=True)
            out.append(mpx.get_start_method(allow_none=True))
            out.append(mpx.get_start_method())
            print(repr(out))
        """
    )
    assert eval(r.stdout) == [
        ["fork", "spawn", "forkserver"],
        None,
        "spawn",
        "context has already been set",
        "forkserver",
        "cannot find context for 'nope'",
        ("spawn", "SpawnProcess"),
        "cannot set start method of concrete context",
        0,
        None,
        None,
        "fork",
    ]


def test_stdlib_start_method_untouched_by_spawn():
    assert multiprocessing.get_start_method(allow_none=True) in (None, "fork")
    before = multiprocessing.get_start_method(allow_none=True)
    p = started(mpx.get_context("spawn"), T.noop)
    joined(p)
    assert multiprocessing.get_start_method(allow_none=True) == before


def test_large_arguments(ctx):
    # Larger than a pipe's default buffer (spawn) and than one socket write (forkserver).
    blob = os.urandom(3 << 20)
    q = ctx.Process(target=T.check_blob, args=(blob, hashlib.sha256(blob).hexdigest()))
    q.start()
    assert joined(q) == 0


# --------------------------------------------------------------------------------------------
# Compatibility: the same script with mpx and with multiprocessing


COMPAT_SCRIPT = r"""
import sys, os, signal, time
if sys.argv[1] == "mpx":
    import mpx as multiprocessing
else:
    import multiprocessing

def work(n, label="x"):
    me = multiprocessing.current_process()
    print("child", me.name, multiprocessing.parent_process().name, n, label, flush=True)
    sys.exit(n)

def fail():
    raise RuntimeError("failing on purpose")

def sleepy():
    time.sleep(60)

class Sub(multiprocessing.Process):
    def __init__(self, tag):
        super().__init__()
        self.tag = tag
    def run(self):
        print("sub", self.tag, self.name, multiprocessing.current_process().name, flush=True)

if __name__ == "__main__":
    print("main", multiprocessing.current_process().name, multiprocessing.parent_process())
    print("methods", multiprocessing.get_all_start_methods(), multiprocessing.get_start_method(allow_none=True))
    for method in ("fork", "spawn", "forkserver"):
        ctx = multiprocessing.get_context(method)
        p = ctx.Process(target=work, args=(3,), kwargs={"label": method})
        print("before", p.name, p.daemon, p.exitcode, p.is_alive(), p.pid)
        p.start()
        p.join()
        print("after", p.name, p.exitcode, p.is_alive(), type(p).__name__)
        q = ctx.Process(target=fail, name="failing", daemon=True)
        q.start(); q.join(); print("fail", q.exitcode, q.daemon)
        s = ctx.Process(target=sleepy)
        s.start(); s.join(0.1); print("timeout", s.exitcode, s.is_alive(), s in multiprocessing.active_children())
        s.terminate(); s.join(); print("terminated", s.exitcode, multiprocessing.active_children())
        s.close()
        try:
            s.exitcode
        except ValueError as e:
            print("closed", e)
    sub = Sub("t")
    sub.start(); sub.join(); print("sub exit", sub.exitcode, sub.name)
    print("default", multiprocessing.get_start_method())
    try:
        multiprocessing.set_start_method("spawn")
    except RuntimeError as e:
        print("set", e)
"""


def _normalize(text):
    # Process names carry a global counter in both libraries; pids differ.
    return re.sub(r"\b(\w*Process|Sub)-\d+", r"\1-N", text)


def test_same_results_as_multiprocessing(run_script):
    ours = run_script(COMPAT_SCRIPT, "mpx", timeout=120)
    theirs = run_script(COMPAT_SCRIPT, "multiprocessing", timeout=120)
    assert _normalize(ours.stdout) == _normalize(theirs.stdout)
    assert ours.stdout.count("child ") == 3
    assert "RuntimeError: failing on purpose" in ours.stderr
    assert ours.stderr.count("Process failing:") == theirs.stderr.count("Process failing:") == 3


UNGUARDED_SCRIPT = r"""
import sys
if sys.argv[1] == "mpx":
    import mpx as multiprocessing
else:
    import multiprocessing

def f():
    pass

ctx = multiprocessing.get_context("spawn")
p = ctx.Process(target=f)
p.start()
p.join()
print("exitcode", p.exitcode, flush=True)
"""


def test_main_guard_rules_as_multiprocessing(run_script):
    # No `if __name__ == "__main__"` guard: the spawned child re-imports the main module,
    # which tries to start a process during bootstrapping: a RuntimeError in the child.
    ours = run_script(UNGUARDED_SCRIPT, "mpx", timeout=120)
    theirs = run_script(UNGUARDED_SCRIPT, "multiprocessing", timeout=120)
    assert ours.stdout == theirs.stdout == "exitcode 1\n"
    for r in (ours, theirs):
        assert "An attempt has been made to start a new process before the" in r.stderr


def test_same_start_method_error_messages():
    assert mpx.get_context("fork").get_start_method() == multiprocessing.get_context("fork").get_start_method()
    with pytest.raises(ValueError) as a:
        mpx.get_context("bogus")
    with pytest.raises(ValueError) as b:
        multiprocessing.get_context("bogus")
    assert str(a.value) == str(b.value)


# --------------------------------------------------------------------------------------------
# Executables


def test_spawn_executable_exit_codes_and_signals():
    p = mpx.spawn_executable(["sh", "-c", "exit 7"])
    assert isinstance(p, mpx.ExecProcess) and p.pid > 0
    p.join(TIMEOUT)
    assert p.exitcode == 7 and not p.is_alive()
    s = mpx.spawn_executable(["sleep", "60"], name="sleeper")
    assert s.name == "sleeper"
    s.join(0.1)
    assert s.is_alive() and s.exitcode is None
    assert multiprocessing.connection.wait([s.sentinel], timeout=0) == []
    with pytest.raises(ValueError, match="still running"):
        s.close()
    s.terminate()
    assert multiprocessing.connection.wait([s.sentinel], timeout=TIMEOUT) == [s.sentinel]
    s.join(TIMEOUT)
    assert s.exitcode == -signal.SIGTERM
    k = mpx.spawn_executable(["sleep", "60"])
    k.kill()
    k.join(TIMEOUT)
    assert k.exitcode == -signal.SIGKILL
    s.close()
    with pytest.raises(ValueError):
        s.exitcode


def test_spawn_executable_missing_program():
    with pytest.raises(FileNotFoundError) as e:
        mpx.spawn_executable(["mpx-no-such-program-xyz", "arg"])
    assert e.value.errno == errno.ENOENT
    assert "mpx-no-such-program-xyz" in str(e.value)
    with pytest.raises(FileNotFoundError):
        mpx.spawn_executable(["/nonexistent/dir/prog"])


def test_spawn_executable_not_executable(tmp_path):
    f = tmp_path / "data.txt"
    f.write_text("not a program")
    with pytest.raises(PermissionError):
        mpx.spawn_executable([str(f)])


def test_spawn_executable_options(tmp_path):
    r, w = os.pipe()
    try:
        keep_r, keep_w = os.pipe()
        p = mpx.spawn_executable(
            ["sh", "-c", 'printf "%s|%s|%s" "$MPX_T_VAR" "$(pwd)" "$HOME"; echo kept > /proc/self/fd/' + str(keep_w)],
            env={"MPX_T_VAR": "v1", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            cwd=str(tmp_path),
            stdout=w,
            stdin="null",
            pass_fds=[keep_w],
        )
        os.close(w)
        w = -1
        os.close(keep_w)
        p.join(TIMEOUT)
        assert p.exitcode == 0
        out = b""
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            out += chunk
        assert out.decode() == "v1|%s|" % tmp_path  # HOME not inherited: env replaced
        assert os.read(keep_r, 100) == b"kept\n"
        os.close(keep_r)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_spawn_executable_bad_arguments():
    with pytest.raises(ValueError):
        mpx.spawn_executable([])
    with pytest.raises(ValueError):
        mpx.spawn_executable(["sh", "a\0b"])
    with pytest.raises(TypeError):
        mpx.spawn_executable(["true"], stdout=1.5)
    with pytest.raises(ValueError):
        mpx.spawn_executable(["true"], pass_fds=[-2])
    with pytest.raises(ValueError):
        mpx.spawn_executable(["true"], env={"A=B": "x"})


def test_spawn_executable_python_child_knows_its_name():
    p = mpx.spawn_executable(
        [sys.executable, "-c", "import sys, mpx; sys.exit(0 if mpx.current_process().name == 'py-worker' else 9)"],
        name="py-worker",
        env=child_env(),
    )
    p.join(TIMEOUT)
    assert p.exitcode == 0


def test_spawn_executable_daemon_dies_with_parent(start_script):
    parent = start_script(
        """
        import time, mpx
        d = mpx.spawn_executable(["sleep", "120"], daemon=True)
        n = mpx.spawn_executable(["sleep", "120"])
        time.sleep(0.3)
        print(d.pid, n.pid, flush=True)
        time.sleep(120)
        """
    )
    r, _, _ = select.select([parent.stdout], [], [], TIMEOUT)
    assert r
    dpid, npid = map(int, parent.stdout.readline().split())
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait(TIMEOUT)
        assert wait_until(lambda: is_gone(dpid), timeout=10)
        assert not is_gone(npid)
    finally:
        for pid in (dpid, npid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_spawn_executable_daemon_terminated_at_exit(run_script):
    r = run_script(
        """
        import mpx
        d = mpx.spawn_executable(["sleep", "120"], daemon=True)
        print(d.pid, flush=True)
        """
    )
    pid = int(r.stdout)
    assert wait_until(lambda: is_gone(pid), timeout=10)


# --------------------------------------------------------------------------------------------
# Standard-library objects in mpx children


def test_stdlib_queue_and_pipe_in_mpx_children(ctx):
    method = ctx.get_start_method()
    std = multiprocessing.get_context("fork" if method == "fork" else "spawn")
    q = std.Queue()
    p = ctx.Process(target=T.put_pid, args=(q,))
    a, b = std.Pipe()
    s = ctx.Process(target=T.send_and_close, args=(b, "through a pipe"))
    p.start()
    s.start()
    b.close()
    assert q.get(timeout=TIMEOUT) == p.pid  # flushed by the child's exit handling
    assert a.poll(TIMEOUT) and a.recv() == "through a pipe"
    assert joined(p) == 0 and joined(s) == 0
    q.close()
    q.join_thread()
    a.close()
