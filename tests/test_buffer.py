"""Per-task replay: balance, ring overwrite, one-hot restoration, state round trip."""

from __future__ import annotations

import numpy as np
import torch

from mtrl.agents.buffers import MultiTaskReplayBuffer


def fill(buffer: MultiTaskReplayBuffer, steps: int, num_tasks: int) -> None:
    for t in range(steps):
        obs = np.stack([np.full(39 + num_tasks, 100 * i + t, dtype=np.float32) for i in range(num_tasks)])
        buffer.add(obs, np.full((num_tasks, 4), t), np.arange(num_tasks) + t, obs + 1, np.zeros(num_tasks))


def test_sampling_is_balanced_and_one_hot_restored():
    buffer = MultiTaskReplayBuffer(3, 50, 39, 4)
    fill(buffer, 20, 3)
    batch = buffer.sample(16, torch.Generator().manual_seed(0))
    assert batch.obs.shape == (48, 42) and batch.next_obs.shape == (48, 42) and batch.action.shape == (48, 4)
    assert torch.equal(torch.bincount(batch.task), torch.tensor([16, 16, 16]))
    # every row's state came from its own task (values 100*i + t) and carries task i's one-hot
    task_of_value = (batch.obs[:, 0] // 100).long()
    assert torch.equal(task_of_value, batch.task)
    assert torch.equal(batch.obs[:, 39:].argmax(1), batch.task)
    assert torch.equal(batch.next_obs[:, 0], batch.obs[:, 0] + 1)
    torch.testing.assert_close(batch.reward, (batch.obs[:, 0] % 100) + batch.task.float())


def test_ring_overwrites_oldest():
    buffer = MultiTaskReplayBuffer(2, 5, 39, 4)
    fill(buffer, 8, 2)
    assert len(buffer) == 5 and buffer.pos == 3
    stored = sorted(buffer.obs[0, :, 0].tolist())
    assert stored == [3, 4, 5, 6, 7]


def test_state_dict_round_trip_keeps_only_filled_part():
    buffer = MultiTaskReplayBuffer(2, 100, 39, 4)
    fill(buffer, 7, 2)
    state = buffer.state_dict()
    assert state["obs"].shape == (2, 7, 39)
    other = MultiTaskReplayBuffer(2, 100, 39, 4)
    other.load_state_dict(state)
    a = buffer.sample(8, torch.Generator().manual_seed(1))
    b = other.sample(8, torch.Generator().manual_seed(1))
    assert torch.equal(a.obs, b.obs) and torch.equal(a.reward, b.reward) and other.pos == buffer.pos


def test_every_task_is_sampled_at_the_same_positions_as_the_authors_buffer():
    """The authors draw one set of time indices per batch and read every task's row there."""
    buffer = MultiTaskReplayBuffer(3, 50, 2, 1)
    for t in range(40):
        obs = np.stack([np.full(2, 100 * task + t, dtype=np.float32) for task in range(3)])
        buffer.add(obs, np.zeros((3, 1)), np.zeros(3), obs, np.zeros(3))
    batch = buffer.sample(16, torch.Generator().manual_seed(0))
    times = batch.obs[:, 0].view(3, 16) - 100 * torch.arange(3)[:, None]
    assert torch.equal(times[0], times[1]) and torch.equal(times[0], times[2])
    assert len(set(times[0].tolist())) > 5  # and the positions vary


def test_state_dict_holds_only_the_filled_part_in_storage_and_on_disk(tmp_path):
    """On CPU a slice is a view: saving it would write the whole (mostly empty) storage."""
    buffer = MultiTaskReplayBuffer(2, 1000, 39, 4)
    fill(buffer, 7, 2)
    state = buffer.state_dict()
    for key in ("obs", "next_obs", "action", "reward", "done"):
        assert state[key].untyped_storage().nbytes() == state[key].numel() * 4, key
    torch.save(state, tmp_path / "buffer.pt")
    assert (tmp_path / "buffer.pt").stat().st_size < 20_000  # the full storage would be ~700 kB
    state["obs"][0, 0, 0] = -1.0
    assert buffer.obs[0, 0, 0] != -1.0  # a copy, not a view of the live buffer
