"""The fast paths give the eager update's numbers: capture-ready update, packed buffer, overlap."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mtrl.agents.buffers import MultiTaskReplayBuffer
from mtrl.agents.sac import MultiTaskSAC
from mtrl.config.settings import ARCHS, ConfigError, TrainConfig
from mtrl.run.train import Trainer

SMALL = {"sm_module_width": 16, "sm_embedding": 16, "actor_width": 16, "critic_width": 16}
UPDATES = 4


def filled_buffer(device: torch.device, n: int = 10, size: int = 50) -> MultiTaskReplayBuffer:
    buffer = MultiTaskReplayBuffer(n, 64, 39, 4, device)
    rng = np.random.default_rng(0)
    for _ in range(size):
        obs = rng.standard_normal((n, 39 + n)).astype(np.float32)
        nxt = rng.standard_normal((n, 39 + n)).astype(np.float32)
        buffer.add(obs, rng.uniform(-1, 1, (n, 4)), rng.standard_normal(n), nxt, rng.random(n) < 0.1)
    return buffer


def run_updates(
    arch: str, mode: str, device: torch.device, **extra
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Metrics of UPDATES updates from one buffer and sample seed, and the parameters after them."""
    torch.manual_seed(0)
    extra = {"matmul_precision": "float32", **extra}  # eager and graph compared at one precision
    config = TrainConfig(task_set="mt10", arch=arch, update_mode=mode, device=device.type, **SMALL, **extra)
    config = config.resolved()
    agent = MultiTaskSAC(config, 49, 4, device)
    buffer = filled_buffer(device)
    gen = torch.Generator(device=device).manual_seed(1)
    metrics = [agent.update_from_buffer(buffer, 8, gen) for _ in range(UPDATES)]
    return torch.stack(metrics).cpu(), [p.detach().cpu() for p in agent.parameters()]


@pytest.mark.parametrize("arch", ARCHS)
def test_graph_mode_matches_eager_on_cpu(arch):
    # On a CPU the capture-ready body runs uncaptured: same random numbers, same maths, so the
    # tolerance is exact equality.
    want_metrics, want_params = run_updates(arch, "eager", torch.device("cpu"))
    got_metrics, got_params = run_updates(arch, "graph", torch.device("cpu"))
    assert torch.equal(want_metrics, got_metrics)
    for want, got in zip(want_params, got_params, strict=True):
        assert torch.equal(want, got)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("arch", ARCHS)
