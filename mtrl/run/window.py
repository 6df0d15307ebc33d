"""The open window of the training log: metrics summed since the last log row, until the next one.

A log row is the mean of the updates since the row before. The sums stay on the run's device (no
host sync per update) and are part of the run state (`mtrl.run.state`): a run stopped inside a
window resumes with the sums it had, so its next row is the one an uninterrupted run writes.
"""

from __future__ import annotations

from typing import Any

import torch

from mtrl.agents.sac import METRICS


class MetricWindow:
    """Sums of METRICS over `count` updates since total step `opened_at` (where the last row was)."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(len(METRICS), device=device)
        self.count = 0
        self.opened_at = 0

    def add(self, metrics: torch.Tensor) -> None:
        """One update's METRICS (a device tensor), added without waiting for the device."""
        self.sums += metrics
        self.count += 1

    def mean(self, name: str) -> float:
        """The mean of one metric over the window (0 before any update)."""
        return self.sums[METRICS.index(name)].item() / max(self.count, 1)

    def close(self, step: int) -> dict[str, float]:
        """The means of the window's updates by metric, and a new window opened at total step `step`."""
        means = (self.sums / max(self.count, 1)).tolist()
        self.sums.zero_()
        self.count, self.opened_at = 0, step
        return dict(zip(METRICS, means, strict=True))

    def state_dict(self) -> dict[str, Any]:
        return {"sums": self.sums.clone(), "count": self.count, "opened_at": self.opened_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put a saved window back (its sums copied onto this window's device)."""
        self.sums.copy_(state["sums"])
        self.count, self.opened_at = int(state["count"]), int(state["opened_at"])
