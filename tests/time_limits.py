"""A Snakemake run in a test with a time limit sized from its work: `per_job_s` seconds per job of its
DAG (read from its own "N of M steps" lines), stretched by the machine's load; when the limit is hit,
the whole process group is stopped and the test fails with one line saying what happened."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

STEPS = re.compile(r"(\d+) of (\d+) steps \(\d+%\) done")
POLL_S = 2.0


@dataclass(frozen=True)
class Limit:
    """`per_job_s` seconds per job, at least `floor_s`; `fixed_s` instead when the job count is not
    known (a dry run, a command that prints no step lines)."""

    fixed_s: float
    per_job_s: float | None = None
    floor_s: float = 300.0

    def seconds(self, jobs: int | None, load: float, cores: int) -> float:
        if self.per_job_s is None or not jobs:
            return self.fixed_s
        return max(self.floor_s, jobs * self.per_job_s) * max(1.0, load / cores)


def progress_of(output: str) -> tuple[int, int | None, int]:
    """(jobs done, jobs in the DAG or None, jobs failed) from Snakemake's output so far."""
    steps = STEPS.findall(output)
    done, total = (int(steps[-1][0]), int(steps[-1][1])) if steps else (0, None)
    if total is None and (found := re.search(r"^total\s+(\d+)\s*$", output, re.M)):
        total = int(found.group(1))
    return done, total, len(re.findall(r"^Error in rule ", output, re.M))


def limit_line(what: str, limit_s: float, output: str, load: float, cores: int) -> str:
    """What a run that hit its time limit had done, in one line."""
    done, total, failed = progress_of(output)
    return (
        f"{what}: stopped at its time limit of {limit_s:.0f} s with {done} of {total or '?'} jobs done, "
        f"{failed} failed; load average {load:.1f} on {cores} cores (the limit grows with both)"
    )


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole process group (Snakemake and its jobs), SIGKILL after 30 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_limited(cmd: list[str], cwd: Path, env: dict, limit: Limit, what: str) -> subprocess.CompletedProcess:
    """`cmd` to its end or to its limit; at the limit its process group is stopped and the test fails
    in one line (`limit_line`). Output goes through files, read as it grows (Snakemake's step lines
    are on stderr)."""
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="mtrl-test-run-") as tmp:
        out_path, err_path = Path(tmp) / "out", Path(tmp) / "err"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True)
            started, sized = time.monotonic(), 0.0
            while proc.poll() is None:
                time.sleep(POLL_S)
                output, load = err_path.read_text(errors="replace"), os.getloadavg()[0]
                jobs = progress_of(output)[1]
                if jobs and limit.per_job_s is not None:  # sized from the work: never shrinks with the load
                    sized = max(sized, limit.seconds(jobs, load, cores))
                limit_s = sized or limit.fixed_s
                if time.monotonic() - started > limit_s:
                    _stop(proc)
                    output = err_path.read_text(errors="replace") + out_path.read_text(errors="replace")
                    pytest.fail(limit_line(what, limit_s, output, load, cores), pytrace=False)
        stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
