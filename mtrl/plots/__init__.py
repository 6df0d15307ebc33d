"""Figures drawn from aggregate tables: `draw(figure, table, out_pdf)` writes out_pdf and a .png.

Which function draws a figure, and with what title, axes and labels, is declared in the figure
registry (`mtrl.figures.FIGURES`); the drawing code, shared by all figures, lives in `_common`.
Tables come from `mtrl.tables` (or its CSV files).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mtrl.figures import FIGURES, PLOTTED

PNG_DPI = 150


def draw(figure: str, table: pd.DataFrame, out_pdf: Path) -> tuple[Path, Path]:
    """Draw `figure` from its table into `out_pdf` and the same name with .png (150 dpi).

    Returns the (pdf, png) paths. table1 is a table, not a figure: use
    `mtrl.tables.table1_markdown`.
    """
    if figure not in PLOTTED:
        raise ValueError(f"no plot for {figure!r}; figures: {', '.join(PLOTTED)}")
    import matplotlib.pyplot as plt

    from mtrl.plots._common import curve_figure, params_figure

    plot = FIGURES[figure].plot
    function = {"curve_figure": curve_figure, "params_figure": params_figure}[plot.function]
    out_pdf = Path(out_pdf)
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    out_png = out_pdf.with_suffix(".png")
    fig = function(table, figure=figure, **plot.args)
    try:
        fig.savefig(out_pdf)
        fig.savefig(out_png, dpi=PNG_DPI)
    finally:
        plt.close(fig)
    return out_pdf, out_png
