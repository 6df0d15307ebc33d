"""Collecting the parity runs: per-evaluation and per-update CSVs, the figure, and the verdict.

The verdict compares, between the sides, (a) the final success of each run (its mean over the last
`final_evals` evaluations both sides made) by the authors' IQM and by the mean, each difference with
a stratified bootstrap CI and an exact permutation p-value; (b) the training statistics both log the
same way (the update's own values every 100 updates) as per-run means over four windows of updates.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from parity_record import SIDES, TRAIN_STATS, RunSpec
from parity_stats import Difference, difference, mean, permutation_p, quartile_iqm

from mtrl.tables.stats import authors_ci

REPS = 10_000
WINDOWS = 4


@dataclass(frozen=True)
class RunRecord:
    """One run's records as written by its driver."""

    spec: RunSpec
    done: bool
    evals: dict[int, dict[str, float]]  # transitions -> task -> success
    train: dict[int, dict[str, float]]  # update -> statistic -> value
    info: dict[str, Any]


def load_run(run_dir: Path) -> RunRecord:
    spec = RunSpec.load(run_dir / "spec.json")
    evals: dict[int, dict[str, float]] = {}
    train: dict[int, dict[str, float]] = {}
    records = run_dir / "records.jsonl"
    for line in records.read_text().splitlines() if records.exists() else []:
        if not line.endswith("}"):
            continue  # a line cut off by a stop
        row = json.loads(line)
        if row["kind"] == "eval":
            evals[row["transitions"]] = row["success"]
        else:
            train[row["update"]] = {key: row[key] for key in TRAIN_STATS} | {
                "transitions": row["transitions"]
            }
    done_file = run_dir / "done.json"
    info = json.loads(done_file.read_text()) if done_file.exists() else {}
    return RunRecord(spec, done_file.exists(), evals, train, info)


def load_runs(root: Path, specs: Sequence[RunSpec]) -> list[RunRecord]:
    """The runs of `specs` that have a record with exactly that spec (finished or not)."""
    runs = []
    for spec in specs:
        run_dir = root / f"{spec.side}_s{spec.seed}"
        if (run_dir / "spec.json").exists() and RunSpec.load(run_dir / "spec.json") == spec:
            runs.append(load_run(run_dir))
    return runs


def common_keys(runs: Sequence[RunRecord], field: str) -> list[int]:
    """The evaluation transitions (or logged updates) every run has."""
    sets = [set(getattr(run, field)) for run in runs]
    return sorted(set.intersection(*sets)) if sets else []


def final_success(run: RunRecord, steps: Sequence[int]) -> float:
    """The run's mean success over tasks, averaged over the evaluations at `steps`."""
    return float(np.mean([np.mean(list(run.evals[s].values())) for s in steps]))


def by_side(runs: Sequence[RunRecord], value) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    return {side: np.array([value(r) for r in runs if r.spec.side == side]) for side in SIDES}


def verdict_rows(runs: Sequence[RunRecord], final_evals: int) -> list[dict[str, Any]]:
    """One row per compared quantity: both sides' statistic, the difference and its 95 % CI (none
    unless both sides have runs)."""
    if {r.spec.side for r in runs} != set(SIDES):
        return []
    steps = common_keys(runs, "evals")[-final_evals:]
    rows = []

    def row(quantity: str, window: str, statistic: str, d: Difference, p: float, n: dict) -> None:
        rows.append(
            {
                "quantity": quantity,
                "window": window,
                "statistic": statistic,
                "ours": d.ours,
                "authors": d.authors,
                "diff": d.diff,
                "ci_low": d.low,
                "ci_high": d.high,
                "relative_diff": d.diff / d.authors if d.authors else float("nan"),
                "ci_excludes_0": d.excludes_zero,
                "permutation_p": p,
                "n_ours": n["ours"],
                "n_authors": n["authors"],
            }
        )

    if steps:
        final = by_side(runs, lambda r: final_success(r, steps))
        n = {side: len(v) for side, v in final.items()}
        window = f"evaluations at {', '.join(f'{s:,}' for s in steps)} transitions"
        for name, stat in (("iqm", quartile_iqm), ("mean", mean)):
            d = difference(final["ours"], final["authors"], stat, REPS, seed=0)
            row("final success", window, name, d, permutation_p(final["ours"], final["authors"], stat), n)
    updates = common_keys(runs, "train")
    for lo, hi in window_bounds(updates):
        chosen = [u for u in updates if lo <= u <= hi]
        for key in TRAIN_STATS:
            values = by_side(runs, lambda r, k=key, c=chosen: float(np.mean([r.train[u][k] for u in c])))
            n = {side: len(v) for side, v in values.items()}
            d = difference(values["ours"], values["authors"], mean, REPS, seed=1)
            row(
                key,
                f"updates {lo:,}-{hi:,}",
                "mean",
                d,
                permutation_p(values["ours"], values["authors"], mean),
                n,
            )
    return rows


