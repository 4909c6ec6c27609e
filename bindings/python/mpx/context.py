"""Contexts and start methods, as in multiprocessing.context.

``get_context(method)`` returns a context for 'fork', 'spawn' or 'forkserver' whose ``Process``
starts children that way; the module-level functions of mpx are the default context's, whose
start method is fixed on first use (``set_start_method`` before that, else 'fork' on Linux, as
CPython 3.11) and whose ``Process`` looks the method up at start().

Adding a capability (Queue, Lock, Pool, ...): give BaseContext a method that builds the object
with ``ctx=self.get_context()`` where the method matters, and add its name to ``_PUBLIC``; mpx
exports every name in ``_PUBLIC`` from the default context, as multiprocessing does. The objects
of the capability submodules (Lock, Value, Pipe, Queue, ...) are on every context too, imported
on first use like the package's own names (``_SUBMODULE_NAMES``).
"""

import multiprocessing as _std

from . import process
from ._lib import lib
from .process import _launch_fork, default_start_method, set_default_start_method

__all__ = ["BaseContext", "DefaultContext", "ForkContext", "ForkServerContext", "Process", "SpawnContext"]

# Exported as mpx.<name> (bound to the default context).
_PUBLIC = [
    "Process",
    "current_process",
    "parent_process",
    "active_children",
    "cpu_count",
    "get_context",
    "get_start_method",
    "set_start_method",
    "get_all_start_methods",
    "set_executable",
    "set_forkserver_preload",
    "spawn_executable",
    "ProcessError",
    "BufferTooShort",
    "TimeoutError",
    "AuthenticationError",
]

_METHODS = ["fork", "spawn", "forkserver"]


class BaseContext:
    # The standard library's exceptions, so `except multiprocessing.X` catches ours too.
    ProcessError = _std.ProcessError
    BufferTooShort = _std.BufferTooShort
    TimeoutError = _std.TimeoutError
    AuthenticationError = _std.AuthenticationError

    current_process = staticmethod(process.current_process)
    parent_process = staticmethod(process.parent_process)
    active_children = staticmethod(process.active_children)
    spawn_executable = staticmethod(process.spawn_executable)

    def cpu_count(self):
        """Number of CPUs online."""
        n = lib.mpx_cpu_count()
        if n < 1:
            raise NotImplementedError("cannot determine number of cpus")
        return n

    def get_context(self, method=None):
        if method is None:
            return self
        try:
            return _concrete_contexts[method]
        except (KeyError, TypeError):
            raise ValueError("cannot find context for %r" % (method,)) from None

    def get_start_method(self, allow_none=False):
        return self._name

    def set_start_method(self, method, force=False):
        raise ValueError("cannot set start method of concrete context")

    def get_all_start_methods(self):
        return list(_METHODS)

    def set_executable(self, executable):
        """The interpreter 'spawn' and 'forkserver' children run (shared with the standard
        library's setting)."""
        from multiprocessing import spawn  # lazily: `import mpx` does not load it

        spawn.set_executable(executable)

    def set_forkserver_preload(self, module_names):
        """Modules the fork server imports once, before forking children (default
        ['__main__']). Takes effect when the server starts (at the first forkserver start)."""
        from ._forkserver import set_forkserver_preload  # lazily, as in ForkServerProcess

        set_forkserver_preload(module_names)

    def _check_available(self):
        pass

    def __repr__(self):
        return "<mpx context %r>" % self.get_start_method(allow_none=True)


#
# Process classes: one per start method, and the default one that asks the default context.
#


class Process(process.BaseProcess):
    _start_method = None

    @staticmethod
    def _Popen(process_obj):
        return _default_context.get_context().Process._Popen(process_obj)


class ForkProcess(process.BaseProcess):
    _start_method = "fork"

    @staticmethod
    def _Popen(process_obj):
        return _launch_fork(process_obj)


class SpawnProcess(process.BaseProcess):
    _start_method = "spawn"

    @staticmethod
    def _Popen(process_obj):
        # Lazily: `import mpx` (what every child pays) does not load the launchers of the
        # start methods it does not use.
        from ._spawn import launch

        return launch(process_obj)


class ForkServerProcess(process.BaseProcess):
    _start_method = "forkserver"

    @staticmethod
    def _Popen(process_obj):
        from ._forkserver import launch  # lazily, as in SpawnProcess

        return launch(process_obj)


class ForkContext(BaseContext):
    _name = "fork"
    Process = ForkProcess


class SpawnContext(BaseContext):
    _name = "spawn"
    Process = SpawnProcess


class ForkServerContext(BaseContext):
    _name = "forkserver"
    Process = ForkServerProcess


class DefaultContext(BaseContext):
    """The context behind mpx's module-level functions: its start method is set once. The
    method is kept in mpx.process, where a child that starts sets it (and where the launchers
    read what to tell a child)."""

    Process = Process

    def __init__(self, context):
        self._default_context = context

    def get_context(self, method=None):
        if method is None:
            return _concrete_contexts[self.get_start_method()]
        return super().get_context(method)

    def set_start_method(self, method, force=False):
        if default_start_method() is not None and not force:
            raise RuntimeError("context has already been set")
        if method is None and force:
            set_default_start_method(None)
            return
        set_default_start_method(self.get_context(method)._name)

    def get_start_method(self, allow_none=False):
        if default_start_method() is None:
            if allow_none:
                return None
            set_default_start_method(self._default_context._name)
        return default_start_method()

    def get_all_start_methods(self):
        # The default first, as the standard library orders them.
        return list(_METHODS)


class _FromSubmodule:
    """A BaseContext attribute for an object of an mpx submodule (``ctx.Queue`` is mpx.Queue),
    importing the submodule on first access, then replaced by the object itself: `import mpx`,
    which every spawned child pays, does not load capabilities the program never uses."""

    def __init__(self, name, module):
        self.name = name
        self.module = module

    def __get__(self, obj, objtype=None):
        import importlib  # lazily: `import mpx` does not load it

        value = getattr(importlib.import_module("." + self.module, __package__), self.name)
        setattr(BaseContext, self.name, staticmethod(value))
        return value


# Name -> mpx submodule, offered on every context as multiprocessing's contexts have them (a
# context that defines one itself keeps its own).
_SUBMODULE_NAMES = {
    "Lock": "synchronize",
    "RLock": "synchronize",
    "Semaphore": "synchronize",
    "BoundedSemaphore": "synchronize",
    "Condition": "synchronize",
    "Event": "synchronize",
    "Barrier": "synchronize",
    "Value": "sharedctypes",
    "Array": "sharedctypes",
    "RawValue": "sharedctypes",
    "RawArray": "sharedctypes",
    "Pipe": "connection",
    "Queue": "queues",
    "SimpleQueue": "queues",
    "JoinableQueue": "queues",
}
for _n, _m in _SUBMODULE_NAMES.items():
    if _n not in BaseContext.__dict__:
        setattr(BaseContext, _n, _FromSubmodule(_n, _m))
del _n, _m


_concrete_contexts = {
    "fork": ForkContext(),
    "spawn": SpawnContext(),
    "forkserver": ForkServerContext(),
}
# CPython 3.11 on Linux starts with 'fork'.
_default_context = DefaultContext(_concrete_contexts["fork"])
