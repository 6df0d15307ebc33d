"""The statistics of the parity verdict, pure functions of arrays of per-run values.

`quartile_iqm` is the authors' figure statistic (rainx0r/mtrl plots/fig*.py): keep the runs whose
value lies between the first and third quartile (polars' default quantiles, bounds included) and
take their mean. The verdict's CIs are percentile bootstraps over runs, each side resampled on its
own (the two sides' runs are independent: seeds are not paired across RNGs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mtrl.tables.stats import quartile_kept

Statistic = Callable[[np.ndarray], float]


def quartile_iqm(values: np.ndarray) -> float:
    """Mean of the values between the first and third quartile, both included (the authors' IQM,
    `mtrl.tables.stats.quartile_kept`). Equal to `scipy.stats.trim_mean(values, 0.25)` for 4, 5, 8,
    9 ... distinct values; it keeps more where values tie at a quartile ([0, 0, 0, 1, 1]: all five,
    mean 0.4; trim_mean 0.33) and with 3, 7 or 11 values."""
    values = np.asarray(values, dtype=np.float64)
    return float(values[quartile_kept(values)].mean())


def mean(values: np.ndarray) -> float:
    return float(np.mean(values))


@dataclass(frozen=True)
class Difference:
    """statistic(ours) - statistic(authors) with its stratified percentile-bootstrap CI."""

    ours: float
    authors: float
    diff: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def difference(
    ours: np.ndarray, authors: np.ndarray, statistic: Statistic, reps: int, seed: int, level: float = 0.95
) -> Difference:
    """Difference of one statistic between the sides, each side's runs resampled separately."""
    ours, authors = np.asarray(ours, dtype=np.float64), np.asarray(authors, dtype=np.float64)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(ours), size=(reps, len(ours)))
    b = rng.integers(0, len(authors), size=(reps, len(authors)))
    diffs = np.array([statistic(ours[i]) - statistic(authors[j]) for i, j in zip(a, b, strict=True)])
    tail = (1 - level) / 2 * 100
    return Difference(
        ours=statistic(ours),
        authors=statistic(authors),
        diff=statistic(ours) - statistic(authors),
        low=float(np.percentile(diffs, tail)),
        high=float(np.percentile(diffs, 100 - tail)),
    )


def permutation_p(ours: np.ndarray, authors: np.ndarray, statistic: Statistic) -> float:
    """Exact two-sided permutation p-value of statistic(ours) - statistic(authors) over every split
    of the pooled runs into groups of the two sizes (5 + 5 runs: 252 splits; 8 + 8: 12,870)."""
    from itertools import combinations

    pooled = np.concatenate([ours, authors]).astype(np.float64)
    n = len(ours)
    observed = abs(statistic(np.asarray(ours)) - statistic(np.asarray(authors)))
    count = total = 0
    for chosen in combinations(range(len(pooled)), n):
        mask = np.zeros(len(pooled), dtype=bool)
        mask[list(chosen)] = True
        total += 1
        count += abs(statistic(pooled[mask]) - statistic(pooled[~mask])) >= observed - 1e-12
    return count / total
