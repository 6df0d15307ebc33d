"""One-line progress reports of a training run on stderr: at every training-log row, and between them
on a clock (first after FIRST_S seconds, then every EVERY_S), so that a long run shows it is alive
within seconds whatever its `log_every`."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_S = 10.0  # the first report of a run (or of a resumed run), in seconds
EVERY_S = 30.0  # then one at least this often


@dataclass
class Progress:
    """Progress lines (stderr), readable in SLURM logs; no terminal control codes.

    `tick` is called once per vector step and costs one clock read until a report is due; `note_eval`
    keeps the last evaluation's success for the lines that follow it.
    """

    total: int
    started: float
    start_step: int
    first_s: float | None = None  # None: FIRST_S
    every_s: float | None = None  # None: EVERY_S
    quiet: bool = False  # no lines at all (mtrl train --quiet)
    clock: Callable[[], float] = time.time
    last_success: float | None = None
    last_eval_step: int | None = None
    _due: float = field(init=False)

    def __post_init__(self) -> None:
        self.first_s = FIRST_S if self.first_s is None else self.first_s
        self.every_s = EVERY_S if self.every_s is None else self.every_s
        self._due = self.started + self.first_s

    def start(self, note: str) -> None:
        """The run's first line, at once: where it starts and what it does first ('[mtrl] started at
        step 0 of 20,000,000 transitions; ...'; not a progress line: it reports no step done)."""
        if not self.quiet:
            print(
                f"[mtrl] started at step {self.start_step:,} of {self.total:,} transitions; {note}",
                file=sys.stderr,
                flush=True,
            )

    def note_eval(self, step: int, success: float) -> None:
        self.last_eval_step, self.last_success = step, success

    def tick(self, step: int) -> None:
        """A report if one is due by the clock (steps done, rate since the start, eta, last evaluation)."""
        if step >= self.total:  # the last step's training-log row reports it
            return
        now = self.clock()
        if now >= self._due:
            self._print(step, None, now)

    def report(self, step: int, success: float | None, sps: float) -> None:
        """The report of a training-log row: `sps` over the row's segment."""
        if success is not None:
            self.last_success = success
        self._print(step, sps, self.clock())

    def _print(self, step: int, sps: float | None, now: float) -> None:
        if self.quiet:
            return
        done = step - self.start_step
        rate = done / max(now - self.started, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else math.inf
        shown = rate if sps is None else sps
        line = f"[mtrl] step {step:,}/{self.total:,} ({100 * step / self.total:5.1f}%)  {shown:,.0f} steps/s"
        if self.last_success is not None:
            line += f"  eval success {100 * self.last_success:5.1f}%"
            if self.last_eval_step is not None:
                line += f" (step {self.last_eval_step:,})"
        line += f"  eta {_eta(eta)}"
        print(line, file=sys.stderr, flush=True)
        self._due = now + (EVERY_S if self.every_s is None else self.every_s)


def _eta(seconds: float) -> str:
    """'12 s', '14.2 min', '3.1 h', '?' (nothing done yet to measure a rate)."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:,.1f} min" if seconds < 3600 else f"{seconds / 3600:,.1f} h"
