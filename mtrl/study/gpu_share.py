"""Runs per GPU from what limits a run: the share of its loop's time the GPU computes (measured,
benchmarks/results/gpu_share.csv), and what k runs on one GPU need together from one node: CPU
cores (each run's threads: one env worker per task plus the trainer), host memory (each run's job
memory) and GPU memory (estimated from widths, depth and the replay buffer, which lives on the GPU).

k = the smallest of floor(target_gpu_busy / busy fraction), floor(cores / threads), floor(node memory
/ job memory), floor(GPU memory / run's GPU memory) and max_runs_per_gpu, at least 1; `Share.binding`
names the limit that decided it. A width-400 MT10 run keeps an H100 28 % busy but uses 11 cores: on
a 16-core node it gets the GPU to itself. No torch here: the workflow plans without it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtrl.config.settings import ConfigError, TrainConfig
from mtrl.envs.benchmarks import ACTION_DIM, OBS_DIM, TASK_SETS
from mtrl.study.runtime import (
    KEY_COLUMNS,
    SETTING_COLUMNS,
    Measured,
    effective_width,
    interpolate,
    read_measured,
    run_setting,
)

SHARE_COLUMNS = (
    *KEY_COLUMNS,
    *SETTING_COLUMNS,
    "loop_vector_steps_per_s",
    "update_per_s",
    "busy_fraction",
    "measured_on",
    "source",
)
GPU_BUSY, CORES, HOST_MEMORY, GPU_MEMORY, MAX_RUNS = (
    "GPU busy",
    "cores",
    "host memory",
    "GPU memory",
    "max_runs_per_gpu",
)
NOT_MEASURED = "not measured"
PROCESS_GPU_MB = 1_500  # CUDA context, cuBLAS workspaces, the captured graph's pool, allocator slack


@dataclass(frozen=True)
class ShareRow(Measured):
    busy_fraction: float  # loop rate / update-alone rate: the share of the loop time the GPU computes


@dataclass(frozen=True)
class Share:
    """How many runs of this kind one GPU holds, from what, and which limit decided it."""

    k: int
    busy_fraction: float | None  # None: not measured on the device
    basis: str
    binding: str = NOT_MEASURED  # GPU_BUSY, CORES, HOST_MEMORY, GPU_MEMORY, MAX_RUNS or NOT_MEASURED


def load_share_table(path: str | Path) -> list[ShareRow]:
    """Rows of gpu_share.csv; an absent table has none (every run then gets a GPU of its own)."""
    path = Path(path)
    if not path.is_file():
        return []
    return read_measured(path, SHARE_COLUMNS, "busy_fraction", ShareRow, lambda v: 0 < v <= 1, "in (0, 1]")


# ---------------------------------------------------------------- what one run asks of its node
def train_threads(config: TrainConfig, max_threads: int) -> int:
    """CPU cores of a training job: one per async env worker plus the trainer (1 with sync envs)."""
    return 1 if config.vector_strategy == "sync" else min(config.num_tasks + 1, int(max_threads))


def train_mem_mb(config: TrainConfig, base_mb: Mapping[str, int], attempt: int = 1) -> int:
    """Host memory of a training job: the task set's base (env processes, buffer copies) plus the
    width's share, half as much again on each retry."""
    width = max(config.actor_width, config.critic_width)
    return int(base_mb[config.task_set] * (1 + width / 8192) * (1 + 0.5 * (attempt - 1)))


def check_mem_mb(task_sets: Iterable[str], base_mb: Mapping[str, int]) -> None:
    """ConfigError naming a task set of the study that `train_resources.mem_mb` gives no memory."""
    missing = sorted(set(task_sets) - set(base_mb), key=list(TASK_SETS).index)
    if missing:
        raise ConfigError(
            f"train_resources.mem_mb: no memory for {', '.join(missing)}, whose runs are in this study "
            f"(given: {', '.join(base_mb) or 'none'})"
        )


