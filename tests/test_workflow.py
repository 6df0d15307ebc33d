"""The Snakemake workflow: exact job counts of the full grid, reruns limited to what a change
invalidates, code hashes, runtime plans, provenance checks, lint, bad config, and the smoke
pipeline end to end producing every figure."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import pandas as pd
import pytest

from mtrl.config.settings import TrainConfig
from mtrl.files.provenance import (
    CODE_GROUPS,
    code_hash,
    figure_code_hash,
    identity,
    normalized_source,
    source_hash,
    table_code_hash,
)
from mtrl.study.runtime import COLUMNS, Row, Setting, estimate, load_table, plan
from mtrl.study.status import run_status, stale_inputs
from tests.workflow_helpers import (
    ROOT,
    comment_before,
    copy_workflow,
    dry_run,
    edited_config,
    edited_in_place,
    scheduled_train_runs,
    snakemake,
)

FIGURES = ["fig1", "fig4", "fig5", "fig6", "fig7", "fig9", "fig10", "fig11", "fig12"]
FIG5_TITLE = "Where does scale matter most? Actor / critic widths"  # in fig5's declaration (mtrl/figures.py)


def test_full_grid_dry_run_schedules_exactly_the_study(tmp_path):
    # Grid points, 10 seeds each: MT10 5 widths (256-4096, the published figures) + the default width
    # 400 + 3 archs + 3 matched + 4 new actor/critic pairs (1024/1024 is in the sweep) + 2 depth-4
    # points each for MOORE and PaCo = 20; MT50 5 widths + 400 + SM, PaCo, MOORE + 3 matched = 12;
    # MT25 5 widths; Table 1's SM on v1 rewards with task weights, its own run = 1.
    # Probing only where a figure needs plasticity: the three width sweeps (5 + 5 + 5).
    where = ("--config", f"results_dir={tmp_path}/results", f"figures_dir={tmp_path}/figures")
    counts = dry_run(ROOT, *where)
    assert counts == {"train": 380, "probe": 150, "aggregate": 10, "figure": 9, "table1": 1, "all": 1}
    # the extensions (config/extensions.yaml) add width 8192 on MT10 and MT50: 20 runs, each probed
    extended = dry_run(ROOT, "--configfile", "config/config.yaml", "config/extensions.yaml", *where)
    assert extended == {"train": 400, "probe": 170, "aggregate": 10, "figure": 9, "table1": 1, "all": 1}


def test_one_figure_target_schedules_only_its_runs(tmp_path):
    counts = dry_run(
        ROOT,
        f"{tmp_path}/figures/fig7.pdf",
        "--config",
        f"results_dir={tmp_path}/results",
        f"figures_dir={tmp_path}/figures",
    )
    assert counts == {
        "train": 150,
        "probe": 150,
        "aggregate": 1,
        "figure": 1,
    }  # widths 256-4096 x 3 task sets


def test_lint_is_clean():
    proc = snakemake(ROOT, "--lint")
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


def test_bad_config_fails_before_any_job_naming_the_key(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    bad = edited_config(
        workdir / "config" / "smoke.yaml",
        workdir / "bad.yaml",
        lambda c: c["figures"]["fig5"][1].update(critic_width=0),
    )
    proc = snakemake(workdir, "--dry-run", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert "critic_width" in proc.stdout + proc.stderr and "fig5" in proc.stdout + proc.stderr
    wrong_key = edited_config(
        workdir / "config" / "smoke.yaml", workdir / "typo.yaml", lambda c: c.update(bootstrap_rep=10)
    )
    proc = snakemake(workdir, "--dry-run", "--configfile", str(wrong_key), check=False)
    assert proc.returncode != 0 and "bootstrap_rep" in proc.stdout + proc.stderr


def test_the_smoke_report_holds_every_figure_as_pdf_and_png_and_table1(smoke, tmp_path):
    import zipfile

    workdir, _ = smoke
    report = tmp_path / "report-smoke.zip"
    snakemake(workdir, "--configfile", "config/smoke.yaml", "--report", str(report))
    held = {Path(name).name for name in zipfile.ZipFile(report).namelist()}
    wanted = {f"{name}{suffix}" for name in FIGURES for suffix in (".pdf", ".png")}
    assert wanted | {"table1.csv", "table1.md"} <= held, sorted(wanted - held)


@pytest.mark.slow
def test_smoke_pipeline_draws_every_figure(smoke):
    workdir, proc = smoke
    # no job, local or on SLURM, ended with a traceback (printed by Snakemake or in the job's log)
    assert "Traceback" not in proc.stdout + proc.stderr
    logs = [*(workdir / "results" / "smoke" / "logs").rglob("*.log")]
    logs += (workdir / ".snakemake").rglob("*.log")  # SLURM's job logs
    assert not [str(log) for log in logs if "Traceback" in log.read_text()]
    # no noise: a script rule's "Shell command: None", rliable's absl lines in the aggregate jobs
    assert "Shell command: None" not in proc.stdout + proc.stderr
    assert not [str(log) for log in logs if "Calculating estimates" in log.read_text()]
    assert "Calculating estimates" not in proc.stdout + proc.stderr
    figures = workdir / "figures" / "smoke"
    for name in FIGURES:
        for suffix in (".pdf", ".png"):
            assert (figures / f"{name}{suffix}").stat().st_size > 5_000, name + suffix
    table1 = (figures / "table1.md").read_text()
    assert "MOORE" in table1 and "88.7" in table1
    tables = workdir / "results" / "smoke" / "tables"
    fig4 = pd.read_csv(tables / "fig4.csv")
    assert set(fig4["panel"]) == {"MT10", "MT50"}
    assert (fig4["n_runs"] == 1).all() and fig4["step"].min() == 0
    assert fig4["iqm"].between(0, 100).all()
    fig7 = pd.read_csv(tables / "fig7.csv")
    assert set(fig7["series"]) == {"MT10", "MT25", "MT50"} and fig7["mean"].between(0, 100).all()
    fig1 = pd.read_csv(tables / "fig1.csv")
    assert {"SM", "PaCo", "MOORE", "MTMHSAC"} <= set(fig1["series"]) and (fig1["params"] > 0).all()


@pytest.mark.slow
def test_smoke_rerun_changes_only_what_an_edit_invalidates(smoke, tmp_path):
    workdir, _ = smoke
    smoke_config = workdir / "config" / "smoke.yaml"
    assert dry_run(workdir, "--configfile", "config/smoke.yaml") == {}

    # one width in fig5 (a pair no other figure uses): its run, fig5's table and figure
    def narrower_critic(config):
        config["figures"]["fig5"][2]["critic_width"] = 24

    with edited_in_place(smoke_config, narrower_critic):  # the same study (its results folder's)
        assert dry_run(workdir, *SMOKE) == {"train": 1, "aggregate": 1, "figure": 1, "all": 1}

    # a longer MT25 schedule: its 2 runs are retrained and re-probed; only fig7 depends on them
    def longer_mt25(config):
        config["task_set_defaults"]["mt25"].update(total_steps=25000, checkpoint_every=12500, log_every=12500)

    with edited_in_place(smoke_config, longer_mt25):
        assert dry_run(workdir, *SMOKE) == {"train": 2, "probe": 2, "aggregate": 1, "figure": 1, "all": 1}

    # two more seeds for the MT25 series: 2 widths x 2 new seeds
    def more_seeds(config):
        config["figures"]["fig7"][1]["seeds"] = [0, 1, 2]

    with edited_in_place(smoke_config, more_seeds):
        assert dry_run(workdir, *SMOKE) == {"train": 4, "probe": 4, "aggregate": 1, "figure": 1, "all": 1}


@pytest.mark.slow
def test_smoke_code_changes_rerun_their_rules_only(smoke):
    workdir, _ = smoke
    registry = workdir / "mtrl" / "figures.py"
    original = registry.read_text()
    try:
        registry.write_text(comment_before(original, FIG5_TITLE))  # a comment changes nothing
        assert dry_run(workdir, "--configfile", "config/smoke.yaml") == {}
        registry.write_text(original.replace(FIG5_TITLE, "Actor or critic?"))  # fig5's plot: redrawn
        assert dry_run(workdir, "--configfile", "config/smoke.yaml") == {"figure": 1, "all": 1}
    finally:
        registry.write_text(original)
    sac = workdir / "mtrl" / "agents" / "sac.py"
    original = sac.read_text()
    try:
        sac.write_text(original + "\nUNUSED_CONSTANT = 1\n")  # the training code: everything downstream
        counts = dry_run(workdir, "--configfile", "config/smoke.yaml")
        assert counts["train"] == 26 and counts["probe"] == 7 and counts["figure"] == 9
    finally:
        sac.write_text(original)


def make_command(target: str) -> list[str]:
    """The command `make TARGET` runs (its last line: the ones before install the venv if needed)."""
    venv = f"VENV={Path(sys.executable).parent.parent}"
    out = subprocess.run(
        ["make", "-s", "-n", target, venv], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1].split()


def test_make_report_commands_for_the_study_and_the_smoke_and_their_files_are_not_committed():
    assert make_command("report")[1:] == ["--report", "report.zip"]
    assert make_command("smoke-report")[1:] == [
        "--configfile",
        "config/smoke.yaml",
        "--report",
        "report-smoke.zip",
    ]
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "report.zip", "report-smoke.zip"], cwd=ROOT, capture_output=True
    )
    assert ignored.stdout.decode().split() == ["report.zip", "report-smoke.zip"]


@pytest.mark.slow
def test_smoke_report_holds_the_figures(smoke):
    """`make smoke-report`'s command, after the smoke pipeline (README: make smoke, make smoke-report)."""
    workdir, _ = smoke
    command = make_command("smoke-report")
    assert Path(command[0]).name == "snakemake"
    snakemake(workdir, *command[1:])
    import zipfile

    names = zipfile.ZipFile(workdir / "report-smoke.zip").namelist()
    assert any(n.endswith("fig7.png") for n in names) and any(n.endswith("table1.md") for n in names)


