"""Nothing silently wrong: bad input and damaged files are refused in one line naming the key or file.

Table-driven: every CLI command with bad settings, files and paths; checkpoints damaged in each way;
a full disk; a second trainer on one run directory; train.h5 of another run; a worker process that
dies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
import torch

from mtrl.cli import main
from mtrl.config.settings import ConfigError, TrainConfig
from mtrl.files import checkpoints as ckpt
from tests.conftest import TINY

HINTS = typing.get_type_hints(TrainConfig)
FLOAT_FIELDS = [name for name, hint in HINTS.items() if float in (typing.get_args(hint) or (hint,))]


def tiny_args(run_dir: Path, **overrides: object) -> list[str]:
    values = {**TINY, **overrides}
    return ["train", "--out", str(run_dir)] + [f"--{k.replace('_', '-')}={v}" for k, v in values.items()]


@pytest.fixture
def nothing_built(monkeypatch):
    """Fail the test if an env or a network is built."""
    import mtrl.agents.sac as sac
    import mtrl.envs.vector as vector
    import mtrl.run.train as train_module  # imported first, so it keeps the real make_vector_env afterwards

    def explode(*_a, **_k):
        raise AssertionError("an env or network was built before the input was checked")

    for module in (vector, train_module):
        monkeypatch.setattr(module, "make_vector_env", explode)
    monkeypatch.setattr(sac.MultiTaskSAC, "__init__", explode)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mtrl: error: ") and "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------------------ settings
@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan"), float("-inf")])
def test_every_float_setting_rejects_nan_and_infinities(name, value):
    with pytest.raises(ConfigError, match=rf"^{name}: must be a finite number"):
        TrainConfig.from_dict({**TINY, name: value})
    with pytest.raises(ConfigError, match=rf"^{name}: must be a finite number"):  # built directly too
        dataclasses.replace(TrainConfig.from_dict(TINY), **{name: float(value)}).validate()


def test_float_fields_are_all_covered():
    assert {"lr", "gamma", "tau", "grad_clip", "max_q_value", "target_entropy", "log_std_min"} <= set(
        FLOAT_FIELDS
    )


CLI_BAD_SETTINGS = [
    ({"lr": "nan"}, "lr"),
    ({"gamma": "inf"}, "gamma"),
    ({"max_q_value": "inf"}, "max_q_value"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**32}, "seed"),
    ({"depth": 0}, "depth"),
    ({"buffer_per_task": 0}, "buffer_per_task"),
    ({"batch_per_task": -1}, "batch_per_task"),
    ({"eval_episodes": 0}, "eval_episodes"),
    ({"torch_threads": -2}, "torch_threads"),
    ({"total_steps": "nan"}, "total_steps"),
    ({"total_steps": "inf"}, "total_steps"),
    ({"probe_checkpoints": 0}, "probe_checkpoints"),
    ({"device": "tpu"}, "device"),
]


@pytest.mark.parametrize(("overrides", "key"), CLI_BAD_SETTINGS)
def test_train_refuses_bad_settings_in_one_line(overrides, key, tmp_path, capsys, nothing_built):
    assert main(tiny_args(tmp_path / "run", **overrides)) == 2
    assert one_error_line(capsys).startswith(f"mtrl: error: {key}:")
    assert not (tmp_path / "run").exists()


def test_cuda_without_a_gpu_fails_at_once(tmp_path, capsys, nothing_built, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(tiny_args(tmp_path / "run", device="cuda")) == 2
    line = one_error_line(capsys)
    assert line.startswith("mtrl: error: device: cuda") and "no GPU" in line
    assert not (tmp_path / "run").exists()  # no silent CPU training, nothing written


# ------------------------------------------------------------------------------ files and paths
def _directory(tmp_path: Path) -> Path:
    (tmp_path / "adir.yaml").mkdir()
    return tmp_path / "adir.yaml"


def _binary(tmp_path: Path) -> Path:
    path = tmp_path / "binary.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    return path


def _text_file(name: str, text: str):
    """A maker of a config file `name` holding `text`, in a test's tmp_path."""

    def make(tmp_path: Path) -> Path:
        (tmp_path / name).write_text(text)
        return tmp_path / name

    return make


_not_yaml = _text_file("bad.yaml", "lr: [1, 2\n  : : :\n")
_a_list = _text_file("list.yaml", "- lr\n- 3\n")
# PyYAML would silently keep the second value: a run trained with the wrong learning rate
_a_key_twice = _text_file("twice.yaml", "lr: 0.0003\ngamma: 0.99\nlr: 0.003\n")
_an_empty_study = _text_file("empty.yaml", "")


BAD_CONFIG_FILES = [
    pytest.param(_directory, "is a directory", id="directory"),
    pytest.param(_binary, "not text", id="binary"),
    pytest.param(_not_yaml, "not valid YAML", id="not YAML"),
    pytest.param(_a_list, "mapping", id="a list"),
    pytest.param(_a_key_twice, "key 'lr' given twice (lines 1 and 3)", id="a key twice"),
    pytest.param(lambda tmp: tmp / "missing.yaml", "not found", id="missing"),
]


@pytest.mark.parametrize(("make", "needle"), BAD_CONFIG_FILES)
def test_bad_config_files_are_named_in_one_line(make, needle, tmp_path, capsys, nothing_built):
    path = make(tmp_path)
    assert main(["train", "--out", str(tmp_path / "run"), "--config", str(path)]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and needle in line


def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys, nothing_built):
    out = tmp_path / "run"
    out.write_text("not a directory")
    assert main(tiny_args(out)) == 2
    assert str(out) in one_error_line(capsys)


def test_an_unwritable_run_directory_fails_before_training(tmp_path, capsys, monkeypatch):
    import mtrl.run.train as train_module

    monkeypatch.setattr(train_module, "make_vector_env", lambda *a, **k: pytest.fail("env built"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").write_text("a file where the checkpoint folder goes")
    assert main(tiny_args(run)) == 2
    line = one_error_line(capsys)
    assert "cannot write" in line and "checkpoints" in line


@pytest.mark.parametrize(("free", "said"), [(1000, "1000 bytes free"), (int(1.5 * 2**20), "1.5 MB free")])
def test_too_little_disk_space_fails_before_training(free, said, tmp_path, capsys, monkeypatch):
    import shutil

    import mtrl.run.directory as run_directory
    import mtrl.run.train as train_module

    monkeypatch.setattr(train_module, "make_vector_env", lambda *a, **k: pytest.fail("env built"))
    monkeypatch.setattr(
        run_directory.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**9, 0, free)
    )
    assert main(tiny_args(tmp_path / "run")) == 2
    line = one_error_line(capsys)
    assert str(tmp_path / "run") in line and line.endswith(f"MB free for its checkpoints, {said}")


@pytest.mark.parametrize(
    ("size", "said"),
    [(0, "0 bytes"), (1023, "1023 bytes"), (2048, "2.0 kB"), (2 * 2**20, "2.0 MB"), (3 * 2**29, "1.50 GB")],
)
def test_sizes_are_said_in_units_people_read(size, said):
    assert ckpt.human_bytes(size) == said  # a 2 MB free disk is not "0.00 GB free"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["params", "--depths", "0"], "--depths"),
        (["params", "--depths", "99"], "--depths"),
        (["params", "--depths", "three"], "--depths"),
        (["params", "--task-sets", "mt7"], "--task-sets"),
        (["probe", "RUN", "--taus", "0.1"], "unrecognized arguments"),
        (["probe", "MISSING"], "not a run directory"),
        (["probe", "FILE"], "it is a file"),
        (["probe", "RUN", "--out", "RUN"], "--out must be a file path"),
        (["train"], "--out"),
        (["fly"], "invalid choice"),
    ],
)
def test_other_commands_refuse_bad_options_in_one_line(argv, needle, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "file").write_text("x")
    names = {"RUN": tmp_path / "run", "MISSING": tmp_path / "missing", "FILE": tmp_path / "file"}
    argv = [str(names.get(a, a)) for a in argv]
    assert run_main(argv) == 2
    assert needle in one_error_line(capsys)


