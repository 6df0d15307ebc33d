"""The result files of a run: `train.h5` (eval curve, training log, sizes, config) and its reader.

Layout of train.h5 (all steps are total env transitions over all tasks):
  attrs:   checksum (sha256 of every dataset: `mtrl.files.integrity`),
           config (JSON of the resolved TrainConfig), tasks (JSON list, one-hot order),
           actor_params, critic_params (one Q network), mtrl_version, device, wall_time_s,
           provenance_* (mtrl.files.provenance.provenance_record: code hash, run identity, packages,
           device model, git commit)
  eval/    step (K,) int64, success (K, N), success_mean (K,), return (K, N), return_mean (K,)
  train/   step (M,) int64, critic_loss, actor_loss, alpha_loss, q_mean, entropy (M,),
           alpha (M, N), sps (M,) env transitions per second since the previous row
The file is written to a temporary name and renamed, so it exists only when complete;
`mtrl.files.completeness` checks that one is whole. It is read without HDF5's file lock: it never changes
once in place, and network file systems without locks (NFS) would refuse a locked read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mtrl.files.integrity import seal

TRAIN_SCALARS = ("critic_loss", "actor_loss", "alpha_loss", "q_mean", "entropy", "sps")


@dataclass
class TrainLog:
    """Growing in-memory record of a run; lives inside resume checkpoints until written out."""

    eval_step: list[int] = field(default_factory=list)
    eval_success: list[list[float]] = field(default_factory=list)
    eval_return: list[list[float]] = field(default_factory=list)
    train_step: list[int] = field(default_factory=list)
    train_scalars: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in TRAIN_SCALARS})
    train_alpha: list[list[float]] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace every record by a saved one (TypeError if `state` is not a TrainLog's)."""
        self.__dict__.update(TrainLog(**state).__dict__)


def write_atomic_h5(path: Path, fill) -> None:
    """Create `path` by calling fill(h5file) on a temporary file, then renaming it into place.

    A write the file system refuses (full disk or quota, read-only, immutable, a network file
    system's error) raises CheckpointError naming `path` and leaves no temporary file behind.
    """
    from mtrl.files.checkpoints import remove_quietly, write_failure

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(tmp, "w") as handle:
            fill(handle)
            seal(handle)  # the checksum of its datasets, verified on every read (mtrl.files.integrity)
        os.replace(tmp, path)
    except OSError as exc:
        remove_quietly(tmp)
        raise write_failure(path, exc) from None
    except BaseException:
        remove_quietly(tmp)
        raise


def write_train_h5(path: Path, log: TrainLog, attrs: dict[str, Any], num_tasks: int) -> None:
    def fill(handle: h5py.File) -> None:
        for key, value in attrs.items():
            handle.attrs[key] = value
        ev = handle.create_group("eval")
        success = np.asarray(log.eval_success, dtype=np.float64).reshape(-1, num_tasks)
        returns = np.asarray(log.eval_return, dtype=np.float64).reshape(-1, num_tasks)
        ev["step"] = np.asarray(log.eval_step, dtype=np.int64)
        ev["success"], ev["success_mean"] = success, success.mean(axis=1)
        ev["return"], ev["return_mean"] = returns, returns.mean(axis=1)
        tr = handle.create_group("train")
        tr["step"] = np.asarray(log.train_step, dtype=np.int64)
        for key, values in log.train_scalars.items():
            tr[key] = np.asarray(values, dtype=np.float64)
        tr["alpha"] = np.asarray(log.train_alpha, dtype=np.float64).reshape(-1, num_tasks)

    write_atomic_h5(path, fill)


@dataclass(frozen=True)
class TrainResult:
    """What figures need from one run's train.h5."""

    config: dict[str, Any]
    tasks: list[str]
    actor_params: int
    critic_params: int
    eval_step: np.ndarray
    eval_success: np.ndarray  # (K, N)
    eval_return: np.ndarray  # (K, N)
    train: dict[str, np.ndarray]


def read_train_h5(path: str | Path) -> TrainResult:
    with h5py.File(path, "r", locking=False) as handle:
        return TrainResult(
            config=json.loads(handle.attrs["config"]),
            tasks=json.loads(handle.attrs["tasks"]),
            actor_params=int(handle.attrs["actor_params"]),
            critic_params=int(handle.attrs["critic_params"]),
            eval_step=handle["eval/step"][()],
            eval_success=handle["eval/success"][()],
            eval_return=handle["eval/return"][()],
            train={key: handle["train"][key][()] for key in handle["train"]},
        )


def provenance_attrs(path: str | Path, record: dict[str, str]) -> None:
    """Add provenance attributes (mtrl.files.provenance.provenance_record) to an existing HDF5 file."""
    with h5py.File(path, "a") as handle:
        for key, value in record.items():
            handle.attrs[key] = value


def read_provenance(path: str | Path) -> dict[str, str]:
    """The provenance_* attributes of a train.h5 or plasticity.h5 ({} if it has none)."""
    with h5py.File(path, "r", locking=False) as handle:
        return {key: str(value) for key, value in handle.attrs.items() if key.startswith("provenance_")}
