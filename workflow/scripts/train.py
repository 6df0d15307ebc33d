"""Rule train: one run from its resolved config (params), resuming a killed attempt."""

from pathlib import Path

from _adapter import logged

with logged(snakemake.log[0]):
    from mtrl.config import TrainConfig
    from mtrl.train import train

    config = TrainConfig.from_dict(snakemake.params.config)
    train(
        config,
        Path(snakemake.output[0]).parent,
        provenance=snakemake.params.code,
        restart_stale=True,  # a checkpoint of an older config or code version cannot be resumed
    )
