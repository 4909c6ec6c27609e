"""Processes with the API of :mod:`multiprocessing`: ``Process``, ``current_process()``,
``parent_process()``, ``active_children()``, and ``spawn_executable()`` for programs in any
language.

A started process is an ``mpx_process`` handle of the C library: join with timeout, exit codes
(the status, or minus the signal number), signals and the sentinel (a pidfd, or for a fork-server
child its status socket) all come from it, and a handle dropped while its child runs hands the
child to the library's reaper, so no child is left a zombie.

How a child starts is its context's business (mpx.context): 'fork' forks here with os.fork and
adopts the child into an mpx_process; 'spawn' (mpx._spawn) runs a new interpreter with mpx_spawn;
'forkserver' (mpx._forkserver) asks a Python fork server through mpx_start. The child runs
:meth:`BaseProcess._bootstrap`, which follows the standard library's: the same exit codes, the
same traceback on an uncaught exception, the same state reset.

What the launchers share is here (the handle, start options, the default context's start
method): of mpx this module imports only the library, and mpx._spawn, mpx._forkserver and
mpx.context are above it.
"""

import atexit
import itertools
import math
import os
import select
import signal
import sys
import threading
import time
from ctypes import byref, c_bool, c_char_p, c_int
from multiprocessing import process as _std_process

from . import errors
from ._lib import check, lib, proc_opts_p, process_p

__all__ = [
    "BaseProcess",
    "ExecProcess",
    "active_children",
    "current_process",
    "parent_process",
    "spawn_executable",
]

# Start methods and standard-stream modes (include/mpx.h).
MPX_START_FORK = 0
MPX_START_SPAWN = 1
MPX_START_FORKSERVER = 2
MPX_STDIO_INHERIT = 0
MPX_STDIO_NULL = 1
MPX_STDIO_FD = 2

# Environment variables that give an executable started by mpx its identity (src/process/current.rs).
ENV_NAME = "MPX_PROCESS_NAME"
ENV_PARENT = "MPX_PARENT_PID"


def _c_name(name):
    """A process name as C takes it (C strings cannot hold NUL; the Python name stays exact)."""
    return name.replace("\0", "?").encode("utf-8", "surrogateescape")


def _flush_std_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass


