"""Keeping every series and tick label of a figure visible where they would overlap.

Where runs agree (a toy run's curves all at 0 %, a matched MLP beside the architecture it matches),
series are drawn on top of one another. Here: which series coincide (at some point, or everywhere),
the slot each one gets among those it meets (its markers are dodged sideways by a few points, its
line drawn wider the more series lie on top of it), the legend note of a series that coincides with
an earlier one everywhere, and tick labels thinned where their text would collide (9k beside 10k).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import ScaledTranslation, Transform

SERIES_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "p", "h", "<", ">")
DODGE_PT = 8.0  # sideways shift of a coinciding series' markers per slot, in points (a marker's width)
X_CLOSE_DECADES = 0.03  # two points this close on a log x axis (about a marker's width) ...
X_CLOSE_FRACTION = 0.01  # ... or this fraction of a linear x axis
Y_CLOSE_FRACTION = 0.02  # ... and this close in y (fraction of the figure's y span) coincide
LINE_WIDTH, LINE_WIDTH_STEP, MAX_UNDER = 1.8, 1.2, 4
LABEL_PAD_PX = 2.0

Points = tuple[np.ndarray, np.ndarray]  # x, y of one series on one axis


def y_tolerance(series: Sequence[tuple[np.ndarray, ...]]) -> float:
    """How close two y values must be to coincide: Y_CLOSE_FRACTION of the span of all of them."""
    ys = np.concatenate([points[1] for points in series]) if series else np.zeros(1)
    ys = ys[np.isfinite(ys)]
    span = float(ys.max() - ys.min()) if ys.size else 0.0
    return max(Y_CLOSE_FRACTION * span, 1e-9)


def _close(a: Points, b: Points, log_x: bool, x_span: float, y_tol: float) -> np.ndarray:
    """Matrix [i, j]: point i of `a` coincides with point j of `b`."""
    (xa, ya), (xb, yb) = a, b
    if log_x:
        dx = np.abs(np.log10(np.maximum(xa[:, None], 1e-300)) - np.log10(np.maximum(xb[None, :], 1e-300)))
        near_x = dx <= X_CLOSE_DECADES
    else:
        near_x = np.abs(xa[:, None] - xb[None, :]) <= X_CLOSE_FRACTION * max(x_span, 1e-12)
    return near_x & (np.abs(ya[:, None] - yb[None, :]) <= y_tol)


def coincidences(
    series: Mapping[str, Points], log_x: bool, y_tol: float
) -> tuple[set[frozenset[str]], set[frozenset[str]]]:
    """(pairs of series that coincide at some point, pairs that coincide at every point) on one axis."""
    xs = np.concatenate([x for x, _ in series.values()]) if series else np.zeros(1)
    x_span = float(np.nanmax(xs) - np.nanmin(xs)) if xs.size else 0.0
    some: set[frozenset[str]] = set()
    every: set[frozenset[str]] = set()
    labels = list(series)
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            close = _close(series[a], series[b], log_x, x_span, y_tol)
            if close.any():
                some.add(frozenset((a, b)))
                if close.any(axis=1).all() and close.any(axis=0).all():
                    every.add(frozenset((a, b)))
    return some, every


def slots(labels: Sequence[str], pairs: set[frozenset[str]]) -> dict[str, int]:
    """Each series' slot: the smallest not taken by an earlier series it coincides with (0: in place)."""
    taken: dict[str, int] = {}
    for label in labels:
        used = {taken[other] for other in taken if frozenset((label, other)) in pairs}
        taken[label] = next(slot for slot in range(len(labels) + 1) if slot not in used)
    return taken


