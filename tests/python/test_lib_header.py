"""mpx's ctypes declarations against include/mpx.h, the generated C header: what _lib.py
declares can drift from the library, and ctypes would then pass wrong arguments silently.

Every place a C function gets its C types is checked: mpx._lib.PROTOTYPES (set on a function's
first call through ``lib``), the function objects mpx._lib.entry() makes for the hot paths (the
prototype's result, the caller's argtypes), the accelerator's calls (mpx._lib.fast() binds a
function to one of _speedups.c's C function types; Mapping takes three function addresses),
and shared_memory's own function objects. The constants (status codes, flags, limits, start
methods) must equal the header's #defines, and every status of the header must be known to
mpx.errors. The checker itself is tested on deliberately wrong tables (header_check.py).
"""

import ast
import ctypes
import json
import os
import re
import subprocess
import sys
from ctypes import POINTER, c_char_p, c_int, c_int32, c_int64, c_size_t, c_uint32, c_void_p

import pytest

import header_check as hc
import mpx
from conftest import child_env
from mpx import _lib, errors

TIMEOUT = 60


@pytest.fixture(scope="module")
def header():
    return hc.load_header()


def _all_modules():
    import importlib

    names = sorted(f[:-3] for f in os.listdir(hc.PACKAGE) if f.endswith(".py") and f != "__init__.py")
    return [mpx] + [importlib.import_module("mpx." + n) for n in names]


# --------------------------------------------------------------------------------------------
# The parser


def test_header_is_parsed(header):
    assert len(header.functions) > 150
    assert {"mpx_lock", "mpx_queue", "mpx_shm", "mpx_conn"} <= header.structs
    assert header.functions["mpx_conn_wait"] == hc.CFunc(
        hc.CType("int32_t", 0),  # mpx_status, through its typedef
        [hc.CType("mpx_conn", 2), hc.CType("size_t", 0), hc.CType("int64_t", 0), hc.CType("bool", 1),
         hc.CType("size_t", 1)])
    assert header.functions["mpx_version"] == hc.CFunc(hc.CType("char", 1), [])
    assert header.functions["mpx_shm_close"] == hc.CFunc(hc.CType("void", 0), [hc.CType("mpx_shm", 1)])
    assert header.defines["MPX_E_TIMEOUT"] == -4 and header.defines["MPX_QUEUE_MAX_CAPACITY"] == 1 << 31


def test_speedups_signatures_are_parsed():
    sigs = hc.parse_speedups_signatures()
    assert {"f_p", "f_pq", "f_pb", "f_pbq", "f_pwoq", "f_pqo", "f_close", "f_ptr", "f_size"} <= set(sigs)
    assert sigs["f_pq"] == hc.CFunc(hc.CType("int32_t", 0), [hc.CType("void", 1), hc.CType("int64_t", 0)])
    assert sigs["f_ptr"] == hc.CFunc(hc.CType("void", 1), [hc.CType("void", 1)])


# --------------------------------------------------------------------------------------------
# The checker catches what it is for (tables changed here, _lib.py untouched)


def _with(**changes):
    table = dict(_lib.PROTOTYPES)
    table.update(changes)
    return table


def test_checker_catches_a_wrong_argument_type(header):
    problems = hc.check_prototypes(_with(mpx_lock_acquire=(_lib.mpx_status, [_lib.lock_p, c_int32])), header)
    assert len(problems) == 1 and "mpx_lock_acquire argument 2 is int64_t" in problems[0], problems


def test_checker_catches_a_wrong_handle_kind(header):
    problems = hc.check_prototypes(_with(mpx_lock_release=(_lib.mpx_status, [_lib.rlock_p])), header)
    assert len(problems) == 1 and "mpx_lock_release argument 1" in problems[0], problems
    # An out-parameter of the wrong kind too (mpx_lock ** declared as mpx_rlock **).
    problems = hc.check_prototypes(
        _with(mpx_lock_create=(_lib.mpx_status, [c_char_p, c_uint32, POINTER(_lib.rlock_p)])), header)
    assert len(problems) == 1 and "argument 3" in problems[0], problems


