"""Fig. 7: final dormant neuron % vs parameter count, one line per task set; columns = networks.

Drawn from a `plasticity_final` table (whole-network rows); series are the task sets
(MT10, MT25, MT50).
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from mtrl.plots._common import DORMANT_LABEL, NETWORK_TITLES, params_figure, whole_network


def plot(table: pd.DataFrame) -> Figure:
    table = whole_network(table, "fig7")
    col = "network" if "network" in table.columns else "panel"
    return params_figure(
        table,
        figure="fig7",
        title="Dormant neurons vs parameters for different numbers of tasks",
        y="mean",
        ylabel=DORMANT_LABEL,
        col=col,
        col_titles=NETWORK_TITLES,
    )
