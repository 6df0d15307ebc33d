"""Rule table1: Table 1 as CSV and Markdown, published numbers beside ours."""

from pathlib import Path

import pandas as pd
from _adapter import logged

with logged(snakemake.log[0]):
    from mtrl.tables import table1_markdown

    table = pd.read_csv(snakemake.input[0])
    table.to_csv(snakemake.output.csv, index=False)
    Path(snakemake.output.md).write_text(table1_markdown(table))
