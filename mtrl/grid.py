"""The study as data: expand the workflow config's figures into runs with deterministic ids.

A figure is a list of *series*; a series names its `panel` and `series` (legend; a template such
as "width {actor_width}" is filled from each grid point, giving one line per point) and sets
TrainConfig keys, where a list value is a grid axis (cartesian product), `width` sets actor and
critic width together, and `{match: sm|paco|moore}` as a width means "the largest plain MLP with at
most that architecture's actor and critic parameter counts" (computed, see mtrl.nets.matching).
Every grid point is trained once per seed, and the run id is a readable path derived from it:

    mt10/mtmhsac/a1024-c1024-d3/s3        mt10/moore/a400-c400-d3/s0        mt10/mtmhsac/a656-c656-d4-skip/s1
    mt10/sm/a400-c400-d3-rewv1/s0         (Meta-World's v1 rewards; the default v2 adds nothing)

Two series that reach the same grid point share the run. Settings that are not part of the id
(steps, batch, ...) come from `run_defaults`, `task_set_defaults` and `arch_defaults`; a run id that
would stand for two different configs is an error.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mtrl.config import ConfigError, TrainConfig

SERIES_KEYS = {"panel", "series", "label", "seeds"}
ID_KEYS = {
    "task_set",
    "mt1_task",
    "arch",
    "actor_width",
    "critic_width",
    "depth",
    "skip",
    "layer_norm",
    "seed",
    "reward_version",
}


@dataclass(frozen=True)
class FigureRun:
    """One run's role in a figure."""

    panel: str
    series: str
    run_id: str
    label: str | None = None
    order: float | None = None


@dataclass(frozen=True)
class StudyGrid:
    runs: dict[str, TrainConfig]  # run id -> resolved config
    figures: dict[str, list[FigureRun]]

    def runs_of(self, figure: str) -> list[str]:
        """Distinct run ids of a figure, in first-appearance order."""
        return list(dict.fromkeys(r.run_id for r in self.figures[figure]))


def run_id(config: TrainConfig, extra_keys: Sequence[str] = ()) -> str:
    """Readable, deterministic path of a grid point; `extra_keys` are non-id keys the series varied."""
    task = config.task_set if config.task_set != "mt1" else f"mt1-{config.mt1_task.removesuffix('-v3')}"
    shape = f"a{config.actor_width}-c{config.critic_width}-d{config.depth}"
    shape += "-skip" if config.skip else ""
    shape += "-ln" if config.layer_norm else ""
    if config.reward_version != TrainConfig.reward_version:  # only off the default: v2 ids stay as they were
        shape += f"-rew{config.reward_version}"
    for key in sorted(extra_keys):
        shape += f"-{key}{getattr(config, key)}"
    return f"{task}/{config.arch}/{shape}/s{config.seed}"


def _axes(series: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Cartesian product of the series' list-valued keys."""
    keys = [k for k in series if k not in SERIES_KEYS]
    values = [v if isinstance(v, list) else [v] for v in (series[k] for k in keys)]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def _merged(point: Mapping[str, Any], study: Mapping[str, Any]) -> dict[str, Any]:
    """run_defaults < task_set_defaults < arch_defaults < the grid point."""
    task_set = point.get("task_set", study.get("run_defaults", {}).get("task_set", "mt10"))
    arch = point.get("arch", "mtmhsac")
    merged = {
        **study.get("run_defaults", {}),
        **study.get("task_set_defaults", {}).get(task_set, {}),
        **study.get("arch_defaults", {}).get(arch, {}),
    }
    for key, value in point.items():
        if key == "width":
            merged["actor_width"] = merged["critic_width"] = value
        else:
            merged[key] = value
    return merged


def _resolve_match(values: dict[str, Any], study: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Replace `{match: arch}` widths by the matched MLP width for the run's task set and depth."""
    from mtrl.nets.matching import matched_width_for

    for key in ("actor_width", "critic_width"):
        spec = values.get(key)
        if not isinstance(spec, Mapping):
            continue
        if set(spec) != {"match"} or spec["match"] not in ("sm", "paco", "moore"):
            raise ConfigError(
                f"{where}: width must be an integer or {{match: sm|paco|moore}}, got {dict(spec)}"
            )
        arch_values = _merged({"task_set": values.get("task_set", "mt10"), "arch": spec["match"]}, study)
        arch_values.pop("seed", None)
        arch = TrainConfig.from_dict({**arch_values, "depth": study.get("match_arch_depth", 3)})
        values[key] = matched_width_for(arch.resolved(), int(values.get("depth", 3)))
    return values


def build_grid(study: Mapping[str, Any]) -> StudyGrid:
    """Expand the validated workflow config into runs and per-figure run lists."""
    runs: dict[str, TrainConfig] = {}
    figures: dict[str, list[FigureRun]] = {}
    default_seeds = study.get("seeds", [0])
    for figure, series_list in study.get("figures", {}).items():
        entries: list[FigureRun] = []
        for index, series in enumerate(series_list):
            where = f"figures.{figure}[{index}] ({series.get('series', '?')})"
            extra = sorted(k for k in series if k not in SERIES_KEYS | ID_KEYS | {"width"})
            for k, point in enumerate(_axes(series)):
                for seed in series.get("seeds", default_seeds):
                    values = _resolve_match(_merged({**point, "seed": seed}, study), study, where)
                    try:
                        config = TrainConfig.from_dict(values).resolved()
                    except ConfigError as exc:
                        raise ConfigError(f"{where}: {exc}") from None
                    rid = run_id(config, extra)
                    if rid in runs and runs[rid] != config:
                        raise ConfigError(f"{where}: run {rid} is defined twice with different settings")
                    runs[rid] = config
                    fields = config.to_dict()
                    name, label = series["series"].format(**fields), series.get("label")
                    entries.append(
                        FigureRun(
                            series["panel"], name, rid, label and label.format(**fields), index + k / 1000
                        )
                    )
        figures[figure] = entries
    return StudyGrid(runs, figures)
