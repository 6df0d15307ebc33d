"""Provenance: what code a job runs (a content hash), which settings define a run, and the record
every output carries (resolved config, code hash, package versions, device, git commit).

Snakemake's own `code` trigger sees a rule's body only, and its `mtime` trigger reruns on a mere
`touch`; so each rule carries the hash of exactly the code its job executes as a param. The hash is
over the *text* of that code with comments, docstrings, blank lines and trailing spaces removed: a
checkout or touch changes nothing, a comment changes nothing, and (unlike `ast.dump`) the same
source gives the same hash under every Python version.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import subprocess
import tokenize
from collections.abc import Collection, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository (or a copy of the workflow)

# What each rule's job executes, as paths relative to ROOT (globs allowed). `path::a,b` hashes only
# the top-level definitions a, b of that module (plus its imports): results.py's writer is training
# code, its reader is not. Re-pointing a group after a module moves is an edit of this table only.
CODE_GROUPS: dict[str, tuple[str, ...]] = {
    "train": (
        "mtrl/__init__.py",
        "mtrl/config/settings.py",
        "mtrl/config/errors.py",
        "mtrl/config/limits.py",
        "mtrl/config/usual.py",
        "mtrl/config/values.py",
        "mtrl/envs/*.py",
        "mtrl/nets/*.py",
        "mtrl/agents/*.py",
        "mtrl/run/setup.py",
        "mtrl/run/train.py",
        "mtrl/run/directory.py",
        "mtrl/run/stop_signals.py",
        "mtrl/run/resume.py",
        "mtrl/run/state.py",
        "mtrl/run/window.py",
        "mtrl/run/progress.py",
        "mtrl/run/probe_checkpoints.py::BATCH_KEYS,probe_episodes,probe_batch,save_probe,complete_initial_probe",
        "mtrl/files/checkpoints.py",
        "mtrl/config/speed.py",
        "mtrl/run/rng_state.py",
        "mtrl/run/shutdown.py",
        "mtrl/run/evaluator.py",
        "mtrl/files/provenance.py::identity,provenance_record,package_versions,git_commit,device_name,PACKAGES,"
        "EXECUTION_KEYS,ARCH_KEYS",
        "mtrl/files/result_files.py::TRAIN_SCALARS,TrainLog,write_atomic_h5,write_train_h5,provenance_attrs",
        "mtrl/files/completeness.py",
        "mtrl/files/integrity.py",
        "mtrl/run/divergence.py",
        "mtrl/run/diverged_record.py",
        "mtrl/run/memory.py",
        "workflow/scripts/train.py",
        "workflow/scripts/_adapter.py",
    ),
    "probe": (
        "mtrl/__init__.py",
        "mtrl/config/settings.py",
        "mtrl/config/errors.py",
        "mtrl/config/limits.py",
        "mtrl/config/values.py",
        "mtrl/envs/benchmarks.py",
        "mtrl/nets/*.py",
        "mtrl/agents/*.py",
        "mtrl/files/checkpoints.py",
        "mtrl/config/speed.py",
        "mtrl/probe/plasticity.py",
        "mtrl/probe/probing.py",
        "mtrl/run/probe_checkpoints.py::BATCH_KEYS,probe_episodes,stored_batch",
        "mtrl/files/result_files.py::write_atomic_h5,provenance_attrs",
        "mtrl/files/integrity.py::seal,datasets_checksum",
        "workflow/scripts/probe.py",
        "workflow/scripts/_adapter.py",
    ),
    "aggregate": (
        "mtrl/tables/*.py",
        "mtrl/config/values.py",
        "mtrl/config/settings.py",  # with nets/ and benchmarks.py: Fig. 7's parameter counts (x_actor_params)
        "mtrl/config/errors.py",
        "mtrl/config/limits.py",
        "mtrl/nets/*.py",
        "mtrl/envs/benchmarks.py",
        "mtrl/files/result_files.py::TRAIN_SCALARS,TrainResult,read_train_h5,read_provenance",
        "mtrl/files/completeness.py",
        "mtrl/files/integrity.py",
        "mtrl/study/status.py::TRAIN_FILE,RunStatus,_differs,_settings_diff,_progress,_resume_progress,run_status,"
        "stale_inputs",
        "workflow/scripts/aggregate.py",
        "workflow/scripts/_adapter.py",
    ),
    "plot": (
        "mtrl/plots/*.py",
        "mtrl/files/integrity.py::file_sha256,table_problem",
        "workflow/scripts/figure.py",
        "workflow/scripts/_adapter.py",
    ),
}
# A figure's own code, added to the aggregate group for its table and to the plot group for its
# drawing: its declaration in the figure registry, `table=` or `plot=`, with what that names there.
# Editing fig5's plot declaration redraws fig5 only; editing its table declaration redoes its table.
FIGURE_ENTRY = "mtrl/figures.py::FIGURES[{figure}].{part}"

# Settings that change how fast a run goes, not what it computes: never part of its identity.
EXECUTION_KEYS = ("device", "vector_strategy", "torch_threads", "env_workers", "eval_mode", "eval_device")
# Settings that only one architecture (or task set) reads.
ARCH_KEYS = {
    "sm": ("sm_layers", "sm_modules", "sm_module_width", "sm_embedding"),
    "paco": ("paco_k",),
    "moore": ("moore_experts",),
}
# The packages a job's result depends on (recorded with every output).
PACKAGES = ("torch", "numpy", "metaworld", "mujoco", "gymnasium", "h5py", "pandas", "rliable", "matplotlib")


# ---------------------------------------------------------------- code hash
def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def normalized_source(text: str, names: Iterable[str] | None = None) -> str:
    """The code of `text` without comments, docstrings, blank lines or trailing spaces.

    With `names`, only the module's imports and its top-level definitions of those names. A name
    `DICT[key].field` stands for one entry of a top-level dict of calls: the expression of the
    call's keyword argument `field` (`FIGURES[fig5].plot`), with the top-level definitions it and
    the call's function use, directly or through each other.
    """
    tree = ast.parse(text)
    keep: set[int] | None = None
    expressions: list[ast.expr] = []
    if names is not None:
        plain = [name for name in names if "[" not in name]
        entries = [_entry_nodes(tree, name) for name in names if "[" in name]
        expressions = [value for _, value in entries]
        keep = _definition_lines(tree, set(plain) | _used_definitions(tree, [n for e in entries for n in e]))
    lines = _code_lines(text, keep, _docstring_lines(tree))
    for node in expressions:
        lines += _code_lines(ast.get_source_segment(text, node) or "")
    return "\n".join(lines) + "\n"


def _code_lines(text: str, keep: set[int] | None = None, drop: Collection[int] = ()) -> list[str]:
    """The lines of `text` numbered in `keep` (default all) and not in `drop`, without comments,
    blank lines or trailing spaces."""
    comments: dict[int, int] = {}  # line -> column where a comment starts
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.start[1]
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if (keep is not None and number not in keep) or number in drop:
            continue
        if number in comments:
            line = line[: comments[number]]
        if line.strip():
            out.append(line.rstrip())
    return out


def _definition_lines(tree: ast.Module, names: set[str]) -> set[int]:
    """The line numbers of the module's imports and of its top-level definitions of `names`."""
    wanted, keep = set(names), set()
    for node in tree.body:
        defined = _defined_names(node)
        if isinstance(node, ast.Import | ast.ImportFrom) or defined & wanted:
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            keep.update(range(start, (node.end_lineno or node.lineno) + 1))
            wanted -= defined
    if wanted:
        raise KeyError(f"not defined at the top level: {', '.join(sorted(wanted))}")
    return keep


