"""The plan a Snakemake command prints once: the runs behind the targets asked for, their GPU-hours
on `runtime_device`, what is not measured there, and how many runs share a GPU.

`targets_scope` maps command-line targets (figure files, tables, a run's train.h5 or plasticity.h5,
`all`) to the runs and figures behind them; `plan_lines` says the plan in a few lines. Both are
pure: the workflow passes in the grid, the runtime plans and GPU shares it computed, and which runs
are complete.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtrl.config.speed import device_type_of
from mtrl.study.gpu_share import CORES, GPU_BUSY, GPU_MEMORY, HOST_MEMORY, MAX_RUNS, NOT_MEASURED, Share
from mtrl.study.grid import StudyGrid
from mtrl.study.runtime import Plan, Setting, run_setting

WHOLE_STUDY = "the whole study"


def _absolute(path: str | Path) -> Path:
    """`path` from the working directory, normalised (Snakemake's targets are relative to it)."""
    return Path(os.path.abspath(os.path.expanduser(path)))


def _figure_of(target: Path, figures_dir: Path, tables_dir: Path) -> str | None:
    """The figure a figure file (figures/fig7.pdf, table1.md) or its table (tables/fig7.csv) belongs to."""
    if target.parent == figures_dir and target.suffix in (".pdf", ".png", ".md", ".csv"):
        return target.stem
    if target.parent == tables_dir and target.name.endswith((".csv", ".provenance.json")):
        return target.name.split(".")[0]
    return None


@dataclass(frozen=True)
class Scope:
    """What a command's targets reach: `runs` (their train.h5), `probed` (runs whose plasticity.h5 is
    needed), `figures` (whose tables are made), and `label`, the targets in words."""

    label: str
    runs: list[str]
    probed: set[str]
    figures: list[str]


def targets_scope(targets: Sequence[str], grid: StudyGrid, results_dir: Path, figures_dir: Path) -> Scope:
    """The runs, probed runs and figures behind command-line targets. No targets, `all` or a target
    that is none of a figure, a table or a run's file: the whole study."""
    from mtrl.figures import FIGURES

    results = _absolute(results_dir)
    figures, tables, runs = _absolute(figures_dir), results / "tables", results / "runs"
    wanted: dict[str, None] = {}
    probed: set[str] = set()
    made: list[str] = []
    whole = not targets
    for target in targets:
        path = _absolute(target)
        figure = target if target in grid.figures else _figure_of(path, figures, tables)  # rule table1
        run = path.parent.relative_to(runs).as_posix() if path.is_relative_to(runs) else None
        if figure in grid.figures:
            wanted.update(dict.fromkeys(grid.runs_of(figure)))
            made.append(figure)
        elif run in grid.runs and path.name in ("train.h5", "plasticity.h5"):
            wanted[run] = None
            probed |= {run} if path.name == "plasticity.h5" else set()
        else:
            whole = True
    if whole:
        made, wanted = list(grid.figures), dict.fromkeys(grid.runs)
    probed |= {run for figure in made if FIGURES[figure].needs_plasticity for run in grid.runs_of(figure)}
    label = WHOLE_STUDY if whole else ", ".join(targets)
    return Scope(label, list(wanted), probed, list(dict.fromkeys(made)))


def targets_runs(
    targets: Sequence[str], grid: StudyGrid, results_dir: Path, figures_dir: Path
) -> tuple[str, list[str]]:
    """(what the targets are, in words; the run ids behind them): `targets_scope` in short."""
    scope = targets_scope(targets, grid, results_dir, figures_dir)
    return scope.label, scope.runs


UPDATE_WORDS = {
    "eager": "eager updates",
    "graph": "CUDA-graph updates",
    "compiled": "compiled CUDA-graph updates",
}
SHARE_LIMIT_WORDS = {
    GPU_BUSY: "how busy one run keeps the GPU",
    CORES: "the node's cores",
    HOST_MEMORY: "the node's memory",
    GPU_MEMORY: "the GPU's memory",
    MAX_RUNS: "max_runs_per_gpu",
}


def duration(minutes: float, unit: str = "") -> str:
    """'~12 min', '~3.5 hours', '~4,000 hours' (with a unit prefix: '~12 GPU-min', '~3.5 GPU-hours'):
    minutes under an hour, one decimal under ten hours."""
    prefix = f"{unit}-" if unit else ""
    if minutes < 59.5:
        return f"~{max(minutes, 1):.0f} {prefix}min"
    hours = minutes / 60
    return f"~{hours:.1f} {prefix}hours" if hours < 9.95 else f"~{hours:,.0f} {prefix}hours"


def count(runs: int) -> str:
    """'1 run', '12 runs'."""
    return f"{runs} run" if runs == 1 else f"{runs} runs"


def setting_words(setting: Setting) -> str:
    """'CUDA-graph updates, tf32 matmuls, the authors' step order': a run's speed setting in words."""
    order = "env steps overlapping the update" if setting.overlap else "the authors' step order"
    update = UPDATE_WORDS.get(setting.update_mode, setting.update_mode)
    return f"{update}, {setting.matmul_precision} matmuls, {order}"


def _time_left(minutes: float, gpu: bool, device: str, settings: str) -> str:
    """'~4,000 GPU-hours on <GPU> (<settings>)' or, on a CPU, the jobs' minutes added up."""
    spent = duration(minutes, "GPU") if gpu else f"{duration(minutes)} of job time in all"
    return f"{spent} on {device} ({settings})"


def _several_jobs(several: int, cap: int) -> str:
    """'; 3 of them run as several jobs of at most 48 h each, ...' ('' when every run fits one job)."""
    if not several:
        return ""
    limit = f"{cap // 60} h" if cap % 60 == 0 else f"{cap} min"
    return f"; {several} of them run as several jobs of at most {limit} each, each resuming the last"


def plan_lines(
    label: str,
    run_ids: Iterable[str],
    grid: StudyGrid,
    plans: Mapping[str, Plan],
    shares: Mapping[str, Share],
    resources: Mapping[str, Any],
    complete: set[str] = frozenset(),
) -> list[str]:
    """A few lines: runs and time left, what is not measured on the device, runs per GPU."""
    run_ids = list(run_ids)
    left = [rid for rid in run_ids if rid not in complete]
    device, cap = resources["runtime_device"], resources["max_runtime_minutes"]
    gpu = device_type_of(device) == "cuda"
    settings = "; ".join(sorted({setting_words(run_setting(grid.runs[rid], device)) for rid in left}))
    minutes = sum(plans[rid].estimate.minutes / shares[rid].k for rid in left)
    head = f"mtrl: plan for {label}: {count(len(run_ids))}"
    if not left:
        return [f"{head}, all complete: nothing left to train"]
    lines = [
        f"{head}, {len(run_ids) - len(left)} complete; the {len(left)} to train take "
        + _time_left(minutes, gpu, device, settings)
        + _several_jobs(sum(plans[rid].attempts > 1 for rid in left), cap)
    ]
    gaps = Counter(plans[rid].estimate.gap for rid in left if not plans[rid].estimate.measured)
    if gaps:
        parts = "; ".join(f"{count(n)}: {gap}" for gap, n in gaps.most_common())
        lines.append(
            f"mtrl: NOT MEASURED on {device} for {sum(gaps.values())} of them, estimated from other "
            f"rows of {resources['runtime_table']} ({parts})"
        )
    over = [rid for rid in left if plans[rid].attempts > int(resources["max_attempts"])]
    if over:
        lines.append(
            f"mtrl: {len(over)} runs need more than max_attempts={resources['max_attempts']} jobs by this "
            f"estimate (e.g. {over[0]}); they will not finish unless it is too pessimistic"
        )
    if resources.get("share_gpu") and resources.get("gpu", 0) > 0:
        lines.append(_sharing_line([shares[rid] for rid in left]))
    return lines


def _sharing_line(shares: Sequence[Share]) -> str:
    """How many runs share a GPU, how many are not measured, and what limits the runs per GPU for the
    rest (how busy a run keeps the GPU, cores, host or GPU memory, max_runs_per_gpu: mtrl.study.gpu_share)."""
    by_k = Counter(share.k for share in shares)
    sharing = sum(n for k, n in by_k.items() if k > 1)
    if sharing:
        groups = ", ".join(f"{count(n)} {k} per GPU" for k, n in sorted(by_k.items()) if k > 1)
        line = f"mtrl: GPU sharing: {sharing} of the {len(shares)} runs share a GPU ({groups})"
        line += ", the rest get one each"
    else:
        each = "the run" if len(shares) == 1 else f"each of the {len(shares)} runs"
        line = f"mtrl: GPU sharing: none; {each} gets a GPU of its own"
    unmeasured = sum(share.binding == NOT_MEASURED for share in shares)
    if unmeasured:
        line += f"; no sharing measurement for this GPU: {count(unmeasured)}, one GPU each"
    bindings = Counter(share.binding for share in shares if share.binding != NOT_MEASURED)
    if bindings:
        limits = ", ".join(
            f"{SHARE_LIMIT_WORDS.get(name, name)} ({count(n)})" for name, n in bindings.most_common()
        )
        line += f"; runs per GPU are limited by {limits}"
    return line
