"""The plain multi-task multi-head MLP (MTMHSAC torso + per-task heads)."""

from __future__ import annotations

from torch import Tensor, nn

from mtrl.nets.layers import EnsembleLayerNorm, EnsembleLinear, MultiHead, expand_ensemble


class MultiHeadMLP(nn.Module):
    """depth x (Linear [-> LayerNorm] -> ReLU) torso, then one head per task.

    With `skip=True` a hidden layer whose input has the hidden width (every layer after the first)
    adds that input before its ReLU, h = relu(norm(W h + b) + h), as the study's multi-head torso
    does (its residual goes in before the activation; it has no layer norm, which is our option).
    Hidden features are the outputs of the modules named `act{i}`, exposed through
    `hidden_layers()` for forward hooks.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_tasks: int,
        width: int,
        depth: int,
        ensemble: int = 1,
        skip: bool = False,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.ensemble, self.skip = ensemble, skip
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.acts = nn.ModuleDict()
        for i in range(depth):
            self.linears.append(EnsembleLinear(in_features if i == 0 else width, width, ensemble))
            self.norms.append(EnsembleLayerNorm(width, ensemble) if layer_norm else nn.Identity())
            self.acts[f"act{i}"] = nn.ReLU()
        self.head = MultiHead(width, out_features, num_tasks, ensemble)

    def forward(self, x: Tensor, task: Tensor) -> Tensor:
        """x: (B, in) or (E, B, in); task: (B,) long -> (E, B, out)."""
        h = expand_ensemble(x, self.ensemble)
        for linear, norm, act in zip(self.linears, self.norms, self.acts.values(), strict=True):
            z = norm(linear(h))
            # The study adds the residual wherever the layer's input already has the hidden width.
            h = act(z + h if self.skip and h.shape[-1] == z.shape[-1] else z)
        return self.head(h, task)

    def hidden_layers(self) -> dict[str, nn.Module]:
        """Modules whose outputs, shaped (E, B, units), are the hidden features to probe."""
        return dict(self.acts)
