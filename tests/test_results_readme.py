"""results/README.md describes what the workflow writes: every top-level entry of a results folder and
the run-folder names of both studies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mtrl.study.grid import build_grid
from mtrl.study.status import STUDY_RECORD, load_study

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "results" / "README.md").read_text()
SHAPE = re.compile(r"a\d+-c\d+-d\d+(-skip)?(-ln)?(-rew\w+?)?(-[a-z_]+-?[\d.]+|-[a-z_]+(True|False))*")


def test_every_top_level_entry_the_rules_write_is_described():
    rules = "".join(path.read_text() for path in (ROOT / "workflow" / "rules").glob("*.smk"))
    written = set(re.findall(r'RESULTS / "(\w+)"', rules)) | {STUDY_RECORD}
    assert written == {"runs", "tables", "logs", "benchmarks", "study.json"}
    for name in written:
        assert f"`{name}" in README, name


@pytest.mark.parametrize("config", ["config/config.yaml", "config/smoke.yaml"])
def test_the_run_folders_of_both_studies_follow_the_described_pattern(config: str):
    runs = build_grid(load_study(ROOT / config)).runs
    for run_id in runs:
        task_set, _arch, shape, seed = run_id.split("/")
        assert task_set in ("mt10", "mt25", "mt50") and re.fullmatch(r"s\d+", seed)
        assert SHAPE.fullmatch(shape), run_id


def test_the_examples_are_run_folders_of_the_papers_grid():
    shapes = {run_id.split("/")[2] for run_id in build_grid(load_study(ROOT / "config" / "config.yaml")).runs}
    examples = re.findall(r"`(a\d+-c\d+-d\d+[^`]*)`", README)
    assert len(examples) >= 3 and set(examples) <= shapes
