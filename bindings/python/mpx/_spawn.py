"""The spawn start method: a new Python interpreter started with mpx_spawn.

Parent: the standard library's ``multiprocessing.spawn.get_preparation_data()`` and the
process object are pickled (with the standard library's ForkingPickler, so its own objects that
know how to travel to a spawned child still do), written into a pipe, and the interpreter is
started with the pipe's read end kept (mpx_proc_opts_keep_fd) and told its number::

    python [interpreter flags] -c 'import sys; sys.path.insert(0, <mpx's parent dir>);
                                   from mpx._spawn import main; main(<fd>)'

Child: :func:`main` reads the preparation data, applies it as the standard library's
``prepare()`` does (sys.path, argv, cwd, and the parent's ``__main__`` re-run as ``__mp_main__``,
so the ``if __name__ == "__main__"`` guard rules are exactly Python's; done here without
importing multiprocessing.spawn for a main script file, by ``prepare()`` itself otherwise),
unpickles the process object, runs it and exits with its exit code.

The fork server (mpx._forkserver) sends the same payload as the argument bytes of its request,
and the same descriptors with it.
"""

import atexit
import io
import multiprocessing
import os
import pickle
import sys
import types
from ctypes import byref, c_char_p
from multiprocessing import context as std_context
from multiprocessing import process as std_process
from multiprocessing.reduction import ForkingPickler

from ._lib import check, lib, process_p
from .process import (
    _child_options,
    _flush_std_streams,
    _Handle,
    _pidfd_of,
    default_start_method,
    set_default_start_method,
)

# A payload up to this size is written before the child starts, into a pipe enlarged to hold
# it, so start() never waits for the child to read (the Linux default pipe-max-size is 1 MiB).
_PREWRITE_MAX = 1 << 20


class _DupFd:
    """A descriptor passed to a child at the same number (see _SpawningPopen)."""

    def __init__(self, fd):
        self.fd = fd

    def detach(self):
        return self.fd


class _SpawningPopen:
    """Stands in for the standard library's Popen while a process object is pickled
    (multiprocessing.context.set_spawning_popen), which is what its AuthenticationString,
    Connection, Queue and Lock need to allow pickling for a child. Descriptors that pickled
    objects hand over (``multiprocessing.reduction.DupFd``) are collected in ``fds``; the
    start keeps each at the same number in the child (mpx_proc_opts_keep_fd: spawn keeps them
    across exec, the fork server receives them with the request)."""

    DupFd = _DupFd

    def __init__(self):
        self.fds = []

    def duplicate_for_child(self, fd):
        if fd not in self.fds:
            self.fds.append(fd)
        return fd


def _preparation_data(name):
    from multiprocessing import spawn as std_spawn  # lazily: only a parent needs it

    std_method = std_context._default_context.get_start_method(allow_none=True)
    data = std_spawn.get_preparation_data(name)
    if std_method is None:
        # get_preparation_data fixes the standard library's start method as a side effect
        # (it asks for it): undo that, so `multiprocessing.set_start_method` still works here.
        std_context._default_context._actual_context = None
        data.pop("start_method", None)
    return data


def pickle_process(process_obj):
    """The payload for a child: preparation data, then the process object. Returns
    ``(bytes, fds)``; ``fds`` are descriptors that pickled objects need kept in the child.
    Raises what pickling raises (an unpicklable target fails here, in the parent)."""
    extra = {"start_method": default_start_method()}
    popen = _SpawningPopen()
    buf = io.BytesIO()
    std_context.set_spawning_popen(popen)
    try:
        ForkingPickler(buf, pickle.HIGHEST_PROTOCOL).dump((_preparation_data(process_obj._name), extra))
        ForkingPickler(buf, pickle.HIGHEST_PROTOCOL).dump(process_obj)
    finally:
        std_context.set_spawning_popen(None)
    return buf.getvalue(), popen.fds


def _command(fd):
    # Lazily: only a parent needs them.
    from multiprocessing import spawn as std_spawn
    from multiprocessing.util import _args_from_interpreter_flags

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = "import sys; sys.path.insert(0, %r); from mpx._spawn import main; main(%d)" % (package_parent, fd)
    return [std_spawn.get_executable()] + _args_from_interpreter_flags() + ["-c", code]


def launch(process_obj):
    """Starts ``process_obj`` in a new interpreter; returns its handle."""
    payload, fds = pickle_process(process_obj)
    rest = memoryview(payload)
    r, w = os.pipe()
    try:
        if len(payload) <= _PREWRITE_MAX:
            rest = _prewrite(w, rest)
        argv = [os.fsencode(a) for a in _command(r)]
        with _child_options(process_obj, [r] + fds) as o:
            c_argv = (c_char_p * (len(argv) + 1))(*argv, None)
            ptr = process_p()
            check(lib.mpx_spawn(argv[0], c_argv, o.ptr, byref(ptr)))
        handle = _Handle(ptr)
        os.close(r)
        r = -1
        try:
            # A large payload: the child reads it as it starts (as the standard library does).
            while rest:
                rest = rest[os.write(w, rest):]
        except BrokenPipeError:
            pass  # the child died before reading: its exit code says so
        return handle
    finally:
        if r >= 0:
            os.close(r)
        os.close(w)


def _prewrite(w, data):
    """Writes what fits into the pipe without blocking (enlarging it first); returns the rest."""
    if len(data) > 65536:
        try:
            import fcntl  # lazily: only for a large payload

            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, len(data))
        except OSError:
            pass  # above the system's pipe-max-size: the rest is written after the start
    os.set_blocking(w, False)
    try:
        while data:
            data = data[os.write(w, data):]
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(w, True)
    return data


