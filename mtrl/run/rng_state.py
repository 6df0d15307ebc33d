"""The random number generators of a run, saved into and restored from its resume checkpoint.

torch keeps every RNG state as a CPU ByteTensor, whatever device the generator draws on: the CPU
RNG, the CUDA RNG of the run's GPU and each `torch.Generator` (a CUDA generator's state is 16 bytes
of seed and offset). `checkpoints.load` keeps byte tensors on the CPU under any map location, and
`restore` copies a state to the CPU before setting it, so a run resumes on the device it ran on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

CPU_KEY = "torch_rng"  # torch's CPU RNG (the key older checkpoints used too)
CUDA_KEY = "cuda_rng"  # the default CUDA RNG of the run's GPU; absent for a CPU run
DEVICE_KEY = "rng_device"  # the device type the generators drew on


class RngStateError(ValueError):
    """A saved RNG state that cannot continue here (written on another kind of device)."""


def capture(device: torch.device, generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """Every RNG state of a run on `device`: torch's CPU RNG, the GPU's, and the named generators."""
    state: dict[str, Any] = {DEVICE_KEY: device.type, CPU_KEY: torch.get_rng_state()}
    if device.type == "cuda":
        state[CUDA_KEY] = torch.cuda.get_rng_state(device)
    state.update({name: generator.get_state() for name, generator in generators.items()})
    return state


def as_cpu_bytes(state: torch.Tensor) -> torch.Tensor:
    """An RNG state as torch's setters demand it: a contiguous CPU uint8 tensor."""
    if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
        raise TypeError(f"an RNG state must be a uint8 tensor, got {type(state).__name__}")
    if state.device.type == "meta":
        raise TypeError("an RNG state was mapped to the meta device: its bytes are lost")
    return state.to("cpu").contiguous()


def restore(
    state: Mapping[str, Any], device: torch.device, generators: Mapping[str, torch.Generator]
) -> None:
    """Set every RNG `capture` saved; RngStateError if the generators drew on another device type."""
    saved_on = state.get(DEVICE_KEY, device.type)  # checkpoints before this key: assume this device
    if saved_on != device.type:
        raise RngStateError(
            f"its random streams were drawn on {saved_on}, this run is on {device.type}: "
            f"resume it on {saved_on}"
        )
    torch.set_rng_state(as_cpu_bytes(state[CPU_KEY]))
    if device.type == "cuda" and CUDA_KEY in state:
        torch.cuda.set_rng_state(as_cpu_bytes(state[CUDA_KEY]), device)
    for name, generator in generators.items():
        generator.set_state(as_cpu_bytes(state[name]))
