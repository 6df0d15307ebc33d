"""Aggregate statistics for the figures: the success IQM with bootstrap CIs (rliable) and mean CIs.

Conventions
-----------
* Success scores are arrays of shape (runs, tasks) or (runs, tasks, steps). Two statistics:

  - ``"runs"`` (the study's, as the authors' figure code computes it: their ``plots/get_data.py``
    and ``plots/fig1_new.py``): each run is reduced to its mean success over tasks (their
    ``charts/mean_success_rate``), then the interquartile mean over runs,
    ``scipy.stats.trim_mean(run_means, 0.25)``, per configuration and per evaluation step.
  - ``"pooled"`` (an option): the IQM of Agarwal et al. (2021) over *all* run x task scores pooled
    (``rliable.metrics.aggregate_iqm``: ``trim_mean(scores, 0.25, axis=None)``). On MT10 it trims
    whole unsolved and solved tasks, so it is a different number.

* Confidence intervals are percentile bootstrap intervals from rliable
  (``rliable.library.get_interval_estimates``). ``"runs"`` resamples runs with replacement (the
  task means form one stratum). ``"pooled"`` is rliable's stratified bootstrap: runs resampled
  independently within each task. For curves both resample independently at each step, as
  rliable does for its sample-efficiency curves (and as the authors' per-step error bands did).
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
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.stats

__all__ = [
    "STATISTICS",
    "check_statistic",
    "iqm",
    "iqm_ci",
    "iqm_curve",
    "mean_ci",
    "run_iqm",
    "success_ci",
    "success_curve_ci",
]

# "runs": IQM over runs of each run's mean over tasks (the study's); "pooled": IQM over runs x tasks
STATISTICS = ("runs", "pooled")


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


def _run_iqm_of_task_means(means: np.ndarray) -> np.ndarray:
    """IQM over runs of a (runs, 1) or (runs, 1, steps) array of task means, as a 1-d array."""
    return np.atleast_1d(np.asarray(run_iqm(means[:, 0]), dtype=np.float64))


def success_ci(
    scores: np.ndarray, statistic: str = "runs", reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """The success IQM of a (runs, tasks) matrix of final success rates, with its bootstrap CI.

    statistic "runs" (default, the study's): IQM over runs of each run's mean over tasks, the CI
    from resampling runs; "pooled": `iqm_ci` (IQM over all runs x tasks, stratified bootstrap).
    Returns (iqm, ci_low, ci_high); one run: the interval collapses to the point.
    """
    check_statistic(statistic)
    arr = _check(scores, 2, "success_ci")
    if statistic == "pooled":
        return iqm_ci(arr, reps=reps, seed=seed, confidence=confidence)
    means = arr.mean(axis=1, keepdims=True)  # (runs, 1): one stratum, so runs are resampled
    point, lo, hi = _interval(means, _run_iqm_of_task_means, reps, seed, confidence)
    return float(point[0]), float(lo[0]), float(hi[0])


def success_curve_ci(
    scores: np.ndarray, statistic: str = "runs", reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`success_ci` at every step of a (runs, tasks, steps) array: (iqm, ci_low, ci_high), each (steps,).

    statistic "runs": runs are resampled at each step (independently per step, as rliable's
    sample-efficiency curves); "pooled": `iqm_curve`.
    """
    check_statistic(statistic)
    arr = _check(scores, 3, "success_curve_ci")
    if statistic == "pooled":
        return iqm_curve(arr, reps=reps, seed=seed, confidence=confidence)
    means = arr.mean(axis=1, keepdims=True)  # (runs, 1, steps)
    return _interval(means, _run_iqm_of_task_means, reps, seed, confidence)


def mean_ci(
    values: np.ndarray, reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[Any, Any, Any]:
    """Mean over runs with a percentile bootstrap CI (resampling runs with replacement).

    Meant for per-run scalars such as plasticity metrics, which the authors' figures average over
    runs (see the module docstring).

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
