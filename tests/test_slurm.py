"""The pipeline through a real SLURM (tests/slurm/start-cluster.sh): jobs really go through sbatch,
a cancelled training job is resubmitted and resumes to the uninterrupted result, a bad config
stops before anything is submitted. Skipped where no SLURM answers; `.ci/run` starts one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest
import yaml

from mtrl.grid import build_grid
from mtrl.provenance import identity
from mtrl.train import train
from tests.test_train import h5_contents
from tests.workflow_helpers import ROOT, copy_workflow, edited_config, snakemake

SLURM_ARGS = [
    "--profile",
    "profiles/slurm",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
]


def slurm_up() -> bool:
    if not shutil.which("sinfo") or not shutil.which("sacct"):
        return False
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    return ping.returncode == 0 and "UP" in ping.stdout


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(
        not slurm_up(), reason="no SLURM controller answers (run tests/slurm/start-cluster.sh)"
    ),
]


def sacct_states(job_ids: set[str]) -> dict[str, str]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", ",".join(sorted(job_ids)), "--format=JobID,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("|", 1) for line in out.strip().splitlines())


def slurm_job_ids(log_dir) -> dict[str, str]:
    """{log file: SLURM job id} from the job logs (the rule scripts log the SLURM_JOB_ID they run under)."""
    found = {}
    for path in log_dir.rglob("*.log"):
        match = re.search(r"SLURM job (\d+)", path.read_text())
        found[str(path)] = match.group(1) if match else ""
    return found


def test_smoke_train_and_probe_jobs_ran_as_slurm_jobs(smoke):
    if os.environ.get("MTRL_TEST_SLURM") != "1":
        pytest.skip("the smoke pipeline ran on the local profile (set MTRL_TEST_SLURM=1 to run it via SLURM)")
    workdir, _ = smoke
    logs = workdir / "results" / "smoke" / "logs"
    for rule, expected in (("train", 24), ("probe", 7)):
        ids = slurm_job_ids(logs / rule)
        assert len(ids) == expected, rule
        assert all(ids.values()), [log for log, job in ids.items() if not job]
        states = sacct_states(set(ids.values()))
        assert set(states.values()) == {"COMPLETED"}, states
    slurm_logs = list((workdir / ".snakemake" / "slurm_logs" / "rule_train").rglob("*.log"))
    assert len(slurm_logs) == 24  # one sbatch log per training job, named by its job id
    assert (workdir / "figures" / "smoke" / "fig7.png").exists()


def _resume_config(workdir):
    def one_short_run(config):
        config["seeds"] = [0]
        config["task_set_defaults"]["mt1"] = {
            "total_steps": 6000,
            "checkpoint_every": 500,
            "eval_every": 3000,
            "log_every": 500,
            "warmup_steps_per_task": 500,
            "probe_checkpoints": 2,
        }
        config["figures"] = {"fig4": [{"panel": "MT1", "series": "width 32", "task_set": "mt1", "width": 32}]}

    return edited_config(workdir / "config" / "smoke.yaml", workdir / "resume.yaml", one_short_run)


def test_cancelled_training_job_is_resubmitted_and_resumes_to_the_same_result(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    config_file = _resume_config(workdir)
    run = "mt1-reach/mtmhsac/a32-c32-d3/s0"
    target = f"results/smoke/runs/{run}/train.h5"  # relative, as the rule's output is
    run_dir = workdir / "results" / "smoke" / "runs" / run
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "snakemake") if (ROOT / ".venv").exists() else "snakemake",
            target,  # before the options: --configfile takes every word after it
            *SLURM_ARGS,
            "--configfile",
            str(config_file),
        ],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 600
    while not (run_dir / "checkpoints" / "resume.pt").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no resume checkpoint appeared"
        time.sleep(0.5)
    queue = subprocess.run(["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True, check=True).stdout
    job = next(line.split()[0] for line in queue.splitlines() if "rule_train" in line)
    subprocess.run(["scancel", job], check=True)
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output
    assert re.search(rf"SLURM-job '{job}' failed", output), output[-3000:]
    # one sbatch log per attempt: the cancelled job and its retry, which resumed from the checkpoint
    attempts = sorted(
        path.stem for path in (workdir / ".snakemake" / "slurm_logs" / "rule_train").rglob("*.log")
    )
    assert len(attempts) == 2 and job in attempts, attempts
    log = (workdir / "results" / "smoke" / "logs" / "train" / f"{run}.log").read_text()
    retry = next(a for a in attempts if a != job)
    assert f"SLURM job {retry}" in log and "resumed" in log, log

    study = yaml.safe_load(config_file.read_text())
    reference = train(build_grid(study).runs[run], tmp_path / "reference", quiet=True)
    # the same result; only the provenance differs (the workflow records its code hash)
    want, got = (
        {k: v for k, v in h5_contents(path).items() if not k.startswith("@provenance")}
        for path in (reference, run_dir / "train.h5")
    )
    assert want.keys() == got.keys()
    # the recorded config holds execution settings too (the job's from the workflow's *_defaults):
    # the run is the same when its identity is
    configs = [json.loads(str(d.pop("@config"))) for d in (want, got)]
    assert identity(configs[0]) == identity(configs[1])
    for key in want:
        np.testing.assert_array_equal(want[key], got[key], err_msg=key)


def test_bad_config_fails_once_before_any_submission(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    bad = edited_config(
        workdir / "config" / "smoke.yaml",
        workdir / "bad.yaml",
        lambda c: c["figures"]["fig4"][0].update(width=[16, -8]),
    )
    before = subprocess.run(
        ["sacct", "-n", "-X", "-o", "JobID"], capture_output=True, text=True
    ).stdout.split()
    proc = snakemake(workdir, *SLURM_ARGS, "--configfile", str(bad), check=False, timeout=300)
    after = subprocess.run(
        ["sacct", "-n", "-X", "-o", "JobID"], capture_output=True, text=True
    ).stdout.split()
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "width" in text and "fig4" in text and "Traceback" not in text
    assert before == after  # nothing reached SLURM, so nothing can be retried
