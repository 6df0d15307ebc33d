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
    """Every field lives in one packed (N, capacity, F) tensor; `obs`, `action`, ... are views of it.

    Packing lets `add` move a step's transitions to the device in one copy and `gather` read a batch
    with one indexing kernel; the views keep the per-field interface and the checkpoint format.
    """

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
        d, a = obs_dim, action_dim
        self.width = 2 * d + a + 2  # obs | next_obs | action | reward | done
        self.storage = torch.zeros(num_tasks, capacity_per_task, self.width, device=self.device)
        self.obs = self.storage[..., :d]
        self.next_obs = self.storage[..., d : 2 * d]
        self.action = self.storage[..., 2 * d : 2 * d + a]
        self.reward = self.storage[..., 2 * d + a]
        self.done = self.storage[..., 2 * d + a + 1]
        self.pos = 0
        self.size = 0
        self._eye = torch.eye(num_tasks, device=self.device)
        self._rows = torch.arange(num_tasks, device=self.device)
        # Host staging rows for `add` on a GPU: pinned, two of them used in turn, each reused only
        # once its previous asynchronous copy has finished (an event per slot).
        self._staging: list[tuple[torch.Tensor, torch.cuda.Event | None]] = []
        self._slot = 0

    def __len__(self) -> int:
        """Transitions stored per task."""
        return self.size

    def _pack(
        self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray, done: np.ndarray
    ) -> np.ndarray:
        d = self.obs_dim
        row = np.empty((self.num_tasks, self.width), dtype=np.float32)
        row[:, :d] = obs[:, :d]
        row[:, d : 2 * d] = next_obs[:, :d]
        row[:, 2 * d : -2] = action
        row[:, -2] = reward
        row[:, -1] = done
        return row

    def add(
        self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray, done: np.ndarray
    ) -> None:
        """Store one transition per task; observations (N, >= obs_dim) are cut to the state part.

        One host-to-device copy per step, non-blocking from pinned memory on a GPU.
        """
        row = torch.from_numpy(self._pack(obs, action, reward, next_obs, done))
        p = self.pos
        if self.device.type == "cuda":
            if not self._staging:
                self._staging = [(torch.empty_like(row).pin_memory(), None) for _ in range(2)]
            host, event = self._staging[self._slot]
            if event is not None:
                event.synchronize()  # the copy that last read this slot is done (almost always at once)
            host.copy_(row)
            self.storage[:, p].copy_(host, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self._staging[self._slot] = (host, event)
            self._slot ^= 1
        else:
            self.storage[:, p] = row.to(self.device)
        self.pos = (p + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample_indices(self, per_task: int, generator: torch.Generator | None = None, out=None) -> Tensor:
        """(N, per_task) ring positions drawn uniformly (with replacement) from the filled part.

        As in the authors' buffer, one set of `per_task` positions is drawn and used for every task
        (all tasks advance together, so position t holds every task's t-th transition).
        """
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        if out is None:
            out = torch.empty(self.num_tasks, per_task, dtype=torch.long, device=self.device)
        torch.randint(0, self.size, (1, per_task), device=self.device, generator=generator, out=out[:1])
        out[1:].copy_(out[:1].expand(self.num_tasks - 1, per_task))
        return out

    def gather(self, idx: Tensor) -> Batch:
        """The batch at ring positions `idx` (N, b): no host values, so it can run in a CUDA graph."""
        per_task = idx.shape[1]
        flat = self.num_tasks * per_task
        d, a = self.obs_dim, self.action.shape[-1]
        rows = self.storage[self._rows[:, None], idx].reshape(flat, self.width)
        task = self._rows.repeat_interleave(per_task)
        one_hot = self._eye[task]
        return Batch(
            obs=torch.cat([rows[:, :d], one_hot], dim=1),
            action=rows[:, 2 * d : 2 * d + a],
            reward=rows[:, 2 * d + a],
            next_obs=torch.cat([rows[:, d : 2 * d], one_hot], dim=1),
            done=rows[:, 2 * d + a + 1],
            task=task,
        )

    def sample(self, per_task: int, generator: torch.Generator | None = None) -> Batch:
        """`per_task` transitions drawn uniformly (with replacement) from each task's ring."""
        return self.gather(self.sample_indices(per_task, generator))

    def state_dict(self) -> dict[str, Any]:
        """The filled part only (on CPU), so checkpoints of young runs stay small."""
        n = self.size
        return {
            "pos": self.pos,
            "size": n,
            # compact copies: a view would make torch.save write the whole packed storage
            **{
                k: getattr(self, k)[:, :n].cpu().clone(memory_format=torch.contiguous_format)
                for k in ("obs", "next_obs", "action", "reward", "done")
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = state["size"]
        if n > self.capacity or state["obs"].shape[0] != self.num_tasks:
            raise ValueError("replay checkpoint does not fit this buffer (task count or capacity differ)")
        for key in ("obs", "next_obs", "action", "reward", "done"):
            getattr(self, key)[:, :n] = state[key].to(self.device)
        self.pos, self.size = state["pos"], n
