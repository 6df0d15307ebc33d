"""Whether a whole result file is also plausible: its datasets' bytes are those written (a checksum
kept in the file) and every value the aggregation reads lies in its range.

The writer (`mtrl.files.result_files.write_atomic_h5`) seals each file with `seal`; `value_problem`
checks train.h5 (success in [0, 1], finite returns and losses, steps increasing and within the run's
total, means that agree with their rows, positive parameter counts) and plasticity.h5 (dormant
percentages in [0, 100], finite non-negative ranks and norms, steps increasing), then the checksum.
A file that fails is stale, as one that is not whole (`mtrl.files.completeness`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

CHECKSUM_ATTR = "checksum"


class DamagedResult(ValueError):
    """A result file that is not whole or not plausible, named with the dataset or value, in one line."""


# dataset -> (low, high) of its values, all finite; None: no bound on that side
TRAIN_RANGES: dict[str, tuple[float | None, float | None]] = {
    "eval/success": (0.0, 1.0),
    "eval/success_mean": (0.0, 1.0),
    "eval/return": (None, None),
    "eval/return_mean": (None, None),
    "train/critic_loss": (None, None),
    "train/actor_loss": (None, None),
    "train/alpha_loss": (None, None),
    "train/q_mean": (None, None),
    "train/entropy": (None, None),
    "train/sps": (0.0, None),
    "train/alpha": (0.0, None),
}
PLASTICITY_RANGES: dict[str, tuple[float | None, float | None]] = {
    "dormant_pct": (0.0, 100.0),
    "dormant_pct_total": (0.0, 100.0),
    "srank": (0.0, None),
    "feature_norm": (0.0, None),
    "param_norm": (0.0, None),
    "grad_norm": (0.0, None),
}
PLASTICITY_NETWORKS = ("actor", "critic0", "critic1")


def datasets_checksum(handle: h5py.File) -> str:
    """sha256 over every dataset of the file (name, dtype, shape and bytes, in name order)."""
    names: list[str] = []
    handle.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    digest = hashlib.sha256()
    for name in sorted(names):
        data = np.ascontiguousarray(handle[name][()])
        digest.update(f"{name}\0{data.dtype.str}\0{data.shape}\0".encode())
        digest.update(data.tobytes())
    return "sha256:" + digest.hexdigest()


def seal(handle: h5py.File) -> None:
    """Record the checksum of the datasets now in `handle` (the last step of writing a result file)."""
    handle.attrs[CHECKSUM_ATTR] = datasets_checksum(handle)


def checksum_problem(handle: h5py.File) -> str | None:
    recorded = handle.attrs.get(CHECKSUM_ATTR)
    if recorded is None:
        return "damaged (no checksum of its datasets: not written whole by this mtrl)"
    if str(recorded) != datasets_checksum(handle):
        return "damaged (checksum of its datasets differs from the one written: bytes changed since)"
    return None


def value_problem(handle: h5py.File, plasticity: bool) -> str | None:
    """'damaged (<dataset>[<index>] = <value> ...)' for the first implausible value, or a checksum
    that disagrees; None if every value is in range and the bytes are those written."""
    checks = _plasticity_checks(handle) if plasticity else _train_checks(handle)
    for check in checks:
        problem = check()
        if problem:
            return f"damaged ({problem})"
    return checksum_problem(handle)


def _out_of_range(name: str, values: np.ndarray, low: float | None, high: float | None) -> str | None:
    """The first value of dataset `name` that is not finite or lies outside [low, high]."""
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if low is not None:
        bad |= values < low
    if high is not None:
        bad |= values > high
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    where = f"{name}[{', '.join(map(str, index))}]" if index else name
    value = float(values[index])
    if not np.isfinite(value):
        return f"{where} = {value} is not finite"
    span = f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
    return f"{where} = {value!r} is outside {span}"


def _steps_problem(name: str, steps: np.ndarray, total: int | None) -> str | None:
    """Steps must be whole, non-negative, strictly increasing and at most the run's total."""
    steps = np.asarray(steps)
    if steps.size and not np.issubdtype(steps.dtype, np.integer):
        return f"{name} holds {steps.dtype} values, not whole steps"
    problem = _out_of_range(name, steps, 0, total)
    if problem:
        return problem
    back = np.flatnonzero(np.diff(steps) <= 0)
    if back.size:
        i = int(back[0]) + 1
        return f"{name}[{i}] = {steps[i]} does not follow {steps[i - 1]} (steps must increase)"
    return None


def _mean_problem(name: str, means: np.ndarray, rows: np.ndarray) -> str | None:
    """A per-evaluation mean that is not the mean of its row."""
    off = np.flatnonzero(~np.isclose(means, rows.mean(axis=1), rtol=1e-9, atol=1e-9))
    if off.size:
        i = int(off[0])
        return f"{name}[{i}] = {means[i]!r} is not the mean of its row ({rows[i].mean()!r})"
    return None


def _train_checks(handle: h5py.File) -> list[Callable[[], str | None]]:
    total = json.loads(handle.attrs["config"]).get("total_steps")
    total = int(total) if isinstance(total, int | float) else None
    checks = [
        lambda: _steps_problem("eval/step", handle["eval/step"][()], total),
        lambda: _steps_problem("train/step", handle["train/step"][()], total),
    ]
    checks += [
        lambda name=name, low=low, high=high: _out_of_range(name, handle[name][()], low, high)
        for name, (low, high) in TRAIN_RANGES.items()
    ]
    checks += [
        lambda kind=kind: _mean_problem(
            f"eval/{kind}_mean", handle[f"eval/{kind}_mean"][()], handle[f"eval/{kind}"][()]
        )
        for kind in ("success", "return")
    ]
    checks += [
        lambda key=key: _out_of_range(f"attribute {key}", handle.attrs[key], 1, None)
        for key in ("actor_params", "critic_params")
    ]
    return checks


def _plasticity_checks(handle: h5py.File) -> list[Callable[[], str | None]]:
    taus = handle.attrs["taus"]
    taus = json.loads(taus) if isinstance(taus, bytes | str) else taus
    checks = [
        lambda: _steps_problem("step", handle["step"][()], None),
        lambda: _out_of_range("attribute taus", np.asarray(taus, dtype=np.float64), 0.0, 1.0),
    ]
    checks += [
        lambda name=f"{net}/{metric}", low=low, high=high: _out_of_range(name, handle[name][()], low, high)
        for net in PLASTICITY_NETWORKS
        for metric, (low, high) in PLASTICITY_RANGES.items()
    ]
    return checks


# ---------------------------------------------------------------- a figure's table (CSV)
def file_sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def table_problem(table: Path) -> str | None:
    """Why a figure's table (tables/<figure>.csv) is not the one its aggregation wrote, or None: its
    provenance JSON beside it records the table's checksum (`table_sha256`)."""
    provenance = table.with_suffix(".provenance.json")
    try:
        recorded = json.loads(provenance.read_text()).get("table_sha256")
        actual = file_sha256(table)
    except (OSError, ValueError, AttributeError) as exc:
        return f"unreadable ({type(exc).__name__}: {' '.join(str(exc).split())})"
    if recorded != actual:
        return "damaged (its checksum differs from the one its aggregation recorded)"
    return None
