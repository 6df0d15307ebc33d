"""A diverged run is not retried: the workflow's train job records the divergence in the run
directory, and a later attempt of the same run (same settings, same code) fails at once with the same
line instead of training again to the same NaN. Other settings or code train again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORD_NAME = "diverged.json"


def record_path(run_dir: Path) -> Path:
    return run_dir / RECORD_NAME


def record_divergence(run_dir: Path, identity: dict[str, Any], code: str, message: str) -> None:
    """Note that the run of `identity` and `code` diverged, with its one-line message."""
    record = {"identity": identity, "code": code, "message": message}
    path = record_path(run_dir)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, sort_keys=True) + "\n")
    tmp.replace(path)


def earlier_divergence(run_dir: Path, identity: dict[str, Any], code: str) -> str | None:
    """The message of this very run's recorded divergence (same settings and code), else None."""
    try:
        record = json.loads(record_path(run_dir).read_text())
        same = record["identity"] == json.loads(json.dumps(identity)) and record["code"] == code
        return str(record["message"]) if same else None
    except (OSError, ValueError, KeyError, TypeError):  # none, or unreadable: train
        return None
