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

__all__ = [
    "ABI_VERSION",
    "CorruptError",
    "KindError",
    "MpxError",
    "VersionError",
    "errors",
    "library_path",
    "shared_memory",
]
