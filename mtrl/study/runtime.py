"""Runtime of a training job from measured throughput, and how many capped attempts it needs.

The table (benchmarks/results/runtime.csv) has one row per measured configuration and setting:
    device,task_set,arch,actor_width,critic_width,depth,update_mode,matmul_precision,overlap,
    transitions_per_s,measured_on,source
A run's rows are those of its device, task set, architecture and depth measured with the setting
it runs with there (`auto` resolved for the device: graph + tf32 on a GPU, eager + float32 on a
CPU; mtrl.config.speed). Its throughput is interpolated in log-log over its effective width (the root
mean square of the actor's and the two critics' widths, which tracks the FLOPs of an update);
beyond the measured widths it is extrapolated along the outermost segment (throughput never rising
with width). Where such rows are missing, rows of a less specific match are used and the estimate
says what is not measured (`gap`, `basis`).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from mtrl.config.settings import ConfigError, TrainConfig
from mtrl.config.speed import device_type_of, resolve_eval_mode, resolve_speed

T = TypeVar("T")
# what a measurement is of: device, task set, architecture (text) and sizes (integers) ...
KEY_COLUMNS = ("device", "task_set", "arch", "actor_width", "critic_width", "depth")
# ... and the speed settings it ran with
SETTING_COLUMNS = ("update_mode", "matmul_precision", "overlap")
COLUMNS = (*KEY_COLUMNS, *SETTING_COLUMNS, "transitions_per_s", "measured_on", "source")


class Setting(NamedTuple):
    """The speed settings a loop was measured with, or a run runs with (`auto` resolved)."""

    update_mode: str
    matmul_precision: str
    overlap: bool

    def __str__(self) -> str:
        return f"{self.update_mode}/{self.matmul_precision}/{'overlap' if self.overlap else 'exact'}"


def run_setting(config: TrainConfig, device: str) -> Setting:
    """The settings `config` runs with on `device` (a runtime-table device name: a GPU model or cpu)."""
    speed = resolve_speed(config.update_mode, config.matmul_precision, device_type_of(device))
    return Setting(speed.update_mode, speed.matmul_precision, config.overlap)


@dataclass(frozen=True)
class Measured:
    """What a measured row is of (KEY_COLUMNS) and the setting it ran with."""

    device: str
    task_set: str
    arch: str
    actor_width: int
    critic_width: int
    depth: int
    setting: Setting

    @property
    def width(self) -> float:
        return effective_width(self.actor_width, self.critic_width)


@dataclass(frozen=True)
class Row(Measured):
    transitions_per_s: float


@dataclass(frozen=True)
class Estimate:
    minutes: float  # the whole run, before any safety factor
    transitions_per_s: float
    measured: bool  # interpolated between rows of the device, setting, task set, arch and depth
    basis: str
    gap: str = ""  # what is not measured, in a few words ("" when measured)


def effective_width(actor: int, critic: int) -> float:
    return math.sqrt((actor**2 + 2 * critic**2) / 3)


def load_table(path: str | Path) -> list[Row]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"train_resources.runtime_table: {path} not found")
    return read_measured(path, COLUMNS, "transitions_per_s", Row, lambda v: v > 0, "> 0")


def interpolate(rows: list, width: float, value=lambda r: r.transitions_per_s) -> tuple[float, str]:
    """A rate that falls with width (throughput by default) at `width`, from rows of one
    configuration family (log-log, piecewise linear)."""
    by_width: dict[float, list[float]] = {}
    for row in rows:
        by_width.setdefault(row.width, []).append(value(row))
    points = sorted((w, math.exp(sum(map(math.log, v)) / len(v))) for w, v in by_width.items())
    if len(points) == 1:
        (w0, t0), how = points[0], "measured" if math.isclose(points[0][0], width) else "extrapolated"
        # one width only: assume an update's cost grows with the parameter count (width^2) above it
        return t0 * min(1.0, (w0 / width) ** 2), how
    for (w0, t0), (w1, t1) in zip(points, points[1:], strict=False):
        if w0 <= width <= w1:
            f = math.log(width / w0) / math.log(w1 / w0)
            return math.exp(math.log(t0) + f * math.log(t1 / t0)), "interpolated"
    if width < points[0][0]:  # smaller nets are not assumed faster than the smallest measured one
        return points[0][1], "extrapolated (as the smallest measured width)"
    (w0, t0), (w1, t1) = points[-2:]
    slope = min(0.0, math.log(t1 / t0) / math.log(w1 / w0))
    return math.exp(math.log(t1) + slope * math.log(width / w1)), "extrapolated"


def _pools(rows: list[Row], device: str, wanted: Setting) -> Iterator[tuple[str, Setting, str, list[Row]]]:
    """(device, setting, gap, rows) from the best match down: the target device with the run's
    setting, with its other settings, then every other device likewise."""
    target = device.lower()
    others = sorted({r.device for r in rows if r.device.lower() != target})
    for index, dev in enumerate([device, *others]):
        mine = [r for r in rows if r.device.lower() == dev.lower()]
        for setting in [wanted, *sorted({r.setting for r in mine} - {wanted}, key=str)]:
            if index == 0:
                gap = "" if setting == wanted else f"{wanted} not measured (from {setting} rows)"
            else:
                gap = f"not measured on {device} (from {dev} rows)"
            yield dev, setting, gap, [r for r in mine if r.setting == setting]


def _families(config: TrainConfig) -> list[tuple[str, str, Callable[[Row], bool]]]:
    """(rows described, gap, filter) from the run's own configuration family to the loosest."""
    ts, arch, depth = config.task_set, config.arch, config.depth
    same = lambda r: r.task_set == ts and r.arch == arch  # noqa: E731
    return [
        (f"{ts}/{arch} depth {depth}", "", lambda r: same(r) and r.depth == depth),
        (f"{ts}/{arch} of another depth", f"depth {depth} not measured", same),
        (f"{arch} on another task set", f"{ts}/{arch} not measured", lambda r: r.arch == arch),
        ("mtmhsac", f"{ts}/{arch} not measured", lambda r: r.arch == "mtmhsac"),
    ]


