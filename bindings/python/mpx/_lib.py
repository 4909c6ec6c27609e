"""Loading libmpx.so and the C prototypes of every function the package calls.

Where the library comes from, first match wins:
  1. the environment variable MPX_LIBRARY (a path; an error if it does not load),
  2. libmpx.so next to this package (a self-contained install),
  3. the repository's build: <repo>/target/release/libmpx.so (bindings/python/mpx -> ../../..),
  4. the system search path (ctypes.util.find_library("mpx")).

Every C function is declared once in PROTOTYPES below, one section per capability: a module
that wraps a new capability adds its section there and then calls ``lib.mpx_<kind>_<op>``.
Calling a function without a prototype is an AttributeError rather than an undeclared call
(ctypes would otherwise guess ``int`` for every argument and the result).

``check(status)`` turns a failed status into the matching exception (see mpx.errors), with the
library's message for it (mpx_last_error is thread-local, and ctypes calls it on the same thread
right after the failing call, so the message belongs to that call).
"""

import ctypes
import operator
import os
from ctypes import POINTER, c_bool, c_char, c_char_p, c_double, c_int, c_int32, c_int64, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p

from . import errors

#: The C ABI version this package is written for (MPX_ABI_VERSION in include/mpx.h).
ABI_VERSION = 1

# Flags (include/mpx.h).
MPX_F_UNLINK_ON_LAST_CLOSE = 1
MPX_F_READ_ONLY = 2
MPX_F_MODE_GROUP = 4
MPX_F_MODE_ALL = 8

#: Timeout that blocks without limit (timeouts are int64 nanoseconds; 0 never blocks).
MPX_FOREVER = -1

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _load():
    """Returns (CDLL, path) or raises ImportError saying what was tried."""
    env = os.environ.get("MPX_LIBRARY")
    if env:
        # An explicit choice must not silently fall back to another copy of the library.
        if not os.path.exists(env):
            raise ImportError("mpx: MPX_LIBRARY=%r does not exist (build it with `cargo build --release`)" % env)
        try:
            return ctypes.CDLL(env), env
        except OSError as e:
            raise ImportError("mpx: cannot load MPX_LIBRARY=%r: %s" % (env, e)) from e

    tried = []
    candidates = [
        os.path.join(_PACKAGE_DIR, "libmpx.so"),
        os.path.normpath(os.path.join(_PACKAGE_DIR, "..", "..", "..", "target", "release", "libmpx.so")),
    ]
    for path in candidates:
        if not os.path.exists(path):
            tried.append("%s (absent)" % path)
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    # Imported only here: ctypes.util pulls in subprocess and shutil (~35 ms), which every spawned
    # Python child would otherwise pay at import.
    from ctypes.util import find_library

    found = find_library("mpx")
    if found:
        try:
            return ctypes.CDLL(found), found
        except OSError as e:
            tried.append("%s (%s)" % (found, e))
    else:
        tried.append("system library path (no libmpx found)")
    raise ImportError(
        "mpx: cannot find the native library libmpx.so. Build it with `cargo build --release` in the "
        "mpx repository, or set MPX_LIBRARY to its path. Tried: " + "; ".join(tried)
    )


def handle_type(cname):
    """A distinct pointer type for an opaque C handle (``mpx_shm *``), so that passing one kind
    of handle where another is expected is a ctypes.ArgumentError, not memory corruption."""
    return POINTER(type(cname, (ctypes.Structure,), {"_fields_": []}))


mpx_status = c_int32

# Opaque handle types, one per capability.
shm_p = handle_type("mpx_shm")
proc_opts_p = handle_type("mpx_proc_opts")
process_p = handle_type("mpx_process")

