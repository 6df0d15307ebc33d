"""Rule table1: Table 1 as CSV and Markdown, published numbers beside ours."""

from pathlib import Path

import pandas as pd
from _adapter import fail, logged

with logged(snakemake.log[0]):
    from mtrl.files.integrity import table_problem
    from mtrl.tables import table1_markdown

    if problem := table_problem(Path(snakemake.input[0])):
        fail(f"{snakemake.input[0]}: {problem}; rerun the workflow to make it again")
    table = pd.read_csv(snakemake.input[0])
    table.to_csv(snakemake.output.csv, index=False)
    Path(snakemake.output.md).write_text(table1_markdown(table))
