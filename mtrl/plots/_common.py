"""Shared drawing helpers: style, consistent colours per series, curve grids with CI bands.

Every helper draws only from a table produced by `mtrl.tables` (or the same table read back
from CSV, where numeric-looking labels come back as numbers: labels are always turned into str).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: E402

from mtrl.plots.overlap import legend_notes, thin_tick_labels  # noqa: E402
from mtrl.plots.series import draw_curves, params_series, styles  # noqa: E402

STEPS_LABEL = "Environment steps"
PARAMS_LABEL = "Parameters (actor + critic)"
# Okabe & Ito's colour-blind-safe colours, the most distinct first (blue, vermillion, bluish green,
# reddish purple, grey), then sky blue, orange, yellow-free extras: no two of the first five are
# alike under any colour-vision deficiency, nor orange beside gold.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#555555", "#56B4E9", "#E69F00", "#882255", "#117733")
PANEL_WIDTH, PANEL_HEIGHT = 5.0, 3.6
XLABEL_CHARS = 44  # what fits a panel's width at the axis label's size
# Margins around the data, so that lines and markers at the ends of a range (0 %, 100 %, the smallest
# and largest network) are drawn whole, clear of the axes' frame: a fraction of the y range, and of a
# log x range in decades.
Y_MARGIN = 0.05
X_MARGIN = 0.06
# Labelled ticks of a log axis: round numbers m x 10^k, the richest of these mantissa sets that puts
# 2 to MAX_LOG_TICKS ticks on the axis (every n-th power of ten over many decades). Consecutive
# numbers of the last set differ by at most a factor 1.5, so a range of 1.5^2 holds two of them
# (MIN_LOG_RATIO leaves room for rounding).
LOG_MANTISSAS = ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9))
MAX_LOG_TICKS = 7
MIN_LOG_RATIO = 2.5


def style() -> None:
    """The common look of all figures."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.15)


def ordered(values: Sequence[object]) -> list[object]:
    """Unique values in first-appearance order."""
    return list(dict.fromkeys(values))


def labels_in_order(table: pd.DataFrame) -> list[str]:
    """Series labels sorted by the `order` column (NaN last), then by first appearance."""
    frame = table.assign(_label=table["label"].astype(str), _pos=np.arange(len(table)))
    if "order" in frame:
        frame["_order"] = pd.to_numeric(frame["order"], errors="coerce")
    else:
        frame["_order"] = np.nan
    first = frame.groupby("_label", sort=False).agg(order=("_order", "min"), pos=("_pos", "min"))
    first = first.sort_values(["order", "pos"], na_position="last")
    return [str(x) for x in first.index]


