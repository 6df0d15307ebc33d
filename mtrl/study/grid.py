"""The study as data: expand the workflow config's figures into runs with deterministic ids.

A figure is a list of *series*; a series names its `panel` and `series` (legend; a template such
as "width {actor_width}" is filled from each grid point, giving one line per point) and sets
TrainConfig keys, where a list value is a grid axis (cartesian product), `width` sets actor and
critic width together, and `{match: sm|paco|moore}` as a width means "the largest plain MLP with at
most that architecture's actor and critic parameter counts" (computed, see mtrl.nets.matching).
Every grid point is trained once per seed, and the run id is a readable path derived from it:

    mt10/mtmhsac/a1024-c1024-d3/s3        mt10/moore/a400-c400-d3/s0        mt10/mtmhsac/a656-c656-d4-skip/s1
    mt10/sm/a400-c400-d3-rewv1/s0         (Meta-World's v1 rewards; the default v2 adds nothing)

A series with `extension: NAME` belongs to an extension of the published figures (e.g. width 8192):
it is part of the study only when NAME is listed in the config's `extensions`; `x_at` (an
architecture or a number) says where Fig. 1 places the series' runs when it draws them as
published (`mtrl.tables.success.success_final`).

Two series that reach the same grid point share the run. Settings that are not part of the id
(steps, batch, ...) come from `run_defaults`, `task_set_defaults` and `arch_defaults`; a run id that
would stand for two different configs is an error. Only settings that change a run's result are its
identity (mtrl.files.provenance.identity): execution settings (device, vector strategy, threads) come from
the defaults sections at run time and may not be set per series.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mtrl.config.settings import ConfigError, TrainConfig
from mtrl.envs.benchmarks import TASK_SETS
from mtrl.figures import FIGURES
from mtrl.files.provenance import EXECUTION_KEYS, identity

SERIES_KEYS = {"panel", "series", "label", "seeds", "extension", "x_at"}
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
    x_at: str | int | None = None  # Fig. 1's published x: an architecture's actor count, or a number


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


def _axes(series: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """Cartesian product of the series' list-valued keys; an empty list (no runs) is an error."""
    keys = [k for k in series if k not in SERIES_KEYS]
    values = [v if isinstance(v, list) else [v] for v in (series[k] for k in keys)]
    for key, value in [*zip(keys, values, strict=True), ("seeds", series.get("seeds", [0]))]:
        if isinstance(value, list) and not value:
            raise ConfigError(f"{where}.{key}: an empty list: the series would have no runs")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def _sections(study: Mapping[str, Any], task_set: str, arch: str) -> list[tuple[str, Mapping[str, Any]]]:
    """The defaults sections that apply to a run of `task_set` and `arch`, named, weakest first."""
    return [
        ("run_defaults", study.get("run_defaults", {})),
        (f"task_set_defaults.{task_set}", study.get("task_set_defaults", {}).get(task_set, {})),
        (f"arch_defaults.{arch}", study.get("arch_defaults", {}).get(arch, {})),
    ]


def _defaults(study: Mapping[str, Any], task_set: str, arch: str) -> dict[str, Any]:
    """run_defaults < task_set_defaults.<task_set> < arch_defaults.<arch>."""
    return {key: value for _, section in _sections(study, task_set, arch) for key, value in section.items()}


def _task_set_and_arch(point: Mapping[str, Any], study: Mapping[str, Any]) -> tuple[str, str]:
    task_set = point.get("task_set", study.get("run_defaults", {}).get("task_set", "mt10"))
    return task_set, point.get("arch", "mtmhsac")


