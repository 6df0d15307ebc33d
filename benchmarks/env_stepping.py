"""Env stepping: where a vector step's time goes, and the rate of each vector env, to a CSV.

breakdown  gymnasium's AsyncVectorEnv over the task set, timed inside the main process: sending
           the actions (pickled, one pipe each), waiting, receiving and unpickling each reply,
           merging the info dicts (`_add_info`), copying the observations; beside it the MuJoCo
           simulation itself (each task's env stepped alone in this process)
null       the pure per-step cost of the machinery: each vector env over envs that do no simulation
           (Meta-World's spaces and info dict), so the time is all signalling, copying and merging
rate       transitions/s of Meta-World stepping with random actions: one env alone, sync, gymnasium
           async, shm (default workers, and the other worker counts asked for), with and without spin
per-core   transitions per core-second (CPU time of this process and its env workers), MT10 and MT50,
           interleaved rounds (benchmarks/per_core.py): mj_step alone on the envs' states (the physics
           limit), metaworld's envs one by one in this process, gymnasium async, shm with metaworld's
           classes (the default before issue 27), shm with the fast classes (the new default)
loop       MT10 width 400: a vector step of the new default + a SAC update, torch threads as the run
           resolves them (mtrl.envs.cores) vs torch's default, while a busy process loads one core

python benchmarks/env_stepping.py                       # a CPU box: MT10, short
python benchmarks/env_stepping.py --task-set mt50 --shm-workers 15 8   # a GPU node's 16 cores
python benchmarks/env_stepping.py --parts per-core loop                 # issue 27's comparison
"""

from __future__ import annotations

import argparse
import copy
import os
import pickle
import time
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np

from mtrl.envs.benchmarks import ACTION_DIM, OBS_DIM, task_names
from mtrl.envs.cores import cpu_model
from mtrl.envs.shm import SharedMemoryVectorEnv, default_workers, usable_cores
from mtrl.envs.shm_worker import METAWORLD_INFO_KEYS
from mtrl.envs.vector import _make_one, env_seeds, make_vector_env

RESULTS = Path(__file__).parent / "results" / "env_stepping.csv"
FIELDS = ["part", "what", "strategy", "task_set", "workers", "spin_us", "value", "unit", "machine", "load"]
FIELDS += ["date"]


class NullEnv(gym.Env):
    """Meta-World's spaces and info dict, no simulation: a vector env over these measures only itself."""

    def __init__(self, num_tasks: int) -> None:
        dim = OBS_DIM + num_tasks
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (ACTION_DIM,), np.float32)
        self.obs = np.linspace(0, 1, dim)  # float64, as Meta-World returns it
        self.info = dict.fromkeys(METAWORLD_INFO_KEYS, 0.5)

    def reset(self, *, seed=None, options=None):
        return self.obs, {}

    def step(self, action):
        return self.obs, 1.0, False, False, dict(self.info)


def _null(num_tasks: int) -> NullEnv:
    return NullEnv(num_tasks)


def machine() -> str:
    return f"{cpu_model()}, {usable_cores()} usable cores of {os.cpu_count()}"


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def step_seconds(envs: gym.vector.VectorEnv, vector_steps: int, warmup: int = 20) -> float:
    """Seconds per vector step with fixed-seed random actions (episodes reset at truncation)."""
    n = envs.num_envs
    actions = np.random.default_rng(0).uniform(-1, 1, (vector_steps + warmup, n, ACTION_DIM))
    actions = actions.astype(np.float32)
    envs.reset()
    for t in range(vector_steps + warmup):
        if t == warmup:
            start = time.perf_counter()
        if envs.step(actions[t])[3].all():
            envs.reset()
    return (time.perf_counter() - start) / vector_steps


