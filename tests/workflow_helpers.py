"""Running Snakemake from tests: a private copy of the workflow, dry runs parsed into job counts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import yaml

from tests.time_limits import Limit, run_limited

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
COPIED = ("Snakefile", "workflow", "config", "mtrl", "envs", "profiles", "benchmarks/results/runtime.csv")


def copy_workflow(dest: Path) -> Path:
    """The workflow and package in `dest`, so a test may edit code and config without touching the repo."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    timeout: int = 1200,
    env: dict | None = None,
    per_job_s: float | None = None,
) -> subprocess.CompletedProcess:
    """Snakemake in `workdir`, with the `mtrl` there as the installed one (as `pip install -e` of that
    folder would make it): a test's edits to a copy's code are what the copy's jobs run and hash.
    Its time limit is `timeout` seconds, or with `per_job_s` that much per job of its DAG, stretched
    by the load (tests/time_limits.py); one that is hit fails the test in one line."""
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(workdir)}
    limit = Limit(fixed_s=timeout, per_job_s=per_job_s)
    proc = run_limited([SNAKEMAKE, *args], workdir, env, limit, f"snakemake {' '.join(args)}")
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def job_counts(output: str) -> dict[str, int]:
    """{rule: count} from Snakemake's 'Job stats' table (empty when there is nothing to do)."""
    if "Job stats" not in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        if match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def dry_run(workdir: Path, *args: str) -> dict[str, int]:
    proc = snakemake(workdir, *args, "--dry-run", "--quiet", "rules")  # options with nargs come first
    return job_counts(proc.stdout + proc.stderr)


def scheduled_train_runs(workdir: Path, *args: str) -> set[str]:
    """The run ids of the train jobs a dry run schedules."""
    proc = snakemake(workdir, *args, "--dry-run")
    jobs = (proc.stdout + proc.stderr).split("rule train:")[1:]
    return {re.search(r"wildcards: run=(\S+)", job).group(1) for job in jobs}


def comment_before(text: str, marker: str) -> str:
    """`text` with a comment line inserted above the first line holding `marker`."""
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if marker in line)
    return "".join(lines[:at] + ["# a comment, not code\n"] + lines[at:])


def edited_config(source: Path, dest: Path, edit) -> Path:
    """A copy of a YAML config after `edit(dict)` changed it in place."""
    data = yaml.safe_load(source.read_text())
    edit(data)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


@contextmanager
def edited_in_place(path: Path, edit):
    """`path` after `edit(dict)` changed it, for the block, then as it was: the same study (the one
    its results folder records, mtrl.study.status.check_results_owner) with its settings edited."""
    original = path.read_text()
    try:
        yield edited_config(path, path, edit)
    finally:
        path.write_text(original)
