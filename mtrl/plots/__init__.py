"""Figures drawn from aggregate tables: `draw(figure, table, out_pdf)` writes out_pdf and a .png.

One small module per figure (`fig1`, `fig4`, ...), each with `plot(table) -> Figure`; shared
drawing code lives in `_common`. Tables come from `mtrl.tables` (or its CSV files).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd

FIGURE_MODULES = ("fig1", "fig4", "fig5", "fig6", "fig7", "fig9", "fig10", "fig11", "fig12")
PNG_DPI = 150


def draw(figure: str, table: pd.DataFrame, out_pdf: Path) -> tuple[Path, Path]:
    """Draw `figure` from its table into `out_pdf` and the same name with .png (150 dpi).

    Returns the (pdf, png) paths. table1 is a table, not a figure: use
    `mtrl.tables.table1_markdown`.
    """
    if figure not in FIGURE_MODULES:
        raise ValueError(f"no plot for {figure!r}; figures: {', '.join(FIGURE_MODULES)}")
    module = importlib.import_module(f"mtrl.plots.{figure}")
    import matplotlib.pyplot as plt

    out_pdf = Path(out_pdf)
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    out_png = out_pdf.with_suffix(".png")
    fig = module.plot(table)
    try:
        fig.savefig(out_pdf)
        fig.savefig(out_png, dpi=PNG_DPI)
    finally:
        plt.close(fig)
    return out_pdf, out_png
