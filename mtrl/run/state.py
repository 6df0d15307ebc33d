"""The run state: everything a run carries across a stop, in one object, saved and loaded whole.

`RunState` is a dataclass whose fields are the parts of a run the loop advances: the step, the
agent (networks, optimisers, its noise generator), the replay buffer, the envs' RNG state, the
run's other random streams, the training log with its open window, the divergence watch and the
wall clock. `state_dict` saves every field and `load_state_dict` restores every field, walking the
dataclass's fields: a part added to a run is a field, saved and restored with no list to update.
Two identity fields (the config and the code's provenance) are saved for the resume checks
(`mtrl.run.resume`), never loaded over the run's own. The file is a checkpoint
(`mtrl.files.checkpoints`: checksummed, written atomically, the one before kept as resume.prev.pt).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from mtrl.agents.buffers import MultiTaskReplayBuffer
from mtrl.agents.sac import MultiTaskSAC
from mtrl.config.settings import TrainConfig
from mtrl.envs.vector import env_state, load_env_state
from mtrl.files import checkpoints as ckpt
from mtrl.files.result_files import TrainLog
from mtrl.run import rng_state
from mtrl.run.divergence import DivergenceWatch
from mtrl.run.window import MetricWindow

IDENTITY = {"identity": True}  # field metadata: saved for the resume checks, never loaded


class RunRngs:
    """The run's random streams outside the agent and the envs: torch's global CPU RNG (and the GPU's),
    the replay sampler's generator and the warm-up actions' numpy generator."""

    def __init__(self, device: torch.device, seed: int) -> None:
        self.device = device
        self.sampler = torch.Generator(device=device)
        self.sampler.manual_seed(seed + 1)
        self.warmup = np.random.default_rng([seed, 2])

    def state_dict(self) -> dict[str, Any]:
        """Every state as torch keeps it (CPU byte tensors: `mtrl.run.rng_state`)."""
        generators = {"sample_generator": self.sampler}
        return {**rng_state.capture(self.device, generators), "warmup_rng": self.warmup.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Set every stream; RngStateError if they were drawn on another kind of device."""
        rng_state.restore(state, self.device, {"sample_generator": self.sampler})
        self.warmup.bit_generator.state = state["warmup_rng"]


class WallClock:
    """Seconds a run has trained, over every process that trained it."""

    def __init__(self) -> None:
        self.before, self.started = 0.0, time.time()

    def seconds(self) -> float:
        return self.before + time.time() - self.started

    def state_dict(self) -> dict[str, float]:
        return {"seconds": self.seconds()}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.before, self.started = float(state["seconds"]), time.time()


@dataclass
class RunState:
    """One run as it stands after `step` vector steps (one transition per task each)."""

    config: TrainConfig = field(metadata=IDENTITY)
    provenance: str = field(metadata=IDENTITY)
    agent: MultiTaskSAC
    buffer: MultiTaskReplayBuffer
    envs: gym.vector.VectorEnv
    rngs: RunRngs
    watch: DivergenceWatch
    log: TrainLog = field(default_factory=TrainLog)
    window: MetricWindow = field(init=False)
    clock: WallClock = field(default_factory=WallClock)
    step: int = 0

    def __post_init__(self) -> None:
        self.window = MetricWindow(self.device)

    @property
    def device(self) -> torch.device:
        return self.rngs.device

    def state_dict(self) -> dict[str, Any]:
        """Every field: the parts as they save themselves, the identity as the resume checks read it."""
        state = {"config": self.config.to_dict(), "provenance": self.provenance}
        for name in self.part_names():
            state[name] = save_part(getattr(self, name))
        return state

    def load_state_dict(self, state: dict[str, Any], source: Path) -> None:
        """Put every part of a saved state back; CheckpointError naming `source` if it does not fit."""
        try:
            for name in self.part_names():
                setattr(self, name, load_part(getattr(self, name), state[name]))
        except rng_state.RngStateError as exc:
            raise ckpt.CheckpointError(f"{source}: {exc}, or delete it to start over") from None
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ckpt.CheckpointError(
                f"{source}: does not hold this run's resume state ({type(exc).__name__}: {exc}); "
                f"delete it to start over"
            ) from None

    def save(self, path: Path) -> None:
        """Write the whole state to `path` (the one it replaces kept as its `.prev`)."""
        ckpt.save_atomic(self.state_dict(), path, keep_previous=True)

    def load(self, path: Path) -> None:
        """Load the state saved at `path` into this run (CheckpointError naming it if unreadable)."""
        self.load_state_dict(ckpt.load(path, self.device), path)

    @classmethod
    def part_names(cls) -> list[str]:
        """The fields a stop must carry over: every field but the identity."""
        return [f.name for f in dataclasses.fields(cls) if not f.metadata.get("identity")]


def save_part(part: Any) -> Any:
    """What a part of the run state saves: the envs' RNG state, the agent's training state (networks,
    optimisers, generator), an object's `state_dict`, a plain value itself."""
    if isinstance(part, gym.vector.VectorEnv):
        return env_state(part)
    if isinstance(part, MultiTaskSAC):
        return part.training_state()
    if hasattr(part, "state_dict"):
        return part.state_dict()
    return part


def load_part(part: Any, saved: Any) -> Any:
    """`part` with `saved` (what `save_part` returned) put back; a plain value is replaced."""
    if isinstance(part, gym.vector.VectorEnv):
        load_env_state(part, saved)
    elif isinstance(part, MultiTaskSAC):
        part.load_training_state(saved)
    elif hasattr(part, "load_state_dict"):
        part.load_state_dict(saved)
    elif type(saved) is not type(part):
        raise TypeError(f"a {type(part).__name__} saved as {type(saved).__name__}")
    else:
        return saved
    return part
