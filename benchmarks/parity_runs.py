"""Launching the parity runs: one run directory per (side, seed), two runs at a time, each in its own
process session with one thread; a run whose `done.json` is there with the same settings is skipped,
an unfinished one is started again from the beginning (a parity run has no resume)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from parity_record import RunSpec

HERE = Path(__file__).resolve().parent
ONE_THREAD = {  # one core per run: BLAS, OpenMP and XLA's CPU thread pools
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


@dataclass(frozen=True)
class Launcher:
    """How each side's driver is started: our Python (this one) and the authors' environment's."""

    ours_python: str
    authors_python: str | None

    def command(self, spec: RunSpec, run_dir: Path) -> list[str]:
        if spec.side == "ours":
            return [self.ours_python, str(HERE / "parity_ours.py"), str(run_dir)]
        if self.authors_python is None:
            raise ValueError("the authors' runs need their environment: give --authors-code")
        return [self.authors_python, str(HERE / "parity_authors.py"), str(run_dir)]


def run_dir_of(root: Path, spec: RunSpec) -> Path:
    return root / f"{spec.side}_s{spec.seed}"


def is_done(run_dir: Path, spec: RunSpec) -> bool:
    """The run finished with exactly these settings."""
    spec_file = run_dir / "spec.json"
    return (run_dir / "done.json").exists() and spec_file.exists() and RunSpec.load(spec_file) == spec


def is_running(run_dir: Path) -> bool:
    """The run's driver (its pid file) is alive: another `parity.py` started it and it is not done."""
    try:
        pid = int((run_dir / "pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return not (run_dir / "done.json").exists()


def prepare(run_dir: Path, spec: RunSpec) -> None:
    """An empty run directory holding only this spec (an unfinished run's files are dropped)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "spec.json").write_text(spec.to_json())


def run_all(specs: Sequence[RunSpec], root: Path, launcher: Launcher, jobs: int) -> list[str]:
    """Run every spec not yet done, `jobs` at a time under `root` (runs another `parity.py` is running
    there count, and are left to it), in the given order; one line per start and end. Returns the
    failures (one line each); the other runs go on after one fails."""
    todo = [s for s in specs if not is_done(run_dir_of(root, s), s)]
    skipped = len(specs) - len(todo)
    if skipped:
        print(f"parity: {skipped} of {len(specs)} runs already done, skipped", flush=True)
    running: dict[subprocess.Popen, tuple[RunSpec, float]] = {}
    failures: list[str] = []
    while todo or running:
        elsewhere = [s for s in todo if is_running(run_dir_of(root, s))]
        for spec in elsewhere:
            print(
                f"parity: {run_dir_of(root, spec).name} is being run by another parity.py: left to it",
                flush=True,
            )
            todo.remove(spec)
        busy = sum(is_running(d) for d in root.glob("*_s*")) - len(running)
        while todo and len(running) + busy < jobs:
            spec = todo.pop(0)
            run_dir = run_dir_of(root, spec)
            if is_done(run_dir, spec):  # finished meanwhile by another parity.py
                continue
            prepare(run_dir, spec)
            log = (run_dir / "log.txt").open("w")
            env = {**os.environ, **ONE_THREAD, "WANDB_MODE": "disabled"}
            proc = subprocess.Popen(
                launcher.command(spec, run_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=run_dir,
                start_new_session=True,
            )
            (run_dir / "pid").write_text(str(proc.pid))
            running[proc] = (spec, time.time())
            print(f"parity: {time.strftime('%H:%M:%S')} started {run_dir.name}", flush=True)
        time.sleep(5)
        for proc in [p for p in running if p.poll() is not None]:
            spec, start = running.pop(proc)
            run_dir = run_dir_of(root, spec)
            minutes = (time.time() - start) / 60
            if proc.returncode == 0 and (run_dir / "done.json").exists():
                print(
                    f"parity: {time.strftime('%H:%M:%S')} finished {run_dir.name} in {minutes:.1f} min",
                    flush=True,
                )
            else:
                failures.append(f"{run_dir.name} failed (exit {proc.returncode}): see {run_dir / 'log.txt'}")
                print(f"parity: {failures[-1]}", file=sys.stderr, flush=True)
    return failures
