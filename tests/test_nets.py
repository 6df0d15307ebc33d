"""The plain multi-head MLP: parameter counts by hand, head routing, ensemble independence."""

from __future__ import annotations

import pytest
import torch

from mtrl.config.settings import TrainConfig
from mtrl.nets import build_network
from mtrl.nets.layers import EnsembleLinear, count_parameters
from mtrl.nets.mlp import MultiHeadMLP


def mlp_count(inp: int, out: int, tasks: int, width: int, depth: int) -> int:
    """Hand formula: first layer, depth-1 square layers, one (width x out) head per task."""
    return inp * width + width + (depth - 1) * (width * width + width) + tasks * (width * out + out)


def test_mt10_baseline_counts_match_hand_computation():
    actor = MultiHeadMLP(49, 8, 10, width=400, depth=3)
    critic = MultiHeadMLP(53, 1, 10, width=400, depth=3, ensemble=2)
    assert count_parameters(actor) == mlp_count(49, 8, 10, 400, 3) == 372_880
    assert count_parameters(critic) == 2 * mlp_count(53, 1, 10, 400, 3) == 2 * 346_410


def test_build_network_uses_role_widths():
    config = TrainConfig(actor_width=64, critic_width=128, depth=4).resolved()
    actor = build_network(config, "actor", 49, 8)
    critic = build_network(config, "critic", 53, 1, ensemble=2)
    assert count_parameters(actor) == mlp_count(49, 8, 10, 64, 4)
    assert count_parameters(critic) == 2 * mlp_count(53, 1, 10, 128, 4)


def test_layer_norm_adds_two_vectors_per_layer():
    plain = MultiHeadMLP(10, 2, 3, width=16, depth=3)
    normed = MultiHeadMLP(10, 2, 3, width=16, depth=3, layer_norm=True)
    assert count_parameters(normed) - count_parameters(plain) == 3 * 2 * 16


@pytest.mark.parametrize("skip", [False, True])
def test_shapes_and_hidden_layers(skip):
    net = MultiHeadMLP(12, 3, 4, width=16, depth=3, ensemble=2, skip=skip)
    seen = {}
    for name, module in net.hidden_layers().items():
        module.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out.shape))
    out = net(torch.randn(5, 12), torch.tensor([0, 1, 2, 3, 0]))
    assert out.shape == (2, 5, 3)
    assert seen == {f"act{i}": (2, 5, 16) for i in range(3)}


def test_task_loss_only_touches_its_own_head():
    torch.manual_seed(0)
    net = MultiHeadMLP(6, 2, 3, width=8, depth=2)
    x = torch.randn(4, 6)
    net(x, torch.full((4,), 1)).sum().backward()
    grad = net.head.linear.weight.grad.view(1, 8, 3, 2)
    assert grad[:, :, 1].abs().sum() > 0
    assert torch.equal(grad[:, :, 0], torch.zeros_like(grad[:, :, 0]))
    assert torch.equal(grad[:, :, 2], torch.zeros_like(grad[:, :, 2]))


def test_head_is_selected_by_task_index():
    torch.manual_seed(0)
    net = MultiHeadMLP(6, 2, 3, width=8, depth=2)
    x = torch.randn(1, 6).repeat(3, 1)
    out = net(x, torch.tensor([0, 1, 2]))[0]
    with torch.no_grad():
        h = x[:1]
        for linear, act in zip(net.linears, net.acts.values(), strict=True):
            h = act(linear(h.unsqueeze(0)))[0]
        all_heads = (h @ net.head.linear.weight[0] + net.head.linear.bias[0]).view(3, 2)
    torch.testing.assert_close(out, all_heads)


def test_ensemble_members_are_independent():
    torch.manual_seed(0)
    layer = EnsembleLinear(5, 7, ensemble=2)
    assert not torch.equal(layer.weight[0], layer.weight[1])
    x = torch.randn(2, 3, 5)
    out = layer(x)
    torch.testing.assert_close(out[1], x[1] @ layer.weight[1])
    bound = (6 / 5) ** 0.5  # He-uniform
    assert layer.weight.abs().max() <= bound and torch.equal(layer.bias, torch.zeros_like(layer.bias))


@pytest.mark.parametrize("layer_norm", [False, True])
def test_skip_adds_the_residual_before_the_relu(layer_norm):
    # The study's torso: h = relu(W h + b + h) for every layer whose input has the hidden width.
    torch.manual_seed(0)
    net = MultiHeadMLP(6, 2, 3, width=8, depth=3, skip=True, layer_norm=layer_norm)
    x, task = torch.randn(5, 6), torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        for norm in net.norms:  # non-trivial affine parameters, so the norm's place matters
            for p in norm.parameters():
                p.uniform_(-1.0, 1.0)
        h = net.norms[0](net.linears[0](x.unsqueeze(0))).relu()  # 6 -> 8 inputs: no residual
        for linear, norm in zip(net.linears[1:], net.norms[1:], strict=True):
            h = (norm(linear(h)) + h).relu()
        expected = net.head(h, task)
    torch.testing.assert_close(net(x, task), expected)
    assert (h >= 0).all()  # the features (and the probed `act{i}` outputs) are post-ReLU


def test_skip_also_feeds_an_input_of_the_hidden_width_into_the_first_layer():
    # As in the study, the residual depends on the input having the hidden width, not on the index.
    torch.manual_seed(0)
    net = MultiHeadMLP(8, 2, 3, width=8, depth=1, skip=True)
    x, task = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        expected = net.head((net.linears[0](x.unsqueeze(0)) + x).relu(), task)
    torch.testing.assert_close(net(x, task), expected)