def run_main(argv: list[str]) -> int | str | None:
    """main()'s return value, or the exit code of argparse's usage errors."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


# ------------------------------------------------------------------------------ damaged checkpoints
def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage" * 100)


def _bit_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the tensor data: torch would load it without complaint
    path.write_bytes(bytes(data))


DAMAGE = {"empty": _empty, "truncated": _truncated, "garbage": _garbage, "bit-flip": _bit_flip}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_checkpoints_are_detected_and_named(damage, tmp_path):
    path = tmp_path / "checkpoints" / "resume.pt"
    ckpt.save_atomic({"step": 3, "weights": torch.arange(1000, dtype=torch.float32)}, path)
    assert torch.equal(ckpt.load(path)["weights"], torch.arange(1000, dtype=torch.float32))
    DAMAGE[damage](path)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.load(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_a_bit_flip_would_load_silently_without_the_checksum(tmp_path):
    """Why loadability is not enough: the same flip in a plain torch file gives wrong numbers."""
    path = tmp_path / "plain.pt"
    torch.save({"weights": torch.arange(1000, dtype=torch.float32)}, path)
    _bit_flip(path)
    assert not torch.equal(torch.load(path)["weights"], torch.arange(1000, dtype=torch.float32))


def test_a_full_disk_names_the_file_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "resume.pt"
    ckpt.save_atomic({"step": 1, "x": torch.zeros(10)}, path, keep_previous=True)

    def full_disk(_obj, handle):
        handle.write(b"partial" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.save_atomic({"step": 2, "x": torch.zeros(2**20)}, path, keep_previous=True)
    message = str(info.value)
    assert message.startswith(f"{path}: no space left on the device: needs about 4.0 MB, ")
    assert "intact" in message
    assert sorted(p.name for p in path.parent.iterdir()) == ["resume.pt"]  # no temporary file left
    monkeypatch.undo()
    assert ckpt.load(path)["step"] == 1


def test_the_resume_checkpoint_keeps_its_predecessor(tmp_path):
    path = tmp_path / "resume.pt"
    for step in (1, 2, 3):
        ckpt.save_atomic({"step": step}, path, keep_previous=True)
    assert ckpt.load(path)["step"] == 3 and ckpt.load(ckpt.previous_path(path))["step"] == 2


@pytest.mark.slow
def test_a_damaged_resume_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    """resume.pt (step 1000) is bit-flipped: the run says so, resumes from resume.prev.pt (step 500)
    and still ends with exactly the results of an uninterrupted run."""
    import os
    import signal

    from mtrl.run.train import Trainer, TrainingInterrupted, train
    from tests.test_train import h5_contents

    config = TrainConfig.from_dict({**TINY, "total_steps": 1500, "probe_checkpoints": 1})
    reference = h5_contents(train(config, tmp_path / "reference", quiet=True))

    real = Trainer.at_episode_end

    def signalled(self):
        if self.state.step == 1000:
            os.kill(os.getpid(), signal.SIGUSR1)
        real(self)

    run = tmp_path / "run"
    Trainer.at_episode_end = signalled
    try:
        with pytest.raises(TrainingInterrupted):
            train(config, run, quiet=True)
    finally:
        Trainer.at_episode_end = real
    resume = ckpt.resume_path(run)
    assert ckpt.load(ckpt.previous_path(resume))["step"] == 500
    _bit_flip(resume)
    with caplog.at_level(logging.INFO, logger="mtrl"):
        got = h5_contents(train(config, run, quiet=True))
    assert f"{resume}: damaged (checksum mismatch)" in caplog.text
    assert "falling back to the previous resume checkpoint" in caplog.text and "at step 500" in caplog.text
    assert "starting over" not in caplog.text
    assert reference.keys() == got.keys()
    for key in reference:
        assert (
            (reference[key] == got[key]).all()
            if hasattr(reference[key], "all")
            else reference[key] == got[key]
        )
    assert not resume.exists() and not ckpt.previous_path(resume).exists()


# ------------------------------------------------------------------------------ probe runs
@pytest.fixture
def fake_run(tmp_path) -> Path:
    """A run directory with every probe checkpoint of TINY (untrained networks, a random probe batch)."""
    from mtrl.agents.sac import MultiTaskSAC
    from mtrl.run.probe_checkpoints import probe_episodes

    config = TrainConfig.from_dict(TINY).resolved()
    agent = MultiTaskSAC(config, 40, 4, torch.device("cpu"))
    rows = 8
    batch = {
        "obs": torch.cat([torch.randn(rows, 39), torch.ones(rows, 1)], 1),
        "action": torch.rand(rows, 4) * 2 - 1,
        "reward": torch.randn(rows),
        "next_obs": torch.cat([torch.randn(rows, 39), torch.ones(rows, 1)], 1),
        "done": torch.zeros(rows),
        "task": torch.zeros(rows, dtype=torch.long),
    }
    run = tmp_path / "run"
    for episode in probe_episodes(config):
        ckpt.save_atomic(
            {
                "step": episode * 500,
                "config": config.to_dict(),
                "actor": agent.actor.state_dict(),
                "critic": agent.critic.state_dict(),
                "log_alpha": agent.log_alpha.detach(),
                "probe_batch": batch,
            },
            ckpt.probe_path(run, episode * 500),
        )
    return run


def test_the_fake_run_probes(fake_run, capsys):
    assert main(["probe", str(fake_run)]) == 0  # so the failures below are the damage's doing
    assert (fake_run / "plasticity.h5").exists()


@pytest.mark.parametrize("damage", [*DAMAGE, "missing"])
def test_a_probe_run_names_the_step_of_a_bad_probe_checkpoint(damage, fake_run, capsys):
    path = ckpt.probe_path(fake_run, 1000)
    if damage == "missing":
        path.unlink()
    else:
        DAMAGE[damage](path)
    code = main(["probe", str(fake_run)])
    line = one_error_line(capsys)
    assert code in (1, 2) and str(path) in line
    assert "step 1000" in line or "step(s) 1000" in line
    assert not (fake_run / "plasticity.h5").exists()


def test_a_probe_checkpoint_without_a_batch_is_one_line(fake_run, capsys):
    path = ckpt.probe_path(fake_run, 1000)
    state = ckpt.load(path)
    state["probe_batch"] = None
    ckpt.save_atomic(state, path)
    assert main(["probe", str(fake_run)]) == 2
    assert str(path) in one_error_line(capsys)


# ------------------------------------------------------------------------------ run directories
def test_a_second_trainer_on_one_run_directory_fails_at_once(tmp_path, capsys, nothing_built):
    from mtrl.run.directory import run_lock

    run = tmp_path / "run"
    with run_lock(run):  # the first trainer (an orphaned SLURM job, say)
        assert main(tiny_args(run)) == 2
        line = one_error_line(capsys)
        assert str(run) in line and "another trainer" in line
    with run_lock(run):  # released when the first one ends
        pass


def _write_result(run: Path, config: TrainConfig) -> Path:
    from mtrl.files.result_files import TrainLog, write_train_h5

    log = TrainLog(eval_step=[0], eval_success=[[0.0]], eval_return=[[0.0]])
    attrs = {
        "config": config.resolved().to_json(),
        "tasks": '["reach-v3"]',
        "actor_params": 1,
        "critic_params": 1,
    }
    write_train_h5(run / "train.h5", log, attrs, 1)
    return run / "train.h5"


def test_train_h5_of_another_config_is_not_returned_as_complete(tmp_path, capsys, nothing_built):
    run = tmp_path / "run"
    path = _write_result(run, TrainConfig.from_dict({**TINY, "seed": 7}))
    assert main(tiny_args(run)) == 2
    line = one_error_line(capsys)
    assert str(path) in line and "different config" in line and "seed" in line


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_an_unreadable_train_h5_is_not_complete(damage, tmp_path, monkeypatch):
    import mtrl.run.train as train_module
    from mtrl.files.completeness import train_h5_problem

    config = TrainConfig.from_dict(TINY)
    run = tmp_path / "run"
    path = _write_result(run, config)
    assert train_h5_problem(path, config.resolved().to_dict()) is None
    DAMAGE[damage](path)
    assert train_h5_problem(path, config.resolved().to_dict()).startswith("unreadable")

    class Retrain:
        def __init__(self, *args, **kwargs):
            pass

        def run(self):
            return "trained again"

    monkeypatch.setattr(train_module, "Trainer", Retrain)
    assert train_module.train(config, run, quiet=True) == "trained again"


def test_a_failed_result_write_names_the_file_and_leaves_no_temporary(tmp_path):
    from mtrl.files.result_files import write_atomic_h5

    def full_disk(handle):
        handle["x"] = list(range(100))
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ckpt.CheckpointError, match=r"train\.h5: no space left on the device: .* free$"):
        write_atomic_h5(tmp_path / "train.h5", full_disk)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "bit-flip"])
def test_with_no_readable_resume_checkpoint_the_run_starts_over_and_says_so(damage, tmp_path, caplog):
    from mtrl.run.train import Trainer

    config = TrainConfig.from_dict(TINY)
    run = tmp_path / "run"
    resume = ckpt.resume_path(run)
    ckpt.save_atomic({"config": config.resolved().to_dict(), "x": torch.zeros(5000)}, resume)
    ckpt.save_atomic({"stale": True}, ckpt.probe_path(run, 1000))
    DAMAGE[damage](resume)
    with caplog.at_level(logging.WARNING, logger="mtrl"):
        trainer = Trainer(config, run, quiet=True, provenance="", restart_stale=False)
    trainer.state.envs.close()
    assert trainer.state.step == 0 and f"{resume}: " in caplog.text and "starting over" in caplog.text
    assert not resume.exists() and ckpt.probe_checkpoints(run) == []


# ------------------------------------------------------------------------- studies and `mtrl status`
ROOT = Path(__file__).resolve().parents[1]


def smoke_study(tmp_path: Path, edit=None, name: str = "study.yaml") -> Path:
    """config/smoke.yaml with one figure (fig5's first series: 2 runs), its results in tmp_path,
    edited by `edit`, written to tmp_path/name."""
    import yaml

    study = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    study["results_dir"] = str(tmp_path / "results")
    first = {k: v for k, v in study["figures"]["fig5"][0].items() if k != "seeds"}  # the study's 2 seeds
    study["figures"] = {"fig5": [first]}
    if edit is not None:
        edit(study)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(study))
    return path


def _series(study: dict, **values) -> None:
    study["figures"] = {
        "fig4": [{"panel": "MT10", "series": "width {actor_width}", "task_set": "mt10", **values}]
    }


@pytest.mark.parametrize(
    ("make", "needle"), [*BAD_CONFIG_FILES, pytest.param(_an_empty_study, "no `figures` section", id="empty")]
)
def test_status_names_a_bad_study_file_in_one_line(make, needle, tmp_path, capsys):
    path = make(tmp_path)
    assert main(["status", "--configfile", str(path)]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and needle in line


# what people do to a study's YAML: each is one line naming where, never a traceback or a wrong grid
BAD_STUDIES = {
    "no figures": (lambda s: s.update(figures={}), "figures: no figures to make"),
    "a figure without series": (
        lambda s: s["figures"].update(fig4=[]),
        "figures.fig4: [] should be non-empty",
    ),
    "an empty width list": (
        lambda s: _series(s, width=[]),
        "figures.fig4[0] (width {actor_width}).width: an empty list",
    ),
    "a typo in the series template": (
        lambda s: _series(s, width=16, series="width {actr_width}"),
        "(width {actr_width}).series: {actr_width} in 'width {actr_width}' is not a run setting",
    ),
    "a typo in the label template": (
        lambda s: _series(s, width=16, label="{archh}"),
        "figures.fig4[0] (width {actor_width}).label: {archh} in '{archh}' is not a run setting",
    ),
    "an unknown task set": (
        lambda s: _series(s, width=16, task_set="mt7"),
        "figures.fig4[0] (width {actor_width}).task_set: unknown task set 'mt7'",
    ),
    "an unknown key in run_defaults": (
        lambda s: s["run_defaults"].update(batchsize=32),
        "run_defaults: unknown config key(s): batchsize",
    ),
    "an unknown key in arch_defaults": (
        lambda s: s.setdefault("arch_defaults", {}).setdefault("sm", {}).update(modules=3),
        "arch_defaults.sm: unknown config key(s): modules",
    ),
    "an unknown key in a series": (
        lambda s: _series(s, width=16, widht=32),
        "figures.fig4[0] (width {actor_width}): unknown config key(s): widht",
    ),
    "a step count beyond any run": (
        lambda s: s["task_set_defaults"]["mt10"].update(total_steps="1e30"),
        "task_set_defaults.mt10.total_steps: '1e30' is too large (at most 2**53",
    ),
}


@pytest.mark.parametrize("case", BAD_STUDIES)
def test_a_bad_study_is_one_line_naming_where(case, tmp_path, capsys):
    edit, needle = BAD_STUDIES[case]
    assert main(["status", "--configfile", str(smoke_study(tmp_path, edit))]) == 2
    assert needle in one_error_line(capsys)


def _grid_run(study_path: Path) -> tuple[str, TrainConfig, Path]:
    """The first run of a study: its id, resolved config and run directory."""
    from mtrl.study.grid import build_grid
    from mtrl.study.status import load_study

    study = load_study(study_path)
    run_id, config = next(iter(build_grid(study).runs.items()))
    return run_id, config, Path(study["results_dir"]) / "runs" / run_id


def test_status_shows_runs_in_progress_with_the_step_they_reached(tmp_path, capsys):
    """A checksummed resume checkpoint of gigabytes is read without its tensors; one of other
    settings says the run will start over."""
    from mtrl.files.provenance import code_hash

    path = smoke_study(tmp_path)
    run_id, config, run_dir = _grid_run(path)
    state = {
        "step": 300,
        "config": config.to_dict(),
        "provenance": code_hash("train"),
        "buffer": torch.zeros(10**6),
    }
    ckpt.save_atomic(state, ckpt.resume_path(run_dir), keep_previous=True)
    assert main(["status", "--configfile", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"in progress  {run_id}  step 3,000 of 5,000 (resume checkpoint)\n" in out
    assert out.endswith("0 complete, 1 in progress, 0 stale, 1 missing of 2 runs\n")
    ckpt.save_atomic({**state, "config": {**config.to_dict(), "lr": 1.0}}, ckpt.resume_path(run_dir))
    assert main(["status", "--configfile", str(path)]) == 0
    assert (
        "step 3,000 of 5,000 (resume checkpoint of other settings lr 1.0 -> 0.0003: the run will start over)"
        in (capsys.readouterr().out)
    )
    ckpt.save_atomic({**state, "provenance": "0123abcd"}, ckpt.resume_path(run_dir))
    assert main(["status", "--configfile", str(path)]) == 0
    code = code_hash("train")
    assert (
        f"step 3,000 of 5,000 (resume checkpoint of other training code 0123abcd != current {code}: the run "
        "will start over)" in capsys.readouterr().out
    )
    _truncated(ckpt.resume_path(run_dir))
    assert main(["status", "--configfile", str(path)]) == 0
    assert f"{ckpt.resume_path(run_dir)}: not a readable checkpoint" in capsys.readouterr().out


def test_status_of_a_results_folder_uses_the_study_that_wrote_it(tmp_path, capsys, monkeypatch):
    """`mtrl status results/smoke` after the smoke pipeline: the smoke study's runs, not the paper's."""
    from mtrl.study.status import record_study

    monkeypatch.chdir(tmp_path)
    smoke_study(tmp_path, lambda s: s.update(results_dir="results/smoke"), "config/smoke.yaml")
    smoke_study(tmp_path, lambda s: s.update(results_dir="results", seeds=[0, 1, 2]), "config/config.yaml")
    Path("results/smoke").mkdir(parents=True)
    assert main(["status", "results/smoke"]) == 2  # nothing recorded: not silently the paper's grid
    assert one_error_line(capsys).endswith(
        "results/smoke: no study recorded here, and config/config.yaml writes to results; "
        "pass the study's config file with --configfile"
    )
    assert main(["status", "results/smoke", "--configfile", "config/smoke.yaml"]) == 0
    assert capsys.readouterr().out.endswith(" of 2 runs\n")
    record_study(Path("results/smoke"), [Path("config/smoke.yaml").absolute()])  # as the workflow does
    assert main(["status", "results/smoke"]) == 0
    assert capsys.readouterr().out.endswith(" of 2 runs\n")
    assert main(["status", "results/smoke", "--configfile", "config/config.yaml"]) == 2
    assert one_error_line(capsys).endswith(
        "results/smoke: written by the study config/smoke.yaml, not config/config.yaml; "
        "`mtrl status results/smoke` checks it against its own study"
    )
    assert main(["status", "--configfile", "config/smoke.yaml"]) == 0


@pytest.mark.parametrize(
    ("folder", "needle"), [("missing", "no such results folder"), ("file", "it is a file")]
)
def test_status_of_a_folder_that_is_not_there_is_an_error(folder, needle, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["status", str(tmp_path / folder), "--configfile", str(smoke_study(tmp_path))]) == 2
    line = one_error_line(capsys)
    assert str(tmp_path / folder) in line and needle in line


# ------------------------------------------------------------------------- result files that are not whole
def _complete_run(study_path: Path) -> tuple[str, Path]:
    """A finished run of the study's first grid point: whole train.h5 and plasticity.h5 recording the
    settings and code the workflow would use now."""
    import json

    from mtrl.files.provenance import code_hash, identity
    from mtrl.files.result_files import provenance_attrs
    from tests.fixtures_results import write_fake_plasticity, write_fake_train

    run_id, config, run_dir = _grid_run(study_path)
    ident = json.dumps(identity(config.to_dict()), sort_keys=True)
    train_h5 = write_fake_train(run_dir, [[0.1] * 10, [0.5] * 10], steps=[0, 5000])
    provenance_attrs(train_h5, {"provenance_identity": ident, "provenance_code": code_hash("train")})
    plasticity = write_fake_plasticity(run_dir, [0, 5000])
    provenance_attrs(plasticity, {"provenance_identity": ident, "provenance_code": code_hash("probe")})
    return run_id, run_dir


def _datasets_gone(path: Path) -> None:
    """Every dataset deleted, the attributes (provenance included) left: it looked complete before."""
    import h5py

    with h5py.File(path, "a") as handle:
        for key in list(handle):
            del handle[key]


def _shape_mismatch(path: Path) -> None:
    import h5py
    import numpy as np

    with h5py.File(path, "a") as handle:
        key = "eval/success" if "eval" in handle else "actor/srank"
        shape = handle[key].shape
        del handle[key]
        handle[key] = np.zeros((shape[0], shape[1] - 1))


RESULT_DAMAGE = {
    "datasets gone": (_datasets_gone, "incomplete (no "),
    "shapes disagree": (_shape_mismatch, "incomplete ("),
    "zero bytes": (_empty, "unreadable ("),
    "truncated": (_truncated, "unreadable ("),
}


@pytest.mark.parametrize("name", ["train.h5", "plasticity.h5"])
@pytest.mark.parametrize("damage", RESULT_DAMAGE)
def test_a_result_file_that_is_not_whole_is_stale_and_never_aggregated(name, damage, tmp_path, capsys):
    from mtrl.files.completeness import train_h5_problem

    study = smoke_study(tmp_path)
    run_id, run_dir = _complete_run(study)
    assert main(["status", "--configfile", str(study)]) == 0
    assert f"complete     {run_id}\n" in capsys.readouterr().out
    make, said = RESULT_DAMAGE[damage]
    make(run_dir / name)
    assert main(["status", "--configfile", str(study)]) == 0
    assert f"stale        {run_id}  {name} {said}" in capsys.readouterr().out
    if name == "train.h5":  # the trainer trains it again (the workflow reruns it: common.smk)
        assert train_h5_problem(run_dir / name, _grid_run(study)[1].to_dict()).startswith(said)
    code, err = run_aggregate(tmp_path, run_dir, allow_stale=True)
    last = err.splitlines()[-1]  # after the job's "[mtrl.job] local job on ..." line
    assert code == 1 and err.count("mtrl: error") == 1 and "Traceback" not in err, err
    assert last.startswith(f"mtrl: error: {run_dir / name}: {said}") and "cannot aggregate fig5" in last


def run_aggregate(tmp_path: Path, run_dir: Path, allow_stale: bool) -> tuple[int, str]:
    """The aggregate rule's script on one run of fig5, as Snakemake runs it: (exit code, stderr)."""
    import json
    import subprocess
    import sys

    from mtrl.files.provenance import code_hash, identity

    config = _grid_run(tmp_path / "study.yaml")[1]
    spec = {
        "log": [str(tmp_path / "aggregate.log")],
        "input": [str(run_dir / "train.h5"), str(run_dir / "plasticity.h5")],
        "output": {"table": str(tmp_path / "fig5.csv"), "provenance": str(tmp_path / "fig5.json")},
        "wildcards": {"figure": "fig5"},
        "params": {
            "runs": [{"panel": "MT10", "series": "s", "run_dir": str(run_dir)}],
            "reps": 10,
            "statistic": "runs",
            "extensions": [],
            "x_placement": "published",
            "code": "table",
            "expected": {
                "runs": {str(run_dir): json.dumps(identity(config.to_dict()), sort_keys=True)},
                "train_code": code_hash("train"),
                "probe_code": code_hash("probe"),
                "allow_stale": allow_stale,
            },
        },
    }
    scripts = ROOT / "workflow" / "scripts"
    job = "\n".join(
        [
            "import json, runpy, sys",
            "from types import SimpleNamespace as NS",
            f"sys.path.insert(0, {str(scripts)!r})",
            f"spec = json.loads({json.dumps(spec)!r})",
            "snakemake = NS(**{k: NS(**v) if isinstance(v, dict) else v for k, v in spec.items()})",
            f"runpy.run_path({str(scripts / 'aggregate.py')!r}, init_globals={{'snakemake': snakemake}})",
        ]
    )
    proc = subprocess.run([sys.executable, "-c", job], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr


def test_the_aggregate_script_reads_a_whole_run(tmp_path):
    """The same script on the undamaged run writes its table: the failures above are the damage's."""
    _, run_dir = _complete_run(smoke_study(tmp_path))
    code, err = run_aggregate(tmp_path, run_dir, allow_stale=False)
    assert code == 0, err
    import pandas as pd

    table = pd.read_csv(tmp_path / "fig5.csv")
    assert table["step"].tolist() == [0, 5000] and table["n_runs"].tolist() == [1, 1]


# ------------------------------------------------------------------------- what a cluster does to files
class _FullAfter:
    """A file whose writes fail with `error` once `limit` bytes are in (a disk filling up mid-write)."""

    def __init__(self, handle, limit: int, error: int) -> None:
        self.handle, self.limit, self.error, self.size = handle, limit, error, 0

    def write(self, data) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise OSError(self.error, os.strerror(self.error))
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def _filling_up(error: int):
    """An `open` whose files take 5000 bytes, then fail with `error` (torch wraps it in a RuntimeError)."""
    return lambda path, mode: _FullAfter(open(path, mode), 5000, error)  # noqa: SIM115 - closed by _FullAfter


def _failing(monkeypatch, target, name: str, error: int, only=None) -> None:
    """`target.name` raises OSError(error) (for calls whose first argument ends with `only`, if given)."""
    real = getattr(target, name)

    def fail(*args, **kwargs):
        if only is None or str(args[0]).endswith(only):
            raise OSError(error, os.strerror(error))
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, fail)


# stage of a checkpoint write -> how to make it fail; (errno, what the line says)
WRITE_STAGES = {
    "mid-write (torch's zip writer)": lambda mp, e: mp.setattr(ckpt, "open", _filling_up(e), raising=False),
    "create the temporary file": lambda mp, e: _failing(
        mp, builtins_module(), "open", e, only=".resume.pt.tmp"
    ),
    "fsync (a network file system)": lambda mp, e: _failing(mp, os, "fsync", e),
    "rename into place": lambda mp, e: _failing(mp, os, "replace", e),
    "drop the one before last": lambda mp, e: _failing(mp, Path, "unlink", e, only="resume.prev.pt"),
}
ERRNOS = {
    "full disk": (errno.ENOSPC, "no space left on the device: needs about 4.0 MB, "),
    "quota": (errno.EDQUOT, "disk quota exceeded: needs about 4.0 MB, "),
    "read-only mount": (errno.EROFS, "cannot write (read-only file system)"),
    "immutable file": (errno.EPERM, "cannot write (operation not permitted (an immutable"),
    "NFS": (errno.ESTALE, "cannot write (stale file handle"),
    "failing disk": (errno.EIO, "cannot write (input/output error"),
}


def builtins_module():
    import builtins

    return builtins


@pytest.mark.parametrize("stage", WRITE_STAGES)
@pytest.mark.parametrize("error", ERRNOS)
def test_a_refused_checkpoint_write_is_one_line_and_keeps_the_last_good_one(
    stage, error, tmp_path, monkeypatch
):
    path = tmp_path / "checkpoints" / "resume.pt"
    ckpt.save_atomic({"step": 1, "x": torch.zeros(10)}, path, keep_previous=True)
    ckpt.save_atomic({"step": 2, "x": torch.zeros(10)}, path, keep_previous=True)
    number, said = ERRNOS[error]
    WRITE_STAGES[stage](monkeypatch, number)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.save_atomic({"step": 3, "x": torch.zeros(2**20)}, path, keep_previous=True)
    monkeypatch.undo()
    message = str(info.value)
    if stage == "drop the one before last":  # the file that refused is named (issue 26)
        previous = ckpt.previous_path(path)
        what = ckpt.WRITE_PROBLEMS[number]
        assert message == f"{previous}: cannot delete it to make room for the next resume checkpoint ({what})"
    else:
        assert message.startswith(f"{path}: {said}") and "\n" not in message, message
        assert message.endswith("the previous file is intact")
    assert ckpt.load(path)["step"] == 2  # the last good checkpoint, where it is looked for
    assert not (path.parent / ".resume.pt.tmp").exists()


# stage of a result-file write (train.h5, plasticity.h5) -> how to make it fail
H5_STAGES = {
    "create the folder": lambda mp, e: _failing(mp, Path, "mkdir", e),
    "create the file": lambda mp, e: _failing(mp, h5py_file_module(), "File", e),
    "write a dataset": None,  # fill() raises, as h5py does on a full disk
    "rename into place": lambda mp, e: _failing(mp, os, "replace", e),
}


def h5py_file_module():
    import mtrl.files.result_files

    return mtrl.files.result_files.h5py


@pytest.mark.parametrize("stage", H5_STAGES)
@pytest.mark.parametrize("error", ERRNOS)
def test_a_refused_result_write_is_one_line_and_leaves_no_temporary(stage, error, tmp_path, monkeypatch):
    from mtrl.files.result_files import write_atomic_h5

    number, said = ERRNOS[error]
    said = said.replace("needs about 4.0 MB, ", "")

    def fill(handle):
        handle["x"] = list(range(100))
        if stage == "write a dataset":
            raise OSError(number, f"Can't write data (file write failed: errno = {number})")

    if H5_STAGES[stage] is not None:
        H5_STAGES[stage](monkeypatch, number)
    with pytest.raises(ckpt.CheckpointError) as info:
        write_atomic_h5(tmp_path / "run" / "train.h5", fill)
    monkeypatch.undo()
    assert str(info.value).startswith(f"{tmp_path / 'run' / 'train.h5'}: {said}"), str(info.value)
    assert not list(tmp_path.rglob("*.h5*"))


@pytest.mark.parametrize("out", ["default", "elsewhere"])
def test_a_probe_on_a_read_only_file_system_is_one_line(out, fake_run, capsys, monkeypatch):
    """`mtrl probe RUN` of a run on a read-only mount, or `--out` onto one."""
    target = fake_run / "plasticity.h5" if out == "default" else fake_run.parent / "ro" / "new" / "p.h5"
    argv = ["probe", str(fake_run)] + ([] if out == "default" else ["--out", str(target)])
    _failing(monkeypatch, Path, "mkdir", errno.EROFS)
    _failing(monkeypatch, h5py_file_module(), "File", errno.EROFS)
    assert main(argv) == 1
    assert one_error_line(capsys) == f"mtrl: error: {target}: cannot write (read-only file system)"


# ------------------------------------------------------------------------- what a diverging optimiser does
def test_a_diverging_run_stops_at_the_first_nan_in_one_line(tmp_path, capsys):
    """lr 1e10: before, NaN actions reached MuJoCo and the run died 80 lines deep in its warnings."""
    run = tmp_path / "run"
    assert main([*tiny_args(run, lr=1e10), "--quiet"]) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"mtrl: error: {run}: training diverged at step 500: ") and "not finite" in line
    assert "actor parameters" in line and "settings outside their usual range: lr=1e+10 (usual" in line
    assert not (run / "train.h5").exists()