# name: (restype, [argtypes]). One section per capability; keep in the header's order.
PROTOTYPES = {
    # core
    "mpx_version": (c_char_p, []),
    "mpx_abi_version": (c_uint32, []),
    "mpx_last_error": (c_char_p, []),
    "mpx_status_name": (c_char_p, [mpx_status]),
    "mpx_last_errno": (c_int, []),
    # shared memory
    "mpx_shm_create": (mpx_status, [c_char_p, c_size_t, c_uint32, POINTER(shm_p)]),
    "mpx_shm_open": (mpx_status, [c_char_p, c_uint32, POINTER(shm_p)]),
    "mpx_shm_create_anonymous": (mpx_status, [c_size_t, POINTER(shm_p)]),
    "mpx_shm_open_fd": (mpx_status, [c_int, c_uint32, POINTER(shm_p)]),
    "mpx_shm_ptr": (POINTER(c_uint8), [shm_p]),
    "mpx_shm_size": (c_size_t, [shm_p]),
    "mpx_shm_name": (c_char_p, [shm_p]),
    "mpx_shm_fd": (mpx_status, [shm_p, POINTER(c_int)]),
    "mpx_shm_data_offset": (mpx_status, [shm_p, POINTER(c_size_t)]),
    "mpx_shm_close": (None, [shm_p]),
    "mpx_shm_unlink": (mpx_status, [c_char_p]),
    "mpx_shm_unlink_self": (mpx_status, [shm_p]),
    # processes
    "mpx_free": (None, [c_void_p]),
    "mpx_proc_opts_new": (mpx_status, [POINTER(proc_opts_p)]),
    "mpx_proc_opts_free": (None, [proc_opts_p]),
    "mpx_proc_opts_set_name": (mpx_status, [proc_opts_p, c_char_p]),
    "mpx_proc_opts_set_daemon": (mpx_status, [proc_opts_p, c_bool]),
    "mpx_proc_opts_set_cwd": (mpx_status, [proc_opts_p, c_char_p]),
    "mpx_proc_opts_setenv": (mpx_status, [proc_opts_p, c_char_p, c_char_p]),
    "mpx_proc_opts_unsetenv": (mpx_status, [proc_opts_p, c_char_p]),
    "mpx_proc_opts_clearenv": (mpx_status, [proc_opts_p]),
    "mpx_proc_opts_keep_fd": (mpx_status, [proc_opts_p, c_int]),
    "mpx_proc_opts_set_stdio": (mpx_status, [proc_opts_p, c_int, c_uint32, c_int]),
    "mpx_proc_opts_set_stdio_file": (mpx_status, [proc_opts_p, c_int, c_char_p, c_bool]),
    "mpx_spawn": (mpx_status, [c_char_p, POINTER(c_char_p), proc_opts_p, POINTER(process_p)]),
    "mpx_start": (mpx_status, [c_uint32, c_char_p, c_char_p, c_size_t, proc_opts_p, POINTER(process_p)]),
    "mpx_forkserver_set_program": (mpx_status, [POINTER(c_char_p)]),
    "mpx_forkserver_serve": (mpx_status, [c_int, POINTER(c_void_p), POINTER(c_void_p), POINTER(c_size_t)]),
    "mpx_process_adopt": (mpx_status, [c_int, c_char_p, POINTER(process_p)]),
    "mpx_process_pid": (c_int, [process_p]),
    "mpx_process_name": (c_char_p, [process_p]),
    "mpx_process_join": (mpx_status, [process_p, c_int64, POINTER(c_int)]),
    "mpx_process_is_alive": (mpx_status, [process_p, POINTER(c_bool)]),
    "mpx_process_exitcode": (mpx_status, [process_p, POINTER(c_bool), POINTER(c_int)]),
    "mpx_process_signal": (mpx_status, [process_p, c_int]),
    "mpx_process_terminate": (mpx_status, [process_p]),
    "mpx_process_kill": (mpx_status, [process_p]),
    "mpx_process_interrupt": (mpx_status, [process_p]),
    "mpx_process_sentinel": (mpx_status, [process_p, POINTER(c_int)]),
    "mpx_process_close": (None, [process_p]),
    "mpx_current_pid": (c_int, []),
    "mpx_parent_pid": (c_int, []),
    "mpx_current_name": (mpx_status, [c_char_p, c_size_t, POINTER(c_size_t)]),
    "mpx_set_current_name": (mpx_status, [c_char_p]),
    "mpx_cpu_count": (c_int, []),
    "mpx_terminate_daemons": (None, []),
    "mpx_current_die_with_parent": (mpx_status, [c_int]),
}


