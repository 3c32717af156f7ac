"""The package's layout keeps its promises (DESIGN.md, "methods apart from experiments"):
method modules import no course plumbing, ``conflict`` is a leaf, there is no import cycle,
and every method module reads in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mtl_helpers"
METHOD_MODULES = ("tasks", "utils", "metrics", "data", "models", "train", "weighting", "conflict", "toy", "costs",
                  "protocol", "batched")
PLUMBING = ("course", "experiments", "exercises", "plots", "widgets", "lecture")
STDLIB_AND_TORCH = {"__future__", "collections", "copy", "dataclasses", "functools", "itertools", "math",
                    "typing", "torch"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}  # `from . import x`
    return found


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p): p for p in FILES}


def internal_graph() -> dict[str, set[str]]:
    return {name: {m for m in imports_of(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def top(name: str) -> str:
    return name.split(".")[1] if "." in name else ""


@pytest.mark.parametrize("name", [m for m in MODULES if top(m) in METHOD_MODULES])
def test_method_modules_import_no_course_plumbing(name):
    bad = {m for m in imports_of(MODULES[name]) if top(m) in PLUMBING}
    assert not bad, f"{name} imports course plumbing {sorted(bad)}"


def test_conflict_is_a_leaf_that_imports_only_torch():
    for name, path in MODULES.items():
        if top(name) == "conflict":
            outside = {m.split(".")[0] for m in imports_of(path) if not m.startswith("mtl_helpers.conflict")}
            assert outside <= STDLIB_AND_TORCH, f"{name} imports {sorted(outside - STDLIB_AND_TORCH)}"


def test_there_is_no_import_cycle():
    graph = internal_graph()
    # a module importing its own package's __init__ is how Python loads submodules, not a cycle
    graph = {k: {m for m in v if not k.startswith(m + ".")} for k, v in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


@pytest.mark.parametrize("path", [p for p in FILES if top(module_name(p)) in METHOD_MODULES], ids=module_name)
def test_every_method_module_reads_in_one_sitting(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 320, f"{module_name(path)} has {lines} lines (~300 at most): split it, one idea per file"
