# Grid expansion and input functions. The grid logic itself lives in mtrl.grid (tested without
# Snakemake); this file turns it into paths, params and resources.
import json
from pathlib import Path

from mtrl.config import ConfigError
from mtrl.grid import build_grid
from mtrl.provenance import code_hash

try:
    GRID = build_grid(config)
except ConfigError as exc:
    raise WorkflowError(f"invalid config: {exc}") from None

RESULTS = Path(config["results_dir"])
FIGURES_DIR = Path(config["figures_dir"])
PLASTICITY_FIGURES = {"fig6", "fig7", "fig11", "fig12"}
PLOTTED = [f for f in GRID.figures if f != "table1"]
CODE = {group: code_hash(group) for group in ("train", "probe", "aggregate", "plot")}
ENV = "../../envs/mtrl.yaml"


wildcard_constraints:
    run=r"mt[0-9a-z\-]+/[a-z]+/[^/]+/s[0-9]+",
    figure="|".join(GRID.figures) or "none",


def run_dir(run):
    return RESULTS / "runs" / run


def all_targets():
    targets = [FIGURES_DIR / f"{figure}.pdf" for figure in PLOTTED]
    if "table1" in GRID.figures:
        targets += [FIGURES_DIR / "table1.md", FIGURES_DIR / "table1.csv"]
    return targets


def train_config(wildcards):
    """The run's resolved TrainConfig as a plain dict: part of the job's params, so editing it reruns it."""
    return GRID.runs[wildcards.run].to_dict()


def _train_scale(wildcards):
    cfg = GRID.runs[wildcards.run]
    return cfg, max(cfg.actor_width, cfg.critic_width)


def train_runtime(wildcards, attempt):
    """Minutes: the task set's base, x(1 + width/2048), x the attempt number (a timed-out job gets longer)."""
    cfg, width = _train_scale(wildcards)
    base = config["train_resources"]["runtime_minutes"][cfg.task_set]
    return int(base * (1 + width / 2048) * attempt)


def train_mem_mb(wildcards, attempt):
    """Host memory: the task set's base (env processes, buffer copies) plus the width's share."""
    cfg, width = _train_scale(wildcards)
    base = config["train_resources"]["mem_mb"][cfg.task_set]
    return int(base * (1 + width / 8192) * (1 + 0.5 * (attempt - 1)))


def train_threads(wildcards):
    cfg = GRID.runs[wildcards.run]
    if cfg.vector_strategy == "sync":
        return 1
    return min(cfg.num_tasks + 1, config["train_resources"]["max_threads"])


def figure_runs(wildcards):
    """RunRefs of a figure as plain dicts (panel, series, run_dir, label, order): the aggregate's params."""
    return [
        {"panel": r.panel, "series": r.series, "run_dir": str(run_dir(r.run_id)), "label": r.label, "order": r.order}
        for r in GRID.figures[wildcards.figure]
    ]


def figure_inputs(wildcards):
    files = [run_dir(run) / "train.h5" for run in GRID.runs_of(wildcards.figure)]
    if wildcards.figure in PLASTICITY_FIGURES:
        files += [run_dir(run) / "plasticity.h5" for run in GRID.runs_of(wildcards.figure)]
    return files
