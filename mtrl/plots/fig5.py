"""Fig. 5: MT10 IQM success over training for actor/critic width pairs."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from mtrl.plots._common import SUCCESS_LABEL, curve_figure


def plot(table: pd.DataFrame) -> Figure:
    return curve_figure(
        table,
        figure="fig5",
        title="Where does scale matter most? Actor / critic widths",
        y="iqm",
        ylabel=SUCCESS_LABEL,
        ylim=(0, 100),
    )
