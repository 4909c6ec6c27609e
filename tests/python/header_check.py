"""Checks the ctypes declarations of mpx against include/mpx.h (used by test_lib_header.py).

The header is parsed here (it is cbindgen's plain output: typedefs, #defines and one prototype
per function). C types are compared by what they are to the ABI: each scalar C type maps to
one ctypes type (ctypes' own aliases make int and int32_t, size_t and uint64_t the same type,
which they are on Linux); a pointer matches c_void_p, c_char_p for a char or byte buffer, or
POINTER() of what it points to, with handles (``mpx_lock *``) matched by their struct's name.

Run as a script (``python header_check.py``), it imports the package with mpx._lib.entry and
mpx._lib.fast wrapped, so that it sees every hot-path function object the modules make at
import, checks those and the other declaration sites against the header, and prints a JSON
report: the test runs it in fresh interpreters, with and without the accelerator.
"""

import ctypes
import json
import os
import re
import sys
from collections import namedtuple
from ctypes import c_bool, c_char, c_char_p, c_double, c_int, c_int32, c_int64, c_size_t, c_uint8, c_uint32
from ctypes import c_uint64, c_void_p

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HEADER = os.path.join(ROOT, "include", "mpx.h")
PACKAGE = os.path.join(ROOT, "bindings", "python", "mpx")
SPEEDUPS_C = os.path.join(PACKAGE, "_speedups.c")

#: A C type with its qualifiers dropped: the base type's name (typedef aliases resolved) and
#: the number of '*'.
CType = namedtuple("CType", "base depth")

#: A parsed C function: result and parameter types.
CFunc = namedtuple("CFunc", "ret params")

#: The ctypes type each scalar C type of the header is declared with (None: void).
C_SCALARS = {
    "void": None,
    "bool": c_bool,
    "char": c_char,
    "int": c_int,
    "int32_t": c_int32,
    "uint32_t": c_uint32,
    "int64_t": c_int64,
    "uint64_t": c_uint64,
    "size_t": c_size_t,
    "uint8_t": c_uint8,
    "double": c_double,
}

# What a c_char_p may stand for: a C string or a byte buffer.
_BYTE_BASES = ("char", "uint8_t", "void")


class Header:
    """include/mpx.h parsed: ``functions`` {name: CFunc}, ``defines`` {name: int}, ``structs``
    (the opaque handle types), ``fnptrs`` (function pointer typedefs)."""

    def __init__(self, functions, defines, structs, fnptrs):
        self.functions = functions
        self.defines = defines
        self.structs = structs
        self.fnptrs = fnptrs


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def parse_type(decl, aliases=None, named=True):
    """(name or None, CType) of a declaration such as ``const mpx_conn *const *conns``; with
    ``named`` False the declaration has no name (``void *``)."""
    tokens = re.findall(r"[A-Za-z_]\w*|\*", decl)
    depth = tokens.count("*")
    words = [t for t in tokens if t not in ("*", "const")]
    name = None
    if named and len(words) > 1:
        name = words.pop()
    if not words:
        raise ValueError("cannot parse C declaration %r" % decl)
    base = " ".join(words)
    if aliases:
        base = aliases.get(base, base)
    return name, CType(base, depth)


def _params(text, aliases, named=True):
    text = text.strip()
    if text in ("", "void"):
        return []
    return [parse_type(p, aliases, named)[1] for p in text.split(",")]


def parse_header(text):
    """Parses the text of include/mpx.h: its declarations end with the extern "C" block; the
    static inline helpers after it (the element atomics) are no C ABI and not for ctypes."""
    end = re.search(r'^\}\s*//\s*extern "C"', text, re.M)
    if end:
        text = text[: end.start()]
    text = _strip_comments(text)
    defines = {}
    body = []
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("#"):
            m = re.match(r"#define\s+(MPX_\w+)\s+(-?(?:0x[0-9A-Fa-f]+|\d+))\s*$", s)
            if m:
                defines[m.group(1)] = int(m.group(2), 0)
            continue
        body.append(line)
    body = " ".join(body)
    body = body.replace('extern "C" {', " ")
    aliases, structs, fnptrs, functions = {}, set(), set(), {}
    for chunk in body.split(";"):
        decl = " ".join(chunk.replace("}", " ").split())
        if not decl:
            continue
        m = re.match(r"typedef struct (\w+) (\w+)$", decl)
        if m:
            structs.add(m.group(2))
            continue
        m = re.match(r"typedef .*\(\s*\*\s*(\w+)\s*\)\s*\(.*\)$", decl)
        if m:
            fnptrs.add(m.group(1))
            continue
        m = re.match(r"typedef (.+?) (\w+)$", decl)
        if m:
            aliases[m.group(2)] = m.group(1)
            continue
        m = re.match(r"(.*?[\s*])(mpx_\w+)\s*\((.*)\)$", decl)
        if not m:
            raise ValueError("cannot parse declaration in the header: %r" % decl)
        ret = parse_type(m.group(1), aliases, named=False)[1]
        functions[m.group(2)] = CFunc(ret, _params(m.group(3), aliases))
    return Header(functions, defines, structs, fnptrs)


