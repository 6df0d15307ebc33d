"""Probe a finished run: plasticity metrics of every probe checkpoint on its own probe batch -> plasticity.h5.

Each checkpoint `checkpoints/probe/step_*.pt` (in step order) carries its probe batch: one training
batch (`batch_per_task` transitions per task) drawn with a fixed seed from the replay buffer as it
was at that step, so every checkpoint is measured on the data it was training on -- as the authors
computed these metrics on the current training batch. The step-0 checkpoint (untrained networks)
holds the first episode's warm-up data, the earliest a batch can be drawn (see
`mtrl.run.probe_checkpoints`).

For each checkpoint the agent is rebuilt on the CPU from the checkpoint's config; the actor runs on
the batch's observations (with one-hot) and samples actions (noise from the agent's generator,
re-seeded with `seed`); the critic ensemble runs on [obs, one-hot, those policy actions], as the
authors' `_get_intermediates` does. Forward hooks on each network's `hidden_layers()` collect the
hidden features, from which `mtrl.probe.plasticity` computes per layer the dormant-unit percentage (one
value per tau), srank and feature norm, plus the pooled dormant percentage over all hidden layers.
Parameter norms are per network (the actor, and each member of the E=2 critic ensemble); gradient
norms are those of the SAC critic loss (on the batch's replay actions, as in training) w.r.t. each
critic member and of the SAC actor loss w.r.t. the actor, on the probe batch, before any clipping.
Both critics are kept; the figures use the first critic's activations and the joint norm of both
(see `mtrl.tables.plasticity`).

Probe checkpoints hold no target critic: the target critic is set to a copy of the critic, so the
TD targets inside the critic loss (and thus its gradient norm) use the online critic's values.
The generator is re-seeded with `seed` before the policy actions and again before the losses, so
the numbers are a deterministic function of (run, seed).

File layout of plasticity.h5 (written to a temporary name, then renamed):
  attrs:  taus (JSON list of T floats), config (JSON of the run's TrainConfig), definitions (JSON
          dict metric -> one-line definition with units), batch_per_task (rows per task of the
          probe batches), seed (policy-noise seed), critic_actions ("policy")
  step    (S,) int64, ascending total env steps of the probed checkpoints
  actor/, critic0/, critic1/   attr layers (JSON list of the L hidden-layer names) and datasets
          dormant_pct (S, T, L), dormant_pct_total (S, T), srank (S, L) int64, feature_norm (S, L),
          param_norm (S,), grad_norm (S,); each dataset has attrs `units` and `definition`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor, nn

from mtrl.agents.buffers import Batch
from mtrl.agents.sac import MultiTaskSAC
from mtrl.config.settings import TrainConfig
from mtrl.envs.benchmarks import EPISODE_LENGTH
from mtrl.files import checkpoints as ckpt
from mtrl.files.result_files import write_atomic_h5
from mtrl.probe.plasticity import (
    DEFAULT_TAUS,
    dormant_percent,
    dormant_percent_total,
    feature_norm,
    grad_norm_per_member,
    param_norm_per_member,
    srank,
)
from mtrl.run.probe_checkpoints import probe_episodes, stored_batch

__all__ = ["NETWORKS", "METRICS", "probe_run", "stored_batch", "features", "probe_agent", "capture_hidden"]

log = logging.getLogger("mtrl.probe.probing")
CPU = torch.device("cpu")
NETWORKS = ("actor", "critic0", "critic1")
SRANK_DELTA = 0.01

# metric -> (units, one-line definition); also stored as the file's `definitions` attribute.
METRICS: dict[str, tuple[str, str]] = {
    "dormant_pct": (
        "percent (0-100)",
        "per hidden layer and tau: % of units with score mean_batch|h_i| / mean_j mean_batch|h_j| <= tau "
        "(Sokar et al. 2023); shape (S, T, L)",
    ),
    "dormant_pct_total": (
        "percent (0-100)",
        "per tau: dormant units of all hidden layers / all hidden units (pooled, not a mean of layer "
        "percentages); shape (S, T)",
    ),
    "srank": (
        "count of singular values",
        f"per hidden layer: smallest k with sum_(i<=k) s_i / sum_i s_i >= 1 - delta, s the singular values "
        f"of the (B, units) feature matrix, delta = {SRANK_DELTA} (Kumar et al. 2021); shape (S, L)",
    ),
    "feature_norm": (
        "L2 norm (activation units)",
        "per hidden layer: mean over the probe batch of each sample's feature-vector L2 norm; shape (S, L)",
    ),
    "param_norm": (
        "L2 norm (parameter units)",
        "global L2 norm of all parameters of the network (one critic = one ensemble member); shape (S,)",
    ),
    "grad_norm": (
        "L2 norm (loss units per parameter unit)",
        "global L2 norm of the gradient of the SAC loss on the probe batch (actor: actor loss; critic k: "
        "critic loss w.r.t. member k), before clipping; shape (S,)",
    ),
}


# ------------------------------------------------------------------------------ hidden features
@contextmanager
def capture_hidden(net: nn.Module) -> Iterator[dict[str, Tensor]]:
    """Forward hooks on `net.hidden_layers()`: yields a dict name -> detached output, filled by a forward.

    The hooks are removed on exit. A layer that runs twice within the block is an error (its
    features would be ambiguous).
    """
    captured: dict[str, Tensor] = {}
    handles = []

    def make_hook(name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
            if name in captured:
                raise RuntimeError(f"hidden layer {name!r} ran twice in one probe forward")
            captured[name] = output.detach()

        return hook

    for name, module in net.hidden_layers().items():
        handles.append(module.register_forward_hook(make_hook(name)))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _checked(net: nn.Module, captured: Mapping[str, Tensor], ensemble: int, batch: int) -> dict[str, Tensor]:
    """Hidden features name -> (E, B, U) captured from one forward of `net`, in `hidden_layers()` order."""
    out = {}
    for name in net.hidden_layers():
        if name not in captured:
            raise RuntimeError(f"hidden layer {name!r} did not run in the probe forward")
        h = captured[name]
        if h.ndim != 3 or h.shape[0] != ensemble or h.shape[1] != batch:
            raise RuntimeError(
                f"hidden layer {name!r} gave shape {tuple(h.shape)}, expected ({ensemble}, {batch}, units)"
            )
        out[name] = h
    return out


def features(agent: MultiTaskSAC, batch: Batch, seed: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Hidden features of the actor and of the critic ensemble on `batch`: name -> (E, B, U).

    The actor sees the observations and samples actions (noise from `agent.generator` seeded with
    `seed`); the critics see [obs, those actions], not the replay actions: the critic is probed on
    the actions of the policy it is evaluating (the authors' `_get_intermediates`).
    """
    b = batch.obs.shape[0]
    agent.generator.manual_seed(seed)
    with torch.no_grad(), capture_hidden(agent.actor) as actor_out:
        action = agent.act(batch.obs)
    actor = _checked(agent.actor, actor_out, 1, b)
    with torch.no_grad(), capture_hidden(agent.critic) as critic_out:
        agent.critic(torch.cat([batch.obs, action], dim=-1), batch.task)
    return actor, _checked(agent.critic, critic_out, agent.critic.ensemble, b)


