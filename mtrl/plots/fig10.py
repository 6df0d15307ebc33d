"""Fig. 10: depth 3 vs 4 (with / without skip connections) at the PaCo parameter count, MT10."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from mtrl.plots._common import SUCCESS_LABEL, curve_figure


def plot(table: pd.DataFrame) -> Figure:
    return curve_figure(
        table,
        figure="fig10",
        title="Effect of depth with the PaCo number of parameters",
        y="iqm",
        ylabel=SUCCESS_LABEL,
        ylim=(0, 100),
    )