def _merged(point: Mapping[str, Any], study: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults of the point's task set and architecture < the grid point."""
    merged = _defaults(study, *_task_set_and_arch(point, study))
    for key, value in point.items():
        if key == "width":
            merged["actor_width"] = merged["critic_width"] = value
        else:
            merged[key] = value
    return merged


def _resolve_match(values: dict[str, Any], study: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Replace `{match: arch}` widths by the matched MLP width for the run's task set and depth."""
    from mtrl.study.width_cache import matched_width  # mtrl.nets.matching's, remembered: no torch import

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
        values[key] = matched_width(arch.resolved(), int(values.get("depth", 3)))
    return values


def build_grid(study: Mapping[str, Any]) -> StudyGrid:
    """Expand the validated workflow config into runs and per-figure run lists.

    A grid point listed twice (a repeated list value, a series given twice) is one run with one
    place in its figure: it is trained once and counted once.
    """
    _check_keys(study)
    switched_on = _check_extensions(study)
    runs: dict[str, TrainConfig] = {}
    figures: dict[str, list[FigureRun]] = {}
    for figure, series_list in study["figures"].items():
        if figure not in FIGURES:
            raise ConfigError(
                f"figures.{figure}: no such figure in mtrl/figures.py; one of {', '.join(FIGURES)}"
            )
        if not series_list:
            raise ConfigError(f"figures.{figure}: no series: the figure would have no runs")
        entries: dict[tuple[str, str, str], FigureRun] = {}
        for index, series in enumerate(series_list):
            if "extension" in series and series["extension"] not in switched_on:
                continue  # a series of an extension that is off: not part of the study
            for entry in _series_runs(study, figure, index, series, runs):
                entries.setdefault((entry.panel, entry.series, entry.run_id), entry)
        if entries:  # a figure made only of extensions that are off is not drawn
            figures[figure] = list(entries.values())
    return StudyGrid(runs, figures)


def figure_extensions(study: Mapping[str, Any]) -> dict[str, list[str]]:
    """The extensions switched on that change a figure's table (the registry's `Figure.extensions`)."""
    on = study.get("extensions") or []
    return {name: [e for e in on if e in figure.extensions] for name, figure in FIGURES.items()}


def _check_extensions(study: Mapping[str, Any]) -> list[str]:
    """The config's `extensions`, each of which a series or a figure of the registry must define."""
    on = list(study.get("extensions") or [])
    known = {s["extension"] for series in study["figures"].values() for s in series or [] if "extension" in s}
    known |= {name for figure in FIGURES.values() for name in figure.extensions}
    unknown = [name for name in on if name not in known]
    if unknown:
        raise ConfigError(
            f"extensions: {unknown[0]!r} is defined by no series (`extension:`) and no figure of "
            f"mtrl/figures.py; known: {', '.join(sorted(known)) or 'none'}"
        )
    return on


def _series_runs(
    study: Mapping[str, Any], figure: str, index: int, series: Mapping[str, Any], runs: dict[str, TrainConfig]
) -> list[FigureRun]:
    """The runs of one series of a figure (added to `runs`), as the figure's entries."""
    where = f"figures.{figure}[{index}] ({series.get('series', '?')})"
    extra = sorted(k for k in series if k not in SERIES_KEYS | ID_KEYS | {"width"})
    for key in set(series) & set(EXECUTION_KEYS):
        raise ConfigError(
            f"{where}.{key}: an execution setting; set it in run_defaults, task_set_defaults "
            "or arch_defaults (it is not part of a run's identity)"
        )
    entries = []
    for k, point in enumerate(_axes(series, where)):
        for seed in series.get("seeds", study.get("seeds", [0])):
            config = _point_config({**point, "seed": seed}, study, where)
            rid = run_id(config, extra)
            if rid in runs and identity(runs[rid].to_dict()) != identity(config.to_dict()):
                raise ConfigError(f"{where}: run {rid} is defined twice with different settings")
            runs[rid] = config
            fields = config.to_dict()
            name = _filled(series["series"], fields, f"{where}.series")
            label = series.get("label") and _filled(series["label"], fields, f"{where}.label")
            entries.append(FigureRun(series["panel"], name, rid, label, index + k / 1000, series.get("x_at")))
    return entries


def _point_config(point: Mapping[str, Any], study: Mapping[str, Any], where: str) -> TrainConfig:
    """The resolved config of one grid point of a series: defaults < the point, widths matched."""
    values = _resolve_match(_merged(point, study), study, where)
    task_set = values.get("task_set", "mt10")
    if "total_steps" not in values and task_set in TASK_SETS:  # an unknown one: TrainConfig names it
        raise ConfigError(
            f"task_set_defaults.{task_set}.total_steps: {where} trains {task_set}, "
            f"which has no step settings (total_steps, eval_every, ...)"
        )
    try:
        return TrainConfig.from_dict(values).resolved()
    except ConfigError as exc:
        raise ConfigError(_locate(str(exc), point, study, where)) from None


def _filled(template: str, fields: Mapping[str, Any], where: str) -> str:
    """A series or label template filled from a run's settings; ConfigError naming a bad placeholder."""
    try:
        return template.format(**fields)
    except KeyError as exc:
        raise ConfigError(
            f"{where}: {{{exc.args[0]}}} in {template!r} is not a run setting (e.g. {{actor_width}}, "
            "{depth}, {arch})"
        ) from None
    except (IndexError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{where}: cannot fill {template!r} ({exc})") from None


def _check_keys(study: Mapping[str, Any]) -> None:
    """Every settings key is a TrainConfig key, named where it is set; there is a figure to make."""
    if not study.get("figures"):
        raise ConfigError("figures: no figures to make (see config/config.yaml for the paper's study)")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    sections = [("run_defaults", study.get("run_defaults") or {})]
    for group in ("task_set_defaults", "arch_defaults"):
        sections += [(f"{group}.{name}", values or {}) for name, values in (study.get(group) or {}).items()]
    for figure, series_list in study["figures"].items():
        for index, series in enumerate(series_list or []):
            where = f"figures.{figure}[{index}] ({series.get('series', '?')})"
            sections.append((where, {k: v for k, v in series.items() if k not in SERIES_KEYS | {"width"}}))
    for where, values in sections:
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown config key(s): {', '.join(unknown)}")


def _locate(message: str, point: Mapping[str, Any], study: Mapping[str, Any], where: str) -> str:
    """Prefix a TrainConfig error with where its key's value was set (series or a defaults section)."""
    key = message.split(":", 1)[0].strip()
    if key in point or (key in ("actor_width", "critic_width") and "width" in point):
        return f"{where}.{key}: {message.split(':', 1)[-1].strip()}"
    for section, values in reversed(_sections(study, *_task_set_and_arch(point, study))):  # strongest first
        if key in values:
            return f"{section}.{key}: {message.split(':', 1)[-1].strip()} (used by {where})"
    return f"{where}: {message}"


def execution_settings(study: Mapping[str, Any], task_set: str, arch: str) -> dict[str, Any]:
    """Execution settings (not part of a run's identity) for a run, from the defaults sections."""
    merged = _defaults(study, task_set, arch)
    return {k: merged[k] for k in EXECUTION_KEYS if k in merged}


def validate_study(study: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """Check the workflow config against its JSON schema and fill defaults; errors name the key."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(study))
    if error is not None:
        path = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in error.absolute_path)
        path = path.replace(".[", "[") or "config"
        message = error.message if len(error.message) < 200 else error.message[:200] + "..."
        unknown_key = error.validator == "additionalProperties"
        known = sorted(error.schema.get("properties", {})) if unknown_key else []
        if known and isinstance(error.instance, dict) and not error.schema.get("patternProperties"):
            unknown = next(str(key) for key in error.instance if key not in known)
            where = f"{path}.{unknown}" if error.absolute_path else unknown
            raise ConfigError(f"{where}: unknown key (known: {', '.join(known)})")
        raise ConfigError(f"{path}: {message}")
    for key, spec in schema.get("properties", {}).items():
        if "default" in spec and key not in study:
            study[key] = spec["default"]
        if spec.get("type") == "object" and isinstance(study.get(key), dict):
            for sub, sub_spec in spec.get("properties", {}).items():
                if "default" in sub_spec and sub not in study[key]:
                    study[key][sub] = sub_spec["default"]
