"""Probing real (tiny) runs: file format, sane ranges, determinism, CPU loading, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mtrl import checkpoints as ckpt
from mtrl.aggregate import read_plasticity_h5
from mtrl.config import TrainConfig
from mtrl.probe import METRICS, NETWORKS, _build_agent, _load_agent, probe_batch, probe_run
from mtrl.train import train
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
        assert handle.attrs["batch_per_task"] == 128 and handle.attrs["seed"] == 0
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
    # A different batch seed gives a different batch and different numbers.
    other = probe_run(tiny_run, tmp_path / "other.h5", seed=1)
    with h5py.File(probed, "r") as a, h5py.File(other, "r") as b:
        assert not np.array_equal(a["critic0/feature_norm"][()], b["critic0/feature_norm"][()])
        assert np.array_equal(a["actor/param_norm"][()], b["actor/param_norm"][()])


def test_grad_and_param_norms_match_a_direct_computation(tiny_run: Path, probed: Path) -> None:
    step, path = ckpt.probe_checkpoints(tiny_run)[-1]
    state = ckpt.load(path)
    sample = ckpt.load(ckpt.replay_sample_path(tiny_run))
    agent = _build_agent(state["config"], sample["obs"].shape[-1], sample["action"].shape[-1])
    _load_agent(agent, state)
    batch = probe_batch(sample, agent.num_tasks, 128, seed=0)
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


def test_probe_batch_is_balanced_without_replacement(tiny_run: Path) -> None:
    sample = ckpt.load(ckpt.replay_sample_path(tiny_run))
    rows = sample["obs"].shape[0]
    sample["reward"] = torch.arange(rows, dtype=torch.float32)  # tag rows to find them in the batch
    batch = probe_batch(sample, 1, 100, seed=3)
    assert batch.obs.shape == (100, sample["obs"].shape[1]) and batch.task.tolist() == [0] * 100
    index = batch.reward.long()
    assert len(set(index.tolist())) == 100 and torch.equal(batch.obs, sample["obs"][index])
    again = probe_batch(sample, 1, 100, seed=3)
    assert torch.equal(again.obs, batch.obs) and torch.equal(again.action, batch.action)
    assert not torch.equal(probe_batch(sample, 1, 100, seed=4).obs, batch.obs)
    # Two tasks: equal counts, ordered task by task.
    two = {k: torch.cat([v, v]) for k, v in sample.items()}
    two["task"] = torch.cat([torch.zeros(rows, dtype=torch.long), torch.ones(rows, dtype=torch.long)])
    assert probe_batch(two, 2, 5, seed=0).task.tolist() == [0] * 5 + [1] * 5
    with pytest.raises(ValueError, match="fewer than batch_per_task"):
        probe_batch(sample, 1, rows + 1, seed=0)


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
    probe_run(tiny_run, tmp_path / "p.h5", batch_per_task=16)
    assert devices and all(d == torch.device("cpu") for d in devices)
    if torch.cuda.is_available():  # a checkpoint written from GPU tensors probes on the CPU path
        run = tmp_path / "gpu_run"
        shutil.copytree(tiny_run / "checkpoints", run / "checkpoints")
        shutil.copy(ckpt.replay_sample_path(tiny_run), ckpt.replay_sample_path(run))
        for _, path in ckpt.probe_checkpoints(run):
            state = real_load(path)
            for key in ("actor", "critic"):
                state[key] = {k: v.cuda() for k, v in state[key].items()}
            ckpt.save_atomic(state, path)
        assert _read_all(probe_run(run, batch_per_task=16))["step"] is not None


def test_cli_probe(tiny_run: Path, tmp_path: Path) -> None:
    from mtrl.cli import main

    out = tmp_path / "cli.h5"
    assert main(["probe", str(tiny_run), "--out", str(out), "--batch-per-task", "64"]) == 0
    with h5py.File(out, "r") as handle:
        assert handle.attrs["batch_per_task"] == 64


def test_missing_inputs_name_the_path(tiny_run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=str(empty / "checkpoints" / "probe")):
        probe_run(empty)
    no_sample = tmp_path / "no_sample"
    shutil.copytree(tiny_run / "checkpoints" / "probe", no_sample / "checkpoints" / "probe")
    with pytest.raises(FileNotFoundError, match="replay_sample.pt"):
        probe_run(no_sample)
    assert not (no_sample / "plasticity.h5").exists()


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
    res = read_plasticity_h5(probe_run(run_dir, batch_per_task=64))
    agent = _build_agent(config.to_dict(), 39 + 1, 4)
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
