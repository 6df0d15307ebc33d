"""A vector env whose workers exchange steps through shared memory: one semaphore signal each way.

gymnasium's AsyncVectorEnv runs one process per env and, every step, pickles each env's
(reward, terminated, truncated, info) through a pipe and merges the info dicts in the main process.
Here each worker owns one or several envs (MT50 on 16 cores: several tasks per worker), writes
obs / reward / terminated / truncated / the info floats into shared arrays, and a step costs one
semaphore release to each worker and one back from each. The transitions are those of
gymnasium's vector envs for the same env makers (auto-reset disabled, as in mtrl.envs.vector).

A worker that raises or dies is reported as one `EnvWorkerError` line naming its task(s); the vector
env then closes itself, reaping every worker. Workers ignore SIGINT/SIGTERM/SIGUSR1 and exit on
their own if the main process disappears.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import signal
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

from mtrl.envs.cores import default_env_workers, job_cores
from mtrl.envs.shm_worker import (
    ACTION_DTYPES,
    CALL,
    CLOSE,
    METAWORLD_INFO_KEYS,
    RESET,
    STEP,
    Layout,
    WorkerSpec,
    acquire,
    run_worker,
)

POLL_S = 0.5  # while waiting for workers, check this often whether one died
CLOSE_GRACE_S = 5.0  # a worker not gone this long after CLOSE is killed
StepResult = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]


class EnvWorkerError(RuntimeError):
    """An env worker raised or died; the message is one line naming the task(s) and the error."""


_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()  # owners of worker processes not closed yet
_HOOKED: list[bool] = []


def close_at_interpreter_exit(owner: Any) -> None:
    """Close `owner` (after its processes started) at interpreter exit if it is still open.

    multiprocessing's own exit hook SIGTERMs daemon children and joins every child; workers that
    ignore SIGTERM (ours) would keep it waiting for ever. Registered after the first process start
    (which installs that hook), this one runs first (atexit is last in, first out).
    """
    if not _HOOKED:
        atexit.register(_close_open)
        _HOOKED.append(True)
    _OPEN.add(owner)


def _close_open() -> None:
    for owner in list(_OPEN):
        owner.close()


# multiprocessing's resource tracker removes the semaphores of a process that was killed (an
# evaluation process, say) when the trainer exits, and warns about them; the trainer has said which
# process died in its one line, so the tracker started here does it quietly.
TRACKER_WARNINGS = "ignore::UserWarning:multiprocessing.resource_tracker"


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker now (if it is not running) with its leak warning off,
    and SIGHUP blocked in it: it ignores SIGINT and SIGTERM itself, but a hang-up sent to the process
    group (a closed terminal) would kill it, and the trainer's shared memory would be reported leaked."""
    from multiprocessing import resource_tracker

    before = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [before, TRACKER_WARNINGS]))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})  # inherited by the tracker
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if before is None:
            del os.environ["PYTHONWARNINGS"]
        else:
            os.environ["PYTHONWARNINGS"] = before


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, capped by SLURM's allocation), not the node's."""
    return job_cores()


def default_workers(num_envs: int, cores: int | None = None) -> int:
    """One worker per env while cores last, leaving one core to the trainer; else several envs each."""
    return default_env_workers(num_envs, cores or usable_cores())


def assign(num_envs: int, workers: int) -> list[tuple[int, ...]]:
    """Contiguous, balanced env index groups, one per worker."""
    return [tuple(int(i) for i in part) for part in np.array_split(np.arange(num_envs), workers)]


class SharedMemoryVectorEnv(gym.vector.VectorEnv):
    """`num_envs` envs stepped in lockstep by `workers` processes (default: `default_workers`).

    `names` label the envs in error messages. `spin_us` is how long a waiting side polls the
    semaphore before it sleeps: 0 by default, since on a shared or oversubscribed node polling takes
    the cores the simulation needs (benchmarks/env_stepping.py measures both). Returned info holds
    the float keys `info_keys` (with gymnasium's `_key` masks); reset info is empty.
    """

    def __init__(
        self,
        makers: Sequence[Callable[[], gym.Env]],
        names: Sequence[str],
        obs_dim: int,
        action_dim: int,
        workers: int | None = None,
        spin_us: float = 0.0,
        info_keys: Sequence[str] = METAWORLD_INFO_KEYS,
    ) -> None:
        self.num_envs = n = len(makers)
        self.names = list(names)
        workers = min(workers or default_workers(n), n)
        self.spin_s = spin_us * 1e-6
        self.layout = Layout(n, workers, obs_dim, action_dim, tuple(info_keys))
        ctx = mp.get_context("spawn")
        raw = self.layout.allocate(ctx)
        self.shared = self.layout.views(raw)
        self.groups = assign(n, workers)
        self._done = ctx.Semaphore(0)
        self._go = [ctx.Semaphore(0) for _ in range(workers)]
        self._conns, self._procs = [], []
        self._waiting = False
        self.closed = False
        for w, group in enumerate(self.groups):
            spec = WorkerSpec(
                w, group, tuple(self.names[i] for i in group), tuple(makers[i] for i in group),
                self.layout, self.spin_s,
            )  # fmt: skip
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=run_worker, args=(spec, raw, self._go[w], self._done, child), daemon=True,
                name=f"mtrl-env-{w}",
            )  # fmt: skip
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        close_at_interpreter_exit(self)
        self._adopt_spaces()

    # ------------------------------------------------------------------ set-up and failure
    def _task_names(self, worker: int) -> str:
        return ", ".join(self.names[i] for i in self.groups[worker])

    def _fail(self, message: str) -> EnvWorkerError:
        """Close everything (quietly) and return the one-line error to raise."""
        self.close()
        return EnvWorkerError(message)

    def _receive(self, worker: int) -> Any:
        """The next reply of a worker; EnvWorkerError if it reported an error or died."""
        try:
            kind, payload = self._conns[worker].recv()
        except (EOFError, OSError):
            proc = self._procs[worker]
            proc.join(1.0)
            raise self._fail(
                f"env worker for {self._task_names(worker)} died (exit code {proc.exitcode})"
            ) from None
        if kind == "error":
            raise self._fail(f"env worker: {payload}")
        return payload

    def _adopt_spaces(self) -> None:
        spaces = [space for w in range(len(self._procs)) for space in self._receive(w)]
        obs_space, action_space = spaces[0]
        for i, (obs, action) in enumerate(spaces):
            if obs != obs_space or action != action_space:
                raise self._fail(f"env worker: {self.names[i]}: its spaces differ from {self.names[0]}'s")
        layout = self.layout
        if (obs_space.shape, obs_space.dtype) != ((layout.obs_dim,), np.dtype(layout.obs_dtype)):
            raise self._fail(
                f"env worker: observation space {obs_space.dtype} {obs_space.shape}, "
                f"wanted {layout.obs_dtype} ({layout.obs_dim},)"
            )
        if action_space.shape != (layout.action_dim,):
            raise self._fail(f"env worker: action space {action_space.shape}, wanted ({layout.action_dim},)")
        self.single_observation_space, self.single_action_space = obs_space, action_space
        self.observation_space = batch_space(obs_space, self.num_envs)
        self.action_space = batch_space(action_space, self.num_envs)
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode.DISABLED}

    def _check_open(self) -> None:
        if self.closed:
            raise EnvWorkerError("the env workers are closed")

    # ------------------------------------------------------------------ signalling
    def _signal(self, command: int) -> None:
        self.shared.command[:] = command
        for go in self._go:
            go.release()

    def _wait_done(self) -> None:
        """Wait until every worker has signalled; EnvWorkerError naming a dead or failed worker."""
        for _ in self._procs:
            while not acquire(self._done, self.spin_s, POLL_S):
                for w, proc in enumerate(self._procs):
                    if proc.exitcode is not None:
                        raise self._fail(
                            f"env worker for {self._task_names(w)} died (exit code {proc.exitcode})"
                        )
        if self.shared.failed.any():
            self._receive(int(np.flatnonzero(self.shared.failed)[0]))  # raises with its message

    # ------------------------------------------------------------------ the gymnasium API
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env, or those of `options["reset_mask"]`; the others keep their observation."""
        self._check_open()
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        self.shared.active[:] = True if mask is None else np.asarray(mask, dtype=bool)
        if seed is None or isinstance(seed, int):
            seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        self.shared.command[:] = RESET
        for w, group in enumerate(self.groups):
            self._conns[w].send(([seeds[i] for i in group], options or None))
            self._go[w].release()
        self._wait_done()
        return self.shared.obs.copy(), {}

    def step_async(self, actions: np.ndarray) -> None:
        self.step_async_masked(actions, None)

    def step_async_masked(self, actions: np.ndarray, active: np.ndarray | None) -> None:
        """Start a step of the envs in `active` (all if None); the others are not stepped."""
        self._check_open()
        actions = np.asarray(actions)
        code = ACTION_DTYPES.index(actions.dtype) if actions.dtype in ACTION_DTYPES else 1
        self.shared.action_dtype[0] = code
        self.shared.action[:] = actions
        self.shared.active[:] = True if active is None else active
        self._signal(STEP)
        self._waiting = True

    def step_wait(self) -> StepResult:
        self._check_open()
        self._waiting = False
        self._wait_done()
        shared = self.shared
        info: dict[str, Any] = {}
        all_envs = np.ones(self.num_envs, dtype=bool)
        for k, key in enumerate(self.layout.info_keys):
            info[key], info[f"_{key}"] = shared.info[:, k].copy(), all_envs.copy()
        outputs = (shared.obs, shared.reward, shared.terminated, shared.truncated)
        return (*(array.copy() for array in outputs), info)

    def step(self, actions: np.ndarray) -> StepResult:
        self.step_async(actions)
        return self.step_wait()

    def step_masked(self, actions: np.ndarray, active: np.ndarray) -> StepResult:
        """Step only the envs in `active`; the others' entries hold their last values."""
        self.step_async_masked(actions, active)
        return self.step_wait()

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """`name(*args, **kwargs)` in every env (or the attribute's value), in env order."""
        self._check_open()
        self.shared.command[:] = CALL
        for w in range(len(self._procs)):
            self._conns[w].send((name, args, kwargs))
            self._go[w].release()
        return tuple(result for w in range(len(self._procs)) for result in self._receive(w))

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return self.call(name)

    def close_extras(self, **kwargs: Any) -> None:
        """Let every worker finish and exit; kill any that does not within the grace period."""
        if self._waiting:  # a step in flight: let it finish (or fail) first
            self._waiting = False
            for _ in self._procs:
                if not self._done.acquire(True, CLOSE_GRACE_S):
                    break
        self.closed = True
        for w, proc in enumerate(self._procs):
            if proc.is_alive():
                self.shared.command[w] = CLOSE
                self._go[w].release()
        deadline = time.monotonic() + CLOSE_GRACE_S
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():  # SIGTERM is ignored by workers: SIGKILL
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()

    def close(self, **kwargs: Any) -> None:
        if getattr(self, "closed", True):
            return
        self.close_extras(**kwargs)

    def __del__(self) -> None:
        if not getattr(self, "closed", True):
            self.close()
