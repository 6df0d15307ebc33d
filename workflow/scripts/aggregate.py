"""Rule aggregate: one figure's tidy table from its runs."""

from _adapter import logged

with logged(snakemake.log[0]):
    from mtrl.tables import RunRef, aggregate

    runs = [RunRef(**ref) for ref in snakemake.params.runs]
    table = aggregate(snakemake.wildcards.figure, runs, reps=snakemake.params.reps)
    table.to_csv(snakemake.output[0], index=False)
