"""`import mpx` loads only the process machinery; every public name still resolves.

The capability submodules (queues, connection, synchronize, sharedctypes, shared_memory) are
imported on first use (mpx/__init__.py, PEP 562, and mpx.context for the contexts), and a spawned
child applies the parent's preparation data without multiprocessing.spawn (mpx._spawn). Each
check runs in a fresh interpreter, where nothing was imported before.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import child_env

TIMEOUT = 60
LAZY = ["mpx.connection", "mpx.queues", "mpx.shared_memory", "mpx.sharedctypes", "mpx.synchronize"]


def run_python(tmp_path, code, *args, name="script.py"):
    """Runs ``code`` as the main script ``name`` (a relative path, from ``tmp_path``); returns
    its stdout (fails on a non-zero exit)."""
    (tmp_path / name).write_text(textwrap.dedent(code))
    r = subprocess.run([sys.executable, name] + list(args), capture_output=True, text=True,
                       env=child_env(), timeout=TIMEOUT, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_import_mpx_leaves_capabilities_unloaded_until_used(tmp_path):
    out = run_python(tmp_path, """
        import json, sys
        import mpx
        loaded = sorted(m for m in sys.modules if m.startswith("mpx."))
        q = mpx.Queue  # first use imports mpx.queues
        print(json.dumps([loaded, "mpx.queues" in sys.modules, q is sys.modules["mpx.queues"].Queue]))
    """)
    loaded, queues_loaded, same = json.loads(out)
    assert not set(LAZY) & set(loaded), loaded
    assert "mpx.process" in loaded and "mpx.context" in loaded
    assert queues_loaded and same


def test_every_name_in_all_resolves_after_import_mpx(tmp_path):
    out = run_python(tmp_path, """
        import json, sys, types
        import mpx
        missing = [n for n in mpx.__all__ if not hasattr(mpx, n)]
        listed = [n for n in mpx.__all__ if n not in dir(mpx)]
        # Submodule names are the modules; object names are those of their submodule.
        wrong = []
        for name, (module, attr) in mpx._LAZY.items():
            mod = sys.modules["mpx." + module]
            want = mod if attr is None else getattr(mod, attr)
            if getattr(mpx, name) is not want:
                wrong.append(name)
        print(json.dumps([len(mpx.__all__), missing, listed, wrong,
                          len(mpx.__all__) == len(set(mpx.__all__))]))
    """)
    count, missing, listed, wrong, unique = json.loads(out)
    assert count > 40
    assert missing == [] and listed == [] and wrong == [] and unique


def test_star_import_binds_every_name(tmp_path):
    out = run_python(tmp_path, """
        import json
        from mpx import *
        import mpx
        print(json.dumps([n for n in mpx.__all__ if n not in globals() or globals()[n] is not getattr(mpx, n)]))
    """)
    assert json.loads(out) == []


def test_unknown_attribute_is_attributeerror(tmp_path):
    out = run_python(tmp_path, """
        import mpx
        try:
            mpx.NoSuchThing
        except AttributeError as e:
            print("AttributeError:", e)
        print(hasattr(mpx, "NoSuchThing"))
    """)
    assert out == "AttributeError: module 'mpx' has no attribute 'NoSuchThing'\nFalse\n"


def test_contexts_offer_the_submodule_objects(tmp_path):
    out = run_python(tmp_path, """
        import json, sys
        import mpx
        from mpx import context
        before = sorted(m for m in sys.modules if m.startswith("mpx."))
        bad = []
        for method in (None, "fork", "spawn", "forkserver"):
            ctx = mpx.get_context(method)
            for name in context._SUBMODULE_NAMES:
                if getattr(ctx, name) is not getattr(mpx, name):
                    bad.append((method, name))
        # Working objects through a context, as multiprocessing users write them.
        ctx = mpx.get_context("spawn")
        a, b = ctx.Pipe()
        a.send("x")
        got = b.recv()
        a.close(); b.close()
        q = ctx.Queue()
        q.put(1)
        got2 = q.get(timeout=10)
        q.close()
        lock = mpx.get_context().Lock()
        with lock:
            pass
        print(json.dumps([before, bad, got, got2]))
    """)
    before, bad, got, got2 = json.loads(out)
    assert not set(LAZY) & set(before)
    assert bad == [] and got == "x" and got2 == 1


CHILD_MODULES_SCRIPT = """
import json, sys
import mpx

def report(path):
    import sys
    main = sys.modules["__main__"]
    with open(path, "w") as f:
        json.dump({
            "modules": sorted(sys.modules),
            "main_name": main.__name__,
            "same_main": sys.modules.get("__mp_main__") is main,
            "main_file": main.__file__,
            "main_attrs": [main.__package__, main.__spec__, main.__loader__, main.__cached__, main.__doc__],
            "argv": sys.argv,
            "marker": main.MARKER,
        }, f)