def test_checker_catches_a_wrong_count_result_or_name(header):
    problems = hc.check_prototypes(_with(mpx_queue_put=(_lib.mpx_status, [_lib.queue_p, c_void_p, c_size_t])), header)
    assert len(problems) == 1 and "takes 4 arguments in the header, 3 declared" in problems[0], problems
    problems = hc.check_prototypes(_with(mpx_queue_unfinished=(c_uint32, [_lib.queue_p])), header)
    assert len(problems) == 1 and "returns uint64_t" in problems[0], problems
    problems = hc.check_prototypes(_with(mpx_version=(c_void_p, [c_int])), header)
    assert len(problems) == 1 and "takes 0 arguments" in problems[0], problems
    problems = hc.check_prototypes(_with(mpx_lock_aquire=(_lib.mpx_status, [_lib.lock_p, c_int64])), header)
    assert problems == ["mpx._lib.PROTOTYPES: mpx_lock_aquire is not a function of include/mpx.h"]
    # A string where the header has a pointer to pointers (argv), and a scalar for a pointer.
    problems = hc.check_prototypes(
        _with(mpx_forkserver_set_program=(_lib.mpx_status, [c_char_p]),
              mpx_shm_fd=(_lib.mpx_status, [_lib.shm_p, c_int])), header)
    assert len(problems) == 2, problems


def test_checker_catches_a_wrong_accelerator_signature(header):
    sigs = hc.parse_speedups_signatures()
    assert hc.check_signature("mpx_lock_acquire", "f_pq", sigs, header, "t") == []
    assert hc.check_signature("mpx_queue_put", "f_pbq", sigs, header, "t") == []
    assert hc.check_signature("mpx_lock_acquire", "f_p", sigs, header, "t")  # one argument short
    assert hc.check_signature("mpx_queue_put", "f_pwoq", sigs, header, "t")
    assert hc.check_signature("mpx_barrier_parties", "f_p", sigs, header, "t")  # returns uint32_t
    assert hc.check_signature("mpx_shm_size", "f_ptr", sigs, header, "t")  # size_t is no pointer
    assert hc.check_signature("mpx_shm_ptr", "f_ptr", sigs, header, "t") == []


def test_checker_catches_wrong_constants_and_unknown_statuses(header):
    assert hc.check_constants({"MPX_SEM_UNDO": 0x10000}, header, "t") == []
    assert hc.check_constants({"MPX_SEM_UNDO": 0x20000}, header, "t") == ["t: MPX_SEM_UNDO is 131072, include/mpx.h says 65536"]
    assert hc.check_constants({"MPX_NO_SUCH_FLAG": 1}, header, "t") == ["t: MPX_NO_SUCH_FLAG is not defined in include/mpx.h"]
    # A status added to the header that mpx.errors does not know.
    with open(hc.HEADER) as f:
        grown = hc.parse_header("#define MPX_E_SOMETHING_NEW -99\n" + f.read())
    problems = hc.check_statuses_known(grown, errors)
    assert problems == ["mpx.errors: the status MPX_E_SOMETHING_NEW (-99) of include/mpx.h is missing"]


def test_checker_refuses_a_c_type_it_cannot_map(header):
    odd = hc.parse_header("typedef struct mpx_x mpx_x;\ntypedef int32_t mpx_status;\n"
                          "mpx_status mpx_x_f(mpx_x *x, uint16_t n);\n")
    problems = hc.check_function("mpx_x_f", c_int32, [c_void_p, ctypes.c_uint16], odd, "t")
    assert len(problems) == 1 and "no ctypes mapping for the C type 'uint16_t'" in problems[0], problems


# --------------------------------------------------------------------------------------------
# The package against the header


def test_prototypes_match_the_header(header):
    assert hc.check_prototypes(_lib.PROTOTYPES, header) == []


def _run_collector(no_speedups):
    env = child_env()
    env.pop("MPX_NO_SPEEDUPS", None)
    if no_speedups:
        env["MPX_NO_SPEEDUPS"] = "1"
    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "header_check.py")],
                       capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("no_speedups", [False, True], ids=["accelerated", "ctypes"])
