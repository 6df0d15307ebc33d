"""Rule train: one run from its resolved config (params), resuming a killed attempt.

A stop signal (SIGTERM/SIGUSR1 from SLURM, SIGINT) ends the job at the next episode boundary with
the resume checkpoint written and exit code 75 (130 for SIGINT), so the attempt counts as failed
and a resubmission continues where it stopped.
"""

import sys
from pathlib import Path

from _adapter import logged

interrupted = None
with logged(snakemake.log[0]):
    from mtrl.config import TrainConfig
    from mtrl.train import TrainingInterrupted, train

    config = TrainConfig.from_dict(snakemake.params.config)
    try:
        train(
            config,
            Path(snakemake.output[0]).parent,
            provenance=snakemake.params.code,
            restart_stale=True,  # a checkpoint of an older config or code version cannot be resumed
        )
    except TrainingInterrupted as exc:
        print(f"mtrl: {exc}", file=sys.stderr, flush=True)
        interrupted = exc
if interrupted is not None:
    sys.exit(interrupted.exit_code)