# ---------------------------------------------------------------- code hashes
def test_code_hash_is_over_the_code_text_not_the_python_versions_ast(tmp_path):
    (tmp_path / "pkg").mkdir()
    module = tmp_path / "pkg" / "mod.py"
    module.write_text('"""Doc."""\n\nx = 1  # why\n\n\ndef f():\n    """Doc."""\n    return x   \n')
    want = hashlib.sha256(b"pkg/mod.py\0" + b"x = 1\ndef f():\n    return x\n\0").hexdigest()[:16]
    assert source_hash(["pkg/*.py"], tmp_path) == want  # plain text: the same under every Python
    before = module.stat().st_mtime_ns
    os.utime(module, ns=(before + 10**9, before + 10**9))  # a touch (or a checkout) changes nothing
    assert source_hash(["pkg/*.py"], tmp_path) == want
    module.write_text(module.read_text().replace("x = 1", "x = 2"))
    assert source_hash(["pkg/*.py"], tmp_path) != want


def test_a_definition_subset_hashes_only_those_definitions():
    text = "import os\n\nA = 1\n\n\ndef read():\n    return A\n\n\ndef write():\n    return os.sep\n"
    assert normalized_source(text, ["write"]) == "import os\ndef write():\n    return os.sep\n"
    with pytest.raises(KeyError, match="missing"):
        normalized_source(text, ["missing"])


