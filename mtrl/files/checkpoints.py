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

import contextlib
import errno
import hashlib
import io
import logging
import os
import pickle
import re
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported where used, so the CLI can name a damaged file without loading it
    import torch

log = logging.getLogger("mtrl.files.checkpoints")
PROBE_PATTERN = re.compile(r"step_(\d{12})\.pt$")
MAGIC = b"MTRLCKPT1\n"
HEADER_LEN = len(MAGIC) + 32 + 8


class CheckpointError(Exception):
    """A checkpoint file that is missing, truncated, damaged or cannot be written; the message names it."""


class UnreadableFile(CheckpointError):
    """A checkpoint or result the file system refuses to read (permission denied, EIO, stale NFS, a
    directory in its place): not damaged, so never deleted or replaced by an older one."""


class _HashingWriter:
    """A write-only file wrapper that hashes and counts what passes through (torch.save streams into it).

    It keeps the OSError of a failed write: torch reports it as a RuntimeError of its zip writer.
    """

    def __init__(self, handle: Any) -> None:
        self.handle, self.hash, self.size = handle, hashlib.sha256(), 0
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

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


def human_bytes(size: float) -> str:
    """A size as people read it: 2.0 MB, 1.50 GB (not 0.00 GB for two megabytes)."""
    if size >= 2**30:
        return f"{size / 2**30:,.2f} GB"
    if size >= 2**20:
        return f"{size / 2**20:,.1f} MB"
    return f"{size / 2**10:,.1f} kB" if size >= 2**10 else f"{int(size)} bytes"


# errno -> what it means on a cluster, for the one-line message of a failed write
WRITE_PROBLEMS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted (an immutable or append-only file?)",
    errno.EIO: "input/output error (a failing disk or a network file system)",
    errno.ESTALE: "stale file handle (a network file system)",
}


def write_failure(path: Path, exc: OSError, needed: int | None = None) -> CheckpointError:
    """The one-line error of a write of `path` that failed with `exc`: what happened, and for a full
    disk or quota the space needed and free."""
    code = exc.errno or _errno_in_text(str(exc))  # h5py reports it only in its message
    what = WRITE_PROBLEMS.get(code) or " ".join(str(exc.strerror or exc).split())
    kept = "; the previous file is intact" if path.exists() else ""
    if code in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = human_bytes(shutil.disk_usage(path.parent).free)
        except OSError:
            free = "unknown"
        need = f"needs about {human_bytes(needed)}, " if needed else ""
        return CheckpointError(f"{path}: {what}: {need}{free} free{kept}")
    return CheckpointError(f"{path}: cannot write ({what}){kept}")


def problem_of(exc: OSError) -> str:
    """What a failed file operation means, in words (a directory in place of a file said so)."""
    if isinstance(exc, IsADirectoryError) or exc.errno == errno.EISDIR:
        return "a directory is in its place"
    code = exc.errno or _errno_in_text(str(exc))
    return WRITE_PROBLEMS.get(code) or " ".join(str(exc.strerror or exc).split())


def unreadable(path: Path, exc: OSError) -> UnreadableFile:
    """The one-line error of a file the file system refuses to read: kept, never taken for damaged."""
    return UnreadableFile(
        f"{path}: cannot read ({problem_of(exc)}); nothing was deleted: fix it and run again"
    )


def require_readable(path: Path) -> None:
    """UnreadableFile if the file system refuses to read `path` (permissions, EIO, a stale NFS
    handle, a directory in its place): before a file that fails to load is taken for damaged."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise unreadable(path, exc) from None


def remove_file(path: Path, why: str) -> None:
    """Delete `path` if it is there (`why`: what for, said if it fails); CheckpointError naming the
    file and the file system's refusal (an immutable file, a directory in its place, a read-only disk)."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot delete it {why} ({problem_of(exc)})") from None


def rename_file(source: Path, target: Path, why: str) -> None:
    """`os.replace(source, target)`; CheckpointError naming both files and the refusal if it fails."""
    try:
        os.replace(source, target)
    except OSError as exc:
        raise CheckpointError(
            f"{source}: cannot rename it to {target.name} {why} ({problem_of(exc)})"
        ) from None


def _errno_in_text(text: str) -> int:
    found = re.search(r"errno = (\d+)|\[Errno (\d+)\]", text)
    return int(found.group(1) or found.group(2)) if found else 0


