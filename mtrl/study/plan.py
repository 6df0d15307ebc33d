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
from mtrl.study.gpu_share import NOT_MEASURED, Share
from mtrl.study.grid import StudyGrid
from mtrl.study.runtime import Plan, run_setting

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


def _hours(minutes: float) -> str:
    return f"{minutes / 60:,.0f}" if minutes >= 60 else f"{minutes / 60:.1f}"


def plan_lines(
    label: str,
    run_ids: Iterable[str],
    grid: StudyGrid,
    plans: Mapping[str, Plan],
    shares: Mapping[str, Share],
    resources: Mapping[str, Any],
    complete: set[str] = frozenset(),
) -> list[str]:
    """A few lines: runs and hours left, what is not measured on the device, runs per GPU."""
    run_ids = list(run_ids)
    left = [rid for rid in run_ids if rid not in complete]
    device, cap = resources["runtime_device"], resources["max_runtime_minutes"]
    gpu = device_type_of(device) == "cuda"
    settings = ", ".join(sorted({str(run_setting(grid.runs[rid], device)) for rid in left})) or "-"
    per_gpu = sum(plans[rid].estimate.minutes / shares[rid].k for rid in left)
    several = sum(plans[rid].attempts > 1 for rid in left)
    lines = [
        f"mtrl: plan for {label}: {len(run_ids)} runs, {len(run_ids) - len(left)} complete; the "
        f"{len(left)} to train take ~{_hours(per_gpu)} {'GPU-hours' if gpu else 'hours'} on {device} "
        f"({settings}), {several} of them in several jobs of at most {cap} min"
    ]
    gaps = Counter(plans[rid].estimate.gap for rid in left if not plans[rid].estimate.measured)
    if gaps:
        parts = "; ".join(f"{n} runs: {gap}" for gap, n in gaps.most_common())
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
    """How many runs share a GPU, how many are not measured, and which limit decided k for the rest
    (GPU busy, cores, host or GPU memory, max_runs_per_gpu: mtrl.study.gpu_share)."""
    by_k = Counter(share.k for share in shares)
    groups = ", ".join(f"{n} runs {k} per GPU" for k, n in sorted(by_k.items()) if k > 1) or "none"
    unmeasured = sum(share.binding == NOT_MEASURED for share in shares)
    line = f"mtrl: GPU sharing: {sum(n for k, n in by_k.items() if k > 1)} runs share a GPU ({groups})"
    if unmeasured:
        line += f"; {unmeasured} runs not measured for sharing get a GPU each"
    bindings = Counter(share.binding for share in shares if share.binding != NOT_MEASURED)
    if bindings:
        line += "; k is limited by " + ", ".join(f"{name} ({n} runs)" for name, n in bindings.most_common())
    return line