# synchronization: Lock, RLock, Semaphore, Condition, Event, Barrier (mpx.synchronize) and
# Value/Array (mpx.sharedctypes). Handle types and prototypes of include/mpx.h's mpx_lock_*,
# mpx_rlock_*, mpx_semaphore_*, mpx_condition_*, mpx_event_*, mpx_barrier_*, mpx_value_*.
lock_p = handle_type("mpx_lock")
rlock_p = handle_type("mpx_rlock")
semaphore_p = handle_type("mpx_semaphore")
condition_p = handle_type("mpx_condition")
event_p = handle_type("mpx_event")
barrier_p = handle_type("mpx_barrier")
value_p = handle_type("mpx_value")

# Flags of the sync kinds (high 16 bits of a flags word).
MPX_SEM_UNDO = 0x10000
MPX_SEM_VALUE_MAX = 2147483647
MPX_BARRIER_MAX_PARTIES = 32767
MPX_VALUE_LOCK = 0x10000


def _lifecycle(kind, h):
    """The prototypes every sync kind shares: open, open_fd, fd, name, close, unlink."""
    return {
        "mpx_%s_open" % kind: (mpx_status, [c_char_p, c_uint32, POINTER(h)]),
        "mpx_%s_open_fd" % kind: (mpx_status, [c_int, c_uint32, POINTER(h)]),
        "mpx_%s_fd" % kind: (mpx_status, [h, POINTER(c_int)]),
        "mpx_%s_name" % kind: (c_char_p, [h]),
        "mpx_%s_close" % kind: (None, [h]),
        "mpx_%s_unlink" % kind: (mpx_status, [c_char_p]),
    }


