"""The Meta-World the study ran: where metaworld 3.1.1 differs from the authors' pinned fork
(reginald-mclean/Metaworld @ 87d5326), the fork's behaviour. See docs/metaworld-version.md.

The only difference in the MT10/MT25/MT50 tasks' dynamics, observations, success and v2 rewards is
button-press-topdown-wall's v2 reward: the fork scores the gripper as closed with `1 - obs[3]` (as
button-press-topdown does in both), 3.1.1 with `max(obs[3], 0)` (Farama-Foundation/Metaworld#548).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from metaworld.env_dict import ALL_V3_ENVIRONMENTS
from metaworld.envs.sawyer_button_press_topdown_wall_v3 import SawyerButtonPressTopdownWallEnvV3
from metaworld.sawyer_xyz_env import SawyerXYZEnv
from metaworld.utils import reward_utils


class ForkButtonPressTopdownWallEnvV3(SawyerButtonPressTopdownWallEnvV3):
    """button-press-topdown-wall with the fork's v2 reward (the v1 reward and everything else as 3.1.1)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.task_name = SawyerButtonPressTopdownWallEnvV3.__name__  # Meta-World maps names by class

    def compute_reward(self, action: npt.NDArray[Any], obs: npt.NDArray[np.float64]) -> Any:
        out = super().compute_reward(action, obs)
        if self.reward_function_version != "v2":
            return out
        _, tcp_to_obj, _, _, near_button, button_pressed = out
        reward = 5 * reward_utils.hamacher_product(1 - obs[3], near_button)
        if tcp_to_obj <= 0.03:
            reward += 5 * button_pressed
        return (reward, *out[1:])


FORK_ENVIRONMENTS: dict[str, type[SawyerXYZEnv]] = {
    "button-press-topdown-wall-v3": ForkButtonPressTopdownWallEnvV3,
}


def env_class(name: str) -> type[SawyerXYZEnv]:
    """The env class of a task as the study ran it."""
    return FORK_ENVIRONMENTS.get(name, ALL_V3_ENVIRONMENTS[name])
