"""Aggregate statistics for the figures: the success IQM with bootstrap CIs, and mean CIs.

Conventions
-----------
* Success scores are arrays of shape (runs, tasks) or (runs, tasks, steps); each run is first
  reduced to its mean success over tasks (the authors' ``charts/mean_success_rate``), except for
  ``"pooled"``. Three statistics:

  - ``"authors"`` (the study's default: exactly what the authors' figure scripts draw,
    ``plots/fig1_new.py``, ``fig3.py``, ``fig5.py``): keep the runs whose value lies between the
    first and third quartile, inclusive, where the quartiles are polars' default
    ``quantile(q)`` ('nearest': the sorted value at index round((n - 1) q), halves rounded away
    from zero), and take their mean; the 95 % CI is Vega-Lite's ``extent="ci"`` band: a
    percentile bootstrap of the mean of the kept runs (resampled with replacement, 1000
    replicates in Vega, linearly interpolated percentiles). It equals ``trim_mean(x, 0.25)``
    except with tied values or 3, 7 or 11 runs (7 runs 0.1 ... 0.7: 0.45, trim_mean 0.40).
  - ``"runs"`` (an option): the IQM over runs, ``scipy.stats.trim_mean(run_means, 0.25)`` (the
    authors' unused helper ``iqm`` in ``plots/get_data.py``), with rliable's percentile
    bootstrap CI of that IQM (``rliable.library.get_interval_estimates``, runs resampled).
  - ``"pooled"`` (an option): the IQM of Agarwal et al. (2021) over *all* run x task scores pooled
    (``rliable.metrics.aggregate_iqm``: ``trim_mean(scores, 0.25, axis=None)``), with rliable's
    stratified bootstrap (runs resampled within each task). On MT10 it trims whole unsolved and
    solved tasks, so it is a different number.

* Curves: every success statistic is computed at each step on its own (``"authors"`` keeps each
  step's own runs) and resampled independently per step, as the authors' per-step error bands
  (and rliable's sample-efficiency curves) are. `mean_ci` resamples whole runs, the same indices
  at every step: each step's interval is the same percentile bootstrap of that step's mean (only
  the dependence between steps differs).
* Plasticity scalars (dormant %, parameter norms, ...) are one number per run, and only 2-10 runs
  exist per configuration; the authors' figures plot their plain mean over runs, so `mean_ci`
  reports that mean with a percentile bootstrap CI over runs.
* Everything is deterministic given `seed`. rliable draws its resampling indices from NumPy's
  *global* legacy RNG, so the global state is seeded for the duration of the call and then
  restored; callers' random streams are unaffected.
* With a single run every bootstrap replicate equals the data, so the CI collapses to the point
  estimate; this is returned directly, without bootstrapping and without warnings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import scipy.stats

__all__ = [
    "STATISTICS",
    "authors_ci",
    "check_statistic",
    "iqm",
    "iqm_ci",
    "iqm_curve",
    "mean_ci",
    "quartile_kept",
    "run_iqm",
    "success_ci",
    "success_curve_ci",
]

# "authors": mean of the runs between polars' quartiles, Vega's bootstrap CI (the study's default);
# "runs": trim_mean(0.25) over runs with rliable's CI; "pooled": rliable's IQM over runs x tasks
STATISTICS = ("authors", "runs", "pooled")


def _rliable() -> tuple[Any, Any]:
    """Return the modules `(rliable.library, rliable.metrics)`, imported on first use (they are slow)."""
    import rliable.library as library
    import rliable.metrics as metrics

    return library, metrics


@contextlib.contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    """Seed NumPy's global legacy RNG (used by rliable's bootstrap) and restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _check(scores: np.ndarray, ndim: int, name: str) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.size == 0:
        raise ValueError(f"{name}: need at least one run and one task, got shape {arr.shape}")
    return arr


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all scores pooled (rliable's `aggregate_iqm`: trim_mean 0.25, axis=None)."""
    return float(scipy.stats.trim_mean(np.asarray(scores, dtype=np.float64), 0.25, axis=None))


def _iqm_per_step(scores: np.ndarray) -> np.ndarray:
    """IQM over runs x tasks separately for each step of a (runs, tasks, steps) array."""
    flat = scores.reshape(-1, scores.shape[-1])
    return np.asarray(scipy.stats.trim_mean(flat, 0.25, axis=0), dtype=np.float64)


def _interval(
    scores: np.ndarray, func: Callable[[np.ndarray], np.ndarray], reps: int, seed: int, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point estimate and percentile stratified-bootstrap CI of `func` via rliable."""
    point = np.asarray(func(scores), dtype=np.float64)
    if scores.shape[0] == 1:  # every replicate equals the data
        return point, point.copy(), point.copy()
    library, _ = _rliable()
    with _seeded_global_rng(seed):
        _, intervals = library.get_interval_estimates(
            {"x": scores}, func, method="percentile", reps=reps, confidence_interval_size=confidence
        )
    ci = np.asarray(intervals["x"], dtype=np.float64)  # (2, ...) lower / upper
    lo, hi = ci[0], ci[1]
    # percentile CIs of a trimmed mean always bracket it up to float noise; make that exact
    return point, np.minimum(lo, point), np.maximum(hi, point)


def iqm_ci(
    scores: np.ndarray, reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Pooled IQM of a (runs, tasks) score matrix (all runs x tasks) and its stratified-bootstrap CI.

    Args:
        scores: (runs, tasks) array, e.g. final success rates in [0, 1].
        reps: bootstrap replicates.
        seed: seed of the resampling; same seed, same interval.
        confidence: coverage of the interval (0.95 -> 2.5 % and 97.5 % percentiles).

    Returns:
        (iqm, ci_low, ci_high). With one run the interval collapses to the point.
    """
    arr = _check(scores, 2, "iqm_ci")
    metric = _rliable()[1].aggregate_iqm if arr.shape[0] > 1 else iqm

    def func(x: np.ndarray) -> np.ndarray:
        return np.array([metric(x)])

    point, lo, hi = _interval(arr, func, reps, seed, confidence)
    return float(point[0]), float(lo[0]), float(hi[0])


def iqm_curve(
    scores: np.ndarray, reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled IQM over runs x tasks at every step of a (runs, tasks, steps) array, with CIs.

    Uses rliable's batched form: one stratified bootstrap over the whole 3-d array with an
    aggregate function that returns one IQM per step (rliable's sample-efficiency-curve recipe).

    Returns:
        (iqm, ci_low, ci_high), each of shape (steps,).
    """
    arr = _check(scores, 3, "iqm_curve")
    return _interval(arr, _iqm_per_step, reps, seed, confidence)


def check_statistic(statistic: str) -> None:
    """Raise ValueError unless `statistic` is one of STATISTICS."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")


def run_iqm(values: np.ndarray) -> Any:
    """IQM over runs (axis 0): `trim_mean(values, 0.25, axis=0)`, the authors' `iqm` (plots/get_data.py).

    values: (runs,) -> float; (runs, steps) -> (steps,) array.
    """
    out = scipy.stats.trim_mean(np.asarray(values, dtype=np.float64), 0.25, axis=0)
    return float(out) if np.ndim(out) == 0 else np.asarray(out, dtype=np.float64)


def quartile_kept(values: np.ndarray) -> np.ndarray:
    """Mask of the values between the first and third quartile, inclusive, as the authors' figures
    keep runs: polars' default `quantile(q)` ('nearest': the sorted value at index round((n - 1) q),
    halves rounded away from zero as Rust's `f64::round`, not to even as NumPy's 'nearest')."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"quartile_kept: expected a non-empty 1-d array of finite values, got {arr!r}")
    ordered = np.sort(arr)
    q1, q3 = (ordered[int(np.floor((arr.size - 1) * q + 0.5))] for q in (0.25, 0.75))
    return (arr >= q1) & (arr <= q3)


def authors_ci(
    values: np.ndarray, reps: int = 1000, seed: int | Sequence[int] = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """The authors' figure statistic of per-run values: the mean of the runs `quartile_kept` keeps,
    and the percentile bootstrap CI of that mean over the kept runs (Vega-Lite's `extent="ci"`:
    1000 resamples of the kept runs, percentiles interpolated linearly as d3's `quantile`)."""
    arr = np.asarray(values, dtype=np.float64)
    point, lo, hi = mean_ci(arr[quartile_kept(arr)], reps=reps, seed=seed, confidence=confidence)
    return float(point), float(lo), float(hi)


def _authors_curve(
    values: np.ndarray, reps: int, seed: int, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`authors_ci` at each step of a (runs, steps) array, each step kept and resampled on its own."""
    rows = [authors_ci(values[:, j], reps, (seed, j), confidence) for j in range(values.shape[1])]
    point, lo, hi = (np.array(column, dtype=np.float64) for column in zip(*rows, strict=True))
    return point, lo, hi


def _run_iqm_of_task_means(means: np.ndarray) -> np.ndarray:
    """IQM over runs of a (runs, 1) or (runs, 1, steps) array of task means, as a 1-d array."""
    return np.atleast_1d(np.asarray(run_iqm(means[:, 0]), dtype=np.float64))


def success_ci(
    scores: np.ndarray, statistic: str = "authors", reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """The success IQM of a (runs, tasks) matrix of final success rates, with its bootstrap CI.

    statistic "authors" (default, the study's): `authors_ci` of each run's mean over tasks; "runs":
    trim_mean(0.25) over the run means, rliable's CI from resampling runs; "pooled": `iqm_ci` (IQM
    over all runs x tasks, stratified bootstrap). Returns (iqm, ci_low, ci_high); one run: the
    interval collapses to the point.
    """
    check_statistic(statistic)
    arr = _check(scores, 2, "success_ci")
    if statistic == "pooled":
        return iqm_ci(arr, reps=reps, seed=seed, confidence=confidence)
    if statistic == "authors":
        return authors_ci(arr.mean(axis=1), reps=reps, seed=seed, confidence=confidence)
    means = arr.mean(axis=1, keepdims=True)  # (runs, 1): one stratum, so runs are resampled
    point, lo, hi = _interval(means, _run_iqm_of_task_means, reps, seed, confidence)
    return float(point[0]), float(lo[0]), float(hi[0])


def success_curve_ci(
    scores: np.ndarray, statistic: str = "authors", reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`success_ci` at every step of a (runs, tasks, steps) array: (iqm, ci_low, ci_high), each (steps,).

    Every statistic is taken at each step on its own, its runs resampled independently per step
    (the authors' per-step bands, rliable's sample-efficiency curves); "pooled": `iqm_curve`.
    """
    check_statistic(statistic)
    arr = _check(scores, 3, "success_curve_ci")
    if statistic == "pooled":
        return iqm_curve(arr, reps=reps, seed=seed, confidence=confidence)
    if statistic == "authors":
        return _authors_curve(arr.mean(axis=1), reps, seed, confidence)
    means = arr.mean(axis=1, keepdims=True)  # (runs, 1, steps)
    return _interval(means, _run_iqm_of_task_means, reps, seed, confidence)


def mean_ci(
    values: np.ndarray, reps: int = 2000, seed: int | Sequence[int] = 0, confidence: float = 0.95
) -> tuple[Any, Any, Any]:
    """Mean over runs with a percentile bootstrap CI (resampling runs with replacement).

    Meant for per-run scalars such as plasticity metrics, which the authors' figures average over
    runs (see the module docstring).

    Args:
        values: (runs,) or (runs, steps). For curves, each replicate resamples whole runs
            (the same run indices at every step), keeping each run's curve intact.
        reps, seed, confidence: as in `iqm_ci`; `seed` may be a sequence (e.g. (seed, step)).

    Returns:
        (mean, ci_low, ci_high): floats for (runs,) input, (steps,) arrays for (runs, steps).
        One run: the interval collapses to the point.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[0] < 1:
        raise ValueError(f"mean_ci: expected (runs,) or (runs, steps) with runs >= 1, got {arr.shape}")
    point = arr.mean(axis=0)
    if arr.shape[0] == 1:
        lo, hi = point.copy(), point.copy()
    else:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, arr.shape[0], size=(reps, arr.shape[0]))
        boot = arr[idx].mean(axis=1)  # (reps,) or (reps, steps)
        alpha = (1.0 - confidence) / 2.0
        lo, hi = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
        lo, hi = np.minimum(lo, point), np.maximum(hi, point)
    if arr.ndim == 1:
        return float(point), float(lo), float(hi)
    return point, np.asarray(lo), np.asarray(hi)
