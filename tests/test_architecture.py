"""The import graph of ``imgext``, read from the source (AST): stages in order, no cycle, no UI in the library.

Every import counts, also those inside functions: a lazy import hides a cycle
from Python, not from the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "imgext"

STAGES = [
    ["imgext", "imgext.errors", "imgext.settings", "imgext.options", "imgext.untrusted", "imgext.budget",
     "imgext.malloc"],  # shared by every stage
    ["imgext.audio"],  # decode, resample, encode, loudness: a utility of sounds and everything after
    ["imgext.vision"],
    ["imgext.sounds"],
    ["imgext.composition"],
    ["imgext.masking"],
    ["imgext.engine"],
    ["imgext.mix"],
    ["imgext.output"],
    ["imgext.project", "imgext.hosting"],  # hosting: the served app's queue and presets
    ["imgext.pipeline", "imgext.batch"],
    ["imgext.cli", "imgext.__main__"],
]
"""Data flows down this list; a module may import from its own stage and earlier ones only."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """Every ``imgext`` module ``name`` imports, anywhere in the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}  # ``from imgext.sounds import base``
    return {m for m in found if m == "imgext" or m.startswith("imgext.")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(name, path):
            # the longest known module the import names (``imgext.sounds.base.Candidate`` -> ``imgext.sounds.base``)
            while imported not in modules and "." in imported:
                imported = imported.rpartition(".")[0]
            if imported in modules and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def stage_of(module: str) -> int:
    best = None
    for level, prefixes in enumerate(STAGES):
        for prefix in prefixes:
            if module == prefix or (prefix != "imgext" and module.startswith(prefix + ".")):
                best = level
    if best is None:
        raise AssertionError(f"{module} belongs to no stage: add it to STAGES in {__file__}")
    return best


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_every_module_belongs_to_a_stage():
    for module in _modules():
        stage_of(module)


def test_no_module_imports_from_a_later_stage():
    backwards = [
        f"{src} (stage {stage_of(src)}) imports {dst} (stage {stage_of(dst)})"
        for src, targets in _graph().items() for dst in sorted(targets) if stage_of(dst) > stage_of(src)
    ]
    assert not backwards, "imports against the flow of data:\n" + "\n".join(backwards)


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_library_never_imports_streamlit():
    offenders = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [name for n in names if n.split(".")[0] == "streamlit"]
    assert not offenders, f"Streamlit belongs in pages/, not in {sorted(set(offenders))}"


@pytest.mark.parametrize(
    "graph,cycle",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"a"}}, ["a", "a"]),
        ({"x": {"y"}, "y": set(), "a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ],
)
def test_the_cycle_finder_finds_cycles(graph, cycle):
    assert find_cycle(graph) == cycle


def test_the_checks_see_a_lazy_backward_import(tmp_path):
    """An import inside a function counts (it hid the ``freesound <-> sources`` cycle before the restructure)."""
    src = tmp_path / "imgext" / "sounds"
    src.mkdir(parents=True)
    (src / "lazy.py").write_text("def f():\n    from imgext.output.plan import Plan\n    return Plan\n")
    (src / "rel.py").write_text("from .base import Candidate\nfrom ..errors import ParameterError\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "imgext"
    try:
        assert _imports("imgext.sounds.lazy", src / "lazy.py") >= {"imgext.output.plan"}
        assert _imports("imgext.sounds.rel", src / "rel.py") >= {"imgext.sounds.base", "imgext.errors"}
    finally:
        PACKAGE = saved
    assert stage_of("imgext.output.plan") > stage_of("imgext.sounds.lazy")