PROTOTYPES.update(_lifecycle("lock", lock_p))
PROTOTYPES.update({
    "mpx_lock_create": (mpx_status, [c_char_p, c_uint32, POINTER(lock_p)]),
    "mpx_lock_create_anonymous": (mpx_status, [POINTER(lock_p)]),
    "mpx_lock_acquire": (mpx_status, [lock_p, c_int64]),
    "mpx_lock_release": (mpx_status, [lock_p]),
    "mpx_lock_is_locked": (c_bool, [lock_p]),
    "mpx_lock_is_mine": (c_bool, [lock_p]),
})
PROTOTYPES.update(_lifecycle("rlock", rlock_p))
PROTOTYPES.update({
    "mpx_rlock_create": (mpx_status, [c_char_p, c_uint32, POINTER(rlock_p)]),
    "mpx_rlock_create_anonymous": (mpx_status, [POINTER(rlock_p)]),
    "mpx_rlock_acquire": (mpx_status, [rlock_p, c_int64]),
    "mpx_rlock_release": (mpx_status, [rlock_p]),
    "mpx_rlock_depth": (c_uint32, [rlock_p]),
    "mpx_rlock_is_locked": (c_bool, [rlock_p]),
})
PROTOTYPES.update(_lifecycle("semaphore", semaphore_p))
PROTOTYPES.update({
    "mpx_semaphore_create": (mpx_status, [c_char_p, c_uint32, c_uint32, c_uint32, POINTER(semaphore_p)]),
    "mpx_semaphore_create_anonymous": (mpx_status, [c_uint32, c_uint32, c_uint32, POINTER(semaphore_p)]),
    "mpx_semaphore_acquire": (mpx_status, [semaphore_p, c_int64]),
    "mpx_semaphore_release": (mpx_status, [semaphore_p]),
    "mpx_semaphore_get_value": (c_uint32, [semaphore_p]),
    "mpx_semaphore_max_value": (c_uint32, [semaphore_p]),
    "mpx_semaphore_is_undo": (c_bool, [semaphore_p]),
    "mpx_semaphore_reclaim": (mpx_status, [semaphore_p, POINTER(c_uint32)]),
})
PROTOTYPES.update({
    "mpx_condition_create": (mpx_status, [c_char_p, lock_p, rlock_p, c_uint32, POINTER(condition_p)]),
    "mpx_condition_create_anonymous": (mpx_status, [lock_p, rlock_p, POINTER(condition_p)]),
    "mpx_condition_open": (mpx_status, [c_char_p, lock_p, rlock_p, c_uint32, POINTER(condition_p)]),
    "mpx_condition_open_fd": (mpx_status, [c_int, lock_p, rlock_p, c_uint32, POINTER(condition_p)]),
    "mpx_condition_acquire": (mpx_status, [condition_p, c_int64]),
    "mpx_condition_release": (mpx_status, [condition_p]),
    "mpx_condition_wait": (mpx_status, [condition_p, c_int64]),
    "mpx_condition_wait_part": (mpx_status, [condition_p, c_int64, POINTER(c_uint64)]),
    "mpx_condition_wait_end": (mpx_status, [condition_p, POINTER(c_uint64)]),
    "mpx_condition_notify": (mpx_status, [condition_p, c_uint32]),
    "mpx_condition_notify_all": (mpx_status, [condition_p]),
    "mpx_condition_fd": (mpx_status, [condition_p, POINTER(c_int)]),
    "mpx_condition_name": (c_char_p, [condition_p]),
    "mpx_condition_close": (None, [condition_p]),
    "mpx_condition_unlink": (mpx_status, [c_char_p]),
})
PROTOTYPES.update(_lifecycle("event", event_p))
PROTOTYPES.update({
    "mpx_event_create": (mpx_status, [c_char_p, c_uint32, POINTER(event_p)]),
    "mpx_event_create_anonymous": (mpx_status, [POINTER(event_p)]),
    "mpx_event_set": (mpx_status, [event_p]),
    "mpx_event_clear": (mpx_status, [event_p]),
    "mpx_event_is_set": (c_bool, [event_p]),
    "mpx_event_wait": (mpx_status, [event_p, c_int64]),
})
PROTOTYPES.update(_lifecycle("barrier", barrier_p))
PROTOTYPES.update({
    "mpx_barrier_create": (mpx_status, [c_char_p, c_uint32, c_uint32, POINTER(barrier_p)]),
    "mpx_barrier_create_anonymous": (mpx_status, [c_uint32, POINTER(barrier_p)]),
    "mpx_barrier_wait": (mpx_status, [barrier_p, c_int64, POINTER(c_uint32)]),
    "mpx_barrier_wait_part": (mpx_status, [barrier_p, c_int64, POINTER(c_uint64), POINTER(c_uint32)]),
    "mpx_barrier_wait_end": (mpx_status, [barrier_p, POINTER(c_uint64), POINTER(c_uint32)]),
    "mpx_barrier_abort": (mpx_status, [barrier_p]),
    "mpx_barrier_reset": (mpx_status, [barrier_p]),
    "mpx_barrier_parties": (c_uint32, [barrier_p]),
    "mpx_barrier_n_waiting": (c_uint32, [barrier_p]),
    "mpx_barrier_is_broken": (c_bool, [barrier_p]),
})
PROTOTYPES.update(_lifecycle("value", value_p))
PROTOTYPES.update({
    "mpx_value_create": (mpx_status, [c_char_p, c_char, c_size_t, c_void_p, c_size_t, c_uint32, POINTER(value_p)]),
    "mpx_value_create_anonymous": (mpx_status, [c_char, c_size_t, c_void_p, c_size_t, c_uint32, POINTER(value_p)]),
    "mpx_value_typecode": (c_char, [value_p]),
    "mpx_value_itemsize": (c_size_t, [value_p]),
    "mpx_value_count": (c_size_t, [value_p]),
    "mpx_value_ptr": (c_void_p, [value_p]),
    "mpx_value_has_lock": (c_bool, [value_p]),
    "mpx_value_get": (mpx_status, [value_p, c_size_t, c_void_p, c_size_t]),
    "mpx_value_set": (mpx_status, [value_p, c_size_t, c_void_p, c_size_t]),
    "mpx_value_read": (mpx_status, [value_p, c_size_t, c_void_p, c_size_t]),
    "mpx_value_write": (mpx_status, [value_p, c_size_t, c_void_p, c_size_t]),
    "mpx_value_get_i64": (mpx_status, [value_p, c_size_t, POINTER(c_int64)]),
    "mpx_value_set_i64": (mpx_status, [value_p, c_size_t, c_int64]),
    "mpx_value_fetch_add_i64": (mpx_status, [value_p, c_size_t, c_int64, POINTER(c_int64)]),
    "mpx_value_get_f64": (mpx_status, [value_p, c_size_t, POINTER(c_double)]),
    "mpx_value_set_f64": (mpx_status, [value_p, c_size_t, c_double]),
    "mpx_value_acquire": (mpx_status, [value_p, c_int64]),
    "mpx_value_release": (mpx_status, [value_p]),
})


