"""Plasticity metrics on hand-built activations and small modules with known answers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mtrl.probe.plasticity import (
    DEFAULT_TAUS,
    dormant_mask,
    dormant_percent,
    dormant_percent_total,
    dormant_scores,
    feature_norm,
    grad_norm,
    grad_norm_per_member,
    param_norm,
    param_norm_per_member,
    param_norms_by_layer,
    srank,
)


def _live(batch: int, units: int, seed: int = 0) -> torch.Tensor:
    """(B, U) float32 activations with every unit's mean |h| in [0.5, 1.5] (none dormant)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, units, generator=g) + 0.5


def _from_unit_means(means: list[float]) -> torch.Tensor:
    """(2, U) float32 batch with rows +m and -m, so each unit's mean |h| is exactly m."""
    m = torch.tensor(means, dtype=torch.float32)
    return torch.stack([m, -m])


# ---------------------------------------------------------------- dormant neurons


def test_default_taus() -> None:
    assert DEFAULT_TAUS == (0.0, 0.025, 0.1)


def test_three_of_eight_zero_units() -> None:
    h = _live(32, 8)
    h[:, [1, 4, 6]] = 0.0
    for tau in (0.0, 0.1):
        assert dormant_percent(h, tau).tolist() == [37.5]
        assert dormant_mask(h, tau)[0].nonzero().flatten().tolist() == [1, 4, 6]


def test_scores_are_mean_abs_over_layer_mean() -> None:
    h = _from_unit_means([0.5, 1.0, 1.5, 3.0])  # layer mean of means = 1.5
    scores = dormant_scores(h)
    assert scores.shape == (1, 4)
    torch.testing.assert_close(scores[0], torch.tensor([1 / 3, 2 / 3, 1.0, 2.0], dtype=scores.dtype))
    # Scale-free: multiplying the layer by a constant leaves the scores unchanged.
    torch.testing.assert_close(dormant_scores(h * 37.0), scores)


def test_dead_layer_is_fully_dormant_without_nan() -> None:
    h = torch.zeros(2, 16, 8)
    scores = dormant_scores(h)
    assert torch.isfinite(scores).all()
    assert (scores == 0).all()
    for tau in (0.0, 0.1):
        assert dormant_percent(h, tau).tolist() == [100.0, 100.0]


def test_one_huge_unit_makes_others_dormant_only_above_zero_tau() -> None:
    h = torch.ones(16, 8)
    h[:, 0] = 1000.0  # layer mean 1007 / 8, the other units score 8 / 1007 < 0.01
    assert dormant_percent(h, 0.1).tolist() == [87.5]
    assert dormant_mask(h, 0.1)[0].tolist() == [False] + [True] * 7
    assert dormant_percent(h, 0.0).tolist() == [0.0]


def test_threshold_is_inclusive_and_sharp() -> None:
    eps = 1 / 1024  # all values exact in binary, layer mean exactly 1
    h = _from_unit_means([0.125 - eps, 0.125 + eps, 1.75, 2.0])
    assert dormant_mask(h, 0.125)[0].tolist() == [True, False, False, False]
    h = _from_unit_means([0.125, 0.875, 1.0, 2.0])
    assert dormant_mask(h, 0.125)[0].tolist() == [True, False, False, False]
    assert dormant_mask(h, 0.125 - eps)[0].tolist() == [False, False, False, False]


def test_members_are_scored_independently() -> None:
    a = _live(16, 4, seed=1)
    a[:, 2] = 0.0  # member 0: 1 of 4 dormant
    b = _live(16, 4, seed=2) * 1000.0
    b[:, :3] = 0.0  # member 1: 3 of 4 dormant, and 1000x the scale of member 0
    h = torch.stack([a, b])
    assert dormant_percent(h, 0.1).tolist() == [25.0, 75.0]
    assert dormant_percent(h, 0.0).tolist() == [25.0, 75.0]
    torch.testing.assert_close(dormant_scores(h)[0], dormant_scores(a)[0])


def test_two_dim_input_is_one_member() -> None:
    h = _live(8, 5)
    h[:, 0] = 0.0
    torch.testing.assert_close(dormant_scores(h), dormant_scores(h.unsqueeze(0)))
    assert dormant_percent(h).shape == (1,)