def test_a_diverged_run_keeps_its_last_good_resume_checkpoint(tmp_path, monkeypatch):
    """A critic parameter turns NaN after the step-500 resume checkpoint: the run stops within a step
    or two, the checkpoint stays the step-500 one, all finite, and no train.h5 is written."""
    from mtrl.run.divergence import TrainingDiverged
    from mtrl.run.train import Trainer, train

    real = Trainer._update

    def poisoned(self):
        real(self)
        if self.state.step == 700:
            with torch.no_grad():
                next(self.state.agent.critic.parameters()).view(-1)[0] = float("nan")

    monkeypatch.setattr(Trainer, "_update", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as info:
        train(TrainConfig.from_dict(TINY), run, quiet=True)
    message = str(info.value)
    assert message.startswith(f"{run}: training diverged at step 70") and "critic parameters" in message
    assert "the last resume checkpoint is kept" in message
    state = ckpt.load(ckpt.resume_path(run))
    assert state["step"] == 500 and all(v.isfinite().all() for v in state["agent"]["model"].values())
    assert not (run / "train.h5").exists()


def _watched(q_mean: float, reward_version: str = "v2", metric: str | None = None):
    """What DivergenceWatch checks, and the watch: the agent, the open log window (metrics summed since
    step 1,000, one update) and a watch of run `runs/x`."""
    from types import SimpleNamespace

    from mtrl.agents.sac import METRICS
    from mtrl.run.divergence import DivergenceWatch
    from mtrl.run.window import MetricWindow

    window = MetricWindow(torch.device("cpu"))
    window.sums[METRICS.index("q_mean")] = q_mean
    if metric is not None:
        window.sums[METRICS.index(metric)] = float("nan")
    window.count, window.opened_at = 1, 1000
    agent = SimpleNamespace(
        actor=torch.nn.Linear(2, 2), critic=torch.nn.Linear(2, 1), log_alpha=torch.zeros(1)
    )
    config = TrainConfig.from_dict({**TINY, "reward_version": reward_version})
    return DivergenceWatch(config, Path("runs/x")), agent, window


@pytest.mark.parametrize(("reward_version", "limit"), [("v2", 2_000.0), ("v1", 800_000.0)])
def test_a_mean_q_beyond_what_rewards_allow_is_warned_of_once(reward_version, limit, caplog):
    """Meta-World's per-step reward is at most 10 (v2) or under 4,000 (v1); gamma 0.99."""
    watch, agent, window = _watched(0.99 * limit, reward_version)
    assert watch.q_limit == pytest.approx(limit)
    with caplog.at_level(logging.WARNING, logger="mtrl"):
        watch.check_state(agent, window, 1500)  # within the bound: silent
        assert caplog.text == ""
        for q_mean in (6.8e13, 7e13):
            _, agent, window = _watched(q_mean, reward_version)
            watch.check_state(agent, window, 1500)
    assert caplog.text.count("mean Q") == 1 and "mean Q 6.8e+13 at step 1500 exceeds" in caplog.text
    r_max = 10 if reward_version == "v2" else 4000
    assert f"r_max = {r_max} per step for Meta-World's {reward_version} rewards" in caplog.text


@pytest.mark.parametrize("metric", ["critic_loss", "actor_loss", "alpha_loss", "q_mean", "entropy"])
def test_a_non_finite_loss_is_named_with_its_step(metric):
    from mtrl.run.divergence import TrainingDiverged

    watch, agent, window = _watched(0.0, metric=metric)
    with pytest.raises(TrainingDiverged) as info:
        watch.check_state(agent, window, 1500)
    assert str(info.value).startswith(
        f"runs/x: training diverged at step 1,500: {metric} (since step 1,000) not finite; stopped before "
        "writing them (none written yet; try a lower lr than 0.0003)"
    )


# ------------------------------------------------------------------------- resuming, help
def test_resuming_a_run_directory_of_another_config_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    other = TrainConfig.from_dict({**TINY, "seed": 7}).resolved()
    ckpt.save_atomic({"config": other.to_dict(), "step": 500}, ckpt.resume_path(run))
    assert main(tiny_args(run)) == 2
    line = one_error_line(capsys)
    assert line == (
        f"mtrl: error: {ckpt.resume_path(run)}: written by a different config (seed differ); delete {run} "
        "to start over, or train into another run directory"
    )
    assert ckpt.load(ckpt.resume_path(run))["step"] == 500  # nothing of it lost


def test_help_says_which_settings_may_be_none(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "?" not in text.replace("(e.g.", "")  # INT? FLOAT? read as typos
    for flag, metavar in [("--sm-layers", "INT|none"), ("--max-q-value", "FLOAT|none"), ("--depth", "INT")]:
        assert f"{flag} {metavar} " in text or f"{flag} {metavar}\n" in text
    assert "TYPE|none: a value, or none for the default the help names" in " ".join(text.split())


def test_a_run_directory_on_a_file_system_without_locks_is_one_line(
    tmp_path, capsys, monkeypatch, nothing_built
):
    import fcntl

    def no_locks(*_args):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert main(tiny_args(tmp_path / "run")) == 2
    assert one_error_line(capsys).startswith(
        f"mtrl: error: {tmp_path / 'run'}: cannot lock the run directory ("
    )


def test_a_disk_filling_up_during_training_is_one_line_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    """The second resume checkpoint meets a full disk (before: 43 lines, torch's RuntimeError around
    the OSError): one line, the first one kept; once there is room, the run resumes from it."""
    real_open, writes = open, []

    def filling_disk(path, mode):
        if Path(path).name == ".resume.pt.tmp":
            writes.append(path)
            if len(writes) == 2:
                return _FullAfter(real_open(path, mode), 5000, errno.ENOSPC)
        return real_open(path, mode)  # noqa: SIM115 - the caller closes it

    monkeypatch.setattr(ckpt, "open", filling_disk, raising=False)
    run = tmp_path / "run"
    assert main([*tiny_args(run), "--quiet"]) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"mtrl: error: {ckpt.resume_path(run)}: no space left on the device: needs about ")
    assert line.endswith("; the previous file is intact") and ckpt.load(ckpt.resume_path(run))["step"] == 500
    monkeypatch.undo()
    assert main([*tiny_args(run), "--quiet"]) == 0 and (run / "train.h5").exists()


# ------------------------------------------------------------------------------ worker processes
def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _descendants(pid: int) -> list[int]:
    children = _children(pid)
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def _spawned(pid: int) -> list[int]:
    """Children started by multiprocessing's spawn (env workers, the evaluation), not its resource tracker."""
    found = []
    for child in _children(pid):
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    ("eval_mode", "victim", "message"),
    [
        ("blocking", "env worker", "mtrl: error: env worker for reach-v3 died (exit code -9)"),
        ("background", "evaluation", "mtrl: error: evaluation process died (exit code -9)"),
    ],
)
def test_a_dying_env_worker_or_evaluation_is_one_line_and_leaves_no_process(
    tmp_path, eval_mode, victim, message
):
    """kill -9 of a worker process (the OOM killer, a crash in MuJoCo): the trainer stops with one line
    naming it, exit 1, and every process of the run is gone (training's and evaluation's env workers)."""
    run = tmp_path / "run"
    settings = {"vector_strategy": "shm", "eval_mode": eval_mode, "total_steps": 3000, "eval_every": 1000}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtrl.cli", *tiny_args(run, **settings), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while not ckpt.resume_path(run).exists():  # step 500: every process is up, step 1000 evaluates next
        assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.05)
    family = _descendants(proc.pid)
    # the evaluation process has env workers of its own; the training env worker has none
    targets = [pid for pid in _spawned(proc.pid) if bool(_children(pid)) == (victim == "evaluation")]
    assert len(targets) == 1, (victim, family)
    os.kill(targets[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err
    assert err.splitlines() == [message]
    deadline = time.time() + 10  # orphaned env workers notice within a second
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in family):
        time.sleep(0.1)
    assert not [pid for pid in family if Path(f"/proc/{pid}").exists()]
    assert not (run / "train.h5").exists()


# ============================================================================================
# Issue 26, the trainer half: unreadable is not damaged, sizes that cannot fit, deletes and renames,
# the task cache, signals at every phase of a run, misleading messages. (Keep these together.)
# ============================================================================================
EIO = "input/output error (a failing disk or a network file system)"
IMMUTABLE = "operation not permitted (an immutable or append-only file?)"


@contextlib.contextmanager
def immutable(*paths: Path):
    """`chattr +i` on `paths` (root cannot delete, rename or write into them), undone afterwards;
    the test is skipped where the file system has no such attribute."""
    done = []
    try:
        for path in paths:
            if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
                pytest.skip("chattr +i is not supported here")
            done.append(path)
        yield
    finally:
        for path in done:
            subprocess.run(["chattr", "-i", str(path)], check=True)


def _refusing_reads(monkeypatch, path: Path, error: int = errno.EIO) -> None:
    """Reading `path` fails as on a failing disk or network file system (root reads any mode)."""
    real = Path.read_bytes

    def read_bytes(self):
        if self == path:
            raise OSError(error, os.strerror(error), str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)


def _checkpointed_run(tmp_path: Path) -> tuple[Path, dict[Path, bytes]]:
    """A run directory with a resume checkpoint of TINY and a probe checkpoint; their bytes."""
    run = tmp_path / "run"
    config = TrainConfig.from_dict(TINY)
    ckpt.save_atomic({"config": config.to_dict(), "step": 500}, ckpt.resume_path(run))
    ckpt.save_atomic({"step": 0}, ckpt.probe_path(run, 0))
    files = [ckpt.resume_path(run), ckpt.probe_path(run, 0)]
    return run, {path: path.read_bytes() for path in files}


# ---------------------------------------------------------------- case 5: unreadable, not damaged
def test_an_unreadable_resume_checkpoint_stops_in_one_line_and_deletes_nothing(tmp_path, capsys, monkeypatch):
    run, before = _checkpointed_run(tmp_path)
    resume = ckpt.resume_path(run)
    _refusing_reads(monkeypatch, resume)
    assert main([*tiny_args(run), "--quiet"]) == 1
    assert one_error_line(capsys) == (
        f"mtrl: error: {resume}: cannot read ({EIO}); nothing was deleted: fix it and run again"
    )
    monkeypatch.undo()
    assert {path: path.read_bytes() for path in before} == before  # no clear_run, no fallback


@pytest.mark.parametrize("which", ["resume.pt", "resume.prev.pt"])
def test_a_directory_in_place_of_a_resume_checkpoint_is_kept_and_named(which, tmp_path):
    from mtrl.run.resume import load_resume

    resume = ckpt.resume_path(tmp_path)
    ckpt.save_atomic({"step": 1}, resume, keep_previous=True)
    ckpt.save_atomic({"step": 2}, resume, keep_previous=True)
    _bit_flip(resume)  # resume.pt damaged: the fallback would read resume.prev.pt
    target = resume.with_name(which)
    target.unlink()
    target.mkdir()
    with pytest.raises(ckpt.UnreadableFile) as info:
        load_resume(resume, torch.device("cpu"))
    assert (
        str(info.value)
        == f"{target}: cannot read (a directory is in its place); nothing was deleted: fix it and run again"
    )
    assert target.is_dir() and len(list(resume.parent.iterdir())) == 2


# ---------------------------------------------------------------- case 6: sizes that cannot fit
SIZES_THAT_CANNOT_FIT = [
    ({"buffer_per_task": "1e15"}, "buffer_per_task=1e15 needs ~3.4e17 bytes of replay buffer"),
    ({"batch_per_task": "1e9"}, "batch_per_task=1e9 needs ~1.2e13 bytes of activations for one batch"),
    (
        {"actor_width": "1e6"},
        "actor_width=1e6, critic_width=32, depth=3 needs ~3.2e13 bytes of networks (parameters, Adam "
        "moments, target critics)",
    ),
]


@pytest.mark.parametrize(("overrides", "said"), SIZES_THAT_CANNOT_FIT)
def test_sizes_that_cannot_fit_are_refused_before_anything_is_built(
    overrides, said, tmp_path, capsys, nothing_built, monkeypatch
):
    import mtrl.run.memory as memory

    monkeypatch.setattr(memory, "host_memory", lambda: (24 * 2**30, "this job (SLURM_MEM_PER_NODE)"))
    assert main(tiny_args(tmp_path / "run", **overrides)) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"mtrl: error: {said}") and line.endswith(
        "; this job (SLURM_MEM_PER_NODE) has 24 GiB"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"torch_threads": 100000}, "torch_threads: 100000 is more than any machine's cores (at most 1024;"),
        ({"arch": "moore", "moore_experts": "1e6"}, "moore_experts: 1000000 is beyond what can be built"),
        (
            {"arch": "moore", "moore_experts": 40},
            "moore_experts: 40 experts cannot be orthonormalised in width 32",
        ),
        ({"arch": "paco", "paco_k": 5000}, "paco_k: 5000 is beyond what can be built (at most 1024)"),
        ({"arch": "sm", "sm_modules": 1000}, "sm_modules: 1000 is beyond what can be built (at most 64)"),
    ],
)
def test_absurd_thread_and_expert_counts_are_one_line(overrides, said, tmp_path, capsys, nothing_built):
    assert main(tiny_args(tmp_path / "run", **overrides)) == 2
    assert one_error_line(capsys).startswith(f"mtrl: error: {said}")