def single_env_seconds(tasks: list[str], vector_steps: int, warmup: int = 20) -> list[float]:
    """Seconds per step of each task's env stepped alone in this process (the simulation itself), with
    the actions and the reset schedule of `step_seconds` (a reset costs ~50 simulation steps)."""
    seeds = env_seeds(0, 0, tasks)
    actions = np.random.default_rng(0).uniform(-1, 1, (vector_steps + warmup, len(tasks), ACTION_DIM))
    actions = actions.astype(np.float32)
    out = []
    for i, name in enumerate(tasks):
        env = _make_one(name, i, len(tasks), seeds[i])
        env.reset()
        for t in range(vector_steps + warmup):
            if t == warmup:
                start = time.perf_counter()
            if env.step(actions[t, i])[3]:
                env.reset()
        out.append((time.perf_counter() - start) / vector_steps)
        env.close()
    return out


class Timed:
    """Wraps a callable, adding its wall time to a named bucket."""

    def __init__(self, fn, bucket: dict[str, float], name: str) -> None:
        self.fn, self.bucket, self.name = fn, bucket, name

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.bucket[self.name] = self.bucket.get(self.name, 0.0) + time.perf_counter() - start


class TimedPipe:
    """A worker pipe whose send and recv are timed (recv: waiting for the worker + unpickling)."""

    def __init__(self, pipe, bucket: dict[str, float]) -> None:
        self.pipe = pipe
        self.send = Timed(pipe.send, bucket, "send actions (pickle + pipe write)")
        self.recv = Timed(pipe.recv, bucket, "receive replies (wait + pipe read + unpickle)")

    def __getattr__(self, name):
        return getattr(self.pipe, name)


def async_breakdown(tasks: list[str], vector_steps: int) -> dict[str, float]:
    """Seconds per vector step in each part of gymnasium's AsyncVectorEnv.step, in the main process."""
    envs = make_vector_env(tasks, seed=0, strategy="async")
    envs.reset()
    bucket: dict[str, float] = {}
    envs.parent_pipes = [TimedPipe(pipe, bucket) for pipe in envs.parent_pipes]
    envs._add_info = Timed(envs._add_info, bucket, "merge info dicts (_add_info)")
    total = step_seconds(envs, vector_steps, warmup=0)
    reply = envs.parent_pipes[0]  # one reply's pickle, to split unpickling out of the receive time
    envs.step_async(np.zeros((len(tasks), ACTION_DIM), np.float32))
    payload = pickle.dumps(reply.pipe.recv())
    for pipe in envs.parent_pipes[1:]:
        pipe.pipe.recv()
    envs._state = gym.vector.async_vector_env.AsyncState.DEFAULT
    envs.close()
    parts = {name: seconds / vector_steps for name, seconds in bucket.items()}
    start = time.perf_counter()
    for _ in range(1000):
        pickle.loads(payload)
    parts["of which unpickling the replies"] = (time.perf_counter() - start) / 1000 * len(tasks)
    obs = np.zeros((len(tasks), OBS_DIM + len(tasks)), np.float32)
    start = time.perf_counter()
    for _ in range(1000):
        copy.deepcopy(obs)
    parts["copy observations (deepcopy)"] = (time.perf_counter() - start) / 1000
    parts["whole vector step"] = total
    return parts


def null_env(strategy: str, n: int, workers: int | None, spin_us: float) -> gym.vector.VectorEnv:
    makers = [partial(_null, n)] * n
    disabled = gym.vector.AutoresetMode.DISABLED
    if strategy == "shm":
        names = [f"null-{i}" for i in range(n)]
        return SharedMemoryVectorEnv(makers, names, OBS_DIM + n, ACTION_DIM, workers, spin_us)
    if strategy == "async":
        return gym.vector.AsyncVectorEnv(makers, context="spawn", autoreset_mode=disabled)
    return gym.vector.SyncVectorEnv(makers, autoreset_mode=disabled)


