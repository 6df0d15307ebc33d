"""Plasticity metrics: dormant neurons, effective rank (srank), feature, parameter and gradient norms.

Conventions
-----------
* Hidden activations come as (E, B, U) -- E ensemble members computed by one batched network
  (e.g. the two critics), B batch, U units -- or as (B, U), read as E = 1. Every metric on
  activations returns one result per member, shape (E,) or (E, U).
* Everything is computed on detached copies, in float64, so the functions accept float32 input,
  never modify their inputs, never build an autograd graph and work under `torch.no_grad`.
  Scores and percentages are returned as float64 tensors, ranks as int64.
* Dormant neurons follow Sokar et al. (2023): score_i = mean_batch |h_i| / mean_j mean_batch |h_j|,
  a unit is dormant when score_i <= tau. A layer whose activations are all exactly zero has every
  score 0 (all units dormant) instead of NaN. `dormant_percent_total` pools units over all layers
  (sum of dormant counts / sum of widths), as the paper reports "% over all hidden neurons".
* srank follows Kumar et al. (2021): the smallest k with sum_{i<=k} s_i / sum_i s_i >= 1 - delta,
  s the singular values of the (B, U) feature matrix in descending order; a zero matrix has srank 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

__all__ = [
    "DEFAULT_TAUS",
    "dormant_scores",
    "dormant_mask",
    "dormant_percent",
    "dormant_percent_total",
    "srank",
    "feature_norm",
    "param_norm",
    "param_norms_by_layer",
    "param_norm_per_member",
    "grad_norm",
    "grad_norm_per_member",
]

DEFAULT_TAUS: tuple[float, ...] = (0.0, 0.025, 0.1)
"""Thresholds logged by default: 0 counts dead units, 0.1 is the paper's (code's) tau."""


def _as_ebu(h: Tensor) -> Tensor:
    """Return a detached float64 view of activations as (E, B, U); (B, U) becomes (1, B, U)."""
    if h.ndim == 2:
        h = h.unsqueeze(0)
    if h.ndim != 3:
        raise ValueError(f"activations must have shape (E, B, U) or (B, U), got {tuple(h.shape)}")
    if h.shape[1] == 0 or h.shape[2] == 0:
        raise ValueError(f"activations need at least one sample and one unit, got {tuple(h.shape)}")
    return h.detach().to(torch.float64)


def dormant_scores(h: Tensor) -> Tensor:
    """Per-unit dormancy scores (E, U): mean |activation| over the batch / the layer's mean of those.

    Normalising by the layer mean makes the score scale-free, so one tau works for every layer
    (Sokar et al. 2023). An all-zero layer (per member) scores 0 everywhere, i.e. fully dormant.
    """
    per_unit = _as_ebu(h).abs().mean(dim=1)  # (E, U)
    layer_mean = per_unit.mean(dim=-1, keepdim=True)  # (E, 1)
    safe = torch.where(layer_mean > 0, layer_mean, torch.ones_like(layer_mean))
    return torch.where(layer_mean > 0, per_unit / safe, torch.zeros_like(per_unit))


def dormant_mask(h: Tensor, tau: float = 0.1) -> Tensor:
    """Boolean (E, U) mask of dormant units, score <= tau; tau = 0 selects exactly-dead units."""
    return dormant_scores(h) <= tau


def dormant_percent(h: Tensor, tau: float = 0.1) -> Tensor:
    """Percentage (0..100) of the layer's units that are dormant, one float64 value per member (E,)."""
    return dormant_mask(h, tau).to(torch.float64).mean(dim=-1) * 100.0


def dormant_percent_total(layers: Mapping[str, Tensor], tau: float = 0.1) -> Tensor:
    """Percentage of dormant units over all hidden units of all layers, per member (E,).

    Pools units (sum of dormant counts / sum of widths) rather than averaging layer percentages,
    so wide layers weigh by their width. All layers must share the same number of members E.
    """
    if not layers:
        raise ValueError("dormant_percent_total needs at least one layer")
    dormant: Tensor | None = None
    units = 0
    for name, h in layers.items():
        mask = dormant_mask(h, tau)
        count = mask.to(torch.float64).sum(dim=-1)
        if dormant is not None and count.shape != dormant.shape:
            raise ValueError(
                f"layer {name!r} has {count.shape[0]} ensemble members, expected {dormant.shape[0]}"
            )
        dormant = count if dormant is None else dormant + count
        units += mask.shape[-1]
    assert dormant is not None
    return dormant / units * 100.0


