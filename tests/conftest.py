"""Shared fixtures: tiny configs that run in seconds on CPU."""

from __future__ import annotations

import pytest
import torch

from mtrl.config import TrainConfig

torch.set_num_threads(1)

TINY = {
    "task_set": "mt1",
    "actor_width": 32,
    "critic_width": 32,
    "total_steps": 2000,
    "warmup_steps": 500,
    "eval_every": 1000,
    "eval_episodes": 1,
    "checkpoint_every": 500,
    "log_every": 500,
    "probe_checkpoints": 2,
    "buffer_per_task": 2000,
    "batch_per_task": 32,
    "vector_strategy": "sync",
    "torch_threads": 1,
}


@pytest.fixture
def tiny_config() -> TrainConfig:
    return TrainConfig.from_dict(TINY)