# queues: Queue, SimpleQueue, JoinableQueue (mpx.queues). Handle type and prototypes of
# include/mpx.h's mpx_queue_* (the zero-copy reserve/commit and read calls hand out raw ring
# pointers, so they are declared for completeness but mpx.queues copies instead).
from ctypes import c_uint64  # noqa: E402

queue_p = handle_type("mpx_queue")

MPX_QUEUE_JOINABLE = 0x10000
MPX_QUEUE_SIMPLE = 0x20000
MPX_QUEUE_MAX_CAPACITY = 2147483648

PROTOTYPES.update({
    "mpx_queue_create": (mpx_status, [c_char_p, c_size_t, c_uint64, c_uint32, POINTER(queue_p)]),
    "mpx_queue_create_anonymous": (mpx_status, [c_size_t, c_uint64, c_uint32, POINTER(queue_p)]),
    "mpx_queue_open": (mpx_status, [c_char_p, c_uint32, POINTER(queue_p)]),
    "mpx_queue_open_fd": (mpx_status, [c_int, c_uint32, POINTER(queue_p)]),
    "mpx_queue_close": (None, [queue_p]),
    "mpx_queue_unlink": (mpx_status, [c_char_p]),
    "mpx_queue_unlink_self": (mpx_status, [queue_p]),
    "mpx_queue_fd": (mpx_status, [queue_p, POINTER(c_int)]),
    "mpx_queue_name": (c_char_p, [queue_p]),
    "mpx_queue_put": (mpx_status, [queue_p, c_void_p, c_size_t, c_int64]),
    "mpx_queue_get": (mpx_status, [queue_p, c_void_p, c_size_t, POINTER(c_size_t), c_int64]),
    "mpx_queue_get_alloc": (mpx_status, [queue_p, POINTER(c_void_p), POINTER(c_size_t), c_int64]),
    "mpx_queue_put_many": (mpx_status, [queue_p, c_void_p, POINTER(c_size_t), c_size_t, c_int64]),
    "mpx_queue_get_many": (mpx_status, [queue_p, c_void_p, c_size_t, POINTER(c_size_t), c_size_t,
                                        POINTER(c_size_t), c_int64]),
    "mpx_queue_reserve": (mpx_status, [queue_p, c_size_t, c_int64, POINTER(c_void_p)]),
    "mpx_queue_commit": (mpx_status, [queue_p, c_size_t]),
    "mpx_queue_abort": (mpx_status, [queue_p]),
    "mpx_queue_read": (mpx_status, [queue_p, c_int64, POINTER(c_void_p), POINTER(c_size_t)]),
    "mpx_queue_read_commit": (mpx_status, [queue_p]),
    "mpx_queue_read_abort": (mpx_status, [queue_p]),
    "mpx_queue_shutdown": (mpx_status, [queue_p]),
    "mpx_queue_is_shutdown": (c_bool, [queue_p]),
    "mpx_queue_qsize": (c_size_t, [queue_p]),
    "mpx_queue_empty": (c_bool, [queue_p]),
    "mpx_queue_full": (c_bool, [queue_p]),
    "mpx_queue_capacity": (c_size_t, [queue_p]),
    "mpx_queue_max_message": (c_size_t, [queue_p]),
    "mpx_queue_max_messages": (c_uint64, [queue_p]),
    "mpx_queue_bytes_used": (c_size_t, [queue_p]),
    "mpx_queue_variant": (c_uint32, [queue_p]),
    "mpx_queue_task_done": (mpx_status, [queue_p]),
    "mpx_queue_join": (mpx_status, [queue_p, c_int64]),
    "mpx_queue_unfinished": (c_uint64, [queue_p]),
    "mpx_queue_recoveries": (c_uint64, [queue_p]),
})


# connections: Pipe, Connection, Listener, Client (mpx.connection). Handle types and prototypes
# of include/mpx.h's mpx_pipe, mpx_conn_*, mpx_listener_*, mpx_client_connect.
from ctypes import c_uint64  # noqa: E402

conn_p = handle_type("mpx_conn")
listener_p = handle_type("mpx_listener")

MPX_CONN_READABLE = 1
MPX_CONN_WRITABLE = 2
MPX_CONN_UNIX = 4
MPX_CONN_MAX_FDS = 253

