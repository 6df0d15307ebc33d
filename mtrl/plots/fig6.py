"""Fig. 6: dormant neuron % over training per width; columns = task sets, rows = actor / critic."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from mtrl.plots._common import DORMANT_LABEL, NETWORK_TITLES, curve_figure, whole_network


def plot(table: pd.DataFrame) -> Figure:
    return curve_figure(
        whole_network(table, "fig6"),
        figure="fig6",
        title="Impact of scale on plasticity: dormant neurons over training",
        y="mean",
        ylabel=DORMANT_LABEL,
        row="network",
        row_titles=NETWORK_TITLES,
    )
