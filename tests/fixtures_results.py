"""Synthetic result files for tests: fake `train.h5` and `plasticity.h5` with controlled numbers.

`train.h5` is written with the real writer (`mtrl.files.result_files.write_train_h5`); `plasticity.h5`
follows the probe's file spec:

  attrs:  taus (list of float), config (JSON), definitions (JSON dict metric -> text)
  step    (S,) int64, ascending total env steps of the probed checkpoints
  actor/, critic0/, critic1/   attrs layers (JSON list of L hidden-layer names) and datasets
          dormant_pct (S, T, L), dormant_pct_total (S, T), srank (S, L), feature_norm (S, L),
          param_norm (S,), grad_norm (S,)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mtrl.files.integrity import seal
from mtrl.files.result_files import TrainLog, write_train_h5

NETWORKS = ("actor", "critic0", "critic1")
OBS_DIM, ACTION_DIM = 39, 4
TASK_COUNTS = {"mt10": 10, "mt25": 25, "mt50": 50}


def fake_config(
    *,
    arch: str = "mtmhsac",
    task_set: str = "mt10",
    actor_width: int = 400,
    critic_width: int = 400,
    depth: int = 3,
    skip: bool = False,
    seed: int = 0,
    total_steps: int = 20_000_000,
    **extra: Any,
) -> dict[str, Any]:
    """A config dict with the keys the aggregation reads."""
    return {
        "arch": arch,
        "task_set": task_set,
        "actor_width": actor_width,
        "critic_width": critic_width,
        "depth": depth,
        "skip": skip,
        "seed": seed,
        "total_steps": total_steps,
        **extra,
    }


def mlp_params(width: int, depth: int, num_tasks: int, out_per_task: int, in_extra: int = 0) -> int:
    """Parameters of a multi-head MLP (inputs obs + one-hot [+ action]); only for plausible numbers."""
    n_in = OBS_DIM + num_tasks + in_extra
    hidden = n_in * width + width + (depth - 1) * (width * width + width)
    return hidden + num_tasks * (width * out_per_task + out_per_task)


def write_fake_train(
    run_dir: Path,
    success: np.ndarray,
    *,
    steps: Sequence[int] | None = None,
    actor_params: int | None = None,
    critic_params: int | None = None,
    **config: Any,
) -> Path:
    """Write `run_dir/train.h5` whose eval/success is `success` (K evals, N tasks).

    `steps` defaults to evaluations every 200k env steps starting at 200k. Parameter counts default
    to a multi-head MLP formula of the config's widths. Remaining keywords go to `fake_config`.
    """
    success = np.asarray(success, dtype=np.float64)
    if success.ndim != 2:
        raise ValueError(f"success must be (K, N), got {success.shape}")
    k, n = success.shape
    cfg = fake_config(**config)
    steps = list(steps) if steps is not None else [200_000 * (i + 1) for i in range(k)]
    if len(steps) != k:
        raise ValueError(f"{len(steps)} steps for {k} evaluations")
    depth = int(cfg["depth"])
    if actor_params is None:
        actor_params = mlp_params(int(cfg["actor_width"]), depth, n, 2 * ACTION_DIM)
    if critic_params is None:
        critic_params = mlp_params(int(cfg["critic_width"]), depth, n, 1, in_extra=ACTION_DIM)
    log = TrainLog(
        eval_step=[int(s) for s in steps],
        eval_success=success.tolist(),
        eval_return=(success * 500.0).tolist(),
    )
    attrs = {
        "config": json.dumps(cfg),
        "tasks": json.dumps([f"task-{i}" for i in range(n)]),
        "actor_params": int(actor_params),
        "critic_params": int(critic_params),
        "mtrl_version": "test",
        "device": "cpu",
        "wall_time_s": 1.0,
    }
    path = Path(run_dir) / "train.h5"
    write_train_h5(path, log, attrs, num_tasks=n)
    return path


def write_fake_plasticity(
    run_dir: Path,
    steps: Sequence[int],
    *,
    values: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    taus: Sequence[float] = (0.0, 0.025, 0.1),
    layers: Sequence[str] = ("hidden0", "hidden1", "hidden2"),
    fill: float = 0.0,
    **config: Any,
) -> Path:
    """Write `run_dir/plasticity.h5` in the probe's format.

    Args:
        steps: probed total env steps (S,).
        values: per network ("actor", "critic0", "critic1") a dict metric -> array of the spec's
            shape; any metric not given is filled with the constant `fill` (so tests control exactly
            the numbers they check).
        taus, layers: the dormant thresholds (T) and hidden-layer names (L).
        config: keywords for `fake_config` stored in the `config` attribute.
    """
    s, t, n_layers = len(steps), len(taus), len(layers)
    shapes = {
        "dormant_pct": (s, t, n_layers),
        "dormant_pct_total": (s, t),
        "srank": (s, n_layers),
        "feature_norm": (s, n_layers),
        "param_norm": (s,),
        "grad_norm": (s,),
    }
    values = values or {}
    unknown = set(values) - set(NETWORKS)
    if unknown:
        raise ValueError(f"unknown networks {sorted(unknown)}")
    path = Path(run_dir) / "plasticity.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.attrs["taus"] = np.asarray(taus, dtype=np.float64)
        handle.attrs["config"] = json.dumps(fake_config(**config))
        handle.attrs["definitions"] = json.dumps({name: f"synthetic {name}" for name in shapes})
        handle["step"] = np.asarray(steps, dtype=np.int64)
        for net in NETWORKS:
            group = handle.create_group(net)
            group.attrs["layers"] = json.dumps(list(layers))
            given = values.get(net, {})
            for metric, shape in shapes.items():
                arr = np.asarray(given[metric], dtype=np.float64) if metric in given else np.full(shape, fill)
                if arr.shape != shape:
                    raise ValueError(f"{net}/{metric}: expected shape {shape}, got {arr.shape}")
                group[metric] = arr
        seal(handle)  # as the probe's writer does: the checksum of its datasets
    return path


# ------------------------------------------------------------------------ a whole synthetic study
def _curve(final: float, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(k, n) success rates rising towards `final` with per-task noise, clipped to [0, 1]."""
    t = np.linspace(0.1, 1.0, k)[:, None]
    per_task = np.clip(final + rng.normal(0, 0.15, size=(1, n)), 0, 1)
    return np.clip(per_task * (1 - np.exp(-4 * t)) + rng.normal(0, 0.03, size=(k, n)), 0, 1)