def gpu_mem_mb(config: TrainConfig) -> int:
    """GPU memory of one run, estimated: the replay buffer, the actor and the two critics with their
    gradients and Adam moments, the target critics, a batch's activations, and a process's fixed cost."""
    n = config.num_tasks
    buffer = n * config.buffer_per_task * (2 * OBS_DIM + ACTION_DIM + 2)
    actor = _net_parameters(config, config.actor_width, OBS_DIM + n, 2 * ACTION_DIM)
    critic = _net_parameters(config, config.critic_width, OBS_DIM + n + ACTION_DIM, 1)
    parameters = 4 * actor + 2 * 4 * critic + 2 * critic  # param, grad, two moments; targets
    batch = n * config.batch_per_task
    activations = 8 * batch * config.depth * (config.actor_width + 2 * config.critic_width)
    return math.ceil(4 * (buffer + parameters + activations) / 2**20) + PROCESS_GPU_MB


def _net_parameters(config: TrainConfig, width: int, inputs: int, outputs: int) -> int:
    """An MLP of this width and depth with one head per task, times the architecture's parameter
    sets (PaCo) or experts (MOORE); SM at its default sizes is of the same order as the MLP."""
    mlp = inputs * width + (config.depth - 1) * width**2 + width * config.num_tasks * outputs
    copies = {"paco": config.paco_k, "moore": config.moore_experts}.get(config.arch) or 1
    return mlp * copies


@dataclass(frozen=True)
class NodeLimits:
    """What the k runs on one GPU share: the node's cores and host memory, the GPU's memory
    (config `train_resources`: cores_per_node, mem_mb_per_node, gpu_mem_mb)."""

    cores: int
    mem_mb: int
    gpu_mem_mb: int
    max_threads: int
    base_mem_mb: Mapping[str, int]

    @classmethod
    def from_resources(cls, resources: Mapping[str, Any]) -> NodeLimits:
        keys = ("cores_per_node", "mem_mb_per_node", "gpu_mem_mb", "max_threads")
        return cls(*(int(resources[key]) for key in keys), dict(resources["mem_mb"]))

    def runs(self, config: TrainConfig) -> dict[str, int]:
        """How many runs of `config` fit one node (cores, host memory) and one GPU (its memory)."""
        threads = train_threads(config, self.max_threads)
        return {
            CORES: self.cores // threads,
            HOST_MEMORY: self.mem_mb // train_mem_mb(config, self.base_mem_mb),
            GPU_MEMORY: self.gpu_mem_mb // gpu_mem_mb(config),
        }


def runs_per_gpu(
    config: TrainConfig,
    rows: list[ShareRow],
    device: str,
    max_runs: int,
    target_busy: float,
    node: NodeLimits | None = None,
) -> Share:
    """k runs that together keep one GPU at most about target_busy busy, and fit one node (`node`;
    None: no node limits) and the GPU's memory, at most max_runs and at least 1. The busy fraction is
    interpolated over width from rows of the same device, setting, task set and architecture (same
    depth first); with none the run gets a GPU of its own."""
    setting = run_setting(config, device)
    family = [
        r
        for r in rows
        if r.device.lower() == device.lower()
        and r.setting == setting
        and (r.task_set, r.arch) == (config.task_set, config.arch)
    ]
    chosen = [r for r in family if r.depth == config.depth] or family
    if not chosen:
        return Share(1, None, f"NOT MEASURED on {device} for {config.task_set}/{config.arch} with {setting}")
    width = effective_width(config.actor_width, config.critic_width)
    # interpolated as its inverse, a rate that falls with width: beyond the measured widths the
    # busy fraction is then never assumed to fall, so k errs towards fewer runs per GPU
    idle, how = interpolate(chosen, width, value=lambda r: 1 / r.busy_fraction)
    busy = 1 / idle
    limits = {GPU_BUSY: math.floor(round(target_busy / busy, 9))}
    limits |= node.runs(config) if node else {}
    limits[MAX_RUNS] = int(max_runs)
    binding = min(limits, key=limits.__getitem__)  # the first of the smallest
    k = max(1, limits[binding])
    fits = ", ".join(f"{name} {n}" for name, n in limits.items())
    basis = f"busy {busy:.2f} ({how} from {device} rows with {setting}); runs that fit: {fits}"
    return Share(k, busy, basis, binding)
