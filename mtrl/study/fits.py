"""Runs of a study that cannot fit the memory their jobs will have, refused when the workflow plans
(before it estimates hours or submits a job): the run's networks, replay buffer and batch
(`mtrl.agents.footprint`, by formula: no torch while planning) against the GPU's memory
(`train_resources.gpu_mem_mb`) when runs train on a GPU, else the job's host memory (`mem_mb`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mtrl.agents.footprint import approximate_sizes, fit_problem, footprint
from mtrl.config.settings import ConfigError, TrainConfig
from mtrl.config.speed import device_type_of
from mtrl.study.gpu_share import PROCESS_GPU_MB, train_mem_mb


def job_memory(config: TrainConfig, resources: Mapping[str, Any]) -> tuple[int, str] | None:
    """(bytes, what they are) a run of `config` will have for its networks, buffer and batch; None
    where the study gives no size (a task set without `mem_mb`)."""
    if device_type_of(str(resources["runtime_device"])) == "cuda" and int(resources["gpu"]) > 0:
        usable = int(resources["gpu_mem_mb"]) - PROCESS_GPU_MB
        return usable * 2**20, f"a GPU (train_resources.gpu_mem_mb less CUDA's own {PROCESS_GPU_MB} MB)"
    base = resources["mem_mb"]
    if config.task_set not in base:
        return None
    where = f"its job (train_resources.mem_mb.{config.task_set} at this width)"
    return train_mem_mb(config, base) * 2**20, where


def check_runs_fit(runs: Mapping[str, TrainConfig], resources: Mapping[str, Any]) -> None:
    """ConfigError naming the first run (and its setting) whose estimate exceeds its job's memory."""
    for run_id, config in runs.items():
        memory = job_memory(config, resources)
        if memory is None:
            continue
        problem = fit_problem(config, footprint(config, approximate_sizes(config)), *memory)
        if problem is not None:
            raise ConfigError(f"run {run_id}: {problem}; the workflow plans no such run")