def dodge_points(slot: int) -> float:
    """Slot 0, 1, 2, 3, 4 -> 0, +1, -1, +2, -2 times DODGE_PT."""
    return DODGE_PT * ((slot + 1) // 2) * (1 if slot % 2 else -1)


def _lean(
    label: str, partners: Sequence[str], series: Mapping[str, Points], log_x: bool, y_tol: float
) -> int:
    """-1 where the series lies left of the earlier ones it meets (in data), +1 right, 0 on them."""
    xs = np.concatenate([x for x, _ in series.values()])
    x_span = float(np.nanmax(xs) - np.nanmin(xs))
    scale = np.log10 if log_x else (lambda v: v)
    total = 0.0
    for other in partners:
        i, j = np.nonzero(_close(series[label], series[other], log_x, x_span, y_tol))
        total += float(np.sum(scale(series[label][0][i]) - scale(series[other][0][j])))
    return int(np.sign(total)) if abs(total) > 1e-12 else 0


def dodges(series: Mapping[str, Points], log_x: bool) -> tuple[dict[str, float], set[frozenset[str]]]:
    """(each series' sideways shift in points, the pairs that coincide everywhere on this axis).
    A series meeting earlier ones moves by its slot's dodge (`dodge_points`), towards the side it
    already lies on, so that a point beside another moves away from it, never onto it."""
    y_tol = y_tolerance(list(series.values()))
    some, every = coincidences(series, log_x, y_tol)
    order = list(series)
    slot = slots(order, some)
    shifts = {}
    for index, label in enumerate(order):
        shift = dodge_points(slot[label])
        partners = [other for other in order[:index] if frozenset((label, other)) in some]
        lean = _lean(label, partners, series, log_x, y_tol) if shift else 0
        shifts[label] = abs(shift) * lean if lean else shift
    return shifts, every


def dodged(ax: Axes, fig: Figure, shift: float, x: np.ndarray, y: np.ndarray) -> Transform:
    """`ax`'s data transform, shifted sideways by `shift` points (the data stay where they are).
    The points count for the axis' data limits as they are (matplotlib counts none drawn through
    a shifted transform)."""
    ax.update_datalim(np.column_stack([x, y]))
    if shift == 0:
        return ax.transData
    return ax.transData + ScaledTranslation(shift / 72.0, 0, fig.dpi_scale_trans)


def line_width(label: str, labels: Sequence[str], pairs: set[frozenset[str]]) -> float:
    """Wider the more later-drawn series it meets: those drawn over it leave its edges showing."""
    later = labels[labels.index(label) + 1 :]
    under = sum(frozenset((label, other)) in pairs for other in later)
    return LINE_WIDTH + LINE_WIDTH_STEP * min(under, MAX_UNDER)


def _everywhere(a: str, b: str, drawn: Sequence[Mapping[str, Points]], log_x: bool, y_tol: float) -> bool:
    """Whether series `a` and `b` are drawn on the same axes and coincide at every point of each."""
    shared = False
    for axis in drawn:
        if (a in axis) != (b in axis):
            return False
        if a in axis:
            shared = True
            _, every = coincidences({a: axis[a], b: axis[b]}, log_x, y_tol)
            if not every:
                return False
    return shared


def legend_notes(labels: Sequence[str], drawn: Sequence[Mapping[str, Points]], log_x: bool) -> dict[str, str]:
    """Legend text per series: 'label (coincides with X)' where it lies on an earlier series X at
    every point of every axis, else the label itself."""
    y_tol = y_tolerance([points for axis in drawn for points in axis.values()])
    notes = {}
    for i, label in enumerate(labels):
        same = [other for other in labels[:i] if _everywhere(other, label, drawn, log_x, y_tol)]
        notes[label] = f"{label} (coincides with {same[0]})" if same else label
    return notes


def thin_tick_labels(fig: Figure) -> None:
    """Blank the x tick labels whose text would overlap another's, keeping the roundest numbers
    (powers of ten, then 2 and 5 times them) and, among equals, the leftmost."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for ax in fig.axes:
        labels = [t for t in ax.xaxis.get_ticklabels() if t.get_text() and t.get_visible()]
        boxes = {id(t): t.get_window_extent(renderer) for t in labels}
        keep: list = []
        hidden: set[float] = set()
        for text in sorted(labels, key=lambda t: (_roundness(t.get_position()[0]), boxes[id(t)].x0)):
            box = boxes[id(text)]
            if any(
                box.x0 < boxes[id(k)].x1 + LABEL_PAD_PX and boxes[id(k)].x0 < box.x1 + LABEL_PAD_PX
                for k in keep
            ):
                hidden.add(float(text.get_position()[0]))
            else:
                keep.append(text)
        if hidden:
            shown = ax.xaxis.get_major_formatter()
            ax.xaxis.set_major_formatter(
                FuncFormatter(lambda v, pos, f=shown, h=frozenset(hidden): "" if v in h else f(v, pos))
            )


def _roundness(value: float) -> int:
    """0 for a power of ten, 1 for 2 or 5 times one, 2 otherwise (and for 0 or negative values)."""
    if value <= 0:
        return 2
    mantissa = round(value / 10 ** np.floor(np.log10(value)), 6)
    return 0 if mantissa == 1 else 1 if mantissa in (2, 5) else 2