def test_captured_update_matches_eager_on_gpu(arch):
    # Captured Adam keeps its step on the device (capturable), which rounds differently from eager
    # fused Adam; over 4 updates losses agree to 1e-4 relative and parameters to 1e-5 absolute.
    device = torch.device("cuda")
    want_metrics, want_params = run_updates(arch, "eager", device)
    got_metrics, got_params = run_updates(arch, "graph", device)
    torch.testing.assert_close(got_metrics, want_metrics, rtol=1e-4, atol=1e-5)
    for want, got in zip(want_params, got_params, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def fixed_batch_updates(mode: str, device: torch.device, **extra) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Metrics of UPDATES updates on one batch held fixed (`update_on`), and the parameters after them."""
    torch.manual_seed(0)
    config = TrainConfig(task_set="mt10", update_mode=mode, device=device.type, matmul_precision="float32")
    agent = MultiTaskSAC(config.resolved(), 49, 4, device)
    batch = filled_buffer(device).sample(8, torch.Generator(device=device).manual_seed(1))
    metrics = [agent.update_on(batch) for _ in range(UPDATES)]
    return torch.stack(metrics).cpu(), [p.detach().cpu() for p in agent.parameters()]


def test_the_fixed_batch_update_is_the_eager_update_without_sampling():
    # `update_on` (the update the JAX anchor times: no sampling) gives eager's numbers exactly on a
    # CPU, and the update on a sampled batch is the update on that batch
    want_metrics, want_params = fixed_batch_updates("eager", torch.device("cpu"))
    got_metrics, got_params = fixed_batch_updates("graph", torch.device("cpu"))
    assert torch.equal(want_metrics, got_metrics)
    assert all(torch.equal(w, g) for w, g in zip(want_params, got_params, strict=True))
    assert not torch.equal(want_metrics[0], want_metrics[1])  # the agent learns: each update differs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_captured_fixed_batch_update_matches_eager_on_gpu():
    want_metrics, want_params = fixed_batch_updates("eager", torch.device("cuda"))
    got_metrics, got_params = fixed_batch_updates("graph", torch.device("cuda"))
    torch.testing.assert_close(got_metrics, want_metrics, rtol=1e-4, atol=1e-5)
    for want, got in zip(want_params, got_params, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


# `compiled` (losses and clipping by torch.compile) rounds differently from eager: fused kernels
# reorder float operations. Over UPDATES updates metrics agree to 1e-5 relative (+1e-6 absolute)
# and parameters to 1e-6 absolute on a CPU (measured: 4e-7 and 2e-8).
COMPILED_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{}, {"use_task_weights": True, "max_q_value": 5.0}])
def test_compiled_mode_matches_eager_on_cpu(extra):
    want_metrics, want_params = run_updates("mtmhsac", "eager", torch.device("cpu"), **extra)
    got_metrics, got_params = run_updates("mtmhsac", "compiled", torch.device("cpu"), **extra)
    torch.testing.assert_close(got_metrics, want_metrics, **COMPILED_TOLERANCE)
    for want, got in zip(want_params, got_params, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=COMPILED_TOLERANCE["atol"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_compiled_captured_update_matches_eager_on_gpu():
    # capturable Adam as in graph mode, plus fused kernels: the graph mode's tolerance
    want_metrics, want_params = run_updates("mtmhsac", "eager", torch.device("cuda"))
    got_metrics, got_params = run_updates("mtmhsac", "compiled", torch.device("cuda"))
    torch.testing.assert_close(got_metrics, want_metrics, rtol=1e-4, atol=1e-5)
    for want, got in zip(want_params, got_params, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_captured_update_survives_resume_and_a_second_buffer():
    device = torch.device("cuda")
    config = TrainConfig(task_set="mt10", update_mode="graph", device="cuda", **SMALL).resolved()
    agent = MultiTaskSAC(config, 49, 4, device)
    buffer, gen = filled_buffer(device), torch.Generator(device=device).manual_seed(1)
    agent.update_from_buffer(buffer, 8, gen)
    state = agent.training_state()
    agent.load_training_state(state)  # drops the graph: the optimisers' tensors were replaced
    assert agent._static is None
    assert torch.isfinite(agent.update_from_buffer(buffer, 8, gen)).all()


@pytest.mark.parametrize("trained", [False, True])
def test_the_warm_up_before_capture_is_undone_exactly(trained):
    """Capture runs warm-up updates first and undoes them (mtrl.agents.capture): parameters, targets
    and temperatures as before, Adam state as before or, where the warm-up created it, zero."""
    from mtrl.agents.capture import _restore, _snapshot

    config = TrainConfig(task_set="mt10", update_mode="graph", **SMALL).resolved()
    agent = MultiTaskSAC(config, 49, 4, torch.device("cpu"))
    buffer, gen = filled_buffer(torch.device("cpu")), torch.Generator().manual_seed(1)
    if trained:
        agent.update_from_buffer(buffer, 8, gen)
    params = [p.detach().clone() for p in agent.parameters()]
    states = [copy.deepcopy(optim.state_dict()["state"]) for optim in agent.optimizers()]
    saved = _snapshot(agent)
    for _ in range(3):
        agent.update_from_buffer(buffer, 8, gen)
    assert not all(torch.equal(a, b) for a, b in zip(params, agent.parameters(), strict=True))
    _restore(agent, saved)
    assert all(torch.equal(a, b) for a, b in zip(params, agent.parameters(), strict=True))
    for before, optim in zip(states, agent.optimizers(), strict=True):
        after = optim.state_dict()["state"]
        assert after.keys() == before.keys() if trained else len(after) > 0  # the warm-up made state
        for key, values in after.items():
            for name, value in values.items():
                want = before[key][name] if trained else torch.zeros_like(value)
                assert torch.equal(value, want), (key, name)


def test_bf16_autocast_is_used_and_stays_close():
    want, _ = run_updates("mtmhsac", "eager", torch.device("cpu"))
    got, _ = run_updates("mtmhsac", "eager", torch.device("cpu"), matmul_precision="bf16")
    assert not torch.equal(want, got)  # bf16 matmuls do change the numbers
    torch.testing.assert_close(got[0, :2], want[0, :2], rtol=0.05, atol=0.05)


def test_update_mode_and_precision_are_validated():
    with pytest.raises(ConfigError, match="update_mode"):
        TrainConfig.from_dict({"update_mode": "jit"})
    with pytest.raises(ConfigError, match="matmul_precision"):
        TrainConfig.from_dict({"matmul_precision": "fp8"})
    assert TrainConfig.from_dict({"matmul_precision": "tf32"}).to_dict()["matmul_precision"] == "tf32"


def test_packed_buffer_gathers_what_was_added():
    buffer = MultiTaskReplayBuffer(3, 8, 5, 2)
    obs, nxt = np.arange(3 * 8).reshape(3, 8) * 1.0, -np.arange(3 * 8).reshape(3, 8) * 1.0
    buffer.add(obs, np.full((3, 2), 0.5), np.array([1.0, 2.0, 3.0]), nxt, np.array([0, 1, 0]))
    batch = buffer.gather(torch.zeros(3, 2, dtype=torch.long))
    assert torch.equal(batch.obs[::2, :5], torch.as_tensor(obs[:, :5], dtype=torch.float32))
    assert torch.equal(batch.obs[::2, 5:], torch.eye(3))
    assert torch.equal(batch.next_obs[::2, :5], torch.as_tensor(nxt[:, :5], dtype=torch.float32))
    assert torch.equal(batch.reward, torch.tensor([1.0, 1, 2, 2, 3, 3]))
    assert torch.equal(batch.done, torch.tensor([0.0, 0, 1, 1, 0, 0]))
    assert torch.equal(batch.action, torch.full((6, 2), 0.5))
    state = buffer.state_dict()
    assert state["obs"].is_contiguous() and state["obs"].untyped_storage().nbytes() == 3 * 1 * 5 * 4


@pytest.mark.parametrize("overlap", [False, True])
def test_overlap_updates_on_the_buffer_one_step_old(tmp_path, tiny_config, monkeypatch, overlap):
    config = dataclasses.replace(tiny_config, warmup_steps_per_task=3, overlap=overlap).resolved()
    trainer = Trainer(config, tmp_path / "run", quiet=True, provenance="", restart_stale=False)
    seen: list[int] = []
    agent = trainer.state.agent
    update = agent.update_from_buffer
    monkeypatch.setattr(
        agent, "update_from_buffer", lambda buf, *a: (seen.append(len(buf)), update(buf, *a))[1]
    )
    obs, _ = trainer.state.envs.reset()
    for _ in range(6):
        obs, _, _ = trainer.collect_and_update(obs)
    trainer.state.envs.close()
    # updates start at step 3 either way; with overlap each one misses the step's own transition
    assert seen == ([2, 3, 4, 5] if overlap else [3, 4, 5, 6])
    assert trainer.state.window.count == 4 and len(trainer.state.buffer) == 6


def _update_ops():
    """benchmarks/update_ops.py, which imports its neighbour throughput.py."""
    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("update_ops")


# One graph-mode update of MTMHSAC (depth 3) on a CPU, by phase: the ops the CUDA graph captures
# (benchmarks/results/update_ops.csv; 222 before the temperatures were computed once and the
# all-ones task weights left out).
GRAPH_OPS = {
    **{"outside": 4, "gather": 5, "temperatures": 2},
    **{"critic loss": 56, "critic backward": 21, "critic clip": 8, "critic adam": 2},
    **{"actor loss": 38, "actor backward": 49, "actor clip": 8, "actor adam": 2},
    **{"alpha loss": 5, "alpha backward": 6, "alpha adam": 2, "polyak": 1, "metrics": 3},
}


def _ops(mode: str, **extra) -> dict[str, list[str]]:
    values = {"task_set": "mt10", "device": "cpu", "update_mode": mode, "actor_width": 16, "critic_width": 16}
    return _update_ops().count(TrainConfig.from_dict(values | extra), warmup=1)


def test_one_update_runs_its_known_ops_and_never_waits_for_the_device():
    ops = _ops("graph")
    assert {phase: len(names) for phase, names in ops.items()} == GRAPH_OPS
    assert ops["outside"] == ["randint", "copy_", "randn", "randn"]  # indices and noise, outside the graph
    assert ops["temperatures"] == ["exp", "index"]  # once for both losses
    every = [name for names in ops.values() for name in names]
    assert not {"item", "_local_scalar_dense", "ones"} & set(every)  # no host sync, no all-ones weights
    weighted = _ops("graph", use_task_weights=True)
    assert weighted["temperatures"] == ["neg", "softmax", "mul", "index", "exp", "index"]
    assert len(weighted["critic loss"]) == len(ops["critic loss"]) + 1  # the weights' multiplication


@pytest.mark.slow
def test_the_compiled_update_runs_fewer_than_half_the_ops():
    graph, compiled = _ops("graph"), _ops("compiled")
    total = sum(len(names) for names in compiled.values())
    assert total <= 102 < sum(GRAPH_OPS.values()) / 2  # measured: 102 of 212
    for phase in ("critic loss", "critic backward", "actor loss", "actor backward", "alpha loss"):
        assert len(compiled[phase]) < len(graph[phase]), phase
    assert len(compiled["critic clip"]) == len(compiled["actor clip"]) == 2  # of 8: one fused kernel