def test_the_estimate_counts_what_a_run_allocates():
    """Bytes per transition are the replay buffer's own; the formula's sizes are the built networks'
    (exact for MTMHSAC, within 10 % for PaCo and MOORE, never under for SM)."""
    from mtrl.agents.buffers import MultiTaskReplayBuffer
    from mtrl.agents.footprint import approximate_sizes, footprint, network_bytes, transition_bytes
    from mtrl.envs.benchmarks import ACTION_DIM, OBS_DIM
    from mtrl.nets.matching import count_actor_critic
    from mtrl.run.memory import measured_sizes

    buffer = MultiTaskReplayBuffer(3, 7, OBS_DIM, ACTION_DIM, "cpu")
    assert transition_bytes() * 3 * 7 == buffer.storage.nbytes == 336 * 21
    config = TrainConfig(task_set="mt10", buffer_per_task=2000).resolved()
    assert footprint(config, measured_sizes(config)).buffer == 10 * 2000 * 336
    for arch in ("mtmhsac", "paco", "moore", "sm"):
        built = measured_sizes(TrainConfig(arch=arch).resolved())
        assert (built.actor_params, built.critic_params) == count_actor_critic(
            TrainConfig(arch=arch).resolved()
        )
        formula = approximate_sizes(TrainConfig(arch=arch))
        ratio = formula.actor_params / built.actor_params
        assert ratio == 1.0 if arch == "mtmhsac" else 1.0 <= ratio < (1.5 if arch == "sm" else 1.1)
    assert network_bytes(built) == 4 * (4 * built.actor_params + 10 * built.critic_params)


