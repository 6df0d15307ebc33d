"""The training job: loop, resume, stop signals, run directory, evaluator, probe checkpoints."""
