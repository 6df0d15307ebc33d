"""mtrl.tables.stats: IQM and CIs against hand computations; determinism; one-run edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats

from mtrl.tables.stats import (
    authors_ci,
    iqm,
    iqm_ci,
    iqm_curve,
    mean_ci,
    quartile_kept,
    run_iqm,
    success_ci,
    success_curve_ci,
)


def hand_iqm(scores: np.ndarray) -> float:
    """Mean of the middle 50 % of all pooled scores (rliable: trim_mean 0.25 over the flat array)."""
    flat = np.sort(np.asarray(scores, dtype=float).ravel())
    cut = int(0.25 * flat.size)
    return float(flat[cut : flat.size - cut].mean())


def authors_iqm(scores: np.ndarray) -> float:
    """Each run's mean success over tasks (the authors' charts/mean_success_rate), then
    scipy.stats.trim_mean(x, 0.25) over the runs (their plots/get_data.py `iqm`): the figures'
    statistic whenever the runs are 4-6, 8-10 or 12 and untied (see the hand-computed cases below)."""
    run_means = np.asarray(scores, dtype=float).mean(axis=1)
    return float(scipy.stats.trim_mean(run_means, proportiontocut=0.25))


def mt10_like_runs() -> np.ndarray:
    """8 runs x 10 tasks: 3 tasks never solved, 3 always solved, 4 that vary by run, one bad run.

    The pooled IQM trims whole unsolved and solved tasks; the authors' IQM over run means does not.
    """
    rng = np.random.default_rng(5)
    scores = np.zeros((8, 10))
    scores[:, 3:6] = 1.0
    scores[:, 6:] = rng.uniform(0.2, 0.8, size=(8, 4))
    scores[7] = 0.05  # a collapsed seed: trimmed by the IQM over runs
    return scores


def test_success_statistic_is_the_authors_iqm_over_run_means() -> None:
    scores = mt10_like_runs()
    expected = authors_iqm(scores)
    # by hand: sort the 8 run means, drop 2 at each end, average the middle 4
    means = np.sort(scores.mean(axis=1))
    assert expected == pytest.approx(means[2:6].mean())
    point, lo, hi = success_ci(scores, reps=500, seed=0)
    assert point == pytest.approx(expected)
    assert run_iqm(scores.mean(axis=1)) == pytest.approx(expected)
    assert lo <= point <= hi and lo < hi
    # the option "runs": the same IQM here, rliable's CI of the trimmed mean around it
    runs = success_ci(scores, "runs", reps=500, seed=0)
    assert runs[0] == pytest.approx(expected) and runs[1] <= expected <= runs[2] and runs[1:] != (lo, hi)
    # the pooled statistic is a different number on such data; it stays available as an option
    pooled = success_ci(scores, "pooled", reps=500, seed=0)
    assert pooled == iqm_ci(scores, reps=500, seed=0)
    assert pooled[0] == pytest.approx(hand_iqm(scores))
    assert abs(pooled[0] - expected) > 0.05
    assert success_ci(scores, reps=500, seed=0) == (point, lo, hi)
    with pytest.raises(ValueError, match="statistic must be one of"):
        success_ci(scores, "median")


def test_success_curve_is_the_authors_iqm_per_step() -> None:
    first = mt10_like_runs()
    same = np.full_like(first, 0.5)  # every run alike: no spread, no interval
    scores = np.stack([first, 0.5 * first, same], axis=2)  # (runs, tasks, steps)
    point, lo, hi = success_curve_ci(scores, reps=300, seed=0)
    np.testing.assert_allclose(point, [authors_iqm(scores[:, :, k]) for k in range(3)])
    np.testing.assert_allclose(run_iqm(scores.mean(axis=1)), point)
    assert np.all(lo <= point) and np.all(point <= hi) and lo[0] < hi[0]
    np.testing.assert_allclose([lo[2], hi[2]], [0.5, 0.5])
    again = success_curve_ci(scores, reps=300, seed=0)
    for a, b in zip((point, lo, hi), again, strict=True):
        np.testing.assert_array_equal(a, b)
    pooled = success_curve_ci(scores, "pooled", reps=300, seed=0)
    np.testing.assert_allclose(pooled[0], [hand_iqm(scores[:, :, k]) for k in range(3)])
    assert abs(pooled[0][0] - point[0]) > 0.05


def test_iqm_matches_hand_computation() -> None:
    scores = np.array([[0.0, 0.1, 0.9, 1.0], [0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.05]])
    # 12 values, cut 3 at each end: middle = 0.2 .. 0.7 -> 6 values
    expected = np.mean([0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    assert hand_iqm(scores) == pytest.approx(expected)
    point, lo, hi = iqm_ci(scores, reps=300, seed=0)
    assert point == pytest.approx(expected)
    assert iqm(scores) == pytest.approx(scipy.stats.trim_mean(scores.ravel(), 0.25))
    assert lo <= point <= hi
    assert lo < hi


def test_iqm_ci_shrinks_with_more_runs_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    few = rng.uniform(size=(3, 10))
    many = rng.uniform(size=(30, 10))
    p_few, lo_few, hi_few = iqm_ci(few, reps=400, seed=0)
    p_many, lo_many, hi_many = iqm_ci(many, reps=400, seed=0)
    assert p_few == pytest.approx(hand_iqm(few)) and p_many == pytest.approx(hand_iqm(many))
    assert lo_few <= p_few <= hi_few and lo_many <= p_many <= hi_many
    assert hi_many - lo_many < 0.6 * (hi_few - lo_few)
    assert iqm_ci(few, reps=400, seed=0) == (p_few, lo_few, hi_few)
    assert iqm_ci(few, reps=400, seed=1) != (p_few, lo_few, hi_few)


def test_global_numpy_rng_is_left_alone() -> None:
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    iqm_ci(np.random.default_rng(0).uniform(size=(4, 5)), reps=50, seed=7)
    assert np.random.rand() == expected


def test_single_run_collapses_without_warnings() -> None:
    scores = np.array([[0.1, 0.5, 0.9, 0.3]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        point, lo, hi = iqm_ci(scores)
        curve = iqm_curve(scores[:, :, None].repeat(3, axis=2))
        m = mean_ci(np.array([2.5]))
        mc = mean_ci(np.array([[1.0, 2.0]]))
    assert point == lo == hi == pytest.approx(hand_iqm(scores))
    for arr in curve:
        np.testing.assert_allclose(arr, hand_iqm(scores))
    assert m == (2.5, 2.5, 2.5)
    for arr in mc:
        np.testing.assert_allclose(arr, [1.0, 2.0])


def test_iqm_curve_per_step() -> None:
    rng = np.random.default_rng(2)
    scores = rng.uniform(size=(5, 6, 4))  # runs, tasks, steps
    point, lo, hi = iqm_curve(scores, reps=300, seed=0)
    assert point.shape == lo.shape == hi.shape == (4,)
    np.testing.assert_allclose(point, [hand_iqm(scores[:, :, k]) for k in range(4)])
    assert np.all(lo <= point) and np.all(point <= hi) and np.all(lo < hi)
    again = iqm_curve(scores, reps=300, seed=0)
    for a, b in zip((point, lo, hi), again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_mean_ci() -> None:
    values = np.array([1.0, 2.0, 3.0, 10.0])
    mean, lo, hi = mean_ci(values, reps=500, seed=0)
    assert mean == pytest.approx(4.0)
    assert 1.0 <= lo < mean < hi <= 10.0
    curves = np.array([[0.0, 10.0], [2.0, 10.0], [4.0, 10.0]])
    m, lo2, hi2 = mean_ci(curves, reps=500, seed=0)
    np.testing.assert_allclose(m, [2.0, 10.0])
    assert lo2[0] < 2.0 < hi2[0]
    np.testing.assert_allclose([lo2[1], hi2[1]], [10.0, 10.0])  # no spread, no interval
    assert mean_ci(values, reps=500, seed=0) == (mean, lo, hi)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="2-d"):
        iqm_ci(np.zeros(3))
    with pytest.raises(ValueError, match="3-d"):
        iqm_curve(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        mean_ci(np.zeros((2, 2, 2)))


# Runs' values, the authors' figure statistic (mean of the runs between polars' default quartiles,
# inclusive) and trim_mean(0.25), each computed by hand; polars 1.22's group_by/quantile/filter of
# fig1_new.py gives the same kept runs and means on these inputs.
AUTHORS_CASES = {
    # 7 runs: quartile indices round(1.5) = 2, round(4.5) = 5 (halves away from zero) -> 0.3..0.6
    "7 runs": ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], 0.45, 0.40),
    # 3 runs: indices round(0.5) = 1, round(1.5) = 2 -> 0.2, 0.3; trim_mean cuts none
    "3 runs": ([0.1, 0.2, 0.3], 0.25, 0.20),
    # 11 runs: indices round(2.5) = 3, round(7.5) = 8 -> 0.4..0.9; trim_mean keeps 0.3..0.9
    "11 runs": ([0.1 * k for k in range(1, 12)], 0.65, 0.60),
    # 10 runs: indices round(2.25) = 2, round(6.75) = 7 -> the same six runs as trim_mean
    "10 runs": ([0.1 * k for k in range(1, 11)], 0.55, 0.55),
    # ties: q1 = 0.5, q3 = 1.0 keep every run at those values: 9 runs, (1.5 + 1.8 + 4) / 9
    "ties at both quartiles": ([0.1, 0.5, 0.5, 0.5, 0.9, 0.9, 1.0, 1.0, 1.0, 1.0], 7.3 / 9, 0.80),
    # ties: q1 = 0.3 (three runs), q3 = 0.8 (two runs): 7 runs, 3.6 / 7; trim_mean 3.3 / 6
    "ties, 10 runs": ([0.2, 0.3, 0.3, 0.3, 0.5, 0.6, 0.8, 0.8, 0.9, 1.0], 3.6 / 7, 0.55),
}


@pytest.mark.parametrize("case", list(AUTHORS_CASES))
def test_authors_statistic_against_hand_computation(case: str) -> None:
    values, authors, trimmed = AUTHORS_CASES[case]
    shuffled = np.random.default_rng(3).permutation(values)  # the order of runs does not matter
    point, lo, hi = authors_ci(shuffled, reps=400, seed=0)
    assert point == pytest.approx(authors)
    assert run_iqm(shuffled) == pytest.approx(trimmed)
    assert lo <= point <= hi
    kept = shuffled[quartile_kept(shuffled)]
    assert kept.min() <= lo and hi <= kept.max()  # the CI resamples the kept runs only
    # through the success statistic: one task per run, so each run's task mean is its value
    assert success_ci(shuffled[:, None], reps=400, seed=0) == (point, lo, hi)
    assert success_ci(shuffled[:, None], "runs", reps=400, seed=0)[0] == pytest.approx(trimmed)


def test_authors_ci_is_a_percentile_bootstrap_of_the_kept_mean() -> None:
    """Vega-Lite's ci: resample the kept runs with replacement, mean, percentiles 2.5 / 97.5 with
    linear interpolation (d3's quantile); the same draws by hand give the same bounds."""
    values = np.array([0.0, 0.35, 0.4, 0.5, 0.6, 0.65, 1.0])
    kept = np.array([0.4, 0.5, 0.6, 0.65])  # quartiles at sorted indices 2 and 5
    np.testing.assert_array_equal(np.sort(values[quartile_kept(values)]), kept)
    draws = np.random.default_rng(11).integers(0, kept.size, size=(1000, kept.size))
    means = np.sort(kept[draws].mean(axis=1))

    def d3_quantile(sorted_values: np.ndarray, p: float) -> float:
        i = (sorted_values.size - 1) * p
        low = int(np.floor(i))
        return float(sorted_values[low] + (sorted_values[low + 1] - sorted_values[low]) * (i - low))

    point, lo, hi = authors_ci(values, reps=1000, seed=11)
    assert point == pytest.approx(kept.mean())
    assert (lo, hi) == pytest.approx((d3_quantile(means, 0.025), d3_quantile(means, 0.975)))
    assert authors_ci(values, reps=1000, seed=11) == (point, lo, hi)
    assert authors_ci([0.7], reps=1000) == (0.7, 0.7, 0.7)  # one run: no interval
    with pytest.raises(ValueError, match="quartile_kept: expected a non-empty 1-d array"):
        quartile_kept(np.array([0.1, np.nan]))


def test_authors_curve_keeps_runs_per_step() -> None:
    """Curves: each step keeps its own runs (a run can be kept at one step and not the next)."""
    steps = np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.2], [0.4, 0.3], [0.5, 0.1], [0.6, 0.0], [0.7, 0.05]])
    scores = steps[:, None, :]  # (7 runs, 1 task, 2 steps); step 2 keeps 0.1, 0.2, 0.3 and 0.8
    assert quartile_kept(steps[:, 1]).tolist() == [False, True, True, True, True, False, False]
    point, lo, hi = success_curve_ci(scores, reps=300, seed=4)
    np.testing.assert_allclose(point, [0.45, 0.35])
    for j in range(2):
        assert (point[j], lo[j], hi[j]) == authors_ci(steps[:, j], reps=300, seed=(4, j))