def meta_world(strategy: str, tasks: list[str], workers: int | None, spin_us: float):
    if strategy != "shm" or not spin_us:
        return make_vector_env(tasks, seed=0, strategy=strategy, workers=workers)
    seeds = env_seeds(0, 0, tasks)  # the factory does not spin; here it is set by hand
    makers = [partial(_make_one, name, i, len(tasks), seeds[i]) for i, name in enumerate(tasks)]
    return SharedMemoryVectorEnv(makers, tasks, OBS_DIM + len(tasks), ACTION_DIM, workers, spin_us)


def configurations(args: argparse.Namespace, n: int) -> list[tuple[str, int, float]]:
    """(strategy, workers, spin_us) to measure: sync, gymnasium async, shm at each worker count and spin."""
    out: list[tuple[str, int, float]] = [("sync", 1, 0.0), ("async", n, 0.0)]
    for workers in [default_workers(n), *args.shm_workers]:
        for spin in args.spin_us:
            if ("shm", workers, spin) not in out:
                out.append(("shm", workers, spin))
    return out


def per_core_parts(args: argparse.Namespace, record) -> None:
    """The per-core comparison (each task set, interleaved) and the loop under load (see the docstring)."""
    import per_core

    for task_set in args.per_core_task_sets if "per-core" in args.parts else []:
        tasks = list(task_names(task_set))
        ways = [
            per_core.physics_way(tasks, 200, forward=False),
            per_core.physics_way(tasks, 200, forward=True),
            per_core.single_way("metaworld envs one by one, in process", tasks, fast=False),
            per_core.single_way("fast envs one by one, in process", tasks, fast=True),
            per_core.vector_way("gymnasium async, metaworld envs", tasks, strategy="async", fast=False),
            per_core.vector_way(
                "shm default workers, metaworld envs (old default)", tasks, strategy="shm", fast=False
            ),  # fmt: skip
            per_core.vector_way("shm default workers, fast envs (new default)", tasks, strategy="shm"),
        ]
        interleave(ways, args.rounds, args.round_steps)
        for way in ways:
            core, wall = per_core.summary(way)
            record("per-core", way.name, core, "transitions per core-second", task_set=task_set)
            record("per-core", way.name, wall, "transitions/s (wall)", task_set=task_set)
        old, new = per_core.summary(ways[5])[0], per_core.summary(ways[6])[0]
        limit = per_core.summary(ways[0])[0]
        record(
            "per-core", "new default / old default (per core-second)", new / old, "ratio", task_set=task_set
        )
        record(
            "per-core",
            "new default / mj_step limit (per core-second)",
            new / limit,
            "ratio",
            task_set=task_set,
        )
    if "loop" in args.parts:
        loop_under_load(args, record)


