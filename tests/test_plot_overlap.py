"""Figures drawn from constructed tables whose series coincide (as a toy run's curves all at 0 %, or a
matched MLP beside the architecture it matches): every series keeps a visible artist of its own, the
legend names every series and what it coincides with, tick and axis labels never overlap, and the
colours stay apart for colour-blind readers (mtrl.plots.overlap, mtrl.plots.series)."""

from __future__ import annotations

import itertools

import matplotlib.colors
import numpy as np
import pandas as pd
import pytest

from mtrl.figures import FIGURES
from mtrl.plots import _common, plot_inputs
from mtrl.plots.overlap import DODGE_PT, SERIES_MARKERS, dodge_points, slots

WIDTHS = ["width 16", "width 32", "width 64", "width 128", "width 256"]


def _drawn(figure: str, table: pd.DataFrame):
    plot = FIGURES[figure].plot
    table, args = plot_inputs(table, plot.args)  # as `mtrl.plots.draw` does
    fig = getattr(_common, plot.function)(table, figure=figure, **args)
    fig.canvas.draw()
    return fig


def _curves(risen: str | None = "width 64") -> pd.DataFrame:
    """Five series over two panels, all at 0 % but `risen`, which ends at 10 % on MT10."""
    rows = []
    for panel, (order, label), step in itertools.product(("MT10", "MT50"), enumerate(WIDTHS), (0, 5000)):
        value = 10.0 if (label, panel, step) == (risen, "MT10", 5000) else 0.0
        rows.append(
            dict(panel=panel, label=label, order=order, step=step, iqm=value, ci_low=value, ci_high=value)
        )
    return pd.DataFrame(rows)


def _fig1_table() -> pd.DataFrame:
    """A sweep line, SM/PaCo/MOORE, and MLPs matched to them at 2 % fewer parameters, all at 0 %."""
    rows = []
    for panel in ("MT10", "MT50"):
        for params in (9_000, 10_000, 20_000):
            rows.append(dict(panel=panel, label="MTMHSAC", series="width", arch="mtmhsac", x_params=params))
        for name, params in (("SM", 12_000), ("PaCo", 30_000), ("MOORE", 15_000)):
            rows.append(dict(panel=panel, label=name, series=name, arch=name.lower(), x_params=params))
            matched = dict(
                panel=panel, label=f"MLP matched to {name}", series=f"matched {name}", arch="mtmhsac"
            )
            rows.append({**matched, "x_params": params * 0.98})
    return pd.DataFrame(rows).assign(iqm=0.0, ci_low=0.0, ci_high=0.0)


def _marker_artists(ax):
    """Every drawn line that has markers: {colour: artist}."""
    return {
        matplotlib.colors.to_hex(line.get_color()): line
        for line in ax.get_lines()
        if line.get_marker() not in (None, "None", "") and len(line.get_xdata()) > 0
    }


def _display_x(line, index: int) -> float:
    x, y = line.get_xdata()[index], line.get_ydata()[index]
    return float(line.get_transform().transform((x, y))[0])


def test_coinciding_curves_each_show_their_own_markers_side_by_side_and_say_so_in_the_legend():
    import matplotlib.pyplot as plt

    for figure in ("fig4", "fig5"):
        fig = _drawn(figure, _curves() if figure == "fig4" else _curves()[lambda t: t.panel == "MT10"])
        try:
            legend = fig.legends[0]
            texts = [text.get_text() for text in legend.get_texts()]
            assert texts == [
                "width 16",
                "width 32 (coincides with width 16)",
                "width 64",
                "width 128 (coincides with width 16)",
                "width 256 (coincides with width 16)",
            ]
            markers = [handle.get_marker() for handle in legend.legend_handles]
            assert len(set(markers)) == 5  # every series its own marker shape
            for ax in fig.axes:
                artists = _marker_artists(ax)
                assert len(artists) == 5  # one marker artist per series, none lost
                at_step0 = sorted(_display_x(line, 0) for line in artists.values())
                gaps = np.diff(at_step0)  # all five meet at step 0: side by side, a marker's width apart
                assert gaps.min() >= DODGE_PT * fig.dpi / 72 * 0.99
        finally:
            plt.close(fig)


