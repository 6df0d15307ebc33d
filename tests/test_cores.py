"""The cores a job has (affinity, SLURM's allocation) and how a run splits them (mtrl.envs.cores)."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from mtrl.envs.cores import CoreSplit, job_cores, slurm_cpus, split_cores


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"SLURM_CPUS_PER_TASK": "4"}, 4),
        ({"SLURM_CPUS_PER_TASK": "4", "SLURM_JOB_CPUS_PER_NODE": "32"}, 4),  # per task wins
        ({"SLURM_JOB_CPUS_PER_NODE": "16"}, 16),
        ({"SLURM_JOB_CPUS_PER_NODE": "16(x2)"}, 16),
        ({"SLURM_JOB_CPUS_PER_NODE": "8,4"}, 8),  # this node's entry comes first
        ({"SLURM_CPUS_PER_TASK": "", "SLURM_JOB_CPUS_PER_NODE": "junk"}, None),
        ({"SLURM_CPUS_PER_TASK": "0"}, None),
    ],
)
def test_slurm_cpus_reads_slurms_allocation(environ, expected):
    assert slurm_cpus(environ) == expected


def test_job_cores_is_the_affinity_capped_by_slurm():
    four = {0, 1, 2, 3}
    assert job_cores({}, four) == 4
    assert job_cores({"SLURM_CPUS_PER_TASK": "2"}, four) == 2
    assert job_cores({"SLURM_JOB_CPUS_PER_NODE": "16(x2)"}, four) == 4  # bound to 4 of the node's 16
    assert job_cores({}, set()) == 1


def test_job_cores_defaults_to_this_process(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 5, 7})
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert job_cores() == 3
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    monkeypatch.delenv("SLURM_JOB_CPUS_PER_NODE", raising=False)
    assert job_cores() == 5


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((10, "shm", 0, 0, 2), CoreSplit(2, 1, 1, 1)),  # this 2-core machine: one worker, one thread
        ((10, "shm", 0, 0, 16), CoreSplit(16, 10, 6, 4)),  # an H100 node's 16 cores
        ((50, "shm", 0, 0, 16), CoreSplit(16, 15, 1, 1)),
        ((10, "shm", 4, 0, 16), CoreSplit(16, 4, 12, 10)),  # workers set
        ((10, "shm", 0, 3, 16), CoreSplit(16, 10, 3, 4)),  # threads set
        ((10, "sync", 0, 0, 4), CoreSplit(4, 0, 4, 2)),  # envs in the trainer's process
        ((10, "async", 0, 0, 4), CoreSplit(4, 10, 1, 1)),  # gymnasium: a process per env
        ((1, "shm", 0, 0, 1), CoreSplit(1, 1, 1, 1)),
    ],
)
def test_split_cores(args, expected):
    assert split_cores(*args) == expected


def test_prepare_process_sets_torch_threads_from_the_jobs_cores_not_torchs_default(tiny_config, monkeypatch):
    from mtrl.run.setup import core_split, prepare_process

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)))
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "5")
    before = torch.get_num_threads()
    try:
        for strategy, workers, threads, expected in [("sync", 0, 0, 5), ("shm", 0, 0, 1), ("shm", 2, 0, 3)]:
            config = dataclasses.replace(
                tiny_config,
                task_set="mt10",
                vector_strategy=strategy,
                env_workers=workers,
                torch_threads=threads,
            )
            prepare_process(config)
            assert torch.get_num_threads() == expected == core_split(config).torch_threads
        prepare_process(dataclasses.replace(tiny_config, torch_threads=2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
