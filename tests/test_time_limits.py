"""Time limits of the Snakemake runs in tests (tests/time_limits.py): sized from the work and the
load, and a run that hits one ends with one line saying how far it got."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests import time_limits
from tests.time_limits import Limit, limit_line, progress_of, run_limited

OUTPUT = """Job stats:
job      count
-----  -------
train       40
total       54

[Mon Dec  7 13:00:00 2026]
27 of 54 steps (50%) done
Error in rule probe:
"""


def test_the_limit_grows_with_the_jobs_and_the_load():
    limit = Limit(fixed_s=1200, per_job_s=60)
    assert limit.seconds(None, 0.5, 2) == 1200  # the jobs not known yet: the fixed limit
    assert limit.seconds(54, 0.5, 2) == 54 * 60
    assert limit.seconds(54, 7.0, 2) == 54 * 60 * 3.5
    assert limit.seconds(2, 0.0, 2) == 300  # at least floor_s
    assert Limit(fixed_s=300).seconds(54, 7.0, 2) == 300


def test_a_run_at_its_limit_says_in_one_line_how_far_it_got():
    assert progress_of(OUTPUT) == (27, 54, 1)
    assert progress_of("Job stats:\njob count\n----- -----\ntrain 3\ntotal 5\n") == (0, 5, 0)
    assert limit_line("snakemake --configfile config/smoke.yaml", 3240, OUTPUT, 7.04, 2) == (
        "snakemake --configfile config/smoke.yaml: stopped at its time limit of 3240 s with 27 of 54 jobs "
        "done, 1 failed; load average 7.0 on 2 cores (the limit grows with both)"
    )


def test_a_command_past_its_limit_is_stopped_with_its_children_and_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(time_limits, "POLL_S", 0.1)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('1 of 4 steps (25%) done', file=sys.stderr, flush=True)\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception) as failed:
        run_limited([sys.executable, "-c", script], tmp_path, dict(os.environ), Limit(60, 0.5, 1.0), "fake")
    assert time.monotonic() - started < 30
    assert str(failed.value) == (
        "fake: stopped at its time limit of 2 s with 1 of 4 jobs done, 0 failed; load average 0.0 on "
        f"{os.cpu_count()} cores (the limit grows with both)"
    )
    time.sleep(0.5)
    stat = Path(f"/proc/{pid_file.read_text()}/stat")  # the job it started went with it (gone, or a zombie)
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_command_within_its_limit_returns_its_output_and_exit_code(tmp_path):
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    proc = run_limited([sys.executable, "-c", script], tmp_path, dict(os.environ), Limit(60), "ok")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    assert list(tmp_path.iterdir()) == []
