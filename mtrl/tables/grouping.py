"""Columns and grouping shared by every table: config columns, series columns, run groups, step alignment."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtrl.tables.runs import RunRef

CONFIG_KEYS = ("arch", "task_set", "actor_width", "critic_width", "depth", "skip")
CONFIG_DEFAULTS: dict[str, Any] = {
    "arch": "mtmhsac",
    "task_set": "mt10",
    "actor_width": 400,
    "critic_width": 400,
    "depth": 3,
    "skip": False,
}


def config_columns(config: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: config.get(key, CONFIG_DEFAULTS[key]) for key in CONFIG_KEYS}
    out["actor_width"], out["critic_width"], out["depth"] = (
        int(out["actor_width"]),
        int(out["critic_width"]),
        int(out["depth"]),
    )
    out["skip"] = bool(out["skip"])
    return out


def ref_columns(refs: Sequence[RunRef]) -> dict[str, Any]:
    first = refs[0]
    orders = [r.order for r in refs if r.order is not None]
    return {
        "panel": first.panel,
        "series": first.series,
        "label": first.label if first.label is not None else first.series,
        "order": float(min(orders)) if orders else math.nan,
    }


@dataclass
class Group:
    refs: list[RunRef] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)


def group_by(keyed: Sequence[tuple[tuple, RunRef, Any]]) -> list[Group]:
    """Group (key, ref, item) triples by key, keeping first-appearance order."""
    groups: dict[tuple, Group] = {}
    for key, ref, item in keyed:
        g = groups.setdefault(key, Group())
        g.refs.append(ref)
        g.items.append(item)
    return list(groups.values())


def common_prefix(steps: Sequence[np.ndarray], what: str) -> int:
    """Length of the shared prefix of several runs' step arrays; warns if lengths differ."""
    lengths = [len(s) for s in steps]
    n = min(lengths)
    if len(set(lengths)) > 1:
        warnings.warn(
            f"{what}: runs have different numbers of points {lengths}; truncating to the common "
            f"prefix of {n}",
            UserWarning,
            stacklevel=3,
        )
    ref = np.asarray(steps[0][:n])
    for s in steps[1:]:
        if not np.array_equal(np.asarray(s[:n]), ref):
            raise ValueError(f"{what}: runs have different step values; cannot align their curves")
    return n


def require_runs(runs: Sequence[RunRef], fn: str) -> None:
    if not runs:
        raise ValueError(f"{fn}: no runs given")