class _Options:
    """An mpx_proc_opts for one start (``with _Options() as o: lib.mpx_proc_opts_x(o.ptr, ...)``)."""

    def __init__(self):
        self.ptr = proc_opts_p()
        check(lib.mpx_proc_opts_new(byref(self.ptr)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        lib.mpx_proc_opts_free(self.ptr)
        self.ptr = None


def _child_options(process_obj, fds=()):
    """Start options for a Python child: its name and daemon flag, and the descriptors it keeps
    at their numbers (``with _child_options(p, fds) as o: ...``)."""
    o = _Options()
    try:
        check(lib.mpx_proc_opts_set_name(o.ptr, _c_name(process_obj._name)))
        check(lib.mpx_proc_opts_set_daemon(o.ptr, bool(process_obj.daemon)))
        for fd in fds:
            check(lib.mpx_proc_opts_keep_fd(o.ptr, fd))
    except BaseException:
        o.__exit__()
        raise
    return o


# The default context's start method once it is fixed (None before). mpx.context's
# DefaultContext keeps it here, with the code that sets it in a child as it starts (to its
# parent's method, or its Process class's) and that reads it for a child being started.
_default_method = None


def default_start_method():
    """The default context's start method, or None while it is not fixed."""
    return _default_method


def set_default_start_method(method):
    """Fixes the default context's start method ('fork', 'spawn', 'forkserver'; None: unfix)."""
    global _default_method
    _default_method = method


# The C functions every child calls get their prototypes here, once (mpx._lib does it on first
# use), not in each forked child, where every write copies a page.
for _name in ("mpx_set_current_name", "mpx_current_die_with_parent"):
    getattr(lib, _name)
del _name


_POLL_SLICE_MS = 100


class _Handle:
    """Owns one mpx_process handle, with the API of the standard library's Popen objects
    (``pid``, ``poll()``, ``wait(timeout)``, ``terminate()``, ``kill()``, ``sentinel``,
    ``close()``), so code that looks at ``process._popen`` keeps working."""

    def __init__(self, ptr, own_child=True):
        self._ptr = ptr
        self._lock = threading.Lock()
        self.pid = lib.mpx_process_pid(ptr)
        self.returncode = None
        self._sentinel = None
        # Our own child (fork, spawn), not a fork server's: waitable with waitid.
        self._own_child = own_child
        self._owner = os.getpid()

    @classmethod
    def adopt_later(cls, pid, name):
        """A handle for a child forked here that is adopted into an mpx_process on first use.
        Until the child ends, every page the parent writes is copied (copy-on-write), which
        made adopting at once the costliest part of a start; the pid is ours alone to reap,
        so nothing is lost by waiting."""
        h = cls.__new__(cls)
        h._ptr = None
        h._pending = (pid, name)
        h._lock = threading.Lock()
        h.pid = pid
        h.returncode = None
        h._sentinel = None
        h._own_child = True
        h._owner = os.getpid()
        return h

    _pending = None

    def _live(self):
        if self._ptr is None:
            if self._pending is None:
                raise ValueError("process handle is closed")
            pid, name = self._pending
            ptr = process_p()
            check(lib.mpx_process_adopt(pid, _c_name(name), byref(ptr)))
            self._ptr, self._pending = ptr, None
        return self._ptr

    def poll(self, flag=None):
        """The exit code if the process has ended, else None. Never blocks."""
        if self.returncode is None:
            finished, code = c_bool(), c_int()
            with self._lock:
                check(lib.mpx_process_exitcode(self._live(), byref(finished), byref(code)))
            if finished.value:
                self.returncode = code.value
        return self.returncode

    def wait(self, timeout=None):
        """Waits up to ``timeout`` seconds (None: without limit) and returns the exit code, or
        None if the process still runs. The wait is a poll() on the sentinel in Python, so
        signal handlers (KeyboardInterrupt) run while it waits, as with os.waitpid."""
        if self.returncode is not None:
            return self.returncode
        if timeout is None and self._own_child:
            # Wait for the exit without reaping it (the library reaps and keeps the code). Cheap
            # and interruptible: os.waitid runs signal handlers and retries on EINTR.
            try:
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                pass  # reaped meanwhile through this handle by another thread
            code = self.poll()
            if code is not None:
                return code
        code = self.poll()
        if code is not None or (timeout is not None and timeout <= 0):
            return code
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self.sentinel
        if fd is None:
            return self._wait_in_c(deadline)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if deadline is None:
                # In slices: a close() from another thread (which closes the sentinel) is seen.
                ready = poller.poll(_POLL_SLICE_MS)
            else:
                left = deadline - time.monotonic()
                ready = poller.poll(min(_POLL_SLICE_MS, math.ceil(left * 1000))) if left > 0 else []
            code = self.poll()
            if code is not None:
                return code
            if deadline is not None and time.monotonic() >= deadline:
                return None
            if ready:
                # Readable yet not reported (not expected): let C wait instead of spinning.
                return self._wait_in_c(deadline)

    def _wait_in_c(self, deadline):
        # Without a sentinel (no pidfd on this kernel): wait in C in short slices, so that
        # signals still get through between them.
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return self.poll()
            ns = 50_000_000 if left is None else min(50_000_000, int(left * 1e9))
            code = c_int()
            with self._lock:
                st = lib.mpx_process_join(self._live(), ns, byref(code))
            if st == errors.MPX_OK:
                self.returncode = code.value
                return self.returncode
            check(st, allow=(errors.MPX_E_TIMEOUT,))

    def send_signal(self, sig):
        with self._lock:
            check(lib.mpx_process_signal(self._live(), int(sig)))

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def interrupt(self):
        self.send_signal(signal.SIGINT)

    @property
    def sentinel(self):
        """A descriptor readable once the process ends (owned by the handle), or None when
        this kernel has no pidfd."""
        if self._sentinel is None:
            fd = c_int()
            with self._lock:
                st = lib.mpx_process_sentinel(self._live(), byref(fd))
            if st == errors.MPX_E_UNSUPPORTED:
                return None
            check(st)
            self._sentinel = fd.value
        return self._sentinel

    def close(self):
        """Frees the handle; a child still running is reaped by the library when it ends."""
        with self._lock:
            if self._pending is not None:
                try:
                    self._live()  # adopted only to be handed to the library's reaper
                except Exception:
                    self._pending = None
            ptr, self._ptr = self._ptr, None
        if ptr is not None:
            lib.mpx_process_close(ptr)

    def __del__(self):
        # A handle inherited by a forked child belongs to the parent: leave it alone (its lock
        # may have been held by another thread at the fork).
        if getattr(self, "_owner", None) != os.getpid():
            return
        try:
            self.close()
        except Exception:
            pass


#
# Processes
#

_exitcode_to_name = {-s: s.name for s in signal.Signals}


class BaseProcess:
    """Process objects, as multiprocessing.process.BaseProcess: subclass and override
    :meth:`run`, or pass ``target``. The start method is the subclass's (mpx.context)."""

    _start_method = None

    @staticmethod
    def _Popen(process_obj):
        raise NotImplementedError

    def __init__(self, group=None, target=None, name=None, args=(), kwargs={}, *, daemon=None):
        assert group is None, "group argument must be None for now"
        count = next(_process_counter)
        self._identity = _current_process._identity + (count,)
        self._config = _current_process._config.copy()
        self._parent_pid = os.getpid()
        self._parent_name = _current_process.name
        self._popen = None
        self._closed = False
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs)
        self._name = name or type(self).__name__ + "-" + ":".join(str(i) for i in self._identity)
        if daemon is not None:
            self.daemon = daemon

    def _check_closed(self):
        if self._closed:
            raise ValueError("process object is closed")

    def _popen_once(self):
        """The handle, read once (a close() from another thread may null the attribute), or
        None before start; ValueError once closed. Its calls then say "closed" themselves."""
        popen = self._popen
        if popen is None:
            self._check_closed()
        return popen

    def run(self):
        """Method to be run in the child process; the default calls ``target``."""
        if self._target:
            self._target(*self._args, **self._kwargs)

    def start(self):
        """Starts the child process (once)."""
        self._check_closed()
        assert self._popen is None, "cannot start a process twice"
        assert self._parent_pid == os.getpid(), "can only start a process object created by current process"
        assert not _current_process._config.get("daemon"), "daemonic processes are not allowed to have children"
        _cleanup()
        self._popen = self._Popen(self)
        # As the standard library: no reference cycle through a target that refers to us.
        del self._target, self._args, self._kwargs
        _children.add(self)

    def terminate(self):
        """Terminates the process with SIGTERM."""
        self._check_closed()
        self._started_popen("terminate").terminate()

    def kill(self):
        """Terminates the process with SIGKILL."""
        self._check_closed()
        self._started_popen("kill").kill()

    def interrupt(self):
        """Sends SIGINT (KeyboardInterrupt in a Python child). Not in the standard library."""
        self._check_closed()
        self._started_popen("interrupt").interrupt()

    def _started_popen(self, what):
        if self._popen is None:
            raise AssertionError("can only %s a started process" % what)
        return self._popen

    def join(self, timeout=None):
        """Waits until the process ends, or ``timeout`` seconds. Returns None either way."""
        self._check_closed()
        assert self._parent_pid == os.getpid(), "can only join a child process"
        popen = self._popen_once()
        assert popen is not None, "can only join a started process"
        res = popen.wait(timeout)
        if res is not None:
            _children.discard(self)

    def is_alive(self):
        """Whether the process is running."""
        self._check_closed()
        if self is _current_process:
            return True
        assert self._parent_pid == os.getpid(), "can only test a child process"
        popen = self._popen_once()
        if popen is None:
            return False
        if popen.poll() is None:
            return True
        _children.discard(self)
        return False

    def close(self):
        """Releases the process's resources. ValueError if it is still running; most methods
        and attributes then raise ValueError."""
        if self._popen is not None:
            if self._popen.poll() is None:
                raise ValueError(
                    "Cannot close a process while it is still running. You should first call join() or terminate()."
                )
            # Closed first: a call from another thread then says "closed", never finds no _popen.
            self._closed = True
            self._popen.close()
            self._popen = None
            _children.discard(self)
        self._closed = True

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, name):
        assert isinstance(name, str), "name must be a string"
        self._name = name

    @property
    def daemon(self):
        """Whether the process is daemonic: it dies with its parent (even a SIGKILLed one) and
        is terminated when the parent exits; it may not start children."""
        return self._config.get("daemon", False)

    @daemon.setter
    def daemon(self, daemonic):
        assert self._popen is None, "process has already started"
        self._config["daemon"] = daemonic

    @property
    def authkey(self):
        try:
            return self._config["authkey"]
        except KeyError:
            # Shared with the standard library's process tree, so that connections and
            # managers of either authenticate the other.
            key = self._config["authkey"] = _std_process.current_process().authkey
            return key

    @authkey.setter
    def authkey(self, authkey):
        self._config["authkey"] = _std_process.AuthenticationString(authkey)

    @property
    def exitcode(self):
        """None while running; the exit status, or minus the signal number that killed it."""
        self._check_closed()
        popen = self._popen_once()
        if popen is None:
            return None
        return popen.poll()

    @property
    def ident(self):
        """The process id (None before start)."""
        self._check_closed()
        if self is _current_process:
            return os.getpid()
        return self._popen and self._popen.pid

    pid = ident

    @property
    def sentinel(self):
        """A descriptor that becomes readable when the process ends (select/poll/
        multiprocessing.connection.wait)."""
        self._check_closed()
        popen = self._popen_once()
        if popen is None:
            raise ValueError("process not started")
        # Fetched on first use: after a fork every page the parent touches costs a copy.
        return popen.sentinel

    def __repr__(self):
        exitcode = None
        if self is _current_process:
            status = "started"
        elif self._closed:
            status = "closed"
        elif self._parent_pid != os.getpid():
            status = "unknown"
        elif self._popen is None:
            status = "initial"
        else:
            exitcode = self._popen.poll()
            status = "stopped" if exitcode is not None else "started"
        info = [type(self).__name__, "name=%r" % self._name]
        if self._popen is not None:
            info.append("pid=%s" % self._popen.pid)
        info.append("parent=%s" % self._parent_pid)
        info.append(status)
        if exitcode is not None:
            info.append("exitcode=%s" % _exitcode_to_name.get(exitcode, exitcode))
        if self.daemon:
            info.append("daemon")
        return "<%s>" % " ".join(info)

    def _bootstrap(self, parent_sentinel=None):
        """Runs in the child: resets the inherited state, runs, and returns the exit code
        (0; SystemExit's code; 1 after printing the traceback of an uncaught exception).

        What the standard library's _bootstrap does, with one difference in cost: in a forked
        child every page written is copied (a fault each, the main cost of a start), so steps
        that would find nothing to do are skipped rather than run."""
        global _current_process, _previous_process, _previous_children, _parent_process, _parent_info
        global _process_counter, _children, _exiting
        # The standard library's util, if anything imported it (a spawned child need not: without
        # it there are no finalizers or after-fork hooks of the standard library to run).
        util = _std_util or sys.modules.get("multiprocessing.util")
        exitcode = 1
        try:
            if self._start_method is not None:
                set_default_start_method(self._start_method)
            _process_counter = itertools.count(1)
            # The parent's children are not ours. Kept rather than freed: freeing them would only
            # copy pages and run finalizers of handles that belong to the parent.
            _previous_children = _children
            _children = set()
            _exiting = False
            _close_stdin()
            # Kept, not freed: freeing the parent's object here would only cost page copies.
            _previous_process = _current_process
            _current_process = self
            _parent_process = None
            _parent_info = (self._parent_name, self._parent_pid, parent_sentinel)
            lib.mpx_set_current_name(_c_name(self._name))
            _std_after_fork(self, util)
            try:
                self.run()
                exitcode = 0
            finally:
                util = util or sys.modules.get("multiprocessing.util")  # run() may have imported it
                if util is not None and (util._finalizer_registry or sys.modules["multiprocessing.process"]._children):
                    util._exit_function()
                if _children:
                    _exit_function()
        except SystemExit as e:
            if e.code is None:
                exitcode = 0
            elif isinstance(e.code, int):
                exitcode = e.code
            else:
                sys.stderr.write(str(e.code) + "\n")
                exitcode = 1
        except BaseException:
            exitcode = 1
            import traceback  # lazily: only a failing child needs it

            sys.stderr.write("Process %s:\n" % self.name)
            traceback.print_exc()
        finally:
            # Joins the child's non-daemon threads (and runs threading's atexit calls).
            if getattr(threading, "_threading_atexits", True) or getattr(threading, "_shutdown_locks", True):
                threading._shutdown()
            _flush_std_streams()
        return exitcode


