"""Probing real (tiny) runs: probe batches per checkpoint, policy actions, format, determinism, errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mtrl.config.settings import TrainConfig
from mtrl.files import checkpoints as ckpt
from mtrl.probe.plasticity import feature_norm
from mtrl.probe.probing import (
    METRICS,
    NETWORKS,
    _build_agent,
    _load_agent,
    capture_hidden,
    features,
    probe_agent,
    probe_run,
    stored_batch,
)
from mtrl.run.train import train
from mtrl.tables import read_plasticity_h5
from tests.conftest import TINY

TAUS = (0.0, 0.025, 0.1)


def _read_all(path: Path) -> dict[str, object]:
    """Every dataset and attribute of an HDF5 file, keyed by path."""
    out: dict[str, object] = {}
    with h5py.File(path, "r") as handle:
        out.update({f"/@{k}": v for k, v in handle.attrs.items()})

        def visit(name: str, obj: h5py.HLObject) -> None:
            out.update({f"{name}@{k}": v for k, v in obj.attrs.items()})
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]

        handle.visititems(visit)
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("probe") / "run"
    train(TrainConfig.from_dict(TINY), run_dir, quiet=True)
    return run_dir


@pytest.fixture(scope="module")
def probed(tiny_run: Path) -> Path:
    return probe_run(tiny_run)


def test_file_shapes_and_ranges(tiny_run: Path, probed: Path) -> None:
    assert probed == tiny_run / "plasticity.h5"
    steps = [s for s, _ in ckpt.probe_checkpoints(tiny_run)]
    s, t, depth, width = len(steps), len(TAUS), TINY.get("depth", 3), TINY["actor_width"]
    assert s == TINY["probe_checkpoints"] + 1  # plus the untrained networks at step 0
    with h5py.File(probed, "r") as handle:
        assert handle["step"].dtype == np.int64
        assert handle["step"][()].tolist() == steps == sorted(steps)
        assert json.loads(handle.attrs["taus"]) == list(TAUS)
        assert json.loads(handle.attrs["config"]) == TrainConfig.from_dict(TINY).resolved().to_dict()
        assert set(json.loads(handle.attrs["definitions"])) == set(METRICS)
        assert handle.attrs["batch_per_task"] == TINY["batch_per_task"] and handle.attrs["seed"] == 0
        assert handle.attrs["critic_actions"] == "policy"
        for net in NETWORKS:
            group = handle[net]
            layers = json.loads(group.attrs["layers"])
            assert layers == [f"act{i}" for i in range(depth)]
            shapes = {
                "dormant_pct": (s, t, depth),
                "dormant_pct_total": (s, t),
                "srank": (s, depth),
                "feature_norm": (s, depth),
                "param_norm": (s,),
                "grad_norm": (s,),
            }
            assert set(group) == set(shapes)
            for metric, shape in shapes.items():
                assert group[metric].shape == shape, (net, metric)
                assert group[metric].attrs["units"] and group[metric].attrs["definition"]
            dormant, total = group["dormant_pct"][()], group["dormant_pct_total"][()]
            assert np.isfinite(dormant).all() and (dormant >= 0).all() and (dormant <= 100).all()
            # More units are dormant at a larger tau.
            assert (np.diff(dormant, axis=1) >= 0).all() and (np.diff(total, axis=1) >= 0).all()
            # All hidden layers have the same width here, so the pooled % is the mean over layers.
            np.testing.assert_allclose(total, dormant.mean(axis=2))
            srank = group["srank"][()]
            assert srank.dtype == np.int64 and (srank >= 1).all() and (srank <= width).all()
            for metric in ("feature_norm", "param_norm", "grad_norm"):
                values = group[metric][()]
                assert np.isfinite(values).all() and (values > 0).all(), (net, metric)
    res = read_plasticity_h5(probed)
    assert res.step.tolist() == steps
    assert res.taus.tolist() == list(TAUS)
    assert res.metrics["critic1"]["dormant_pct"].shape == (s, t, depth)


def test_probe_is_deterministic_and_leaves_rng(tiny_run: Path, probed: Path, tmp_path: Path) -> None:
    rng = torch.get_rng_state()
    again = probe_run(tiny_run, tmp_path / "again.h5")
    assert torch.equal(torch.get_rng_state(), rng)
    first, second = _read_all(probed), _read_all(again)
    assert first.keys() == second.keys()
    for key, value in first.items():
        assert np.array_equal(np.asarray(value), np.asarray(second[key])), key
    assert probed.read_bytes() == again.read_bytes()
    # A different noise seed gives other policy actions, so other critic features.
    other = probe_run(tiny_run, tmp_path / "other.h5", seed=1)
    with h5py.File(probed, "r") as a, h5py.File(other, "r") as b:
        assert not np.array_equal(a["critic0/feature_norm"][()], b["critic0/feature_norm"][()])
        assert np.array_equal(a["actor/param_norm"][()], b["actor/param_norm"][()])


def test_grad_and_param_norms_match_a_direct_computation(tiny_run: Path, probed: Path) -> None:
    step, path = ckpt.probe_checkpoints(tiny_run)[-1]
    state = ckpt.load(path)
    agent = _build_agent(TrainConfig.from_dict(state["config"]), 40, 4)
    _load_agent(agent, state)
    batch = stored_batch(state, path, agent.num_tasks)
    agent.generator.manual_seed(0)
    agent.critic_loss(batch)[0].backward()
    critic_total = torch.nn.utils.clip_grad_norm_(list(agent.critic.parameters()), max_norm=1e12)
    agent.zero_grad(set_to_none=True)
    agent.critic.requires_grad_(False)
    agent.actor_loss(batch)[0].backward()
    actor_total = torch.nn.utils.clip_grad_norm_(list(agent.actor.parameters()), max_norm=1e12)
    res = read_plasticity_h5(probed)
    m = res.metrics
    assert res.step[-1] == step
    critic_from_members = np.hypot(m["critic0"]["grad_norm"][-1], m["critic1"]["grad_norm"][-1])
    assert critic_from_members == pytest.approx(critic_total.item(), rel=1e-5)
    assert m["actor"]["grad_norm"][-1] == pytest.approx(actor_total.item(), rel=1e-5)
    actor_params = torch.linalg.vector_norm(torch.cat([p.flatten() for p in state["actor"].values()]))
    assert m["actor"]["param_norm"][-1] == pytest.approx(actor_params.item(), rel=1e-5)
    member1 = torch.cat([p[1].flatten() for p in state["critic"].values()])
    assert m["critic1"]["param_norm"][-1] == pytest.approx(torch.linalg.vector_norm(member1).item(), rel=1e-5)


def test_each_checkpoint_has_a_batch_from_the_buffer_at_its_step(tiny_run: Path, tmp_path: Path) -> None:
    """Checkpoint S holds one training batch drawn (fixed seed) from the buffer as it was at step S;
    step 0 holds the first episode's warm-up data."""
    per_task = TINY["batch_per_task"]
    batches = {}
    for step, path in ckpt.probe_checkpoints(tiny_run):
        state = ckpt.load(path)
        batch = stored_batch(state, path, 1)
        assert batch.obs.shape == (per_task, 40) and batch.action.shape == (per_task, 4)
        assert batch.task.tolist() == [0] * per_task and torch.equal(batch.obs[:, -1], torch.ones(per_task))
        batches[step] = batch
    assert sorted(batches) == [0, 1000, 2000]
    assert not torch.equal(batches[1000].obs, batches[2000].obs)
    # A run stopped after one episode has, at its end, the buffer the step-0 batch was drawn from,
    # and the same run continued further draws its later batches from later buffers.
    short = dataclasses.replace(
        TrainConfig.from_dict(TINY), total_steps=500, probe_checkpoints=1, eval_every=500
    )
    train(short, tmp_path / "short", quiet=True)
    (_, first), (_, last) = ckpt.probe_checkpoints(tmp_path / "short")
    first_batch, last_batch = (stored_batch(ckpt.load(p), p, 1) for p in (first, last))
    assert torch.equal(first_batch.obs, last_batch.obs) and torch.equal(first_batch.action, last_batch.action)
    assert torch.equal(first_batch.obs, batches[0].obs)
    assert not torch.equal(batches[2000].obs, batches[0].obs)


