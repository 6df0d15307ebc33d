"""Shared fixtures: tiny configs that run in seconds on CPU."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
from _pytest.nodeid import coerce_node_id

from mtrl.config.settings import TrainConfig

torch.set_num_threads(1)
# matched widths and Meta-World's goal variations computed afresh in every test session (and its
# Snakemake subprocesses), not taken from the user's cache (mtrl.study.width_cache, mtrl.envs.vector); one
# cache for all pytest-xdist workers of a session, so that each variation is sampled once
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID")
if _RUN:
    os.environ["MTRL_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"mtrl-cache-{_RUN}")
else:
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


def xdist_group_of(item: pytest.Item) -> str | None:
    """The long tests that must share a worker: those reading the smoke pipeline's one run, and the
    SLURM tests that run a training job through the test cluster."""
    if "smoke" in item.fixturenames:
        return "smoke"
    if item.get_closest_marker("slurm"):
        return "slurm"
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config, items):
    """`make test` runs the suite on two pytest-xdist workers (`--dist loadgroup`). The smoke tests go
    to one worker and the SLURM tests to the other, first, so that the smoke pipeline runs once and the
    two longest parts of the suite run side by side; every other test goes to whichever worker is free
    after. The order is the same in every worker, as xdist requires."""
    grouped: dict[str, list[pytest.Item]] = {"smoke": [], "slurm": []}
    rest = []
    for item in items:
        group = xdist_group_of(item)
        if group is None:
            rest.append(item)
            continue
        grouped[group].append(item)
        item.add_marker(pytest.mark.xdist_group(group))
        if getattr(config.option, "loadgroup", False) and hasattr(item, "_id"):  # set on xdist workers only
            # xdist groups by a "@group" suffix of the id, which xdist 3.8 writes to `_nodeid`; pytest 9
            # reads the id from `_id`: written here instead
            item._id = coerce_node_id(f"{item.nodeid}@{group}")
    items[:] = grouped["smoke"] + grouped["slurm"] + rest


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
    # 60 s per job (an MT50 job takes ~1 min alone on an idle core), stretched by the load: under load
    # the limit grows instead of firing halfway through a pipeline that is still going
    proc = snakemake(workdir, *smoke_profile(), "--configfile", "config/smoke.yaml", per_job_s=60)
    return workdir, proc