_std_util = None


def _import_std_util():
    global _std_util
    from multiprocessing import util  # lazily: `import mpx` does not load it

    _std_util = util
    return util


def _std_after_fork(proc, util):
    """Brings the standard library's process state in line with this child, as its own
    _bootstrap does, so stdlib queues, locks and pools work in mpx children: its children are
    the parent's, not ours; its after-fork hooks must run; its current process is this one."""
    std = sys.modules["multiprocessing.process"]
    if std._children:
        std._children = set()
    cur = std._current_process
    cur._name = proc._name
    if "authkey" in proc._config:
        cur._config["authkey"] = proc._config["authkey"]
    if proc._config.get("daemon"):
        cur._config["daemon"] = True
    if util is None:
        return
    if util._finalizer_registry:
        util._finalizer_registry.clear()
    if len(util._afterfork_registry):
        util._run_after_forkers()


# /dev/null as sys.stdin for forked children, opened once in the parent: a fresh text file per
# child costs more than the rest of the child's start.
_devnull_stdin = None


def _open_devnull_stdin(high=False):
    """``high``: at a high descriptor number (the fork server: a descriptor passed to a child
    lands at its client-side number, which must not be the one this file has)."""
    global _devnull_stdin
    if _devnull_stdin is None:
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        if high:
            # Lazily: only the fork server comes here.
            import fcntl
            import resource

            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            floor = 1000 if soft == resource.RLIM_INFINITY else max(3, min(1000, soft - 16))
            try:
                moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
            except OSError:
                moved = fd  # at the limit: keep the low number
            if moved != fd:
                os.close(fd)
                fd = moved
        try:
            _devnull_stdin = open(fd, encoding="utf-8", closefd=True)
        except BaseException:
            os.close(fd)
            raise
        # Made ahead for forked children; the process that made it closes it at exit (an open
        # file left to the interpreter's teardown is a ResourceWarning).
        atexit.register(_close_devnull_stdin, os.getpid())