def test_separate_curves_stay_in_place_and_unnoted():
    import matplotlib.pyplot as plt

    table = _curves(risen=None)
    table["iqm"] = table["ci_low"] = table["ci_high"] = table["order"] * 20.0 + table["step"] / 500
    fig = _drawn("fig4", table)
    try:
        assert [t.get_text() for t in fig.legends[0].get_texts()] == WIDTHS
        for ax in fig.axes:
            for line in _marker_artists(ax).values():
                assert line.get_transform() == ax.transData  # no dodge where nothing meets
    finally:
        plt.close(fig)


def test_fig1_matched_points_stand_beside_the_architectures_they_match():
    import matplotlib.pyplot as plt

    fig = _drawn("fig1", _fig1_table())
    try:
        texts = [text.get_text() for text in fig.legends[0].get_texts()]
        for name in ("SM", "PaCo", "MOORE"):
            assert f"MLP matched to {name} (coincides with {name})" in texts and name in texts
        for ax in fig.axes:
            points = {}
            for line in ax.get_lines():
                if line.get_marker() not in SERIES_MARKERS:  # the error bars' caps are markers too
                    continue
                for index in range(len(line.get_xdata())):
                    points.setdefault(round(float(line.get_xdata()[index]), -2), []).append(
                        _display_x(line, index)
                    )
            for params in (12_000, 15_000, 30_000):  # each architecture and its matched MLP: apart
                xs = sorted(points[params] + points[round(params * 0.98, -2)])
                assert np.diff(xs).min() >= DODGE_PT * fig.dpi / 72 * 0.9, (params, xs)
    finally:
        plt.close(fig)


@pytest.mark.parametrize("figure", ["fig1", "fig7"])
@pytest.mark.parametrize("span", [(9_000, 10_000), (7_000, 7_000), (2_500, 20_000)])
def test_tick_and_axis_labels_never_overlap(figure: str, span: tuple[float, float]):
    import matplotlib.pyplot as plt

    if figure == "fig1":
        table = _fig1_table()
    else:
        table = _fig1_table().rename(columns={"iqm": "mean"}).assign(layer="all", network="actor")
        table = pd.concat([table, table.assign(network="critic")])
    x = np.log(table["x_params"])
    share = (x - x.min()) / (x.max() - x.min())
    table["x_params"] = np.exp(np.log(span[0]) + share * (np.log(span[1]) - np.log(span[0])))
    fig = _drawn(figure, table)
    try:
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            low, high = ax.get_xlim()
            shown = [t for t in ax.get_xticklabels() if t.get_text() and low <= t.get_position()[0] <= high]
            assert len(shown) >= 2
            boxes = sorted((t.get_window_extent(renderer) for t in shown), key=lambda box: box.x0)
            assert all(left.x1 <= right.x0 for left, right in itertools.pairwise(boxes)), [
                t.get_text() for t in shown
            ]
        xlabels = [ax.xaxis.label.get_window_extent(renderer) for ax in fig.axes]
        assert all(left.x1 <= right.x0 for left, right in itertools.pairwise(xlabels))
    finally:
        plt.close(fig)


def _lab(rgb: tuple[float, float, float]) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB colour."""
    linear = np.array([c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb])
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in xyz / np.array([0.9505, 1.0, 1.089])]
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_the_first_five_series_colours_stay_apart():
    """Five series (Fig. 5): pairwise CIE76 distance over 30; seaborn's colorblind gold and orange,
    which Fig. 5 used to show side by side, are 28 apart."""
    colours = list(_common.palette(WIDTHS).values())
    distances = [np.linalg.norm(_lab(a) - _lab(b)) for a, b in itertools.combinations(colours, 2)]
    assert min(distances) > 30
    old = [matplotlib.colors.to_rgb(c) for c in ("#de8f05", "#d55e00")]
    assert np.linalg.norm(_lab(old[0]) - _lab(old[1])) < 30


def test_slots_and_dodges():
    pairs = {frozenset(("a", "b")), frozenset(("a", "c")), frozenset(("b", "c")), frozenset(("c", "d"))}
    assert slots(["a", "b", "c", "d", "e"], pairs) == {"a": 0, "b": 1, "c": 2, "d": 0, "e": 0}
    assert [dodge_points(slot) for slot in range(5)] == [0, DODGE_PT, -DODGE_PT, 2 * DODGE_PT, -2 * DODGE_PT]
