"""Rule probe: plasticity metrics of a run's checkpoints."""

from pathlib import Path

from _adapter import logged

with logged(snakemake.log[0]):
    from mtrl.probe import probe_run

    run_dir = Path(snakemake.input[0]).parent
    probe_run(run_dir, Path(snakemake.output[0]))