def _close_devnull_stdin(owner):
    if os.getpid() == owner and _devnull_stdin is not None and _devnull_stdin is not sys.stdin:
        _devnull_stdin.close()


def _close_stdin():
    # As the standard library: a child does not read its parent's stdin.
    if sys.stdin is None or (sys.stdin is _devnull_stdin and not sys.stdin.closed):
        return
    try:
        sys.stdin.close()
    except (OSError, ValueError):
        pass
    try:
        if _devnull_stdin is not None and not _devnull_stdin.closed:
            sys.stdin = _devnull_stdin
            return
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            sys.stdin = open(fd, encoding="utf-8", closefd=True)
        except BaseException:
            os.close(fd)
            raise
    except (OSError, ValueError):
        pass


class _ParentProcess(BaseProcess):
    """parent_process() in a child: pid and name of the process that started it; its sentinel
    (a pidfd, opened on first use) becomes readable when the parent ends."""

    def __init__(self, name, pid, sentinel=None):
        self._identity = ()
        self._name = name
        self._pid = pid
        self._parent_pid = None
        self._popen = None
        self._closed = False
        self._sentinel_fd = sentinel
        self._config = {}

    @property
    def sentinel(self):
        if self._sentinel_fd is None:
            self._sentinel_fd = _pidfd_of(self._pid, check_parent=True)
        return self._sentinel_fd

    def is_alive(self):
        from multiprocessing.connection import wait  # lazily: `import mpx` does not load it

        return not wait([self.sentinel], timeout=0)

    @property
    def ident(self):
        return self._pid

    def join(self, timeout=None):
        """Waits until the parent process ends."""
        from multiprocessing.connection import wait  # lazily: `import mpx` does not load it

        wait([self.sentinel], timeout=timeout)

    pid = ident


