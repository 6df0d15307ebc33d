"""The import graph of mtrl/: no circles, and every import points down the pipeline's layers.

Read with `ast` from the source, so that every import counts: at module level, inside functions and
under `if TYPE_CHECKING:` (a type-only circle is a circle to a reader and to a refactoring). The
layers are docs/architecture.md's: config -> envs, nets, agents -> files -> run -> probe -> tables ->
plots -> study -> cli; a module may import its own layer's and lower layers' modules, never a higher
layer's (a back edge), and never round in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mtrl"

# Lowest first; a module belongs to the first layer one of whose packages contains it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("mtrl.config",),
    ("mtrl.envs", "mtrl.nets", "mtrl.agents"),
    ("mtrl.files",),
    ("mtrl.run",),
    ("mtrl.probe",),
    ("mtrl.tables",),
    ("mtrl.plots",),
    ("mtrl.study",),
    ("mtrl.cli",),
)
# Modules of pure data any layer may import, and why; each imports no other mtrl module (checked).
SHARED = {
    "mtrl": "the package itself: its version",
    "mtrl.envs.benchmarks": "the benchmarks' task lists and dimensions, which the config validates against",
    "mtrl.figures": "the figure registry (names of table and plot functions), read by tables, plots, study",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The mtrl modules `name` imports anywhere in its file (a name imported from a module counts
    as that module, or as the submodule it names)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def layer_of(name: str) -> int | None:
    for index, packages in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in packages):
            return index
    return None


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more modules, each as one circle through all of them."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt not in order:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], order[nxt])
        if low[node] == order[node]:
            members = []
            while True:
                member = stack.pop()
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(edges):
        if node not in order:
            visit(node)
    return found


def test_the_graph_is_read_from_every_kind_of_import():
    """The reader itself: it sees module-level, function-local and TYPE_CHECKING imports, `from x
    import submodule` and relative imports (a reader that missed them would pass anything)."""
    edges = graph()
    assert "mtrl.run.state" in edges["mtrl.run.train"]  # module level
    assert "mtrl.config.files" in edges["mtrl.config.settings"]  # inside a method
    assert "mtrl.run.window" in edges["mtrl.run.divergence"]  # under TYPE_CHECKING
    assert "mtrl.files.checkpoints" in edges["mtrl.run.resume"]  # `from mtrl.files import checkpoints`
    cycle = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(cycle) == [["a", "b", "c"]]


def test_no_import_circles():
    found = circles(graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_imports_point_down_the_layers():
    edges = graph()
    unplaced = sorted(n for n in edges if layer_of(n) is None and n not in SHARED)
    assert not unplaced, f"modules in no layer of tests/test_imports.py: {unplaced}"
    back = [
        f"{name} -> {target}"
        for name, targets in sorted(edges.items())
        for target in sorted(targets)
        if target not in SHARED and name not in SHARED and (layer_of(target) or 0) > (layer_of(name) or 0)
    ]
    assert not back, "imports up the layers (config -> ... -> cli): " + ", ".join(back)


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_modules_import_no_other_mtrl_module(name):
    assert graph()[name] == set(), f"{name} is shared by every layer and must import nothing of mtrl"


# Modules the trainer or the probe import that their jobs never run, and why.
NOT_RUN_BY_JOBS = {
    "mtrl.config.files": "read by TrainConfig.from_yaml only; jobs get their settings as a dict",
}


@pytest.mark.parametrize(("group", "entry"), [("train", "mtrl.run.train"), ("probe", "mtrl.probe.probing")])
def test_a_rules_code_hash_covers_every_module_its_code_imports(group, entry):
    """`CODE_GROUPS` (mtrl/files/provenance.py) lists a rule's code by hand: a module added to the
    training job (e.g. the run state) and left out of it would not rerun the runs when edited."""
    from fnmatch import fnmatch

    from mtrl.files.provenance import CODE_GROUPS

    edges, reached, todo = graph(), set(), [entry]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(edges[name])
    paths = modules()
    patterns = [item.split("::")[0] for item in CODE_GROUPS[group]]
    missing = sorted(
        name
        for name in reached - set(NOT_RUN_BY_JOBS)
        if paths[name].name != "__init__.py"
        or paths[name].read_text().count("\n") > 1  # not a bare docstring
        if not any(fnmatch(paths[name].relative_to(PACKAGE.parent).as_posix(), p) for p in patterns)
    )
    assert not missing, f"CODE_GROUPS[{group!r}] lacks modules its code imports: {missing}"
