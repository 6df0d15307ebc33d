"""The smoke's stated time: benchmarks/smoke_time.py records it, the README states its latest row."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

from tests.workflow_helpers import dry_run, edited_config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "smoke.csv"


def smoke_time():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # smoke_time.py imports its neighbour throughput.py
    spec = importlib.util.spec_from_file_location("smoke_time", ROOT / "benchmarks" / "smoke_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_readme_states_the_smoke_benchmark_row_it_cites_of_the_smoke_as_it_is(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    stated, cited = smoke_time().cited_row(rows(RESULTS), readme)
    assert stated.group(1) == smoke_time().minutes_seconds(float(cited["wall_s"]))
    assert (int(stated.group(2)), int(stated.group(3))) == (int(cited["jobs"]), int(cited["runs"]))
    # the row is of the smoke as it is now: config/smoke.yaml's DAG has those jobs
    assert cited["config"] == "config/smoke.yaml" and cited["cores"] == "2"
    scratch = ("--config", f"results_dir={tmp_path}/results", f"figures_dir={tmp_path}/figures")
    counts = dry_run(ROOT, "--configfile", "config/smoke.yaml", *scratch)
    assert sum(counts.values()) == int(cited["jobs"]) and counts["train"] == int(cited["runs"])
    # what the README says of that machine and run
    assert f"load average {float(cited['load_during']):.1f}" in readme
    assert f"{float(cited['cpu_s']) / 60:.0f} CPU-minutes" in readme


def test_a_new_measurement_leaves_the_readmes_cited_row_and_its_check_as_they_were(tmp_path: Path) -> None:
    """A benchmark run appends a row; the README still cites (and the suite still checks) its own."""
    module = smoke_time()
    readme = (ROOT / "README.md").read_text()
    before = module.cited_row(rows(RESULTS), readme)[1]
    copy = tmp_path / "smoke.csv"
    copy.write_text(RESULTS.read_text())
    newer = {**before, "date": "2099-01-01", "commit": "abc1234+changes", "wall_s": "418.0", "jobs": "61"}
    with open(copy, "a", newline="") as handle:
        csv.DictWriter(handle, fieldnames=module.FIELDS).writerow(newer)
    assert rows(copy)[-1]["date"] == "2099-01-01"
    assert module.cited_row(rows(copy), readme)[1] == before
    # the sentence the script prints for the new row cites that row, and reads back as it
    sentence = module.readme_sentence(newer)
    assert (
        "It takes 6 min 58 s for its 61 jobs" in sentence
        and "the row of 2099-01-01, commit abc1234)" in sentence
    )
    assert module.cited_row(rows(copy), sentence)[1]["wall_s"] == "418.0"
    assert " ".join(module.readme_sentence(before).split()) in " ".join(readme.split())
    with pytest.raises(ValueError, match="0 rows of 2026-11-28, commit 0000000"):
        module.cited_row(
            rows(copy), sentence.replace("2099-01-01, commit abc1234", "2026-11-28, commit 0000000")
        )


def test_a_python_without_snakemake_runs_the_benchmark_with_the_repositorys_venv(tmp_path: Path) -> None:
    module = smoke_time()
    system, repo = tmp_path / "usr" / "bin", tmp_path / "repo"
    system.mkdir(parents=True)
    (system / "python3").touch()
    assert module.venv_python(system / "python3", repo) is None  # no .venv: `make install` first
    venv = repo / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").touch()
    (venv / "snakemake").touch()
    assert module.venv_python(system / "python3", repo) == venv / "python"
    assert module.venv_python(venv / "python", repo) is None  # already the venv's


def test_minutes_seconds() -> None:
    module = smoke_time()
    assert [module.minutes_seconds(s) for s in (0, 59.4, 59.6, 463.2, 3600)] == [
        "0 min 0 s",
        "0 min 59 s",
        "1 min 0 s",
        "7 min 43 s",
        "60 min 0 s",
    ]


@pytest.mark.slow
def test_the_benchmark_times_a_pipeline_from_empty_results_and_records_one_row(tmp_path: Path) -> None:
    """One MT1 run and its figure, through the script as the smoke would go (4 jobs)."""

    def one_run(config):
        config["seeds"] = [0]
        schedule = {key: 1000 for key in ("total_steps", "eval_every", "checkpoint_every", "log_every")}
        config["task_set_defaults"]["mt1"] = {**schedule, "warmup_steps_per_task": 500}  # 2 episodes
        config["figures"] = {"fig4": [{"panel": "MT1", "series": "width 32", "task_set": "mt1", "width": 32}]}

    config = edited_config(ROOT / "config" / "smoke.yaml", tmp_path / "one.yaml", one_run)
    out, scratch = tmp_path / "smoke.csv", tmp_path / "scratch"
    (scratch / "results").mkdir(parents=True)
    (scratch / "results" / "stale").write_text("emptied first")
    module = smoke_time()
    args = ["--configfile", str(config), "--scratch", str(scratch), "--out", str(out), "--cores", "1"]
    assert module.main(args) == 0
    (row,) = rows(out)
    assert list(row) == module.FIELDS
    assert (row["jobs"], row["runs"], row["cores"], row["cache"]) == ("4", "1", "1", "cold")
    assert float(row["wall_s"]) > 0 and float(row["cpu_s"]) > 0 and float(row["load_during"]) >= 0
    assert row["config"] == str(config) and int(row["cpu_count"]) >= 1 and row["cpu_model"]
    assert not (scratch / "results" / "stale").exists()  # from empty results
    assert (scratch / "figures" / "fig4.png").stat().st_size > 5_000
    run = scratch / "results" / "runs" / "mt1-reach" / "mtmhsac" / "a32-c32-d3" / "s0"
    assert (run / "train.h5").exists()
    # a failed pipeline records nothing and says so in one line
    broken = edited_config(config, tmp_path / "broken.yaml", lambda c: c.update(bootstrap_rep=1))
    assert module.main(["--configfile", str(broken), "--scratch", str(scratch), "--out", str(out)]) != 0
    assert len(rows(out)) == 1
