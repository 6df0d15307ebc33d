"""Whether a result file is whole, and whether a train.h5 is a given run's finished result (same
identity and provenance: `train_h5_problem`). Whole means readable, holding every dataset the
aggregation reads, in shapes that agree with each other, and plausible (`mtrl.files.integrity`:
values in range, checksum as written). A file that is not (its datasets lost, zero bytes,
truncated, a value damaged) is stale: the workflow makes it again, `mtrl status` calls it stale, and
aggregation refuses it, naming it.

train.h5 (`mtrl.files.result_files`): N tasks (attribute `tasks`), K >= 1 evaluations, M training-log rows.
plasticity.h5 (`mtrl.probe.probing`): S >= 1 probed checkpoints, T taus, L hidden layers per network.
Neither torch nor the probe is imported: the workflow checks files while it builds its DAG.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mtrl.files.integrity import PLASTICITY_NETWORKS, value_problem
from mtrl.files.provenance import identity  # execution settings and other architectures' sizes aside
from mtrl.files.result_files import TRAIN_SCALARS

TRAIN_ATTRS = ("config", "tasks", "actor_params", "critic_params")
PLASTICITY_ATTRS = ("taus", "config")
# metric -> its shape in S probed steps, T taus and L layers (as mtrl.probe.probing.METRICS documents them)
PLASTICITY_SHAPES = {
    "dormant_pct": "STL",
    "dormant_pct_total": "ST",
    "srank": "SL",
    "feature_norm": "SL",
    "param_norm": "S",
    "grad_norm": "S",
}


def result_file_problem(path: Path, plasticity: bool | None = None) -> str | None:
    """What makes `path` (a train.h5 or plasticity.h5) unusable for aggregation, or None if whole and
    plausible (`mtrl.files.integrity`: every value in its range, the datasets' checksum as written)."""
    try:
        with h5py.File(path, "r", locking=False) as handle:  # NFS without locks reads it too
            if plasticity is None:  # told by its name
                plasticity = path.name.endswith("plasticity.h5")
            expected = _plasticity_shapes(handle) if plasticity else _train_shapes(handle)
            if isinstance(expected, str):
                return expected
            for key, shape in expected.items():
                if handle[key].shape != shape:
                    return f"incomplete ({key} has shape {handle[key].shape}, expected {shape})"
            for key in expected:
                handle[key][()]  # every byte the aggregation reads is readable
            return value_problem(handle, plasticity)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        return f"unreadable ({' '.join(str(exc).split()) or type(exc).__name__})"
    return None


def _missing(handle: h5py.File, datasets: list[str], attrs: list[str]) -> str | None:
    """'incomplete (no ...)' naming the datasets and attributes (`group/name` or `name`) not there;
    a group gone altogether is named once (`actor/`)."""
    lost: dict[str, None] = {}
    for key in [*datasets, *attrs]:
        group, _, name = key.rpartition("/")
        if group and group not in handle:
            lost[f"{group}/"] = None
        elif key in attrs and name not in (handle[group] if group else handle).attrs:
            lost[f"attribute {key}"] = None
        elif key in datasets and not isinstance(handle.get(key), h5py.Dataset):
            lost[key] = None
    return f"incomplete (no {', '.join(lost)})" if lost else None


def _train_shapes(handle: h5py.File) -> dict[str, tuple[int, ...]] | str:
    """train.h5's datasets and their shapes, or what it lacks."""
    datasets = ["eval/step", "eval/success", "eval/success_mean", "eval/return", "eval/return_mean"]
    datasets += ["train/step", *(f"train/{key}" for key in TRAIN_SCALARS), "train/alpha"]
    missing = _missing(handle, datasets, list(TRAIN_ATTRS))
    if missing:
        return missing
    n = len(json.loads(handle.attrs["tasks"]))
    k, m = handle["eval/step"].shape[0], handle["train/step"].shape[0]
    if n < 1 or k < 1:
        return f"incomplete ({n} tasks, {k} evaluations)"
    shapes = {"eval/step": (k,), "eval/success": (k, n), "eval/success_mean": (k,)}
    shapes |= {"eval/return": (k, n), "eval/return_mean": (k,), "train/step": (m,), "train/alpha": (m, n)}
    return shapes | {f"train/{key}": (m,) for key in TRAIN_SCALARS}


def _plasticity_shapes(handle: h5py.File) -> dict[str, tuple[int, ...]] | str:
    """plasticity.h5's datasets and their shapes, or what it lacks."""
    datasets = ["step", *(f"{net}/{metric}" for net in PLASTICITY_NETWORKS for metric in PLASTICITY_SHAPES)]
    missing = _missing(
        handle, datasets, [*PLASTICITY_ATTRS, *(f"{net}/layers" for net in PLASTICITY_NETWORKS)]
    )
    if missing:
        return missing
    sizes = {"S": handle["step"].shape[0], "T": _list_length(handle.attrs["taus"])}
    if sizes["S"] < 1 or sizes["T"] < 1:
        return f"incomplete ({sizes['S']} probed steps, {sizes['T']} taus)"
    shapes = {"step": (sizes["S"],)}
    for net in PLASTICITY_NETWORKS:
        sizes["L"] = _list_length(handle[net].attrs["layers"])
        shapes |= {
            f"{net}/{metric}": tuple(sizes[axis] for axis in axes)
            for metric, axes in PLASTICITY_SHAPES.items()
        }
    return shapes


def _list_length(value: Any) -> int:
    """Length of an attribute that holds a list: JSON text (the probe's) or an array."""
    if isinstance(value, bytes | str):
        value = json.loads(value)
    return int(np.asarray(value).size)


def train_h5_problem(path: Path, config: dict[str, Any], provenance: str = "") -> str | None:
    """Why `path` is not the finished result of the run `config` (a resolved config dict), or None.

    A file that is not whole (`result_file_problem`: unreadable, a dataset lost, shapes that disagree)
    or was written by another config (or, when both record one, another provenance) is not that
    run's result.
    """
    problem = result_file_problem(path)
    if problem:
        return problem
    try:
        with h5py.File(path, "r", locking=False) as handle:
            written = json.loads(handle.attrs["config"])
            old_provenance = handle.attrs.get("provenance", "")
    except (OSError, ValueError, TypeError) as exc:
        return f"unreadable ({' '.join(str(exc).split()) or type(exc).__name__})"
    written, config = identity(written), identity(config)
    if written != config:
        changed = sorted(k for k in set(written) | set(config) if written.get(k) != config.get(k))
        return f"written by a different config ({', '.join(changed)} differ)"
    if provenance and old_provenance and old_provenance != provenance:
        return "written by another code version (provenance differs)"
    return None
