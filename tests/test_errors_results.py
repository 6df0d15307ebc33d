"""Issue 26, the result files and the workflow: damaged values and bytes, repaired runs, deleted
files, one study per results folder, config files Snakemake cannot read, and the misleading items
(unknown mem_mb keys, the plan's count of complete runs, dry runs that write).

Result files are constructed (tests/fixtures_results.py), never trained; each workflow test runs
Snakemake on a copy of the workflow with a study of two or three runs of the smoke config.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import pytest
import yaml

from mtrl.config.settings import ConfigError
from mtrl.files.completeness import result_file_problem
from mtrl.files.integrity import DamagedResult
from mtrl.files.provenance import code_hash, identity
from mtrl.files.result_files import provenance_attrs
from mtrl.study.grid import build_grid, validate_study
from mtrl.study.status import load_study, record_study, stale_inputs, study_status
from mtrl.tables import RunRef
from mtrl.tables.runs import read_train
from tests.fixtures_results import write_fake_train
from tests.workflow_helpers import ROOT, SNAKEMAKE, copy_workflow, edited_config, job_counts, snakemake

SUCCESS = [[0.0] * 10, [0.5] * 10]  # MT10: evaluations at step 0 and at the smoke's 5,000 steps
RESULTS = Path("results") / "smoke"
SMOKE_MT10 = {"task_set": "mt10", "probe_checkpoints": 1, "eval_every": 5000, "checkpoint_every": 5000}


def _study(workdir: Path, runs: int, name: str = "config/small.yaml") -> tuple[Path, dict]:
    """A config file in `workdir` with fig5's first `runs` series (one run each), and its runs."""
    path = edited_config(
        workdir / "config" / "smoke.yaml",
        workdir / name,
        lambda c: c.update(figures={"fig5": c["figures"]["fig5"][:runs]}),
    )
    return path, build_grid(load_study(path)).runs


def _complete_run(workdir: Path, run_id: str, run, code_root: Path | None = None) -> Path:
    """A constructed train.h5 of `run` that the workflow in `workdir` takes as complete and current."""
    path = write_fake_train(workdir / RESULTS / "runs" / run_id, SUCCESS, steps=[0, 5000], **run.to_dict())
    ident = json.dumps(identity(run.to_dict()), sort_keys=True)
    provenance_attrs(
        path, {"provenance_identity": ident, "provenance_code": code_hash("train", code_root or workdir)}
    )
    return path


def _flip_byte(path: Path, dataset: str) -> None:
    """Flip the lowest bit of the first byte of `dataset`'s data (little-endian: its least
    significant mantissa bit), as a disk or a copy would."""
    with h5py.File(path, "r") as handle:
        offset = handle[dataset].id.get_offset()
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if ".snakemake" not in p.parts}


def _scheduled(text: str) -> tuple[dict[str, int], set[str]]:
    """(job counts, run ids of the train jobs) of a dry run's output."""
    runs = {re.search(r"wildcards: run=(\S+)", job).group(1) for job in text.split("rule train:")[1:]}
    return job_counts(text), runs


# ---------------------------------------------------------------- case 1: damaged values and bytes
def test_a_damaged_value_or_byte_is_stale_and_refused_by_aggregation(tmp_path):
    """Before, eval/success[1, 0] = 2.0 was complete and aggregated (an IQM of 200 %), exit 0."""
    from mtrl.config.settings import TrainConfig

    run = TrainConfig.from_dict({**SMOKE_MT10, "total_steps": 5000, "warmup_steps_per_task": 400})
    value, byte = (_complete_run(tmp_path, name, run, code_root=ROOT) for name in ("value", "byte"))
    with h5py.File(value, "a") as handle:
        handle["eval/success"][1, 0] = 2.0
    _flip_byte(byte, "eval/return")
    assert result_file_problem(value) == "damaged (eval/success[1, 0] = 2.0 is outside [0, 1])"
    assert result_file_problem(byte) == (
        "damaged (checksum of its datasets differs from the one written: bytes changed since)"
    )
    ident = json.dumps(identity(run.to_dict()), sort_keys=True)
    expected = {"runs": {str(value.parent): ident, str(byte.parent): ident}, "probe_code": ""}
    problems = stale_inputs({**expected, "train_code": code_hash("train")}, plasticity=False)
    assert [p.state for p in problems] == ["stale", "stale"]
    assert problems[0].damaged == f"{value}: damaged (eval/success[1, 0] = 2.0 is outside [0, 1])"
    for path in (value, byte):  # whoever reads it for a table: refused in one line naming it
        with pytest.raises(DamagedResult, match=f"^{re.escape(str(path))}: damaged"):
            read_train(RunRef("MT10", "a", path.parent))


