"""Runtime of a training job from measured throughput, and how many capped attempts it needs.

The table (benchmarks/results/runtime.csv) has one row per measured configuration:
    device,task_set,arch,actor_width,critic_width,depth,transitions_per_s,measured_on,source
A run's throughput is interpolated in log-log over its effective width (the root mean square of
the actor's and the two critics' widths, which tracks the FLOPs of an update) between rows of the
same device, task set, architecture and depth; beyond the measured widths it is extrapolated along
the outermost segment (throughput never rising with width). Where the target device has no row for
the run, rows of a less specific match are used and the estimate says so (`basis`, `measured`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mtrl.config import ConfigError, TrainConfig

T = TypeVar("T")
# what a measurement is of: device, task set, architecture (text) and sizes (integers)
KEY_COLUMNS = ("device", "task_set", "arch", "actor_width", "critic_width", "depth")
COLUMNS = (*KEY_COLUMNS, "transitions_per_s", "measured_on", "source")


@dataclass(frozen=True)
class Row:
    device: str
    task_set: str
    arch: str
    actor_width: int
    critic_width: int
    depth: int
    transitions_per_s: float

    @property
    def width(self) -> float:
        return effective_width(self.actor_width, self.critic_width)


@dataclass(frozen=True)
class Estimate:
    minutes: float  # the whole run, before any safety factor
    transitions_per_s: float
    measured: bool  # from rows of the target device, task set and architecture
    basis: str


def effective_width(actor: int, critic: int) -> float:
    return math.sqrt((actor**2 + 2 * critic**2) / 3)


def load_table(path: str | Path) -> list[Row]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"train_resources.runtime_table: {path} not found")
    return _read_measured(path, COLUMNS, "transitions_per_s", Row, lambda v: v > 0, "> 0")


def _interpolate(rows: list, width: float, value=lambda r: r.transitions_per_s) -> tuple[float, str]:
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


def estimate(config: TrainConfig, rows: list[Row], device: str) -> Estimate:
    """Minutes the run takes on `device`, from the most specific measured rows there are."""
    width = effective_width(config.actor_width, config.critic_width)
    target = device.lower()
    tiers = [
        ("device, task set, arch and depth", True, lambda r: r.depth == config.depth),
        ("device, task set and arch (other depth)", True, lambda r: True),
    ]
    candidates = [r for r in rows if r.device.lower() == target]
    family = [r for r in candidates if r.task_set == config.task_set and r.arch == config.arch]
    for label, measured, keep in tiers:
        chosen = [r for r in family if keep(r)]
        if chosen:
            tps, how = _interpolate(chosen, width)
            return _done(config, tps, measured, f"{how} from {device} rows ({label})")
    fallbacks = [
        (f"{device} rows of {config.arch} on another task set", lambda r: r.arch == config.arch, candidates),
        (f"{device} rows of mtmhsac", lambda r: r.arch == "mtmhsac", candidates),
    ]
    other = sorted({r.device for r in rows if r.device.lower() != target})
    for dev in other:
        on_dev = [r for r in rows if r.device == dev]
        fallbacks += [
            (
                f"{dev} rows of {config.task_set}/{config.arch}",
                lambda r: r.task_set == config.task_set and r.arch == config.arch,
                on_dev,
            ),
            (f"{dev} rows of {config.arch}", lambda r: r.arch == config.arch, on_dev),
            (f"{dev} rows of mtmhsac", lambda r: r.arch == "mtmhsac", on_dev),
        ]
    for label, keep, pool in fallbacks:
        chosen = [r for r in pool if keep(r)]
        if chosen:
            tps, how = _interpolate(chosen, width)
            return _done(config, tps, False, f"NOT MEASURED for this run on {device}: {how} from {label}")
    raise ConfigError("train_resources.runtime_table: no rows to estimate runtimes from")


def _done(config: TrainConfig, tps: float, measured: bool, basis: str) -> Estimate:
    return Estimate(config.total_steps / tps / 60, tps, measured, basis)


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


def plan(config: TrainConfig, rows: list[Row], resources: Mapping[str, Any]) -> Plan:
    """The runtime plan of a run under `train_resources` (max_runtime_minutes, signal_minutes, ...)."""
    est = estimate(config, rows, resources["runtime_device"])
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


def summary(plans: Mapping[str, Plan], resources: Mapping[str, Any]) -> list[str]:
    """Lines for the dry run and the log: the estimate, what is not measured on the device, and why."""
    device, cap = resources["runtime_device"], resources["max_runtime_minutes"]
    measured = [p for p in plans.values() if p.estimate.measured]
    hours = sum(p.estimate.minutes for p in measured) / 60
    lines = [
        f"mtrl: runtime: {len(measured)} of {len(plans)} runs estimated from {device} measurements "
        f"(~{hours:,.0f} {device} hours); jobs capped at {cap} min, "
        f"{sum(p.attempts > 1 for p in plans.values())} runs need several attempts"
    ]
    by_basis: dict[str, list[str]] = {}
    for rid, p in plans.items():
        if not p.estimate.measured:
            by_basis.setdefault(p.estimate.basis, []).append(rid)
    if by_basis:
        lines.append(
            f"mtrl: runtime NOT MEASURED on {device} for {len(plans) - len(measured)} runs "
            f"(add rows to {resources['runtime_table']}):"
        )
        lines += [f"  {len(rids)} runs (e.g. {rids[0]}): {basis}" for basis, rids in by_basis.items()]
    over = [rid for rid, p in plans.items() if p.attempts > int(resources["max_attempts"])]
    if over:
        lines.append(
            f"mtrl: {len(over)} runs need more than max_attempts={resources['max_attempts']} jobs by "
            f"this estimate (e.g. {over[0]}); they will not finish unless the estimate is too pessimistic"
        )
    return lines


# ---- several runs per GPU: a run whose loop keeps the GPU busy only a fraction of the time shares it
SHARE_COLUMNS = (
    *KEY_COLUMNS,
    "loop_vector_steps_per_s",
    "update_per_s",
    "busy_fraction",
    "measured_on",
    "source",
)


@dataclass(frozen=True)
class ShareRow:
    device: str
    task_set: str
    arch: str
    actor_width: int
    critic_width: int
    depth: int
    busy_fraction: float  # loop rate / update-alone rate: the share of the loop time the GPU computes

    @property
    def width(self) -> float:
        return effective_width(self.actor_width, self.critic_width)


@dataclass(frozen=True)
class Share:
    """How many runs of this kind one GPU holds, and from what."""

    k: int
    busy_fraction: float | None  # None: not measured on the device
    basis: str


def load_share_table(path: str | Path) -> list[ShareRow]:
    """Rows of gpu_share.csv; an absent table has none (every run then gets a GPU of its own)."""
    path = Path(path)
    if not path.is_file():
        return []
    return _read_measured(path, SHARE_COLUMNS, "busy_fraction", ShareRow, lambda v: 0 < v <= 1, "in (0, 1]")


def _read_measured(
    path: Path,
    columns: Sequence[str],
    value: str,
    make: Callable[..., T],
    valid: Callable[[float], bool],
    rule: str,
) -> list[T]:
    """Rows (device, task_set, arch, actor_width, critic_width, depth, value) of a measurement CSV;
    a missing column or a bad line is a ConfigError naming the file (and line)."""
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
                number = float(rec[value])
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{path}:{line}: {exc}") from None
            if not valid(number):
                raise ConfigError(f"{path}:{line}: {value} must be {rule}")
            rows.append(make(*keys, *sizes, number))
    return rows


def runs_per_gpu(
    config: TrainConfig, rows: list[ShareRow], device: str, max_runs: int, target_busy: float
) -> Share:
    """k = floor(target_busy / busy fraction) clamped to [1, max_runs]: runs that together keep one
    GPU about target_busy busy. The busy fraction is interpolated over width from rows of the same
    device, task set and architecture (same depth first); with none the run gets a GPU of its own."""
    family = [
        r
        for r in rows
        if r.device.lower() == device.lower() and r.task_set == config.task_set and r.arch == config.arch
    ]
    chosen = [r for r in family if r.depth == config.depth] or family
    if not chosen:
        return Share(1, None, f"NOT MEASURED on {device} for {config.task_set}/{config.arch}: one GPU each")
    width = effective_width(config.actor_width, config.critic_width)
    # interpolated as its inverse, a rate that falls with width: beyond the measured widths the
    # busy fraction is then never assumed to fall, so k errs towards fewer runs per GPU
    idle, how = _interpolate(chosen, width, value=lambda r: 1 / r.busy_fraction)
    busy = 1 / idle
    k = max(1, min(int(max_runs), math.floor(round(target_busy / busy, 9))))
    return Share(k, busy, f"busy {busy:.2f} ({how} from {device} rows)")


def share_summary(shares: Mapping[str, Share], resources: Mapping[str, Any]) -> list[str]:
    """Lines for the dry run: how many runs share a GPU (k runs per group job), which are not measured."""
    by_k: dict[int, int] = {}
    for share in shares.values():
        by_k[share.k] = by_k.get(share.k, 0) + 1
    shared = sum(n for k, n in by_k.items() if k > 1)
    groups = ", ".join(f"{n} runs {k} per GPU" for k, n in sorted(by_k.items()) if k > 1) or "none"
    lines = [f"mtrl: GPU sharing: {shared} of {len(shares)} runs share a GPU ({groups})"]
    unmeasured: dict[str, list[str]] = {}
    for rid, share in shares.items():
        if share.busy_fraction is None:
            unmeasured.setdefault(share.basis, []).append(rid)
    if unmeasured:
        lines.append(
            f"mtrl: GPU share NOT MEASURED for {sum(map(len, unmeasured.values()))} runs "
            f"(add rows to {resources['share_table']}; python benchmarks/gpu.py writes them):"
        )
        lines += [f"  {len(rids)} runs (e.g. {rids[0]}): {basis}" for basis, rids in unmeasured.items()]
    return lines
