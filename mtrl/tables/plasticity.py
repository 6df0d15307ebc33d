"""Plasticity tables: a probe metric over training (Figs. 6, 11, 12) and at the end vs parameters (Fig. 7)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtrl.files.result_files import TrainResult
from mtrl.tables.grouping import common_prefix, config_columns, group_by, ref_columns, require_runs
from mtrl.tables.runs import PlasticityResult, RunRef, read_plasticity, read_train
from mtrl.tables.stats import mean_ci

__all__ = ["NETWORK_CHOICES", "PLASTICITY_METRICS", "ALL_LAYERS", "plasticity_curve", "plasticity_final"]

NETWORK_CHOICES = ("actor", "critic", "critic0", "critic1")
# 'critic' is the critic as the authors' figures show it. Activation metrics: the FIRST critic
# (their figure scripts read metrics/dormant_neurons_critic_0_total_ratio). Norms: both critics as
# one parameter vector (their critic_params_norm / critic_grad_magnitude flatten the online
# ensemble's weights and biases; the target critics are not included).
JOINT_NORMS = ("param_norm", "grad_norm")
# metric -> (uses a tau axis, has a layer axis); shapes after the step axis
PLASTICITY_METRICS: dict[str, tuple[bool, bool]] = {
    "dormant_pct": (True, True),  # (S, T, L)
    "dormant_pct_total": (True, False),  # (S, T)
    "srank": (False, True),  # (S, L)
    "feature_norm": (False, True),  # (S, L)
    "param_norm": (False, False),  # (S,)
    "grad_norm": (False, False),  # (S,)
}
ALL_LAYERS = "all"
# config keys that shape a run's networks independently of its task set (see x_actor_params); SM's
# layers and modules per layer depend on the task set, so they take the other task set's defaults
NETWORK_KEYS = ("arch", "actor_width", "critic_width", "depth", "skip", "layer_norm")
SHAPE_KEYS = (*NETWORK_KEYS, "sm_module_width", "sm_embedding")


def _networks(network: str | Sequence[str]) -> list[str]:
    nets = [network] if isinstance(network, str) else list(network)
    bad = [n for n in nets if n not in NETWORK_CHOICES]
    if bad or not nets:
        raise ValueError(f"network must be one or more of {NETWORK_CHOICES}, got {network!r}")
    return nets


def _select_tau(
    arr: np.ndarray, res: PlasticityResult, metric: str, tau: float | None, where: Path
) -> np.ndarray:
    """The (S, ...) slice of a (S, T, ...) array at the probed tau equal to `tau` (float tolerance)."""
    if tau is None:
        raise ValueError(f"metric {metric!r} needs a tau")
    hits = np.flatnonzero(np.isclose(res.taus, tau))
    if hits.size == 0:
        raise ValueError(f"{where}: tau {tau} not probed; available taus {res.taus.tolist()}")
    return arr[:, hits[0]]


def _metric_values(
    res: PlasticityResult, metric: str, tau: float | None, network: str, where: Path
) -> tuple[np.ndarray, list[str]]:
    """(S, L') values of one run's metric for `network`.

    'critic' is the first critic (critic0), except for param_norm and grad_norm, which are the joint
    L2 norm of both critics, sqrt(critic0^2 + critic1^2) (exact: each member's norm covers its own
    parameters, and together they cover the ensemble).
    """
    if metric not in PLASTICITY_METRICS:
        raise ValueError(f"unknown plasticity metric {metric!r}; one of {sorted(PLASTICITY_METRICS)}")
    uses_tau, per_layer = PLASTICITY_METRICS[metric]
    joint = network == "critic" and metric in JOINT_NORMS
    sources = ["critic0", "critic1"] if joint else ["critic0" if network == "critic" else network]
    arrays = []
    for src in sources:
        if src not in res.metrics or metric not in res.metrics[src]:
            raise KeyError(f"{where}: no dataset {src}/{metric}")
        arr = np.asarray(res.metrics[src][metric], dtype=np.float64)
        if uses_tau:
            arr = _select_tau(arr, res, metric, tau, where)
        arrays.append(arr if per_layer else arr[:, None])
    values = np.sqrt(np.sum(np.square(arrays), axis=0)) if joint else arrays[0]
    layers = res.layers[sources[0]] if per_layer else [ALL_LAYERS]
    return values, layers


def _plasticity_const(metric: str, tau: float | None, network: str) -> dict[str, Any]:
    uses_tau = PLASTICITY_METRICS[metric][0]
    return {"network": network, "metric": metric, "tau": float(tau) if uses_tau else math.nan}


def plasticity_curve(
    runs: Sequence[RunRef],
    metric: str = "dormant_pct_total",
    tau: float | None = 0.1,
    network: str | Sequence[str] = "actor",
    reps: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """A plasticity metric over training per (panel, series) and network (Figs. 6, 11, 12).

    Args:
        metric: one of dormant_pct_total (% over all hidden units), dormant_pct (per layer),
            srank, feature_norm (per layer), param_norm, grad_norm.
        tau: dormancy threshold for the dormant metrics (must be one of the probed taus);
            ignored for the others (their `tau` column is NaN).
        network: 'actor', 'critic' (as the authors' figures: the first critic's activations, both
            critics' joint param/grad norm), 'critic0', 'critic1', or a sequence of them (rows for
            each, told apart by `network`).

    Runs of a series must share probed steps (cut to the common prefix with a warning otherwise).

    Columns: panel, series, label, order, arch, task_set, actor_width, critic_width, depth, skip,
      network, metric, tau, layer ('all' for whole-network metrics, else the layer name),
      step (total env steps), mean, ci_low, ci_high (mean over runs, 95 % bootstrap CI), n_runs.
    """
    require_runs(runs, "plasticity_curve")
    nets = _networks(network)
    keyed = [((ref.panel, ref.series), ref, read_plasticity(ref)) for ref in runs]
    frames = []
    for net in nets:
        for g in group_by(keyed):
            results: list[PlasticityResult] = g.items
            what = f"plasticity_curve {g.refs[0].panel}/{g.refs[0].series}"
            n = common_prefix([res.step for res in results], what)
            per_run = [
                _metric_values(res, metric, tau, net, ref.plasticity_path)
                for ref, res in zip(g.refs, results, strict=True)
            ]
            layers = per_run[0][1]
            stacked = np.stack([vals[:n] for vals, _ in per_run])  # (runs, S, L')
            const = {
                **ref_columns(g.refs),
                **config_columns(results[0].config),
                **_plasticity_const(metric, tau, net),
            }
            for j, layer in enumerate(layers):
                mean, lo, hi = mean_ci(stacked[:, :, j], reps=reps, seed=seed)
                steps = results[0].step[:n].astype(np.int64)
                columns = {"layer": layer, "step": steps, "mean": mean, "ci_low": lo, "ci_high": hi}
                frames.append(pd.DataFrame({**const, **columns, "n_runs": len(results)}))
    return pd.concat(frames, ignore_index=True)


def x_actor_params(config: dict[str, Any], actor_params: int, x_task_set: str | None) -> int:
    """The actor parameter count a run is plotted at: its own, or that of the same network on `x_task_set`.

    The authors' Fig. 7 (plots/fig4_3.py) places every task set's run of a width at the actor count
    of the MT50 run of that width. The network keeps the run's architecture, widths, depth, skip,
    layer norm and SM module sizes; task-set-dependent sizes take `x_task_set`'s defaults.
    """
    if x_task_set is None or config.get("task_set") == x_task_set:
        return int(actor_params)
    from mtrl.config.settings import TrainConfig
    from mtrl.nets.matching import count_actor_critic  # torch: imported only when needed

    shape = {k: config[k] for k in SHAPE_KEYS if k in config}
    return count_actor_critic(TrainConfig.from_dict({**shape, "task_set": x_task_set}).resolved())[0]


def plasticity_final(
    runs: Sequence[RunRef],
    metric: str = "dormant_pct_total",
    tau: float | None = 0.1,
    network: str | Sequence[str] = ("actor", "critic"),
    reps: int = 2000,
    seed: int = 0,
    x_task_set: str | None = None,
) -> pd.DataFrame:
    """A plasticity metric at each run's LAST probed checkpoint vs parameter count (Fig. 7).

    Runs are grouped like `success_final` (panel, series, arch, task_set, widths, depth, skip);
    parameter counts come from each run's train.h5, which must exist beside plasticity.h5.
    Arguments as in `plasticity_curve`; `x_task_set` (e.g. "mt50", as the authors' Fig. 7) puts
    every run at the actor count of its network built for that task set (`x_actor_params`).

    Columns: panel, series, label, order, arch, task_set, actor_width, critic_width, depth, skip,
      actor_params, critic_params, params (actor + one critic), x_params (the x-axis: the actor
      count, of `x_task_set`'s network if given), network, metric, tau, layer, step (last probed
      step, smallest over the runs), mean, ci_low, ci_high, n_runs.
    """
    require_runs(runs, "plasticity_final")
    nets = _networks(network)
    keyed = []
    for ref in runs:
        train, plast = read_train(ref), read_plasticity(ref)
        cfg = config_columns(train.config)
        keyed.append(((ref.panel, ref.series, *cfg.values()), ref, (train, plast)))
    rows = []
    for net in nets:
        for g in group_by(keyed):
            pairs: list[tuple[TrainResult, PlasticityResult]] = g.items
            finals, layers = [], [ALL_LAYERS]
            for ref, (_, plast) in zip(g.refs, pairs, strict=True):
                if len(plast.step) == 0:
                    raise ValueError(f"{ref.plasticity_path}: no probed steps")
                vals, layers = _metric_values(plast, metric, tau, net, ref.plasticity_path)
                finals.append(vals[-1])
            stacked = np.stack(finals)  # (runs, L')
            train0 = pairs[0][0]
            for j, layer in enumerate(layers):
                mean, lo, hi = mean_ci(stacked[:, j], reps=reps, seed=seed)
                rows.append(
                    {
                        **ref_columns(g.refs),
                        **config_columns(train0.config),
                        "actor_params": train0.actor_params,
                        "critic_params": train0.critic_params,
                        "params": train0.actor_params + train0.critic_params,
                        "x_params": x_actor_params(train0.config, train0.actor_params, x_task_set),
                        **_plasticity_const(metric, tau, net),
                        "layer": layer,
                        "step": int(min(plast.step[-1] for _, plast in pairs)),
                        "mean": mean,
                        "ci_low": lo,
                        "ci_high": hi,
                        "n_runs": len(pairs),
                    }
                )
    return pd.DataFrame(rows)
