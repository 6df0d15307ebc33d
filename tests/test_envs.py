"""Meta-World benchmarks: task lists, one-hot observations, 500-step episodes, evaluation, RNG restore."""

from __future__ import annotations

import numpy as np
import pytest
from metaworld import env_dict
from metaworld.policies import SawyerReachV3Policy

from mtrl.envs.benchmarks import MT10_TASKS, MT25_TASKS, task_names
from mtrl.envs.vector import env_state, evaluate, load_env_state, make_vector_env


def test_task_lists_match_metaworld():
    assert MT10_TASKS == tuple(env_dict.MT10_V3)
    assert (
        MT25_TASKS[:10] == MT10_TASKS and set(MT25_TASKS) == set(env_dict.MT25_V3) and len(MT25_TASKS) == 25
    )
    assert len(task_names("mt50")) == 50 and set(task_names("mt50")) == set(env_dict.MT50_V3)
    assert task_names("mt1", "push-v3") == ("push-v3",)


# The study's MT25, in the order of its code (rainx0r/mtrl f5c121f, mtrl/envs/metaworld.py): the
# one-hot position of every task. coffee-pull is the 11th.
STUDY_MT25 = [
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
    "coffee-pull-v3",
    "pick-out-of-hole-v3",
    "disassemble-v3",
    "pick-place-wall-v3",
    "basketball-v3",
    "stick-pull-v3",
    "button-press-wall-v3",
    "faucet-open-v3",
    "door-lock-v3",
    "lever-pull-v3",
    "sweep-into-v3",
    "faucet-close-v3",
    "coffee-button-v3",
    "button-press-topdown-wall-v3",
    "dial-turn-v3",
]


def test_mt25_one_hot_order_is_the_studys():
    assert task_names("mt25") == MT25_TASKS == tuple(STUDY_MT25)
    assert task_names("mt25").index("coffee-pull-v3") == 10
    assert MT25_TASKS == tuple(env_dict.MT25_V3)  # Meta-World 3.1.1 ships the same order


@pytest.fixture(scope="module")
def three_task_env():
    envs = make_vector_env(["reach-v3", "push-v3", "drawer-close-v3"], seed=0)
    yield envs
    envs.close()


def test_observation_has_one_hot_and_episodes_truncate_at_500(three_task_env):
    envs = three_task_env
    obs, _ = envs.reset()
    assert obs.shape == (3, 42)
    np.testing.assert_array_equal(obs[:, 39:], np.eye(3))
    assert all(len(t) == 50 for t in envs.get_attr("tasks"))  # 50 goal variations per task
    for t in range(500):
        obs, reward, terminated, truncated, info = envs.step(np.zeros((3, 4), dtype=np.float32))
        assert not terminated.any()
        assert truncated.all() == (t == 499)
        assert "success" in info
    np.testing.assert_array_equal(obs[:, 39:], np.eye(3))


def test_restored_rng_state_replays_the_same_episodes(three_task_env):
    envs = three_task_env
    state = env_state(envs)
    first, _ = envs.reset()
    other = make_vector_env(["reach-v3", "push-v3", "drawer-close-v3"], seed=123)
    load_env_state(other, state)
    again, _ = other.reset()
    other.close()
    np.testing.assert_array_equal(first, again)
    different, _ = envs.reset()
    assert not np.array_equal(first, different)  # a new goal variation / init noise each reset


def test_evaluation_counts_success_at_any_step():
    envs = make_vector_env(["reach-v3"], seed=1)
    expert = SawyerReachV3Policy()
    solved = evaluate(envs, lambda obs: np.stack([expert.get_action(o[:39]) for o in obs]), episodes=3)
    idle = evaluate(envs, lambda obs: np.zeros((len(obs), 4), dtype=np.float32), episodes=2)
    envs.close()
    assert solved.success.tolist() == [1.0] and solved.returns[0] > idle.returns[0]
    assert idle.success.shape == (1,) and 0.0 <= idle.mean_success <= 1.0


def test_cached_goal_variations_build_the_same_env_as_metaworld(tmp_path, monkeypatch):
    import metaworld

    from mtrl.envs.vector import _make_one, goal_variations

    monkeypatch.setenv("MTRL_CACHE_DIR", str(tmp_path))
    fresh = goal_variations("push-v3", 7)
    assert (tmp_path / next(tmp_path.iterdir()).name / "push-v3-seed7.pkl").exists()
    assert goal_variations("push-v3", 7) == fresh and len(fresh) == 50
    ours = _make_one("push-v3", 1, 3, 7)
    theirs = metaworld.make_mt_envs("push-v3", seed=7, num_tasks=3, env_id=1, use_one_hot=True)
    for _ in range(3):  # each reset samples a goal variation: the same ones, in the same order
        a, _ = ours.reset()
        b, _ = theirs.reset()
        np.testing.assert_array_equal(a, b)
    action = np.full(4, 0.3, dtype=np.float32)
    np.testing.assert_array_equal(ours.step(action)[0], theirs.step(action)[0])


def test_a_tasks_env_seed_does_not_depend_on_the_benchmark():
    from mtrl.envs.vector import env_seeds

    mt10, mt50 = env_seeds(3, 0, task_names("mt10")), env_seeds(3, 0, task_names("mt50"))
    assert mt10[0] == mt50[task_names("mt50").index("reach-v3")]
    assert len(set(mt50)) == 50 and env_seeds(4, 0, ["reach-v3"]) != env_seeds(3, 0, ["reach-v3"])


