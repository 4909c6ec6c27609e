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

# Capabilities, one submodule each (later ones add their imports and names here).
from . import shared_memory  # noqa: E402

# Processes: Process, current_process, get_context, ... are the default context's, as in
# multiprocessing (`import mpx as multiprocessing` works for Process code).
from . import context, process  # noqa: E402
from .process import ExecProcess  # noqa: E402

globals().update((_n, getattr(context._default_context, _n)) for _n in context._PUBLIC)

__all__ = [
    "ABI_VERSION",
    "CorruptError",
    "KindError",
    "MpxError",
    "VersionError",
    "errors",
    "library_path",
    "shared_memory",
    # processes
    "ExecProcess",
    "context",
    "process",
] + list(context._PUBLIC)

# Synchronization and shared values (mpx.synchronize, mpx.sharedctypes): the names
# multiprocessing exports, plus mpx's OwnerDiedWarning and NotOwnedError. The same names are
# offered on every context (mpx.get_context("spawn").Lock(), ...), as multiprocessing's
# contexts have them; a context that defines one itself keeps its own.
from . import sharedctypes, synchronize  # noqa: E402
from .sharedctypes import Array, RawArray, RawValue, Value  # noqa: E402
from .synchronize import (  # noqa: E402
    Barrier,
    BoundedSemaphore,
    BrokenBarrierError,
    Condition,
    Event,
    Lock,
    NotOwnedError,
    OwnerDiedWarning,
    RLock,
    Semaphore,
)

_SYNC_NAMES = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier",
               "Value", "Array", "RawValue", "RawArray"]
for _n in _SYNC_NAMES:
    if not hasattr(context.BaseContext, _n):
        setattr(context.BaseContext, _n, staticmethod(globals()[_n]))
del _n

__all__ += _SYNC_NAMES + ["BrokenBarrierError", "NotOwnedError", "OwnerDiedWarning", "sharedctypes", "synchronize"]

# Connections (mpx.connection): Pipe at the top level and on every context, as multiprocessing
# has it; Listener, Client and wait in the submodule, as multiprocessing.connection.
from . import connection  # noqa: E402
from .connection import Pipe  # noqa: E402

if not hasattr(context.BaseContext, "Pipe"):
    context.BaseContext.Pipe = staticmethod(Pipe)

__all__ += ["Pipe", "connection"]

# Queues (mpx.queues): Queue, SimpleQueue and JoinableQueue at the top level and on every
# context, as multiprocessing has them; mpx's QueueClosed (after shutdown()) and MessageTooBig.
from . import queues  # noqa: E402
from .queues import JoinableQueue, MessageTooBig, Queue, QueueClosed, SimpleQueue  # noqa: E402

for _n in ("Queue", "SimpleQueue", "JoinableQueue"):
    if not hasattr(context.BaseContext, _n):
        setattr(context.BaseContext, _n, staticmethod(globals()[_n]))
del _n

__all__ += ["JoinableQueue", "MessageTooBig", "Queue", "QueueClosed", "SimpleQueue", "queues"]