def test_critic_features_use_policy_actions(tiny_run: Path) -> None:
    step, path = ckpt.probe_checkpoints(tiny_run)[-1]
    state = ckpt.load(path)
    agent = _build_agent(TrainConfig.from_dict(state["config"]), 40, 4)
    _load_agent(agent, state)
    batch = stored_batch(state, path, 1)
    agent.generator.manual_seed(7)
    action = agent.act(batch.obs)
    layers = list(agent.critic.hidden_layers())
    with torch.no_grad(), capture_hidden(agent.critic) as on_policy:
        agent.critic(torch.cat([batch.obs, action], dim=-1), batch.task)
    with torch.no_grad(), capture_hidden(agent.critic) as on_replay:
        agent.critic(torch.cat([batch.obs, batch.action], dim=-1), batch.task)
    actor_h, critic_h = features(agent, batch, seed=7)
    assert list(critic_h) == layers and list(actor_h) == list(agent.actor.hidden_layers())
    for name in layers:
        assert torch.equal(critic_h[name], on_policy[name])
        assert not torch.equal(critic_h[name], on_replay[name])
    row = probe_agent(agent, batch, seed=7)
    expected = torch.stack([feature_norm(on_policy[name]) for name in layers], dim=-1).numpy()
    np.testing.assert_allclose(row["critic0"]["feature_norm"], expected[0])
    np.testing.assert_allclose(row["critic1"]["feature_norm"], expected[1])
    probed = read_plasticity_h5(probe_run(tiny_run, tiny_run / "seed7.h5", seed=7))
    assert probed.step[-1] == step
    np.testing.assert_allclose(probed.metrics["critic0"]["feature_norm"][-1], expected[0])