def estimate(config: TrainConfig, rows: list[Row], device: str) -> Estimate:
    """Minutes the run takes on `device`, from the most specific measured rows there are."""
    width = effective_width(config.actor_width, config.critic_width)
    wanted = run_setting(config, device)
    for dev, setting, pool_gap, pool in _pools(rows, device, wanted):
        for described, family_gap, keep in _families(config):
            chosen = [r for r in pool if keep(r)]
            if not chosen:
                continue
            tps, how = interpolate(chosen, width)
            in_range = how in ("measured", "interpolated")
            gap = pool_gap or family_gap or ("" if in_range else "width outside the measured widths")
            basis = f"{how} from {dev} rows of {described} measured with {setting}"
            if gap:
                basis = f"NOT MEASURED for this run on {device} with {wanted} ({gap}): {basis}"
            return _done(config, tps, not gap, basis, gap)
    raise ConfigError("train_resources.runtime_table: no rows to estimate runtimes from")


def _done(config: TrainConfig, tps: float, measured: bool, basis: str, gap: str) -> Estimate:
    return Estimate(config.total_steps / tps / 60, tps, measured, basis, gap)


@dataclass(frozen=True)
class Plan:
    """A training job's SLURM request: minutes per attempt and the attempts the run needs."""

    estimate: Estimate
    planned_minutes: int  # estimate x safety
    attempts: int
    cap_minutes: int
    margin_minutes: int = 0  # signal_minutes: the stop signal comes this long before the limit

    def minutes(self, attempt: int) -> int:
        """Time limit of one attempt: the whole plan if it fits (more on each retry) plus the margin,
        so that the stop signal never comes before the planned work is done; else the cap."""
        return min(self.cap_minutes, max(10, self.planned_minutes * attempt) + self.margin_minutes)


def blocking_evaluation_minutes(config: TrainConfig, device: str, transitions_per_s: float) -> float:
    """Minutes the run waits for its evaluations where they block (`eval_mode` on `device`): each one
    (at step 0, every eval_every and at the end) at most eval_episodes full episodes per task, at
    `transitions_per_s`; none where they run in the background."""
    if resolve_eval_mode(config.eval_mode, device_type_of(device)) != "blocking":
        return 0.0
    evaluations = config.total_steps // config.eval_every + 1 + bool(config.total_steps % config.eval_every)
    return evaluations * config.episode_transitions * config.eval_episodes / transitions_per_s / 60


def plan(config: TrainConfig, rows: list[Row], resources: Mapping[str, Any]) -> Plan:
    """The runtime plan of a run under `train_resources` (max_runtime_minutes, signal_minutes, ...):
    the loop's estimate plus the evaluations it waits for (`eval_transitions_per_s`)."""
    device = resources["runtime_device"]
    est = estimate(config, rows, device)
    waits = blocking_evaluation_minutes(config, device, float(resources.get("eval_transitions_per_s", 2000)))
    est = dataclasses.replace(est, minutes=est.minutes + waits)
    cap = int(resources["max_runtime_minutes"])
    usable = cap - float(resources["signal_minutes"])
    if usable <= 0:
        raise ConfigError("train_resources.signal_minutes: must be below max_runtime_minutes")
    planned = math.ceil(round(est.minutes * float(resources["runtime_safety"]), 6))
    margin = math.ceil(float(resources["signal_minutes"]))
    return Plan(est, planned, max(1, math.ceil(planned / usable)), cap, margin)


def retries(plans: Mapping[str, Plan], resources: Mapping[str, Any]) -> int:
    """Retries of the train rule: the attempts the longest run needs (at most max_attempts), less
    one, plus extra_attempts for failures that are not time limits."""
    needed = max((p.attempts for p in plans.values()), default=1)
    return min(needed, int(resources["max_attempts"])) - 1 + int(resources["extra_attempts"])


def _flag(text: str) -> bool:
    if text.strip().lower() not in ("true", "false"):
        raise ValueError(f"overlap must be true or false, got {text!r}")
    return text.strip().lower() == "true"


def read_measured(
    path: Path,
    columns: Sequence[str],
    value: str,
    make: Callable[..., T],
    valid: Callable[[float], bool],
    rule: str,
) -> list[T]:
    """Rows (device, task_set, arch, actor_width, critic_width, depth, setting, value) of a
    measurement CSV; a missing column or a bad line is a ConfigError naming the file (and line)."""
    rows = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(columns) - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, rec in enumerate(reader, start=2):
            try:
                keys = [rec[c].strip() for c in KEY_COLUMNS[:3]]
                sizes = [int(rec[c]) for c in KEY_COLUMNS[3:]]
                mode, precision = (rec[c].strip() for c in SETTING_COLUMNS[:2])
                setting = Setting(mode, precision, _flag(rec["overlap"]))
                number = float(rec[value])
            except (AttributeError, TypeError, ValueError) as exc:
                raise ConfigError(f"{path}:{line}: {exc}") from None
            if not valid(number):
                raise ConfigError(f"{path}:{line}: {value} must be {rule}")
            rows.append(make(*keys, *sizes, setting, number))
    return rows
