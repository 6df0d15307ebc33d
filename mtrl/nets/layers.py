"""Ensemble building blocks: E independent layers evaluated in one batched matmul.

Every network in `mtrl.nets` carries a leading ensemble dimension E so that the two SAC
critics run as one `baddbmm` instead of two Python calls; the actor simply uses E = 1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def he_uniform_(weight: Tensor, fan_in: int) -> Tensor:
    """He-uniform (variance scaling 2.0, fan-in) initialisation, as in the study's JAX code."""
    bound = math.sqrt(6.0 / fan_in)
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


class EnsembleLinear(nn.Module):
    """E independent affine maps: (E, B, in) -> (E, B, out); He-uniform weights, zero bias."""

    def __init__(self, in_features: int, out_features: int, ensemble: int = 1) -> None:
        super().__init__()
        self.in_features, self.out_features, self.ensemble = in_features, out_features, ensemble
        self.weight = nn.Parameter(torch.empty(ensemble, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, out_features))
        he_uniform_(self.weight, in_features)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, ensemble={self.ensemble}"


class EnsembleLayerNorm(nn.Module):
    """Layer norm over the feature axis with a separate affine transform per ensemble member."""

    def __init__(self, features: int, ensemble: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ensemble, 1, features))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, features))

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps)
        return x * self.weight + self.bias


class MultiHead(nn.Module):
    """One output head per task; the head of each sample's task is chosen by index.

    All heads are computed in one matmul and the wanted slice gathered, so task i's loss
    back-propagates into head i only (the other slices receive exactly zero gradient).
    """

    def __init__(self, in_features: int, out_features: int, num_tasks: int, ensemble: int = 1) -> None:
        super().__init__()
        self.num_tasks, self.out_features = num_tasks, out_features
        self.linear = EnsembleLinear(in_features, num_tasks * out_features, ensemble)
        # He-uniform with the fan-in of one head (the same as of the stacked heads).

    def forward(self, h: Tensor, task: Tensor) -> Tensor:
        e, b, _ = h.shape
        out = self.linear(h).view(e, b, self.num_tasks, self.out_features)
        index = task.view(1, b, 1, 1).expand(e, b, 1, self.out_features)
        return out.gather(2, index).squeeze(2)


def expand_ensemble(x: Tensor, ensemble: int) -> Tensor:
    """(B, D) -> (E, B, D) view; (E, B, D) passes through unchanged."""
    return x.unsqueeze(0).expand(ensemble, *x.shape) if x.dim() == 2 else x


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars in a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