def test_a_registry_entry_hashes_its_expression_and_the_definitions_it_names():
    text = (
        "import os\n\nA = 1\nB = 2\n\n\ndef helper():\n    return A\n\n\n"
        'D = {\n    "x": f(\n        t=B,\n        p=g(  # why\n            helper\n        ),\n    ),\n'
        '    "y": f(t=B, p=A),\n}\n'
    )
    want = "import os\nA = 1\ndef helper():\n    return A\ng(\n            helper\n        )\n"
    assert normalized_source(text, ["D[x].p"]) == want
    assert normalized_source(text, ["D[y].t"]) == "import os\nB = 2\nB\n"
    with pytest.raises(KeyError, match=r"D\[z\]\.p"):
        normalized_source(text, ["D[z].p"])


def test_each_rule_hashes_what_its_jobs_run(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    before = {group: code_hash(group, work) for group in CODE_GROUPS}
    figures = {f: figure_code_hash(f, work) for f in ("fig4", "fig5", "fig11")}
    tables = {f: table_code_hash(f, work) for f in ("fig5", "fig11", "fig12")}
    results = work / "mtrl" / "files" / "result_files.py"
    original = results.read_text()
    # the reader of train.h5 is aggregation code: editing it does not retrain anything
    results.write_text(
        original.replace(
            "def read_train_h5(path: str | Path) -> TrainResult:",
            "def read_train_h5(path: str | Path) -> TrainResult:\n    path = str(path)",
        )
    )
    after = {group: code_hash(group, work) for group in CODE_GROUPS}
    assert after["train"] == before["train"] and after["probe"] == before["probe"]
    assert after["aggregate"] != before["aggregate"]
    results.write_text(
        original.replace("    write_atomic_h5(path, fill)\n", "    write_atomic_h5(Path(path), fill)\n", 1)
    )
    assert code_hash("train", work) != before["train"]
    results.write_text(original)
    # the rule scripts are part of their rule's code
    script = work / "workflow" / "scripts" / "train.py"
    script.write_text(script.read_text() + "\nUNUSED = 1\n")
    assert code_hash("train", work) != before["train"] and code_hash("probe", work) == before["probe"]
    # one figure's plot declaration in the registry is that figure's drawing code only
    registry = work / "mtrl" / "figures.py"
    declared = registry.read_text()
    registry.write_text(comment_before(declared, FIG5_TITLE))  # a comment is no code
    assert figure_code_hash("fig5", work) == figures["fig5"]
    registry.write_text(declared.replace(FIG5_TITLE, "Actor or critic?"))
    assert figure_code_hash("fig5", work) != figures["fig5"]
    assert figure_code_hash("fig4", work) == figures["fig4"]
    assert table_code_hash("fig5", work) == tables["fig5"]
    # its table declaration is that figure's table code only
    registry.write_text(declared.replace('"network": "actor"}', '"network": "critic0"}'))
    assert (
        table_code_hash("fig11", work) != tables["fig11"]
        and table_code_hash("fig12", work) == tables["fig12"]
    )
    assert figure_code_hash("fig11", work) == figures["fig11"]
    # what several declarations name, and the shared plot code, belong to each of those figures
    registry.write_text(declared.replace('"ylim": (0, 100)', '"ylim": (0, 101)'))
    assert (
        figure_code_hash("fig4", work) != figures["fig4"]
        and figure_code_hash("fig5", work) != figures["fig5"]
    )
    assert figure_code_hash("fig11", work) == figures["fig11"]
    registry.write_text(declared)
    shared = work / "mtrl" / "plots" / "_common.py"
    shared.write_text(shared.read_text() + "\nUNUSED = 1\n")
    assert all(figure_code_hash(f, work) != figures[f] for f in figures)


# ---------------------------------------------------------------- runtime plans
def _rows(device="NVIDIA H100"):
    fast, cpu = Setting("graph", "tf32", False), Setting("eager", "float32", False)  # auto on each
    return [
        Row(device, "mt10", "mtmhsac", 400, 400, 3, fast, 4000.0),
        Row(device, "mt10", "mtmhsac", 1600, 1600, 3, fast, 1000.0),
        Row("cpu", "mt50", "mtmhsac", 400, 400, 3, cpu, 100.0),
    ]


def test_runtime_is_interpolated_from_measured_rows_of_the_device():
    mid = TrainConfig.from_dict({"actor_width": 800, "critic_width": 800})
    est = estimate(mid, _rows(), "NVIDIA H100")
    assert est.measured and "interpolated" in est.basis
    assert est.transitions_per_s == pytest.approx(2000.0)  # log-log halfway between 400 and 1600
    assert est.minutes == pytest.approx(20_000_000 / 2000 / 60)
    wide = TrainConfig.from_dict({"actor_width": 6400, "critic_width": 6400})
    assert estimate(wide, _rows(), "NVIDIA H100").transitions_per_s == pytest.approx(250.0)
    mt50 = TrainConfig.from_dict(
        {
            "task_set": "mt50",
            "total_steps": 100_000_000,
            "eval_every": 1_000_000,
            "checkpoint_every": 1_000_000,
            "log_every": 1_000_000,
        }
    )
    est = estimate(mt50, _rows(), "NVIDIA H100")
    assert not est.measured and "NOT MEASURED" in est.basis


def test_long_runs_take_several_capped_attempts():
    resources = {
        "runtime_device": "NVIDIA H100",
        "max_runtime_minutes": 2880,
        "signal_minutes": 10,
        "runtime_safety": 1.5,
    }
    wide = TrainConfig.from_dict({"actor_width": 6400, "critic_width": 6400})
    p = plan(wide, _rows(), resources)  # 20e6 / 250 per s = 1333 min, x1.5 = 2000 min: one job
    # the limit leaves the signal margin after the planned work, so a job that fits is never stopped
    assert (p.attempts, p.minutes(1), p.minutes(2)) == (1, 2010, 2880)
    tiny = plan(TrainConfig.from_dict({"actor_width": 16, "critic_width": 16}), _rows(), resources)
    assert tiny.minutes(1) - resources["signal_minutes"] >= 10  # not signalled at once
    long = TrainConfig.from_dict({"actor_width": 6400, "critic_width": 6400, "total_steps": 100_000_000})
    p = plan(long, _rows(), resources)  # 10,000 min planned: 4 jobs of at most 2 days
    assert p.attempts == 4 and {p.minutes(a) for a in (1, 2, 3, 4)} == {2880}


def test_shipped_runtime_table_has_the_agreed_columns():
    rows = load_table(ROOT / "benchmarks" / "results" / "runtime.csv")
    assert rows and all(r.transitions_per_s > 0 for r in rows)
    header = (ROOT / "benchmarks" / "results" / "runtime.csv").read_text().splitlines()[0]
    assert (
        header
        == ",".join(COLUMNS)
        == (
            "device,task_set,arch,actor_width,critic_width,depth,update_mode,matmul_precision,overlap,"
            "transitions_per_s,measured_on,source"
        )
    )


def test_full_grid_jobs_fit_a_partition_and_say_what_is_not_measured(tmp_path):
    proc = snakemake(
        ROOT,
        "--dry-run",
        "--cores",
        "64",
        "--config",
        f"results_dir={tmp_path}/results",
        f"figures_dir={tmp_path}/figures",
    )
    text = proc.stdout + proc.stderr
    plan = [line for line in text.splitlines() if line.startswith("mtrl: ")]
    assert plan[0].startswith("mtrl: plan for the whole study: 380 runs, 0 complete; the 380 to train take ~")
    assert (
        "GPU-hours on NVIDIA H100 80GB HBM3 (CUDA-graph updates, tf32 matmuls, the authors' step order)"
        in plan[0]
    )
    assert plan[1].startswith("mtrl: NOT MEASURED on NVIDIA H100 80GB HBM3 for 220 of them")
    runtimes = [int(m) for m in re.findall(r"runtime=(\d+)", text)]
    assert len(runtimes) >= 380 + 150 and max(runtimes) <= 2880
    by_run = {}
    for block in re.split(r"\n(?=rule \w+:)", text):
        if block.startswith("rule probe:"):
            threads = re.search(r"threads: (\d+)", block)
            run = re.search(r"wildcards: run=(\S+)", block).group(1)
            by_run[run] = (
                int(threads.group(1)) if threads else 1,
                int(re.search(r"mem_mb=(\d+)", block).group(1)),
            )
    small, large = by_run["mt50/mtmhsac/a256-c256-d3/s0"], by_run["mt50/mtmhsac/a4096-c4096-d3/s0"]
    assert large[0] > small[0] and large[1] > 4 * small[1]  # an SVD of width 4096 is a big job


# ---------------------------------------------------------------- provenance checks
def _fake_run(run_dir, identity_json, code):
    from mtrl.files.result_files import provenance_attrs
    from tests.fixtures_results import write_fake_train

    path = write_fake_train(run_dir, [[0.5, 0.5]])
    provenance_attrs(path, {"provenance_identity": identity_json, "provenance_code": code})


def test_outputs_of_other_settings_or_code_are_stale_and_refused(tmp_path):
    ident = json.dumps({"actor_width": 64, "seed": 0})
    _fake_run(tmp_path / "a", ident, "c0de")
    _fake_run(tmp_path / "b", json.dumps({"actor_width": 32, "seed": 0}), "c0de")
    _fake_run(tmp_path / "c", ident, "01d")
    assert run_status("a", tmp_path / "a", ident, "c0de").state == "complete"
    b = run_status("b", tmp_path / "b", ident, "c0de")
    assert b.state == "stale" and "actor_width 32 -> 64" in b.detail
    assert run_status("c", tmp_path / "c", ident, "c0de").state == "stale"
    assert run_status("d", tmp_path / "d", ident, "c0de").state == "missing"
    expected = {"runs": {str(tmp_path / k): ident for k in "abc"}, "train_code": "c0de", "probe_code": "p"}
    problems = stale_inputs(expected, plasticity=False)
    assert [p.run_id for p in problems] == [str(tmp_path / "b"), str(tmp_path / "c")]
    assert not any(p.damaged for p in problems)


# ---------------------------------------------------------------- config and profile traps
def test_both_profile_spellings_work_from_the_repo_root(tmp_path):
    # the README's set-up: the profile linked where Snakemake looks for profiles by name
    (tmp_path / "xdg" / "snakemake").mkdir(parents=True)
    (tmp_path / "xdg" / "snakemake" / "slurm").symlink_to(ROOT / "profiles" / "slurm")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    where = ["--config", f"results_dir={tmp_path}/results", f"figures_dir={tmp_path}/figures"]
    for profile in ("slurm", "profiles/slurm"):
        proc = snakemake(ROOT, f"{tmp_path}/figures/fig7.pdf", "--profile", profile, "-n", *where, env=env)
        text = proc.stdout + proc.stderr
        assert "train          150" in text and "workflow specific profile profiles/default" in text, profile


def test_a_config_file_without_figures_is_refused_not_merged_with_the_papers(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    no_figures = edited_config(
        workdir / "config" / "smoke.yaml", workdir / "nf.yaml", lambda c: c.pop("figures")
    )
    proc = snakemake(workdir, "--dry-run", "--configfile", str(no_figures), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "figures: the config file given has no `figures` section" in text
    # a study of one figure is that figure only, not the paper's grid with it
    one = edited_config(
        workdir / "config" / "smoke.yaml",
        workdir / "one.yaml",
        lambda c: c.update(figures={"fig5": c["figures"]["fig5"][:1]}),  # one run: seed 0
    )
    assert dry_run(workdir, "--configfile", str(one)) == {"train": 1, "aggregate": 1, "figure": 1, "all": 1}


def test_config_errors_are_short_and_name_where_the_value_lives(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    bad = edited_config(
        workdir / "config" / "smoke.yaml",
        workdir / "bad.yaml",
        lambda c: c["task_set_defaults"]["mt10"].update(total_steps=12345),
    )
    proc = snakemake(workdir, "--dry-run", "--configfile", str(bad), check=False)
    text = proc.stdout + proc.stderr
    lines = [line for line in text.splitlines() if "mtrl: error" in line]
    assert proc.returncode != 0 and len(lines) == 1, text
    assert "task_set_defaults.mt10.total_steps: must be a positive multiple of 5000" in lines[0]
    typo = edited_config(
        workdir / "config" / "smoke.yaml", workdir / "typo.yaml", lambda c: c.update(seeds="0")
    )
    proc = snakemake(workdir, "--dry-run", "--configfile", str(typo), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "mtrl: error: seeds: '0' is not of type 'array'" in text
    assert "$schema" not in text and "patternProperties" not in text and len(text.splitlines()) < 8


BAD_STUDIES = {
    "an empty width list": (
        lambda c: c["figures"]["fig4"][0].update(width=[]),
        "figures.fig4[0] (width {actor_width}).width: an empty list: the series would have no runs",
    ),
    "a typo in a series template": (
        lambda c: c["figures"]["fig4"][0].update(series="width {actr_width}"),
        "figures.fig4[0] (width {actr_width}).series: {actr_width} in 'width {actr_width}' is not a run",
    ),
    "no figures": (lambda c: c.update(figures={}), "figures: no figures to make"),
    "a key given twice": (lambda c: None, "key 'seeds' given twice"),
}


@pytest.mark.parametrize("case", BAD_STUDIES)
def test_a_bad_study_stops_the_workflow_in_one_line_before_any_job(case, tmp_path):
    """Before, `width: []` dry-ran fine and the real run died in aggregation (89 lines), and a
    template typo was a KeyError in common.smk naming neither the figure nor the series."""
    edit, needle = BAD_STUDIES[case]
    path = edited_config(ROOT / "config" / "smoke.yaml", tmp_path / "bad.yaml", edit)
    if case == "a key given twice":  # Snakemake would keep the second value
        path.write_text(path.read_text() + "seeds: [0]\n")
    proc = snakemake(ROOT, "--dry-run", "--configfile", str(path), check=False)
    text = proc.stdout + proc.stderr
    lines = [line for line in text.splitlines() if "mtrl: error" in line]
    assert proc.returncode != 0 and len(lines) == 1 and needle in lines[0], text
    assert "Traceback" not in text


def test_a_train_h5_that_is_not_whole_is_trained_again(tmp_path):
    """Its datasets gone, its attributes (provenance) left: before, it counted as done forever."""
    from mtrl.files.result_files import provenance_attrs
    from mtrl.study.grid import build_grid
    from mtrl.study.status import load_study
    from tests.fixtures_results import write_fake_train

    workdir = copy_workflow(tmp_path / "wf")
    config = edited_config(
        workdir / "config" / "smoke.yaml",
        workdir / "one.yaml",
        lambda c: c.update(figures={"fig5": c["figures"]["fig5"][:1]}),
    )
    run_id, run = next(iter(build_grid(load_study(config)).runs.items()))
    path = write_fake_train(workdir / "results" / "smoke" / "runs" / run_id, [[0.5] * 10])
    ident = json.dumps(identity(run.to_dict()), sort_keys=True)
    provenance_attrs(path, {"provenance_identity": ident, "provenance_code": code_hash("train", workdir)})
    target = f"results/smoke/runs/{run_id}/train.h5"
    assert dry_run(workdir, target, "--configfile", str(config)) == {}
    with h5py.File(path, "a") as handle:
        del handle["eval"], handle["train"]
    assert dry_run(workdir, target, "--configfile", str(config)) == {"train": 1}


# ---------------------------------------------------------------- reruns on the smoke results
SMOKE = ("--configfile", "config/smoke.yaml")


@pytest.mark.slow
def test_smoke_touching_or_execution_settings_rerun_nothing(smoke, tmp_path):
    workdir, _ = smoke
    for folder in ("mtrl", "workflow", "config", "profiles", "envs", "benchmarks"):
        for path in (workdir / folder).rglob("*"):
            os.utime(path)  # a fresh checkout: every source file newer than every result
    os.utime(workdir / "Snakefile")
    assert dry_run(workdir, *SMOKE) == {}

    def execution_settings(config):
        config["run_defaults"].update(vector_strategy="async", torch_threads=2)

    with edited_in_place(workdir / "config" / "smoke.yaml", execution_settings):
        assert dry_run(workdir, *SMOKE) == {}


@pytest.mark.slow
def test_smoke_an_architecture_setting_reruns_that_architecture_only(smoke, tmp_path):
    workdir, _ = smoke

    # PaCo's number of parameter sets, set for all runs: the PaCo runs and the MTMHSAC runs whose
    # width is matched to PaCo's size (new widths), nothing else of MTMHSAC, SM or MOORE
    def paco_k(config):
        config["run_defaults"]["paco_k"] = 3

    with edited_in_place(workdir / "config" / "smoke.yaml", paco_k):
        assert scheduled_train_runs(workdir, *SMOKE) == {
            "mt10/paco/a32-c32-d3/s0",
            "mt50/paco/a32-c32-d3/s0",
            "mt10/mtmhsac/a47-c47-d3/s0",  # matched to PaCo (fig1)
            "mt10/mtmhsac/a42-c42-d4/s0",  # matched to PaCo at depth 4 (fig9, fig10)
            "mt10/mtmhsac/a42-c42-d4-skip/s0",
        }

    # an SM-only size: the SM runs (fig1's on v2 rewards on MT10 and MT50, table 1's on v1) and the
    # MTMHSAC run matched to SM's size; only fig1 and table 1 are redone
    def sm_size(config):
        config["run_defaults"]["sm_module_width"] = 8

    with edited_in_place(workdir / "config" / "smoke.yaml", sm_size):
        assert scheduled_train_runs(workdir, *SMOKE) == {
            "mt10/sm/a32-c32-d3/s0",
            "mt10/sm/a32-c32-d3-rewv1-use_task_weightsTrue/s0",
            "mt10/mtmhsac/a21-c21-d3/s0",
            "mt50/sm/a32-c32-d3/s0",  # Fig. 1's MT50 SM point (4 x 4 modules)
        }
        assert dry_run(workdir, *SMOKE) == {"train": 4, "aggregate": 2, "figure": 1, "table1": 1, "all": 1}


@pytest.mark.slow
def test_smoke_reader_code_reruns_aggregation_not_training(smoke):
    workdir, _ = smoke
    results = workdir / "mtrl" / "files" / "result_files.py"
    original = results.read_text()
    try:
        results.write_text(
            original.replace(
                "def read_train_h5(path: str | Path) -> TrainResult:\n",
                "def read_train_h5(path: str | Path) -> TrainResult:\n    path = str(path)\n",
            )
        )
        assert dry_run(workdir, *SMOKE) == {"aggregate": 10, "figure": 9, "table1": 1, "all": 1}
    finally:
        results.write_text(original)


@pytest.mark.slow
def test_smoke_changed_training_code_is_found_without_snakemake_records(smoke):
    workdir, _ = smoke
    sac = workdir / "mtrl" / "agents" / "sac.py"
    original = sac.read_text()
    records = workdir / ".snakemake"
    shutil.move(records, workdir / "records.bak")
    try:
        assert dry_run(workdir, *SMOKE) == {}
        sac.write_text(original + "\nUNUSED_CONSTANT = 1\n")
        expected = {"train": 26, "probe": 7, "aggregate": 10, "figure": 9, "table1": 1, "all": 1}
        assert dry_run(workdir, *SMOKE) == expected
        status = snakemake_free_status(workdir)
        assert "0 complete, 0 in progress, 26 stale, 0 missing of 26 runs" in status
        sac.write_text(original)
        assert dry_run(workdir, *SMOKE) == {}
        assert "26 complete, 0 in progress, 0 stale, 0 missing of 26 runs" in snakemake_free_status(workdir)
    finally:
        sac.write_text(original)
        shutil.rmtree(records, ignore_errors=True)
        shutil.move(workdir / "records.bak", records)


def snakemake_free_status(workdir) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "mtrl.cli", "status", "--configfile", "config/smoke.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(workdir)},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_smoke_aggregation_refuses_stale_runs_naming_them(smoke):
    workdir, _ = smoke
    sac = workdir / "mtrl" / "agents" / "sac.py"
    original = sac.read_text()
    only_aggregate = ("--allowed-rules", "aggregate", "--forcerun", "aggregate", "--cores", "1")
    try:
        sac.write_text(original + "\nUNUSED_CONSTANT = 1\n")  # the runs are now of older training code
        proc = snakemake(workdir, "results/smoke/tables/fig5.csv", *only_aggregate, *SMOKE, check=False)
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "mtrl: error: fig5: 5 input run(s) were made by other settings or code" in text
        assert "results/smoke/runs/mt10/mtmhsac/a64-c16-d3/s0: stale train.h5: code" in text
        proc = snakemake(
            workdir, "results/smoke/tables/fig5.csv", *only_aggregate, *SMOKE, "--config", "allow_stale=true"
        )
        provenance = json.loads((workdir / "results/smoke/tables/fig5.provenance.json").read_text())
        assert len(provenance["stale_allowed"]) == 5 and provenance["train_code"] == code_hash(
            "train", workdir
        )
    finally:
        sac.write_text(original)
        snakemake(workdir, "--profile", "profiles/local", *SMOKE)  # back to a consistent state


# ---------------------------------------------------------------- job logs
def test_a_job_ends_without_a_traceback_when_a_library_kept_its_stderr(tmp_path):
    """The rule scripts tee stderr into the job log; absl (imported by rliable in aggregation jobs)
    takes sys.stderr for its log handler and closes it when the interpreter exits."""
    job = (
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'workflow' / 'scripts')!r})\n"
        "from _adapter import logged\n"
        f"with logged({str(tmp_path / 'job.log')!r}):\n"
        "    from absl import logging\n"
        "    logging.warning('Calculating estimates')\n"
        "print('after the job', file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", job], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert "Calculating estimates" in (tmp_path / "job.log").read_text()


def test_a_job_refuses_to_run_another_mtrl_than_its_workflows(tmp_path):
    """A job records its rule's code hash, that of its workflow's mtrl: with another mtrl first on
    the path (here the repository's, for a workflow without one) it stops before doing anything."""
    scripts = tmp_path / "wf" / "workflow" / "scripts"
    scripts.mkdir(parents=True)
    shutil.copy2(ROOT / "workflow" / "scripts" / "_adapter.py", scripts)
    job = (
        f"import sys\nsys.path.insert(0, {str(scripts)!r})\nfrom _adapter import logged\n"
        f"with logged({str(tmp_path / 'job.log')!r}):\n    print('ran')\n"
    )
    proc = subprocess.run([sys.executable, "-c", job], capture_output=True, text=True, timeout=120)
    theirs = tmp_path / "wf" / "mtrl"
    want = f"mtrl: error: {ROOT / 'mtrl'}: the job imports this mtrl, not its workflow's ({theirs})"
    assert proc.returncode == 1 and proc.stderr.startswith(want) and proc.stderr.count("\n") == 1
    assert "ran" not in proc.stdout and (tmp_path / "job.log").read_text() == proc.stderr


def test_a_job_without_mtrl_installed_runs_its_workflows_own(tmp_path):
    """Where mtrl is not installed (Snakemake's conda deployment: envs/mtrl.yaml holds only the
    dependencies), a job imports the mtrl beside its workflow, and runs."""
    workflow = tmp_path / "wf"
    (workflow / "workflow").mkdir(parents=True)
    shutil.copytree(ROOT / "workflow" / "scripts", workflow / "workflow" / "scripts")
    shutil.copytree(ROOT / "mtrl", workflow / "mtrl", ignore=shutil.ignore_patterns("__pycache__"))
    scripts = workflow / "workflow" / "scripts"
    job = (
        f"import sys\nsys.path.insert(0, {str(scripts)!r})\nfrom _adapter import logged\n"
        f"with logged({str(tmp_path / 'job.log')!r}):\n    import mtrl\n    print(mtrl.__file__)\n"
    )
    # -S: no site-packages, so no installed mtrl (nor its editable finder)
    proc = subprocess.run(
        [sys.executable, "-S", "-c", job], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(workflow / "mtrl" / "__init__.py")


# ---------------------------------------------------------------- time limits
@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("MTRL_TEST_SLURM") == "1",
    reason="the same path runs end to end on the SLURM test cluster (tests/test_slurm.py, time limit)",
)
def test_a_job_stops_before_its_time_limit_and_the_next_attempt_resumes(tmp_path, monkeypatch):
    """The rule script asks the trainer to stop signal_minutes before the job's runtime: exit 75 with
    the resume checkpoint written; the next attempt resumes from it and finishes."""
    import logging
    import runpy
    import types

    from tests.conftest import TINY

    scripts = ROOT / "workflow" / "scripts"
    monkeypatch.syspath_prepend(str(scripts))
    run = {**TINY, "total_steps": 6_000, "checkpoint_every": 3_000, "log_every": 1000, "eval_every": 3_000}
    out = tmp_path / "run" / "train.h5"

    def attempt(runtime_minutes):
        job = types.SimpleNamespace(
            log=[str(tmp_path / "train.log")],
            params=types.SimpleNamespace(run=run, code="c0de"),
            config={"train_resources": {"signal_minutes": 1.0}},
            resources=types.SimpleNamespace(runtime=runtime_minutes),
            input=[],
            output=[str(out)],
        )
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            runpy.run_path(str(scripts / "train.py"), init_globals={"snakemake": job})
            return 0
        except SystemExit as exc:
            return exc.code
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)

    assert attempt(1.0 + 1 / 60) == 75  # stop after ~1 s; the run needs 12 episodes
    log = (tmp_path / "train.log").read_text()
    assert "SIGUSR1 received: stopped at step" in log and "Traceback" not in log
    assert (tmp_path / "run" / "checkpoints" / "resume.pt").exists() and not out.exists()
    assert attempt(None) == 0
    assert out.exists() and "resumed" in (tmp_path / "train.log").read_text()


def test_runs_that_share_a_gpu_are_grouped_k_per_slurm_job_asking_for_one_gpu(tmp_path):
    from snakemake.resources import GroupResources
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    from mtrl.study.gpu_share import SHARE_COLUMNS

    table = tmp_path / "gpu_share.csv"  # mt10 MTMHSAC keeps the GPU 30% busy: 3 runs per GPU
    table.write_text(
        ",".join(SHARE_COLUMNS)
        + "\n"
        + "".join(
            f"cpu,mt10,mtmhsac,{w},{w},3,eager,float32,false,10,33,0.3,2026-11-25,test\n" for w in (16, 64)
        )
    )

    def dry(share_table):
        def edit(c):
            c.update(results_dir=f"{tmp_path}/results", figures_dir=f"{tmp_path}/figures")
            c["train_resources"].update(gpu=1, share_table=str(share_table))

        config = edited_config(ROOT / "config" / "smoke.yaml", tmp_path / "config.yaml", edit)
        target = f"{tmp_path}/figures/fig5.pdf"
        proc = snakemake(ROOT, target, "--configfile", str(config), "--profile", "profiles/slurm", "-n")
        return proc.stdout + proc.stderr

    text = dry(table)
    groups = re.findall(r"Group job (\S+) \(jobs in lexicogr. order\):\n(.*?)(?=\n\[|\Z)", text, re.S)
    assert groups and {name for name, _ in groups} == {"gpu_share_k3"}
    sizes = []
    for _, body in groups:
        members = [
            dict(kv.split("=", 1) for kv in line.split(", "))
            for line in re.findall(r"^ {8}resources: (.*)$", body, re.M)
        ]
        assert body.count("    rule train:") == len(members) and all("mt10/mtmhsac" in r for r in re.findall(
            r"wildcards: run=(\S+)", body))  # fmt: skip
        sizes.append(len(members))
        jobs = [
            SimpleNamespace(
                pipe_group=None,
                resources={
                    "_cores": 1,
                    "gpu": int(r["gpu"]),
                    "gres": r["gres"],
                    "mem_mb": int(r["mem_mb"]),
                    "runtime": int(r["runtime"]),
                },  # fmt: skip
            )
            for r in members
        ]
        merged = GroupResources.basic_layered([jobs], _NoLimits(), run_local=False)
        assert merged["mem_mb"] == sum(j.resources["mem_mb"] for j in jobs) and merged["_cores"] == len(jobs)
        assert merged["runtime"] == max(j.resources["runtime"] for j in jobs)
        assert set_gres_string(SimpleNamespace(resources=_Res(merged))).strip() == "--gres=gpu:1"
    assert max(sizes) == 3 and sum(s == 3 for s in sizes) >= len(sizes) - 1
    assert "GPU sharing:" in text and "runs 3 per GPU" in text
    # the shipped table has no CPU rows: every run is its own job with its own GPU
    text = dry(ROOT / "benchmarks" / "results" / "gpu_share.csv")
    assert "Group job" not in text and "gres=gpu:1" not in text and "gpu=1" in text


class _NoLimits(dict):
    def get(self, name):  # a SLURM submission has no global limit on the group's resources
        return SimpleNamespace(value=None)


class _Res(dict):
    __getattr__ = dict.__getitem__
