"""The package's shape: no import cycle, no module over 600 lines, no development tooling.

`s3rec_tf/` holds only what a user imports or runs: data flows down the
modules once (no module imports one that imports it back, at module level or
inside a function), each module keeps to one concern (at most
`MAX_LINES` lines), and nothing in it launches the original PyTorch code
(the side-by-side harness lives in `benchmarks/`).
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "s3rec_tf")
MAX_LINES = 600


def _modules() -> dict:
    """`{dotted name: path}` of every module of the package."""
    found = {}
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return found


def import_graph(modules: dict) -> dict:
    """`{module: {modules of the package it imports}}`, function-level imports included.

    `from package import name` depends on `package.name` when that is a module,
    else on `package`.
    """
    def resolve(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = module.split(".")
                    if not path.endswith("__init__.py"):
                        parts = parts[:-1]
                    parts = parts[:len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] == "s3rec_tf":
                    resolved = resolve(target)
                    if resolved and resolved != module:
                        edges.add(resolved)
        graph[module] = edges
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
    found = cycles(import_graph(_modules()))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_over_the_line_limit(module):
    with open(_modules()[module]) as f:
        lines = sum(1 for _ in f)
    assert lines <= MAX_LINES, f"{module}: {lines} lines (at most {MAX_LINES})"


def test_nothing_in_the_package_runs_the_original_code():
    for module, path in _modules().items():
        with open(path) as f:
            text = f.read()
        for needle in ("original-speed", "import torch", "torch-python", "run_original"):
            assert needle not in text, f"{module} mentions {needle!r}"