def _rollout(actions: np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray, tuple]:
    envs = make_vector_env(["reach-v3"], seed=2, **kwargs)
    first, _ = envs.reset()
    observations, rewards = [first], []
    for action in actions:
        obs, reward, *_ = envs.step(action)
        observations.append(obs)
        rewards.append(reward)
    version = envs.get_attr("reward_function_version")
    envs.close()
    return np.array(observations), np.array(rewards), version


def test_reward_version_picks_metaworlds_reward_functions_and_v2_is_the_default():
    actions = np.random.default_rng(0).uniform(-1, 1, (30, 1, 4)).astype(np.float32)
    obs_default, default, version_default = _rollout(actions)
    obs_v1, v1, version_v1 = _rollout(actions, reward_version="v1")
    obs_v2, v2, version_v2 = _rollout(actions, reward_version="v2")
    assert (version_default, version_v1, version_v2) == (("v2",), ("v1",), ("v2",))
    np.testing.assert_array_equal(obs_v1, obs_v2)  # the same transitions...
    np.testing.assert_array_equal(obs_default, obs_v2)
    assert not np.allclose(v1, v2)  # ...scored by different reward functions
    np.testing.assert_array_equal(default, v2)
    # reach's v2 reward is 10 x a tolerance in [0, 1]; v1's is Meta-World's original 1000-scale shaping
    assert v2.max() <= 10 < v1.max()


def test_an_unknown_reward_version_is_refused_naming_the_key():
    # Meta-World reads anything but "v2" as v1: a typo must not silently train on v1 rewards
    with pytest.raises(ValueError, match="reward_version"):
        make_vector_env(["reach-v3"], seed=0, reward_version="V2")
    from mtrl.config.settings import ConfigError, TrainConfig

    assert TrainConfig().reward_version == "v2"
    assert TrainConfig.from_dict({"reward_version": "v1"}).reward_version == "v1"
    with pytest.raises(ConfigError, match=r"^reward_version: 'v3' is not one of \['v1', 'v2'\]$"):
        TrainConfig.from_dict({"reward_version": "v3"})


def test_training_builds_its_envs_with_the_configs_reward_version(tiny_config, tmp_path, monkeypatch):
    import dataclasses

    import mtrl.run.train

    built = {}

    class Built(Exception):
        pass

    def record(*args, **kwargs):
        built.update(kwargs)
        raise Built

    monkeypatch.setattr(mtrl.run.train, "make_vector_env", record)
    with pytest.raises(Built):
        mtrl.run.train.Trainer(
            dataclasses.replace(tiny_config, reward_version="v1").resolved(), tmp_path, True, "", False
        )
    assert built["reward_version"] == "v1"


def test_button_press_topdown_wall_has_the_study_forks_v2_reward():
    """The fork (reginald-mclean/Metaworld 87d5326) scores the gripper closed as 1 - obs[3]; 3.1.1 as
    max(obs[3], 0). Same transitions, same success; the reward follows the fork's formula."""
    import metaworld
    from metaworld.policies import SawyerButtonPressTopdownWallV3Policy
    from metaworld.utils.reward_utils import hamacher_product

    from mtrl.envs.vector import _make_one

    def reward_with(closed, obs, info, tcp):
        pressed = 5 * info["in_place_reward"] if np.linalg.norm(obs[4:7] - tcp) <= 0.03 else 0.0
        return 5 * hamacher_product(closed, info["grasp_reward"]) + pressed

    name = "button-press-topdown-wall-v3"
    ours = _make_one(name, 0, 1, 5)
    stock = metaworld.make_mt_envs(name, seed=5, num_tasks=1, env_id=0, use_one_hot=True)
    expert = SawyerButtonPressTopdownWallV3Policy()
    obs, _ = ours.reset()
    np.testing.assert_array_equal(obs, stock.reset()[0])
    rng = np.random.default_rng(0)
    differs = succeeded = 0
    for t in range(150):
        # the expert with its gripper forced open half the time, so both gripper states are scored
        action = expert.get_action(obs[:39]).astype(np.float32)
        action[3] = -1.0 if (t // 10) % 2 else action[3]
        action[:3] += rng.normal(0, 0.1, 3).astype(np.float32)
        obs, reward, *_, info = ours.step(action)
        stock_obs, stock_reward, *_, stock_info = stock.step(action)
        np.testing.assert_array_equal(obs, stock_obs)
        assert info["success"] == stock_info["success"]
        tcp = ours.unwrapped.tcp_center
        assert reward == pytest.approx(reward_with(1 - obs[3], obs, info, tcp))
        assert stock_reward == pytest.approx(reward_with(max(obs[3], 0.0), obs, info, tcp))
        differs += abs(reward - stock_reward) > 1e-6
        succeeded += info["success"]
    assert differs > 10 and succeeded > 0
    v1 = _make_one(name, 0, 1, 5, reward_version="v1")
    stock_v1 = metaworld.make_mt_envs(name, seed=5, num_tasks=1, env_id=0, reward_function_version="v1")
    v1.reset(), stock_v1.reset()
    assert v1.step(np.full(4, 0.2, np.float32))[1] == stock_v1.step(np.full(4, 0.2, np.float32))[1]