def srank(features: Tensor, delta: float = 0.01) -> Tensor:
    """Effective rank (Kumar et al. 2021) of each member's (B, U) feature matrix, int64 (E,).

    The number of top singular values needed to hold a 1 - delta share of their sum; a low srank
    means the features collapsed onto few directions. A zero matrix has srank 0.
    """
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must lie in [0, 1), got {delta}")
    x = _as_ebu(features)
    if x.shape[-2] < x.shape[-1]:
        # Same singular values; LAPACK is far faster on tall than on wide matrices (30 s vs 1.4 s
        # for a 1280 x 4096 ReLU feature matrix on 2 cores).
        x = x.transpose(-2, -1).contiguous()
    s = torch.linalg.svdvals(x)  # (E, min(B, U)), descending
    total = s.sum(dim=-1, keepdim=True)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    share = s.cumsum(dim=-1) / safe
    k = (share < 1.0 - delta).sum(dim=-1) + 1
    # Rounding can leave the full cumulative share a hair below 1; never exceed the matrix rank bound.
    k = k.clamp(max=s.shape[-1])
    return torch.where(total.squeeze(-1) > 0, k, torch.zeros_like(k)).to(torch.int64)


def feature_norm(h: Tensor) -> Tensor:
    """Mean over the batch of each sample's feature-vector L2 norm, float64 (E,)."""
    return torch.linalg.vector_norm(_as_ebu(h), dim=-1).mean(dim=-1)


def _sum_squares(tensors: Iterable[Tensor | None]) -> float:
    """Sum of squares of all entries of the given tensors (None skipped), accumulated in float64."""
    total = torch.zeros((), dtype=torch.float64)
    for t in tensors:
        if t is not None:
            total = total + t.detach().to(torch.float64).square().sum().cpu()
    return float(total)


def param_norm(tensors: Iterable[Tensor]) -> float:
    """Global L2 norm of all given tensors, sqrt of the sum of their squared entries."""
    return _sum_squares(tensors) ** 0.5


def param_norms_by_layer(module: nn.Module) -> dict[str, float]:
    """L2 norm per layer: parameters grouped by the name of the submodule that owns them.

    'linears.0.weight' and 'linears.0.bias' form the group 'linears.0' (weight and bias together);
    a parameter owned directly by `module` itself (no dot in its name, e.g. 'task_weights') is its
    own group under its own name. Groups keep the order of `module.named_parameters()`.
    """
    groups: dict[str, list[Tensor]] = {}
    for name, p in module.named_parameters():
        prefix, _, _ = name.rpartition(".")
        groups.setdefault(prefix or name, []).append(p)
    return {name: param_norm(ps) for name, ps in groups.items()}


def _per_member_norm(tensors: Iterable[tuple[str, Tensor | None]], ensemble: int) -> Tensor:
    """sqrt of each member's sum of squares over (name, tensor) pairs; dim 0 is the member axis."""
    total = torch.zeros(ensemble, dtype=torch.float64)
    for name, t in tensors:
        if t is None:
            continue
        if t.ndim == 0 or t.shape[0] != ensemble:
            raise ValueError(f"tensor {name!r} of shape {tuple(t.shape)} has no leading dim {ensemble}")
        flat = t.detach().to(torch.float64).reshape(ensemble, -1)
        total = total + flat.square().sum(dim=1).cpu()
    return total.sqrt()


def param_norm_per_member(module: nn.Module, ensemble: int) -> Tensor:
    """Per-member L2 norm (E,) of an ensemble network whose every parameter has leading dim E.

    Member e's norm is sqrt of the sum of squares of p[e] over all parameters p; raises if some
    parameter's first dimension is not `ensemble`.
    """
    return _per_member_norm(module.named_parameters(), ensemble)


def grad_norm_per_member(module: nn.Module, ensemble: int) -> Tensor:
    """Per-member L2 norm (E,) of the parameters' `.grad` (dim 0 = member; None grads skipped).

    A member whose parameters all lack gradients gets 0. Raises like `param_norm_per_member`.
    """
    return _per_member_norm(((name, p.grad) for name, p in module.named_parameters()), ensemble)


def grad_norm(tensors: Iterable[Tensor | None]) -> float:
    """Global L2 norm of gradient tensors (pass `p.grad for p in params`; None entries are skipped).

    Equals the total norm that `torch.nn.utils.clip_grad_norm_` returns, without clipping anything.
    """
    return _sum_squares(tensors) ** 0.5