def test_host_memory_is_the_least_of_machine_cgroup_and_slurm():
    from mtrl.run.memory import host_memory

    files = {
        "/proc/meminfo": "MemTotal: 100000000 kB\nMemAvailable: 50000000 kB\n",
        "/sys/fs/cgroup/memory.max": "34359738368\n",
        "/sys/fs/cgroup/memory.current": "8589934592\n",
    }
    assert host_memory(files.get, {}) == (24 * 2**30, "this job's cgroup")
    assert host_memory(files.get, {"SLURM_MEM_PER_NODE": "16384"}) == (
        16 * 2**30,
        "this job (SLURM_MEM_PER_NODE)",
    )
    assert host_memory({**files, "/sys/fs/cgroup/memory.max": "max\n"}.get, {}) == (
        50000000 * 1024,
        "this machine (MemAvailable)",
    )


def test_the_workflow_refuses_to_plan_a_run_that_cannot_fit(tmp_path):
    from mtrl.study.fits import check_runs_fit
    from mtrl.study.grid import build_grid

    def huge(study):
        study["run_defaults"]["buffer_per_task"] = "1e15"

    path = smoke_study(tmp_path, huge)
    import yaml

    study = yaml.safe_load(path.read_text())
    with pytest.raises(ConfigError) as info:
        check_runs_fit(build_grid(study).runs, {**_smoke_resources(), "runtime_device": "cpu"})
    assert str(info.value) == (
        "run mt10/mtmhsac/a64-c64-d3/s0: buffer_per_task=1e15 needs ~3.4e18 bytes of replay buffer; its job "
        "(train_resources.mem_mb.mt10 at this width) has 1,007 MiB; the workflow plans no such run"
    )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "-n", "--cores", "1", "--configfile", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr  # Snakemake prints a WorkflowError to stdout
    lines = [line for line in output.splitlines() if "mtrl:" in line]
    assert result.returncode != 0 and len(lines) == 1 and "Traceback" not in output, output
    assert lines[0] == f"mtrl: error: {info.value}"
    assert not (tmp_path / "results" / "runs").exists()


