"""Soft Modularization (Yang et al. 2020), following the official code as ported in the study.

Base policy network: L layers of M modules (each an affine map to `module_width` units). Routing
network: soft, per-sample routing probabilities computed from the task embedding.

    f   = Linear(D) . ReLU . Linear(D)  (observation embedding, pre-activation), x = obs w/o one-hot
    z   = Linear(N -> D)(one-hot)       (task embedding: a (N, D) table read by task index + bias)
    t   = MLP_h(ReLU(z * f))            (Linear(D->h) . ReLU . Linear(h->h); "NOTE 1" of the port)
    p^0 = softmax(W_d^0 ReLU(t))                                 (M x M, softmax over source modules)
    p^l = softmax(W_d^l ReLU(t * W_u^l [p^0, ..., p^{l-1}]))    (routing skip connections, NOTE 3)
    g^0 = ReLU(f);  g^{l+1}_i = ReLU(sum_j p^l_ij module^l_j(g^l_j))   for l < L-1  (ReLU after mix)
    out = Linear(ReLU(sum_j p^{L-1}_j module^{L-1}_j(g^{L-1}_j)))      (last routing: M weights)

i.e. the official `ModularGatedCascadeCondNet`: the routing input of layer l is the task-state
embedding times an embedding of *all* previous routing probabilities, the last layer has a
length-M routing vector that pools the M module outputs, and the output layer is a single
(shared) head. The routing output layers W_d start near zero (U(-1e-3, 1e-3), as in the official
code), so the initial routing is close to uniform. Every routing weight vector is a distribution
over the source modules (non-negative, sums to 1).

Sizes: D = `sm_embedding` (400; also the hidden width of f, 400 in the original), module width
d = `sm_module_width` (256), routing width h = d (the official code's separate `width` is 256 too,
and the study scales the two together); L = `sm_layers`, M = `sm_modules` (2 x 2 on <= 10
tasks, 4 x 4 above). SM has no width x depth MLP of its own, so it ignores actor/critic width and
depth.

Parameter count (one network), s = state inputs (39 actor, 43 critic), N tasks, o outputs:
    f: (s*D + D) + (D*D + D);  z: N*D + D;  t: (D*h + h) + (h*h + h)
    routing: sum_{l<L} [l>0]*(l*M*M*h + h) + h*m_l + m_l,  m_l = M*M (l < L-1) or M (l = L-1)
    modules: M*(D*d + d) + (L-1)*M*(d*d + d);  head: d*o + o
MT10 actor (s=39, N=10, o=8): 691,022; critic (s=43, o=1): 690,823 -- the actor value is the
one in the study's parameter-count notebook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from mtrl.envs.benchmarks import OBS_DIM
from mtrl.nets.layers import EnsembleLinear, expand_ensemble, he_uniform_
from mtrl.nets.paco import GroupedLinear, drop_task_one_hot

if TYPE_CHECKING:
    from mtrl.config.settings import TrainConfig


class SoftModularization(nn.Module):
    """L x M soft-routed modules; routing from the (state x task) embedding and previous routing."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_tasks: int,
        num_layers: int = 2,
        num_modules: int = 2,
        module_width: int = 256,
        embedding: int = 400,
        ensemble: int = 1,
        obs_dim: int = OBS_DIM,
        routing_init: float = 1e-3,
    ) -> None:
        super().__init__()
        self.ensemble, self.num_tasks, self.obs_dim = ensemble, num_tasks, obs_dim
        self.in_features, self.out_features = in_features, out_features
        self.num_layers, self.num_modules, self.module_width = num_layers, num_modules, module_width
        state_in, d, m, e = in_features - num_tasks, module_width, num_modules, ensemble
        hidden = module_width  # routing width
        # Observation embedding f.
        self.obs_fc0 = EnsembleLinear(state_in, embedding, e)
        self.obs_act0 = nn.ReLU()
        self.obs_fc1 = EnsembleLinear(embedding, embedding, e)
        self.obs_emb = nn.ReLU()
        # Task embedding z (one-hot Dense with bias, read by index).
        self.task_emb_weight = nn.Parameter(torch.empty(e, num_tasks, embedding))
        he_uniform_(self.task_emb_weight, num_tasks)
        self.task_emb_bias = nn.Parameter(torch.zeros(e, 1, embedding))
        self.cond = nn.ReLU()
        self.task_fc0 = EnsembleLinear(embedding, hidden, e)
        self.task_act0 = nn.ReLU()
        self.task_fc1 = EnsembleLinear(hidden, hidden, e)
        # Routing network: W_u^l (l > 0) embeds all previous routing probabilities, W_d^l emits logits.
        self.route_up = nn.ModuleList(
            EnsembleLinear(i * m * m, hidden, e) if i > 0 else nn.Identity() for i in range(num_layers)
        )
        self.route_acts = nn.ModuleDict({f"route_act{i}": nn.ReLU() for i in range(num_layers)})
        self.route_down = nn.ModuleList(
            EnsembleLinear(hidden, m * m if i < num_layers - 1 else m, e) for i in range(num_layers)
        )
        for layer in self.route_down:
            with torch.no_grad():
                layer.weight.uniform_(-routing_init, routing_init)
        # Base policy network.
        self.base_layers = nn.ModuleList(
            GroupedLinear(embedding if i == 0 else d, d, m, e) for i in range(num_layers)
        )
        self.module_acts = nn.ModuleDict({f"module{i}": nn.ReLU() for i in range(num_layers)})
        self.head = EnsembleLinear(d, out_features, e)

    @classmethod
    def from_config(
        cls, config: TrainConfig, role: str, in_features: int, out_features: int, ensemble: int = 1
    ) -> SoftModularization:
        """The network at the sizes of a resolved `config` (`sm_layers`, `sm_modules` filled in)."""
        return cls(
            in_features,
            out_features,
            config.num_tasks,
            num_layers=config.sm_layers,
            num_modules=config.sm_modules,
            module_width=config.sm_module_width,
            embedding=config.sm_embedding,
            ensemble=ensemble,
        )

    def forward_with_routing(self, x: Tensor, task: Tensor) -> tuple[Tensor, list[Tensor]]:
        """-> (output (E, B, out), routing probabilities: (E, B, M, M) per layer, (E, B, M) last)."""
        h = drop_task_one_hot(expand_ensemble(x, self.ensemble), self.num_tasks, self.obs_dim)
        e, b = h.shape[:2]
        m, d, last = self.num_modules, self.module_width, self.num_layers - 1
        f = self.obs_fc1(self.obs_act0(self.obs_fc0(h)))
        z = self.task_emb_weight[:, task] + self.task_emb_bias
        t = self.task_fc1(self.task_act0(self.task_fc0(self.cond(z * f))))
        g: Tensor = self.obs_emb(f)  # layer-0 input, shared by the M modules
        probs: list[Tensor] = []
        for i, (up, act, down) in enumerate(
            zip(self.route_up, self.route_acts.values(), self.route_down, strict=True)
        ):
            cond = t * up(torch.cat([p.reshape(e, b, m * m) for p in probs], dim=-1)) if i > 0 else t
            logits = down(act(cond))
            outs = self.base_layers[i](g)  # (E, B, M, d)
            module_act = self.module_acts[f"module{i}"]
            if i < last:
                # p[..., r, j]: weight of source module j in the input of target module r
                p = torch.softmax(logits.view(e, b, m, m), dim=-1)
                g = module_act(torch.matmul(p, outs).reshape(e, b, m * d)).view(e, b, m, d)
            else:
                p = torch.softmax(logits, dim=-1)  # (E, B, M)
                g = module_act(torch.einsum("ebm,ebmd->ebd", p, outs))
            probs.append(p)
        return self.head(g), probs

    def forward(self, x: Tensor, task: Tensor) -> Tensor:
        """x: (B, in) or (E, B, in); task: (B,) long -> (E, B, out)."""
        return self.forward_with_routing(x, task)[0]

    def hidden_layers(self) -> dict[str, nn.Module]:
        """ReLU features, all (E, B, units): `obs_act0`, `obs_emb` (D), `cond` (D), `task_act0` (h),
        `route_act{l}` (h), `module{l}` (M * d for l < L-1, d for the last layer)."""
        return {
            "obs_act0": self.obs_act0,
            "obs_emb": self.obs_emb,
            "cond": self.cond,
            "task_act0": self.task_act0,
            **dict(self.route_acts),
            **dict(self.module_acts),
        }
