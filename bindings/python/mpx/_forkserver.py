"""The forkserver start method: a Python fork server driven by the C library.

Client (the parent): the first start sets the server's program once per process with
``mpx_forkserver_set_program``::

    python [interpreter flags] -c 'import sys; sys.path.insert(0, <mpx's parent dir>);
                                   from mpx._forkserver import main; main()' <preload JSON>

then every start is ``mpx_start(MPX_START_FORKSERVER, "python", payload, opts)``: the library
starts the server on first use (one per client process; it exits when the client goes away),
sends it the request, and returns a handle whose sentinel is the child's status socket. The
payload is the one spawn uses (mpx._spawn.pickle_process); the descriptors that pickled objects
hand over (multiprocessing.reduction.DupFd: Connections, sockets, the standard library's
Queue) are kept with mpx_proc_opts_keep_fd, travel with the request (SCM_RIGHTS) and appear in
the child at the same numbers, as with spawn.

Server: :func:`main` preloads what the standard library's fork server preloads (the parent's
``__main__`` by path, with its sys.path, plus the modules named by set_forkserver_preload) and
this package, then calls ``mpx_forkserver_serve``, which forks a child per request and returns
only in the children (or with MPX_E_CLOSED once the client has gone, when the server exits).
A child first re-initialises the interpreter after the fork (PyOS_AfterFork_Child, which
os.fork would have called), then unpickles, prepares and runs the process object, and leaves
with os._exit like any forked child.
"""

import ctypes
import io
import json
import os
import signal
import sys
import threading
from ctypes import byref, c_char_p, c_size_t, c_void_p
from multiprocessing import process as std_process

from . import _spawn, errors, process
from ._lib import check, last_error, lib, process_p
from .process import MPX_START_FORKSERVER, _child_options, _flush_std_streams, _Handle

_lock = threading.Lock()
_program_set = False
_preload = ["__main__"]


def set_forkserver_preload(module_names):
    """Modules the fork server imports before it forks children (default ["__main__"]).
    Takes effect for a server not started yet."""
    global _preload
    if not all(type(m) is str for m in module_names):
        raise TypeError("module_names must be a list of strings")
    _preload = list(module_names)


def _server_argv():
    config = {"preload": _preload}
    if _preload:
        data = _spawn._preparation_data("ignore")
        config["sys_path"] = data.get("sys_path")
        config["sys_argv"] = data.get("sys_argv")
        config["dir"] = data.get("dir")
        # The standard library's own preload looks for the key "main_path", which 3.11's
        # get_preparation_data no longer makes, so its server never preloads __main__ and every
        # child imports it again. Here the server imports it once, as intended, with the
        # parent's argv and working directory as a child would see them.
        config["main_path"] = data.get("init_main_from_path")
    argv = _spawn._command(0)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = "import sys; sys.path.insert(0, %r); from mpx._forkserver import main; main()" % package_parent
    return argv[:-1] + [code, json.dumps(config)]


def _ensure_program():
    global _program_set
    with _lock:
        if _program_set:
            return
        argv = [os.fsencode(a) for a in _server_argv()]
        c_argv = (c_char_p * (len(argv) + 1))(*argv, None)
        check(lib.mpx_forkserver_set_program(c_argv))
        _program_set = True


def launch(process_obj):
    """Starts ``process_obj`` as a child of the fork server; returns its handle."""
    payload, fds = _spawn.pickle_process(process_obj)
    _ensure_program()
    with _child_options(process_obj, fds) as o:
        ptr = process_p()
        check(lib.mpx_start(MPX_START_FORKSERVER, b"python", payload, len(payload), o.ptr, byref(ptr)))
    return _Handle(ptr, own_child=False)


def _preload_modules(config):
    from multiprocessing import spawn as std_spawn  # lazily: only the server needs it

    if config.get("sys_path") is not None:
        sys.path[:] = config["sys_path"]
    if config.get("sys_argv") is not None:
        sys.argv[:] = config["sys_argv"]
    if config.get("dir"):
        try:
            os.chdir(config["dir"])
        except OSError:
            pass
    preload = config.get("preload") or []
    main_path = config.get("main_path")
    if "__main__" in preload and main_path is not None:
        std_current = std_process.current_process()
        std_current._inheriting = True
        try:
            std_spawn.import_main_path(main_path)
        except BaseException:
            # The child imports it again and reports the error where it belongs.
            import traceback  # lazily: only for a failure

            traceback.print_exc()
        finally:
            del std_current._inheriting
    for name in preload:
        if name != "__main__":
            try:
                __import__(name)
            except ImportError:
                pass


def main():
    """The fork server (run by the library as the server program). Its command line imported
    mpx (with mpx.context and mpx.process) and this module (with mpx._spawn): its children
    inherit them."""
    # Preloaded for the children, in the server only (a client does not need them).
    from multiprocessing import connection, util  # noqa: F401

    fd = int(os.environ.pop("MPX_FORKSERVER_FD"))
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    # A Ctrl-C in the terminal is for the client and the children, not the server.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _preload_modules(config)
    # Children find /dev/null already in place as stdin (and skip opening their own); at a high
    # number, clear of the descriptors that requests place in the children.
    process._open_devnull_stdin(high=True)
    process._close_stdin()
    _flush_std_streams()

    entry, arg, n = c_void_p(), c_void_p(), c_size_t()
    st = lib.mpx_forkserver_serve(fd, byref(entry), byref(arg), byref(n))
    if st != errors.MPX_OK:
        # In the server: the client went away (MPX_E_CLOSED), or the loop failed.
        if st != errors.MPX_E_CLOSED:
            sys.stderr.write("mpx fork server: %s\n" % last_error())
        _flush_std_streams()
        os._exit(0 if st == errors.MPX_E_CLOSED else 1)

    # In a forked child. The fork happened in C: let the interpreter recover as after os.fork.
    ctypes.pythonapi.PyOS_AfterFork_Child()
    code = 1
    try:
        name = ctypes.string_at(entry.value)
        payload = ctypes.string_at(arg.value, n.value)
        lib.mpx_free(entry)
        lib.mpx_free(arg)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if name != b"python":
            sys.stderr.write("mpx fork server: unknown entry %r\n" % name)
        else:
            code = _spawn.run_payload(io.BytesIO(payload), served=True)
    except BaseException:
        import traceback  # lazily: only for a failure

        traceback.print_exc()
    finally:
        _flush_std_streams()
        os._exit(code)
