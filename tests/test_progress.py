"""Progress of a long run (mtrl.run.progress): a line within seconds and then at a steady cadence,
whatever `log_every` is, with steps, rate, eta and the last evaluation; and the defaults of
`mtrl train` are the study's own."""

from __future__ import annotations

import re

import yaml

import mtrl.run.progress as progress
from mtrl.cli import main
from mtrl.config.settings import TrainConfig
from mtrl.run.progress import Progress
from tests.conftest import TINY
from tests.workflow_helpers import ROOT

LINE = re.compile(r"^\[mtrl\] step ([\d,]+)/([\d,]+) \(\s*[\d.]+%\)  ([\d,]+) steps/s")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reports_come_by_the_clock_first_within_seconds_then_steadily(capsys):
    clock = Clock()
    shown = Progress(20_000_000, clock.now, 0, first_s=10, every_s=30, clock=clock)
    shown.start("evaluating the untrained networks first")
    seen = []
    for second in range(1, 101):  # 100 s at 1,000 transitions/s, one tick per second
        clock.now += 1
        shown.tick(second * 1000)
        if second == 50:
            shown.note_eval(40_000, 0.125)
        seen += capsys.readouterr().err.splitlines()
    assert seen[0] == (
        "[mtrl] started at step 0 of 20,000,000 transitions; evaluating the untrained networks first"
    )
    assert [int(LINE.match(line).group(1).replace(",", "")) for line in seen[1:]] == [
        10_000,
        40_000,
        70_000,
        100_000,
    ]
    assert seen[1].endswith("1,000 steps/s  eta 5.6 h") and "eval success" not in seen[2]
    assert seen[3].endswith("1,000 steps/s  eval success  12.5% (step 40,000)  eta 5.5 h")
    quiet = Progress(100, clock.now, 0, clock=clock, quiet=True)
    quiet.start("x")
    clock.now += 100
    quiet.tick(50)
    quiet.report(100, 0.5, 10.0)
    assert capsys.readouterr().err == ""


def test_a_tiny_run_that_logs_once_prints_progress_before_its_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(progress, "FIRST_S", 0.2)
    monkeypatch.setattr(progress, "EVERY_S", 0.2)
    config = {**TINY, "log_every": 2000, "eval_every": 2000, "checkpoint_every": 2000}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err.splitlines()
    steps = [int(m.group(1).replace(",", "")) for m in map(LINE.match, err) if m]
    assert err[0].startswith("[mtrl] started at step 0 of 2,000 transitions")
    assert len(steps) >= 3 and steps[-1] == 2000  # the training-log row at the end
    assert all(0 < step < 2000 for step in steps[:-1]) and steps[:-1] == sorted(steps[:-1])


def test_mtrl_trains_with_the_studys_mt10_schedule_by_default():
    """`mtrl train` without settings is the study's MT10 run: its schedule as config/config.yaml's."""
    study = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    default = TrainConfig()
    for key, value in study["task_set_defaults"]["mt10"].items():
        assert getattr(default, key) == value, key
    assert default.log_every == 100_000
