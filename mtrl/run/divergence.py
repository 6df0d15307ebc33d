"""A diverging optimiser stops its run instead of finishing it with curves of NaN.

The first non-finite action, loss or parameter ends training with one line naming the step and the
quantities, before anything diverged is written: no train.h5, and the last resume checkpoint stays
the last good one. A mean Q above what Meta-World's rewards allow is warned of once.

Where it looks, adding no host-device sync to an update:
  every vector step     the policy's actions, which cross to the host anyway to step the envs;
                        parameters that went NaN in an update give NaN actions at the next step
  every episode's end   parameters and log-alpha, and the losses, mean Q and entropy summed on the
                        device since the last log row (one sync per 500 steps), before evaluation,
                        the log row, probe and resume checkpoints and train.h5 are written
So a run stops within a step or two of its first NaN, and never later than the episode's end.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtrl.config.usual import divergence_hint

if TYPE_CHECKING:
    from mtrl.agents.sac import MultiTaskSAC
    from mtrl.config.settings import TrainConfig
    from mtrl.run.window import MetricWindow

log = logging.getLogger("mtrl.run.divergence")

# The most reward one step can give. v2: every Meta-World v2 reward function is scaled to [0, 10].
# v1: one term 1000 * (a starting distance, under 2 m in the robot's workspace) + 1000 * (two
# exponentials, each at most 1), plus a lift bonus of 100 * a height under 1 m and a reach term of
# centimetres: under 4,000 (Meta-World's own `target_reward = 1000 * maxDist + 1000 * 2`).
R_MAX = {"v2": 10.0, "v1": 4_000.0}
# Q may exceed r_max / (1 - gamma) through SAC's entropy bonus (alpha * at most 4 log 2 per step for
# four actions); twice the bound leaves room for that and is far below a diverging critic's values.
Q_MARGIN = 2.0


class TrainingDiverged(Exception):  # light to import: the CLI catches it without loading torch
    """Training produced non-finite numbers; the message names the run, the step and the quantities."""


def q_limit(config: TrainConfig) -> float:
    """The mean Q above which the critic is diverging: Q_MARGIN x r_max / (1 - gamma)."""
    if config.gamma >= 1:
        return math.inf
    return Q_MARGIN * R_MAX[config.reward_version] / (1 - config.gamma)


class DivergenceWatch:
    """The checks of one run (see the module docstring), and whether the mean Q was warned of (part
    of the run state: a resumed run does not warn again)."""

    def __init__(self, config: TrainConfig, run_dir: Path) -> None:
        self.config, self.run_dir = config, run_dir
        self.q_limit = q_limit(config)
        self.warned = False

    def check_actions(self, action: np.ndarray, agent: MultiTaskSAC, window: MetricWindow, step: int) -> None:
        """Every vector step: the policy's actions (host values) are finite; `step` in transitions."""
        if not np.isfinite(action).all():
            raise self.diverged(step, ["the policy's actions", *non_finite(agent, window)])

    def check_state(self, agent: MultiTaskSAC, window: MetricWindow, step: int) -> None:
        """At an episode's end, before anything is evaluated or written: parameters and the metrics
        of the open log window are finite; a mean Q over the bound is warned of once."""
        problems = non_finite(agent, window)
        if problems:
            raise self.diverged(step, problems)
        if window.count and not self.warned:
            q_mean = window.mean("q_mean")
            if q_mean > self.q_limit:
                self.warned = True
                log.warning(
                    "%s: mean Q %.3g at step %d exceeds %.0f = %g x r_max / (1 - gamma), r_max = %g per "
                    "step for Meta-World's %s rewards: the critic is diverging (%s)",
                    self.run_dir,
                    q_mean,
                    step,
                    self.q_limit,
                    Q_MARGIN,
                    R_MAX[self.config.reward_version],
                    self.config.reward_version,
                    divergence_hint(self.config),
                )

    def diverged(self, step: int, quantities: list[str]) -> TrainingDiverged:
        """The one-line error of a run diverged at total step `step`: where, what, and what was kept."""
        from mtrl.files.checkpoints import resume_path

        kept = "none written yet"
        if resume_path(self.run_dir).exists():
            kept = "the last resume checkpoint is kept"
        return TrainingDiverged(
            f"{self.run_dir}: training diverged at step {step:,}: {', '.join(quantities)} not finite; "
            f"stopped before writing them ({kept}; {divergence_hint(self.config)})"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"warned": self.warned}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.warned = bool(state["warned"])


def non_finite(agent: MultiTaskSAC, window: MetricWindow) -> list[str]:
    """The quantities of a run that hold NaN or infinity: the metrics summed in the open log window
    (losses, mean Q, entropy), the actor's and the critic's parameters, log-alpha."""
    import torch

    from mtrl.agents.sac import METRICS

    sums = window.sums.isfinite().tolist()
    since = f" (since step {window.opened_at:,})"
    names = [name + since for name, ok in zip(METRICS, sums, strict=True) if not ok]
    for name, module in (("actor", agent.actor), ("critic", agent.critic)):
        if not torch.stack([p.isfinite().all() for p in module.parameters()]).all().item():
            names.append(f"{name} parameters")
    if not agent.log_alpha.isfinite().all().item():
        names.append("log_alpha")
    return names
