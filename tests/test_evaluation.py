"""Evaluation as Meta-World runs it (episodes end at success, envs out of lockstep) and the Evaluator
(own envs, seeded per step; inline and background identical; background overlaps; clean shutdown)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from metaworld.policies import SawyerPushV3Policy, SawyerReachV3Policy

from mtrl.config.settings import TrainConfig
from mtrl.envs.benchmarks import ACTION_DIM, OBS_DIM
from mtrl.envs.evaluation import evaluate_until_success
from mtrl.envs.vector import evaluate, make_vector_env
from mtrl.run.evaluator import EvalSetup, Evaluator, EvaluatorError, eval_setup_for_run
from mtrl.run.stop_signals import signals_blocked

TASKS = ["reach-v3", "push-v3", "window-close-v3"]
EXPERTS = [SawyerReachV3Policy(), SawyerPushV3Policy()]


def scripted(obs: np.ndarray) -> np.ndarray:
    """Deterministic, row by row: the expert where the goal lies right of centre (so some episodes
    succeed and some do not); window-close never acts (never succeeds)."""
    actions = np.zeros((len(obs), ACTION_DIM), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, expert in enumerate(EXPERTS):
            if obs[i, 36] > 0:
                actions[i] = expert.get_action(obs[i, :OBS_DIM])
    return actions


@pytest.mark.parametrize("strategy", ["sync", "shm"])
def test_per_task_success_equals_full_episode_evaluation_in_fewer_env_steps(strategy):
    episodes = 6
    full = make_vector_env(TASKS, seed=3, strategy="sync")
    early = make_vector_env(TASKS, seed=3, strategy=strategy, workers=2)
    try:
        reference = evaluate(full, scripted, episodes)
        result = evaluate_until_success(early, scripted, episodes)
    finally:
        full.close()
        early.close()
    assert 0 < reference.success[0] < 1 and 0 < reference.success[1] < 1  # partial: goals matter
    np.testing.assert_array_equal(result.success, reference.success)
    assert reference.success[2] == 0 and result.returns[2] == reference.returns[2] > 0  # never ends early
    assert (result.returns[:2] < reference.returns[:2]).all()  # episodes end at their first success
    # gymnasium's envs step all together: the task that never succeeds sets the pace (500 x 6 steps);
    # the shm envs step only the tasks still running episodes: 3,000 for window-close, fewer for the others
    full_steps = len(TASKS) * 500 * episodes
    if strategy == "shm":
        assert result.env_steps < 500 * episodes * (1 + 2 * (1 - result.success[:2].min() / 2))
    else:
        assert result.env_steps == full_steps


def _actor_state(config: TrainConfig, seed: int) -> dict[str, torch.Tensor]:
    from mtrl.nets import build_network

    torch.manual_seed(seed)
    actor = build_network(config, "actor", OBS_DIM + config.num_tasks, 2 * ACTION_DIM)
    with torch.no_grad():
        for parameter in actor.head.parameters():  # an actor that moves, so that episodes differ
            parameter.uniform_(-1, 1)
    return {key: value.clone() for key, value in actor.state_dict().items()}


@pytest.fixture(scope="module")
def config() -> TrainConfig:
    settings = {"task_set": "mt1", "actor_width": 16, "critic_width": 16, "seed": 4, "eval_episodes": 2}
    return TrainConfig.from_dict(settings)


def _setup(config: TrainConfig, episodes: int = 2, factory=None) -> EvalSetup:
    """The run's setup (its actor as the policy), or `factory` as the policy on the same envs."""
    setup = eval_setup_for_run(config, ["reach-v3"], OBS_DIM + 1, ACTION_DIM, workers=1)
    assert (setup.seed, setup.episodes, setup.strategy) == (4, 2, "shm")
    return dataclasses.replace(setup, episodes=episodes, policy_factory=factory or setup.policy_factory)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_inline_and_background_give_identical_results_that_depend_only_on_policy_and_step(config):
    snapshots = [(500, _actor_state(config, 0)), (1000, _actor_state(config, 1))]
    rng_before = torch.get_rng_state()
    inline = Evaluator(_setup(config), background=False)
    for step, state in snapshots:
        inline.submit(step, state)
    blocking = inline.wait()
    inline.close()
    assert torch.equal(torch.get_rng_state(), rng_before)  # training's RNG untouched
    background = Evaluator(_setup(config), background=True)
    for step, state in reversed(snapshots):  # another order, another env history: the same results
        background.submit(step, state)
    overlapped = dict(background.wait())
    background.close()
    assert [step for step, _ in blocking] == [500, 1000]
    for step, result in blocking:
        np.testing.assert_array_equal(result.success, overlapped[step].success)
        np.testing.assert_array_equal(result.returns, overlapped[step].returns)
        assert result.env_steps == overlapped[step].env_steps
    assert not np.array_equal(blocking[0][1].returns, blocking[1][1].returns)


