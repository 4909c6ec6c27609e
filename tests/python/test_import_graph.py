"""The modules of the mpx package import each other without cycles.

Read from the sources (ast): a module's module-level imports, and its function-local ones,
which are kept only for laziness (`import mpx`, which every spawned child pays, loads only the
process machinery; see test_lazy_import.py) and say so in a comment. Counting the function-local
imports too, the graph still has no cycle: none of them is there to break one.
"""

import ast
import os

PACKAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python", "mpx")


def _module(filename):
    return "mpx" if filename == "__init__.py" else "mpx." + filename[:-3]


def _targets(node):
    """The mpx modules an import statement names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name == "mpx" or a.name.startswith("mpx.")]
    if node.level == 0 and not (node.module or "").startswith("mpx"):
        return []
    base = "mpx." + node.module if node.level and node.module else (node.module or "mpx")
    if base == "mpx":  # from . import x: x is a submodule
        return ["mpx." + a.name for a in node.names]
    return [base]


def _imports(tree):
    """[(target module, function-local, line)] of a module's imports of mpx modules, and every
    function-local import statement's line (of any module)."""
    found, local_lines = [], []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend((t, in_function, child.lineno) for t in _targets(child))
                if in_function:
                    local_lines.append(child.lineno)
            visit(child, inner)

    visit(tree, False)
    return found, local_lines


def _graph():
    modules = {_module(f): os.path.join(PACKAGE, f) for f in os.listdir(PACKAGE) if f.endswith(".py")}
    top, local, sources = {}, {}, {}
    for name, path in modules.items():
        with open(path) as f:
            sources[name] = f.read()
        found, _ = _imports(ast.parse(sources[name]))
        # Every submodule's import runs the package's __init__ first: that edge is Python's, not a
        # dependency of the module's own.
        top[name] = {t for t, in_function, _ in found if not in_function and t in modules and t not in (name, "mpx")}
        local[name] = {t for t, in_function, _ in found if in_function and t in modules and t != name}
    return top, local, sources


def _cycle(graph):
    """A cycle of the graph as a list of modules, or None."""
    state = {}

    def visit(n, path):
        state[n] = "open"
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                return path[path.index(m):] + [m]
            if m not in state:
                c = visit(m, path + [m])
                if c:
                    return c
        state[n] = "done"
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n, [n])
            if c:
                return c
    return None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_module_level_imports_have_no_cycle():
    top, _, _ = _graph()
    assert len(top) >= 12 and top["mpx.context"] >= {"mpx.process"}
    assert _cycle(top) is None


def test_no_function_local_import_breaks_a_cycle():
    top, local, _ = _graph()
    both = {n: top[n] | {t for t in local[n] if t != "mpx"} for n in top}
    assert _cycle(both) is None
    # The launchers and the machinery below them do not reach back up to the context.
    for low in ("mpx.process", "mpx._spawn", "mpx._forkserver", "mpx._objects", "mpx._lib", "mpx.errors"):
        assert "mpx.context" not in both[low], low


def test_every_function_local_import_says_why():
    _, _, sources = _graph()
    silent = []
    for name, text in sorted(sources.items()):
        lines = text.split("\n")
        _, local_lines = _imports(ast.parse(text))
        for lineno in local_lines:
            # A comment on the line, or on the lines just above it (through other imports).
            i = lineno - 1
            while i >= 0 and "#" not in lines[i]:
                above = lines[i - 1].strip() if i > 0 else ""
                if not (above.startswith("import ") or above.startswith("from ") or above.startswith("#")):
                    i = -1
                    break
                i -= 1
            if i < 0:
                silent.append("%s:%d %s" % (name, lineno, lines[lineno - 1].strip()))
    assert silent == []
