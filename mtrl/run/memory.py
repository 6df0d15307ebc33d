"""Whether a run fits the memory it will have, checked before any env starts: its networks, replay
buffer and one batch (`mtrl.agents.footprint`) against the host memory this job may use (what the
machine has available, its cgroup's limit, SLURM's --mem) or, on CUDA, the GPU's free memory."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from mtrl.agents.footprint import NetSizes, fit_problem, footprint
from mtrl.config.settings import ConfigError, TrainConfig


def measured_sizes(config: TrainConfig) -> NetSizes:
    """The run's networks built on the meta device (no memory), as `mtrl.nets.matching` counts them:
    parameters, and units as the biases' lengths (one per layer output)."""
    from mtrl.nets import build_network
    from mtrl.nets.layers import count_parameters
    from mtrl.nets.matching import io_features

    io = io_features(config.num_tasks)
    counts = []
    with torch.device("meta"):
        for role in ("actor", "critic"):
            network = build_network(config, role, *io[role], ensemble=1)
            units = sum(p.numel() for name, p in network.named_parameters() if name.endswith("bias"))
            counts.append((count_parameters(network), units))
    (actor, actor_units), (critic, critic_units) = counts
    return NetSizes(actor, critic, actor_units, critic_units)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _meminfo_available(text: str | None) -> int | None:
    for line in (text or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _left(limit: str | None, usage: str | None) -> int | None:
    """A cgroup's limit less its usage; None without a limit ("max", or v1's huge number)."""
    if limit is None or limit.strip() == "max" or int(limit) >= 2**60:
        return None
    return int(limit) - int(usage or 0)


def host_memory(
    read: Callable[[str], str | None] = _read, env: Mapping[str, str] = os.environ
) -> tuple[int, str]:
    """(bytes, where they come from): the least of what this machine has available, what its cgroup
    (a container, a SLURM job) still allows and SLURM's --mem / --mem-per-cpu."""
    found = [(_meminfo_available(read("/proc/meminfo")), "this machine (MemAvailable)")]
    found.append(
        (_left(read("/sys/fs/cgroup/memory.max"), read("/sys/fs/cgroup/memory.current")), "this job's cgroup")
    )
    found.append(
        (
            _left(
                read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
                read("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
            ),
            "this job's cgroup",
        )
    )
    if env.get("SLURM_MEM_PER_NODE", "").isdigit():
        found.append((int(env["SLURM_MEM_PER_NODE"]) * 2**20, "this job (SLURM_MEM_PER_NODE)"))
    if env.get("SLURM_MEM_PER_CPU", "").isdigit():
        cpus = int(env.get("SLURM_CPUS_ON_NODE", "1") or 1)
        found.append((int(env["SLURM_MEM_PER_CPU"]) * 2**20 * cpus, "this job (SLURM_MEM_PER_CPU)"))
    known = [(size, where) for size, where in found if size is not None]
    return min(known) if known else (2**62, "this machine")


def check_fits(config: TrainConfig, device: torch.device) -> None:
    """ConfigError in one line if the run's networks, replay buffer and batch cannot fit on `device`
    (its free memory on CUDA, the host memory this job may use on a CPU), before anything is built."""
    needed = footprint(config, measured_sizes(config))
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        limit, where = free, f"the GPU ({torch.cuda.get_device_name(device)}, free)"
    else:
        limit, where = host_memory()
    problem = fit_problem(config, needed, limit, where)
    if problem is not None:
        raise ConfigError(problem)
