"""Nothing silently wrong: bad input and damaged files are refused in one line naming the key or file.

Table-driven: every CLI command with bad settings, files and paths; checkpoints damaged in each way;
a full disk; a second trainer on one run directory; train.h5 of another run.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import typing
from pathlib import Path

import pytest
import torch

from mtrl import checkpoints as ckpt
from mtrl.cli import main
from mtrl.config import ConfigError, TrainConfig
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
    import mtrl.train as train_module  # imported first, so it keeps the real make_vector_env afterwards

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


def _not_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("lr: [1, 2\n  : : :\n")
    return path


def _a_list(tmp_path: Path) -> Path:
    path = tmp_path / "list.yaml"
    path.write_text("- lr\n- 3\n")
    return path


def _a_key_twice(tmp_path: Path) -> Path:
    """PyYAML would silently keep the second value: a run trained with the wrong learning rate."""
    path = tmp_path / "twice.yaml"
    path.write_text("lr: 0.0003\ngamma: 0.99\nlr: 0.003\n")
    return path


def _an_empty_study(tmp_path: Path) -> Path:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    return path


BAD_CONFIG_FILES = [
    (_directory, "is a directory"),
    (_binary, "not text"),
    (_not_yaml, "not valid YAML"),
    (_a_list, "mapping"),
    (_a_key_twice, "key 'lr' given twice (lines 1 and 3)"),
    (lambda tmp: tmp / "missing.yaml", "not found"),
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
    import mtrl.train as train_module

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

    import mtrl.run_directory as run_directory
    import mtrl.train as train_module

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

    from mtrl.train import Trainer, TrainingInterrupted, train
    from tests.test_train import h5_contents

    config = TrainConfig.from_dict({**TINY, "total_steps": 1500, "probe_checkpoints": 1})
    reference = h5_contents(train(config, tmp_path / "reference", quiet=True))

    real = Trainer.at_episode_end

    def signalled(self):
        if self.step == 1000:
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
    from mtrl.probe_checkpoints import probe_episodes

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
    from mtrl.run_directory import run_lock

    run = tmp_path / "run"
    with run_lock(run):  # the first trainer (an orphaned SLURM job, say)
        assert main(tiny_args(run)) == 2
        line = one_error_line(capsys)
        assert str(run) in line and "another trainer" in line
    with run_lock(run):  # released when the first one ends
        pass


def _write_result(run: Path, config: TrainConfig) -> Path:
    from mtrl.results import TrainLog, write_train_h5

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
    import mtrl.train as train_module
    from mtrl.results import train_h5_problem

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
    from mtrl.results import write_atomic_h5

    def full_disk(handle):
        handle["x"] = list(range(100))
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ckpt.CheckpointError, match=r"train\.h5: no space left on the device: .* free$"):
        write_atomic_h5(tmp_path / "train.h5", full_disk)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "bit-flip"])
def test_with_no_readable_resume_checkpoint_the_run_starts_over_and_says_so(damage, tmp_path, caplog):
    from mtrl.train import Trainer

    config = TrainConfig.from_dict(TINY)
    run = tmp_path / "run"
    resume = ckpt.resume_path(run)
    ckpt.save_atomic({"config": config.resolved().to_dict(), "x": torch.zeros(5000)}, resume)
    ckpt.save_atomic({"stale": True}, ckpt.probe_path(run, 1000))
    DAMAGE[damage](resume)
    with caplog.at_level(logging.WARNING, logger="mtrl"):
        trainer = Trainer(config, run, quiet=True, provenance="", restart_stale=False)
    trainer.envs.close()
    assert trainer.step == 0 and f"{resume}: " in caplog.text and "starting over" in caplog.text
    assert not resume.exists() and ckpt.probe_checkpoints(run) == []


# ------------------------------------------------------------------------------ studies and `mtrl status`
ROOT = Path(__file__).resolve().parents[1]


def smoke_study(tmp_path: Path, edit=None, name: str = "study.yaml") -> Path:
    """config/smoke.yaml with one figure (fig5's first series: 2 runs), its results in tmp_path,
    edited by `edit`, written to tmp_path/name."""
    import yaml

    study = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    study["results_dir"] = str(tmp_path / "results")
    study["figures"] = {"fig5": study["figures"]["fig5"][:1]}
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


@pytest.mark.parametrize(("make", "needle"), [*BAD_CONFIG_FILES, (_an_empty_study, "no `figures` section")])
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
        lambda s: s["arch_defaults"]["sm"].update(modules=3),
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
    from mtrl.grid import build_grid
    from mtrl.status import load_study

    study = load_study(study_path)
    run_id, config = next(iter(build_grid(study).runs.items()))
    return run_id, config, Path(study["results_dir"]) / "runs" / run_id


def test_status_shows_runs_in_progress_with_the_step_they_reached(tmp_path, capsys):
    """A checksummed resume checkpoint of gigabytes is read without its tensors; one of other
    settings says the run will start over."""
    from mtrl.provenance import code_hash

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
    assert "step 3,000 of 5,000 (resume checkpoint of other settings or code: the run will start over)" in (
        capsys.readouterr().out
    )
    _truncated(ckpt.resume_path(run_dir))
    assert main(["status", "--configfile", str(path)]) == 0
    assert f"{ckpt.resume_path(run_dir)}: not a readable checkpoint" in capsys.readouterr().out


def test_status_of_a_results_folder_uses_the_study_that_wrote_it(tmp_path, capsys, monkeypatch):
    """`mtrl status results/smoke` after the smoke pipeline: the smoke study's runs, not the paper's."""
    from mtrl.status import record_study

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