def _prepare(data, extra):
    if data.keys() <= _PREPARATION_KEYS:
        _apply_preparation(data)
    else:  # `python -m` (run_module) or a standard library that sends more than we know
        from multiprocessing import spawn as std_spawn  # lazily: see _PREPARATION_KEYS

        std_spawn.prepare(data)
    if extra.get("start_method"):
        set_default_start_method(extra["start_method"])


# What multiprocessing.spawn.prepare() does with these keys (Python 3.8 to 3.13) is done by
# _apply_preparation the same way, without importing multiprocessing.spawn: with it come
# multiprocessing.util, subprocess, runpy, and (from runpy.run_path) pkgutil and typing, about
# 9 ms of a spawned child's start that a child which never uses them need not pay.
_PREPARATION_KEYS = frozenset(("log_to_stderr", "log_level", "authkey", "name", "sys_path", "sys_argv",
                               "dir", "orig_dir", "start_method", "init_main_from_path"))
_ABSENT = object()
_old_main_modules = []  # as multiprocessing.spawn.old_main_modules: the replaced __main__ stays alive


def _apply_preparation(data):
    """multiprocessing.spawn.prepare(data), step for step, for the keys in _PREPARATION_KEYS."""
    if "name" in data:
        std_process.current_process().name = data["name"]
    if "authkey" in data:
        std_process.current_process().authkey = data["authkey"]
    if data.get("log_to_stderr") or "log_level" in data:
        from multiprocessing import util  # lazily: only when logging was on in the parent

        if data.get("log_to_stderr"):
            util.log_to_stderr()
        if "log_level" in data:
            util.get_logger().setLevel(data["log_level"])
    if "sys_path" in data:
        sys.path = data["sys_path"]
    if "sys_argv" in data:
        sys.argv = data["sys_argv"]
    if "dir" in data:
        os.chdir(data["dir"])
    if "orig_dir" in data:
        std_process.ORIGINAL_DIR = data["orig_dir"]
    if "start_method" in data:
        multiprocessing.set_start_method(data["start_method"], force=True)
    if "init_main_from_path" in data:
        _fixup_main_from_path(data["init_main_from_path"])


def _fixup_main_from_path(main_path):
    """multiprocessing.spawn._fixup_main_from_path: the parent's main script runs again as
    ``__mp_main__`` (so its ``if __name__ == "__main__"`` block does not), as runpy.run_path
    runs a script file; anything but a plain .py file (a directory, a zip archive, a .pyc)
    goes to the standard library's own code."""
    current_main = sys.modules["__main__"]
    if os.path.splitext(os.path.basename(main_path))[0] == "ipython":
        return  # the standard library's exception for IPython's launch script
    if getattr(current_main, "__file__", None) == main_path:
        return
    if not (main_path.endswith(".py") and os.path.isfile(main_path)):
        from multiprocessing import spawn as std_spawn  # lazily: see _PREPARATION_KEYS

        std_spawn._fixup_main_from_path(main_path)
        return
    with io.open_code(os.path.abspath(os.fsdecode(main_path))) as f:
        code = compile(f.read(), main_path, "exec")
    _old_main_modules.append(current_main)
    # As runpy: run in a temporary module installed as __mp_main__, with sys.argv[0] the
    # script's path while it runs; the result is a copy of its globals.
    temp = types.ModuleType("__mp_main__")
    saved_module = sys.modules.get("__mp_main__", _ABSENT)
    saved_argv0 = sys.argv[0]
    sys.modules["__mp_main__"] = temp
    sys.argv[0] = main_path
    try:
        run_globals = temp.__dict__
        run_globals.update(__name__="__mp_main__", __file__=main_path, __cached__=None, __doc__=None,
                           __loader__=None, __package__="", __spec__=None)
        exec(code, run_globals)
    finally:
        sys.argv[0] = saved_argv0
        if saved_module is not _ABSENT:
            sys.modules["__mp_main__"] = saved_module
        else:
            sys.modules.pop("__mp_main__", None)
    main_module = types.ModuleType("__mp_main__")
    main_module.__dict__.update(run_globals.copy())
    sys.modules["__main__"] = sys.modules["__mp_main__"] = main_module


def run_payload(stream, served=False):
    """Reads the payload from a binary stream, prepares this process, and returns the
    process object's exit code after running it. ``served``: a fork-server child, whose
    parent (the client) is not its parent process."""
    std_current = std_process.current_process()
    # While set, starting a process is the "bootstrapping phase" RuntimeError (stdlib rules).
    std_current._inheriting = True
    try:
        data, extra = pickle.load(stream)
        _prepare(data, extra)
        process_obj = pickle.load(stream)
    finally:
        del std_current._inheriting
    sentinel = None
    if served:
        # Opened now, while the client surely is the process with that pid.
        sentinel = _pidfd_of(process_obj._parent_pid, check_parent=False)
    return process_obj._bootstrap(sentinel)


def main(fd):
    """Entry of a spawned child: runs the process object read from descriptor ``fd`` and
    exits with its exit code.

    The child leaves as fork and forkserver children do (there with os._exit, in the standard
    library too): its threads joined (in _bootstrap), atexit handlers run, standard streams
    flushed, then os._exit. The interpreter's final teardown, which frees every module one by
    one, is skipped: it took longer than any other part of a spawned child's life but its
    start. Objects still alive at exit are not finalized: close files you write."""
    try:
        with open(fd, "rb", closefd=True) as f:
            code = run_payload(f)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            sys.stderr.write(str(e.code) + "\n")
    except BaseException:
        import traceback  # lazily: only a failing child needs it

        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    _flush_std_streams()
    os._exit(code & 0xFF)