def _pidfd_of(pid, check_parent):
    """A descriptor readable when ``pid`` has ended. With ``check_parent``, ``pid`` is our
    parent: if getppid() no longer says so it is gone (and its pid may be reused), so the
    result is a descriptor that is already readable."""
    fd = None
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        pass
    if fd is not None and (not check_parent or os.getppid() == pid):
        return fd
    if fd is not None:
        os.close(fd)
    r, w = os.pipe()
    os.close(w)  # EOF: readable at once
    return r


class _MainProcess(BaseProcess):
    def __init__(self):
        self._identity = ()
        # A Python program started by mpx with a name (from C, C++, Rust or spawn_executable)
        # knows it, as a C program's mpx_current_name() does.
        self._name = os.environ.pop(ENV_NAME, None) or "MainProcess"
        os.environ.pop(ENV_PARENT, None)
        self._parent_pid = None
        self._popen = None
        self._closed = False
        self._config = {"semprefix": "/mp"}
        if self._name != "MainProcess":
            lib.mpx_set_current_name(_c_name(self._name))

    def close(self):
        pass


_process_counter = itertools.count(1)
_children = set()
_current_process = _MainProcess()
_previous_process = None
_previous_children = None
_parent_process = None
_parent_info = None  # (name, pid, sentinel) in a child: parent_process() is built on first use
_exiting = False