def window_bounds(updates: Sequence[int]) -> list[tuple[int, int]]:
    """The logged updates cut into WINDOWS equal consecutive windows (first and last update of each)."""
    if len(updates) < WINDOWS:
        return []
    parts = np.array_split(np.asarray(updates), WINDOWS)
    return [(int(p[0]), int(p[-1])) for p in parts]


def success_curve(runs: Sequence[RunRecord]) -> dict[str, list[tuple[int, float, float, float]]]:
    """Per side: (transitions, IQM over runs, 95 % CI) at every evaluation all its runs have, as the
    authors' figures draw it (`mtrl.tables.stats.authors_ci`: the mean of the runs between the
    quartiles, bootstrapped over those runs)."""
    curves: dict[str, list[tuple[int, float, float, float]]] = {}
    for side in SIDES:
        mine = [r for r in runs if r.spec.side == side]
        points = []
        for step in common_keys(mine, "evals"):
            values = np.array([np.mean(list(r.evals[step].values())) for r in mine])
            points.append((step, *authors_ci(values, seed=step)))
        curves[side] = points
    return curves


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["empty"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})


def eval_rows(runs: Sequence[RunRecord], code: dict[str, str]) -> list[dict[str, Any]]:
    tasks = sorted({t for r in runs for e in r.evals.values() for t in e})
    rows = []
    for r in runs:
        for step, success in sorted(r.evals.items()):
            rows.append(
                {
                    "side": r.spec.side,
                    "seed": r.spec.seed,
                    "run": "finished" if r.done else "unfinished",
                    "transitions": step,
                    "mean_success": float(np.mean(list(success.values()))),
                    **{t: float(success[t]) for t in tasks},
                    "code": code[r.spec.side],
                }
            )
    return rows


def train_rows(runs: Sequence[RunRecord], code: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "side": r.spec.side,
            "seed": r.spec.seed,
            "update": u,
            "transitions": int(v["transitions"]),
            **{k: float(v[k]) for k in TRAIN_STATS},
            "code": code[r.spec.side],
        }
        for r in runs
        for u, v in sorted(r.train.items())
    ]


LABELS = {"ours": "ours (mtrl, PyTorch)", "authors": "authors (metaworld-algorithms, JAX)"}
COLORS = {"ours": "tab:blue", "authors": "tab:orange"}
PANELS = (("q_mean", "mean Q"), ("critic_loss", "critic loss"), ("alpha_sum", "sum of alpha over tasks"))