def _entry_nodes(tree: ast.Module, selector: str) -> tuple[ast.expr, ast.expr]:
    """`DICT[key].field`: of the call at `key` in the top-level dict DICT, its function and the
    value of its keyword argument `field`."""
    name, _, rest = selector.partition("[")
    key, _, field = rest.partition("].")
    for node in tree.body:
        value = getattr(node, "value", None)
        if name not in _defined_names(node) or not isinstance(value, ast.Dict):
            continue
        for entry_key, entry in zip(value.keys, value.values, strict=True):
            if isinstance(entry_key, ast.Constant) and entry_key.value == key and isinstance(entry, ast.Call):
                for argument in entry.keywords:
                    if argument.arg == field:
                        return entry.func, argument.value
    raise KeyError(f"not defined at the top level: {selector}")


def _used_definitions(tree: ast.Module, nodes: list[ast.expr]) -> set[str]:
    """The names of the module's top-level definitions that `nodes` use, directly or through the
    definitions of other such names."""
    definitions = {name: node for node in tree.body for name in _defined_names(node)}
    used: set[str] = set()
    todo: list[ast.AST] = list(nodes)
    while todo:
        for name in {n.id for n in ast.walk(todo.pop()) if isinstance(n, ast.Name)}:
            if name in definitions and name not in used:
                used.add(name)
                todo.append(definitions[name])
    return used


