"""The smoke's stated time: benchmarks/smoke_time.py records it, the README states its latest row."""

from __future__ import annotations

import csv
import importlib.util
import re
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


def test_the_readme_states_the_latest_smoke_benchmark_of_the_smoke_as_it_is(tmp_path: Path) -> None:
    latest = rows(RESULTS)[-1]
    readme = (ROOT / "README.md").read_text()
    stated = re.search(r"It takes (\d+ min \d+ s) for its (\d+) jobs \((\d+) training runs\)", readme)
    assert stated, "README: the smoke's time, as benchmarks/smoke_time.py prints it"
    assert stated.group(1) == smoke_time().minutes_seconds(float(latest["wall_s"]))
    assert (int(stated.group(2)), int(stated.group(3))) == (int(latest["jobs"]), int(latest["runs"]))
    # the row is of the smoke as it is now: config/smoke.yaml's DAG has those jobs
    assert latest["config"] == "config/smoke.yaml" and latest["cores"] == "2"
    scratch = ("--config", f"results_dir={tmp_path}/results", f"figures_dir={tmp_path}/figures")
    counts = dry_run(ROOT, "--configfile", "config/smoke.yaml", *scratch)
    assert sum(counts.values()) == int(latest["jobs"]) and counts["train"] == int(latest["runs"])
    # what the README says of that machine and run
    assert f"load average {float(latest['load_during']):.1f}" in readme
    assert f"{float(latest['cpu_s']) / 60:.0f} CPU-minutes" in readme


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
