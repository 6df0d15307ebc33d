"""Fig. 12: critic parameter norm over training per width (MT10; joint norm of both critics)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from mtrl.plots._common import NORM_LABEL, curve_figure, whole_network


def plot(table: pd.DataFrame) -> Figure:
    return curve_figure(
        whole_network(table, "fig12"),
        figure="fig12",
        title="Critic parameter norms",
        y="mean",
        ylabel=NORM_LABEL,
    )
