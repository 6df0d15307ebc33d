"""The env worker of `SharedMemoryVectorEnv`: owns one or several task envs, steps them on a signal.

Steps and resets exchange no pickled data: actions come from, and observations, rewards,
terminations, truncations and the info floats go into, shared arrays (`SharedArrays`); one
semaphore release each way is the whole message. Calls (`get_checkpoint`, ...) and errors travel
as pickles over the worker's pipe. Importing this module imports neither torch nor Meta-World.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

# Meta-World's step info (every v3 task): all floats, copied per step into the shared info array.
METAWORLD_INFO_KEYS = (
    "success",
    "near_object",
    "grasp_success",
    "grasp_reward",
    "in_place_reward",
    "obj_to_target",
    "unscaled_reward",
)
STEP, RESET, CALL, CLOSE = 1, 2, 3, 4
ACTION_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # passed through exactly; code = index
PARENT_CHECK_S = 1.0  # an idle worker checks this often whether its parent is still alive
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP)


@dataclass(frozen=True)
class Layout:
    """Shapes of the shared arrays for `num_envs` envs served by `num_workers` workers."""

    num_envs: int
    num_workers: int
    obs_dim: int
    action_dim: int
    info_keys: tuple[str, ...]
    obs_dtype: str = "float32"  # the observation space's dtype (Meta-World's one-hot space: float32)

    def fields(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        n, w = self.num_envs, self.num_workers
        f64, flag = np.dtype(np.float64), np.dtype(np.bool_)
        return {
            "action": (f64, (n, self.action_dim)),
            "action_dtype": (np.dtype(np.int64), (1,)),
            "active": (flag, (n,)),  # envs this step or reset touches
            "obs": (np.dtype(self.obs_dtype), (n, self.obs_dim)),
            "reward": (f64, (n,)),
            "terminated": (flag, (n,)),
            "truncated": (flag, (n,)),
            "info": (f64, (n, len(self.info_keys))),
            "command": (np.dtype(np.int64), (w,)),
            "failed": (flag, (w,)),
        }

    def allocate(self, ctx: Any) -> dict[str, Any]:
        """One lock-free shared block per field (inherited by spawned workers)."""
        return {
            name: ctx.RawArray("b", max(1, dtype.itemsize * int(np.prod(shape))))
            for name, (dtype, shape) in self.fields().items()
        }

    def views(self, raw: dict[str, Any]) -> SharedArrays:
        arrays = {
            name: np.frombuffer(raw[name], dtype=dtype, count=int(np.prod(shape))).reshape(shape)
            for name, (dtype, shape) in self.fields().items()
        }
        return SharedArrays(**arrays)


@dataclass
class SharedArrays:
    """Numpy views of the shared block (one row per env, or per worker for command/failed)."""

    action: np.ndarray
    action_dtype: np.ndarray
    active: np.ndarray
    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    info: np.ndarray
    command: np.ndarray
    failed: np.ndarray


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker runs: its index, the global env indices it owns, their names and makers."""

    index: int
    env_indices: tuple[int, ...]
    names: tuple[str, ...]
    makers: tuple[Callable[[], Any], ...]
    layout: Layout
    spin_s: float


class EnvFailure(Exception):
    """An env raised: carries the task name for the one-line report."""

    def __init__(self, name: str, exc: BaseException) -> None:
        super().__init__(f"{name}: {type(exc).__name__}: {exc}".splitlines()[0])


def acquire(semaphore: Any, spin_s: float, timeout_s: float | None) -> bool:
    """Take the semaphore: poll it without blocking for `spin_s` (saves a sleep/wake-up), then block
    for up to `timeout_s` (None: for ever). True if taken."""
    if spin_s > 0:
        end = time.perf_counter() + spin_s
        while time.perf_counter() < end:
            if semaphore.acquire(False):
                return True
    return semaphore.acquire(True, timeout_s)


def run_worker(spec: WorkerSpec, raw: dict[str, Any], go: Any, done: Any, conn: Connection) -> None:
    """Worker main: build the envs, report their spaces, then serve commands until CLOSE or until
    the parent is gone. The stop signals are ignored (the trainer decides when workers end)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    parent = os.getppid()
    shared = spec.layout.views(raw)
    try:
        envs = _build(spec)
    except EnvFailure as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("ready", [(env.observation_space, env.action_space) for env in envs]))
    owned = list(zip(spec.env_indices, spec.names, envs, strict=True))
    while True:
        if not acquire(go, spec.spin_s, PARENT_CHECK_S):
            if os.getppid() != parent:  # orphaned: the trainer died without closing us
                break
            continue
        command = int(shared.command[spec.index])
        if command == CLOSE:
            break
        _serve(command, owned, shared, spec, conn)
        if command != CALL:
            done.release()
    for env in envs:
        env.close()


def _build(spec: WorkerSpec) -> list[Any]:
    envs = []
    for name, make in zip(spec.names, spec.makers, strict=True):
        try:
            envs.append(make())
        except Exception as exc:
            raise EnvFailure(name, exc) from None
    return envs


def _serve(
    command: int, owned: list[tuple[int, str, Any]], shared: SharedArrays, spec: WorkerSpec, conn: Connection
) -> None:
    """Run one command on the owned envs; an env's exception becomes a one-line message on the pipe."""
    try:
        if command == STEP:
            _step(owned, shared, spec.layout.info_keys)
        elif command == RESET:
            seeds, options = conn.recv()
            _reset(owned, shared, seeds, options)
        elif command == CALL:
            name, args, kwargs = conn.recv()
            conn.send(("ok", [_call(env, task, name, args, kwargs) for _, task, env in owned]))
            return
        shared.failed[spec.index] = False
    except EnvFailure as exc:
        shared.failed[spec.index] = True
        conn.send(("error", str(exc)))


def _step(owned: list[tuple[int, str, Any]], shared: SharedArrays, info_keys: Sequence[str]) -> None:
    dtype = ACTION_DTYPES[int(shared.action_dtype[0])]
    for i, name, env in owned:
        if not shared.active[i]:
            continue
        try:
            obs, reward, terminated, truncated, info = env.step(shared.action[i].astype(dtype))
            shared.info[i] = [info[key] for key in info_keys]
        except Exception as exc:
            raise EnvFailure(name, exc) from None
        shared.obs[i] = obs
        shared.reward[i] = reward
        shared.terminated[i] = terminated
        shared.truncated[i] = truncated


def _reset(
    owned: list[tuple[int, str, Any]], shared: SharedArrays, seeds: Sequence[Any], options: Any
) -> None:
    for (i, name, env), seed in zip(owned, seeds, strict=True):
        if not shared.active[i]:
            continue
        try:
            obs, _ = env.reset(seed=seed, options=options)
        except Exception as exc:
            raise EnvFailure(name, exc) from None
        shared.obs[i] = obs


def _call(env: Any, task: str, name: str, args: tuple, kwargs: dict) -> Any:
    try:
        attr = env.get_wrapper_attr(name)
        return attr(*args, **kwargs) if callable(attr) else attr
    except Exception as exc:
        raise EnvFailure(task, exc) from None
