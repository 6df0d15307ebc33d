"""Per-task replay buffer kept on the training device, sampled with equal counts per task.

Each task owns a ring of `capacity_per_task` transitions; all tasks advance together because the
vector env yields one transition per task per step. Observations are stored without the one-hot
task id (it is implied by the task's row) and the id is appended again when sampling, which cuts
memory by almost half on MT50.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Batch:
    """A flat batch ordered task by task: rows [i*b, (i+1)*b) belong to task i."""

    obs: Tensor  # (B, obs_dim + N), with one-hot
    action: Tensor  # (B, A)
    reward: Tensor  # (B,)
    next_obs: Tensor  # (B, obs_dim + N)
    done: Tensor  # (B,) 1.0 where the episode terminated (not truncated)
    task: Tensor  # (B,) long


class MultiTaskReplayBuffer:
    def __init__(
        self,
        num_tasks: int,
        capacity_per_task: int,
        obs_dim: int,
        action_dim: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.num_tasks, self.capacity, self.obs_dim = num_tasks, capacity_per_task, obs_dim
        self.device = torch.device(device)
        shape = (num_tasks, capacity_per_task)
        self.obs = torch.zeros(*shape, obs_dim, device=self.device)
        self.next_obs = torch.zeros(*shape, obs_dim, device=self.device)
        self.action = torch.zeros(*shape, action_dim, device=self.device)
        self.reward = torch.zeros(shape, device=self.device)
        self.done = torch.zeros(shape, device=self.device)
        self.pos = 0
        self.size = 0
        self._eye = torch.eye(num_tasks, device=self.device)
        self._rows = torch.arange(num_tasks, device=self.device)

    def __len__(self) -> int:
        """Transitions stored per task."""
        return self.size

    def add(
        self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray, done: np.ndarray
    ) -> None:
        """Store one transition per task; observations (N, >= obs_dim) are cut to the state part."""
        p = self.pos
        self.obs[:, p] = torch.as_tensor(obs[:, : self.obs_dim], dtype=torch.float32).to(self.device)
        self.next_obs[:, p] = torch.as_tensor(next_obs[:, : self.obs_dim], dtype=torch.float32).to(
            self.device
        )
        self.action[:, p] = torch.as_tensor(action, dtype=torch.float32).to(self.device)
        self.reward[:, p] = torch.as_tensor(reward, dtype=torch.float32).to(self.device)
        self.done[:, p] = torch.as_tensor(done, dtype=torch.float32).to(self.device)
        self.pos = (p + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, per_task: int, generator: torch.Generator | None = None) -> Batch:
        """`per_task` transitions drawn uniformly (with replacement) from each task's ring."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (self.num_tasks, per_task), device=self.device, generator=generator)
        rows = self._rows[:, None]
        task = self._rows.repeat_interleave(per_task)
        one_hot = self._eye[task]
        flat = self.num_tasks * per_task
        return Batch(
            obs=torch.cat([self.obs[rows, idx].reshape(flat, -1), one_hot], dim=1),
            action=self.action[rows, idx].reshape(flat, -1),
            reward=self.reward[rows, idx].reshape(flat),
            next_obs=torch.cat([self.next_obs[rows, idx].reshape(flat, -1), one_hot], dim=1),
            done=self.done[rows, idx].reshape(flat),
            task=task,
        )

    def state_dict(self) -> dict[str, Any]:
        """The filled part only (on CPU), so checkpoints of young runs stay small.

        Copied into compact tensors: a slice of a CPU tensor is a view, and torch.save would write
        the whole underlying storage.
        """
        n = self.size
        keys = ("obs", "next_obs", "action", "reward", "done")
        return {
            "pos": self.pos,
            "size": n,
            **{k: getattr(self, k)[:, :n].to("cpu", copy=True).contiguous() for k in keys},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = state["size"]
        if n > self.capacity or state["obs"].shape[0] != self.num_tasks:
            raise ValueError("replay checkpoint does not fit this buffer (task count or capacity differ)")
        for key in ("obs", "next_obs", "action", "reward", "done"):
            getattr(self, key)[:, :n] = state[key].to(self.device)
        self.pos, self.size = state["pos"], n
