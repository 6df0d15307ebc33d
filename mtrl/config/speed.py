"""What the `auto` speed settings resolve to on a device: the fast path on a GPU, the reference on a CPU.

`update_mode: auto` is `graph` on CUDA (the whole update captured once as a CUDA graph) and `eager`
elsewhere; `matmul_precision: auto` is `tf32` on CUDA (JAX's default matmul precision on Ampere and
Hopper GPUs, hence what the authors' runs used) and `float32` elsewhere. A run's identity keeps the
word `auto`: the workflow computes identities on a submit host without a GPU, and `device` is an
execution setting. The values a run resolved to are recorded beside it (`provenance_update_mode`,
`provenance_matmul_precision`). No torch here: the runtime plan resolves settings too.
"""

from __future__ import annotations

from typing import NamedTuple

AUTO = "auto"


class Speed(NamedTuple):
    """The concrete update mode and matmul precision a run uses."""

    update_mode: str
    matmul_precision: str


ON_CUDA = Speed("graph", "tf32")
ON_CPU = Speed("eager", "float32")


def resolve_speed(update_mode: str, matmul_precision: str, device_type: str) -> Speed:
    """`auto` replaced by the default of `device_type` ("cuda" or "cpu"); explicit values kept."""
    default = ON_CUDA if device_type == "cuda" else ON_CPU
    return Speed(
        default.update_mode if update_mode == AUTO else update_mode,
        default.matmul_precision if matmul_precision == AUTO else matmul_precision,
    )


def resolve_eval_mode(eval_mode: str, device_type: str) -> str:
    """`auto` evaluation is `background` on CUDA (the GPU's loop never waits for the evaluation envs) and
    `blocking` on a CPU, where a background evaluation takes cores the update needs (measured on a
    2-core CPU: benchmarks/results/README.md); explicit values are kept."""
    if eval_mode != AUTO:
        return eval_mode
    return "background" if device_type == "cuda" else "blocking"


def device_type_of(runtime_device: str) -> str:
    """The torch device type of a runtime-table device name: "cpu" stays, a GPU model is "cuda"."""
    return "cpu" if runtime_device.strip().lower() == "cpu" else "cuda"