def test_total_percent_pools_units_across_layers() -> None:
    narrow = _live(16, 4).expand(2, 16, 4).clone()
    narrow[0, :, 0] = 0.0  # member 0: 1/4, member 1: 0/4
    wide = _live(16, 12, seed=3).expand(2, 16, 12).clone()
    wide[0, :, :6] = 0.0  # member 0: 6/12
    wide[1, :, :3] = 0.0  # member 1: 3/12
    total = dormant_percent_total({"l0": narrow, "l1": wide}, tau=0.1)
    # Pooled: (1 + 6) / 16 and (0 + 3) / 16, not the mean of layer percentages (37.5, 12.5).
    torch.testing.assert_close(total, torch.tensor([700 / 16, 300 / 16], dtype=total.dtype))


def test_total_percent_rejects_mismatched_members_and_empty() -> None:
    with pytest.raises(ValueError):
        dormant_percent_total({"a": torch.ones(2, 4, 3), "b": torch.ones(1, 4, 3)})
    with pytest.raises(ValueError):
        dormant_percent_total({})


def test_bad_shape_raises() -> None:
    with pytest.raises(ValueError):
        dormant_scores(torch.ones(4))


# ---------------------------------------------------------------- srank


@pytest.mark.parametrize("rank", [1, 3, 5])
def test_srank_of_low_rank_product(rank: int) -> None:
    g = torch.Generator().manual_seed(rank)
    m = torch.randn(64, rank, generator=g) @ torch.randn(rank, 32, generator=g)
    assert m.dtype == torch.float32
    assert srank(m, delta=1e-4).tolist() == [rank]


def test_srank_equal_singular_values_is_full_rank() -> None:
    q, _ = torch.linalg.qr(torch.randn(16, 8, generator=torch.Generator().manual_seed(0)))
    assert srank(q * 3.0, delta=0.01).tolist() == [8]


def test_srank_matches_hand_computed_threshold() -> None:
    m = torch.diag(torch.tensor([8.0, 1.0, 1.0]))  # cumulative shares 0.8, 0.9, 1.0
    assert srank(m, delta=0.25).tolist() == [1]
    assert srank(m, delta=0.15).tolist() == [2]
    assert srank(m, delta=0.05).tolist() == [3]


def test_srank_same_for_wide_and_tall_matrices() -> None:
    g = torch.Generator().manual_seed(11)
    low = (torch.randn(2, 12, 4, generator=g) @ torch.randn(2, 4, 40, generator=g)).relu()  # wide
    wide = srank(low, delta=0.01)
    assert torch.equal(wide, srank(low.transpose(1, 2), delta=0.01))
    s = torch.linalg.svdvals(low[0].double())
    share = s.cumsum(0) / s.sum()
    assert wide[0].item() == int((share < 0.99).sum()) + 1


def test_srank_zero_matrix_and_batched_members() -> None:
    assert srank(torch.zeros(10, 6)).tolist() == [0]
    g = torch.Generator().manual_seed(7)
    low = torch.randn(20, 2, generator=g) @ torch.randn(2, 6, generator=g)
    h = torch.stack([low, torch.zeros(20, 6)])
    out = srank(h, delta=1e-4)
    assert out.dtype == torch.int64
    assert out.tolist() == [2, 0]


# ---------------------------------------------------------------- norms


def test_feature_norm() -> None:
    h = torch.randn(2, 9, 5, generator=torch.Generator().manual_seed(0))
    expected = torch.linalg.vector_norm(h, dim=-1).mean(dim=-1)
    torch.testing.assert_close(feature_norm(h), expected.double())
    assert feature_norm(torch.tensor([[3.0, 4.0], [0.0, 1.0]])).tolist() == [3.0]