def current_process():
    """The Process object of the calling process."""
    return _current_process


def parent_process():
    """The Process object of the parent (None in the main process)."""
    global _parent_process
    if _parent_process is None and _parent_info is not None:
        _parent_process = _ParentProcess(*_parent_info)
    return _parent_process


def _cleanup():
    for p in list(_children):
        popen = p._popen
        if popen is None or popen.poll() is not None:
            _children.discard(p)


def active_children():
    """The children of this process still running (finished ones are joined)."""
    _cleanup()
    return list(_children)


def _exit_function():
    """At exit (and at the end of a child's run): terminate daemonic children, join the
    others, as multiprocessing does."""
    global _exiting
    if _exiting:
        return
    _exiting = True
    for p in active_children():
        if p.daemon:
            try:
                p._popen.terminate()
            except Exception:
                pass
    for p in active_children():
        p.join()


atexit.register(_exit_function)


#
# The fork start method
#


def _launch_fork(process_obj):
    """Forks with os.fork (so the interpreter's own at-fork handling runs), then adopts the
    child into an mpx_process in the parent."""
    if _std_util is None:
        _import_std_util()  # once here, not in every child
    parent = os.getpid()
    _open_devnull_stdin()
    _flush_std_streams()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if process_obj.daemon and lib.mpx_current_die_with_parent(parent) != errors.MPX_OK:
                os._exit(1)  # the parent is already gone
            code = process_obj._bootstrap()
        finally:
            os._exit(code)
    return _Handle.adopt_later(pid, process_obj._name)


#
# Executables in any language
#


def _stdio(opts, which, value):
    if value is None:
        return
    if value == "null" or value == -3:  # -3 is subprocess.DEVNULL
        check(lib.mpx_proc_opts_set_stdio(opts.ptr, which, MPX_STDIO_NULL, -1))
        return
    if hasattr(value, "fileno"):
        value = value.fileno()
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("stdio: expected None, 'null', a descriptor or a file object, not %r" % (value,))
    check(lib.mpx_proc_opts_set_stdio(opts.ptr, which, MPX_STDIO_FD, value))


def _cbytes(value, what):
    b = os.fsencode(value)
    if b"\0" in b:
        raise ValueError("%s contains a null byte: %r" % (what, value))
    return b


