"""MOORE: mixture of orthogonal experts (Hendawy et al. 2024), as configured in the study.

k expert MLPs map the observation (without its one-hot task id: 39 state floats, plus the 4
action floats for a critic) to k representations of size `width`. For every sample the k vectors
are made orthonormal (Gram-Schmidt), mixed with task-specific weights (a bias-free one-hot
`Dense(N -> k)`, i.e. a (N, k) table read by task index), squashed by tanh, and fed to one output
head per task. Following the study's JAX `MOORENetwork`, each expert is an MLP with `depth - 1`
ReLU hidden layers and a linear output layer of `width` units (so `depth` linear layers per
expert, like the `depth` hidden layers of the plain MLP).

Orthonormalisation (`Orthonormalize`): the default, "gram_schmidt", is the original's classical
Gram-Schmidt: a loop over the k (<= 6, fixed) experts, each step one batched projection over all
E x B samples, norms offset by 1e-8. "qr" is one batched `torch.linalg.qr` of the (width x k)
matrices with the columns of Q multiplied by sign(diag R); Gram-Schmidt's R has a positive
diagonal, so this equals Gram-Schmidt exactly (not only up to signs) when the k outputs are
linearly independent (tests check the two agree to 1e-6). Gram-Schmidt is the default because
torch's CUDA QR loops over the batch in `orgqr` (one cuSOLVER call per matrix: ~0.2 s for 8192
small matrices, pytorch/pytorch#143281), which would dominate an update at B = 1280-6400 x E = 2;
on CPU the QR path is about 2x faster (2 cores, B = 1280, k = 4, d = 400, forward + backward:
0.25 s vs 0.58 s), so "qr" suits CPU-only use.

Parameter count (one network, no ensemble), with s = state inputs, N tasks, k experts, width w,
depth d, o outputs:  N*k + k*[(s*w + w) + (d-1)*(w*w + w)] + N*(w*o + o).
MT10 actor (s=39, N=10, k=4, w=400, d=3, o=8): 40 + 4*336,800 + 32,080 = 1,379,320, the value in
the study's parameter-count notebook; critic (s=43, o=1): 1,357,650.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtrl.envs.benchmarks import OBS_DIM
from mtrl.nets.layers import MultiHead, expand_ensemble, he_uniform_
from mtrl.nets.paco import GroupedLinear, drop_task_one_hot, mix

ORTHONORMALIZATIONS = ("gram_schmidt", "qr")


def gram_schmidt(v: Tensor, eps: float = 1e-8) -> Tensor:
    """Classical Gram-Schmidt over the second-to-last axis: (..., k, d) -> orthonormal rows.

    Vector i loses its projection on the i previous basis vectors at once (v - (v B^T) B, as in
    the original), then is normalised with the norm offset by `eps`. The loop runs over the k
    experts (small and fixed); every sample and ensemble member is processed in the same op.
    """
    basis: list[Tensor] = []
    for i in range(v.shape[-2]):
        w = v[..., i : i + 1, :]  # (..., 1, d)
        if basis:
            b = torch.cat(basis, dim=-2)  # (..., i, d)
            w = w - (w @ b.transpose(-1, -2)) @ b
        basis.append(w / (w.norm(dim=-1, keepdim=True) + eps))
    return torch.cat(basis, dim=-2)


def qr_orthonormalize(v: Tensor) -> Tensor:
    """Gram-Schmidt via a batched QR: (..., k, d) -> orthonormal rows, signs fixed to Gram-Schmidt's."""
    q, r = torch.linalg.qr(v.transpose(-1, -2), mode="reduced")  # q: (..., d, k), r: (..., k, k)
    sign = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return (q * sign.unsqueeze(-2)).transpose(-1, -2)


class Orthonormalize(nn.Module):
    """(E, B, k, d) expert outputs -> (E, B, k, d) with orthonormal rows for every (member, sample)."""

    def __init__(self, method: str = "gram_schmidt") -> None:
        super().__init__()
        if method not in ORTHONORMALIZATIONS:
            raise ValueError(f"unknown orthonormalization {method!r}; choose one of {ORTHONORMALIZATIONS}")
        self.method = method

    def forward(self, v: Tensor) -> Tensor:
        return gram_schmidt(v) if self.method == "gram_schmidt" else qr_orthonormalize(v)

    def extra_repr(self) -> str:
        return f"method={self.method}"


class Moore(nn.Module):
    """k orthonormalised expert MLPs, mixed per task, tanh, then one output head per task."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_tasks: int,
        width: int = 400,
        depth: int = 3,
        num_experts: int = 4,
        ensemble: int = 1,
        obs_dim: int = OBS_DIM,
        orthonormalization: str = "gram_schmidt",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if width < num_experts:
            raise ValueError(
                f"width {width} must be >= the number of experts {num_experts} to orthonormalise"
            )
        self.ensemble, self.num_tasks, self.num_experts, self.obs_dim = (
            ensemble,
            num_tasks,
            num_experts,
            obs_dim,
        )
        self.in_features, self.out_features = in_features, out_features
        state_in = in_features - num_tasks
        # Task-specific mixing weights (the study's bias-free one-hot Dense kernel).
        self.task_weights = nn.Parameter(torch.empty(ensemble, num_tasks, num_experts))
        he_uniform_(self.task_weights, num_tasks)
        self.experts = nn.ModuleList(
            GroupedLinear(state_in if i == 0 else width, width, num_experts, ensemble) for i in range(depth)
        )
        self.expert_acts = nn.ModuleDict({f"expert_act{i}": nn.ReLU() for i in range(depth - 1)})
        self.orthonormalize = Orthonormalize(orthonormalization)
        self.features = nn.Tanh()
        self.head = MultiHead(width, out_features, num_tasks, ensemble)

    def forward(self, x: Tensor, task: Tensor) -> Tensor:
        """x: (B, in) or (E, B, in); task: (B,) long -> (E, B, out)."""
        h = drop_task_one_hot(expand_ensemble(x, self.ensemble), self.num_tasks, self.obs_dim)
        e, b = h.shape[:2]
        for i, layer in enumerate(self.experts):
            h = layer(h)  # (E, B, k, width)
            if i < len(self.expert_acts):
                act = self.expert_acts[f"expert_act{i}"]
                h = act(h.reshape(e, b, -1)).view(e, b, self.num_experts, -1)
        basis = self.orthonormalize(h)
        features = self.features(mix(basis, self.task_weights[:, task]))
        return self.head(features, task)

    def hidden_layers(self) -> dict[str, nn.Module]:
        """`expert_act{i}`: (E, B, k * width), experts side by side; `features`: (E, B, width)."""
        return {**dict(self.expert_acts), "features": self.features}