def test_the_workflow_retrains_only_the_damaged_runs_and_a_dry_run_writes_nothing(tmp_path):
    """A flipped value and a truncated file: those two runs are retrained, the third is not; the
    plan counts neither as complete; the dry run writes no file (before: `.rerun-*` markers)."""
    workdir = copy_workflow(tmp_path / "wf")
    config, runs = _study(workdir, 3)
    flipped, truncated, intact = runs
    paths = [_complete_run(workdir, rid, run) for rid, run in runs.items()]
    with h5py.File(paths[0], "a") as handle:
        handle["eval/success"][1, 0] = 2.0
    paths[1].write_bytes(paths[1].read_bytes()[:-4000])
    before = _files(workdir / "results")
    proc = snakemake(workdir, "--dry-run", "--configfile", str(config))
    text = proc.stdout + proc.stderr
    counts, trained = _scheduled(text)
    assert trained == {flipped, truncated} and counts["train"] == 2, text
    assert "mtrl: plan for the whole study: 3 runs, 1 complete" in text
    assert "eval/success[1, 0] = 2.0 is outside [0, 1]" in text
    assert _files(workdir / "results") == before  # no marker, no study.json: nothing written
    statuses = {s.run_id: s for s in study_status(load_study(config), workdir / RESULTS)}
    assert statuses[flipped].state == "stale" and "eval/success[1, 0] = 2.0" in statuses[flipped].detail
    assert statuses[truncated].state == "stale" and statuses[intact].state == "complete"


# ---------------------------------------------------------------- case 2: a repaired run stays repaired
FAKE_TRAINER = '''"""Test stand-in for the train rule: a constructed, current train.h5 (no training)."""
import json
from pathlib import Path

from mtrl.files.result_files import TrainLog, provenance_attrs, write_train_h5

run, out = snakemake.params.run, Path(snakemake.output[0])
log = TrainLog(eval_step=[0, run["total_steps"]], eval_success=[[0.5] * 10] * 2, eval_return=[[1.0] * 10] * 2)
attrs = {"config": json.dumps(run), "tasks": json.dumps([f"t{i}" for i in range(10)])}
write_train_h5(out, log, {**attrs, "actor_params": 1, "critic_params": 1}, 10)
ident = json.dumps(run, sort_keys=True)
provenance_attrs(out, {"provenance_identity": ident, "provenance_code": snakemake.params.code})
'''


def test_a_repaired_run_is_not_trained_again_by_the_next_snakemake(tmp_path):
    """Before, the `.rerun-train` marker was an input of the rebuild only: the next Snakemake saw
    "Set of input files has changed since last execution" and trained the run from step 0 again."""
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "workflow" / "scripts" / "train.py").write_text(FAKE_TRAINER)
    config, runs = _study(workdir, 1)
    ((run_id, run),) = runs.items()
    path = _complete_run(workdir, run_id, run)
    with h5py.File(path, "a") as handle:
        handle["eval/success"][1, 0] = 2.0
    target = str(RESULTS / "runs" / run_id / "train.h5")
    first = snakemake(workdir, target, "--configfile", str(config), "--cores", "1")
    assert "rule train:" in first.stdout + first.stderr and result_file_problem(path) is None
    second = snakemake(workdir, target, "--configfile", str(config), "--dry-run")
    text = second.stdout + second.stderr
    assert "Nothing to be done" in text and "rule train:" not in text, text
    assert not [p for p in _files(workdir / "results") if p.name.startswith(".rerun-")]


