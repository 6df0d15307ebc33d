"""Rule figure: draw one figure from its table."""

from pathlib import Path

import pandas as pd
from _adapter import logged

with logged(snakemake.log[0]):
    from mtrl.plots import draw

    draw(snakemake.wildcards.figure, pd.read_csv(snakemake.input[0]), Path(snakemake.output.pdf))
