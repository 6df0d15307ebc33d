"""Figure name -> the table function that builds it and its arguments; `aggregate` builds one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mtrl.tables.plasticity import plasticity_curve, plasticity_final
from mtrl.tables.runs import RunRef
from mtrl.tables.success import success_curve, success_final
from mtrl.tables.table1 import table1

__all__ = ["FigureSpec", "FIGURES", "aggregate"]


@dataclass(frozen=True)
class FigureSpec:
    """How to build the table of one figure: `table(runs, reps=..., seed=..., **kwargs)`."""

    table: Callable[..., pd.DataFrame]
    kwargs: Mapping[str, Any]
    description: str


FIGURES: dict[str, FigureSpec] = {
    "fig1": FigureSpec(success_final, {}, "final IQM success vs parameters (MT10, MT50)"),
    "fig4": FigureSpec(success_curve, {}, "IQM success over training per width (MT10, MT50)"),
    "fig5": FigureSpec(success_curve, {}, "IQM success over training, actor/critic width pairs (MT10)"),
    "fig6": FigureSpec(
        plasticity_curve,
        {"metric": "dormant_pct_total", "tau": 0.1, "network": ("actor", "critic")},
        "dormant neuron % over training per width, actor and first critic (MT10, MT50)",
    ),
    "fig7": FigureSpec(
        plasticity_final,
        {"metric": "dormant_pct_total", "tau": 0.1, "network": ("actor", "critic")},
        "final dormant neuron % vs parameters per task set, actor and first critic (MT10, MT25, MT50)",
    ),
    "fig9": FigureSpec(success_curve, {}, "depth 3 vs 4, with/without skip, MOORE parameter count (MT10)"),
    "fig10": FigureSpec(success_curve, {}, "depth 3 vs 4, with/without skip, PaCo parameter count (MT10)"),
    "fig11": FigureSpec(
        plasticity_curve,
        {"metric": "param_norm", "tau": None, "network": "actor"},
        "actor parameter norm over training (MT10)",
    ),
    "fig12": FigureSpec(
        plasticity_curve,
        {"metric": "param_norm", "tau": None, "network": "critic"},
        "critic parameter norm (both critics jointly) over training (MT10)",
    ),
    "table1": FigureSpec(table1, {}, "SM / PaCo / MOORE: ours vs the paper and the publications"),
}


def aggregate(figure: str, runs: Sequence[RunRef], reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The table of `figure` (a key of FIGURES) from its runs, with the registry's default arguments."""
    if figure not in FIGURES:
        raise KeyError(f"unknown figure {figure!r}; one of {sorted(FIGURES)}")
    spec = FIGURES[figure]
    return spec.table(list(runs), reps=reps, seed=seed, **spec.kwargs)
