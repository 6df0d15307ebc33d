"""One parity run's settings and its record, shared by both sides' drivers (standard library only:
the authors' side imports it from their own Python 3.12 environment, which has no `mtrl`).

A run directory holds `spec.json` (the settings), `records.jsonl` (one line per logged update and
per evaluation, written as they happen) and `done.json` (written last, atomically: the run is whole).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SIDES = ("ours", "authors")
LOG_EVERY_UPDATES = 100  # the authors' loop logs its update's own values every 100 vector steps


@dataclass(frozen=True)
class RunSpec:
    """The settings both sides train with; transitions are totals over all tasks, as in the paper."""

    side: str
    seed: int
    task_set: str  # "mt10"
    num_tasks: int
    width: int
    depth: int
    batch_per_task: int
    buffer_total: int
    warmup_vector_steps: int
    total_steps: int
    eval_every: int
    eval_episodes: int
    lr: float = 3e-4
    alpha_lr: float = 3e-4
    grad_clip: float = 1.0
    gamma: float = 0.99
    tau: float = 0.005
    threads: int = 1
    device: str = "cpu"  # ours: "cpu" (eager, float32) or "auto" (a GPU: the run's defaults)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def load(path: Path) -> RunSpec:
        return RunSpec(**json.loads(path.read_text()))


class Recorder:
    """Appends a run's records to `records.jsonl` (flushed per line) and marks it done at the end."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.start = time.time()
        self.handle = (run_dir / "records.jsonl").open("w")

    def _write(self, record: dict[str, Any]) -> None:
        record["wall_s"] = round(time.time() - self.start, 3)
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()

    def train(self, update: int, transitions: int, stats: dict[str, float]) -> None:
        """The instantaneous statistics of update number `update` (1 = the first after warm-up)."""
        self._write({"kind": "train", "update": update, "transitions": transitions, **stats})

    def evaluation(self, transitions: int, success: dict[str, float], env_steps: int | None) -> None:
        """One evaluation after `transitions` training transitions: success rate per task."""
        self._write({"kind": "eval", "transitions": transitions, "success": success, "env_steps": env_steps})

    def done(self, info: dict[str, Any]) -> None:
        self.handle.close()
        tmp = self.run_dir / "done.json.tmp"
        tmp.write_text(json.dumps({"wall_s": round(time.time() - self.start, 1), **info}))
        os.replace(tmp, self.run_dir / "done.json")


TRAIN_STATS = ("critic_loss", "q_mean", "actor_loss", "alpha_loss", "alpha_sum")
