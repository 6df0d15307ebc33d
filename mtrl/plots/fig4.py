"""Fig. 4: IQM success over training per width (one subplot per task set), 95 % CIs."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from mtrl.plots._common import SUCCESS_LABEL, curve_figure


def plot(table: pd.DataFrame) -> Figure:
    return curve_figure(
        table,
        figure="fig4",
        title="Extended scaling: IQM success over training per width (95% CIs)",
        y="iqm",
        ylabel=SUCCESS_LABEL,
        ylim=(0, 100),
    )
