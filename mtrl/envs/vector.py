"""Vector envs over a benchmark's tasks: one env per task, one-hot task id appended to the observation.

Auto-reset is disabled: every env's episode is exactly 500 steps, so all envs truncate on the same
vector step and the training loop resets them together. That keeps the final transition of each
episode intact and lets a checkpoint taken between episodes restore the envs' RNG state exactly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import warnings
import zlib
from collections.abc import Callable, Sequence
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from mtrl.config.settings import ConfigError
from mtrl.envs.benchmarks import ACTION_DIM, EPISODE_LENGTH, OBS_DIM, REWARD_VERSIONS
from mtrl.envs.evaluation import Evaluation

warnings.filterwarnings("ignore", message=".*precision lowered by casting.*")
_METAWORLD_VERSION = version("metaworld")


def env_seeds(seed: int, stream: int, tasks: Sequence[str]) -> list[int]:
    """Per-task env seeds for a run seed, independent of the benchmark a task appears in (so reach-v3
    of MT10, MT25 and MT50 runs with one seed meets the same goal variations, cached once)."""
    return [
        int(np.random.SeedSequence([seed, stream, zlib.crc32(name.encode())]).generate_state(1)[0])
        for name in tasks
    ]


def task_cache_dir() -> Path:
    """Where sampled goal variations are cached ($MTRL_CACHE_DIR, default ~/.cache/mtrl/metaworld)."""
    root = os.environ.get("MTRL_CACHE_DIR") or Path.home() / ".cache" / "mtrl"
    return Path(root) / f"metaworld-{_METAWORLD_VERSION}"


def check_task_cache() -> None:
    """ConfigError now, in one line naming $MTRL_CACHE_DIR and the folder, if the task cache cannot
    take files (the variable names a file, a read-only or immutable folder), not a traceback from an
    env worker."""
    folder = task_cache_dir()
    probe = folder / f".mtrl-write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        given = os.environ.get("MTRL_CACHE_DIR")
        where = f"MTRL_CACHE_DIR={given}" if given else "the task cache (set MTRL_CACHE_DIR to move it)"
        problem = "a file is in the way" if isinstance(exc, FileExistsError | NotADirectoryError) else None
        raise ConfigError(
            f"{where}: cannot write the task cache folder {folder} "
            f"({problem or exc.strerror or exc}); point MTRL_CACHE_DIR at a writable folder"
        ) from None


def goal_variations(name: str, seed: int) -> list[Any]:
    """Meta-World's 50 goal/object variations of a task for a seed (`metaworld.MT1(name, seed)`).

    Sampling them costs 50 env resets and an extra MuJoCo compile, ~80% of building an env, and the
    result depends only on (task, seed), so it is cached on disk (written atomically).
    """
    import metaworld

    path = task_cache_dir() / f"{name}-seed{seed}.pkl"
    try:
        return pickle.loads(path.read_bytes())
    except FileNotFoundError:
        pass
    except Exception as exc:  # noqa: BLE001 - a damaged or unreadable cache entry is sampled again
        logging.getLogger("mtrl.envs").warning(
            "%s: unreadable task cache entry (%s): sampling it again", path, type(exc).__name__
        )
    tasks = list(metaworld.MT1(name, seed=seed).train_tasks)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:  # a cache: a disk that fills up later costs the next run its speed-up, not this run
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(pickle.dumps(tasks))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return tasks


def _make_one(
    name: str, index: int, num_tasks: int, seed: int, reward_version: str = "v2", fast: bool = True
) -> gym.Env:
    """What `metaworld.make_mt_envs(name, ...)` builds, with the goal variations taken from the cache,
    the env class of the study's Meta-World fork where it differs (mtrl.envs.fork) and, if `fast`, its
    bit-for-bit equivalent with the per-step Python made fast (mtrl.envs.fast_metaworld)."""
    import metaworld  # deferred: importing Meta-World registers envs and loads MuJoCo

    from mtrl.envs.fork import env_class

    warnings.filterwarnings("ignore", message=".*precision lowered by casting.*")
    cls = env_class(name)
    env = metaworld._init_each_env(
        env_cls=_fast_class(cls) if fast else cls,
        tasks=goal_variations(name, seed),
        seed=seed,
        num_tasks=num_tasks,
        env_id=index,
        use_one_hot=True,
        max_episode_steps=EPISODE_LENGTH,
        terminate_on_success=False,
        reward_function_version=reward_version,
    )
    env.env_id = f"{cls}_{index}"  # the checkpoint id Meta-World gives it (the class name in it)
    return env


def _fast_class(cls: type) -> type:
    from mtrl.envs.fast_metaworld import fast_class

    return fast_class(cls)


def make_vector_env(
    tasks: Sequence[str],
    seed: int,
    stream: int = 0,
    strategy: str = "sync",
    reward_version: str = "v2",
    workers: int | None = None,
    fast: bool = True,
) -> gym.vector.VectorEnv:
    """One Meta-World env per task (50 goal variations each, sampled on reset), no auto-reset.

    `strategy`: "sync" (one process), "async" (gymnasium, one process per task) or "shm" (workers
    exchanging steps through shared memory, `workers` of them: default one per task while the
    cores last, else several tasks each; see mtrl.envs.shm). All three give the same transitions.
    `reward_version` picks Meta-World's reward functions ("v1" or "v2"); Meta-World itself treats any
    value other than "v2" as v1, so a typo is refused here rather than silently training on v1.
    `fast`: Meta-World's per-step Python replaced by its bit-for-bit equivalent (mtrl.envs.fast_metaworld,
    ~2x the transitions per core-second); False steps metaworld's own classes (the reference).
    """
    if reward_version not in REWARD_VERSIONS:
        raise ValueError(f"reward_version: {reward_version!r} is not one of {list(REWARD_VERSIONS)}")
    check_task_cache()
    seeds = env_seeds(seed, stream, tasks)
    makers = [
        partial(_make_one, name, i, len(tasks), seeds[i], reward_version, fast)
        for i, name in enumerate(tasks)
    ]
    if strategy == "shm":
        from mtrl.envs.shm import SharedMemoryVectorEnv

        return SharedMemoryVectorEnv(makers, tasks, OBS_DIM + len(tasks), ACTION_DIM, workers=workers)
    vector_cls = gym.vector.AsyncVectorEnv if strategy == "async" else gym.vector.SyncVectorEnv
    kwargs: dict[str, Any] = {"autoreset_mode": gym.vector.AutoresetMode.DISABLED}
    if strategy == "async":
        kwargs["context"] = "spawn"
    envs = vector_cls(makers, **kwargs)
    expected = (len(tasks), OBS_DIM + len(tasks))
    if envs.observation_space.shape != expected or envs.action_space.shape != (len(tasks), ACTION_DIM):
        raise RuntimeError(f"unexpected Meta-World spaces {envs.observation_space.shape}, wanted {expected}")
    return envs


def env_state(envs: gym.vector.VectorEnv) -> list[Any]:
    """The envs' RNG state (task sampler and MuJoCo init noise): restoring it replays the same episodes."""
    return list(envs.call("get_checkpoint"))


def load_env_state(envs: gym.vector.VectorEnv, state: list[Any]) -> None:
    envs.call("load_checkpoint", [tuple(item) for item in state])


def evaluate(
    envs: gym.vector.VectorEnv, policy: Callable[[np.ndarray], np.ndarray], episodes: int
) -> Evaluation:
    """Run `episodes` full episodes in every task's env with `policy` (obs batch -> action batch), all
    envs in lockstep: the reference `mtrl.envs.evaluation.evaluate_until_success` is measured against."""
    num_envs = envs.num_envs
    successes = np.zeros(num_envs)
    returns = np.zeros(num_envs)
    for _ in range(episodes):
        obs, _ = envs.reset()
        solved = np.zeros(num_envs, dtype=bool)
        episode_return = np.zeros(num_envs)
        for _ in range(EPISODE_LENGTH):
            obs, reward, _, truncated, info = envs.step(policy(obs))
            solved |= np.asarray(info["success"], dtype=bool)
            episode_return += reward
        if not truncated.all():
            raise RuntimeError("Meta-World episodes did not truncate after 500 steps")
        successes += solved
        returns += episode_return
    return Evaluation(successes / episodes, returns / episodes, num_envs * episodes * EPISODE_LENGTH)