def _os_error(exc: BaseException, writer: _HashingWriter | None) -> OSError | None:
    """The OSError behind a failed save: itself, the one the writer saw, or one in its chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return writer.error if writer is not None else None


def save_atomic(obj: Any, path: Path, keep_previous: bool = False) -> None:
    """Write `obj` with a checksum to a temporary file, sync it, and rename it to `path`.

    With `keep_previous`, the file it replaces is kept as `previous_path(path)` (the one before that
    is deleted first, to make room). A failed write (a full disk or quota, a read-only or network
    file system, an immutable file) removes the temporary file, leaves `path` as it was and raises
    CheckpointError naming the file and what happened (for a full disk, the space needed).
    """
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    writer = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if keep_previous:
            remove_file(previous_path(path), "to make room for the next resume checkpoint")
        with open(tmp, "wb") as handle:
            handle.write(MAGIC + bytes(40))
            writer = _HashingWriter(handle)
            torch.save(obj, writer)
            handle.seek(len(MAGIC))
            handle.write(writer.hash.digest() + writer.size.to_bytes(8, "little"))
            handle.flush()
            os.fsync(handle.fileno())
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        remove_quietly(tmp)
        error = _os_error(exc, writer)
        if error is None:  # torch's own failure, no file system behind it: a bug to show in full
            raise
        if keep_previous and not path.exists() and previous_path(path).exists():
            _restore_previous(path)
        raise write_failure(path, error, payload_bytes(obj)) from None
    except BaseException:
        remove_quietly(tmp)
        raise


def _restore_previous(path: Path) -> None:
    """Rename the previous file back to `path` (the last one was moved aside, the new one never came)."""
    with contextlib.suppress(OSError):  # else it stays as resume.prev.pt, which loading falls back to
        os.replace(previous_path(path), path)


def remove_quietly(path: Path) -> None:
    """Delete a temporary file if there is one; a file system that refuses even that changes nothing."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def load(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint onto `device` (a GPU-written checkpoint loads on a CPU-only machine).

    Byte tensors stay on the CPU: they are RNG states (`mtrl.run.rng_state`), which torch sets only
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
        raise unreadable(path, exc) from None
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


class _WithoutTensors(pickle.Unpickler):
    """Unpickles a torch archive's structure with every tensor (and torch object) as None."""

    def persistent_load(self, pid: Any) -> None:  # a tensor's storage: never read
        return None

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" or module.startswith("torch."):
            return _none
        return super().find_class(module, name)


def _none(*_args: Any, **_kwargs: Any) -> None:
    return None


def peek(path: Path) -> dict[str, Any]:
    """A checkpoint's contents with every tensor left out (None): its step, config and log without
    reading a replay buffer of gigabytes. Unchecked (no checksum), for reports such as `mtrl status`;
    CheckpointError naming the file if it is no readable checkpoint."""
    try:
        with open(path, "rb") as handle:
            handle.seek(HEADER_LEN if handle.read(len(MAGIC)) == MAGIC else 0)
            with zipfile.ZipFile(handle) as archive:  # zipfile skips the header before the archive
                name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                state = _WithoutTensors(io.BytesIO(archive.read(name))).load()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - a bad zip, no pickle, a bad pickle: all unreadable
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(state).__name__})")
    return state


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


def remove_finished(resume_file: Path) -> None:
    """Delete a finished run's resume checkpoints. One that cannot be deleted is warned of in a line,
    not raised: the run's train.h5 is written and complete, and a failed job would lose it."""
    for path in (resume_file, previous_path(resume_file)):
        try:
            remove_file(path, "now that the run is complete")
        except CheckpointError as exc:
            log.warning("%s; train.h5 is written and complete: delete it by hand", exc)


def clear_run(run_dir: Path) -> None:
    """Remove every checkpoint of a run (before a fresh start)."""
    for path in [
        resume_path(run_dir),
        previous_path(resume_path(run_dir)),
        *(p for _, p in probe_checkpoints(run_dir)),
    ]:
        remove_file(path, "to start the run afresh")


def probe_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every probe checkpoint of a run, in step order."""
    folder = run_dir / "checkpoints" / "probe"
    found = [(int(m.group(1)), p) for p in folder.glob("step_*.pt") if (m := PROBE_PATTERN.search(p.name))]
    return sorted(found)
