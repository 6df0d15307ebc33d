"""Transitions per core-second of each way to step Meta-World, measured interleaved (env_stepping.py).

A core-second is a second of CPU time of this process or any of its children (the env workers), so
a vector env's rate is what the job's cores buy, whatever the machine's other load. Every way steps
the same tasks with the same fixed-seed random actions; the rounds alternate between the ways so a
change in the machine's load hits all of them alike; each way's value is the median of its rounds.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import mujoco
import numpy as np
import psutil

from mtrl.envs.benchmarks import ACTION_DIM
from mtrl.envs.vector import _make_one, env_seeds, make_vector_env


def _on_cpu_seconds(proc: psutil.Process) -> float:
    """Seconds a process's live threads have run on a CPU: /proc/PID/task/TID/schedstat (nanoseconds),
    else user + system time (clock ticks, 10 ms)."""
    try:
        total = 0
        for tid in os.listdir(f"/proc/{proc.pid}/task"):
            with open(f"/proc/{proc.pid}/task/{tid}/schedstat") as handle:
                total += int(handle.read().split()[0])
        return total * 1e-9
    except (OSError, ValueError, IndexError):
        times = proc.cpu_times()
        return times.user + times.system


def cpu_seconds() -> float:
    """CPU seconds of this process and its live children so far."""
    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            total += _on_cpu_seconds(proc)
        except psutil.NoSuchProcess:
            continue
    return total


@dataclass
class Way:
    """One way of stepping: `chunk(steps)` runs `steps` vector steps; the rounds' rates collect here."""

    name: str
    chunk: Callable[[int], int]  # returns transitions done
    close: Callable[[], None] = lambda: None
    per_core: list[float] = field(default_factory=list)
    per_second: list[float] = field(default_factory=list)

    def measure(self, steps: int) -> None:
        cpu, wall = cpu_seconds(), time.perf_counter()
        done = self.chunk(steps)
        cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
        self.per_core.append(done / cpu)
        self.per_second.append(done / wall)


def _actions(n: int, steps: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (steps, n, ACTION_DIM)).astype(np.float32)


def vector_way(name: str, tasks: list[str], **kwargs) -> Way:
    """A vector env of mtrl.envs.vector (shm, async, sync; fast or metaworld's classes)."""
    envs = make_vector_env(tasks, seed=0, **kwargs)
    envs.reset()
    n = len(tasks)

    def chunk(steps: int) -> int:
        for action in _actions(n, steps):
            if envs.step(action)[3].all():
                envs.reset()
        return steps * n

    return Way(name, chunk, envs.close)


def single_way(name: str, tasks: list[str], fast: bool) -> Way:
    """Each task's env stepped in turn in this process: no vector env, no IPC."""
    seeds = env_seeds(0, 0, tasks)
    envs = [_make_one(task, i, len(tasks), seeds[i], fast=fast) for i, task in enumerate(tasks)]
    for env in envs:
        env.reset()

    def chunk(steps: int) -> int:
        for action in _actions(len(envs), steps):
            for env, a in zip(envs, action, strict=True):
                if env.step(a)[3]:
                    env.reset()
        return steps * len(envs)

    return Way(name, chunk, lambda: [env.close() for env in envs])


def physics_way(tasks: list[str], states_per_task: int, forward: bool) -> Way:
    """MuJoCo alone on the states Meta-World's envs pass through: each recorded state (random actions,
    its controls and mocap target included) restored and stepped `frame_skip` times with `mj_step`;
    with `forward`, also the `mj_rnePostConstraint` and `mj_forward` every Meta-World step makes."""
    seeds = env_seeds(0, 0, tasks)
    recorded = []
    for i, task in enumerate(tasks):
        env = _make_one(task, i, len(tasks), seeds[i], fast=True)
        env.reset()
        raw = env.unwrapped
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        states = []
        for action in _actions(1, states_per_task, seed=i)[:, 0]:
            raw.set_xyz_action(action[:3])
            raw.data.ctrl[:] = [action[-1], -action[-1]]
            state = np.empty(mujoco.mj_stateSize(raw.model, spec))
            mujoco.mj_getState(raw.model, raw.data, state, spec)
            states.append(state)
            env.step(action)
        recorded.append((raw.model, raw.data, raw.frame_skip, states, env))
    name = "mj_step + rnePostConstraint + mj_forward" if forward else "mj_step alone (the physics limit)"

    def chunk(steps: int) -> int:
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        for t in range(steps):
            for model, data, frame_skip, states, _ in recorded:
                mujoco.mj_setState(model, data, states[t % len(states)], spec)
                mujoco.mj_step(model, data, nstep=frame_skip)
                if forward:
                    mujoco.mj_rnePostConstraint(model, data)
                    mujoco.mj_forward(model, data)
        return steps * len(recorded)

    return Way(name, chunk, lambda: [item[-1].close() for item in recorded])


def summary(way: Way) -> tuple[float, float]:
    """Median transitions per core-second and per wall second over the rounds."""
    return statistics.median(way.per_core), statistics.median(way.per_second)


def loop_way(name: str, tasks: list[str], width: int, threads: int) -> Way:
    """The training loop's two halves at `width` with `threads` torch threads: a vector step of the
    new default (shm, fast envs, the job's default workers) and one SAC update on a random buffer."""
    import torch
    from throughput import agent_with_random_buffer

    from mtrl.config.settings import TrainConfig

    config = TrainConfig.from_dict(
        {"task_set": {10: "mt10", 50: "mt50"}[len(tasks)], "actor_width": width, "critic_width": width}
    ).resolved()
    agent, buffer, gen = agent_with_random_buffer(config, torch.device("cpu"))
    env = vector_way(name, tasks, strategy="shm")

    def chunk(steps: int) -> int:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for _ in range(steps):
                env.chunk(1)
                agent.update(buffer.sample(config.batch_per_task, gen))
        finally:
            torch.set_num_threads(before)
        return steps * len(tasks)

    return Way(name, chunk, env.close)
