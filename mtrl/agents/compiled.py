"""The functions one update calls, plain or compiled (config `update_mode: compiled`).

`compiled` is the `graph` mode with its three losses (forward and backward) and the gradient clipping
compiled by `torch.compile` (inductor), so that their chains of elementwise ops run as a few fused
kernels, as XLA fuses the authors' jitted update; matmuls, Adam and Polyak stay as they are. It is
captured as one CUDA graph exactly as `graph` is (`mtrl.agents.capture`: compilation happens in the
warm-up before capture); on a CPU it runs uncaptured, with inductor's C++ kernels. The same maths and
the same random numbers as eager, not the same rounding: fused kernels round differently
(`tests/test_speed.py` states the tolerance).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn


class UpdateFunctions(NamedTuple):
    """What `MultiTaskSAC.learn` calls for the losses and the clipping."""

    critic_loss: Callable[..., tuple[Tensor, Tensor]]
    actor_loss: Callable[..., tuple[Tensor, Tensor]]
    alpha_loss: Callable[[Tensor, Tensor], Tensor]
    clip: Callable[[list[Tensor], float], None]


def clip_gradients(params: list[Tensor], max_norm: float) -> None:
    """Scale the gradients of `params` to a global norm of at most `max_norm` (in place)."""
    nn.utils.clip_grad_norm_(params, max_norm, foreach=True)


def update_functions(plain: UpdateFunctions, critic: nn.Module, update_mode: str) -> UpdateFunctions:
    """`plain` (the agent's own loss methods and `clip_gradients`) as they are, or compiled in
    `compiled` mode; `critic` is the module the actor's loss must not build gradients for."""
    if update_mode != "compiled":
        return plain

    def compile_(fn: Callable) -> Callable:
        return torch.compile(fn, dynamic=False)

    return UpdateFunctions(
        compile_(plain.critic_loss),
        _with_frozen(critic, compile_(plain.actor_loss)),
        compile_(plain.alpha_loss),
        compile_(plain.clip),
    )


def _with_frozen(module: nn.Module, fn: Callable) -> Callable:
    """`fn` called while `module`'s parameters do not require gradients. A compiled backward computes
    the gradient of every input that requires one (eager's `backward(inputs=...)` prunes them), and
    the actor's loss needs none for the critic: frozen, its weight-gradient matmuls are not built."""

    def call(*args, **kwargs):
        module.requires_grad_(False)
        try:
            return fn(*args, **kwargs)
        finally:
            module.requires_grad_(True)

    return call
