"""Matched widths remembered on disk, so that reading the workflow needs no torch import.

Snakemake reads the Snakefile once where it is started and twice more inside every cluster job;
resolving `{match: arch}` widths builds the architectures (torch, ~1.5 s each time). The result
depends only on the architecture's settings, the MLP depth and the code that counts parameters,
so it is kept in a JSON file keyed by exactly those. A missing, unreadable or unwritable cache
only means computing again; a changed counting code changes every key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

from mtrl.config.settings import TrainConfig
from mtrl.files.provenance import source_hash

# the code a parameter count runs: the networks, the config's defaults, the env dimensions
COUNTING_CODE = ("mtrl/config/settings.py", "mtrl/nets/*.py", "mtrl/envs/benchmarks.py")


def cache_file() -> Path:
    """$MTRL_CACHE_DIR, else $XDG_CACHE_HOME/mtrl, else ~/.cache/mtrl; the file matched-widths.json."""
    root = os.environ.get("MTRL_CACHE_DIR")
    if not root:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mtrl")
    return Path(root) / "matched-widths.json"


@functools.cache
def _counting_code() -> str:
    return source_hash(COUNTING_CODE)


def cache_key(arch: TrainConfig, depth: int) -> str:
    settings = json.dumps([arch.to_dict(), depth, _counting_code()], sort_keys=True)
    return hashlib.sha256(settings.encode()).hexdigest()[:32]


def _read(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, int]) -> None:
    """Atomically (several jobs may read while one writes); silently not at all where it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
            json.dump(data, handle, sort_keys=True)
        os.replace(handle.name, path)
    except OSError:
        pass


def matched_width(arch: TrainConfig, depth: int) -> int:
    """mtrl.nets.matching.matched_width_for(arch, depth), from the cache when it holds it."""
    path, key = cache_file(), cache_key(arch, depth)
    width = _read(path).get(key)
    if isinstance(width, int) and width > 0:
        return width
    from mtrl.nets.matching import matched_width_for  # imports torch

    width = matched_width_for(arch, depth)
    _write(path, {**_read(path), key: width})
    return width
