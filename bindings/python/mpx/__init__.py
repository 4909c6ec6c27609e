"""mpx: multiprocessing for every language on one machine.

The Python binding of libmpx (ctypes over the C ABI). It mirrors :mod:`multiprocessing`'s names
and semantics, and its objects are shared by name with C, C++ and Rust programs using mpx::

    from mpx.shared_memory import SharedMemory
    shm = SharedMemory("frames", create=True, size=1 << 20)

Errors are the exceptions Python users expect (FileNotFoundError, FileExistsError, ValueError,
TimeoutError, ...); mpx-specific ones are in :mod:`mpx.errors`.

The native library is found through MPX_LIBRARY, next to the package, in the repository's
target/release, or on the system path; ``mpx.library_path`` says which was loaded.
"""

from . import errors
from ._lib import ABI_VERSION, library_path, version as _library_version
from .errors import CorruptError, KindError, MpxError, VersionError

#: Version of the loaded native library (mpx_version()).
__version__ = _library_version

# Processes: Process, current_process, get_context, ... are the default context's, as in
# multiprocessing (`import mpx as multiprocessing` works for Process code). Imported at once:
# every process (a spawned child too) needs them.
from . import context, process  # noqa: E402
from .process import ExecProcess  # noqa: E402

globals().update((_n, getattr(context._default_context, _n)) for _n in context._PUBLIC)

# The other capabilities are imported on first use (PEP 562): `mpx.Queue`, `from mpx import
# Lock`, `mpx.get_context().Pipe` and `import mpx.queues` all work as if they were imported here,
# but `import mpx` (which every spawned child pays before it runs anything) loads only what the
# process machinery needs. Name -> (submodule, attribute in it; None for the submodule itself).
# The same names are offered on every context (mpx.context._LAZY_CONTEXT_NAMES).
_LAZY = {
    "shared_memory": ("shared_memory", None),
    # Synchronization and shared values: the names multiprocessing exports, plus mpx's
    # OwnerDiedWarning and NotOwnedError.
    "sharedctypes": ("sharedctypes", None),
    "synchronize": ("synchronize", None),
    "Array": ("sharedctypes", "Array"),
    "RawArray": ("sharedctypes", "RawArray"),
    "RawValue": ("sharedctypes", "RawValue"),
    "Value": ("sharedctypes", "Value"),
    "Barrier": ("synchronize", "Barrier"),
    "BoundedSemaphore": ("synchronize", "BoundedSemaphore"),
    "BrokenBarrierError": ("synchronize", "BrokenBarrierError"),
    "Condition": ("synchronize", "Condition"),
    "Event": ("synchronize", "Event"),
    "Lock": ("synchronize", "Lock"),
    "NotOwnedError": ("synchronize", "NotOwnedError"),
    "OwnerDiedWarning": ("synchronize", "OwnerDiedWarning"),
    "RLock": ("synchronize", "RLock"),
    "Semaphore": ("synchronize", "Semaphore"),
    # Connections: Pipe at the top level; Listener, Client and wait in mpx.connection, as
    # multiprocessing.connection.
    "connection": ("connection", None),
    "Pipe": ("connection", "Pipe"),
    # Queues: mpx's QueueClosed (after shutdown()) and MessageTooBig besides multiprocessing's.
    "queues": ("queues", None),
    "JoinableQueue": ("queues", "JoinableQueue"),
    "MessageTooBig": ("queues", "MessageTooBig"),
    "Queue": ("queues", "Queue"),
    "QueueClosed": ("queues", "QueueClosed"),
    "SimpleQueue": ("queues", "SimpleQueue"),
}


def __getattr__(name):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError("module 'mpx' has no attribute %r" % (name,)) from None
    import importlib  # lazily: `import mpx` does not load it

    value = importlib.import_module("." + module, __name__)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ABI_VERSION",
    "CorruptError",
    "KindError",
    "MpxError",
    "VersionError",
    "errors",
    "library_path",
    # processes
    "ExecProcess",
    "context",
    "process",
] + list(context._PUBLIC) + list(_LAZY)
