"""Rule figure: draw one figure from its table."""

from pathlib import Path

import pandas as pd
from _adapter import fail, logged

with logged(snakemake.log[0]):
    from mtrl.files.integrity import table_problem
    from mtrl.plots import draw

    if problem := table_problem(Path(snakemake.input[0])):
        fail(f"{snakemake.input[0]}: {problem}; rerun the workflow to make it again")
    draw(snakemake.wildcards.figure, pd.read_csv(snakemake.input[0]), Path(snakemake.output.pdf))