MARKER = __name__

if __name__ == "__main__":
    ctx = mpx.get_context("spawn")
    p = ctx.Process(target=report, args=(sys.argv[1],))
    p.start()
    p.join(60)
    assert p.exitcode == 0, p.exitcode
"""


def test_spawned_child_imports_only_what_it_uses(tmp_path):
    out_file = tmp_path / "child.json"
    run_python(tmp_path, CHILD_MODULES_SCRIPT, str(out_file))
    child = json.loads(out_file.read_text())
    modules = set(child["modules"])
    assert not set(LAZY) & modules
    # multiprocessing.spawn (with util, subprocess, runpy, pkgutil, typing) is not needed to run
    # a trivial target.
    assert not {"multiprocessing.spawn", "multiprocessing.util", "runpy", "pkgutil"} & modules
    assert child["main_name"] == "__mp_main__" and child["same_main"] and child["marker"] == "__mp_main__"


def test_spawned_child_main_module_as_multiprocessing(tmp_path):
    # The parent's main script is re-run as __mp_main__ in the child; mpx does it without runpy:
    # the module's attributes and sys.argv must be those the standard library gives.
    script = CHILD_MODULES_SCRIPT.replace("import mpx\n", "import mpx\nimport multiprocessing\n")
    script = script.replace('ctx = mpx.get_context("spawn")',
                            'ctx = (mpx if sys.argv[2] == "mpx" else multiprocessing).get_context("spawn")')
    results = {}
    for lib in ("mpx", "multiprocessing"):
        out_file = tmp_path / ("child-%s.json" % lib)
        run_python(tmp_path, script, str(out_file), lib, "extra arg", name="main_%s.py" % lib)
        child = json.loads(out_file.read_text())
        del child["modules"]
        # What differs by design: the script's and the output file's names.
        child["main_file"] = child["main_file"].replace(lib, "LIB")
        child["argv"] = [a.replace(lib, "LIB") for a in child["argv"]]
        results[lib] = child
    ours, theirs = results["mpx"], results["multiprocessing"]
    assert os.path.isabs(ours["main_file"]) and ours["main_file"].endswith("main_LIB.py")
    assert ours["argv"] == ["main_LIB.py", str(tmp_path / "child-LIB.json"), "LIB", "extra arg"]
    assert ours == theirs


@pytest.mark.parametrize("start", ["-m", "noext"])
def test_spawn_from_module_or_script_without_py_suffix(tmp_path, start):
    # `python -m pkg.mod` and a script whose name does not end in .py take the standard
    # library's path (multiprocessing.spawn.prepare), with the same result.
    pkg = tmp_path / "lazypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    code = textwrap.dedent("""
        import sys
        import mpx

        def child(path):
            import sys
            with open(path, "w") as f:
                f.write(sys.modules["__main__"].__name__)

        if __name__ == "__main__":
            p = mpx.get_context("spawn").Process(target=child, args=(sys.argv[1],))
            p.start()
            p.join(60)
            assert p.exitcode == 0, p.exitcode
    """)
    out_file = tmp_path / "out.txt"
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    if start == "-m":
        (pkg / "mod.py").write_text(code)
        argv = [sys.executable, "-m", "lazypkg.mod", str(out_file)]
    else:
        (tmp_path / "script").write_text(code)
        argv = [sys.executable, "script", str(out_file)]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=TIMEOUT, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert out_file.read_text() == "__mp_main__"


LOGGING_SCRIPT = """
import json, logging, sys
import multiprocessing
import mpx

def child(path):
    from multiprocessing import util
    with open(path, "w") as f:
        json.dump([util._log_to_stderr, multiprocessing.get_logger().level], f)

if __name__ == "__main__":
    multiprocessing.log_to_stderr(logging.WARNING)
    lib = mpx if sys.argv[2] == "mpx" else multiprocessing
    p = lib.get_context("spawn").Process(target=child, args=(sys.argv[1],))
    p.start()
    p.join(60)
    assert p.exitcode == 0, p.exitcode
"""


def test_spawned_child_logging_as_multiprocessing(tmp_path):
    # multiprocessing.log_to_stderr() in the parent: the child logs to stderr at the same level.
    got = {}
    for lib in ("mpx", "multiprocessing"):
        out_file = tmp_path / ("log-%s.json" % lib)
        run_python(tmp_path, LOGGING_SCRIPT, str(out_file), lib, name="log_%s.py" % lib)
        got[lib] = json.loads(out_file.read_text())
    assert got["mpx"] == got["multiprocessing"] == [True, 30]