def interleave(ways: list, rounds: int, steps: int) -> None:
    """Measure every way once per round, the order rotating, then close them all."""
    for way in ways:
        way.measure(max(1, steps // 10))  # warm-up, not kept
        way.per_core.clear()
        way.per_second.clear()
    for r in range(rounds):
        for way in ways[r % len(ways) :] + ways[: r % len(ways)]:
            way.measure(steps)
        print(f"round {r + 1}/{rounds} done", flush=True)
    for way in ways:
        way.close()


def loop_under_load(args: argparse.Namespace, record) -> None:
    """MT10 width 400, env step + update, the run's resolved torch threads vs torch's default, with one
    busy-looping process beside it (started and stopped here)."""
    import subprocess
    import sys

    import per_core
    import torch

    from mtrl.envs.cores import split_cores

    tasks = list(task_names("mt10"))
    resolved = split_cores(len(tasks), "shm").torch_threads
    default = torch.get_num_threads()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        ways = [
            per_core.loop_way(f"loop w400, {resolved} torch thread(s) (resolved)", tasks, 400, resolved),
            per_core.loop_way(f"loop w400, {default} torch thread(s) (torch's default)", tasks, 400, default),
        ]
        interleave(ways, args.rounds, args.loop_steps)
    finally:
        busy.kill()
        busy.wait()
    for way in ways:
        core, wall = per_core.summary(way)
        record("loop", way.name + ", one core loaded", wall, "transitions/s (wall)", task_set="mt10")
        record("loop", way.name + ", one core loaded", core, "transitions per core-second", task_set="mt10")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-set", default="mt10")
    parser.add_argument("--steps", type=int, default=500, help="timed vector steps per Meta-World rate")
    parser.add_argument("--null-steps", type=int, default=3000, help="timed vector steps per null-env rate")
    parser.add_argument("--shm-workers", type=int, nargs="*", default=[1], help="besides the default")
    parser.add_argument("--spin-us", type=float, nargs="+", default=[0.0, 200.0])
    parser.add_argument("--parts", nargs="+", default=["breakdown", "null", "rate"])
    parser.add_argument("--rounds", type=int, default=5, help="per-core and loop: interleaved rounds")
    parser.add_argument("--round-steps", type=int, default=100, help="per-core: vector steps per round")
    parser.add_argument("--per-core-task-sets", nargs="+", default=["mt10", "mt50"])
    parser.add_argument("--loop-steps", type=int, default=6, help="loop: steps (env + update) per round")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    tasks = list(task_names(args.task_set))
    n = len(tasks)
    rows: list[dict] = []

    def record(
        part: str, what: str, value: float, unit: str, strategy="", workers="", spin="", task_set=None
    ):
        task_set = task_set or args.task_set
        rows.append(dict(part=part, what=what, strategy=strategy, task_set=task_set, workers=workers,
                         spin_us=spin, value=round(value, 2), unit=unit, machine=machine(), load=load(),
                         date=time.strftime("%Y-%m-%d")))  # fmt: skip
        print(
            f"{part:9s} {task_set:5s} {strategy:5s} {workers!s:>3s} {spin!s:>5s}  {what:48s} "
            f"{value:10.2f} {unit}",
            flush=True,
        )

    if "per-core" in args.parts or "loop" in args.parts:
        per_core_parts(args, record)
    if not {"breakdown", "null", "rate"} & set(args.parts):
        from throughput import append_rows

        append_rows(args.out, FIELDS, rows)
        return
    single = single_env_seconds(tasks, args.steps)
    for name, seconds in zip(tasks, single, strict=True):
        record("single", name, seconds * 1e6, "us per env step")
    record("single", "sum over tasks (one process, no IPC)", sum(single) * 1e6, "us per vector step")
    record(
        "single", "slowest task (lower bound, one task per worker)", max(single) * 1e6, "us per vector step"
    )
    if "breakdown" in args.parts:
        for what, seconds in async_breakdown(tasks, args.steps).items():
            record("breakdown", what, seconds * 1e6, "us per vector step", "async", n)
    configs = configurations(args, n)
    if "null" in args.parts:
        for strategy, workers, spin in configs:
            envs = null_env(strategy, n, workers, spin)
            seconds = step_seconds(envs, args.null_steps, warmup=100)
            envs.close()
            record("null", "machinery alone (no simulation)", seconds * 1e6, "us per vector step",
                   strategy, workers, spin)  # fmt: skip
    if "rate" in args.parts:
        for strategy, workers, spin in configs:
            envs = meta_world(strategy, tasks, workers, spin)
            seconds = step_seconds(envs, args.steps)
            envs.close()
            record(
                "rate", "Meta-World, random actions", n / seconds, "transitions/s", strategy, workers, spin
            )
            if workers == 1:  # everything in one process or one worker: the rest is overhead
                overhead = (seconds - sum(single)) * 1e6
                record("overhead", "vector step - sum of envs alone", overhead, "us per vector step",
                       strategy, workers, spin)  # fmt: skip

    from throughput import append_rows  # here, not above: spawned env workers re-import this module

    append_rows(args.out, FIELDS, rows)


if __name__ == "__main__":
    main()
