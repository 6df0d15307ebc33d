"""Bad input fails at once, with one line naming the key; good input round-trips."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from mtrl.cli import main
from mtrl.config.settings import ConfigError, TrainConfig
from tests.conftest import TINY


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"task_set": "mt7"}, "task_set"),
        ({"actor_width": 0}, "actor_width"),
        ({"critic_width": -3}, "critic_width"),
        ({"total_steps": -5}, "total_steps"),
        ({"total_steps": 1234}, "total_steps"),
        ({"arch": "transformer"}, "arch"),
        ({"depth": "three"}, "depth"),
        ({"gamma": 1.5}, "gamma"),
        ({"eval_every": 700}, "eval_every"),
        ({"task_set": "mt1", "mt1_task": "fly-v3"}, "mt1_task"),
        ({"widht": 3}, "widht"),
        ({"actor_width": 2.5}, "actor_width"),
        ({"skip": "maybe"}, "skip"),
        ({"max_q_value": -1}, "max_q_value"),
        ({"max_q_value": "huge"}, "max_q_value"),
        ({"max_q_value": "nan"}, "max_q_value"),
    ],
)
def test_bad_values_name_their_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        TrainConfig.from_dict({**TINY, **overrides})


def test_defaults_are_the_paper_baseline():
    config = TrainConfig().resolved()
    assert (config.task_set, config.actor_width, config.critic_width, config.depth) == ("mt10", 400, 400, 3)
    assert config.total_steps == 20_000_000 and config.buffer_per_task * config.num_tasks == 1_000_000
    assert config.batch_per_task * config.num_tasks == 1280
    assert (config.lr, config.adam_eps, config.grad_clip, config.tau, config.gamma) == (
        3e-4,
        1e-5,
        1.0,
        0.005,
        0.99,
    )
    assert config.target_entropy == -4.0 and config.initial_alpha == 1.0
    assert config.eval_every == 200_000 and config.eval_episodes == 50


def test_resolved_arch_defaults_follow_task_set():
    small = TrainConfig(task_set="mt10").resolved()
    large = TrainConfig(task_set="mt50", total_steps=100_000_000, eval_every=1_000_000).resolved()
    assert (small.sm_layers, small.sm_modules, small.paco_k, small.moore_experts) == (2, 2, 5, 4)
    assert (large.sm_layers, large.sm_modules, large.paco_k, large.moore_experts) == (4, 4, 20, 6)


def test_yaml_and_strings_are_coerced(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "task_set: mt1\ntotal_steps: 2e3\nwarmup_steps_per_task: 500\nskip: 'true'\nlr: '1e-3'\n"
        "log_every: 500\n"
        "eval_every: 1000\ncheckpoint_every: 500\nprobe_checkpoints: 2\n"
    )
    config = TrainConfig.from_yaml(path, {"actor_width": "64"})
    assert (config.total_steps, config.skip, config.lr, config.actor_width) == (2000, True, 1e-3, 64)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_bad_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match="mapping"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="not found"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--task-set", "mt7"], "task_set"),
        (["--actor-width", "0"], "actor_width"),
        (["--total-steps", "-10"], "total_steps"),
        (["--config", "does/not/exist.yaml"], "config file not found"),
    ],
)
def test_cli_rejects_bad_input_in_one_line_before_building_anything(
    argv, needle, tmp_path, capsys, monkeypatch
):
    import mtrl.envs.vector as vector

    def explode(*_a, **_k):
        raise AssertionError("an env was built before the config was checked")

    monkeypatch.setattr(vector, "make_vector_env", explode)
    code = main(["train", "--out", str(tmp_path / "run"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("mtrl: error:") and needle in err
    assert not (tmp_path / "run").exists()


def test_cli_error_is_fast_as_a_process(tmp_path):
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "mtrl.cli", "train", "--out", str(tmp_path), "--critic-width", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "critic_width" in proc.stderr and "Traceback" not in proc.stderr
    assert time.time() - start < 30


@pytest.mark.parametrize(
    ("arch", "task_set", "max_q", "log_std_min"),
    [
        ("mtmhsac", "mt10", 0.0, -20.0),
        ("sm", "mt10", 0.0, -20.0),
        ("paco", "mt10", 5000.0, -20.0),  # the authors' PaCo runs clip Q to +-5000
        ("paco", "mt50", 5000.0, -20.0),
        ("moore", "mt10", 0.0, -10.0),  # experiments/baselines/mt10_moore.py
        ("moore", "mt50", 0.0, -20.0),  # experiments/baselines/mt50_moore.py
    ],
)
def test_per_arch_defaults_of_q_clip_and_log_std_floor(arch, task_set, max_q, log_std_min):
    config = TrainConfig(arch=arch, task_set=task_set).resolved()
    assert (config.max_q_value, config.log_std_min) == (max_q, log_std_min)
    assert config.resolved() == config  # resolving twice changes nothing (0 stays "off")
    assert TrainConfig.from_dict(config.to_dict()) == config  # a resolved config round-trips


def test_q_clip_and_log_std_floor_can_be_overridden(tmp_path):
    off = TrainConfig.from_dict({**TINY, "arch": "paco", "max_q_value": 0}).resolved()
    assert off.max_q_value == 0.0
    own = TrainConfig.from_dict({**TINY, "arch": "moore", "max_q_value": "100", "log_std_min": -5}).resolved()
    assert (own.max_q_value, own.log_std_min) == (100.0, -5.0)
    path = tmp_path / "c.yaml"
    path.write_text("arch: paco\nmax_q_value: 50\n")
    flags = {**TINY, "max_q_value": "none"}  # a flag "none" restores the arch default over the file's
    assert TrainConfig.from_yaml(path, flags).resolved().max_q_value == 5000.0
    TrainConfig(arch="moore", task_set="mt50", log_std_max=-12).validate()  # floor -20 fits below
    with pytest.raises(ConfigError, match="log_std_min: -10.0 must be below log_std_max -12"):
        TrainConfig(arch="moore", task_set="mt10", log_std_max=-12).validate()


@pytest.mark.parametrize("command", ["train", "probe", "params", "status"])
def test_help_says_none_one_way(command, capsys):
    """A setting without a value is written `none` in every help text (as the flags take it), never `None`."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "None" not in text
    if command == "train":
        assert "--target-entropy FLOAT|none" in text and "(none: -|A|)" in text
