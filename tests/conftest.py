"""Shared fixtures: tiny configs that run in seconds on CPU."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

from mtrl.config import TrainConfig

torch.set_num_threads(1)
# matched widths computed afresh in every test session (and its Snakemake subprocesses), not taken
# from the user's cache (mtrl.width_cache)
os.environ["MTRL_CACHE_DIR"] = tempfile.mkdtemp(prefix="mtrl-cache-")

TINY = {
    "task_set": "mt1",
    "actor_width": 32,
    "critic_width": 32,
    "total_steps": 2000,
    "warmup_steps_per_task": 500,
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


def smoke_profile() -> list[str]:
    """Snakemake profile arguments: through SLURM when the test cluster is up (CI), else this machine."""
    if os.environ.get("MTRL_TEST_SLURM") == "1":
        return [
            "--profile",
            "profiles/slurm",
            "--slurm-init-seconds-before-status-checks",
            "2",
            "--slurm-keep-successful-logs",
            "--jobs",
            "4",
        ]
    return ["--profile", "profiles/local"]


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """The smoke pipeline, run once per test session in a private copy of the workflow."""
    from tests.workflow_helpers import copy_workflow, snakemake

    workdir = copy_workflow(tmp_path_factory.mktemp("smoke"))
    # One seed keeps the suite short; the DAG, every rule and every figure are those of `make smoke`.
    config = workdir / "config" / "smoke.yaml"
    config.write_text(config.read_text().replace("seeds: [0, 1]", "seeds: [0]"))
    proc = snakemake(workdir, *smoke_profile(), "--configfile", "config/smoke.yaml", timeout=1500)
    return workdir, proc
