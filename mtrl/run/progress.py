"""One-line progress reports of a training run on stderr."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass


@dataclass
class Progress:
    """One-line progress reports (stderr), readable in SLURM logs; no terminal control codes."""

    total: int
    started: float
    start_step: int

    def report(self, step: int, success: float | None, sps: float) -> None:
        done = step - self.start_step
        rate = done / max(time.time() - self.started, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else math.inf
        line = f"[mtrl] step {step:,}/{self.total:,} ({100 * step / self.total:5.1f}%)  {sps:,.0f} steps/s"
        if success is not None:
            line += f"  eval success {100 * success:5.1f}%"
        line += f"  eta {eta / 60:,.1f} min"
        print(line, file=sys.stderr, flush=True)