def _defined_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Assign):
        targets = [e for t in node.targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
        return {t.id for t in targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    return set()


def _expand(patterns: Iterable[str], root: Path) -> list[tuple[Path, tuple[str, ...] | None]]:
    files: dict[Path, tuple[str, ...] | None] = {}
    for pattern in patterns:
        glob, _, names = pattern.partition("::")
        matched = sorted(root.glob(glob))
        if not matched:
            raise FileNotFoundError(f"provenance: code group entry {pattern!r} matches no file under {root}")
        for path in matched:
            files[path] = tuple(n.strip() for n in names.split(",")) if names else None
    return sorted(files.items())


def source_hash(patterns: Iterable[str], root: Path = ROOT) -> str:
    """SHA-256 (first 16 hex digits) of the normalized code of the files (or definitions) named."""
    digest = hashlib.sha256()
    for path, names in _expand(patterns, root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(normalized_source(path.read_text(), names).encode() + b"\0")
    return digest.hexdigest()[:16]


def code_hash(group: str, root: Path = ROOT) -> str:
    """Hash of one CODE_GROUPS entry."""
    return source_hash(CODE_GROUPS[group], root)


def figure_code_hash(figure: str, root: Path = ROOT) -> str:
    """Hash of the code one figure's drawing runs: the shared plot code and its `plot=` declaration."""
    return source_hash(CODE_GROUPS["plot"] + (FIGURE_ENTRY.format(figure=figure, part="plot"),), root)


def table_code_hash(figure: str, root: Path = ROOT) -> str:
    """Hash of the code one figure's table runs: the aggregation code and its `table=` declaration."""
    return source_hash(CODE_GROUPS["aggregate"] + (FIGURE_ENTRY.format(figure=figure, part="table"),), root)


# ---------------------------------------------------------------- run identity
def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a resolved run config that change its result: execution settings and other
    architectures' (or task sets') sizes left out, so setting them never reruns or blocks a resume."""
    arch = config.get("arch")
    dropped = set(EXECUTION_KEYS)
    for owner, keys in ARCH_KEYS.items():
        if owner != arch:
            dropped.update(keys)
    if config.get("task_set") != "mt1":
        dropped.add("mt1_task")
    return {k: v for k, v in sorted(config.items()) if k not in dropped}


# ---------------------------------------------------------------- the record
def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def git_commit(root: Path = ROOT) -> str:
    """The project's commit (with '-dirty' if tracked files differ), or '' outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def device_name(device: Any = None) -> str:
    """'cpu', or the GPU model torch runs on."""
    kind = getattr(device, "type", device)
    if kind == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return str(kind or "cpu")


def provenance_record(
    config: Mapping[str, Any] | None, code: str, device: Any = None, **extra: Any
) -> dict[str, str]:
    """The provenance attributes of an output (all JSON strings or plain strings, for HDF5 attrs)."""
    record = {
        "provenance_code": code,
        "provenance_packages": json.dumps(package_versions(), sort_keys=True),
        "provenance_device": device_name(device),
        "provenance_git_commit": git_commit(),
    }
    if config is not None:
        record["provenance_identity"] = json.dumps(identity(config), sort_keys=True)
    record.update({f"provenance_{k}": v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()})
    return record
