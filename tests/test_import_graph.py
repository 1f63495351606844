"""The product's import graph has no cycle, and bench/ does not import tests/.

The graph is read from the source (ast), not by importing: every `import` of one of our modules,
at module level or inside a function, is an edge. Importing `pkg.sub` from outside `pkg` also runs
`pkg/__init__.py`, so it adds an edge to `pkg` too (that is how `scene` -> `utils.camera_utils` ->
`scene.cameras` closed a cycle through the package).
"""
import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("arguments", "scene", "semantic", "editing", "gaussian_renderer", "utils", "viewer")
CLIS = ("train.py", "render.py", "metrics.py", "edit.py", "view.py")

pytestmark = pytest.mark.unit


def module_files(root: str = ROOT) -> dict:
    """Dotted module name -> path, for the product packages and the top-level CLIs."""
    out = {name[:-3]: os.path.join(root, name) for name in CLIS
           if os.path.isfile(os.path.join(root, name))}
    for pkg in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(root, pkg)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            rel = os.path.relpath(folder, root).replace(os.sep, ".")
            for f in sorted(files):
                if f.endswith(".py"):
                    out[rel if f == "__init__.py" else f"{rel}.{f[:-3]}"] = os.path.join(folder, f)
    return out


def imported_names(path: str, module: str, is_package: bool, modules=None):
    """The dotted names the import statements in `path` load: `import a.b` -> a.b;
    `from a import b` -> a.b when that is a module (of `modules`), else a (b is an attribute)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    for node in ast.walk(tree):  # ast.walk reaches imports inside functions and classes too
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if modules is None or sub in modules else base


def import_graph(modules: dict) -> dict:
    """module -> set of our modules it imports (see the module docstring for package edges)."""
    graph = {}
    for mod, path in modules.items():
        is_package = path.endswith("__init__.py")
        own_package = mod if is_package else mod.rpartition(".")[0]
        edges = set()
        for name in imported_names(path, mod, is_package, modules):
            if name not in modules:
                continue
            parts = name.split(".")
            for k in range(1, len(parts)):  # parent packages run first, unless we are inside them
                parent = ".".join(parts[:k])
                inside = own_package == parent or own_package.startswith(parent + ".")
                if parent in modules and not inside:
                    edges.add(parent)
            edges.add(name)
        edges.discard(mod)
        graph[mod] = edges
    return graph


def find_cycles(graph: dict) -> list:
    """One shortest cycle (as a list of modules, first == last) per strongly connected
    component of more than one module (Tarjan)."""
    index, low, on_stack, stack, sccs = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(set(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for comp in sccs:
        start = min(comp)
        prev, frontier = {start: None}, [start]
        while frontier:  # breadth-first inside the component, back to start
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & comp):
                    if w == start:
                        path = [v]
                        while prev[path[-1]] is not None:
                            path.append(prev[path[-1]])
                        cycles.append([start] + path[::-1][1:] + [start] if len(path) > 1
                                      else [start, start])
                        nxt = []
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                else:
                    continue
                break
            frontier = nxt
    return cycles


def test_graph_sees_module_and_function_level_imports():
    graph = import_graph(module_files())
    assert "scene.gaussian_model" in graph["scene"]          # module level, package __init__
    assert "editing.pix2pix" in graph["editing.editors"]     # inside make_editor()


def test_no_import_cycle():
    cycles = find_cycles(import_graph(module_files()))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_cycle_detection_finds_a_planted_cycle(tmp_path):
    """The check itself: a two-package cycle through a package __init__ is reported."""
    for pkg, body in (("utils", "from scene.cameras import Camera\n"),
                      ("scene", "from utils.helpers import x\n")):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text(body if pkg == "scene" else "")
    (tmp_path / "utils" / "helpers.py").write_text("def f():\n    " + "from scene.cameras import Camera\n")
    (tmp_path / "scene" / "cameras.py").write_text("import numpy\n")
    cycles = find_cycles(import_graph(module_files(str(tmp_path))))
    assert cycles == [["scene", "utils.helpers", "scene"]]


def _bench_imports():
    folder = os.path.join(ROOT, "bench")
    for f in sorted(os.listdir(folder)):
        if f.endswith(".py"):
            path = os.path.join(folder, f)
            for name in imported_names(path, f"bench.{f[:-3]}", False):
                yield f, name


@pytest.mark.skipif(not os.path.isdir(os.path.join(ROOT, "bench")), reason="no bench/ folder")
def test_bench_does_not_import_tests():
    bad = sorted({(f, n) for f, n in _bench_imports() if n == "tests" or n.startswith("tests.")})
    assert not bad, "bench/ imports from tests/: " + ", ".join(f"{f}: {n}" for f, n in bad)
