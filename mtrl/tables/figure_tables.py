"""The table of one figure: the table function that the figure registry (`mtrl.figures`) names."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from mtrl.figures import FIGURES
from mtrl.tables.plasticity import plasticity_curve, plasticity_final
from mtrl.tables.runs import RunRef
from mtrl.tables.stats import check_statistic
from mtrl.tables.success import success_curve, success_final
from mtrl.tables.table1 import table1

__all__ = ["SUCCESS_TABLES", "TABLE_FUNCTIONS", "aggregate"]

TABLE_FUNCTIONS: dict[str, Callable[..., pd.DataFrame]] = {
    function.__name__: function
    for function in (success_final, success_curve, plasticity_curve, plasticity_final, table1)
}
# The table functions whose values are a success IQM: they take the config's `success_statistic`.
SUCCESS_TABLES = frozenset({"success_final", "success_curve", "table1"})


def aggregate(
    figure: str,
    runs: Sequence[RunRef],
    reps: int = 2000,
    seed: int = 0,
    statistic: str = "authors",
    extensions: Sequence[str] = (),
    x_placement: str = "published",
) -> pd.DataFrame:
    """The table of `figure` (a key of FIGURES) from its runs, with the registry's arguments.

    `statistic` is the success IQM of the success figures and Table 1 (`mtrl.tables.stats.STATISTICS`:
    "authors", the study's, "runs" or "pooled"); plasticity figures average over runs and ignore it.
    `extensions` (config `extensions`) replace the registry's table arguments by those the figure
    declares for them (e.g. `actor_dormancy`: the actor beside the first critic); `x_placement` is
    Fig. 1's ("published" or "own", `success_final`).
    """
    if figure not in FIGURES:
        raise KeyError(f"unknown figure {figure!r}; one of {sorted(FIGURES)}")
    check_statistic(statistic)
    entry = FIGURES[figure]
    args = dict(entry.table.args)
    for name in extensions:
        args.update(entry.extensions.get(name, {}))
    if entry.table.function in SUCCESS_TABLES:
        args["statistic"] = statistic
    if entry.table.function == "success_final":
        args["x_placement"] = x_placement
    return TABLE_FUNCTIONS[entry.table.function](list(runs), reps=reps, seed=seed, **args)