def load_header(path=HEADER):
    with open(path) as f:
        return parse_header(f.read())


def parse_speedups_signatures(path=SPEEDUPS_C):
    """{typedef name: CFunc} of _speedups.c's function pointer types (f_p, f_pq, ..., f_close,
    f_ptr, f_size): the C types the accelerator calls libmpx's functions as."""
    with open(path) as f:
        text = _strip_comments(f.read())
    sigs = {}
    for m in re.finditer(r"typedef\s+([^;()]+?)\(\s*\*\s*(f_\w+)\s*\)\s*\(([^;]*?)\)\s*;", text):
        ret = parse_type(m.group(1), named=False)[1]
        sigs[m.group(2)] = CFunc(ret, _params(m.group(3), None, named=False))
    return sigs


#
# Comparisons
#


def _ctypes_name(t):
    if t is None:
        return "None"
    if isinstance(t, type) and issubclass(t, ctypes._Pointer):
        return "POINTER(%s)" % _ctypes_name(t._type_)
    return getattr(t, "__name__", repr(t))


def _c_name(ct):
    return ct.base + " " + "*" * ct.depth if ct.depth else ct.base


def compatible(t, ct, header):
    """Whether ctypes type ``t`` (None for void) declares the C type ``ct`` correctly."""
    if ct.depth == 0:
        if ct.base in header.structs:
            return False  # handles are passed by pointer only
        if ct.base in header.fnptrs:
            return t is c_void_p or (isinstance(t, type) and issubclass(t, ctypes._CFuncPtr))
        if ct.base not in C_SCALARS:
            raise KeyError("no ctypes mapping for the C type %r (extend header_check.C_SCALARS)" % ct.base)
        return t is C_SCALARS[ct.base]
    if t is c_void_p:
        return True  # any pointer, a handle included
    if t is c_char_p:
        return ct.depth == 1 and ct.base in _BYTE_BASES
    if isinstance(t, type) and issubclass(t, ctypes._Pointer):
        inner = CType(ct.base, ct.depth - 1)
        if inner == CType("void", 0):
            return True  # a typed pointer where C takes void *
        if inner.depth == 0 and inner.base in header.structs:
            return issubclass(t._type_, ctypes.Structure) and t._type_.__name__ == inner.base
        return compatible(t._type_, inner, header)
    return False


def check_function(name, restype, argtypes, header, where):
    """Problems (strings) of the declaration ``restype``/``argtypes`` of C function ``name``
    made at ``where``; argtypes None (no conversion: the callers pass the prototype's types)
    checks the result only."""
    func = header.functions.get(name)
    if func is None:
        return ["%s: %s is not a function of include/mpx.h" % (where, name)]
    problems = []
    try:
        if not compatible(restype, func.ret, header):
            problems.append("%s: %s returns %s, declared %s" % (where, name, _c_name(func.ret), _ctypes_name(restype)))
        if argtypes is not None:
            argtypes = list(argtypes)
            if len(argtypes) != len(func.params):
                problems.append("%s: %s takes %d arguments in the header, %d declared"
                                % (where, name, len(func.params), len(argtypes)))
            else:
                for i, (t, ct) in enumerate(zip(argtypes, func.params)):
                    if not compatible(t, ct, header):
                        problems.append("%s: %s argument %d is %s in the header, declared %s"
                                        % (where, name, i + 1, _c_name(ct), _ctypes_name(t)))
    except KeyError as e:
        problems.append("%s: %s: %s" % (where, name, e.args[0]))
    return problems


def check_prototypes(prototypes, header, where="mpx._lib.PROTOTYPES"):
    """Problems of a {name: (restype, argtypes)} table."""
    problems = []
    for name, (restype, argtypes) in sorted(prototypes.items()):
        problems += check_function(name, restype, argtypes, header, where)
    return problems


def _c_compatible(sig, ct, header):
    """Whether the accelerator's C type ``sig`` may call a parameter or result of C type ``ct``."""
    if sig.depth == 0 or ct.depth == 0:
        if sig.depth != ct.depth or sig.base in header.structs or ct.base in header.structs:
            return False
        return C_SCALARS.get(sig.base, sig.base) is C_SCALARS.get(ct.base, ct.base)
    if sig == CType("void", 1):
        return True  # void *: any pointer
    return sig == ct


def check_signature(name, typedef, sigs, header, where):
    """Problems of calling C function ``name`` through _speedups.c's function type ``typedef``."""
    func = header.functions.get(name)
    sig = sigs.get(typedef)
    if func is None:
        return ["%s: %s is not a function of include/mpx.h" % (where, name)]
    if sig is None:
        return ["%s: _speedups.c has no function type %s" % (where, typedef)]
    if len(sig.params) != len(func.params):
        return ["%s: %s takes %d arguments in the header, %d as %s in _speedups.c"
                % (where, name, len(func.params), len(sig.params), typedef)]
    problems = []
    if not _c_compatible(sig.ret, func.ret, header):
        problems.append("%s: %s returns %s, called as %s (%s)" % (where, name, _c_name(func.ret), _c_name(sig.ret),
                                                                 typedef))
    for i, (s, ct) in enumerate(zip(sig.params, func.params)):
        if not _c_compatible(s, ct, header):
            problems.append("%s: %s argument %d is %s, called as %s (%s)"
                            % (where, name, i + 1, _c_name(ct), _c_name(s), typedef))
    return problems