def draw(path: Path, runs: Sequence[RunRecord], title: str) -> None:
    """Success (the authors' IQM over runs and its CI, as their figures) against transitions, and the training
    statistics (mean over runs, 95 % bootstrap CI) against updates, one colour per side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for side, points in success_curve(runs).items():
        if not points:
            continue
        x, y, lo, hi = (np.array(c) for c in zip(*points, strict=True))
        n = sum(r.spec.side == side for r in runs)
        axes[0, 0].plot(x, y, marker="o", color=COLORS[side], label=f"{LABELS[side]}, {n} runs")
        axes[0, 0].fill_between(x, lo, hi, color=COLORS[side], alpha=0.2)
    axes[0, 0].set(
        xlabel="transitions (all tasks)", ylabel="success rate (IQM over runs)", title="evaluation"
    )
    axes[0, 0].legend(fontsize=8)
    updates = common_keys(runs, "train")
    for ax, (key, label) in zip(axes.flat[1:], PANELS, strict=True):
        for side in SIDES:
            mine = [r for r in runs if r.spec.side == side]
            if not mine or not updates:
                continue
            values = np.array([[r.train[u][key] for u in updates] for r in mine])
            ax.plot(updates, values.mean(axis=0), color=COLORS[side], lw=1, label=LABELS[side])
            ax.fill_between(updates, *band(values), color=COLORS[side], alpha=0.2)
        ax.set(xlabel="update", ylabel=label, title=f"{label} (the update's own value, every 100)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: 95 % bootstrap CI of the mean over rows (runs)."""
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(values), size=(1000, len(values)))
    means = values[draws].mean(axis=1)
    return np.percentile(means, 2.5, axis=0), np.percentile(means, 97.5, axis=0)


def collect(size: Any, name: str, root: Path, results: Path) -> list[dict[str, Any]]:
    """Write parity_<name>_{evals,train,verdict}.csv and parity_<name>.png from the runs under `root`;
    print the verdict. Runs not finished are included in the CSVs and labelled, left out of the rest."""
    specs = size.specs()
    runs = load_runs(root, specs)
    if not runs:
        raise SystemExit(f"parity: no runs of size {name} under {root}")
    provenance = (
        json.loads((root / "provenance.json").read_text()) if (root / "provenance.json").exists() else {}
    )
    code = {
        "ours": f"mtrl {provenance.get('ours_commit', 'unknown')}",
        "authors": f"metaworld-algorithms {provenance.get('authors_commit', 'unknown')}",
    }
    write_csv(results / f"parity_{name}_evals.csv", eval_rows(runs, code))
    write_csv(results / f"parity_{name}_train.csv", train_rows(runs, code))
    finished = [r for r in runs if r.done]
    missing = len(specs) - len(finished)
    rows = verdict_rows(finished, size.final_evals)
    machine = provenance.get("machine", "unknown")
    for row in rows:
        row.update({"machine": machine, "date": provenance.get("date", "unknown")})
        row.update({f"{side}_code": code[side] for side in SIDES})
    verdict_file = results / f"parity_{name}_verdict.csv"
    verdict_file.unlink(missing_ok=True)  # a verdict is never left from other runs
    if rows:
        write_csv(verdict_file, rows)
    n = {side: sum(r.spec.side == side for r in finished) for side in SIDES}
    title = (
        f"MT10 MTMHSAC width {size.width} x {size.depth}, batch {size.batch_per_task}/task, "
        f"{size.total_steps:,} transitions; ours {n['ours']} runs, authors {n['authors']} runs"
        + (f" ({missing} of {len(specs)} runs unfinished: left out)" if missing else "")
    )
    draw(results / f"parity_{name}.png", finished, title)
    for row in rows:
        verdict = "differ" if row["ci_excludes_0"] else "no difference shown"
        print(
            f"{row['quantity']} [{row['window']}, {row['statistic']}]: ours {row['ours']:.4g}, authors "
            f"{row['authors']:.4g}, diff {row['diff']:+.4g} (95 % CI {row['ci_low']:+.4g} to "
            f"{row['ci_high']:+.4g}; permutation p = {row['permutation_p']:.3f}): {verdict}"
        )
    if not rows:
        print("parity: no verdict: it needs finished runs of both sides")
    if missing:
        print(f"parity: {missing} of {len(specs)} runs not finished; left out of the verdict and figure")
    return rows
