"""Aggregate statistics for the figures: IQM with stratified-bootstrap CIs (rliable) and mean CIs.

Conventions
-----------
* Success scores are arrays of shape (runs, tasks) or (runs, tasks, steps); the aggregate is the
  interquartile mean (IQM) of Agarwal et al. (2021) as implemented by
  `rliable.metrics.aggregate_iqm`: `scipy.stats.trim_mean(scores, 0.25, axis=None)`, i.e. the mean
  of the middle 50 % of *all* run x task scores pooled together.
* Confidence intervals are percentile stratified-bootstrap intervals
  (`rliable.library.get_interval_estimates`): each replicate resamples runs with replacement
  independently within each task (and, for curves, within each task and step, as rliable does for
  its sample-efficiency curves).
* Plasticity scalars (dormant %, parameter norms, ...) are one number per run, and only 2-10 runs
  exist per configuration. An IQM over that few values trims away most of the data (with 4 runs it
  is the mean of the middle 2), so for them `mean_ci` reports the plain mean over runs with a
  percentile bootstrap CI over runs instead.
* Everything is deterministic given `seed`. rliable draws its resampling indices from NumPy's
  *global* legacy RNG, so the global state is seeded for the duration of the call and then
  restored; callers' random streams are unaffected.
* With a single run every bootstrap replicate equals the data, so the CI collapses to the point
  estimate; this is returned directly, without bootstrapping and without warnings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.stats

__all__ = ["iqm", "iqm_ci", "iqm_curve", "mean_ci"]


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
    """IQM of a (runs, tasks) score matrix and its stratified-bootstrap CI.

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
    """IQM over runs x tasks at every step of a (runs, tasks, steps) array, with CIs.

    Uses rliable's batched form: one stratified bootstrap over the whole 3-d array with an
    aggregate function that returns one IQM per step (rliable's sample-efficiency-curve recipe).

    Returns:
        (iqm, ci_low, ci_high), each of shape (steps,).
    """
    arr = _check(scores, 3, "iqm_curve")
    return _interval(arr, _iqm_per_step, reps, seed, confidence)


def mean_ci(
    values: np.ndarray, reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[Any, Any, Any]:
    """Mean over runs with a percentile bootstrap CI (resampling runs with replacement).

    Meant for per-run scalars such as plasticity metrics, where the number of runs is small
    (2-10) and an IQM would discard most of them (see the module docstring).

    Args:
        values: (runs,) or (runs, steps). For curves, each replicate resamples whole runs
            (the same run indices at every step), keeping each run's curve intact.
        reps, seed, confidence: as in `iqm_ci`.

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
