"""Networks for multi-task SAC. Every network maps (x: (B, in) or (E, B, in), task: (B,) long)
to (E, B, out), carries E ensemble members in batched weights, and names its hidden features via
`hidden_layers()` (modules whose outputs, shaped (E, B, units), are what plasticity probes read)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from mtrl.config.settings import TrainConfig, require_resolved
from mtrl.nets.mlp import MultiHeadMLP

Role = Literal["actor", "critic"]

# The authors' output layers (every architecture): weights and biases U(-b, b), b = 1e-3 for the
# actor and 3e-3 for the critics; hidden layers keep He-uniform weights and zero biases.
HEAD_INIT_BOUND: dict[str, float] = {"actor": 1e-3, "critic": 3e-3}


def init_output_head_(head: nn.Module, bound: float) -> None:
    """Re-initialise every parameter of an output head (weights and biases) U(-bound, bound)."""
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.uniform_(-bound, bound)


def build_network(
    config: TrainConfig, role: Role, in_features: int, out_features: int, ensemble: int = 1
) -> nn.Module:
    """The network of `config.arch` (a resolved config) for the actor or the critic ensemble, output
    head initialised."""
    network = _build(require_resolved(config), role, in_features, out_features, ensemble)
    init_output_head_(network.head, HEAD_INIT_BOUND[role])
    return network


def _build(config: TrainConfig, role: Role, in_features: int, out_features: int, ensemble: int) -> nn.Module:
    # Every architecture but SM is `depth` layers of the role's width; SM has its own sizes.
    width = config.actor_width if role == "actor" else config.critic_width
    sized = {"width": width, "depth": config.depth, "ensemble": ensemble}
    io = (in_features, out_features, config.num_tasks)
    if config.arch == "mtmhsac":
        return MultiHeadMLP(*io, skip=config.skip, layer_norm=config.layer_norm, **sized)
    if config.arch == "sm":
        from mtrl.nets.soft_modularization import SoftModularization

        return SoftModularization.from_config(config, role, in_features, out_features, ensemble)
    if config.arch == "paco":
        from mtrl.nets.paco import PaCo

        return PaCo(*io, num_sets=config.paco_k, **sized)
    if config.arch == "moore":
        from mtrl.nets.moore import Moore

        return Moore(*io, num_experts=config.moore_experts, **sized)
    raise ValueError(f"unknown architecture {config.arch!r}")
