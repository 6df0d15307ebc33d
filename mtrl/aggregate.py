"""Result files of many runs -> one tidy table per figure (IQM / mean with 95 % bootstrap CIs).

A figure is drawn from a list of `RunRef`s: each names a run directory (holding `train.h5` and,
for plasticity figures, `plasticity.h5`) and says where the run belongs in the figure: its
`panel` (a subplot, e.g. "MT10") and its `series` (a line or a marker set, e.g. "width 1024").
Seeds of one configuration are simply several RunRefs with the same panel and series.

Common columns of the tables (every table function documents its own):
  panel, series      from the RunRefs
  label              legend text (RunRef.label, default the series name)
  order              sort key of the series (RunRef.order, NaN if not given); plots order legends by
                     it, then by first appearance
  arch, task_set, actor_width, critic_width, depth, skip     from the runs' config
  n_runs             runs (seeds) aggregated in the row
Success values are percentages (0-100): the IQM of success rates in [0, 1] times 100.
Rows come in the order of the runs given (panels and series by first appearance).

Statistics (see `mtrl.stats`): success -> IQM over runs x tasks with rliable's stratified
bootstrap; plasticity -> mean over runs with a bootstrap CI over runs.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from mtrl.results import TrainResult, read_train_h5
from mtrl.stats import iqm_ci, iqm_curve, mean_ci

TRAIN_FILE = "train.h5"
PLASTICITY_FILE = "plasticity.h5"
CONFIG_KEYS = ("arch", "task_set", "actor_width", "critic_width", "depth", "skip")
CONFIG_DEFAULTS: dict[str, Any] = {
    "arch": "mtmhsac",
    "task_set": "mt10",
    "actor_width": 400,
    "critic_width": 400,
    "depth": 3,
    "skip": False,
}
NETWORK_CHOICES = ("actor", "critic", "critic0", "critic1")
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


# ----------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class RunRef:
    """One run's place in a figure: subplot `panel`, line `series`, and its result directory."""

    panel: str
    series: str
    run_dir: Path
    label: str | None = None  # legend text; None -> series
    order: float | None = None  # sort key of the series in legends; None -> first appearance

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir))

    @property
    def train_path(self) -> Path:
        return self.run_dir / TRAIN_FILE

    @property
    def plasticity_path(self) -> Path:
        return self.run_dir / PLASTICITY_FILE


@dataclass(frozen=True)
class PlasticityResult:
    """The contents of one `plasticity.h5`."""

    taus: np.ndarray  # (T,)
    config: dict[str, Any]
    definitions: dict[str, str]
    step: np.ndarray  # (S,)
    layers: dict[str, list[str]]  # network -> L layer names
    metrics: dict[str, dict[str, np.ndarray]]  # network -> metric -> array