def test_background_evaluation_overlaps_and_shuts_down_without_leftover_processes(config):
    with signals_blocked():  # as the trainer starts it: the stop signals reach it blocked, then ignored
        evaluator = Evaluator(_setup(config, episodes=3), background=True)
    worker_pid = evaluator._process.pid
    os.kill(worker_pid, signal.SIGTERM)  # a stop signal to the process group: the trainer decides
    os.kill(worker_pid, signal.SIGINT)
    state = _actor_state(config, 2)
    started = time.perf_counter()
    evaluator.submit(500, state)
    evaluator.submit(1000, state)
    submitted = time.perf_counter() - started
    assert evaluator.ready() == [] and evaluator.pending == 2  # still evaluating: training goes on
    results = evaluator.wait()
    evaluated = time.perf_counter() - started
    assert [step for step, _ in results] == [500, 1000] and evaluator.pending == 0
    assert submitted < 0.1 * evaluated
    env_workers = _children(worker_pid)
    assert env_workers  # the evaluation's own env workers
    evaluator.close()
    assert evaluator._process is None
    time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in [worker_pid, *env_workers])


def _broken_factory(actor_state):
    raise ValueError("no actor here\nsecond line")


def test_a_failing_evaluation_is_one_line_and_the_process_is_reaped(config):
    evaluator = Evaluator(_setup(config, factory=_broken_factory), background=True)
    process = evaluator._process
    evaluator.submit(500, {})
    with pytest.raises(EvaluatorError) as raised:
        evaluator.wait()
    assert str(raised.value) == "evaluation of step 500: ValueError: no actor here"
    assert process.exitcode is not None
    with pytest.raises(EvaluatorError, match="closed"):
        evaluator.submit(1000, {})
    assert not Path(f"/proc/{process.pid}").exists()


UNCLOSED = """
import sys
from tests.test_evaluation import _setup
from mtrl.config.settings import TrainConfig
from mtrl.run.evaluator import Evaluator
if __name__ == "__main__":
    config = TrainConfig.from_dict({"task_set": "mt1", "actor_width": 16, "critic_width": 16, "seed": 4,
                                    "eval_episodes": 2})
    evaluator = Evaluator(_setup(config), background=True)
    print(evaluator._process.pid, flush=True)
"""


def test_a_trainer_exiting_without_closing_its_evaluator_exits_and_leaves_no_process():
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", UNCLOSED], cwd=repo, capture_output=True, text=True, timeout=60, check=True
    )
    assert not Path(f"/proc/{int(out.stdout)}").exists()


def test_the_evaluated_policy_acts_as_the_agents_deterministic_policy(config):
    """ActorPolicy (a snapshot loaded into a fresh actor) gives the trained agent's deterministic actions."""
    from mtrl.agents.sac import MultiTaskSAC

    agent = MultiTaskSAC(config, OBS_DIM + 1, ACTION_DIM, torch.device("cpu"))
    with torch.no_grad():
        for parameter in agent.actor.parameters():
            parameter.uniform_(-0.3, 0.3)
    obs = np.random.default_rng(0).standard_normal((5, OBS_DIM + 1)).astype(np.float32)
    obs[:, -1] = 1.0
    snapshot = {k: v.detach().clone() for k, v in agent.actor.state_dict().items()}
    rng_before = torch.get_rng_state()
    acted = _setup(config).policy_factory(snapshot)(obs)
    assert torch.equal(torch.get_rng_state(), rng_before)  # building the actor drew nothing from training
    np.testing.assert_array_equal(acted, agent.act(torch.from_numpy(obs), deterministic=True).numpy())
