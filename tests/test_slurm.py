"""The pipeline through a real SLURM (tests/slurm/start-cluster.sh): jobs really go through sbatch,
a cancelled training job is resubmitted and resumes to the uninterrupted result, a run longer than
its 1-minute time limit finishes over several jobs to the same result, a bad config stops before
anything is submitted. Skipped where no SLURM answers; `.ci/run` starts one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from types import SimpleNamespace

import pytest
import yaml

from mtrl.files.provenance import identity
from mtrl.run.train import train
from mtrl.study.grid import build_grid
from tests.test_train import assert_same_contents, h5_contents
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
    for rule, expected in (("train", 26), ("probe", 7)):
        ids = slurm_job_ids(logs / rule)
        assert len(ids) == expected, rule
        assert all(ids.values()), [log for log, job in ids.items() if not job]
        states = sacct_states(set(ids.values()))
        assert set(states.values()) == {"COMPLETED"}, states
    slurm_logs = list((workdir / ".snakemake" / "slurm_logs" / "rule_train").rglob("*.log"))
    assert len(slurm_logs) == 26  # one sbatch log per training job, named by its job id
    assert (workdir / "figures" / "smoke" / "fig7.png").exists()


RUN = "mt1-reach/mtmhsac/a32-c32-d3/s0"  # the one run of _resume_config


def _resume_config(workdir, **train_resources):
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
        config["train_resources"].update(train_resources)

    return edited_config(workdir / "config" / "smoke.yaml", workdir / "resume.yaml", one_short_run)


def start_snakemake(workdir, config_file) -> subprocess.Popen:
    target = f"results/smoke/runs/{RUN}/train.h5"  # relative, as the rule's output is
    return subprocess.Popen(
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


def cancel_first_checkpointed_job(workdir, proc) -> str:
    """scancel the training job of `workdir` once it wrote its first resume checkpoint; its id."""
    resume = workdir / "results" / "smoke" / "runs" / RUN / "checkpoints" / "resume.pt"
    deadline = time.time() + 600
    while not resume.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no resume checkpoint appeared"
        time.sleep(0.5)
    job = next(iter(training_jobs(workdir)))
    subprocess.run(["scancel", job], check=True)
    return job


def training_jobs(workdir) -> list[str]:
    """Ids of the queued or running training jobs submitted from `workdir`."""
    queue = subprocess.run(["squeue", "-h", "-o", "%i|%k|%Z"], capture_output=True, text=True, check=True)
    jobs = [line.split("|") for line in queue.stdout.splitlines()]
    return [job for job, comment, cwd in jobs if comment.startswith("rule_train") and cwd == str(workdir)]


@pytest.fixture(scope="module")
def interrupted_runs(tmp_path_factory):
    """One short run trained three ways at once (they overlap on the cluster's two CPUs): through
    SLURM with its first job cancelled, through SLURM with 1-minute job limits (the rule script asks
    the trainer to stop 45 s in), and in one go outside the workflow: the reference."""
    cancelled = copy_workflow(tmp_path_factory.mktemp("cancelled"))
    limited = copy_workflow(tmp_path_factory.mktemp("limited"))
    limits = {"max_runtime_minutes": 1, "signal_minutes": 0.75, "extra_attempts": 8}
    procs = {
        "cancelled": start_snakemake(cancelled, _resume_config(cancelled)),
        "limited": start_snakemake(limited, _resume_config(limited, **limits)),
    }
    try:
        job = cancel_first_checkpointed_job(cancelled, procs["cancelled"])
        study = yaml.safe_load(_resume_config(cancelled).read_text())
        reference = train(build_grid(study).runs[RUN], tmp_path_factory.mktemp("reference"), quiet=True)
        outputs = {name: proc.communicate(timeout=900)[0] for name, proc in procs.items()}
    finally:  # a test that failed half-way leaves no Snakemake and no SLURM job behind
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        for workdir in (cancelled, limited):
            for job in training_jobs(workdir):
                subprocess.run(["scancel", job], check=False)
    return SimpleNamespace(
        reference=reference,
        cancelled=SimpleNamespace(workdir=cancelled, job=job, code=procs["cancelled"].returncode),
        limited=SimpleNamespace(workdir=limited, code=procs["limited"].returncode),
        outputs=outputs,
    )


def sbatch_attempts(workdir) -> list[str]:
    """SLURM job ids of the training job's attempts, in submission order (one sbatch log each)."""
    logs = (workdir / ".snakemake" / "slurm_logs" / "rule_train").rglob("*.log")
    return sorted((path.stem for path in logs), key=int)


def assert_same_result(reference, workdir) -> None:
    # the same result; only the provenance differs (the workflow records its code hash)
    want, got = (
        {k: v for k, v in h5_contents(path).items() if not k.startswith("@provenance")}
        for path in (reference, workdir / "results" / "smoke" / "runs" / RUN / "train.h5")
    )
    assert_same_contents(want, got, ignore=("@config",))
    # the recorded config holds execution settings too (the job's from the workflow's *_defaults):
    # the run is the same when its identity is
    configs = [json.loads(str(d["@config"])) for d in (want, got)]
    assert identity(configs[0]) == identity(configs[1])


def test_cancelled_training_job_is_resubmitted_and_resumes_to_the_same_result(interrupted_runs):
    run, output = interrupted_runs.cancelled, interrupted_runs.outputs["cancelled"]
    assert run.code == 0, output[-5000:]
    assert re.search(rf"SLURM-job '{run.job}' failed", output), output[-3000:]
    # one sbatch log per attempt: the cancelled job and its retry, which resumed from the checkpoint
    attempts = sbatch_attempts(run.workdir)
    assert len(attempts) == 2 and run.job in attempts, attempts
    log = (run.workdir / "results" / "smoke" / "logs" / "train" / f"{RUN}.log").read_text()
    retry = next(a for a in attempts if a != run.job)
    assert f"SLURM job {retry}" in log and "resumed" in log, log
    assert_same_result(interrupted_runs.reference, run.workdir)


def test_a_run_longer_than_its_time_limit_finishes_over_several_slurm_jobs(interrupted_runs):
    """Each job gets sbatch -t 1 (max_runtime_minutes); 45 s before it, the rule script asks the
    trainer to stop: it writes its resume checkpoint at the episode boundary and the job fails (75);
    Snakemake resubmits and the next job resumes, until the run is done, with the uninterrupted result."""
    run, output = interrupted_runs.limited, interrupted_runs.outputs["limited"]
    assert run.code == 0, output[-5000:]
    attempts = sbatch_attempts(run.workdir)
    assert len(attempts) >= 2, attempts
    accounting = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", ",".join(attempts), "--format=JobID,State,Timelimit"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = {job: (state, limit) for job, state, limit in (line.split("|") for line in accounting.split())}
    assert {limit for _, limit in jobs.values()} == {"00:01:00"}, jobs  # no job asked for more
    assert [jobs[job][0] for job in attempts] == ["FAILED"] * (len(attempts) - 1) + ["COMPLETED"], jobs
    # each job's own log (sbatch's; Snakemake empties the rule's log when it retries a job)
    logs = run.workdir / ".snakemake" / "slurm_logs" / "rule_train"
    text = {job: next(logs.rglob(f"{job}.log")).read_text() for job in attempts}
    stops = [re.findall(r"SIGUSR1 received: stopped at step (\d+)", text[job]) for job in attempts]
    resumes = [re.findall(r"resumed \S+ at step (\d+)", text[job]) for job in attempts]
    for job in attempts[:-1]:
        assert "time limit in 0.75 min: asking the trainer to stop" in text[job], text[job]
    # one stop in every job but the last, and each next job resumed exactly there: at most one
    # episode of work lost per limit
    assert [len(found) for found in stops] == [1] * (len(attempts) - 1) + [0], stops
    assert resumes == [[]] + stops[:-1], (stops, resumes)
    assert_same_result(interrupted_runs.reference, run.workdir)


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