def check_constants(constants, header, where):
    """Problems of {name: value} constants against the header's #defines."""
    problems = []
    for name, value in sorted(constants.items()):
        if name not in header.defines:
            problems.append("%s: %s is not defined in include/mpx.h" % (where, name))
        elif header.defines[name] != value:
            problems.append("%s: %s is %r, include/mpx.h says %r" % (where, name, value, header.defines[name]))
    return problems


def check_statuses_known(header, errors_module):
    """Problems for every MPX_OK / MPX_E_* status of the header that mpx.errors does not know
    (its constant and its name in STATUS_NAMES)."""
    problems = []
    for name, value in sorted(header.defines.items()):
        if name != "MPX_OK" and not name.startswith("MPX_E_"):
            continue
        if getattr(errors_module, name, None) != value:
            problems.append("mpx.errors: the status %s (%d) of include/mpx.h is missing" % (name, value))
        elif errors_module.STATUS_NAMES.get(value) != name:
            problems.append("mpx.errors.STATUS_NAMES: %d is not named %s" % (value, name))
    return problems


def module_constants(module):
    """The MPX_* integer constants a module has, and ABI_VERSION as MPX_ABI_VERSION."""
    out = {}
    for k, v in vars(module).items():
        if re.fullmatch(r"MPX_[A-Z0-9_]+", k) and isinstance(v, int) and not isinstance(v, bool):
            out[k] = v
    if isinstance(getattr(module, "ABI_VERSION", None), int):
        out["MPX_ABI_VERSION"] = module.ABI_VERSION
    return out


#
# The run-time declaration sites (the script's part)
#


def _collect():
    """Imports the package with entry() and fast() recording their calls, and checks every
    declaration it can see against the header. Returns the report (a dict)."""
    from mpx import _lib

    records = {"entry": [], "fast": []}
    entry, fast = _lib.entry, _lib.fast

    def recording_entry(name, blocking, argtypes=None):
        records["entry"].append((name, blocking, None if argtypes is None else list(argtypes)))
        return entry(name, blocking, argtypes)

    def recording_fast(name, signature):
        records["fast"].append((name, signature))
        return fast(name, signature)

    _lib.entry, _lib.fast = recording_entry, recording_fast
    import importlib

    modules = sorted(f[:-3] for f in os.listdir(PACKAGE) if f.endswith(".py") and f != "__init__.py")
    for m in modules:
        importlib.import_module("mpx." + m)
    _lib.entry, _lib.fast = entry, fast

    header = load_header()
    sigs = parse_speedups_signatures()
    problems = []
    # entry(): the result type is the prototype's (checked with PROTOTYPES); explicit argtypes
    # replace the prototype's for that function object.
    for name, blocking, argtypes in records["entry"]:
        problems += check_function(name, _lib.PROTOTYPES[name][0], argtypes, header, "mpx._lib.entry(%r)" % name)
    # fast(): the accelerator calls the function as _speedups.c's f_<signature>.
    for name, signature in records["fast"]:
        problems += check_signature(name, "f_" + signature, sigs, header, "mpx._lib.fast(%r, %r)" % (name, signature))
    # Function objects the modules keep (entry()'s, shared_memory's _lean ones): as configured.
    held = 0
    for modname, mod in sorted(sys.modules.items()):
        if not (modname == "mpx" or modname.startswith("mpx.")):
            continue
        for attr, v in sorted(vars(mod).items()):
            if isinstance(v, ctypes._CFuncPtr) and v.__name__.startswith("mpx_"):
                held += 1
                problems += check_function(v.__name__, v.restype, v.argtypes, header, "%s.%s" % (modname, attr))
    # Mapping((close, ptr, size), ...): the addresses shared_memory passes, as f_close, f_ptr, f_size.
    mapping = 0
    from mpx import shared_memory

    by_address = {}
    for name in header.functions:
        try:
            by_address[ctypes.cast(_lib._cdll[name], c_void_p).value] = name
        except AttributeError:
            pass
    for address, typedef in zip(shared_memory._MAPPING_FNS, ("f_close", "f_ptr", "f_size")):
        mapping += 1
        name = by_address.get(address)
        if name is None:
            problems.append("shared_memory._MAPPING_FNS: %#x is no function of include/mpx.h" % address)
        else:
            problems += check_signature(name, typedef, sigs, header, "shared_memory._MAPPING_FNS")
    return {
        "speedups": _lib.speedups_enabled(),
        "entry": len(records["entry"]),
        "fast": len(records["fast"]),
        "held": held,
        "mapping": mapping,
        "problems": problems,
    }


if __name__ == "__main__":
    json.dump(_collect(), sys.stdout)
