"""Drawing one series on one axis: a curve or a line over parameter counts with its CI band, or
markers with CI error bars; each with its own marker, dodged sideways where it meets
another series (mtrl.plots.overlap)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from mtrl.plots.overlap import SERIES_MARKERS, dodged, dodges, line_width

CURVE_MARKERS_AT_MOST = 12  # a curve with more points marks every n-th, staggered between series


def draw_band(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    colour,
    label: str,
    width: float = 1.8,
):
    """A line with its shaded CI band; returns the line handle."""
    (line,) = ax.plot(x, y, color=colour, label=label, linewidth=width)
    ax.fill_between(x, lo, hi, color=colour, alpha=0.2, linewidth=0)
    return line


class Style(NamedTuple):
    """How one series is drawn on one axis: colour, marker, sideways dodge (points), line width."""

    colour: tuple[float, float, float]
    marker: str
    shift: float
    width: float


def marker_of(label: str, labels: Sequence[str]) -> str:
    """The series' own marker shape (by its place in the legend), the same in every panel."""
    return SERIES_MARKERS[labels.index(label) % len(SERIES_MARKERS)]


def styles(
    series: Mapping[str, tuple[np.ndarray, ...]], labels: Sequence[str], colours, log_x: bool
) -> dict[str, Style]:
    """How each series on one axis is drawn: its colour and marker (the same in every panel), its
    dodge among the series it meets at some point (`dodges`), and a line wider the more series drawn
    after it lie on it everywhere (their edges then show around the top one)."""
    order = list(series)
    shifts, every = dodges({k: v[:2] for k, v in series.items()}, log_x)
    return {
        label: Style(colours[label], marker_of(label, labels), shifts[label], line_width(label, order, every))
        for label in order
    }


def draw_curves(
    ax: Axes, series: dict[str, tuple[np.ndarray, ...]], labels: Sequence[str], colours
) -> dict[str, object]:
    """Curves with CI bands on one axis, every one visible where they coincide (`styles`); markers
    at every point, or at every n-th staggered between series on a long curve. Returns the legend
    handles (line and marker)."""
    handles: dict[str, object] = {}
    for label, style in styles(series, labels, colours, log_x=False).items():
        x, y, lo, hi = series[label]
        draw_band(ax, x, y, lo, hi, style.colour, label, width=style.width)
        every = int(np.ceil(len(x) / 10)) if len(x) > CURVE_MARKERS_AT_MOST else 1
        ax.plot(
            x,
            y,
            style.marker,
            color=style.colour,
            markersize=5,
            markevery=(labels.index(label) % every, every),
            transform=dodged(ax, ax.figure, style.shift, x, y),
            clip_on=False,
        )
        handles[label] = Line2D([], [], color=style.colour, linewidth=1.8, marker=style.marker, markersize=5)
    return handles


def params_series(ax: Axes, points: tuple[np.ndarray, ...], label: str, style: Style, is_line: bool):
    """One series of a params figure: a line with its CI band through its markers (`is_line`), or
    markers with CI error bars; markers dodged by the style's shift. Returns its legend handle."""
    x, y, lo, hi = points
    shifted = dodged(ax, ax.figure, style.shift, x, y)
    if is_line:
        draw_band(ax, x, y, lo, hi, style.colour, label, width=style.width)
        ax.plot(x, y, style.marker, color=style.colour, markersize=5, clip_on=False, transform=shifted)
        return Line2D([], [], color=style.colour, linewidth=1.8, marker=style.marker, markersize=5)
    return ax.errorbar(
        x,
        y,
        yerr=[y - lo, hi - y],
        fmt=style.marker,
        color=style.colour,
        markersize=8,
        markeredgecolor="black",
        capsize=4,
        linestyle="none",
        label=label,
        transform=shifted,
        clip_on=False,  # a marker at an end of the range is drawn whole
    )