# ---------------------------------------------------------------- case 3: a deleted train.h5
def test_a_deleted_train_h5_is_missing_and_reruns_alone_with_what_reads_it(tmp_path):
    """Before: "Nothing to be done", the figure kept the run's curve, and `mtrl status` called the
    run "in progress ... step 5,000 (last probe checkpoint)", 5,000 being its total."""
    from mtrl.files.checkpoints import probe_path

    workdir = copy_workflow(tmp_path / "wf")
    config, runs = _study(workdir, 2)
    gone, kept = runs
    for rid, run in runs.items():
        _complete_run(workdir, rid, run)
        for step in (0, 5000):  # a finished run keeps its probe checkpoints
            probe_path(workdir / RESULTS / "runs" / rid, step).parent.mkdir(parents=True, exist_ok=True)
            probe_path(workdir / RESULTS / "runs" / rid, step).write_bytes(b"probe")
    for made in (RESULTS / "tables" / "fig5.csv", RESULTS / "tables" / "fig5.provenance.json"):
        (workdir / made).parent.mkdir(parents=True, exist_ok=True)
        (workdir / made).write_text("made\n")
    for suffix in ("pdf", "png"):  # the figure drawn from both runs
        (workdir / "figures" / "smoke").mkdir(parents=True, exist_ok=True)
        (workdir / "figures" / "smoke" / f"fig5.{suffix}").write_text("drawn\n")
    record_study(workdir / RESULTS, [config])  # the same study: accepted
    (workdir / RESULTS / "runs" / gone / "train.h5").unlink()
    proc = snakemake(workdir, "--dry-run", "--configfile", str(config))
    counts, trained = _scheduled(proc.stdout + proc.stderr)
    assert trained == {gone} and counts == {"train": 1, "aggregate": 1, "figure": 1, "all": 1}
    statuses = {s.run_id: s for s in study_status(load_study(config), workdir / RESULTS)}
    assert (statuses[gone].state, statuses[gone].detail) == ("missing", "")
    assert statuses[kept].state == "complete"


# ---------------------------------------------------------------- case 4: one results folder, one study
def test_a_second_study_in_the_first_ones_results_folder_stops_before_any_job(tmp_path, monkeypatch):
    """Before: exit 0, "2 runs, 2 complete" yet 2 train jobs, the first study's runs overwritten."""
    workdir = copy_workflow(tmp_path / "wf")
    first, _ = _study(workdir, 1)
    monkeypatch.chdir(workdir)  # as the workflow records it, from its folder
    record_study(RESULTS, [first])
    record = (workdir / RESULTS / "study.json").read_text()
    other = edited_config(first, workdir / "config" / "other.yaml", _longer_mt10)
    proc = snakemake(workdir, "--dry-run", "--configfile", str(other), check=False)
    text = proc.stdout + proc.stderr
    lines = [line for line in text.splitlines() if "mtrl: error" in line]
    assert proc.returncode != 0 and len(lines) == 1 and "Job stats" not in text, text
    assert (
        f"mtrl: error: {RESULTS}: holds the runs of the study config/small.yaml, not of {other}" in lines[0]
    )
    assert (workdir / RESULTS / "study.json").read_text() == record


def _longer_mt10(config: dict) -> None:
    config["task_set_defaults"]["mt10"].update(total_steps=10000)


# ---------------------------------------------------------------- case 9: config files Snakemake reads
CONFIG_FILES = {
    "binary": (b"\x00\x01\xff\xfe", "config file is not text (binary or not UTF-8)"),
    "invalid YAML": (
        b"a: [1, 2\nb: 3\n",
        "config file is not valid YAML: line 2, column 2: expected ',' or ']'",
    ),
    "empty": (b"", "config file is empty"),
    "a list": (b"- 1\n- 2\n", "config file must hold a mapping of keys to values, not a list"),
}


def test_a_configfile_snakemake_cannot_read_is_one_line_naming_it(tmp_path, capsys):
    """Before: a 50-line Snakemake traceback (binary), or Snakemake's message naming no file. Two
    through Snakemake itself (its profile runs the check), all four through the check."""
    from mtrl.config.files import check_workflow_configfiles

    for case, (content, message) in CONFIG_FILES.items():
        path = tmp_path / f"{case.replace(' ', '_')}.yaml"
        path.write_bytes(content)
        with pytest.raises(SystemExit) as info:
            check_workflow_configfiles(["-n", "--configfile", str(path), "--cores", "1"])
        lines = capsys.readouterr().err.splitlines()
        assert info.value.code == 1 and len(lines) == 1, (case, lines)
        assert lines[0].startswith(f"mtrl: error: {path}: {message}"), (case, lines)
        if case in ("binary", "empty"):
            proc = subprocess.run(
                [SNAKEMAKE, "--dry-run", "--configfile", str(path)], cwd=ROOT, capture_output=True, text=True
            )
            errors = [line for line in proc.stderr.splitlines() if "mtrl: error" in line]
            assert proc.returncode == 1 and "Traceback" not in proc.stderr, (case, proc.stderr)
            assert errors == [f"mtrl: error: {path}: {message}"], (case, proc.stderr)


