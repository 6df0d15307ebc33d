"""Soft Modularization, PaCo, MOORE and the parameter matching: fast CPU checks."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch
from torch import nn

from mtrl.config.settings import TrainConfig
from mtrl.nets import build_network
from mtrl.nets.layers import count_parameters
from mtrl.nets.matching import (
    STUDY_WIDTHS,
    count_actor_critic,
    format_param_table,
    matched_width,
    mlp_counts,
    param_table,
)
from mtrl.nets.moore import Moore, gram_schmidt, qr_orthonormalize
from mtrl.nets.paco import PaCo
from mtrl.nets.soft_modularization import SoftModularization

S, A = 39, 4  # state and action floats
N = 3  # tasks in the small configurations
ROLES = {"actor": (S + N, 2 * A), "critic": (S + N + A, 1)}


def small(arch: str, role: str = "actor", ensemble: int = 1, num_tasks: int = N, **kw) -> nn.Module:
    in_f, out_f = S + num_tasks + (A if role == "critic" else 0), (2 * A if role == "actor" else 1)
    if arch == "sm":
        args = {"num_layers": 3, "num_modules": 2, "module_width": 6, "embedding": 10} | kw
        return SoftModularization(in_f, out_f, num_tasks, ensemble=ensemble, **args)
    if arch == "paco":
        return PaCo(
            in_f, out_f, num_tasks, **({"width": 8, "depth": 2, "num_sets": 3} | kw), ensemble=ensemble
        )
    return Moore(
        in_f, out_f, num_tasks, **({"width": 8, "depth": 3, "num_experts": 3} | kw), ensemble=ensemble
    )


def batch(
    net: nn.Module, batch_size: int = 12, num_tasks: int = N, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    critic = net.in_features == S + num_tasks + A
    task = torch.arange(batch_size) % num_tasks
    state = torch.randn(batch_size, S, generator=g)
    parts = [state, nn.functional.one_hot(task, num_tasks).float()]
    if critic:
        parts.append(torch.randn(batch_size, A, generator=g))
    return torch.cat(parts, dim=1), task


# ---------------------------------------------------------------- parameter counts by hand
def sm_count(s: int, n: int, emb: int, d: int, m: int, layers: int, o: int) -> int:
    h = d
    f = (s * emb + emb) + (emb * emb + emb)
    z = n * emb + emb
    t = (emb * h + h) + (h * h + h)
    routing = 0
    for layer in range(layers):
        out = m * m if layer < layers - 1 else m
        routing += (layer * m * m * h + h if layer > 0 else 0) + h * out + out
    modules = m * (emb * d + d) + (layers - 1) * m * (d * d + d)
    return f + z + t + routing + modules + (d * o + o)


def paco_count(s: int, n: int, k: int, w: int, depth: int, o: int) -> int:
    # (N -> K) one-hot Dense with its bias (shared by all tasks), then K sets of an MLP.
    return n * k + k + k * ((s * w + w) + (depth - 1) * (w * w + w) + (w * o + o))


def moore_count(s: int, n: int, k: int, w: int, depth: int, o: int) -> int:
    return n * k + k * ((s * w + w) + (depth - 1) * (w * w + w)) + n * (w * o + o)


@pytest.mark.parametrize("role", ["actor", "critic"])
def test_small_parameter_counts_by_hand(role: str) -> None:
    s = S + (A if role == "critic" else 0)  # state inputs: the one-hot is not fed to these networks
    o = ROLES[role][1]
    assert count_parameters(small("sm", role)) == sm_count(s, N, emb=10, d=6, m=2, layers=3, o=o)
    assert count_parameters(small("paco", role)) == paco_count(s, N, k=3, w=8, depth=2, o=o)
    assert count_parameters(small("moore", role)) == moore_count(s, N, k=3, w=8, depth=3, o=o)
    # The ensemble multiplies every parameter (leading E axis) and nothing else.
    for arch in ("sm", "paco", "moore"):
        net = small(arch, role, ensemble=2)
        assert count_parameters(net) == 2 * count_parameters(small(arch, role))
        assert all(p.shape[0] == 2 for p in net.parameters())


def test_paco_shared_bias_adds_k_parameters() -> None:
    assert count_parameters(small("paco")) == count_parameters(small("paco", shared_bias=False)) + 3


def test_full_size_counts_match_the_study_notebook() -> None:
    # MT10 actor counts from the study's parameter-count notebook (rainx0r/mtrl).
    assert count_actor_critic(TrainConfig(arch="sm")) == (691_022, 690_823)
    assert count_actor_critic(TrainConfig(arch="moore")) == (1_379_320, 1_357_650)
    # PaCo's one-hot Dense has a bias shared by all tasks (+K), as in the study's PaCoNetwork.
    assert count_actor_critic(TrainConfig(arch="paco")) == (1_700_095, 1_694_060)
    assert count_actor_critic(TrainConfig(arch="paco", task_set="mt50")) == (6_801_180, 6_777_040)
    assert mlp_counts("mt10", 400, 3) == (2 * 400**2 + 132 * 400 + 80, 2 * 400**2 + 66 * 400 + 10)


# ---------------------------------------------------------------- matching
def test_matched_widths_mt10() -> None:
    widths = {arch: matched_width(arch, "mt10", 3) for arch in ("sm", "paco", "moore")}
    # The rule (multi-head MLP, actor AND critic <= the architecture's) gives 555 / 889 / 798;
    # the study trained 550 / 885 / 800 (hand-rounded, see mtrl/nets/matching.py).
    assert widths == {"sm": 555, "paco": 889, "moore": 798}
    for arch, width in widths.items():
        assert abs(width - STUDY_WIDTHS[(arch, "mt10", 3)]) <= 5
    assert matched_width("paco", "mt10", 4) == STUDY_WIDTHS[("paco", "mt10", 4)] == 730
    assert matched_width("moore", "mt10", 4) == 656


def test_matched_width_is_the_largest_fitting_width() -> None:
    actor, critic = count_actor_critic(TrainConfig(arch="moore"))
    width = matched_width("moore", "mt10", 3)
    a, c = mlp_counts("mt10", width, 3)
    assert a <= actor and c <= critic
    a, c = mlp_counts("mt10", width + 1, 3)
    assert a > actor or c > critic


def test_param_table_formats() -> None:
    rows = param_table(task_sets=("mt10",), depths=(3,))
    assert [r["arch"] for r in rows] == ["sm", "paco", "moore"]
    text = format_param_table(rows)
    assert "691,022" in text and "555" in text and len(text.splitlines()) == 5


def test_mtrl_params_prints_mt10_and_mt50_at_depths_3_and_4(capsys) -> None:
    from mtrl.cli import main

    assert main(["params"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    paco = {(r[1], r[2]): (r[3], r[4], r[5]) for r in rows if r[0] == "paco"}
    assert paco == {
        ("mt10", "3"): ("1,700,095", "1,694,060", "889"),
        ("mt10", "4"): ("1,700,095", "1,694,060", "730"),
        ("mt50", "3"): ("6,801,180", "6,777,040", "1,725"),
        ("mt50", "4"): ("6,801,180", "6,777,040", "1,425"),
    }
    assert {(r[0], r[1], r[2]) for r in rows} == {
        (a, t, d) for a in ("sm", "paco", "moore") for t in ("mt10", "mt50") for d in ("3", "4")
    }


# ---------------------------------------------------------------- shapes, ensembles, hooks
@pytest.mark.parametrize("arch", ["sm", "paco", "moore"])
@pytest.mark.parametrize("role", ["actor", "critic"])
@pytest.mark.parametrize("ensemble", [1, 2])
def test_shapes_and_independent_members(arch: str, role: str, ensemble: int) -> None:
    torch.manual_seed(0)
    net = small(arch, role, ensemble)
    x, task = batch(net)
    out = net(x, task)
    assert out.shape == (ensemble, 12, ROLES[role][1])
    assert torch.allclose(net(x.expand(ensemble, *x.shape), task), out)  # (E, B, in) input too
    if ensemble == 2:
        assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("arch", ["sm", "paco", "moore"])
def test_hidden_layer_hooks_fire_once_with_ensemble_batch_units(arch: str) -> None:
    net = small(arch, "critic", ensemble=2)
    x, task = batch(net)
    seen: dict[str, list[tuple[int, ...]]] = {}
    layers = net.hidden_layers()
    assert len({id(m) for m in layers.values()}) == len(layers)  # distinct instances
    handles = [
        m.register_forward_hook(lambda _m, _i, o, name=name: seen.setdefault(name, []).append(tuple(o.shape)))
        for name, m in layers.items()
    ]
    net(x, task)
    for h in handles:
        h.remove()
    assert set(seen) == set(layers)
    for shapes in seen.values():
        assert len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][:2] == (2, 12)


def test_hidden_layer_names() -> None:
    assert set(small("paco").hidden_layers()) == {"act0", "act1"}
    assert set(small("moore").hidden_layers()) == {"expert_act0", "expert_act1", "features"}
    assert set(small("sm").hidden_layers()) == {
        "obs_act0",
        "obs_emb",
        "cond",
        "task_act0",
        "route_act0",
        "route_act1",
        "route_act2",
        "module0",
        "module1",
        "module2",
    }


@pytest.mark.parametrize("arch", ["sm", "paco", "moore"])
def test_every_parameter_learns(arch: str) -> None:
    net = small(arch, "critic", ensemble=2)
    x, task = batch(net)
    net(x, task).square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- architecture properties
def test_sm_routing_weights_are_distributions() -> None:
    net = small("sm", "actor", ensemble=2, num_layers=3, num_modules=3)
    x, task = batch(net)
    out, probs = net.forward_with_routing(x, task)
    assert [tuple(p.shape) for p in probs] == [(2, 12, 3, 3), (2, 12, 3, 3), (2, 12, 3)]
    for p in probs:
        assert (p >= 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]))
    torch.testing.assert_close(out, net(x, task))


def test_sm_routing_depends_on_task() -> None:
    net = small("sm")
    with torch.no_grad():  # make the routing logits non-trivial
        for layer in net.route_down:
            layer.weight.normal_()
    x, _ = batch(net)
    _, p0 = net.forward_with_routing(x, torch.zeros(12, dtype=torch.long))
    _, p1 = net.forward_with_routing(x, torch.ones(12, dtype=torch.long))
    assert not torch.allclose(p0[0], p1[0])


@pytest.mark.parametrize("method", ["gram_schmidt", "qr"])
def test_moore_expert_representations_are_orthonormal(method: str) -> None:
    torch.manual_seed(1)
    net = small("moore", "critic", ensemble=2, orthonormalization=method, num_experts=4, width=16)
    x, task = batch(net, batch_size=32)
    captured = []
    handle = net.orthonormalize.register_forward_hook(lambda _m, _i, o: captured.append(o))
    net(x, task)
    handle.remove()
    basis = captured[0]
    assert basis.shape == (2, 32, 4, 16)
    gram = basis @ basis.transpose(-1, -2)
    torch.testing.assert_close(gram, torch.eye(4).expand_as(gram), atol=1e-5, rtol=0)


def test_qr_equals_gram_schmidt() -> None:
    v = torch.randn(2, 50, 6, 40, dtype=torch.float64)
    torch.testing.assert_close(
        qr_orthonormalize(v), gram_schmidt(v), atol=1e-7, rtol=0
    )  # GS offsets norms by 1e-8


def test_paco_task_vectors_get_gradient_only_from_their_task() -> None:
    net = small("paco", "critic", ensemble=2)
    x, task = batch(net)
    i = 1
    mask = task == i
    net(x[mask], task[mask]).square().sum().backward()
    grad = net.task_weights.grad  # (E, N, K)
    assert (grad[:, i] != 0).all()
    assert (net.task_bias.grad != 0).all()  # the shared bias learns from every task
    for j in range(N):
        if j != i:
            assert torch.equal(grad[:, j], torch.zeros_like(grad[:, j]))  # exactly zero
    assert all((layer.weight.grad != 0).any() for layer in net.layers)  # shared sets learn from task i


def test_paco_equals_the_network_with_composed_parameters() -> None:
    torch.manual_seed(2)
    net = small("paco", "actor", ensemble=1, depth=3)
    with torch.no_grad():
        net.task_bias.uniform_(-1.0, 1.0)  # zero at init; non-zero here so that it is checked
    x, task = batch(net)
    out = net(x, task)[0]
    state = x[:, :S]
    for b in range(x.shape[0]):
        w = net.task_weights[0, task[b]] + net.task_bias[0, 0]  # (K,)
        h = state[b : b + 1]
        for layer in list(net.layers) + [net.head]:
            weight = torch.einsum("k,ikj->ij", w, layer.weight[0])
            bias = torch.einsum("k,kj->j", w, layer.bias[0, 0])
            h = h @ weight + bias
            if layer is not net.head:
                h = torch.relu(h)
        torch.testing.assert_close(h[0], out[b], atol=1e-5, rtol=1e-5)


def test_moore_and_sm_use_task_index_like_one_hot() -> None:
    # The networks read the task from `task`; the one-hot inside x is dropped, not double-counted.
    for arch in ("sm", "moore", "paco"):
        net = small(arch)
        x, task = batch(net)
        x_no_onehot = x.clone()
        x_no_onehot[:, S : S + N] = 0
        torch.testing.assert_close(net(x, task), net(x_no_onehot, task))


# ---------------------------------------------------------------- scale and factory
@pytest.mark.parametrize("arch", ["sm", "paco", "moore"])
def test_fifty_tasks_large_batch_is_vectorised(arch: str) -> None:
    """N = 50, B = 6400 forward + backward in well under a second per arch at small widths:
    the forward has no Python loop over tasks or samples."""
    kw = {"sm": {"num_layers": 4, "num_modules": 4}, "paco": {"num_sets": 20}, "moore": {"num_experts": 6}}[
        arch
    ]
    net = small(arch, "critic", ensemble=2, num_tasks=50, **kw)
    x, task = batch(net, batch_size=6400, num_tasks=50)
    start = time.perf_counter()
    net(x, task).sum().backward()
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize("arch", ["sm", "paco", "moore"])
def test_build_network_for_actor_and_critic(arch: str) -> None:
    config = TrainConfig(
        arch=arch, actor_width=16, critic_width=24, sm_module_width=8, sm_embedding=12
    ).resolved()
    n = config.num_tasks
    actor = build_network(config, "actor", S + n, 2 * A, ensemble=1)
    critic = build_network(config, "critic", S + n + A, 1, ensemble=2)
    task = torch.arange(5) % n
    x = torch.cat([torch.randn(5, S), nn.functional.one_hot(task, n).float()], 1)
    assert actor(x, task).shape == (1, 5, 8)
    assert critic(torch.cat([x, torch.randn(5, A)], 1), task).shape == (2, 5, 1)
    assert actor.ensemble == 1 and critic.ensemble == 2
    if arch != "sm":  # widths by role (SM has no width x depth MLP)
        assert count_parameters(critic) // 2 != count_parameters(actor)
    resolved = config.resolved()
    if arch == "paco":
        assert actor.num_sets == resolved.paco_k == 5
    if arch == "moore":
        assert actor.num_experts == resolved.moore_experts == 4
    if arch == "sm":
        assert (actor.num_layers, actor.num_modules) == (resolved.sm_layers, resolved.sm_modules) == (2, 2)


@pytest.mark.parametrize("task_set", ["mt10", "mt50"])
def test_build_network_sizes_paco_and_moore_from_the_config(task_set: str) -> None:
    # Role width, depth and the task set's K / expert count, the one-hot Dense bias included.
    config = TrainConfig(task_set=task_set, actor_width=16, critic_width=24, depth=2)
    n = config.num_tasks
    k_paco, k_moore = config.resolved().paco_k, config.resolved().moore_experts
    for role, width, in_f, out_f in [("actor", 16, S + n, 2 * A), ("critic", 24, S + n + A, 1)]:
        s = in_f - n
        paco = build_network(dataclasses.replace(config, arch="paco").resolved(), role, in_f, out_f)
        moore = build_network(dataclasses.replace(config, arch="moore").resolved(), role, in_f, out_f)
        assert count_parameters(paco) == paco_count(s, n, k=k_paco, w=width, depth=2, o=out_f)
        assert count_parameters(moore) == moore_count(s, n, k=k_moore, w=width, depth=2, o=out_f)


@pytest.mark.parametrize("arch", ["mtmhsac", "sm", "paco", "moore"])
def test_output_heads_are_small_uniform_and_hidden_layers_he_uniform(arch: str) -> None:
    """The authors' heads: weights and biases U(+-1e-3) (actor), U(+-3e-3) (critics); hidden layers
    He-uniform with zero bias. Checked by range and spread, which the default He init fails."""
    config = TrainConfig(
        arch=arch, actor_width=64, critic_width=64, sm_module_width=32, sm_embedding=48
    ).resolved()
    n = config.num_tasks
    for role, bound, in_f, out_f, e in [("actor", 1e-3, S + n, 2 * A, 1), ("critic", 3e-3, S + n + A, 1, 2)]:
        net = build_network(config, role, in_f, out_f, ensemble=e)
        for name, p in net.head.named_parameters():
            values = p.detach()
            assert values.abs().max() <= bound, (role, name)
            assert bool((values != 0).all()), (role, name)  # biases too: not zero
            if values.numel() >= 20:
                assert values.abs().max() > 0.8 * bound and values.std() > 0.4 * bound, (role, name)
        head_ids = {id(p) for p in net.head.parameters()}
        hidden = [(m, p) for m, p in net.named_parameters() if id(p) not in head_ids]
        biases = [p for m, p in hidden if m.endswith("bias") and "norm" not in m and p.dim() > 1]
        assert biases and all(bool((b == 0).all()) for b in biases)
        weights = [p for m, p in hidden if m.endswith("weight") and p.dim() >= 3]
        assert weights and max(float(w.detach().abs().max()) for w in weights) > 10 * bound
