"""Evaluation off the critical path: actor snapshots evaluated in env workers of their own.

The trainer submits (step, CPU state_dict of the actor); an `Evaluator` evaluates it with env RNG
derived from (run seed, step), so the result recorded for step t depends only on the policy at step
t. `background=False` evaluates at once, in this process, on envs of its own or on the training
envs it borrows between episodes (their state put back afterwards); `background=True` in a separate
process with envs of its own while training goes on, results collected in submission order. All
give identical results (the policy runs in float32 on its device, with `threads` CPU threads).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import signal
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from mtrl.config.settings import TrainConfig, require_resolved
from mtrl.config.speed import resolve_eval_mode
from mtrl.envs.evaluation import Evaluation, Policy, evaluate_until_success, evaluation_env_state
from mtrl.envs.shm import close_at_interpreter_exit, usable_cores
from mtrl.envs.vector import env_state, load_env_state, make_vector_env

ActorState = dict[str, torch.Tensor]
JOIN_S = 10.0  # the background process is killed if it has not exited this long after being asked


class EvaluatorError(RuntimeError):
    """The background evaluation failed or died; one line naming what went wrong."""


@dataclass(frozen=True)
class ActorPolicy:
    """Policy factory from the resolved config: the actor of `build_network`, loaded with a snapshot,
    acting deterministically as the SAC agent does (tanh of the mean, task from the one-hot), in
    float32 on `device` (a wide actor may want the GPU: one forward per vector step)."""

    config: TrainConfig
    obs_dim: int
    action_dim: int
    device: str = "cpu"

    def __call__(self, actor_state: ActorState) -> Policy:
        from mtrl.nets import build_network

        with torch.random.fork_rng(devices=[]):  # building draws an init: training's RNG stays as it was
            actor = build_network(self.config, "actor", self.obs_dim, 2 * self.action_dim, ensemble=1)
        actor.load_state_dict(actor_state)
        actor.to(self.device).eval()
        num_tasks = require_resolved(self.config).num_tasks

        @torch.inference_mode()
        def policy(obs: np.ndarray) -> np.ndarray:
            x = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
            with full_float32():
                mean = actor(x, x[:, -num_tasks:].argmax(dim=1))[0][:, : self.action_dim]
            return torch.tanh(mean.float()).cpu().numpy()

        return policy


@contextmanager
def full_float32() -> Iterator[None]:
    """float32 matmuls without TF32 for a block: the trainer's process may allow TF32, the background
    process does not; the evaluation must compute the same numbers in both."""
    flags = torch.backends.cuda.matmul, torch.backends.cudnn
    before = [flag.allow_tf32 for flag in flags]
    for flag in flags:
        flag.allow_tf32 = False
    try:
        yield
    finally:
        for flag, allowed in zip(flags, before, strict=True):
            flag.allow_tf32 = allowed


@dataclass(frozen=True)
class EvalSetup:
    """What every evaluation of a run shares: its tasks and seed, the episodes per task, the eval envs'
    vectorisation and a policy factory (snapshot -> obs batch -> actions; picklable for background)."""

    tasks: tuple[str, ...]
    seed: int
    episodes: int
    policy_factory: Callable[[ActorState], Policy]
    reward_version: str = "v2"
    strategy: str = "shm"
    workers: int | None = None
    threads: int = 1


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's CPU thread count set for a block (an evaluation), then restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class EvalEnvs:
    """The eval envs of a setup (the run's goal variations, stream 0) and their state when built.

    `borrowed`: the run's training envs, just built (seed and stream 0, as eval envs are), used
    between training episodes: their state is put back after each evaluation and they are not closed.
    """

    def __init__(self, setup: EvalSetup, borrowed: gym.vector.VectorEnv | None = None) -> None:
        self.setup, self.borrowed = setup, borrowed is not None
        self.envs = borrowed or make_vector_env(
            setup.tasks, setup.seed, 0, setup.strategy, setup.reward_version, workers=setup.workers
        )
        self.base = env_state(self.envs)

    def evaluate(self, step: int, actor_state: ActorState) -> Evaluation:
        setup = self.setup
        before = env_state(self.envs) if self.borrowed else None
        load_env_state(self.envs, evaluation_env_state(self.base, setup.tasks, setup.seed, step))
        policy = setup.policy_factory(actor_state)
        with torch_threads(setup.threads):
            result = evaluate_until_success(self.envs, policy, setup.episodes)
        if before is not None:
            load_env_state(self.envs, before)
        return result

    def close(self) -> None:
        if not self.borrowed:
            self.envs.close()


class _TrainerGone(Exception):
    """The trainer that started the background process died: stop evaluating for nobody."""


def _orphan_aware(factory: Callable[[ActorState], Policy], trainer: int) -> Callable[[ActorState], Policy]:
    """`factory` whose policies raise _TrainerGone once the trainer is gone (checked every 100 steps)."""

    def make(actor_state: ActorState) -> Policy:
        policy, calls = factory(actor_state), [0]

        def checked(obs: np.ndarray) -> np.ndarray:
            calls[0] += 1
            if calls[0] % 100 == 0 and os.getppid() != trainer:
                raise _TrainerGone
            return policy(obs)

        return checked

    return make


def _serve(setup: EvalSetup, conn: Any) -> None:
    """The background process: evaluate each (step, snapshot) received, reply in order, until None
    or until the trainer is gone (killed: this process then stops within 100 env steps, quietly).
    Stop signals are ignored: the trainer ends this process."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    torch.set_num_threads(setup.threads)
    setup = dataclasses.replace(setup, policy_factory=_orphan_aware(setup.policy_factory, os.getppid()))
    envs = None
    try:
        envs = EvalEnvs(setup)
        while (message := conn.recv()) is not None:
            step, actor_state = message
            conn.send(("result", step, envs.evaluate(step, actor_state)))
    except (EOFError, BrokenPipeError, _TrainerGone):  # the trainer died: nothing to report to
        pass
    except Exception as exc:
        with suppress(OSError):
            conn.send(("error", None, f"{type(exc).__name__}: {exc}".splitlines()[0]))
    finally:
        if envs is not None:
            envs.close()


class Evaluator:
    """Evaluates submitted actor snapshots, at once (`background=False`) or in a process of its own.

    submit(step, state) -> None; ready() -> finished [(step, Evaluation)] in submission order, without
    waiting; wait() -> all not yet returned, waiting for them; close() ends the process and its env
    workers. Create it where the training env workers are created (inside `signals_blocked`). At once,
    it may borrow the training envs (`borrowed`, just built: `EvalEnvs`) instead of building its own.
    """

    def __init__(
        self, setup: EvalSetup, background: bool, borrowed: gym.vector.VectorEnv | None = None
    ) -> None:
        self.setup, self.background = setup, background
        self._pending: deque[int] = deque()
        self._done: list[tuple[int, Evaluation]] = []
        self._inline: EvalEnvs | None = None
        self._process: Any = None
        if not background:
            self._inline = EvalEnvs(setup, borrowed)
            return
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        # not a daemon: it starts env workers of its own
        self._process = ctx.Process(target=_serve, args=(setup, child), name="mtrl-eval")
        self._process.start()
        child.close()
        close_at_interpreter_exit(self)

    @property
    def pending(self) -> int:
        """Snapshots submitted whose result has not been returned yet."""
        return len(self._pending) + len(self._done)

    def submit(self, step: int, actor_state: ActorState) -> None:
        """Evaluate the actor `actor_state` (CPU tensors, a copy the trainer no longer changes) for `step`."""
        if self._inline is not None:
            self._done.append((step, self._inline.evaluate(step, actor_state)))
            return
        self._check_alive()
        try:
            self._conn.send((step, actor_state))
        except OSError:
            raise self._fail(f"evaluation process died (exit code {self._exit_code()})") from None
        self._pending.append(step)

    def ready(self) -> list[tuple[int, Evaluation]]:
        while self._pending and self._conn.poll():
            self._receive()
        return self._take()

    def wait(self) -> list[tuple[int, Evaluation]]:
        while self._pending:
            self._receive()
        return self._take()

    def _take(self) -> list[tuple[int, Evaluation]]:
        done, self._done = self._done, []
        return done

    def _receive(self) -> None:
        try:
            kind, step, payload = self._conn.recv()
        except (EOFError, OSError):
            raise self._fail(f"evaluation process died (exit code {self._exit_code()})") from None
        if kind == "error":
            raise self._fail(f"evaluation of step {self._pending[0]}: {payload}")
        self._pending.popleft()
        self._done.append((step, payload))

    def _exit_code(self) -> int | None:
        self._process.join(1.0)
        return self._process.exitcode

    def _check_alive(self) -> None:
        if self._process is None:
            raise EvaluatorError("the evaluator is closed")
        if not self._process.is_alive():
            raise self._fail(f"evaluation process died (exit code {self._process.exitcode})")

    def _fail(self, message: str) -> EvaluatorError:
        self.close()
        return EvaluatorError(message)

    def close(self) -> None:
        """End the evaluation (pending results are dropped) and reap its processes."""
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        process, self._process = self._process, None
        if process is None:
            return
        if process.is_alive():
            with suppress(OSError):
                self._conn.send(None)
            process.join(JOIN_S)
        if process.is_alive():
            process.kill()  # its env workers notice their parent is gone and exit
            process.join()
        self._conn.close()
        self._pending.clear()


def eval_setup_for_run(
    config: TrainConfig,
    tasks: Sequence[str],
    obs_dim: int,
    action_dim: int,
    workers: int | None = None,
    device: str = "cpu",
) -> EvalSetup:
    """The evaluation setup of a run: its tasks, seed, episodes and reward version, the actor from its
    config (resolved) on `device`, eval envs with `workers` workers (leave cores to the training envs):
    shm, or in one process where the run steps its own envs in one (`vector_strategy: sync`)."""
    config = require_resolved(config)
    return EvalSetup(
        tuple(tasks), config.seed, config.eval_episodes, ActorPolicy(config, obs_dim, action_dim, device),
        reward_version=config.reward_version, workers=workers,
        strategy="sync" if config.vector_strategy == "sync" else "shm",
    )  # fmt: skip


def eval_workers(training_envs: gym.vector.VectorEnv, cores: int | None = None) -> int:
    """Env workers of a background evaluation: the usable cores less the training envs' workers, the
    trainer and the evaluation process, at least 1, so that evaluation leaves training its cores."""
    if isinstance(training_envs, gym.vector.SyncVectorEnv):
        busy = 0
    else:  # shm: its workers (one per group of tasks); gymnasium async: one per task
        busy = len(getattr(training_envs, "groups", ())) or training_envs.num_envs
    return max(1, (cores or usable_cores()) - busy - 2)


def evaluator_for_run(
    config: TrainConfig,
    tasks: Sequence[str],
    device: torch.device,
    eval_device: torch.device,
    training_envs: gym.vector.VectorEnv,
) -> Evaluator:
    """The run's evaluator, as `eval_mode` resolves on the run's `device` (mtrl.config.speed): blocking on
    the training envs (borrowed between episodes: no second set of envs), or in the background with
    envs of its own; the actor on `eval_device` (both picked once: `mtrl.run.setup.prepare_process`).
    Call it right after building `training_envs`."""
    from mtrl.envs.benchmarks import ACTION_DIM, OBS_DIM

    config = require_resolved(config)
    background = resolve_eval_mode(config.eval_mode, device.type) == "background"
    workers = eval_workers(training_envs) if background else None
    setup = eval_setup_for_run(config, tasks, OBS_DIM + len(tasks), ACTION_DIM, workers, eval_device.type)
    return Evaluator(setup, background, borrowed=None if background else training_envs)
