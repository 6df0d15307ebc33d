"""PaCo: parameter-compositional multi-task networks (Sun et al. 2022), the "vanilla" variant.

PaCo keeps K shared parameter sets theta_1..theta_K, each a complete network (here: `depth`
hidden layers of `width` units plus an output layer), and one compositional vector w_i in R^K
per task. Task i runs the network whose parameters are theta_i = sum_k w_i[k] theta_k. The
vanilla variant (the one the study reproduces) has no weight resets and no loss mask-out.

Efficient evaluation. For an affine layer, combining parameters and combining outputs agree:

    (sum_k w[k] W_k) h + sum_k w[k] b_k  =  sum_k w[k] (W_k h + b_k),

so every layer computes the outputs of all K parameter sets at once (one batched matmul with
K * units output columns, `GroupedLinear`), mixes them per sample with that sample's w_task
(`einsum('ebkn,ebk->ebn')`) and only then applies the ReLU. This is exactly task i's composed
network applied to the sample, without materialising per-sample weight matrices and without any
loop over tasks or parameter sets.

Layout (as in the study's JAX code, `PaCoNetwork`): the K sets see the observation without its
one-hot task id (39 state floats, plus the 4 action floats for a critic); the task only enters
through w_task, read from a (N, K) table by task index (plus a shared bias, below). The output
layer is also compositional (one output of size `out_features` per parameter set, mixed by
w_task), i.e. PaCo has no separate per-task heads. Gradient flow: the shared sets receive
gradients from every task, while row i of the table only from samples of task i (rows of other
tasks get exactly zero gradient).

Compositional vectors. As in the study, w_task is a one-hot `Dense(N -> K)` with a bias: row i
of a (N, K) table (He-uniform, fan-in N) plus a K-vector shared by all tasks (zero at init),
w_task = W[task] + b. The shared bias receives gradients from every task. `shared_bias=False`
drops it (purely task-specific vectors, as the PaCo paper describes them); nothing in the study
uses that.

Parameter count (one network, no ensemble), with s = state inputs, N tasks, K sets, width w,
depth d, o outputs:  N*K + K + K*[(s*w + w) + (d-1)*(w*w + w) + (w*o + o)].
MT10 (K = 5, w = 400, d = 3): actor (s = 39, o = 8) 1,700,095, critic (s = 43, o = 1) 1,694,060;
MT50 (K = 20): actor 6,801,180 (both actor counts are the study's parameter-count notebook's),
critic 6,777,040.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtrl.envs.benchmarks import OBS_DIM
from mtrl.nets.layers import expand_ensemble, he_uniform_


class GroupedLinear(nn.Module):
    """G independent affine maps per ensemble member (K parameter sets, k experts, M modules).

    weight: (E, in, G, out), bias: (E, 1, G, out); He-uniform weights (fan-in `in`), zero bias,
    so every parameter keeps the ensemble axis first.
    - shared input (E, B, in): all G maps read the same features -> one bmm -> (E, B, G, out);
    - grouped input (E, B, G, in): group g reads its own slice -> (E, B, G, out).
    """

    def __init__(self, in_features: int, out_features: int, groups: int, ensemble: int = 1) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.groups, self.ensemble = groups, ensemble
        self.weight = nn.Parameter(torch.empty(ensemble, in_features, groups, out_features))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, groups, out_features))
        he_uniform_(self.weight, in_features)

    def forward(self, x: Tensor) -> Tensor:
        e, g, o = self.ensemble, self.groups, self.out_features
        if x.dim() == 3:
            out = torch.baddbmm(self.bias.view(e, 1, g * o), x, self.weight.view(e, self.in_features, g * o))
            return out.view(e, x.shape[1], g, o)
        return torch.einsum("ebgi,eigo->ebgo", x, self.weight) + self.bias

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, out={self.out_features}, groups={self.groups}, ensemble={self.ensemble}"
        )


def drop_task_one_hot(x: Tensor, num_tasks: int, obs_dim: int = OBS_DIM) -> Tensor:
    """x = [obs_dim state, N one-hot, (critic) action] -> [state, (action)] (the one-hot removed)."""
    if x.shape[-1] == obs_dim + num_tasks:
        return x[..., :obs_dim]
    return torch.cat((x[..., :obs_dim], x[..., obs_dim + num_tasks :]), dim=-1)


def mix(outputs: Tensor, weights: Tensor) -> Tensor:
    """(E, B, G, n) outputs of G groups, (E, B, G) per-sample weights -> (E, B, n)."""
    return torch.einsum("ebgn,ebg->ebn", outputs, weights)


class PaCo(nn.Module):
    """K compositional parameter sets of a depth x width MLP, mixed per task by w_task."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_tasks: int,
        width: int = 400,
        depth: int = 3,
        num_sets: int = 5,
        ensemble: int = 1,
        obs_dim: int = OBS_DIM,
        shared_bias: bool = True,
    ) -> None:
        super().__init__()
        self.ensemble, self.num_tasks, self.num_sets, self.obs_dim = ensemble, num_tasks, num_sets, obs_dim
        self.in_features, self.out_features = in_features, out_features
        state_in = in_features - num_tasks
        # Compositional vectors w_i = row i + a bias shared by all tasks (the study's one-hot Dense).
        self.task_weights = nn.Parameter(torch.empty(ensemble, num_tasks, num_sets))
        he_uniform_(self.task_weights, num_tasks)
        self.task_bias = nn.Parameter(torch.zeros(ensemble, 1, num_sets)) if shared_bias else None
        self.layers = nn.ModuleList(
            GroupedLinear(state_in if i == 0 else width, width, num_sets, ensemble) for i in range(depth)
        )
        self.acts = nn.ModuleDict({f"act{i}": nn.ReLU() for i in range(depth)})
        self.head = GroupedLinear(width, out_features, num_sets, ensemble)

    def compositional_vectors(self, task: Tensor) -> Tensor:
        """w_task for every sample: (B,) -> (E, B, K)."""
        w = self.task_weights[:, task]
        return w + self.task_bias if self.task_bias is not None else w

    def forward(self, x: Tensor, task: Tensor) -> Tensor:
        """x: (B, in) or (E, B, in); task: (B,) long -> (E, B, out)."""
        h = drop_task_one_hot(expand_ensemble(x, self.ensemble), self.num_tasks, self.obs_dim)
        w = self.compositional_vectors(task)
        for layer, act in zip(self.layers, self.acts.values(), strict=True):
            h = act(mix(layer(h), w))
        return mix(self.head(h), w)

    def hidden_layers(self) -> dict[str, nn.Module]:
        """`act{i}`: the composed network's hidden features, (E, B, width)."""
        return dict(self.acts)
