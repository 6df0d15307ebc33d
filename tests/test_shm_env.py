"""The shared-memory vector env (vector_strategy shm): gymnasium's transitions, one-line worker errors,
every worker reaped, stop signals ignored, orphans exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from mtrl.envs.shm import EnvWorkerError, SharedMemoryVectorEnv, assign, default_workers
from mtrl.envs.vector import env_state, load_env_state, make_vector_env

TASKS = ["reach-v3", "push-v3", "drawer-close-v3"]
REPO = Path(__file__).resolve().parents[1]


def _episode(envs, actions: np.ndarray) -> list[np.ndarray]:
    """Reset, then one 500-step episode: every obs, reward, termination, truncation and success."""
    obs, _ = envs.reset()
    record = [obs]
    for action in actions:
        obs, reward, terminated, truncated, info = envs.step(action)
        record += [obs, reward, terminated, truncated, info["success"]]
    assert truncated.all()
    return record


def _assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("workers", [3, 2])  # one task per worker; two tasks on one worker
def test_transitions_equal_gymnasiums_across_episodes_and_a_checkpoint_restore(workers):
    rng = np.random.default_rng(workers)
    first = rng.uniform(-1, 1, (500, 3, 4)).astype(np.float32)
    second = rng.uniform(-1, 1, (500, 3, 4))  # float64 actions: passed through as float64, as gymnasium does
    reference = make_vector_env(TASKS, seed=5, strategy="sync")
    shm = make_vector_env(TASKS, seed=5, strategy="shm", workers=workers)
    try:
        assert shm.num_envs == 3 and len(shm.groups) == workers
        assert shm.observation_space == reference.observation_space
        assert shm.action_space == reference.action_space
        _assert_same(_episode(reference, first), _episode(shm, first))
        state = env_state(shm)
        assert state == env_state(reference)
        expected = _episode(reference, second)
        _assert_same(expected, _episode(shm, second))
        load_env_state(shm, state)  # the resume path: the same episode again
        _assert_same(expected, _episode(shm, second))
        assert shm.get_attr("reward_function_version") == ("v2",) * 3
    finally:
        reference.close()
        shm.close()
    assert all(proc.exitcode == 0 for proc in shm._procs)


def test_masked_reset_and_step_touch_only_the_chosen_envs():
    envs = make_vector_env(TASKS, seed=1, strategy="shm", workers=1)
    reference = make_vector_env(TASKS, seed=1, strategy="sync")
    try:
        obs, _ = envs.reset()
        np.testing.assert_array_equal(obs, reference.reset()[0])
        action = np.full((3, 4), 0.5, dtype=np.float32)
        moved = envs.step_masked(action, np.array([True, False, True]))[0]
        np.testing.assert_array_equal(moved[1], obs[1])  # not stepped
        stepped = reference.step(action)[0]
        np.testing.assert_array_equal(moved[[0, 2]], stepped[[0, 2]])
        again = envs.reset(options={"reset_mask": np.array([False, True, False])})[0]
        np.testing.assert_array_equal(again[[0, 2]], moved[[0, 2]])
    finally:
        envs.close()
        reference.close()


class FailingEnv(gym.Env):
    """A tiny env that raises on step `fail_at` (or never)."""

    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def __init__(self, fail_at: int = -1) -> None:
        self.fail_at, self.t = fail_at, 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t == self.fail_at:
            raise ValueError("the gripper fell off\nsecond line")
        return np.full(3, self.t / 100, np.float32), 1.0, False, False, {"success": 0.0}


def _toy(fail_at: int = -1) -> FailingEnv:
    return FailingEnv(fail_at)


def _toy_envs(fail_at: list[int], workers: int) -> SharedMemoryVectorEnv:
    from functools import partial

    makers = [partial(_toy, f) for f in fail_at]
    names = [f"task-{i}" for i in range(len(fail_at))]
    return SharedMemoryVectorEnv(makers, names, 3, 2, workers=workers, info_keys=("success",))


def test_a_raising_env_is_one_line_naming_its_task_and_every_worker_is_reaped(capfd):
    envs = _toy_envs([-1, -1, 3, -1], workers=4)
    envs.reset()
    envs.step(np.zeros((4, 2), np.float32))
    envs.step(np.zeros((4, 2), np.float32))
    with pytest.raises(EnvWorkerError) as raised:
        envs.step(np.zeros((4, 2), np.float32))
    assert str(raised.value) == "env worker: task-2: ValueError: the gripper fell off"
    assert envs.closed and all(proc.exitcode is not None for proc in envs._procs)
    time.sleep(0.2)
    assert "Traceback" not in capfd.readouterr().err
    with pytest.raises(EnvWorkerError, match="closed"):
        envs.step(np.zeros((4, 2), np.float32))


def test_a_killed_worker_is_one_line_naming_its_tasks(capfd):
    envs = _toy_envs([-1] * 4, workers=2)
    envs.reset()
    os.kill(envs._procs[1].pid, signal.SIGKILL)
    with pytest.raises(EnvWorkerError) as raised:
        envs.step(np.zeros((4, 2), np.float32))
    assert str(raised.value) == "env worker for task-2, task-3 died (exit code -9)"
    assert all(proc.exitcode is not None for proc in envs._procs)
    assert "Traceback" not in capfd.readouterr().err


def test_workers_ignore_stop_signals_and_close_reaps_them_even_mid_step():
    envs = _toy_envs([-1] * 3, workers=3)
    envs.reset()
    for proc in envs._procs:
        os.kill(proc.pid, signal.SIGTERM)
        os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    obs = envs.step(np.zeros((3, 2), np.float32))[0]
    np.testing.assert_array_equal(obs, np.full((3, 3), 0.01, np.float32))
    envs.step_async(np.zeros((3, 2), np.float32))
    envs.close()
    assert [proc.exitcode for proc in envs._procs] == [0, 0, 0]


UNCLOSED = """
import os, sys
from functools import partial
from tests.test_shm_env import _toy
from mtrl.envs.shm import SharedMemoryVectorEnv
if __name__ == "__main__":
    envs = SharedMemoryVectorEnv([partial(_toy)] * 2, ["a", "b"], 3, 2, workers=2, info_keys=("success",))
    envs.reset()
    print(" ".join(str(p.pid) for p in envs._procs), flush=True)
    if sys.argv[1] == "die":
        os._exit(0)  # no clean-up at all: the workers must notice on their own
"""


@pytest.mark.parametrize("how", ["die", "exit"])
def test_workers_exit_when_the_trainer_ends_without_closing_them(how):
    """Killed (no clean-up), the workers notice their parent is gone; exiting normally without
    close(), the interpreter closes them (multiprocessing alone would wait for them for ever)."""
    out = subprocess.run(
        [sys.executable, "-c", UNCLOSED, how],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pids = [int(pid) for pid in out.stdout.split()]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_workers_default_to_one_per_task_while_the_cores_last():
    assert default_workers(10, cores=16) == 10
    assert default_workers(50, cores=16) == 15
    assert default_workers(10, cores=2) == 1
    assert assign(50, 15)[0] == (0, 1, 2, 3) and sum(len(g) for g in assign(50, 15)) == 50
    assert max(len(g) for g in assign(50, 15)) - min(len(g) for g in assign(50, 15)) == 1
