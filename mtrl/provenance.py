"""Code provenance for the workflow: a hash of the *code* (not comments or docstrings) a rule runs.

Snakemake's `code` rerun trigger only sees a rule's own body, not the modules it imports, so each
rule carries the hash of the `mtrl` modules it depends on as a param: editing the SAC update reruns
every training run, editing a plot reruns only figures, and reformatting or documenting changes
nothing.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent

# Module groups each rule depends on (paths relative to the package, globs allowed).
CODE_GROUPS: dict[str, tuple[str, ...]] = {
    "train": (
        "config.py",
        "envs/*.py",
        "nets/*.py",
        "agents/*.py",
        "buffers.py",
        "train.py",
        "checkpoints.py",
        "results.py",
    ),
    "probe": (
        "config.py",
        "nets/*.py",
        "agents/*.py",
        "buffers.py",
        "checkpoints.py",
        "plasticity.py",
        "probe.py",
    ),
    "aggregate": ("stats.py", "tables/*.py", "results.py"),
    "plot": ("plots/*.py",),
}


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_hash(paths: Iterable[Path]) -> str:
    """SHA-256 (first 16 hex digits) over the ASTs of the given Python files, in path order."""
    digest = hashlib.sha256()
    for path in sorted(set(paths)):
        tree = _strip_docstrings(ast.parse(path.read_text(), filename=str(path)))
        digest.update(str(path.relative_to(PACKAGE)).encode())
        digest.update(ast.dump(tree, include_attributes=False).encode())
    return digest.hexdigest()[:16]


def code_hash(group: str) -> str:
    """Hash of the modules of one CODE_GROUPS entry."""
    return source_hash(p for pattern in CODE_GROUPS[group] for p in PACKAGE.glob(pattern))
