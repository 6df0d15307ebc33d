"""Probe checkpoints: when training writes them (`probe_episodes`), what they hold (networks,
temperatures and a probe batch) and the batch read back for the probe (`stored_batch`).

The probe batch is `batch_per_task` transitions per task (one training batch) drawn, with a fixed
seed, from the replay buffer as it is at that step: the metrics of each checkpoint are measured on
the data it was training on, as the authors measured them on the current training batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mtrl.agents.buffers import Batch, MultiTaskReplayBuffer
from mtrl.config.settings import TrainConfig
from mtrl.envs.benchmarks import EPISODE_LENGTH
from mtrl.files import checkpoints as ckpt

if TYPE_CHECKING:
    from mtrl.agents.sac import MultiTaskSAC


BATCH_KEYS = ("obs", "action", "reward", "next_obs", "done", "task")


def probe_episodes(config: TrainConfig) -> set[int]:
    """Episode indices (0 = initial networks) after which a network-only probe checkpoint is saved."""
    episodes = config.vector_steps // EPISODE_LENGTH
    return {0} | {
        round(k * episodes / config.probe_checkpoints) for k in range(1, config.probe_checkpoints + 1)
    }


def probe_batch(buffer: MultiTaskReplayBuffer, per_task: int, seed: int) -> dict[str, torch.Tensor]:
    """`per_task` transitions per task of the buffer as it is now (with replacement, as training
    samples), drawn by a generator of its own seeded with `seed`, so training's RNGs are untouched."""
    generator = torch.Generator(device=buffer.device)
    generator.manual_seed(seed + 3)
    batch = buffer.sample(per_task, generator)
    return {key: getattr(batch, key).cpu() for key in BATCH_KEYS}


def save_probe(
    run_dir: Path, step: int, config: TrainConfig, agent: MultiTaskSAC, buffer: MultiTaskReplayBuffer
) -> None:
    """Networks, temperatures and a probe batch at total step `step`, for the plasticity probe.

    At step 0 the buffer is empty; that checkpoint gets its batch at the first episode boundary
    (`complete_initial_probe`).
    """
    state = {
        "step": step,
        "config": config.to_dict(),
        "actor": agent.actor.state_dict(),
        "critic": agent.critic.state_dict(),
        "log_alpha": agent.log_alpha.detach().cpu(),
        "probe_batch": probe_batch(buffer, config.batch_per_task, config.seed) if len(buffer) else None,
    }
    ckpt.save_atomic(state, ckpt.probe_path(run_dir, step))


def complete_initial_probe(run_dir: Path, config: TrainConfig, buffer: MultiTaskReplayBuffer) -> None:
    """Give the step-0 checkpoint (untrained networks) its probe batch: the first episode's data.

    At step 0 the buffer is empty. The first episode boundary is the earliest point a batch can be
    drawn; its data is warm-up (uniform random actions under the default 4,000-step warm-up), the
    kind the first updates train on. A later buffer would hold states of a policy that had already
    learned, which the untrained networks never met.
    """
    path = ckpt.probe_path(run_dir, 0)
    state = ckpt.load(path, "cpu") if path.exists() else None
    if state is not None and state.get("probe_batch") is None:
        state["probe_batch"] = probe_batch(buffer, config.batch_per_task, config.seed)
        ckpt.save_atomic(state, path)


def stored_batch(state: Mapping[str, Any], path: Path, num_tasks: int) -> Batch:
    """The probe batch stored in a probe checkpoint, checked to be balanced and ordered task by task.

    Raises ValueError naming `path` if the checkpoint has no batch (written before probe batches
    were stored, or a step-0 checkpoint of a run killed within its first episode) or a malformed one.
    """
    sample = state.get("probe_batch")
    if sample is None:
        raise ValueError(f"{path}: no probe batch in this checkpoint; retrain the run to probe it")
    missing = set(BATCH_KEYS) - set(sample)
    if missing:
        raise ValueError(f"{path}: probe batch lacks {sorted(missing)}")
    task = sample["task"].cpu().long()
    rows = task.numel()
    if (
        rows == 0
        or rows % num_tasks
        or not torch.equal(task, torch.arange(num_tasks).repeat_interleave(rows // num_tasks))
    ):
        raise ValueError(f"{path}: probe batch is not {num_tasks} equal task blocks in task order")
    return Batch(**{key: sample[key].cpu() for key in BATCH_KEYS[:-1]}, task=task)
