"""A run directory before training starts: one trainer at a time (a lock), writable, and room on the
disk for the run's checkpoints. Each check fails with one ConfigError naming the directory, at once
rather than hours into the run."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mtrl.config.settings import ConfigError, TrainConfig
from mtrl.files import checkpoints as ckpt

if TYPE_CHECKING:
    from mtrl.agents.buffers import MultiTaskReplayBuffer
    from mtrl.agents.sac import MultiTaskSAC

LOCK_NAME = ".mtrl.lock"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run directory, so two trainers (an orphaned SLURM job and its
    resubmission) never write one run at once. Creates the directory; ConfigError if it is not
    writable or another process holds the lock."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: the run directory is a file")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held for the whole run
    except OSError as exc:
        raise ConfigError(f"{run_dir}: cannot write the run directory ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise ConfigError(
                f"{run_dir}: another trainer is writing this run directory ({holder}); "
                "wait for it or stop it first"
            ) from None
        except OSError as exc:  # ENOLCK: a network file system that offers no locks
            raise ConfigError(
                f"{run_dir}: cannot lock the run directory ({exc.strerror or exc}); put runs on a file "
                "system with locks (a network file system without them cannot keep two trainers apart)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def check_writable(folder: Path) -> None:
    """Fail now, not after hours, if `folder` cannot take files."""
    probe = folder / f".mtrl-write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot write here ({exc.strerror or exc})") from None


def check_space(
    run_dir: Path, config: TrainConfig, buffer: MultiTaskReplayBuffer, agent: MultiTaskSAC
) -> None:
    """ConfigError now if the disk cannot hold this run's checkpoints at their largest."""
    check_writable(ckpt.resume_path(run_dir).parent)
    per_transition = buffer.obs[0, 0].numel() * 2 + buffer.action[0, 0].numel() + 2
    stored = min(config.buffer_per_task, config.vector_steps)
    buffer_bytes = buffer.num_tasks * stored * per_transition * 4
    networks = ckpt.payload_bytes(agent.training_state())
    probes = (config.probe_checkpoints + 1) * networks
    # the resume checkpoint and its temporary successor, probe checkpoints, 10% margin
    needed = int(1.1 * (2 * (buffer_bytes + networks) + probes))
    existing = [ckpt.resume_path(run_dir), ckpt.previous_path(ckpt.resume_path(run_dir))]
    existing += [path for _, path in ckpt.probe_checkpoints(run_dir)]
    # files this run will replace count as room (a resumed run already holds some of `needed`)
    free = shutil.disk_usage(run_dir).free + sum(p.stat().st_size for p in existing if p.exists())
    if free < needed:
        raise ConfigError(
            f"{run_dir}: needs about {ckpt.human_bytes(needed)} free for its checkpoints, "
            f"{ckpt.human_bytes(free)} free"
        )
