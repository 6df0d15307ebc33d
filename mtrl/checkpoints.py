"""Checkpoint files of a run: one full resume checkpoint (overwritten) and network-only probe checkpoints.

  checkpoints/resume.pt              everything needed to continue bit-for-bit (incl. replay buffer)
  checkpoints/resume.prev.pt         the resume checkpoint before it (fallback if resume.pt is damaged)
  checkpoints/probe/step_{S:012d}.pt actor, critic and log-alpha at total env step S, with the probe
                                     batch: one training batch drawn (fixed seed) from the buffer
                                     at step S (step 0: at the end of the first episode)
All are written to a temporary name, synced and renamed, so a kill never leaves a half-written file.

File format: the header `MTRLCKPT1\\n`, the SHA-256 of the payload (32 bytes), the payload's length
(8 bytes, little-endian), then the payload, a `torch.save` archive. Loading checks length and
checksum, so truncation and bit flips are detected, not just unloadable files. Files without the
header (written before checksums) still load, unchecked.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported where used, so the CLI can name a damaged file without loading it
    import torch

PROBE_PATTERN = re.compile(r"step_(\d{12})\.pt$")
MAGIC = b"MTRLCKPT1\n"
HEADER_LEN = len(MAGIC) + 32 + 8


class CheckpointError(Exception):
    """A checkpoint file that is missing, truncated, damaged or cannot be written; the message names it."""


class _HashingWriter:
    """A write-only file wrapper that hashes and counts what passes through (torch.save streams into it)."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.hash, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def payload_bytes(obj: Any) -> int:
    """About how many bytes `obj` takes when saved: the sum of its tensors and arrays."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(payload_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(payload_bytes(v) for v in obj)
    return 0


def _mb(size: float) -> str:
    return f"{size / 2**20:,.1f} MB"


def save_atomic(obj: Any, path: Path, keep_previous: bool = False) -> None:
    """Write `obj` with a checksum to a temporary file, sync it, and rename it to `path`.

    With `keep_previous`, the file it replaces is kept as `previous_path(path)` (the one before that
    is deleted first, to make room). A failed write removes the temporary file, leaves `path` as it
    was and raises CheckpointError naming the file (and, when the disk is full, the space needed).
    """
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if keep_previous:
        previous_path(path).unlink(missing_ok=True)
    try:
        with open(tmp, "wb") as handle:
            handle.write(MAGIC + bytes(40))
            writer = _HashingWriter(handle)
            torch.save(obj, writer)
            handle.seek(len(MAGIC))
            handle.write(writer.hash.digest() + writer.size.to_bytes(8, "little"))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        kept = "; the previous file is intact" if path.exists() else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(path.parent).free
            raise CheckpointError(
                f"{path}: no space left on the device: needs about {_mb(payload_bytes(obj))}, "
                f"{_mb(free)} free{kept}"
            ) from None
        raise CheckpointError(f"{path}: cannot write ({exc.strerror or exc}){kept}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if keep_previous and path.exists():
        os.replace(path, previous_path(path))
    os.replace(tmp, path)


def load(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint onto `device` (a GPU-written checkpoint loads on a CPU-only machine).

    Byte tensors stay on the CPU: they are RNG states (`mtrl.rng_state`), which torch sets only
    from CPU tensors, whatever device the generator draws on. Raises CheckpointError naming the
    file if it is missing, empty, truncated, fails its checksum or is not a torch archive.
    """
    import torch

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise CheckpointError(f"{path}: empty file")
    payload: bytes | memoryview = data
    if data.startswith(MAGIC):
        if len(data) < HEADER_LEN:
            raise CheckpointError(f"{path}: truncated (header incomplete)")
        digest = data[len(MAGIC) : len(MAGIC) + 32]
        length = int.from_bytes(data[len(MAGIC) + 32 : HEADER_LEN], "little")
        payload = memoryview(data)[HEADER_LEN:]
        if len(payload) != length:
            raise CheckpointError(f"{path}: truncated or padded ({len(payload)} of {length} bytes)")
        if hashlib.sha256(payload).digest() != digest:
            raise CheckpointError(f"{path}: damaged (checksum mismatch)")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same: unreadable
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(state).__name__})")
    return _to_device(state, torch.device(device))


def _to_device(obj: Any, device: torch.device) -> Any:
    """`obj` with every tensor but byte tensors (RNG states) moved to `device`; dicts and lists in
    place, so a module's state_dict keeps its type and `_metadata`."""
    import torch

    if device.type == "cpu":
        return obj
    if isinstance(obj, torch.Tensor):
        return obj if obj.dtype == torch.uint8 else obj.to(device)
    if isinstance(obj, dict):
        for key, value in obj.items():
            obj[key] = _to_device(value, device)
    elif isinstance(obj, list):
        obj[:] = [_to_device(value, device) for value in obj]
    elif type(obj) is tuple:
        return tuple(_to_device(value, device) for value in obj)
    return obj


def resume_path(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "resume.pt"


def previous_path(path: Path) -> Path:
    """Where save_atomic(keep_previous=True) keeps the file it replaced: resume.pt -> resume.prev.pt."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def probe_path(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / "probe" / f"step_{step:012d}.pt"


def clear_run(run_dir: Path) -> None:
    """Remove every checkpoint of a run (before a fresh start)."""
    for path in [
        resume_path(run_dir),
        previous_path(resume_path(run_dir)),
        *(p for _, p in probe_checkpoints(run_dir)),
    ]:
        path.unlink(missing_ok=True)


def probe_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every probe checkpoint of a run, in step order."""
    folder = run_dir / "checkpoints" / "probe"
    found = [(int(m.group(1)), p) for p in folder.glob("step_*.pt") if (m := PROBE_PATTERN.search(p.name))]
    return sorted(found)
