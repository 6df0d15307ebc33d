"""Rule train: one run from its identity (params) and execution settings, resuming a stopped attempt."""

import sys
from pathlib import Path

from _adapter import logged, stop_before_time_limit

with logged(snakemake.log[0]):
    from mtrl.config.settings import TrainConfig
    from mtrl.run.train import TrainingInterrupted, train
    from mtrl.study.grid import execution_settings

    run = snakemake.params.run  # the run's identity: its resolved settings less execution settings
    task_set, arch = run.get("task_set", TrainConfig.task_set), run.get("arch", TrainConfig.arch)
    execution = execution_settings(snakemake.config, task_set, arch)
    config = TrainConfig.from_dict({**run, **execution})  # resolved and validated, once
    resources = snakemake.config.get("train_resources", {})
    stop_before_time_limit(getattr(snakemake.resources, "runtime", None), resources.get("signal_minutes", 10))
    try:
        train(
            config,
            Path(snakemake.output[0]).parent,
            provenance=snakemake.params.code,
            restart_stale=True,  # a checkpoint of an older config or code version cannot be resumed
        )
    except TrainingInterrupted as exc:
        # stopped by a signal (SLURM's warning before its time limit): the resume checkpoint is
        # written; a non-zero exit makes Snakemake resubmit the job, which resumes from it
        print(f"mtrl: {exc}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 75))