def test_checkpoint_without_probe_batch_is_an_error_naming_it(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "old"
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints")
    step, path = ckpt.probe_checkpoints(run)[1]
    state = ckpt.load(path)
    del state["probe_batch"]
    ckpt.save_atomic(state, path)
    with pytest.raises(ValueError, match=f"{path}: no probe batch"):
        probe_run(run)
    state = ckpt.load(ckpt.probe_checkpoints(tiny_run)[1][1])
    state["probe_batch"]["task"] = torch.ones_like(state["probe_batch"]["task"])
    ckpt.save_atomic(state, path)
    with pytest.raises(ValueError, match="not 1 equal task blocks"):
        probe_run(run)
    assert not (run / "plasticity.h5").exists()


def test_checkpoints_load_on_cpu(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for _, path in ckpt.probe_checkpoints(tiny_run):
        state = ckpt.load(path, "cpu")
        assert all(t.device.type == "cpu" for t in [*state["actor"].values(), *state["critic"].values()])
    devices = []
    real_load = ckpt.load

    def spy(path: Path, device: str | torch.device = "cpu") -> dict:
        devices.append(torch.device(device))
        return real_load(path, device)

    monkeypatch.setattr(ckpt, "load", spy)
    probe_run(tiny_run, tmp_path / "p.h5")
    assert devices and all(d == torch.device("cpu") for d in devices)
    if torch.cuda.is_available():  # a checkpoint written from GPU tensors probes on the CPU path
        run = tmp_path / "gpu_run"
        shutil.copytree(tiny_run / "checkpoints", run / "checkpoints")
        for _, path in ckpt.probe_checkpoints(run):
            state = real_load(path)
            for key in ("actor", "critic", "probe_batch"):
                state[key] = {k: v.cuda() for k, v in state[key].items()}
            ckpt.save_atomic(state, path)
        assert _read_all(probe_run(run))["step"] is not None


def test_cli_probe(tiny_run: Path, tmp_path: Path) -> None:
    from mtrl.cli import main

    out = tmp_path / "cli.h5"
    assert main(["probe", str(tiny_run), "--out", str(out)]) == 0
    with h5py.File(out, "r") as handle:
        assert handle.attrs["batch_per_task"] == TINY["batch_per_task"]


def test_missing_inputs_name_the_path(tiny_run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=str(empty / "checkpoints" / "probe")):
        probe_run(empty)


@pytest.mark.parametrize(
    "arch_settings",
    [
        {"arch": "moore", "actor_width": 16, "critic_width": 16, "moore_experts": 2},
        {"arch": "sm", "sm_module_width": 16, "sm_embedding": 16},
    ],
    ids=["moore", "sm"],
)
def test_probe_other_architecture(arch_settings: dict, tmp_path: Path) -> None:
    cfg = {**TINY, **arch_settings, "total_steps": 1000, "probe_checkpoints": 1, "eval_every": 500}
    config = TrainConfig.from_dict(cfg)
    run_dir = tmp_path / "run"
    train(config, run_dir, quiet=True)
    res = read_plasticity_h5(probe_run(run_dir))
    agent = _build_agent(config, 39 + 1, 4)
    layers = list(agent.actor.hidden_layers())
    assert res.layers["actor"] == layers and res.layers["critic0"] == list(agent.critic.hidden_layers())
    assert res.step.tolist() == [s for s, _ in ckpt.probe_checkpoints(run_dir)] == [0, 1000]
    for net in NETWORKS:
        m = res.metrics[net]
        n_layers = len(res.layers[net])
        assert m["dormant_pct"].shape == (2, 3, n_layers)
        assert m["srank"].shape == (2, n_layers) and (m["srank"] >= 1).all()
        assert ((m["dormant_pct"] >= 0) & (m["dormant_pct"] <= 100)).all()
        for metric in ("feature_norm", "param_norm", "grad_norm"):
            assert np.isfinite(m[metric]).all() and (m[metric] > 0).all()