def palette(labels: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per series label, stable for a given label order (colour-blind safe up to 9)."""
    if len(labels) <= len(COLOURS):
        colours = [matplotlib.colors.to_rgb(colour) for colour in COLOURS]
    else:
        colours = list(sns.color_palette("husl", len(labels)))
    return {label: tuple(colours[i]) for i, label in enumerate(labels)}


def format_count(value: float, _pos: int | None = None) -> str:
    """Tick text for a count (env steps, parameters): 0, 500k, 1.5M, 20M, 3B, 100T."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return f"{value:.4g}"


def panel_title(panel: object, index: int, count: int) -> str:
    """'(a) MT10' when a figure has several panels (index counts them all, row by row), the panel
    name alone otherwise."""
    return f"({chr(ord('a') + index)}) {panel}" if count > 1 else str(panel)


def limit_y(axes: Sequence[Axes], ylim: tuple[float | None, float | None] | None) -> None:
    """The y range of a row of axes (which share it): `ylim` as declared, an end given as None
    following the data (a flat line at the lower end gets a unit range), each end with a margin of
    Y_MARGIN, so that values at the ends (0 %, 100 %) are drawn clear of the frame. Without `ylim`,
    matplotlib's own limits (which have a margin)."""
    if ylim is None:
        return
    data_low = min(ax.dataLim.y0 for ax in axes)
    data_high = max(ax.dataLim.y1 for ax in axes)
    low = data_low if ylim[0] is None else ylim[0]
    high = data_high if ylim[1] is None else ylim[1]
    if high <= low:
        high = low + 1.0
    margin = Y_MARGIN * (high - low)
    axes[0].set_ylim(low - margin, high + margin)


def log_view(low: float, high: float) -> tuple[float, float]:
    """x limits of a log axis showing data over [low, high] (> 0): a margin of X_MARGIN of its
    decades each side, and at least MIN_LOG_RATIO wide (around the data) so it holds two ticks."""
    low_exp, high_exp = np.log10(low), np.log10(high)
    pad = max(X_MARGIN * (high_exp - low_exp), (np.log10(MIN_LOG_RATIO) - (high_exp - low_exp)) / 2)
    return float(10 ** (low_exp - pad)), float(10 ** (high_exp + pad))


def log_ticks(low: float, high: float) -> list[float]:
    """Labelled ticks of a log axis over [low, high]: the richest set of round numbers (LOG_MANTISSAS)
    with 2 to MAX_LOG_TICKS of them in range; over many decades every n-th power of ten. Empty if the
    range is narrower than MIN_LOG_RATIO (`log_view` never makes one)."""
    decades = range(int(np.floor(np.log10(low))), int(np.floor(np.log10(high))) + 1)
    best: list[float] = []
    for mantissas in LOG_MANTISSAS:
        ticks = [float(m * 10.0**k) for k in decades for m in mantissas if low <= m * 10.0**k <= high]
        if len(ticks) > MAX_LOG_TICKS:
            if not best:  # powers of ten alone are too many: every n-th of them
                best = ticks[:: int(np.ceil(len(ticks) / MAX_LOG_TICKS))]
            break
        if len(ticks) >= 2:
            best = ticks
    return best


def log_x(ax: Axes) -> None:
    """A log x axis over the data drawn on `ax`, with a margin and at least two labelled round ticks
    (20k, 50k, 1M) for any range, a fraction of a decade or many decades."""
    ax.set_xscale("log")
    low, high = log_view(ax.dataLim.x0, ax.dataLim.x1)
    ax.set_xlim(low, high)
    ax.xaxis.set_major_locator(FixedLocator(log_ticks(low, high)))
    ax.xaxis.set_major_formatter(FuncFormatter(format_count))
    ax.xaxis.set_minor_formatter(NullFormatter())  # the minor ticks stay unlabelled


def grid(rows: int, cols: int) -> tuple[Figure, np.ndarray]:
    style()
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(max(PANEL_WIDTH * cols, 7.0), PANEL_HEIGHT * rows + 0.6),
        squeeze=False,
        sharex="col",
        sharey="row",
    )
    return fig, axes


