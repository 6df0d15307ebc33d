"""Where a run sits in a figure (`RunRef`) and reading its result files (train.h5, plasticity.h5)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mtrl.files.completeness import result_file_problem
from mtrl.files.integrity import DamagedResult
from mtrl.files.result_files import TrainResult, read_train_h5

__all__ = [
    "TRAIN_FILE",
    "PLASTICITY_FILE",
    "RunRef",
    "PlasticityResult",
    "read_plasticity_h5",
    "read_train",
    "read_plasticity",
]

TRAIN_FILE = "train.h5"
PLASTICITY_FILE = "plasticity.h5"


@dataclass(frozen=True)
class RunRef:
    """One run's place in a figure: subplot `panel`, line `series`, and its result directory."""

    panel: str
    series: str
    run_dir: Path
    label: str | None = None  # legend text; None -> series
    order: float | None = None  # sort key of the series in legends; None -> first appearance
    x_at: str | int | None = None  # Fig. 1's published x: an architecture (its actor count) or a number

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir))

    @property
    def train_path(self) -> Path:
        return self.run_dir / TRAIN_FILE

    @property
    def plasticity_path(self) -> Path:
        return self.run_dir / PLASTICITY_FILE


@dataclass(frozen=True)
class PlasticityResult:
    """The contents of one `plasticity.h5`."""

    taus: np.ndarray  # (T,)
    config: dict[str, Any]
    definitions: dict[str, str]
    step: np.ndarray  # (S,)
    layers: dict[str, list[str]]  # network -> L layer names
    metrics: dict[str, dict[str, np.ndarray]]  # network -> metric -> array


def _json_or_array(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        return json.loads(value)
    return np.asarray(value).tolist()


def read_plasticity_h5(path: str | Path) -> PlasticityResult:
    """Read a `plasticity.h5` (format in tests/fixtures_results.py and the probe's docs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing plasticity file: {path}")
    _check_whole(path, plasticity=True)
    with h5py.File(path, "r", locking=False) as handle:
        layers: dict[str, list[str]] = {}
        metrics: dict[str, dict[str, np.ndarray]] = {}
        for net in ("actor", "critic0", "critic1"):
            if net not in handle:
                continue
            group = handle[net]
            layers[net] = [str(x) for x in _json_or_array(group.attrs["layers"])]
            metrics[net] = {key: group[key][()] for key in group if isinstance(group[key], h5py.Dataset)}
        return PlasticityResult(
            taus=np.asarray(_json_or_array(handle.attrs["taus"]), dtype=np.float64).reshape(-1),
            config=_json_or_array(handle.attrs["config"]) if "config" in handle.attrs else {},
            definitions=(
                _json_or_array(handle.attrs["definitions"]) if "definitions" in handle.attrs else {}
            ),
            step=np.asarray(handle["step"][()], dtype=np.int64),
            layers=layers,
            metrics=metrics,
        )


def _check_whole(path: Path, plasticity: bool) -> None:
    """DamagedResult naming `path` and the dataset or value if it is not whole and plausible: the
    aggregation reads no damaged result, whoever calls it (`mtrl.files.completeness`)."""
    problem = result_file_problem(path, plasticity)
    if problem:
        raise DamagedResult(f"{path}: {problem}; make it again (the workflow reruns it)")


def read_train(ref: RunRef) -> TrainResult:
    if not ref.train_path.is_file():
        raise FileNotFoundError(f"missing train file of run {ref.panel}/{ref.series}: {ref.train_path}")
    _check_whole(ref.train_path, plasticity=False)
    return read_train_h5(ref.train_path)


def read_plasticity(ref: RunRef) -> PlasticityResult:
    if not ref.plasticity_path.is_file():
        raise FileNotFoundError(
            f"missing plasticity file of run {ref.panel}/{ref.series}: {ref.plasticity_path}"
        )
    return read_plasticity_h5(ref.plasticity_path)