def _smoke_resources() -> dict:
    import yaml

    smoke = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    main_config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return {**main_config["train_resources"], **smoke.get("train_resources", {})}


# ---------------------------------------------------------------- case 7: deletes and renames
def _damaged_result(tmp_path: Path) -> Path:
    path = _write_result(tmp_path / "run", TrainConfig.from_dict(TINY))
    _truncated(path)
    return path


def test_an_immutable_damaged_train_h5_is_one_line_and_kept(tmp_path, capsys, nothing_built):
    path = _damaged_result(tmp_path)
    before = path.read_bytes()
    with immutable(path):
        assert main(tiny_args(path.parent)) == 1
    assert (
        one_error_line(capsys)
        == f"mtrl: error: {path}: cannot delete it to train the run again ({IMMUTABLE})"
    )
    assert path.read_bytes() == before


def test_a_directory_in_place_of_train_h5_is_one_line_and_kept(tmp_path, capsys, nothing_built):
    path = tmp_path / "run" / "train.h5"
    (path / "inside").mkdir(parents=True)
    assert main(tiny_args(path.parent)) == 1
    assert one_error_line(capsys) == (
        f"mtrl: error: {path}: cannot read (a directory is in its place); nothing was deleted: "
        "fix it and run again"
    )
    assert (path / "inside").is_dir()