def test_param_norm_and_by_layer() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(5, 3)
    expected = torch.nn.utils.get_total_norm(list(lin.parameters())).item()
    assert param_norm(lin.parameters()) == pytest.approx(expected, rel=1e-6)
    manual = math.sqrt(
        lin.weight.detach().double().square().sum() + lin.bias.detach().double().square().sum()
    )
    assert param_norm([lin.weight, lin.bias]) == pytest.approx(manual, rel=1e-12)

    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    by_layer = param_norms_by_layer(net)
    assert list(by_layer) == ["0", "2"]
    for key, layer in (("0", net[0]), ("2", net[2])):
        ref = torch.linalg.vector_norm(torch.cat([p.detach().flatten() for p in layer.parameters()]))
        assert by_layer[key] == pytest.approx(ref.item(), rel=1e-6)


def test_param_norms_by_layer_groups_nested_and_direct_parameters() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linears = nn.ModuleList([nn.Linear(3, 3), nn.Linear(3, 1, bias=False)])
            self.task_weights = nn.Parameter(torch.full((2, 2), 0.5))

    net = Net()
    by_layer = param_norms_by_layer(net)
    assert set(by_layer) == {"linears.0", "linears.1", "task_weights"}
    assert by_layer["task_weights"] == pytest.approx(1.0)
    assert by_layer["linears.1"] == pytest.approx(torch.linalg.vector_norm(net.linears[1].weight).item())


class _Ensemble(nn.Module):
    def __init__(self, ensemble: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(ensemble, 4, 3))
        self.bias = nn.Parameter(torch.randn(ensemble, 1, 3))
        self.out = nn.Parameter(torch.randn(ensemble, 3))


def test_param_norm_per_member() -> None:
    torch.manual_seed(0)
    net = _Ensemble(2)
    out = param_norm_per_member(net, 2)
    assert out.shape == (2,)
    for e in range(2):
        ref = math.sqrt(sum(float(p[e].detach().double().square().sum()) for p in net.parameters()))
        assert out[e].item() == pytest.approx(ref, rel=1e-12)
    # Members add up to the global norm.
    assert float(out.square().sum().sqrt()) == pytest.approx(param_norm(net.parameters()), rel=1e-12)
    with pytest.raises(ValueError):
        param_norm_per_member(net, 3)


def test_grad_norm_matches_clip_grad_norm() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    unused = nn.Parameter(torch.ones(3))  # never used: its .grad stays None
    net.register_parameter("unused", unused)
    net(torch.randn(16, 4)).square().mean().backward()
    assert unused.grad is None
    ours = grad_norm(p.grad for p in net.parameters())
    assert ours > 0
    total = torch.nn.utils.clip_grad_norm_(list(net.parameters()), max_norm=1e9)
    assert ours == pytest.approx(total.item(), rel=1e-6)


def test_grad_norm_per_member() -> None:
    torch.manual_seed(0)
    net = _Ensemble(2)
    net.register_parameter("unused", nn.Parameter(torch.ones(2, 5)))  # no grad: skipped
    x = torch.randn(2, 7, 4)
    ((x @ net.weight + net.bias) * net.out.unsqueeze(1)).square().sum().backward()
    out = grad_norm_per_member(net, 2)
    assert out.shape == (2,) and out.dtype == torch.float64
    for e in range(2):
        grads = [p.grad[e] for p in net.parameters() if p.grad is not None]
        ref = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))
        assert out[e].item() == pytest.approx(ref.item(), rel=1e-6)
    total = torch.nn.utils.clip_grad_norm_(list(net.parameters()), max_norm=1e9)
    assert float(out.square().sum().sqrt()) == pytest.approx(total.item(), rel=1e-6)
    net.zero_grad(set_to_none=True)
    assert grad_norm_per_member(net, 2).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        (net.weight.sum() + net.bias.sum()).backward()
        grad_norm_per_member(net, 1)


# ---------------------------------------------------------------- purity


def test_inputs_unchanged_and_no_grad_safe() -> None:
    h = torch.randn(2, 8, 6, requires_grad=True)
    before = h.detach().clone()
    with torch.no_grad():
        dormant_scores(h)
        dormant_percent_total({"a": h})
        srank(h)
        feature_norm(h)
    out = dormant_scores(h)
    assert not out.requires_grad
    assert torch.equal(h.detach(), before)
    assert h.dtype == torch.float32
    # Deterministic: identical calls give identical results.
    assert torch.equal(srank(h), srank(h))
    assert torch.equal(dormant_scores(h), out)
