"""Evaluation as Meta-World's own `metaworld.evaluation.evaluation` (the authors' call) runs it.

An episode ends at its first success (Meta-World switches `terminate_on_success` on) and each
task's env runs its episodes independently, out of lockstep with the others. The success rate is
the one of full 500-step episodes by definition (success at any step), at a fraction of the env
steps once the policy succeeds. Each evaluation's env RNG state is derived from (run seed,
evaluation step) alone, so its result depends only on the policy evaluated.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

Policy = Callable[[np.ndarray], np.ndarray]
EVAL_STREAM = 1  # SeedSequence stream of evaluation env RNG (0: env seeds, 2: warm-up actions)


@dataclass(frozen=True)
class Evaluation:
    """Per-task results of `evaluate_until_success`.

    success: (N,) fraction of episodes that reached `success` (at any step, as Meta-World counts it).
    returns: (N,) mean episode return, where an episode ends at its first success: the reward summed
        up to and including that step (500 steps where it never succeeds). Meta-World's evaluation
        reports this return; it is lower than a full 500-step episode's for a policy that succeeds.
    env_steps: env transitions stepped (every env of the vector, or only the envs still running
        episodes where the vector env can step a subset: `step_masked`).
    """

    success: np.ndarray
    returns: np.ndarray
    env_steps: int

    @property
    def mean_success(self) -> float:
        return float(self.success.mean())


def evaluate_until_success(envs: gym.vector.VectorEnv, policy: Policy, episodes: int) -> Evaluation:
    """`episodes` episodes per env, each ending at its first success or truncation; envs out of lockstep.

    `policy` maps the (N, obs) batch to (N, A) actions row by row; it always gets all N rows (rows of
    finished envs hold their last observation), so a batched network sees one batch shape throughout.
    """
    n = envs.num_envs
    finished = np.zeros(n, dtype=np.int64)  # episodes counted per env
    successes, returns, running = np.zeros(n), np.zeros(n), np.zeros(n)
    step_masked = getattr(envs, "step_masked", None)
    env_steps = 0
    obs, _ = envs.reset()
    while (finished < episodes).any():
        counting = finished < episodes
        if step_masked is not None:
            obs, reward, terminated, truncated, info = step_masked(policy(obs), counting)
            env_steps += int(counting.sum())
        else:
            obs, reward, terminated, truncated, info = envs.step(policy(obs))
            env_steps += n
        running += reward
        success = np.asarray(info["success"], dtype=bool)
        ended = success | terminated | truncated
        counted = ended & counting
        successes += success & counted
        returns += np.where(counted, running, 0.0)
        finished += counted
        running[ended] = 0.0
        # an env stepped past its episode's end would fail; where envs can be masked, finished ones rest
        to_reset = ended & (finished < episodes) if step_masked is not None else ended
        if to_reset.any():
            obs, _ = envs.reset(options={"reset_mask": to_reset})
    return Evaluation(successes / episodes, returns / episodes, env_steps)


def evaluation_env_state(
    base: Sequence[Any], tasks: Sequence[str], seed: int, step: int
) -> list[tuple[str, dict[str, Any]]]:
    """The envs' checkpoint (`env_state` format) for the evaluation at `step`: `base` (the eval envs'
    state when built: their goal variations) with the goal-sampling and init-noise RNG replaced by one
    drawn from (seed, step, task) only."""
    state = []
    for (env_id, checkpoint), name in zip(base, tasks, strict=True):
        rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([seed, EVAL_STREAM, step, zlib.crc32(name.encode())]))
        )
        checkpoint = copy.deepcopy(checkpoint)
        checkpoint["rng_state"] = rng.bit_generator.state
        checkpoint["env_rng_state"]["np_random_state"] = rng.bit_generator.state
        state.append((env_id, checkpoint))
    return state
