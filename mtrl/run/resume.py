"""The resume checkpoint: what it holds, and a trainer restored from it or started afresh.

It holds everything needed to continue a run bit-for-bit: agent and optimisers, replay buffer, the
sampling and warm-up generators, torch's global RNG, the envs' RNG state, the log and the step. It is
kept with its predecessor (`resume.prev.pt`), the fallback when the newest one is damaged.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mtrl.config.settings import ConfigError
from mtrl.envs.vector import env_state, load_env_state
from mtrl.files import checkpoints as ckpt
from mtrl.files.provenance import identity
from mtrl.files.result_files import TrainLog
from mtrl.run import rng_state

if TYPE_CHECKING:
    from mtrl.run.train import Trainer

log = logging.getLogger("mtrl.run.resume")


def load_resume(resume_file: Path, device: torch.device) -> tuple[dict[str, Any] | None, Path]:
    """The newest readable resume checkpoint (resume.pt, else resume.prev.pt), saying which."""
    candidates = [resume_file, ckpt.previous_path(resume_file)]
    damaged = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            state = ckpt.load(path, device)
        except ckpt.UnreadableFile:  # not damaged (permissions, EIO, NFS): stop, delete nothing
            raise
        except ckpt.CheckpointError as exc:
            log.warning("%s", exc)
            damaged.append(path)
            continue
        if damaged:  # the good one replaces the damaged resume.pt (one rename), the next save keeps it
            log.warning("%s: falling back to the previous resume checkpoint %s", damaged[0], path)
            ckpt.rename_file(path, resume_file, "in place of the damaged one")
        return state, resume_file
    if damaged:
        log.warning("no readable resume checkpoint in %s: starting over", resume_file.parent)
    return None, resume_file


def resume_or_start(trainer: Trainer, restart_stale: bool) -> None:
    """Load the resume checkpoint if there is one for this exact run; else clear leftovers."""
    state, source = load_resume(trainer.resume_file, trainer.device)
    expected = (identity(trainer.config.to_dict()), trainer.provenance)
    if state is not None and (identity(state["config"]), state.get("provenance", "")) != expected:
        if not restart_stale:
            old, new = identity(state["config"]), expected[0]
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            what = f"a different config ({', '.join(changed)} differ)" if changed else "another code version"
            raise ConfigError(
                f"{source}: written by {what}; delete {trainer.run_dir} to start over, or train into "
                "another run directory"
            )
        log.warning("%s is stale (config or code changed): starting over", source)
        state = None
    if state is None:  # a fresh start: leftovers of an earlier, different run must not mix in
        ckpt.clear_run(trainer.run_dir)
        return
    restore(trainer, state, source)
    log.info("resumed %s at step %d", trainer.run_dir, trainer.step * trainer.n)


def restore(trainer: Trainer, state: dict[str, Any], source: Path) -> None:
    """Put `resume_state`'s contents back into `trainer`; CheckpointError if they do not fit it."""
    try:
        rng_state.restore(state, trainer.device, trainer.generators())
        trainer.agent.load_training_state(state["agent"])
        trainer.buffer.load_state_dict(state["buffer"])
        trainer.warmup_rng.bit_generator.state = state["warmup_rng"]
        load_env_state(trainer.envs, state["envs"])
        trainer.train_log = TrainLog.from_state_dict(state["log"])
        trainer.step, trainer.wall_time = state["step"], state["wall_time"]
    except rng_state.RngStateError as exc:
        raise ckpt.CheckpointError(f"{source}: {exc}, or delete it to start over") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ckpt.CheckpointError(
            f"{source}: does not hold this run's resume state ({type(exc).__name__}: {exc}); "
            f"delete it to start over"
        ) from None


def resume_state(trainer: Trainer) -> dict[str, Any]:
    """Everything needed to continue this run bit-for-bit."""
    return {
        "config": trainer.config.to_dict(),
        "provenance": trainer.provenance,
        "step": trainer.step,
        "wall_time": time.time() - trainer.run_start,
        "agent": trainer.agent.training_state(),
        "buffer": trainer.buffer.state_dict(),
        "warmup_rng": trainer.warmup_rng.bit_generator.state,
        **rng_state.capture(trainer.device, trainer.generators()),
        "envs": env_state(trainer.envs),
        "log": trainer.train_log.state_dict(),
    }
