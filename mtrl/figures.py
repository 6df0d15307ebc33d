"""The paper's figures, declared once: for each, the table it is built from and how it is drawn.

A figure names the `mtrl.tables` function that turns its runs into a table (`table`) and the
`mtrl.plots` function that draws that table (`plot`; Table 1 has none), each with its arguments.
`mtrl.tables.aggregate`, `mtrl.plots.draw` and the workflow (which figures need the runs probed,
what each figure's jobs run) all read `FIGURES`. Functions are named, not imported: Snakemake reads
this module at every DAG build, without pandas or matplotlib.

A figure's `table=` and `plot=` expressions, with the definitions of this module they name, are
that figure's own code (`mtrl.files.provenance.figure_code_hash`): editing them reruns that figure only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Call", "Figure", "FIGURES", "PLOTTED", "PLASTICITY_TABLES"]


@dataclass(frozen=True)
class Call:
    """A function of `mtrl.tables` or `mtrl.plots`, by name, and the keyword arguments it gets."""

    function: str
    args: Mapping[str, Any] = field(default_factory=dict)


# The table functions that read the runs' probe results (plasticity.h5) beside train.h5.
PLASTICITY_TABLES = frozenset({"plasticity_curve", "plasticity_final"})


@dataclass(frozen=True)
class Figure:
    """One figure (or table) of the paper: `table(runs, reps=, seed=, **args)`, then
    `plot(table, figure=name, **args)`."""

    description: str
    table: Call
    plot: Call | None = None  # None: not drawn (Table 1 has a rule of its own)
    # extensions of the published figure (config `extensions`): name -> table arguments it replaces
    extensions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def needs_plasticity(self) -> bool:
        """Whether its runs must be probed: its table reads plasticity.h5."""
        return self.table.function in PLASTICITY_TABLES


def over_steps(title: str, first_step: int = 1, **args: Any) -> Call:
    """Curves over env steps, one subplot per panel: `mtrl.plots` `curve_figure`, drawn from the first
    point at or after `first_step` (the authors' curves start at their first evaluation after
    warm-up: they neither evaluate nor measure at step 0; the tables keep step 0)."""
    return Call("curve_figure", {"title": title, "first_step": first_step, **args})


def over_params(title: str, **args: Any) -> Call:
    """Values against the parameter count (log x), one subplot per panel: `params_figure`."""
    return Call("params_figure", {"title": title, **args})


# y ranges: both ends fixed (success: 0-100 % in every figure, so they compare), or (0, None): from 0
# to the data's largest value. The plots add a margin at each end, so values at 0 % and 100 % show.
SUCCESS_AXIS = {"y": "iqm", "ylabel": "IQM success rate (%)", "ylim": (0, 100)}
DORMANT_AXIS = {"y": "mean", "ylabel": "Dormant neurons (%)", "ylim": (0, None)}
NORM_AXIS = {"y": "mean", "ylabel": "Parameter norm (L2)"}
NETWORK_TITLES = {"actor": "Actor", "critic": "Critic", "critic0": "Critic 1", "critic1": "Critic 2"}
# dormant neurons at tau 0.1 of the first critic, as the authors' figures (metrics/dormant_neurons_
# critic_0_total_ratio); the extension `actor_dormancy` adds the actor's beside it
DORMANT = {"metric": "dormant_pct_total", "tau": 0.1, "network": "critic"}
WITH_ACTOR = {"actor_dormancy": {"network": ("actor", "critic")}}
# Fig. 1's x axis, by the table's x_placement (config `x_placement`, `mtrl.tables.success_final`)
FIG1_XLABEL = {
    "published": "Actor parameters (matched MLPs at their architecture's count, as published)",
    "own": "Actor parameters (each run's own)",
}


def is_sweep(rows: pd.DataFrame) -> bool:
    """Fig. 1's lines: a feed-forward (arch 'mtmhsac') series whose name and label do not say
    'matched'. SM, PaCo, MOORE and matched MLPs are drawn as markers with CI error bars."""
    names = " ".join(str(v) for v in rows["series"].tolist() + rows["label"].tolist()).lower()
    archs = set(rows["arch"].astype(str).str.lower()) if "arch" in rows else {"mtmhsac"}
    return archs == {"mtmhsac"} and "matched" not in names


FIGURES: dict[str, Figure] = {
    "fig1": Figure(
        "final IQM success vs actor parameters (MT10, MT50)",
        table=Call("success_final"),
        # x: the actor parameter count (the table's x_params); placed as the authors' fig1_new.py
        # does (matched MLPs at their architecture's count) or at each run's own (x_placement)
        plot=over_params(
            "Scaling a feed-forward MTRL agent vs MTRL architectures: final IQM success",
            **SUCCESS_AXIS,
            is_line=is_sweep,
            x="x_params",
            xlabel=FIG1_XLABEL,
        ),
    ),
    "fig4": Figure(
        "IQM success over training per width (MT10, MT50)",
        table=Call("success_curve"),
        # the authors' fig3.py: x from 200k (their first evaluation)
        plot=over_steps(
            "Extended scaling: IQM success over training per width (95% CIs)", 200_000, **SUCCESS_AXIS
        ),
    ),
    "fig5": Figure(
        "IQM success over training, actor/critic width pairs (MT10)",
        table=Call("success_curve"),
        # the authors' fig5.py: x from 300k
        plot=over_steps("Where does scale matter most? Actor / critic widths", 300_000, **SUCCESS_AXIS),
    ),
    "fig6": Figure(
        "dormant neuron % over training per width, first critic (MT10, MT50)",
        table=Call("plasticity_curve", DORMANT),
        plot=over_steps(
            "Impact of scale on plasticity: dormant neurons over training",
            **DORMANT_AXIS,
            row="network",
            row_titles=NETWORK_TITLES,
        ),
        extensions=WITH_ACTOR,
    ),
    "fig7": Figure(
        "final dormant neuron % vs the MT50 actor's parameters per width, per task set, first critic "
        "(MT10, MT25, MT50)",
        # x: the actor count of the MT50 network of each run's width, for every task set, as the
        # authors' fig4_3.py places them (so the three lines share their x values)
        table=Call("plasticity_final", {**DORMANT, "x_task_set": "mt50"}),
        # one line per task set (the series), one subplot per network
        plot=over_params(
            "Dormant neurons vs parameters for different numbers of tasks",
            **DORMANT_AXIS,
            col="network",
            col_titles=NETWORK_TITLES,
            x="x_params",
            xlabel="MT50 actor parameters at that width",
        ),
        extensions=WITH_ACTOR,
    ),
    "fig9": Figure(
        "depth 3 vs 4, with/without skip, MOORE parameter count (MT10)",
        table=Call("success_curve"),
        plot=over_steps("Effect of depth with the MOORE number of parameters", **SUCCESS_AXIS),
    ),
    "fig10": Figure(
        "depth 3 vs 4, with/without skip, PaCo parameter count (MT10)",
        table=Call("success_curve"),
        plot=over_steps("Effect of depth with the PaCo number of parameters", **SUCCESS_AXIS),
    ),
    "fig11": Figure(
        "actor parameter norm over training (MT10)",
        table=Call("plasticity_curve", {"metric": "param_norm", "tau": None, "network": "actor"}),
        plot=over_steps("Actor parameter norms", **NORM_AXIS),
    ),
    "fig12": Figure(
        "critic parameter norm (both critics jointly) over training (MT10)",
        table=Call("plasticity_curve", {"metric": "param_norm", "tau": None, "network": "critic"}),
        plot=over_steps("Critic parameter norms", **NORM_AXIS),
    ),
    "table1": Figure("SM / PaCo / MOORE: ours vs the paper and the publications", table=Call("table1")),
}
# The figures drawn by the `figure` rule (Table 1 is written by its own rule, as CSV and Markdown).
PLOTTED = tuple(name for name, figure in FIGURES.items() if figure.plot is not None)