def test_hot_path_declarations_match_the_header(no_speedups):
    report = _run_collector(no_speedups)
    assert report["problems"] == []
    # The collector saw the sites (a checker that saw nothing would pass anything).
    assert report["held"] >= 10 and report["mapping"] == 3
    if no_speedups or not report["speedups"]:
        assert report["entry"] >= 20
    else:
        assert report["fast"] >= 15 and report["entry"] >= 5
    if not no_speedups and not report["speedups"]:
        pytest.skip("the accelerator is not built (make pyext): its signatures were not checked")


def test_constants_match_the_header(header):
    problems = []
    for mod in _all_modules():
        problems += hc.check_constants(hc.module_constants(mod), header, mod.__name__)
    if _lib._speedups is not None:
        problems += hc.check_constants(hc.module_constants(_lib._speedups), header, "mpx._speedups")
    assert problems == []
    # The ones the package defines are all seen (a name pattern that found nothing would pass).
    seen = set()
    for mod in _all_modules():
        seen |= set(hc.module_constants(mod))
    assert {"MPX_ABI_VERSION", "MPX_FOREVER", "MPX_F_UNLINK_ON_LAST_CLOSE", "MPX_OK", "MPX_E_UNSUPPORTED",
            "MPX_START_FORKSERVER", "MPX_STDIO_FD", "MPX_QUEUE_JOINABLE", "MPX_CONN_MAX_FDS",
            "MPX_SEM_VALUE_MAX", "MPX_VALUE_LOCK"} <= seen


def test_every_status_of_the_header_is_known(header):
    assert hc.check_statuses_known(header, errors) == []
    # ...and the library names each the same way.
    for name, value in header.defines.items():
        if name.startswith("MPX_E_") or name == "MPX_OK":
            assert _lib.status_name(value) == name


# --------------------------------------------------------------------------------------------
# No declaration site the checks above do not know about


def _sources():
    for f in sorted(os.listdir(hc.PACKAGE)):
        if f.endswith(".py"):
            with open(os.path.join(hc.PACKAGE, f)) as fh:
                yield f, fh.read()


def _named_functions(tree):
    """C function names in a module's code: ``lib.mpx_x`` and the first argument of entry(),
    fast(), _fast() and _lean()."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "lib":
            if node.attr.startswith("mpx_"):
                names.add(node.attr)
        elif isinstance(node, ast.Call) and node.args:
            fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            arg = node.args[0]
            if fn in ("entry", "fast", "_fast", "_lean") and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
    return names


def test_every_function_the_package_names_has_a_prototype():
    # A call without a prototype would otherwise show only when it runs (AttributeError).
    named = set()
    for f, text in _sources():
        named |= {(f, n) for n in _named_functions(ast.parse(text))}
    assert len(named) > 100
    assert sorted((f, n) for f, n in named if n not in _lib.PROTOTYPES) == []


# Where the package sets C types on a function object (restype/argtypes), by file and function:
# _lib's lazy prototypes and entry(), shared_memory's _lean(), connection's CPython API calls.
KNOWN_SITES = {
    ("_lib.py", "__getattr__"),
    ("_lib.py", "entry"),
    ("shared_memory.py", "_lean"),
    ("connection.py", None),
}


def _assignment_sites(tree):
    """(enclosing function's name or None, attribute) of every ``x.attr = ...`` in a module."""
    out = []

    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Assign):
                out.extend((func, t.attr) for t in child.targets if isinstance(t, ast.Attribute))
            visit(child, func)

    visit(tree, None)
    return out


def test_no_unknown_declaration_site():
    found = set()
    for f, text in _sources():
        for func, attr in _assignment_sites(ast.parse(text)):
            if attr in ("restype", "argtypes"):
                found.add((f, func))
    # Module level of connection: only the CPython API's functions (checked here by name).
    from mpx import connection

    for v in vars(connection).values():
        if isinstance(v, ctypes._CFuncPtr) and not v.__name__.startswith("mpx_"):
            assert v.__name__.startswith("Py"), v.__name__
    assert found <= KNOWN_SITES, "a new declaration site: check it in header_check.py and add it here"
    assert ("_lib.py", "__getattr__") in found and ("_lib.py", "entry") in found
