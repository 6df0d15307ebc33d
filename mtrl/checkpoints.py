"""Checkpoint files of a run: one full resume checkpoint (overwritten) and network-only probe checkpoints.

  checkpoints/resume.pt              everything needed to continue bit-for-bit (incl. replay buffer)
  checkpoints/probe/step_{S:012d}.pt actor, critic and log-alpha at total env step S, with the probe
                                     batch: one training batch drawn (fixed seed) from the buffer
                                     at step S (step 0: at the end of the first episode)
All are written to a temporary name and renamed, so a kill never leaves a half-written file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

PROBE_PATTERN = re.compile(r"step_(\d{12})\.pt$")


def save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def resume_path(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "resume.pt"


def probe_path(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / "probe" / f"step_{step:012d}.pt"


def clear_run(run_dir: Path) -> None:
    """Remove every checkpoint of a run (before a fresh start)."""
    for path in [resume_path(run_dir), *(p for _, p in probe_checkpoints(run_dir))]:
        path.unlink(missing_ok=True)


def probe_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every probe checkpoint of a run, in step order."""
    folder = run_dir / "checkpoints" / "probe"
    found = [(int(m.group(1)), p) for p in folder.glob("step_*.pt") if (m := PROBE_PATTERN.search(p.name))]
    return sorted(found)


def load(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint onto `device` (a GPU-written checkpoint loads on a CPU-only machine)."""
    return torch.load(path, map_location=device, weights_only=False)
