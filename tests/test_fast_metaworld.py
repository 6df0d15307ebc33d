"""The fast Meta-World envs (mtrl.envs.fast_metaworld) against unpatched metaworld 3.1.1, bit for bit.

Every MT50 task (v2 rewards; the MT10 tasks also with v1, which table 1's SM runs use) is built both
ways through `_make_one` (the same wrappers, seed and goal variations), reset, and driven by the
same recorded action sequence: Meta-World's scripted expert acting on the reference env's
observation, plus seeded noise, so that episodes grasp, touch and succeed; one mid-run reset draws
another goal variation. Observations, rewards, terminated/truncated flags and the info dicts must be
identical (same bytes, same Python types); so must the envs' RNG state afterwards.
"""

from __future__ import annotations

import pickle
import warnings
from functools import cache

import numpy as np
import pytest

from mtrl.envs.benchmarks import MT10_TASKS, all_tasks

STEPS = 100  # per task: an expert episode to success, mostly
RESET_AT = 70  # a second episode from another goal variation
VARIATIONS = 3  # goal variations per task (the benchmark's 50 cost 50 resets each to sample)


@cache
def quick_variations(name: str, seed: int) -> list:
    """A few goal variations of a task drawn as `metaworld.MT1` draws its 50 (env resets with the
    goal randomisation on), cheap enough to do for all 50 tasks in a test."""
    from metaworld import Task
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS, MT50_V3_ARGS_KWARGS

    cls = ALL_V3_ENVIRONMENTS[name]
    env = cls()
    env._freeze_rand_vec = False
    env._set_task_called = True
    kwargs = {k: v for k, v in MT50_V3_ARGS_KWARGS[name]["kwargs"].items() if k != "task_id"}
    env._set_task_inner(**kwargs)
    state = np.random.get_state()
    np.random.seed(seed)
    tasks = []
    for _ in range(VARIATIONS):
        env.reset()
        data = {"rand_vec": env._last_rand_vec, "env_cls": cls, "partially_observable": False, **kwargs}
        tasks.append(Task(env_name=name, data=pickle.dumps(data)))
    np.random.set_state(state)
    env.close()
    return tasks


def same(a, b) -> bool:
    """Equal as bytes (arrays) or as value and type (scalars), recursively through dicts; the one
    exception is the episode's wall time (`info["episode"]["t"]`, gymnasium's RecordEpisodeStatistics)."""
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    if isinstance(a, dict):
        keys = [k for k in a if not (k == "t" and "l" in a)]  # the episode dict's wall time
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in keys)
    return type(a) is type(b) and (a == b or (a != a and b != b))


def replay(name: str, index: int, reward_version: str, steps: int = STEPS) -> dict[str, float]:
    """Step a reference and a fast env of a task with one action sequence; the first difference fails
    the test with its step and field. Returns what the episodes reached (for the coverage check)."""
    from metaworld.policies import ENV_POLICY_MAP

    from mtrl.envs.fast_metaworld import fast_class
    from mtrl.envs.vector import _make_one

    ref = _make_one(name, index, 50, 11 + index, reward_version, fast=False)
    new = _make_one(name, index, 50, 11 + index, reward_version, fast=True)
    assert type(new.unwrapped) is fast_class(type(ref.unwrapped))
    expert, rng = ENV_POLICY_MAP[name](), np.random.default_rng(index)
    (obs, _), (obs_new, _) = ref.reset(), new.reset()
    assert same(obs, obs_new), f"{name}: reset observation differs"
    reached = {"success": 0.0, "grasp_success": 0.0, "truncated": 0.0}
    for t in range(steps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            action = expert.get_action(obs[:39]) + rng.normal(0, 0.3, 4)
        action = np.clip(action, -1, 1).astype(np.float32)
        out, out_new = ref.step(action), new.step(action)
        for field, a, b in zip(
            ("obs", "reward", "terminated", "truncated", "info"), out, out_new, strict=True
        ):
            assert same(a, b), f"{name} ({reward_version}) step {t}: {field} differs: {a!r} vs {b!r}"
        obs, info = out[0], out[4]
        reached["success"] = max(reached["success"], info["success"])
        reached["grasp_success"] = max(reached["grasp_success"], info["grasp_success"])
        reached["truncated"] = max(reached["truncated"], float(out[3]))
        if t == RESET_AT or out[3]:
            (obs, _), (obs_new, _) = ref.reset(), new.reset()
            assert same(obs, obs_new), f"{name}: observation after reset at step {t} differs"
    assert pickle.dumps(ref.get_checkpoint()) == pickle.dumps(new.get_checkpoint()), (
        f"{name}: RNG state differs"
    )
    ref.close()
    new.close()
    return reached


@pytest.fixture
def quick_goals(monkeypatch):
    monkeypatch.setattr("mtrl.envs.vector.goal_variations", quick_variations)


def test_every_mt50_task_steps_bit_for_bit_as_metaworld(quick_goals):
    reached = {name: replay(name, i, "v2") for i, name in enumerate(all_tasks())}
    succeeded = [name for name, r in reached.items() if r["success"]]
    grasped = [name for name, r in reached.items() if r["grasp_success"]]
    print(f"{len(succeeded)} of 50 tasks succeeded, {len(grasped)} grasped")
    # the replays go where the fast code paths matter: successes, and the contact checks firing
    assert len(succeeded) >= 20, f"only {len(succeeded)} tasks reached success: {succeeded}"
    assert len(grasped) >= 5, f"only {len(grasped)} tasks grasped: {grasped}"


def test_v1_rewards_of_the_mt10_tasks_are_metaworlds(quick_goals):
    for i, name in enumerate(MT10_TASKS):
        replay(name, i, "v1", steps=40)


def test_an_episode_truncates_at_500_exactly_as_metaworld(quick_goals):
    reached = replay("reach-v3", 0, "v2", steps=RESET_AT + 502)
    assert reached["truncated"] == 1.0


def test_the_fast_class_keeps_metaworlds_names_and_leaves_metaworld_unpatched(quick_goals):
    from metaworld.utils import reward_utils
    from scipy.spatial.transform import Rotation

    from mtrl.envs.fork import ForkButtonPressTopdownWallEnvV3
    from mtrl.envs.vector import _make_one

    tolerance, from_matrix = reward_utils.tolerance, Rotation.from_matrix
    env = _make_one("button-press-topdown-wall-v3", 3, 10, 5)
    assert isinstance(env.unwrapped, ForkButtonPressTopdownWallEnvV3)
    assert env.unwrapped.task_name == "SawyerButtonPressTopdownWallEnvV3"
    assert env.get_checkpoint()[0] == f"{ForkButtonPressTopdownWallEnvV3}_3"  # resumes old checkpoints
    assert reward_utils.tolerance is tolerance and Rotation.from_matrix is from_matrix