def fake_study(root: Path, seeds: int = 3, evals: int = 8, probes: int = 6) -> dict[str, list[Any]]:
    """Write plausible synthetic runs for every figure under `root`; return figure -> RunRefs.

    Numbers mimic the paper's trends (success and MT10 dormancy grow with width, MT50 stays
    active) so drawn figures can be eyeballed; tests should check exact values with their own
    controlled runs instead.
    """
    from mtrl.tables import RunRef

    rng = np.random.default_rng(0)
    root = Path(root)
    cache: dict[tuple, Path] = {}

    def run(task_set: str, arch: str, aw: int, cw: int, depth: int, skip: bool, seed: int, final: float):
        key = (task_set, arch, aw, cw, depth, skip, seed)
        if key in cache:
            return cache[key]
        n = TASK_COUNTS[task_set]
        run_dir = root / task_set / arch / f"a{aw}-c{cw}-d{depth}{'-skip' if skip else ''}" / f"s{seed}"
        total = 20_000_000 if task_set == "mt10" else 100_000_000
        steps = np.linspace(total / evals, total, evals).astype(np.int64)
        cfg = dict(
            arch=arch, task_set=task_set, actor_width=aw, critic_width=cw, depth=depth, skip=skip, seed=seed
        )
        extra = {}
        if arch != "mtmhsac":  # architectures: params near their matched widths
            matched = {"sm": 550, "paco": 885, "moore": 800}[arch]
            extra = dict(
                actor_params=mlp_params(matched, 3, n, 8) + 1000,
                critic_params=mlp_params(matched, 3, n, 1, 4) + 1000,
            )
        write_fake_train(
            run_dir, _curve(final, evals, n, rng), steps=steps, total_steps=total, **cfg, **extra
        )
        probe_steps = np.linspace(total / probes, total, probes).astype(np.int64)
        growth = np.log2(max(aw, cw) / 128) * (
            3.0 if task_set == "mt10" else 0.4 if task_set == "mt50" else 1.2
        )
        t = np.linspace(0, 1, probes)
        values = {}
        for net, scale in (("actor", 1.0), ("critic0", 0.7), ("critic1", 0.75)):
            total_pct = np.clip(growth * scale * t + rng.normal(0, 0.5, probes), 0, 100)
            taus = np.stack([total_pct * 0.2, total_pct * 0.6, total_pct], axis=1)
            values[net] = {
                "dormant_pct_total": taus,
                "dormant_pct": np.repeat(taus[:, :, None], 3, axis=2),
                "param_norm": np.sqrt(max(aw, cw)) * (1 + scale * t) + rng.normal(0, 0.3, probes),
            }
        write_fake_plasticity(run_dir, probe_steps, values=values, **cfg)
        cache[key] = run_dir
        return run_dir

    def final_of(width: int, task_set: str) -> float:
        base = 0.45 if task_set == "mt10" else 0.35
        return min(0.95, base + 0.08 * np.log2(width / 256))

    figs: dict[str, list[Any]] = {k: [] for k in ("fig1", "fig4", "fig5", "fig6", "fig7", "fig9", "fig10")}
    widths = (256, 512, 1024, 2048, 4096)
    ff = "Simple feed-forward (MTMHSAC)"
    for task_set in ("mt10", "mt50"):
        panel = task_set.upper()
        for i, w in enumerate(widths):
            for s in range(seeds):
                d = run(task_set, "mtmhsac", w, w, 3, False, s, final_of(w, task_set))
                if w >= 1024:  # Fig. 1's line: the default width, the matched widths, 1024-4096
                    figs["fig1"].append(RunRef(panel, "MTMHSAC", d, label=ff))
                figs["fig4"].append(RunRef(panel, f"width {w}", d, order=i))
                if w <= 2048:
                    figs["fig6"].append(RunRef(panel, f"width {w}", d, order=i))
        for s in range(seeds):
            figs["fig1"].append(
                RunRef(panel, "MTMHSAC", run(task_set, "mtmhsac", 400, 400, 3, False, s, 0.5), label=ff)
            )
        for arch, name, final, matched in (
            ("sm", "SM", 0.55, 550),
            ("paco", "PaCo", 0.58, 885),
            ("moore", "MOORE", 0.72, 800),
        ):
            for s in range(seeds):
                d = run(task_set, arch, 400, 400, 3, False, s, final)
                figs["fig1"].append(RunRef(panel, name, d))
                d = run(task_set, "mtmhsac", matched, matched, 3, False, s, final + 0.05)
                figs["fig1"].append(RunRef(panel, "MTMHSAC", d, label=ff))
    for task_set in ("mt10", "mt25", "mt50"):
        for w in (256, 1024, 4096):
            for s in range(seeds):
                d = run(task_set, "mtmhsac", w, w, 3, False, s, final_of(w, task_set))
                figs["fig7"].append(RunRef("all", task_set.upper(), d))
    for i, (aw, cw) in enumerate(((1024, 1024), (1024, 400), (1024, 200), (400, 1024), (200, 1024))):
        for s in range(seeds):
            final = final_of(cw, "mt10") - 0.02 * (aw < 1024)
            d = run("mt10", "mtmhsac", aw, cw, 3, False, s, final)
            figs["fig5"].append(RunRef("MT10", f"actor {aw} / critic {cw}", d, order=i))
    for fig, width in (("fig9", 800), ("fig10", 885)):
        for i, (depth, skip) in enumerate(((3, False), (4, False), (4, True))):
            for s in range(seeds):
                d = run(
                    "mt10", "mtmhsac", width, width, depth, skip, s, 0.7 - 0.05 * (depth == 4 and not skip)
                )
                name = f"depth {depth}" + (" + skip" if skip else "")
                figs[fig].append(RunRef("MT10", name, d, order=i))
    figs["fig11"] = [r for r in figs["fig4"] if r.panel == "MT10"]
    figs["fig12"] = figs["fig11"]
    figs["table1"] = [
        r
        for r in figs["fig1"]
        if r.series in ("SM", "PaCo", "MOORE") and (r.panel, r.series) != ("MT50", "SM")
    ]
    return figs