def _json_or_array(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        return json.loads(value)
    return np.asarray(value).tolist()


def read_plasticity_h5(path: str | Path) -> PlasticityResult:
    """Read a `plasticity.h5` (format in tests/fixtures_results.py and the probe's docs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing plasticity file: {path}")
    with h5py.File(path, "r") as handle:
        layers: dict[str, list[str]] = {}
        metrics: dict[str, dict[str, np.ndarray]] = {}
        for net in ("actor", "critic0", "critic1"):
            if net not in handle:
                continue
            group = handle[net]
            layers[net] = [str(x) for x in _json_or_array(group.attrs["layers"])]
            metrics[net] = {key: group[key][()] for key in group if isinstance(group[key], h5py.Dataset)}
        return PlasticityResult(
            taus=np.asarray(_json_or_array(handle.attrs["taus"]), dtype=np.float64).reshape(-1),
            config=_json_or_array(handle.attrs["config"]) if "config" in handle.attrs else {},
            definitions=(
                _json_or_array(handle.attrs["definitions"]) if "definitions" in handle.attrs else {}
            ),
            step=np.asarray(handle["step"][()], dtype=np.int64),
            layers=layers,
            metrics=metrics,
        )


def _read_train(ref: RunRef) -> TrainResult:
    if not ref.train_path.is_file():
        raise FileNotFoundError(f"missing train file of run {ref.panel}/{ref.series}: {ref.train_path}")
    return read_train_h5(ref.train_path)


def _read_plasticity(ref: RunRef) -> PlasticityResult:
    if not ref.plasticity_path.is_file():
        raise FileNotFoundError(
            f"missing plasticity file of run {ref.panel}/{ref.series}: {ref.plasticity_path}"
        )
    return read_plasticity_h5(ref.plasticity_path)


def _config_columns(config: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: config.get(key, CONFIG_DEFAULTS[key]) for key in CONFIG_KEYS}
    out["actor_width"], out["critic_width"], out["depth"] = (
        int(out["actor_width"]),
        int(out["critic_width"]),
        int(out["depth"]),
    )
    out["skip"] = bool(out["skip"])
    return out


def _ref_columns(refs: Sequence[RunRef]) -> dict[str, Any]:
    first = refs[0]
    orders = [r.order for r in refs if r.order is not None]
    return {
        "panel": first.panel,
        "series": first.series,
        "label": first.label if first.label is not None else first.series,
        "order": float(min(orders)) if orders else math.nan,
    }


@dataclass
class _Group:
    refs: list[RunRef] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)


def _group(keyed: Sequence[tuple[tuple, RunRef, Any]]) -> list[_Group]:
    """Group (key, ref, item) triples by key, keeping first-appearance order."""
    groups: dict[tuple, _Group] = {}
    for key, ref, item in keyed:
        g = groups.setdefault(key, _Group())
        g.refs.append(ref)
        g.items.append(item)
    return list(groups.values())


def _common_prefix(steps: Sequence[np.ndarray], what: str) -> int:
    """Length of the shared prefix of several runs' step arrays; warns if lengths differ."""
    lengths = [len(s) for s in steps]
    n = min(lengths)
    if len(set(lengths)) > 1:
        warnings.warn(
            f"{what}: runs have different numbers of points {lengths}; truncating to the common "
            f"prefix of {n}",
            UserWarning,
            stacklevel=3,
        )
    ref = np.asarray(steps[0][:n])
    for s in steps[1:]:
        if not np.array_equal(np.asarray(s[:n]), ref):
            raise ValueError(f"{what}: runs have different step values; cannot align their curves")
    return n


def _require_runs(runs: Sequence[RunRef], fn: str) -> None:
    if not runs:
        raise ValueError(f"{fn}: no runs given")


# ---------------------------------------------------------------------------------- success tables
def success_final(runs: Sequence[RunRef], reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Final IQM success per configuration (Fig. 1).

    Runs are grouped by (panel, series, arch, task_set, actor_width, critic_width, depth, skip):
    one row per group = the seeds of one configuration; several widths in one series give several
    points. Each run contributes its LAST evaluation's per-task success rates.

    Columns: panel, series, label, order, arch, task_set, actor_width, critic_width, depth, skip,
      actor_params, critic_params (one Q network), params (= actor_params + critic_params, the
      x-axis of Fig. 1: actor plus ONE critic), step (last eval step, smallest over the runs),
      iqm, ci_low, ci_high (success %, 95 % stratified-bootstrap CI), n_runs, seeds ("0,1,2").
    """
    _require_runs(runs, "success_final")
    keyed = []
    for ref in runs:
        res = _read_train(ref)
        cfg = _config_columns(res.config)
        keyed.append(((ref.panel, ref.series, *cfg.values()), ref, res))
    rows = []
    for g in _group(keyed):
        results: list[TrainResult] = g.items
        empty = [str(r.run_dir) for r, res in zip(g.refs, results, strict=True) if len(res.eval_step) == 0]
        if empty:
            raise ValueError(f"success_final: runs without evaluations: {empty}")
        scores = np.stack([res.eval_success[-1] for res in results])  # (runs, tasks)
        point, lo, hi = iqm_ci(scores, reps=reps, seed=seed)
        first = results[0]
        rows.append(
            {
                **_ref_columns(g.refs),
                **_config_columns(first.config),
                "actor_params": first.actor_params,
                "critic_params": first.critic_params,
                "params": first.actor_params + first.critic_params,
                "step": int(min(res.eval_step[-1] for res in results)),
                "iqm": 100.0 * point,
                "ci_low": 100.0 * lo,
                "ci_high": 100.0 * hi,
                "n_runs": len(results),
                "seeds": ",".join(str(res.config.get("seed", "")) for res in results),
            }
        )
    return pd.DataFrame(rows)


def success_curve(runs: Sequence[RunRef], reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """IQM success over training per (panel, series) (Figs. 4, 5, 9, 10).

    All runs of a series are pooled (normally: the seeds of one configuration) and must share their
    evaluation steps; if they have different numbers of evaluations, the curve is cut to the common
    prefix with a warning.

    Columns: panel, series, label, order, arch, task_set, actor_width, critic_width, depth, skip
      (of the series' first run), actor_params, critic_params, params, step (total env steps),
      iqm, ci_low, ci_high (success %, 95 % stratified-bootstrap CI at each step), n_runs.
    """
    _require_runs(runs, "success_curve")
    keyed = [((ref.panel, ref.series), ref, _read_train(ref)) for ref in runs]
    frames = []
    for g in _group(keyed):
        results: list[TrainResult] = g.items
        what = f"success_curve {g.refs[0].panel}/{g.refs[0].series}"
        n = _common_prefix([res.eval_step for res in results], what)
        if n == 0:
            raise ValueError(f"{what}: a run has no evaluations")
        scores = np.stack([res.eval_success[:n] for res in results])  # (runs, K, tasks)
        point, lo, hi = iqm_curve(np.transpose(scores, (0, 2, 1)), reps=reps, seed=seed)
        first = results[0]
        frame = pd.DataFrame(
            {
                "step": np.asarray(first.eval_step[:n], dtype=np.int64),
                "iqm": 100.0 * point,
                "ci_low": 100.0 * lo,
                "ci_high": 100.0 * hi,
                "n_runs": len(results),
            }
        )
        const = {
            **_ref_columns(g.refs),
            **_config_columns(first.config),
            "actor_params": first.actor_params,
            "critic_params": first.critic_params,
            "params": first.actor_params + first.critic_params,
        }
        for i, (key, value) in enumerate(const.items()):
            frame.insert(i, key, value)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------- plasticity tables
def _networks(network: str | Sequence[str]) -> list[str]:
    nets = [network] if isinstance(network, str) else list(network)
    bad = [n for n in nets if n not in NETWORK_CHOICES]
    if bad or not nets:
        raise ValueError(f"network must be one or more of {NETWORK_CHOICES}, got {network!r}")
    return nets


def _metric_values(
    res: PlasticityResult, metric: str, tau: float | None, network: str, where: Path
) -> tuple[np.ndarray, list[str]]:
    """(S, L') values of one run's metric for `network` ('critic' = mean of critic0 and critic1)."""
    if metric not in PLASTICITY_METRICS:
        raise ValueError(f"unknown plasticity metric {metric!r}; one of {sorted(PLASTICITY_METRICS)}")
    uses_tau, per_layer = PLASTICITY_METRICS[metric]
    sources = ["critic0", "critic1"] if network == "critic" else [network]
    arrays = []
    for src in sources:
        if src not in res.metrics or metric not in res.metrics[src]:
            raise KeyError(f"{where}: no dataset {src}/{metric}")
        arr = np.asarray(res.metrics[src][metric], dtype=np.float64)
        if uses_tau:
            if tau is None:
                raise ValueError(f"metric {metric!r} needs a tau")
            hits = np.flatnonzero(np.isclose(res.taus, tau))
            if hits.size == 0:
                raise ValueError(f"{where}: tau {tau} not probed; available taus {res.taus.tolist()}")
            arr = arr[:, hits[0]]
        arrays.append(arr if per_layer else arr[:, None])
    values = np.mean(arrays, axis=0)
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
        network: 'actor', 'critic' (the mean of critic0 and critic1, run by run), 'critic0',
            'critic1', or a sequence of them (rows for each, told apart by `network`).

    Runs of a series must share probed steps (cut to the common prefix with a warning otherwise).

    Columns: panel, series, label, order, arch, task_set, actor_width, critic_width, depth, skip,
      network, metric, tau, layer ('all' for whole-network metrics, else the layer name),
      step (total env steps), mean, ci_low, ci_high (mean over runs, 95 % bootstrap CI), n_runs.
    """
    _require_runs(runs, "plasticity_curve")
    nets = _networks(network)
    keyed = [((ref.panel, ref.series), ref, _read_plasticity(ref)) for ref in runs]
    frames = []
    for net in nets:
        for g in _group(keyed):
            results: list[PlasticityResult] = g.items
            what = f"plasticity_curve {g.refs[0].panel}/{g.refs[0].series}"
            n = _common_prefix([res.step for res in results], what)
            per_run = [
                _metric_values(res, metric, tau, net, ref.plasticity_path)
                for ref, res in zip(g.refs, results, strict=True)
            ]
            layers = per_run[0][1]
            stacked = np.stack([vals[:n] for vals, _ in per_run])  # (runs, S, L')
            const = {
                **_ref_columns(g.refs),
                **_config_columns(results[0].config),
                **_plasticity_const(metric, tau, net),
            }
            for j, layer in enumerate(layers):
                mean, lo, hi = mean_ci(stacked[:, :, j], reps=reps, seed=seed)
                frame = pd.DataFrame(
                    {
                        "layer": layer,
                        "step": results[0].step[:n].astype(np.int64),
                        "mean": mean,
                        "ci_low": lo,
                        "ci_high": hi,
                        "n_runs": len(results),
                    }
                )
                for i, (key, value) in enumerate(const.items()):
                    frame.insert(i, key, value)
                frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def plasticity_final(
    runs: Sequence[RunRef],
    metric: str = "dormant_pct_total",
    tau: float | None = 0.1,
    network: str | Sequence[str] = ("actor", "critic"),
    reps: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """A plasticity metric at each run's LAST probed checkpoint vs parameter count (Fig. 7).

    Runs are grouped like `success_final` (panel, series, arch, task_set, widths, depth, skip);
    parameter counts come from each run's train.h5, which must exist beside plasticity.h5.
    Arguments as in `plasticity_curve`.

    Columns: panel, series, label, order, arch, task_set, actor_width, critic_width, depth, skip,
      actor_params, critic_params, params (actor + one critic), network, metric, tau, layer,
      step (last probed step, smallest over the runs), mean, ci_low, ci_high, n_runs.
    """
    _require_runs(runs, "plasticity_final")
    nets = _networks(network)
    keyed = []
    for ref in runs:
        train, plast = _read_train(ref), _read_plasticity(ref)
        cfg = _config_columns(train.config)
        keyed.append(((ref.panel, ref.series, *cfg.values()), ref, (train, plast)))
    rows = []
    for net in nets:
        for g in _group(keyed):
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
                        **_ref_columns(g.refs),
                        **_config_columns(train0.config),
                        "actor_params": train0.actor_params,
                        "critic_params": train0.critic_params,
                        "params": train0.actor_params + train0.critic_params,
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


# ------------------------------------------------------------------------------------------ table 1
TABLE1_ARCHS = {"sm": "SM", "paco": "PaCo", "moore": "MOORE"}
TABLE1_TASK_SETS = {"mt10": "MT10", "mt50": "MT50"}
# success %, from the paper's Table 1 (App. D): its own reproduction and the original publications
TABLE1_PAPER = {
    ("sm", "mt10"): 71.4,
    ("paco", "mt10"): 73.6,
    ("paco", "mt50"): 58.9,
    ("moore", "mt10"): 83.2,
    ("moore", "mt50"): 72.0,
}
TABLE1_PUBLISHED = {
    ("sm", "mt10"): 71.8,
    ("paco", "mt10"): 71.6,
    ("paco", "mt50"): 57.3,
    ("moore", "mt10"): 88.7,
    ("moore", "mt50"): 72.9,
}


def table1(runs: Sequence[RunRef], reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Our SM / PaCo / MOORE final IQM success next to the paper's and the published numbers.

    Runs are matched to rows by their config (arch in sm/paco/moore, task_set in mt10/mt50), not by
    panel/series; other runs are ignored. All six rows are always present; a cell without data is
    NaN (ours: no runs given; paper/published: the paper reports none, e.g. SM on MT50).

    Columns: architecture (SM, PaCo, MOORE), task_set (MT10, MT50), ours, ours_ci_low,
      ours_ci_high (final IQM success %, 95 % CI), n_runs, paper (the paper's reproduction),
      published (the architecture's original publication).
    """
    scores: dict[tuple[str, str], list[np.ndarray]] = {}
    for ref in runs:
        res = _read_train(ref)
        cfg = _config_columns(res.config)
        key = (str(cfg["arch"]).lower(), str(cfg["task_set"]).lower())
        if key[0] in TABLE1_ARCHS and key[1] in TABLE1_TASK_SETS and len(res.eval_step):
            scores.setdefault(key, []).append(res.eval_success[-1])
    rows = []
    for arch, arch_name in TABLE1_ARCHS.items():
        for task_set, set_name in TABLE1_TASK_SETS.items():
            key = (arch, task_set)
            ours = lo = hi = math.nan
            if key in scores:
                ours, lo, hi = (100.0 * v for v in iqm_ci(np.stack(scores[key]), reps=reps, seed=seed))
            rows.append(
                {
                    "architecture": arch_name,
                    "task_set": set_name,
                    "ours": ours,
                    "ours_ci_low": lo,
                    "ours_ci_high": hi,
                    "n_runs": len(scores.get(key, [])),
                    "paper": TABLE1_PAPER.get(key, math.nan),
                    "published": TABLE1_PUBLISHED.get(key, math.nan),
                }
            )
    return pd.DataFrame(rows)


def _fmt(value: float) -> str:
    return "NA" if value is None or not np.isfinite(value) else f"{value:.1f}"


def table1_markdown(df: pd.DataFrame) -> str:
    """Render a `table1` frame as a Markdown table in the paper's layout (one row per architecture)."""
    sets = list(dict.fromkeys(df["task_set"]))
    header = ["Architecture"]
    for s in sets:
        header += [f"{s} (ours, 95% CI)", f"{s} (paper)", f"{s} (published)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arch in dict.fromkeys(df["architecture"]):
        cells = [str(arch)]
        for s in sets:
            sel = df[(df["architecture"] == arch) & (df["task_set"] == s)]
            if sel.empty:
                cells += ["NA"] * 3
                continue
            r = sel.iloc[0]
            ours = _fmt(r["ours"])
            if ours != "NA":
                ours += f" [{_fmt(r['ours_ci_low'])}, {_fmt(r['ours_ci_high'])}] (n={int(r['n_runs'])})"
            cells += [ours, _fmt(r["paper"]), _fmt(r["published"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class FigureSpec:
    """How to build the table of one figure: `table(runs, reps=..., seed=..., **kwargs)`."""

    table: Callable[..., pd.DataFrame]
    kwargs: Mapping[str, Any]
    description: str


FIGURES: dict[str, FigureSpec] = {
    "fig1": FigureSpec(success_final, {}, "final IQM success vs parameters (MT10, MT50)"),
    "fig4": FigureSpec(success_curve, {}, "IQM success over training per width (MT10, MT50)"),
    "fig5": FigureSpec(success_curve, {}, "IQM success over training, actor/critic width pairs (MT10)"),
    "fig6": FigureSpec(
        plasticity_curve,
        {"metric": "dormant_pct_total", "tau": 0.1, "network": ("actor", "critic")},
        "dormant neuron % over training per width, actor and critic (MT10, MT50)",
    ),
    "fig7": FigureSpec(
        plasticity_final,
        {"metric": "dormant_pct_total", "tau": 0.1, "network": ("actor", "critic")},
        "final dormant neuron % vs parameters per task set (MT10, MT25, MT50)",
    ),
    "fig9": FigureSpec(success_curve, {}, "depth 3 vs 4, with/without skip, MOORE parameter count (MT10)"),
    "fig10": FigureSpec(success_curve, {}, "depth 3 vs 4, with/without skip, PaCo parameter count (MT10)"),
    "fig11": FigureSpec(
        plasticity_curve,
        {"metric": "param_norm", "tau": None, "network": "actor"},
        "actor parameter norm over training (MT10)",
    ),
    "fig12": FigureSpec(
        plasticity_curve,
        {"metric": "param_norm", "tau": None, "network": "critic"},
        "critic parameter norm (mean of the two critics) over training (MT10)",
    ),
    "table1": FigureSpec(table1, {}, "SM / PaCo / MOORE: ours vs the paper and the publications"),
}


def aggregate(figure: str, runs: Sequence[RunRef], reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The table of `figure` (a key of FIGURES) from its runs, with the registry's default arguments."""
    if figure not in FIGURES:
        raise KeyError(f"unknown figure {figure!r}; one of {sorted(FIGURES)}")
    spec = FIGURES[figure]
    return spec.table(list(runs), reps=reps, seed=seed, **spec.kwargs)
