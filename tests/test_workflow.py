"""The Snakemake workflow: exact job counts of the full grid, reruns limited to what a change
invalidates, lint, bad config, and the smoke pipeline end to end producing every figure."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.workflow_helpers import ROOT, copy_workflow, dry_run, edited_config, snakemake

FIGURES = ["fig1", "fig4", "fig5", "fig6", "fig7", "fig9", "fig10", "fig11", "fig12"]


def test_full_grid_dry_run_schedules_exactly_the_study(tmp_path):
    # Grid points, 10 seeds each: MT10 6 widths + 3 archs + 3 matched + 4 new actor/critic pairs
    # (1024/1024 is in the sweep) + 2 depth-4 points each for MOORE and PaCo = 20; MT50 6 widths +
    # PaCo, MOORE + 2 matched = 10 (no SM on MT50, as in the study); MT25 5 widths; Table 1's SM on
    # v1 rewards, its own run = 1.
    # Probing only where a figure needs plasticity: the three width sweeps (6 + 6 + 5).
    counts = dry_run(ROOT, "--config", f"results_dir={tmp_path}/results", f"figures_dir={tmp_path}/figures")
    assert counts == {"train": 360, "probe": 170, "aggregate": 10, "figure": 9, "table1": 1, "all": 1}


def test_one_figure_target_schedules_only_its_runs(tmp_path):
    counts = dry_run(
        ROOT,
        f"{tmp_path}/figures/fig7.pdf",
        "--config",
        f"results_dir={tmp_path}/results",
        f"figures_dir={tmp_path}/figures",
    )
    assert counts == {"train": 170, "probe": 170, "aggregate": 1, "figure": 1}


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


@pytest.mark.slow
def test_smoke_pipeline_draws_every_figure(smoke):
    workdir, _ = smoke
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

    one_width = edited_config(smoke_config, tmp_path / "one_width.yaml", narrower_critic)
    assert dry_run(workdir, "--configfile", str(one_width)) == {
        "train": 1,
        "aggregate": 1,
        "figure": 1,
        "all": 1,
    }

    # a longer MT25 schedule: its 2 runs are retrained and re-probed; only fig7 depends on them
    def longer_mt25(config):
        config["task_set_defaults"]["mt25"].update(total_steps=25000, checkpoint_every=12500, log_every=12500)

    steps = edited_config(smoke_config, tmp_path / "steps.yaml", longer_mt25)
    expected = {"train": 2, "probe": 2, "aggregate": 1, "figure": 1, "all": 1}
    assert dry_run(workdir, "--configfile", str(steps)) == expected

    # two more seeds for the MT25 series: 2 widths x 2 new seeds
    def more_seeds(config):
        config["figures"]["fig7"][1]["seeds"] = [0, 1, 2]

    seeds = edited_config(smoke_config, tmp_path / "seeds.yaml", more_seeds)
    expected = {"train": 4, "probe": 4, "aggregate": 1, "figure": 1, "all": 1}
    assert dry_run(workdir, "--configfile", str(seeds)) == expected


@pytest.mark.slow
def test_smoke_code_changes_rerun_their_rules_only(smoke):
    workdir, _ = smoke
    plot = workdir / "mtrl" / "plots" / "fig5.py"
    original = plot.read_text()
    try:
        plot.write_text(original + "\n# a comment changes nothing\n")
        assert dry_run(workdir, "--configfile", "config/smoke.yaml") == {}
        plot.write_text(original + "\nUNUSED_CONSTANT = 1\n")  # real code: every figure is redrawn
        assert dry_run(workdir, "--configfile", "config/smoke.yaml") == {"figure": 9, "all": 1}
    finally:
        plot.write_text(original)
    sac = workdir / "mtrl" / "agents" / "sac.py"
    original = sac.read_text()
    try:
        sac.write_text(original + "\nUNUSED_CONSTANT = 1\n")  # the training code: everything downstream
        counts = dry_run(workdir, "--configfile", "config/smoke.yaml")
        assert counts["train"] == 24 and counts["probe"] == 7 and counts["figure"] == 9
    finally:
        sac.write_text(original)


@pytest.mark.slow
def test_smoke_report_holds_the_figures(smoke, tmp_path):
    workdir, _ = smoke
    report = tmp_path / "report.zip"
    snakemake(workdir, "--configfile", "config/smoke.yaml", "--report", str(report))
    import zipfile

    names = zipfile.ZipFile(report).namelist()
    assert any(n.endswith("fig7.png") for n in names) and any(n.endswith("table1.md") for n in names)