def _layer_metrics(features: Mapping[str, Tensor], taus: Sequence[float]) -> dict[str, np.ndarray]:
    """Activation metrics of one network, member axis first: (E, T, L), (E, T), (E, L), (E, L)."""
    hs = list(features.values())
    return {
        "dormant_pct": torch.stack(
            [torch.stack([dormant_percent(h, tau) for h in hs], dim=-1) for tau in taus], dim=1
        ).numpy(),
        "dormant_pct_total": torch.stack(
            [dormant_percent_total(features, tau) for tau in taus], dim=1
        ).numpy(),
        "srank": torch.stack([srank(h, SRANK_DELTA) for h in hs], dim=-1).numpy(),
        "feature_norm": torch.stack([feature_norm(h) for h in hs], dim=-1).numpy(),
    }


# ------------------------------------------------------------------------------------ one agent
def probe_agent(
    agent: MultiTaskSAC, batch: Batch, taus: Sequence[float] = DEFAULT_TAUS, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """All metrics of one agent on `batch`: network ('actor', 'critic0', 'critic1') -> metric -> array.

    Per network: dormant_pct (T, L), dormant_pct_total (T,), srank (L,), feature_norm (L,) and the
    scalars param_norm and grad_norm (0-d arrays). Critic activations are taken on policy actions
    (`features`). Re-seeds `agent.generator` with `seed`; leaves the parameters unchanged and their
    gradients cleared.
    """
    critic_e = agent.critic.ensemble
    actor_h, critic_h = features(agent, batch, seed)
    actor, critic = _layer_metrics(actor_h, taus), _layer_metrics(critic_h, taus)

    agent.generator.manual_seed(seed)
    agent.zero_grad(set_to_none=True)
    critic_loss, _ = agent.critic_loss(batch)
    critic_loss.backward()
    critic_grad = grad_norm_per_member(agent.critic, critic_e)
    agent.zero_grad(set_to_none=True)
    agent.critic.requires_grad_(False)  # as in training: the actor loss does not reach the critic
    try:
        actor_loss, _ = agent.actor_loss(batch)
        actor_loss.backward()
    finally:
        agent.critic.requires_grad_(True)
    actor_grad = grad_norm_per_member(agent.actor, 1)
    agent.zero_grad(set_to_none=True)

    actor_param = param_norm_per_member(agent.actor, 1)
    critic_param = param_norm_per_member(agent.critic, critic_e)
    out = {"actor": {key: value[0] for key, value in actor.items()}}
    out["actor"]["param_norm"] = actor_param[0].numpy()
    out["actor"]["grad_norm"] = actor_grad[0].numpy()
    for member, net in enumerate(NETWORKS[1:]):
        out[net] = {key: value[member] for key, value in critic.items()}
        out[net]["param_norm"] = critic_param[member].numpy()
        out[net]["grad_norm"] = critic_grad[member].numpy()
    return out


def _build_agent(config: TrainConfig, obs_dim: int, action_dim: int) -> MultiTaskSAC:
    """A CPU agent for the (resolved) config; the global torch RNG is left as it was (init is overwritten)."""
    with torch.random.fork_rng(devices=[]):
        return MultiTaskSAC(config, obs_dim, action_dim, CPU)


def _load_agent(agent: MultiTaskSAC, state: Mapping[str, Any]) -> None:
    """Load a probe checkpoint's actor, critic and log-alpha; the target critic := the critic."""
    agent.actor.load_state_dict(state["actor"])
    agent.critic.load_state_dict(state["critic"])
    agent.target_critic.load_state_dict(state["critic"])
    with torch.no_grad():
        agent.log_alpha.copy_(torch.as_tensor(state["log_alpha"]).to(agent.log_alpha))


# ----------------------------------------------------------------------------------------- a run
def _checked_taus(taus: Sequence[float]) -> list[float]:
    values = [float(t) for t in taus]
    if not values or any(not np.isfinite(t) or t < 0 for t in values):
        raise ValueError(f"taus must be a non-empty list of finite values >= 0, got {values}")
    return values


def _load_checkpoint(step: int, path: Path) -> dict[str, Any]:
    """A probe checkpoint, checked to hold the step its name says."""
    try:
        state = ckpt.load(path, CPU)
    except ckpt.CheckpointError as exc:
        raise ckpt.CheckpointError(f"{exc} (the probe checkpoint of step {step})") from None
    if int(state["step"]) != step:
        raise ValueError(f"{path} holds step {state['step']}, its name says {step}")
    return state


def _check_all_steps_present(run_dir: Path, config: TrainConfig, found: Sequence[int]) -> None:
    """FileNotFoundError naming the steps whose probe checkpoints the run should have written but lacks."""
    per_episode = EPISODE_LENGTH * config.num_tasks
    missing = sorted({e * per_episode for e in probe_episodes(config)} - set(found))
    if missing:
        shown = ", ".join(str(s) for s in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise FileNotFoundError(
            f"{ckpt.probe_path(run_dir, missing[0])}: missing (no probe checkpoint for step(s) {shown})"
        )


def _agent_for_run(
    run_dir: Path, first: Mapping[str, Any], checkpoints: Sequence[tuple[int, Path]]
) -> MultiTaskSAC:
    """The CPU agent of the run whose first probe checkpoint is `first`, once every step is there."""
    sample = first.get("probe_batch") or {}
    if "obs" not in sample or "action" not in sample:
        raise ValueError(
            f"{checkpoints[0][1]}: no probe batch in this checkpoint; retrain the run to probe it"
        )
    config = TrainConfig.from_dict(dict(first["config"]))
    _check_all_steps_present(run_dir, config, [s for s, _ in checkpoints])
    return _build_agent(config, int(sample["obs"].shape[-1]), int(sample["action"].shape[-1]))


def _log_row(run_dir: Path, step: int, position: str, taus: Sequence[float], row: Mapping[str, Any]) -> None:
    """One progress line per checkpoint: the pooled dormant percentage at the largest tau."""
    tau_i = len(taus) - 1
    log.info(
        "%s: step %d (%s): dormant%% (tau %g) actor %.1f critic %.1f/%.1f",
        run_dir,
        step,
        position,
        taus[tau_i],
        row["actor"]["dormant_pct_total"][tau_i],
        row["critic0"]["dormant_pct_total"][tau_i],
        row["critic1"]["dormant_pct_total"][tau_i],
    )


def probe_run(
    run_dir: Path,
    out: Path | None = None,
    seed: int = 0,
    taus: Sequence[float] = DEFAULT_TAUS,
) -> Path:
    """Probe every checkpoint of `run_dir` on its own probe batch; write `out` (RUN_DIR/plasticity.h5).

    Runs on the CPU whatever device trained the run. Raises FileNotFoundError (naming the path)
    when the run has no probe checkpoints, ValueError on inconsistent checkpoints (configs differ,
    step mismatch, probe batches missing, malformed or of different sizes). Returns `out`.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "plasticity.h5"
    taus = _checked_taus(taus)
    checkpoints = ckpt.probe_checkpoints(run_dir)
    if not checkpoints:
        raise FileNotFoundError(
            f"no probe checkpoints (step_*.pt) in {run_dir / 'checkpoints' / 'probe'}; train the run first"
        )
    first = _load_checkpoint(*checkpoints[0])
    agent = _agent_for_run(run_dir, first, checkpoints)
    rows_per_task: int | None = None
    rows: list[dict[str, dict[str, np.ndarray]]] = []
    for i, (step, path) in enumerate(checkpoints):
        state = first if i == 0 else _load_checkpoint(step, path)
        if dict(state["config"]) != dict(first["config"]):
            raise ValueError(f"{path} was written by a different config than {checkpoints[0][1]}")
        batch = stored_batch(state, path, agent.num_tasks)
        per_task = batch.task.numel() // agent.num_tasks
        if rows_per_task is not None and per_task != rows_per_task:
            raise ValueError(
                f"{path}: probe batch has {per_task} rows per task, earlier ones {rows_per_task}"
            )
        rows_per_task = per_task
        _load_agent(agent, state)
        rows.append(probe_agent(agent, batch, taus, seed))
        _log_row(run_dir, step, f"{i + 1}/{len(checkpoints)}", taus, rows[-1])
    attrs = {
        "taus": json.dumps(taus),
        "config": json.dumps(dict(first["config"]), sort_keys=True),
        "definitions": json.dumps({k: f"{d} [{u}]" for k, (u, d) in METRICS.items()}),
        "batch_per_task": int(rows_per_task or 0),
        "seed": int(seed),
        "critic_actions": "policy",
    }
    write_plasticity_h5(out, attrs, [step for step, _ in checkpoints], rows, agent)
    log.info("wrote %s (%d checkpoints)", out, len(rows))
    return out


def write_plasticity_h5(
    out: Path,
    attrs: Mapping[str, Any],
    steps: Sequence[int],
    rows: Sequence[Mapping[str, Mapping[str, np.ndarray]]],
    agent: MultiTaskSAC,
) -> None:
    """plasticity.h5 (layout in the module docstring): `attrs`, then per network each metric stacked
    over the probed checkpoints (`rows`, one `probe_agent` result per step)."""
    layers = {
        "actor": list(agent.actor.hidden_layers()),
        "critic0": list(agent.critic.hidden_layers()),
        "critic1": list(agent.critic.hidden_layers()),
    }

    def fill(handle: h5py.File) -> None:
        handle.attrs.update(attrs)
        handle.create_dataset("step", data=np.asarray(steps, dtype=np.int64), track_times=False)
        for net in NETWORKS:
            group = handle.create_group(net)
            group.attrs["layers"] = json.dumps(layers[net])
            for metric, (units, definition) in METRICS.items():
                dtype = np.int64 if metric == "srank" else np.float64
                data = np.stack([row[net][metric] for row in rows]).astype(dtype)
                ds = group.create_dataset(metric, data=data, track_times=False)
                ds.attrs["units"] = units
                ds.attrs["definition"] = definition

    write_atomic_h5(out, fill)