PROTOTYPES.update({
    "mpx_pipe": (mpx_status, [c_bool, POINTER(conn_p), POINTER(conn_p)]),
    "mpx_conn_from_fd": (mpx_status, [c_int, c_uint32, POINTER(conn_p)]),
    "mpx_conn_close": (None, [conn_p]),
    "mpx_conn_fileno": (mpx_status, [conn_p, POINTER(c_int)]),
    "mpx_conn_flags": (mpx_status, [conn_p, POINTER(c_uint32)]),
    "mpx_conn_peer_address": (mpx_status, [conn_p, c_char_p, c_size_t, POINTER(c_size_t)]),
    "mpx_conn_set_max_message_size": (mpx_status, [conn_p, c_uint64]),
    "mpx_conn_send": (mpx_status, [conn_p, c_void_p, c_size_t]),
    "mpx_conn_recv": (mpx_status, [conn_p, c_void_p, c_size_t, POINTER(c_size_t), c_int64]),
    "mpx_conn_recv_alloc": (mpx_status, [conn_p, POINTER(c_void_p), POINTER(c_size_t), c_int64]),
    "mpx_conn_recv_part": (
        mpx_status,
        [conn_p, c_void_p, c_size_t, POINTER(c_size_t), POINTER(c_size_t), c_int64],
    ),
    "mpx_conn_poll": (mpx_status, [conn_p, c_int64, POINTER(c_bool)]),
    "mpx_conn_wait": (mpx_status, [POINTER(conn_p), c_size_t, c_int64, POINTER(c_bool), POINTER(c_size_t)]),
    "mpx_conn_send_fds": (mpx_status, [conn_p, POINTER(c_int), c_size_t]),
    "mpx_conn_recv_fds": (mpx_status, [conn_p, POINTER(c_int), c_size_t, POINTER(c_size_t), c_int64]),
    "mpx_conn_send_shm": (mpx_status, [conn_p, shm_p]),
    "mpx_conn_recv_shm": (mpx_status, [conn_p, c_uint32, c_int64, POINTER(shm_p)]),
    "mpx_listener_create": (mpx_status, [c_char_p, c_int, c_char_p, c_size_t, POINTER(listener_p)]),
    "mpx_listener_accept": (mpx_status, [listener_p, c_int64, POINTER(conn_p)]),
    "mpx_listener_address": (mpx_status, [listener_p, c_char_p, c_size_t, POINTER(c_size_t)]),
    "mpx_listener_fileno": (mpx_status, [listener_p, POINTER(c_int)]),
    "mpx_listener_set_handshake_timeout": (mpx_status, [listener_p, c_int64]),
    "mpx_listener_close": (None, [listener_p]),
    "mpx_client_connect": (mpx_status, [c_char_p, c_char_p, c_size_t, c_int64, POINTER(conn_p)]),
})


class _Functions:
    """The declared C functions as attributes (``lib.mpx_shm_open(...)``). Each is looked up
    and given its prototype on first use, then kept as an attribute: doing it for the whole
    table at import cost a few milliseconds that every process, every spawned child included,
    paid for functions it mostly never calls."""

    def __init__(self, cdll, path):
        self._cdll = cdll
        self._path = path

    def __getattr__(self, name):
        try:
            restype, argtypes = PROTOTYPES[name]
        except KeyError:
            raise AttributeError("%s has no prototype in mpx._lib.PROTOTYPES" % name) from None
        try:
            # Its own function object (not the CDLL's cached one, which other modules may
            # configure differently for their fast paths).
            fn = self._cdll[name]
        except AttributeError:
            # An older library: the call fails when (and only when) the function is used.
            raise AttributeError("%s does not export %s (rebuild it: cargo build --release)" % (self._path, name)) from None
        fn.restype = restype
        fn.argtypes = argtypes
        setattr(self, name, fn)
        return fn


_cdll, library_path = _load()
lib = _Functions(_cdll, library_path)

if lib.mpx_abi_version() != ABI_VERSION:
    raise ImportError(
        "mpx: %s implements C ABI version %d but this package needs version %d"
        % (library_path, lib.mpx_abi_version(), ABI_VERSION)
    )

version = lib.mpx_version().decode("ascii", "replace")

try:
    from . import _speedups
except ImportError:  # not built (it is optional): every call goes through ctypes
    _speedups = None