def test_an_unreadable_train_h5_is_kept(tmp_path, capsys, monkeypatch, nothing_built):
    """EIO on a good result file: no retraining over it (it is not damaged, the disk is)."""
    path = _write_result(tmp_path / "run", TrainConfig.from_dict(TINY))
    before = path.read_bytes()
    real_open = open

    def failing_open(file, *args, **kwargs):
        if Path(str(file)) == path:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    assert main(tiny_args(path.parent)) == 1
    monkeypatch.undo()
    assert (
        one_error_line(capsys)
        == f"mtrl: error: {path}: cannot read ({EIO}); nothing was deleted: fix it and run again"
    )
    assert path.read_bytes() == before


def test_an_immutable_previous_checkpoint_is_named_and_both_are_kept(tmp_path):
    """resume.pt damaged, resume.prev.pt immutable: the fallback cannot rename it; one line, every
    file as it was. A save cannot make room either: it names resume.prev.pt, not resume.pt."""
    from mtrl.run.resume import load_resume

    resume = ckpt.resume_path(tmp_path)
    ckpt.save_atomic({"step": 1}, resume, keep_previous=True)
    ckpt.save_atomic({"step": 2}, resume, keep_previous=True)
    previous = ckpt.previous_path(resume)
    with immutable(previous):
        with pytest.raises(ckpt.CheckpointError) as info:
            ckpt.save_atomic({"step": 3}, resume, keep_previous=True)
        assert str(info.value) == (
            f"{previous}: cannot delete it to make room for the next resume checkpoint ({IMMUTABLE})"
        )
        _bit_flip(resume)
        damaged = resume.read_bytes()
        with pytest.raises(ckpt.CheckpointError) as info:
            load_resume(resume, torch.device("cpu"))
        assert (
            str(info.value)
            == f"{previous}: cannot rename it to resume.pt in place of the damaged one ({IMMUTABLE})"
        )
    assert resume.read_bytes() == damaged and ckpt.load(previous)["step"] == 1
    assert sorted(p.name for p in resume.parent.iterdir()) == ["resume.prev.pt", "resume.pt"]


def test_an_immutable_probe_checkpoint_stops_a_fresh_start_in_one_line(tmp_path):
    run = tmp_path / "run"
    probe = ckpt.probe_path(run, 500)
    ckpt.save_atomic({"step": 500}, probe)
    with immutable(probe), pytest.raises(ckpt.CheckpointError) as info:
        ckpt.clear_run(run)
    assert str(info.value) == f"{probe}: cannot delete it to start the run afresh ({IMMUTABLE})"
    assert ckpt.load(probe)["step"] == 500


def test_resume_checkpoints_that_cannot_be_deleted_at_the_end_are_a_warning(tmp_path, caplog):
    """When a run finishes its train.h5 is written: a resume.pt it cannot delete then is a warning
    in one line, not an error (a failed job would have its train.h5 deleted). End to end: the last
    run of the SIGHUP test below."""
    resume = ckpt.resume_path(tmp_path)
    ckpt.save_atomic({"step": 1}, resume, keep_previous=True)
    ckpt.save_atomic({"step": 2}, resume, keep_previous=True)
    with immutable(resume), caplog.at_level(logging.WARNING, logger="mtrl"):
        ckpt.remove_finished(resume)
    assert caplog.messages == [
        f"{resume}: cannot delete it now that the run is complete ({IMMUTABLE}); train.h5 is written and "
        "complete: delete it by hand"
    ]
    assert resume.exists() and not ckpt.previous_path(resume).exists()


# ---------------------------------------------------------------- case 8: the task cache
@pytest.mark.parametrize("how", ["a file", "immutable"])
def test_a_task_cache_that_cannot_take_files_is_one_line(how, tmp_path, capsys, monkeypatch):
    from mtrl.envs.vector import task_cache_dir

    cache = tmp_path / "cache"
    monkeypatch.setenv("MTRL_CACHE_DIR", str(cache))
    if how == "a file":
        cache.write_text("not a folder")
        with contextlib.nullcontext():
            assert main(tiny_args(tmp_path / "run")) == 2
        problem = "a file is in the way"
    else:
        task_cache_dir().mkdir(parents=True)
        with immutable(task_cache_dir()):
            assert main(tiny_args(tmp_path / "run")) == 2
        problem = "Operation not permitted"
    assert one_error_line(capsys) == (
        f"mtrl: error: MTRL_CACHE_DIR={cache}: cannot write the task cache folder {task_cache_dir()} "
        f"({problem}); point MTRL_CACHE_DIR at a writable folder"
    )


