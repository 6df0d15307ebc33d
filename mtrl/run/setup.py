"""Process-wide settings of a run, made once where a run starts: device, torch threads, matmul
precision and the global seeds. Nothing inside a run (agent, networks, buffer) sets them."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from mtrl.config.settings import ConfigError, TrainConfig
from mtrl.config.speed import Speed, resolve_speed
from mtrl.envs.cores import CoreSplit, split_cores


def pick_device(name: str, key: str = "device") -> torch.device:
    """The torch device of the `key` setting (device, eval_device): `auto` is the GPU if torch sees
    one, else the CPU; ConfigError naming `key` if it asks for a GPU that is not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"{key}: cuda requested but torch sees no GPU on this machine "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
            f"use {key}: auto or cpu"
        )
    return torch.device(name)


def set_matmul_precision(precision: str, device: torch.device) -> None:
    """float32 matmuls at full precision, or TF32 (the JAX default on Ampere/Hopper); process-wide.

    TF32 exists only on CUDA; on a CPU `tf32` leaves float32 as it is. `bf16` is autocast, applied
    per forward pass (`MultiTaskSAC.autocast`), with float32 matmuls outside it.
    """
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"


def core_split(config: TrainConfig, cores: int | None = None) -> CoreSplit:
    """How the run splits the job's cores (`cores`, default: this process's, mtrl.envs.cores):
    `torch_threads` and `env_workers` as set, 0 resolved from the cores."""
    return split_cores(
        config.num_tasks, config.vector_strategy, config.env_workers, config.torch_threads, cores
    )


@dataclass(frozen=True)
class ProcessSetup:
    """What `prepare_process` settled for a run, once: the device it trains on, the device its
    evaluation's actor runs on, how the job's cores are split, and the update mode and matmul
    precision `auto` became there."""

    device: torch.device
    eval_device: torch.device
    cores: CoreSplit
    speed: Speed


def prepare_process(config: TrainConfig) -> ProcessSetup:
    """Pick the devices (ConfigError naming `device` or `eval_device` if a requested GPU is missing,
    before any env starts), set torch threads (`core_split`: never torch's default, the node's cores)
    and matmul precision (`auto` resolved for the device, mtrl.config.speed) for this process."""
    device = pick_device(config.device)
    eval_device = device if config.eval_device == "auto" else pick_device(config.eval_device, "eval_device")
    cores = core_split(config)
    torch.set_num_threads(cores.torch_threads)
    speed = resolve_speed(config.update_mode, config.matmul_precision, device.type)
    set_matmul_precision(speed.matmul_precision, device)
    return ProcessSetup(device, eval_device, cores, speed)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (network initialisation draws from torch's)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