def speedups_enabled():
    """Whether fast() gives accelerated calls: the optional accelerator is built and
    MPX_NO_SPEEDUPS is not set."""
    return _speedups is not None and not os.environ.get("MPX_NO_SPEEDUPS")


def fast(name, signature):
    """A faster callable for a hot-path C function, or None when the optional accelerator
    (mpx/_speedups.c, built by ``make pyext``) is not available: callers keep their ctypes
    path for that case. ``signature`` names the C parameters after the handle (see
    _speedups.c): "p" f(h), "pq" f(h, int64), "pb" f(h, buf, len), "pbq" f(h, buf, len, int64),
    "pwoq" f(h, buf, cap, out, int64), "pqo" f(h, int64, out), "pqoo" f(h, int64, out, out).
    Handles may be ints or ctypes pointers; buffers anything with the buffer protocol (out: e.g. a ctypes.c_size_t).
    Set MPX_NO_SPEEDUPS=1 to disable it (to compare, or to rule it out)."""
    if not speedups_enabled():
        return None
    getattr(lib, name)  # a clear error for a missing prototype or symbol
    address = ctypes.cast(getattr(_cdll, name), ctypes.c_void_p).value
    return _speedups.bind(name, address, signature)


# Calls that never wait keep the GIL (PyDLL), which costs less than releasing it.
_gil_held_dll = ctypes.PyDLL(library_path)


def entry(name, blocking, argtypes=None):
    """A function object of its own for the C function ``name``, for a module's hot path:
    ``blocking`` calls release the GIL (CDLL), others keep it (PyDLL). With ``argtypes`` None
    there is no per-call conversion: callers pass exactly the prototype's ctypes types (or bytes
    / None for pointers). The result type is the prototype's."""
    fn = (_cdll if blocking else _gil_held_dll)[name]
    fn.restype = PROTOTYPES[name][0]
    fn.argtypes = argtypes
    return fn


def last_error():
    """The calling thread's last error message from the library ("" if none)."""
    msg = lib.mpx_last_error()
    return msg.decode("utf-8", "replace") if msg else ""


def status_name(status):
    """The constant name of a status code, as the library spells it."""
    return lib.mpx_status_name(status).decode("ascii", "replace")


def error(status, message=None):
    """The exception for a failed status; the message defaults to mpx_last_error()."""
    if message is None:
        message = last_error()
    return errors.from_status(status, message, status_name(status), lib.mpx_last_errno())


def check(status, allow=()):
    """Returns ``status`` if it is MPX_OK (or in ``allow``, e.g. MPX_E_OWNER_DIED for a lock,
    which means success with news); otherwise raises the matching exception. Call it right
    after the C call, on the same thread."""
    if status == errors.MPX_OK or status in allow:
        return status
    raise error(status)


def name_arg(name, what="name"):
    """A Python object name as the bytes the C functions take. Validation of the characters is
    the library's (it says exactly why a name is refused); here only what C strings cannot carry:
    non-str types, and NUL bytes (C would silently cut the name at the NUL)."""
    if not isinstance(name, str):
        raise TypeError("%s must be str, not %s" % (what, type(name).__name__))
    if "\0" in name:
        raise ValueError("invalid %s %r: embedded null character" % (what, name))
    try:
        # surrogateescape turns undecodable bytes (from os.fsdecode) back into those bytes, so
        # the library reports "not UTF-8" itself.
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ValueError("invalid %s %r: not valid UTF-8 (use A-Z a-z 0-9 . _ -)" % (what, name)) from None


def size_arg(size, what="size"):
    """An integer size for a size_t parameter. ctypes truncates out-of-range integers silently,
    so anything that does not fit is refused here."""
    size = operator.index(size)
    if size > (1 << (8 * ctypes.sizeof(c_size_t))) - 1:
        raise ValueError("%s %d is too large" % (what, size))
    return size


__all__ = [
    "ABI_VERSION",
    "MPX_FOREVER",
    "MPX_F_MODE_ALL",
    "MPX_F_MODE_GROUP",
    "MPX_F_READ_ONLY",
    "MPX_F_UNLINK_ON_LAST_CLOSE",
    "PROTOTYPES",
    "check",
    "error",
    "fast",
    "handle_type",
    "last_error",
    "lib",
    "library_path",
    "mpx_status",
    "name_arg",
    "size_arg",
    "speedups_enabled",
    "status_name",
    "version",
]
