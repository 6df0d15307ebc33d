"""The cores a job has, and how a run splits them between env workers, torch threads and evaluation.

torch's default thread count is the node's core count, not the job's: on a shared machine or a
SLURM allocation smaller than the node, the update's threads then compete with the env workers
and with other jobs, and a width-400 MT10 update measured 3-4x slower with two threads than with
one on a loaded 2-core machine. Every count here starts from the cores this process may run on
(its affinity), capped by SLURM's allocation where SLURM says so. Importing this imports neither
torch nor Meta-World.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path


def slurm_cpus(environ: Mapping[str, str]) -> int | None:
    """CPUs SLURM gave this job on this node: SLURM_CPUS_PER_TASK, else the first (this node's) entry
    of SLURM_JOB_CPUS_PER_NODE ("16", "16(x2)" or "8,4"); None outside SLURM or if unparsable."""
    per_task = environ.get("SLURM_CPUS_PER_TASK", "").strip()
    if per_task.isdigit() and int(per_task) > 0:
        return int(per_task)
    match = re.match(r"\s*(\d+)", environ.get("SLURM_JOB_CPUS_PER_NODE", ""))
    if match and int(match.group(1)) > 0:
        return int(match.group(1))
    return None


def job_cores(environ: Mapping[str, str] | None = None, affinity: Collection[int] | None = None) -> int:
    """Cores this process may use: its CPU affinity (taskset, cgroups, SLURM's binding), capped by
    SLURM's allocation when set; at least 1."""
    cpus = os.sched_getaffinity(0) if affinity is None else affinity
    slurm = slurm_cpus(os.environ if environ is None else environ)
    return max(1, min(len(cpus), slurm) if slurm else len(cpus))


def default_env_workers(num_envs: int, cores: int) -> int:
    """shm workers: one per env while the cores last, leaving one core to the trainer; at least 1."""
    return max(1, min(num_envs, cores - 1))


@dataclass(frozen=True)
class CoreSplit:
    """How a run uses its cores (recorded in its provenance)."""

    cores: int  # the job's cores (job_cores)
    env_workers: int  # processes stepping the training envs (0: the trainer's own process)
    torch_threads: int  # the trainer's torch CPU threads
    eval_workers: int  # env workers of a background evaluation (if the run uses one)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def split_cores(
    num_envs: int, strategy: str, env_workers: int = 0, torch_threads: int = 0, cores: int | None = None
) -> CoreSplit:
    """The run's split of `cores` (default: job_cores()). `env_workers`/`torch_threads` > 0 are taken as
    set; 0 means from the cores: shm workers one per env up to cores - 1, and torch the cores the env
    workers leave (at least 1), so envs stepping beside an update (overlap, a background evaluation)
    never oversubscribe the job. A background evaluation gets what the trainer, its own process and
    the training envs leave (at least one worker)."""
    cores = job_cores() if cores is None else cores
    if strategy == "shm":
        workers = min(env_workers or default_env_workers(num_envs, cores), num_envs)
    elif strategy == "async":
        workers = num_envs
    else:
        workers = 0
    threads = torch_threads or max(1, cores - workers)
    return CoreSplit(cores, workers, threads, max(1, cores - workers - 2))


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what `platform` knows: for the machine line
    of every benchmark result."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
