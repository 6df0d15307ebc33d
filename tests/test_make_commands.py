"""The make targets around the two README commands: one line where something is missing (`make report`
before any results, `make jax-ratio` without its variables), and every .PHONY target with a rule."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from mtrl.study.report_check import main as report_check
from mtrl.study.report_check import missing_line

ROOT = Path(__file__).resolve().parents[1]


def _make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """make with `install` taken as done (-o): the venv running the tests is the one it would make."""
    return subprocess.run(["make", "-s", "-o", "install", *args], cwd=cwd, capture_output=True, text=True)


def test_every_phony_target_has_a_rule():
    text = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M).group(1).split()
    rules = set(re.findall(r"^([\w-]+):", text, re.M))
    assert {"lint", "clean-smoke"} <= set(phony) and set(phony) <= rules


def test_make_lint_runs_ruffs_check_and_format_check():
    proc = _make("-n", "lint")
    assert proc.stdout.splitlines() == [".venv/bin/ruff check .", ".venv/bin/ruff format --check ."]


def test_make_clean_smoke_removes_what_the_smoke_wrote_and_nothing_else(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path)
    for folder in ("results/smoke/runs", "figures/smoke", "results/runs/mt10", "figures/sub"):
        (tmp_path / folder).mkdir(parents=True)
    for name in ("report-smoke.zip", "report.zip", "figures/fig1.pdf"):
        (tmp_path / name).touch()
    assert _make("clean-smoke", cwd=tmp_path).returncode == 0
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == ["Makefile", "figures", "figures/fig1.pdf", "figures/sub", "report.zip", "results"] + [
        "results/runs",
        "results/runs/mt10",
    ]


def test_make_jax_ratio_without_its_variables_names_them_in_one_line():
    proc = _make("jax-ratio")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == (
        "mtrl: error: make jax-ratio needs AUTHORS_CODE=<checkout of rainx0r/mtrl> JAX_BENCH=<its "
        "jax_update_bench.py> (and JAX_PYTHON=<a Python with their dependencies>, default python)"
    )


def test_a_report_before_any_results_says_what_to_run_first(capsys):
    snakemake_says = "WorkflowError:\nFile figures/fig1.png marked for report but does not exist.\n"
    assert missing_line(snakemake_says, "report.zip", "make smoke") == (
        "mtrl: error: report.zip: no results yet (figures/fig1.png does not exist); run make smoke first, "
        "then this again"
    )
    assert missing_line("WorkflowError: something else", "report.zip", "make smoke") is None
    fails = [sys.executable, "-c", f"import sys; print({snakemake_says!r}, file=sys.stderr); sys.exit(1)"]
    assert report_check(["report.zip", "the study", *fails]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "mtrl: error: report.zip: no results yet (figures/fig1.png does not exist); run the study first, "
        "then this again"
    ]
    other = [sys.executable, "-c", "import sys; print('other trouble', file=sys.stderr); sys.exit(3)"]
    assert report_check(["report.zip", "the study", *other]) == 3
    assert capsys.readouterr().err == "other trouble\n"  # passed through as it is
