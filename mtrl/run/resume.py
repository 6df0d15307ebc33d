"""Resuming: the newest readable resume checkpoint, checked to be this run's, loaded into its run state.

The checkpoint is the whole run state (`mtrl.run.state.RunState`: everything needed to continue a
run bit-for-bit). It is kept with its predecessor (`resume.prev.pt`), the fallback when the newest
one is damaged; one written by another config or code version is refused, or with `restart_stale`
discarded with every checkpoint of the run directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mtrl.config.settings import ConfigError
from mtrl.files import checkpoints as ckpt
from mtrl.files.provenance import identity

if TYPE_CHECKING:
    from mtrl.run.state import RunState

log = logging.getLogger("mtrl.run.resume")


def load_resume(resume_file: Path, device: torch.device) -> tuple[dict[str, Any] | None, Path]:
    """The newest readable resume checkpoint (resume.pt, else resume.prev.pt), saying which."""
    candidates = [resume_file, ckpt.previous_path(resume_file)]
    damaged = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            state = ckpt.load(path, device)
        except ckpt.UnreadableFile:  # not damaged (permissions, EIO, NFS): stop, delete nothing
            raise
        except ckpt.CheckpointError as exc:
            log.warning("%s", exc)
            damaged.append(path)
            continue
        if damaged:  # the good one replaces the damaged resume.pt (one rename), the next save keeps it
            log.warning("%s: falling back to the previous resume checkpoint %s", damaged[0], path)
            ckpt.rename_file(path, resume_file, "in place of the damaged one")
        return state, resume_file
    if damaged:
        log.warning("no readable resume checkpoint in %s: starting over", resume_file.parent)
    return None, resume_file


def resume_or_start(run: RunState, run_dir: Path, restart_stale: bool) -> None:
    """Load the run's resume checkpoint into `run` if there is one of this exact run (its config's
    identity and provenance); else clear the leftovers of another run from `run_dir`."""
    state, source = load_resume(ckpt.resume_path(run_dir), run.device)
    expected = (identity(run.config.to_dict()), run.provenance)
    if state is not None and (identity(state["config"]), state.get("provenance", "")) != expected:
        if not restart_stale:
            old, new = identity(state["config"]), expected[0]
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            what = f"a different config ({', '.join(changed)} differ)" if changed else "another code version"
            raise ConfigError(
                f"{source}: written by {what}; delete {run_dir} to start over, or train into "
                "another run directory"
            )
        log.warning("%s is stale (config or code changed): starting over", source)
        state = None
    if state is None:  # a fresh start: leftovers of an earlier, different run must not mix in
        ckpt.clear_run(run_dir)
        return
    run.load_state_dict(state, source)
    log.info("resumed %s at step %d", run_dir, run.step * run.config.num_tasks)