def finish(fig: Figure, title: str, handles: dict[str, object]) -> Figure:
    """Suptitle and one legend for the whole figure, below the panels."""
    fig.suptitle(title)
    if handles:
        entry_inches = 0.8 + 0.075 * max(len(label) for label in handles)
        fit = max(1, min(len(handles), int(fig.get_figwidth() // entry_inches)))
        legend_rows = int(np.ceil(len(handles) / fit))
        ncol = int(np.ceil(len(handles) / legend_rows))
        fig.legend(
            list(handles.values()),
            list(handles.keys()),
            loc="lower center",
            ncol=ncol,
            frameon=False,
            bbox_to_anchor=(0.5, 0.0),
        )
        legend_inches = 0.15 + 0.3 * legend_rows
        fig.tight_layout(rect=(0, legend_inches / fig.get_figheight(), 1, 1))
    else:
        fig.tight_layout()
    thin_tick_labels(fig)
    return fig


def require(table: pd.DataFrame, columns: Sequence[str], figure: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{figure}: table lacks columns {missing}")
    if table.empty:
        raise ValueError(f"{figure}: empty table")


def whole_network(table: pd.DataFrame, figure: str) -> pd.DataFrame:
    """The rows of a plasticity table that describe whole networks (layer == 'all')."""
    if "layer" not in table.columns:
        return table
    whole = table[table["layer"].astype(str) == "all"]
    if whole.empty:
        raise ValueError(f"{figure}: the table has only per-layer rows; aggregate a whole-network metric")
    return whole


def _prepared(
    table: pd.DataFrame, columns: Sequence[str], figure: str
) -> tuple[pd.DataFrame, list[str], dict[str, tuple[float, float, float]]]:
    """The table's whole-network rows with str labels (checked for `columns`), its series labels in
    legend order and their colours."""
    table = whole_network(table, figure)
    require(table, columns, figure)
    table = table.assign(label=table["label"].astype(str))
    labels = labels_in_order(table)
    return table, labels, palette(labels)


def _points(part: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, ...]:
    """x, y and the CI bounds of one series, as float arrays."""
    return tuple(part[c].to_numpy(float) for c in (x, y, "ci_low", "ci_high"))


def curve_figure(
    table: pd.DataFrame,
    *,
    figure: str,
    title: str,
    y: str,
    ylabel: str,
    row: str | None = None,
    row_titles: dict[str, str] | None = None,
    ylim: tuple[float | None, float | None] | None = None,
) -> Figure:
    """Curves over env steps: one line + CI band per series label, panels as columns.

    Args:
        table: a curve table (`success_curve` / `plasticity_curve`): columns panel, label, step,
            `y`, ci_low, ci_high (+ `row` if given); of a plasticity table, the whole-network rows.
        y: the column plotted ('iqm' or 'mean').
        row: optional column whose values become subplot rows (e.g. 'network').
    """
    columns = ["panel", "label", "step", y, "ci_low", "ci_high"] + ([row] if row else [])
    table, labels, colours = _prepared(table, columns, figure)
    panels = ordered(table["panel"])
    rows = ordered(table[row]) if row else [None]
    fig, axes = grid(len(rows), len(panels))
    handles: dict[str, object] = {}
    drawn: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
    for i, row_value in enumerate(rows):
        for j, panel in enumerate(panels):
            ax = axes[i, j]
            sel = table[table["panel"] == panel]
            if row:
                sel = sel[sel[row] == row_value]
            series = {}
            for label in labels:
                part = sel[sel["label"] == label].sort_values("step")
                if not part.empty:
                    series[label] = _points(part, "step", y)
            handles.update(draw_curves(ax, series, labels, colours))
            drawn.append({label: points[:2] for label, points in series.items()})
            ax.xaxis.set_major_formatter(FuncFormatter(format_count))
            heading = str(panel)
            if row:
                name = (row_titles or {}).get(str(row_value), str(row_value))
                heading = f"{heading}: {name}" if len(panels) > 1 else name
            ax.set_title(panel_title(heading, i * len(panels) + j, len(rows) * len(panels)))
            ax.set_xlabel(STEPS_LABEL if i == len(rows) - 1 else "")
            ax.set_ylabel(ylabel if j == 0 else "")
        limit_y(axes[i], ylim)
    notes = legend_notes(labels, drawn, log_x=False)
    return finish(fig, title, {notes[label]: handles[label] for label in labels if label in handles})


def params_figure(
    table: pd.DataFrame,
    *,
    figure: str,
    title: str,
    y: str,
    ylabel: str,
    col: str = "panel",
    col_titles: dict[str, str] | None = None,
    is_line: Callable[[pd.DataFrame], bool] = lambda part: True,
    ylim: tuple[float | None, float | None] | None = None,
    x: str = "params",
    xlabel: str = PARAMS_LABEL,
) -> Figure:
    """Values vs a parameter count (column `x`, log scale, labelled `xlabel`): one subplot per value
    of `col` (per panel if the table has no such column), one entry per series label; of a
    plasticity table, the whole-network rows.

    A series for which `is_line(rows)` holds is drawn as a line through its points (sorted by
    `x`) with a shaded CI band; any other series as markers with CI error bars, each label with
    its own marker shape.
    """
    col = col if col in table.columns else "panel"
    table, labels, colours = _prepared(table, [col, "label", x, y, "ci_low", "ci_high"], figure)
    columns = ordered(table[col])
    fig, axes = grid(1, len(columns))
    handles: dict[str, object] = {}
    drawn: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
    for j, value in enumerate(columns):
        ax = axes[0, j]
        sel = table[table[col] == value]
        series, lines = {}, set()
        for label in labels:
            part = sel[sel["label"] == label].sort_values(x)
            if not part.empty:
                series[label] = _points(part, x, y)
                lines |= {label} if is_line(part) else set()
        style = styles(series, labels, colours, log_x=True)
        for label, points in series.items():
            handles[label] = params_series(ax, points, label, style[label], label in lines)
        drawn.append({label: points[:2] for label, points in series.items()})
        log_x(ax)
        ax.set_title(panel_title((col_titles or {}).get(str(value), str(value)), j, len(columns)))
        ax.set_xlabel(
            textwrap.fill(xlabel, XLABEL_CHARS)
        )  # a long label on two lines, clear of its neighbour's
        ax.set_ylabel(ylabel if j == 0 else "")
    limit_y(axes[0], ylim)
    notes = legend_notes(labels, drawn, log_x=True)
    return finish(fig, title, {notes[label]: handles[label] for label in labels if label in handles})