# ---------------------------------------------------------------- misleading
def test_unknown_mem_mb_task_sets_and_missing_ones_are_named():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    study = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    study["train_resources"]["mem_mb"]["mt01"] = 4000
    with pytest.raises(ConfigError) as info:
        validate_study(study, schema)
    assert str(info.value) == "train_resources.mem_mb.mt01: unknown key (known: mt1, mt10, mt25, mt50)"
    from mtrl.study.gpu_share import check_mem_mb

    with pytest.raises(ConfigError) as info:
        check_mem_mb({"mt50", "mt10", "mt25"}, {"mt10": 1000})
    assert str(info.value) == (
        "train_resources.mem_mb: no memory for mt25, mt50, whose runs are in this study (given: mt10)"
    )


def test_damaged_plasticity_values_are_named(tmp_path):
    import numpy as np

    from tests.fixtures_results import write_fake_plasticity

    path = write_fake_plasticity(tmp_path, [0, 1000], fill=5.0)
    assert result_file_problem(path) is None
    with h5py.File(path, "a") as handle:
        handle["critic1/dormant_pct"][1, 2, 0] = 130.0
    assert result_file_problem(path) == "damaged (critic1/dormant_pct[1, 2, 0] = 130.0 is outside [0, 100])"
    with h5py.File(path, "a") as handle:
        handle["critic1/dormant_pct"][1, 2, 0] = 5.0
        handle["step"][1] = 0
    assert result_file_problem(path) == "damaged (step[1] = 0 does not follow 0 (steps must increase))"
    with h5py.File(path, "a") as handle:
        handle["step"][1] = 1000
        handle["actor/srank"][0, 0] = np.nan
    assert result_file_problem(path) == "damaged (actor/srank[0, 0] = nan is not finite)"
    shutil.rmtree(tmp_path)


def test_a_table_changed_after_its_aggregation_is_damaged_and_remade(tmp_path):
    """The figures' own inputs carry a checksum too: a table edited or damaged after aggregation is
    refused by the figure rule and made again by the workflow."""
    from mtrl.files.integrity import file_sha256, table_problem
    from mtrl.study.plan import Scope
    from mtrl.study.remake import files_to_remake

    table = tmp_path / "tables" / "fig4.csv"
    table.parent.mkdir()
    table.write_text("panel,series,step,iqm\nMT10,width 400,500,50.0\n")
    table.with_suffix(".provenance.json").write_text(json.dumps({"table_sha256": file_sha256(table)}))
    scope = Scope("fig4", [], set(), ["fig4"])
    assert table_problem(table) is None and files_to_remake(scope, tmp_path, lambda *_: "") == {}
    table.write_text("panel,series,step,iqm\nMT10,width 400,500,200.0\n")
    assert table_problem(table) == "damaged (its checksum differs from the one its aggregation recorded)"
    assert files_to_remake(scope, tmp_path, lambda *_: "") == {table: f"fig4.csv {table_problem(table)}"}


def test_only_the_files_behind_the_targets_are_forced(tmp_path, monkeypatch):
    """Forced files become Snakemake targets: those of other figures must never be among them."""
    from mtrl.study.plan import targets_scope
    from mtrl.study.remake import files_to_remake, made_by

    monkeypatch.chdir(tmp_path)
    grid = build_grid(load_study(ROOT / "config" / "smoke.yaml"))
    results, figures = Path("results/smoke"), Path("figures/smoke")
    fig7 = targets_scope(["figures/smoke/fig7.pdf"], grid, results, figures)
    assert fig7.figures == ["fig7"] and fig7.runs == grid.runs_of("fig7") and fig7.probed == set(fig7.runs)
    table1 = targets_scope(["table1"], grid, results, figures)  # the rule's name
    assert table1.figures == ["table1"] and table1.runs == grid.runs_of("table1") and not table1.probed
    one = grid.runs_of("fig5")[0]
    run = targets_scope([f"results/smoke/runs/{one}/train.h5"], grid, results, figures)
    assert (run.runs, run.figures, run.probed) == ([one], [], set())
    remake = files_to_remake(fig7, results, lambda path, kind, rid: "missing")
    assert set(remake) == {results / "runs" / rid / "train.h5" for rid in fig7.runs} | {
        results / "tables" / "fig7.csv"
    }
    assert set(made_by(remake, ["aggregate"])) == {results / "tables" / "fig7.csv"}
