"""Result files of many runs -> one tidy table per figure (IQM / mean with 95 % bootstrap CIs).

A figure is drawn from a list of `RunRef`s: each names a run directory (holding `train.h5` and,
for plasticity figures, `plasticity.h5`) and says where the run belongs in the figure: its
`panel` (a subplot, e.g. "MT10") and its `series` (a line or a marker set, e.g. "width 1024").
Seeds of one configuration are simply several RunRefs with the same panel and series.

Modules: `runs` (RunRef, reading result files), `grouping` (columns and grouping shared by all
tables), `success` (Figs. 1, 4, 5, 9, 10), `plasticity` (Figs. 6, 7, 11, 12), `table1`, and
`figure_tables` (a figure's table, as the figure registry `mtrl.figures` declares it).

Common columns of the tables (every table function documents its own):
  panel, series      from the RunRefs
  label              legend text (RunRef.label, default the series name)
  order              sort key of the series (RunRef.order, NaN if not given); plots order legends by
                     it, then by first appearance
  arch, task_set, actor_width, critic_width, depth, skip     from the runs' config
  n_runs             runs (seeds) aggregated in the row
Success values are percentages (0-100): the IQM of success rates in [0, 1] times 100.
Rows come in the order of the runs given (panels and series by first appearance).

Statistics (see `mtrl.tables.stats`): success -> by default the IQM over runs of each run's mean success
over tasks (the authors' figure code), a bootstrap CI over runs; `statistic="pooled"` gives the IQM
over runs x tasks with rliable's stratified bootstrap instead. Plasticity -> mean over runs with a
bootstrap CI over runs.
"""

from mtrl.tables.figure_tables import aggregate
from mtrl.tables.plasticity import NETWORK_CHOICES, PLASTICITY_METRICS, plasticity_curve, plasticity_final
from mtrl.tables.runs import PlasticityResult, RunRef, read_plasticity_h5
from mtrl.tables.success import success_curve, success_final
from mtrl.tables.table1 import table1, table1_markdown

__all__ = [
    "NETWORK_CHOICES",
    "PLASTICITY_METRICS",
    "PlasticityResult",
    "RunRef",
    "aggregate",
    "plasticity_curve",
    "plasticity_final",
    "read_plasticity_h5",
    "success_curve",
    "success_final",
    "table1",
    "table1_markdown",
]
