"""Success tables: final IQM success per configuration (Fig. 1) and IQM success curves (Figs. 4, 5, 9, 10).

`statistic` picks the IQM (`mtrl.tables.stats.STATISTICS`): "authors" (default, the study's: the mean of
the runs between the quartiles of the runs' mean success over tasks, with Vega-Lite's bootstrap CI,
exactly as the authors' figure scripts), "runs" (trim_mean 0.25 over runs, rliable's CI) or "pooled"
(the IQM over all runs x tasks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mtrl.files.result_files import TrainResult
from mtrl.tables.grouping import common_prefix, config_columns, group_by, ref_columns, require_runs
from mtrl.tables.runs import RunRef, read_train
from mtrl.tables.stats import success_ci, success_curve_ci

__all__ = ["X_PLACEMENTS", "success_final", "success_curve"]

# Fig. 1's x positions: "published" as the authors' fig1_new.py places them (a run whose series has
# `x_at` at that architecture's actor count in its panel, or at that number), "own": every run at its own
X_PLACEMENTS = ("published", "own")


def _place(rows: list[dict], x_at: list[str | int | None], placement: str) -> None:
    """Set each row's x_params: its own actor count, or (published) where its series' `x_at` says."""
    if placement not in X_PLACEMENTS:
        raise ValueError(f"x_placement must be one of {X_PLACEMENTS}, got {placement!r}")
    for row, at in zip(rows, x_at, strict=True):
        row["x_placement"] = placement
        if placement == "own" or at is None:
            continue
        if not isinstance(at, str):
            row["x_params"] = int(at)
            continue
        counts = [r["actor_params"] for r in rows if r["panel"] == row["panel"] and r["arch"] == at]
        if not counts:
            raise ValueError(
                f"success_final: {row['panel']}/{row['series']} is placed at the actor count of {at} "
                f"(x_at), but panel {row['panel']} has no {at} run"
            )
        row["x_params"] = counts[0]


def success_final(
    runs: Sequence[RunRef],
    reps: int = 2000,
    seed: int = 0,
    statistic: str = "authors",
    x_placement: str = "published",
) -> pd.DataFrame:
    """Final IQM success per configuration (Fig. 1).

    Runs are grouped by (panel, series, arch, task_set, actor_width, critic_width, depth, skip):
    one row per group = the seeds of one configuration; several widths in one series give several
    points. Each run contributes its LAST evaluation's per-task success rates.

    Columns: panel, series, label, order, arch, task_set, actor_width, critic_width, depth, skip,
      actor_params, critic_params (one Q network), params (= actor_params + critic_params),
      x_params (the x-axis of Fig. 1, an actor parameter count: with `x_placement` "published"
      where the series' `x_at` puts it, as the authors' fig1_new.py (the MLPs matched to an
      architecture at that architecture's count) and get_data.py (MT10 width 400 at 370,000)
      place them; otherwise, or with "own", the run's own), x_placement, step (last eval step,
      smallest over the runs),
      iqm, ci_low, ci_high (success %, 95 % bootstrap CI, see `statistic`), statistic, n_runs,
      seeds ("0,1,2").
    """
    require_runs(runs, "success_final")
    keyed = []
    for ref in runs:
        res = read_train(ref)
        cfg = config_columns(res.config)
        keyed.append(((ref.panel, ref.series, *cfg.values()), ref, res))
    rows, x_at = [], []
    for g in group_by(keyed):
        results: list[TrainResult] = g.items
        empty = [str(r.run_dir) for r, res in zip(g.refs, results, strict=True) if len(res.eval_step) == 0]
        if empty:
            raise ValueError(f"success_final: runs without evaluations: {empty}")
        scores = np.stack([res.eval_success[-1] for res in results])  # (runs, tasks)
        point, lo, hi = success_ci(scores, statistic, reps=reps, seed=seed)
        first = results[0]
        rows.append(
            {
                **ref_columns(g.refs),
                **config_columns(first.config),
                "actor_params": first.actor_params,
                "critic_params": first.critic_params,
                "params": first.actor_params + first.critic_params,
                "x_params": first.actor_params,
                "step": int(min(res.eval_step[-1] for res in results)),
                "iqm": 100.0 * point,
                "ci_low": 100.0 * lo,
                "ci_high": 100.0 * hi,
                "statistic": statistic,
                "n_runs": len(results),
                "seeds": ",".join(str(res.config.get("seed", "")) for res in results),
            }
        )
        x_at.append(g.refs[0].x_at)
    _place(rows, x_at, x_placement)
    return pd.DataFrame(rows)


def success_curve(
    runs: Sequence[RunRef], reps: int = 2000, seed: int = 0, statistic: str = "authors"
) -> pd.DataFrame:
    """IQM success over training per (panel, series) (Figs. 4, 5, 9, 10).

    All runs of a series are pooled (normally: the seeds of one configuration) and must share their
    evaluation steps; if they have different numbers of evaluations, the curve is cut to the common
    prefix with a warning.

    Columns: panel, series, label, order, arch, task_set, actor_width, critic_width, depth, skip
      (of the series' first run), actor_params, critic_params, params, step (total env steps),
      iqm, ci_low, ci_high (success %, 95 % bootstrap CI at each step, see `statistic`), statistic,
      n_runs.
    """
    require_runs(runs, "success_curve")
    keyed = [((ref.panel, ref.series), ref, read_train(ref)) for ref in runs]
    frames = []
    for g in group_by(keyed):
        results: list[TrainResult] = g.items
        what = f"success_curve {g.refs[0].panel}/{g.refs[0].series}"
        n = common_prefix([res.eval_step for res in results], what)
        if n == 0:
            raise ValueError(f"{what}: a run has no evaluations")
        scores = np.stack([res.eval_success[:n] for res in results])  # (runs, K, tasks)
        point, lo, hi = success_curve_ci(np.transpose(scores, (0, 2, 1)), statistic, reps=reps, seed=seed)
        first = results[0]
        frame = pd.DataFrame(
            {
                "step": np.asarray(first.eval_step[:n], dtype=np.int64),
                "iqm": 100.0 * point,
                "ci_low": 100.0 * lo,
                "ci_high": 100.0 * hi,
                "statistic": statistic,
                "n_runs": len(results),
            }
        )
        const = {
            **ref_columns(g.refs),
            **config_columns(first.config),
            "actor_params": first.actor_params,
            "critic_params": first.critic_params,
            "params": first.actor_params + first.critic_params,
        }
        for i, (key, value) in enumerate(const.items()):
            frame.insert(i, key, value)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
