"""Figures drawn from aggregate tables: `draw(figure, table, out_pdf)` writes out_pdf and a .png.

Which function draws a figure, and with what title, axes and labels, is declared in the figure
registry (`mtrl.figures.FIGURES`); the drawing code, shared by all figures, lives in `_common`.
Tables come from `mtrl.tables` (or its CSV files).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    table, args = plot_inputs(table, plot.args)
    fig = function(table, figure=figure, **args)
    try:
        fig.savefig(out_pdf)
        fig.savefig(out_png, dpi=PNG_DPI)
    finally:
        plt.close(fig)
    return out_pdf, out_png


# the columns that tell one drawn curve from another in a curve table
CURVE_KEYS = ("panel", "label", "network", "layer")


def from_step(table: pd.DataFrame, first_step: int) -> pd.DataFrame:
    """Each curve's points from `first_step` on (the tables keep step 0; the authors' curves start at
    their first evaluation after warm-up). A curve that would keep fewer than two points (a toy
    config with one evaluation after step 0, e.g. the smoke) is drawn whole, so it stays a line."""
    if "step" not in table.columns:  # not a curve table: the plot names what it lacks
        return table
    keys = [c for c in CURVE_KEYS if c in table.columns]
    later = table["step"] >= first_step
    kept = later.groupby([table[k].astype(str) for k in keys], sort=False).transform("sum")
    return table[later | (kept < 2)]


def plot_inputs(table: pd.DataFrame, args: Mapping[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows a figure draws and its drawing arguments: curves from `first_step` on (`from_step`);
    an `xlabel` given per x_placement (Fig. 1) takes the table's."""
    args = dict(args)
    first_step = args.pop("first_step", None)
    if first_step is not None:
        table = from_step(table, first_step)
    if isinstance(args.get("xlabel"), Mapping):
        placements = list(dict.fromkeys(table["x_placement"])) if "x_placement" in table else ["own"]
        args["xlabel"] = " / ".join(args["xlabel"].get(str(p), str(p)) for p in placements)
    return table, args
