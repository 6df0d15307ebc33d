"""Rule train: one run from its identity (params) and execution settings, resuming a stopped attempt."""

import sys
from pathlib import Path

from _adapter import fail, logged, stop_before_time_limit

with logged(snakemake.log[0]):
    from mtrl.run.stop_signals import early_stops

    with early_stops():  # a SIGTERM or SIGHUP from here on stops cleanly
        from mtrl.config.settings import TrainConfig
        from mtrl.run.diverged_record import earlier_divergence, record_divergence, record_path
        from mtrl.run.divergence import TrainingDiverged
        from mtrl.run.train import TrainingInterrupted, train
        from mtrl.study.grid import execution_settings

        run = snakemake.params.run  # the run's identity: its resolved settings less execution settings
        task_set, arch = run.get("task_set", TrainConfig.task_set), run.get("arch", TrainConfig.arch)
        execution = execution_settings(snakemake.config, task_set, arch)
        config = TrainConfig.from_dict({**run, **execution})  # resolved and validated, once
        resources = snakemake.config.get("train_resources", {})
        stop_before_time_limit(
            getattr(snakemake.resources, "runtime", None), resources.get("signal_minutes", 10)
        )
        run_dir = Path(snakemake.output[0]).parent
        diverged = earlier_divergence(run_dir, run, snakemake.params.code)
        if diverged:  # deterministic: another attempt would diverge at the same step
            fail(f"{diverged}; not retried (delete {record_path(run_dir)} to train it again)")
        try:
            train(
                config,
                run_dir,
                provenance=snakemake.params.code,
                restart_stale=True,  # a checkpoint of an older config or code version cannot be resumed
            )
        except TrainingDiverged as exc:
            record_divergence(run_dir, run, snakemake.params.code, str(exc))
            raise
        except TrainingInterrupted as exc:
            # stopped by a signal (SLURM's warning before its time limit): the resume checkpoint is
            # written; a non-zero exit makes Snakemake resubmit the job, which resumes from it
            print(f"mtrl: {exc}", file=sys.stderr)
            sys.exit(getattr(exc, "exit_code", 75))
