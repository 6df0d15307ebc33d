"""Fig. 1: final IQM success vs parameter count, one subplot per task set (MT10, MT50).

Drawn from a `success_final` table. Feed-forward (arch 'mtmhsac') series form the width-sweep
line with its CI band; MTRL architectures (SM, PaCo, MOORE) and feed-forward series whose name or
label contains 'matched' are drawn as separate markers with CI error bars.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from mtrl.plots._common import SUCCESS_LABEL, params_figure


def is_sweep(rows: pd.DataFrame) -> bool:
    """A feed-forward series that is not a set of matched points."""
    names = " ".join(str(v) for v in rows["series"].tolist() + rows["label"].tolist()).lower()
    archs = set(rows["arch"].astype(str).str.lower()) if "arch" in rows else {"mtmhsac"}
    return archs == {"mtmhsac"} and "matched" not in names


def plot(table: pd.DataFrame) -> Figure:
    return params_figure(
        table,
        figure="fig1",
        title="Scaling a feed-forward MTRL agent vs MTRL architectures: final IQM success",
        y="iqm",
        ylabel=SUCCESS_LABEL,
        is_line=is_sweep,
        ylim=(0, 100),
    )