class ExecProcess:
    """A running executable started by :func:`spawn_executable`, with the Process API for
    waiting and signalling: ``pid``, ``name``, ``daemon``, ``args``, ``exitcode``,
    ``sentinel``, ``is_alive()``, ``join(timeout)``, ``terminate()``, ``kill()``,
    ``interrupt()``, ``send_signal(sig)``, ``close()``."""

    def __init__(self, popen, args, name, daemon):
        self._popen = popen
        self.args = args
        self.name = name
        self.daemon = daemon
        self._parent_pid = os.getpid()

    def _handle(self):
        if self._popen is None:
            raise ValueError("process object is closed")
        return self._popen

    @property
    def pid(self):
        return self._handle().pid

    ident = pid

    @property
    def exitcode(self):
        return self._handle().poll()

    @property
    def sentinel(self):
        return self._handle().sentinel

    def is_alive(self):
        return self._handle().poll() is None

    def join(self, timeout=None):
        """Waits until the program ends, or ``timeout`` seconds. Returns None either way."""
        self._handle().wait(timeout)

    def terminate(self):
        self._handle().terminate()

    def kill(self):
        self._handle().kill()

    def interrupt(self):
        self._handle().interrupt()

    def send_signal(self, sig):
        self._handle().send_signal(sig)

    def close(self):
        """Releases the handle. ValueError while the program runs."""
        if self._popen is not None:
            if self._popen.poll() is None:
                raise ValueError("Cannot close a process while it is still running. "
                                 "You should first call join() or terminate().")
            self._popen.close()
            self._popen = None

    def __repr__(self):
        if self._popen is None:
            state = "closed"
        else:
            code = self._popen.poll()
            state = "started" if code is None else "stopped exitcode=%s" % _exitcode_to_name.get(code, code)
            state = "pid=%d %s" % (self._popen.pid, state)
        return "<ExecProcess name=%r %s%s>" % (self.name, state, " daemon" if self.daemon else "")


def spawn_executable(args, *, executable=None, env=None, cwd=None, pass_fds=(), stdin=None,
                     stdout=None, stderr=None, daemon=False, name=None):
    """Starts a program (C, C++, Rust, Python, anything) and returns an :class:`ExecProcess`.

    ``args``: the argument list; ``args[0]`` is the program (a path, or a name looked up in
    PATH) unless ``executable`` is given. ``env``: the child's whole environment (a mapping),
    or None to inherit ours. ``cwd``: its working directory. ``pass_fds``: descriptors it keeps
    at the same numbers (every other descriptor above 2 is closed). ``stdin``/``stdout``/
    ``stderr``: None (inherit), ``'null'`` (or subprocess.DEVNULL), a descriptor or a file
    object. ``daemon``: it dies with this process (even a SIGKILLed one) and is terminated when
    this process exits normally. ``name``: what mpx_current_name() (C) or
    mpx.current_process().name (Python) returns in the child.

    A program that does not exist raises FileNotFoundError here (and one that is not
    executable PermissionError), rather than starting a child that exits 127.
    """
    if isinstance(args, (str, bytes, os.PathLike)):
        args = [args]
    argv = [_cbytes(a, "argument") for a in args]
    if not argv:
        raise ValueError("args is empty: args[0] (the program's name) is required")
    program = _cbytes(executable, "executable") if executable is not None else argv[0]
    explicit_name = name is not None
    if name is None:
        name = "ExecProcess-" + ":".join(str(i) for i in _current_process._identity + (next(_process_counter),))
    elif not isinstance(name, str):
        raise TypeError("name must be a string")
    with _Options() as o:
        check(lib.mpx_proc_opts_set_name(o.ptr, _c_name(name)))
        check(lib.mpx_proc_opts_set_daemon(o.ptr, bool(daemon)))
        if env is not None:
            check(lib.mpx_proc_opts_clearenv(o.ptr))
            for k, v in env.items():
                check(lib.mpx_proc_opts_setenv(o.ptr, _cbytes(k, "environment name"), _cbytes(v, "environment value")))
        if explicit_name:
            # The identity carried across exec (what mpx_current_name() reads in the child).
            check(lib.mpx_proc_opts_setenv(o.ptr, ENV_NAME.encode(), _c_name(name)))
            check(lib.mpx_proc_opts_setenv(o.ptr, ENV_PARENT.encode(), str(os.getpid()).encode()))
        if cwd is not None:
            check(lib.mpx_proc_opts_set_cwd(o.ptr, _cbytes(cwd, "cwd")))
        for fd in pass_fds:
            if isinstance(fd, bool) or not isinstance(fd, int):
                raise TypeError("pass_fds: %r is not a descriptor" % (fd,))
            check(lib.mpx_proc_opts_keep_fd(o.ptr, fd))
        _stdio(o, 0, stdin)
        _stdio(o, 1, stdout)
        _stdio(o, 2, stderr)
        c_argv = (c_char_p * (len(argv) + 1))(*argv, None)
        ptr = process_p()
        check(lib.mpx_spawn(program, c_argv, o.ptr, byref(ptr)))
    return ExecProcess(_Handle(ptr), list(args), name, bool(daemon))