# ---------------------------------------------------------------- case 10: signals at every phase
def _sig_caught(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for `signum` (its SigCgt mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_stop_in_the_first_moments_of_mtrl_train_is_one_line(name, tmp_path):
    """Sent 0.3 s after start (and once the CLI's first handler is in: on a loaded machine the
    interpreter alone may take longer), during the imports: one line, exit 75, nothing written."""
    signum = getattr(signal, name)
    mtrl = Path(sys.executable).parent / "mtrl"
    run = tmp_path / "run"
    start = time.monotonic()
    proc = subprocess.Popen([str(mtrl), *tiny_args(run)], stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    while not _sig_caught(proc.pid, signum) and time.monotonic() - start < 10:
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert (
        err.strip()
        == f"mtrl: {name} received: stopped before training started, nothing to save; run again to start"
    )
    assert proc.returncode == 75
    assert not (run / "train.h5").exists() and not ckpt.resume_path(run).exists()


def test_sighup_mid_run_and_sigterm_during_the_resume_load_lose_nothing(tmp_path, monkeypatch, caplog):
    """SIGHUP (a closed terminal) at step 500 writes the resume checkpoint and stops (exit code 75);
    a SIGTERM while that checkpoint is loaded stops before training, the checkpoint untouched; the
    third run continues from step 500 to the end, through a SIGTERM while it writes train.h5, and
    keeps its train.h5 though resume.pt is immutable by then."""
    from mtrl.files.completeness import train_h5_problem
    from mtrl.run import resume
    from mtrl.run.stop_signals import early_stops
    from mtrl.run.train import Trainer, TrainingInterrupted, train

    small = {"actor_width": 16, "critic_width": 16, "batch_per_task": 16, "buffer_per_task": 1000}
    config = TrainConfig.from_dict({**TINY, **small, "total_steps": 1000, "probe_checkpoints": 1})
    run = tmp_path / "run"
    real_end = Trainer.at_episode_end

    def hang_up(self):
        real_end(self)
        if self.state.step == 500:
            os.kill(os.getpid(), signal.SIGHUP)

    monkeypatch.setattr(Trainer, "at_episode_end", hang_up)
    with early_stops(), pytest.raises(TrainingInterrupted) as info:
        train(config, run, quiet=True)
    assert (info.value.signal_name, info.value.exit_code, info.value.step) == ("SIGHUP", 75, 500)
    monkeypatch.undo()
    saved = ckpt.resume_path(run).read_bytes()
    assert ckpt.load(ckpt.resume_path(run))["step"] == 500

    real_load = ckpt.load

    def load_then_term(path, device="cpu"):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_load(path, device)

    monkeypatch.setattr(resume.ckpt, "load", load_then_term)
    with early_stops(), pytest.raises(TrainingInterrupted) as info:
        train(config, run, quiet=True)
    assert str(info.value) == (
        "SIGTERM received: stopped before training resumed at step 500, its resume checkpoint kept; "
        "run again to continue"
    )
    monkeypatch.undo()
    assert ckpt.resume_path(run).read_bytes() == saved
    real_finish = Trainer.finish

    def finish(self):  # resume.pt cannot be deleted when the run is done: train.h5 is kept, whole
        os.kill(os.getpid(), signal.SIGTERM)  # and a SIGTERM during the final write lets it finish
        with immutable(self.resume_file):
            return real_finish(self)

    monkeypatch.setattr(Trainer, "finish", finish)
    with early_stops(), caplog.at_level(logging.WARNING, logger="mtrl"):
        result = train(config, run, quiet=True)
    assert train_h5_problem(result, config.to_dict()) is None
    assert f"{ckpt.resume_path(run)}: cannot delete it now that the run is complete" in caplog.text


# ---------------------------------------------------------------- misleading messages
def test_eval_device_cuda_without_a_gpu_names_eval_device_before_envs_start(
    tmp_path, capsys, nothing_built, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(tiny_args(tmp_path / "run", eval_device="cuda")) == 2
    assert one_error_line(capsys).startswith(
        "mtrl: error: eval_device: cuda requested but torch sees no GPU on this machine"
    )


@pytest.mark.parametrize(
    ("settings", "hint"),
    [
        ({"adam_eps": 1e-300}, "settings outside their usual range: adam_eps=1e-300 (usual 1e-10..0.01)"),
        (
            {"initial_alpha": 1e30},
            "settings outside their usual range: initial_alpha=1e+30 (usual 0.001..10)",
        ),
        (
            {"lr": 1.0, "tau": 1.0},
            "settings outside their usual range: lr=1 (usual 1e-05..0.003), tau=1 (usual 0.0001..0.1)",
        ),
        ({}, "try a lower lr than 0.0003"),
    ],
)
def test_the_divergence_hint_names_the_settings_out_of_range(settings, hint):
    from mtrl.config.usual import divergence_hint

    assert divergence_hint(TrainConfig.from_dict({**TINY, **settings})) == hint


def test_a_recorded_divergence_fails_the_same_run_at_once_and_only_that_run(tmp_path):
    from mtrl.run.diverged_record import earlier_divergence, record_divergence

    identity = {"lr": 10.0, "seed": 0}
    assert earlier_divergence(tmp_path, identity, "code1") is None
    record_divergence(tmp_path, identity, "code1", "runs/x: training diverged at step 500: ...")
    assert (
        earlier_divergence(tmp_path, dict(identity), "code1") == "runs/x: training diverged at step 500: ..."
    )
    assert earlier_divergence(tmp_path, {**identity, "lr": 1e-4}, "code1") is None  # other settings: train
    assert earlier_divergence(tmp_path, identity, "code2") is None  # other code: train


def _run_train_script(tmp_path: Path, monkeypatch, train) -> tuple[int, str]:
    """The workflow's train rule script as Snakemake runs it (one attempt), `train` standing in for
    the trainer: (exit code, the job's log)."""
    import runpy
    import types

    import mtrl.run.train as train_module

    monkeypatch.setattr(train_module, "train", train)
    scripts = ROOT / "workflow" / "scripts"
    monkeypatch.syspath_prepend(str(scripts))
    log = tmp_path / "train.log"
    log.unlink(missing_ok=True)
    job = types.SimpleNamespace(
        log=[str(log)],
        params=types.SimpleNamespace(run=TINY, code="abc"),
        config={},
        input=[],
        output=[str(tmp_path / "run" / "train.h5")],
        resources=types.SimpleNamespace(runtime=None),
    )
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with pytest.raises(SystemExit) as info:
            runpy.run_path(str(scripts / "train.py"), init_globals={"snakemake": job})
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return info.value.code, log.read_text()


def test_a_diverged_run_is_not_trained_again_by_the_next_attempt(tmp_path, monkeypatch):
    """Snakemake retries a failed job whatever failed it; a divergence is deterministic, so the
    train job records it and the retry fails at once with the same line, never training."""
    from mtrl.run.divergence import TrainingDiverged

    said = f"{tmp_path / 'run'}: training diverged at step 500: actor parameters not finite"

    def diverging(*_a, **_k):
        (tmp_path / "run").mkdir(exist_ok=True)
        raise TrainingDiverged(said)

    def never(*_a, **_k):
        raise AssertionError("a diverged run was trained again")

    code, log = _run_train_script(tmp_path, monkeypatch, diverging)
    assert code == 1 and f"mtrl: error: {said}\n" in log and "Traceback" not in log
    monkeypatch.undo()
    code, log = _run_train_script(tmp_path, monkeypatch, never)
    record = tmp_path / "run" / "diverged.json"
    assert code == 1 and "Traceback" not in log
    assert f"mtrl: error: {said}; not retried (delete {record} to train it again)\n" in log


def test_a_damaged_task_cache_entry_is_sampled_again(tmp_path, monkeypatch, caplog):
    import pickle

    from mtrl.envs.vector import goal_variations, task_cache_dir

    monkeypatch.setenv("MTRL_CACHE_DIR", str(tmp_path))
    fresh = pickle.dumps(goal_variations("reach-v3", 7))
    entry = task_cache_dir() / "reach-v3-seed7.pkl"
    entry.write_bytes(fresh[: len(fresh) // 2])
    with caplog.at_level(logging.WARNING, logger="mtrl"):
        assert pickle.dumps(goal_variations("reach-v3", 7)) == fresh
    assert caplog.messages == [f"{entry}: unreadable task cache entry (UnpicklingError): sampling it again"]
    assert entry.read_bytes() == fresh


def test_on_cuda_a_run_must_fit_the_gpus_free_memory(monkeypatch):
    """The CUDA branch without a GPU: torch's answers stand in (free memory 1 GiB)."""
    from mtrl.run.memory import check_fits

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100 80GB HBM3")
    config = TrainConfig.from_dict({**TINY, "buffer_per_task": 10_000_000})
    with pytest.raises(ConfigError) as info:
        check_fits(config, torch.device("cuda"))
    assert str(info.value) == (
        "buffer_per_task=1e7 needs ~3.4e9 bytes of replay buffer; the GPU (NVIDIA H100 80GB HBM3, "
        "free) has 1 GiB"
    )
    check_fits(TrainConfig.from_dict(TINY), torch.device("cuda"))  # a tiny run fits


def test_the_resource_tracker_survives_a_hang_up_of_the_process_group():
    """multiprocessing's resource tracker ignores SIGINT and SIGTERM only: a SIGHUP to the process
    group killed it, and it printed tracebacks and leak warnings after the trainer's line."""
    script = (
        "from pathlib import Path\n"
        "from multiprocessing import resource_tracker\n"
        "from mtrl.envs.shm import start_resource_tracker\n"
        "start_resource_tracker()\n"
        "status = Path(f'/proc/{resource_tracker._resource_tracker._pid}/status').read_text()\n"
        "print(next(line for line in status.splitlines() if line.startswith('SigBlk:')).split()[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert int(out, 16) >> (signal.SIGHUP - 1) & 1
