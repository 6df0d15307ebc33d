"""benchmarks/parity.py: the authors' IQM and the verdict's statistics on known samples; our side's
runs through parity.py's own code path at a toy size (MT1), its CSV columns and rows, and a rerun
that skips finished runs; the authors' side the same way where AUTHORS_CODE names their checkout."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from tests.test_benchmark_scripts import load_script

stats = load_script("parity_stats")
parity = load_script("parity")
report = load_script("parity_report")


def test_quartile_iqm_keeps_the_runs_between_the_quartiles_ties_included():
    assert stats.quartile_iqm(np.array([0.5, 0.1, 0.9, 0.3, 0.7])) == pytest.approx(0.5)  # middle three
    assert stats.quartile_iqm(np.array([0.5, 0.1, 0.9, 0.3, 0.7])) == scipy.stats.trim_mean(
        [0.5, 0.1, 0.9, 0.3, 0.7], 0.25
    )
    assert stats.quartile_iqm(np.array([0.0, 0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.4)  # ties: all five
    assert stats.quartile_iqm(np.arange(1.0, 8.0)) == pytest.approx(4.5)  # 7 runs: 3..6 kept
    assert scipy.stats.trim_mean(np.arange(1.0, 8.0), 0.25) == pytest.approx(4.0)  # trim_mean keeps 2..6
    assert stats.quartile_iqm(np.array([1.0, 2.0, 3.0])) == pytest.approx(2.5)  # polars rounds 0.5 up


def test_the_difference_ci_excludes_zero_only_for_separated_samples():
    a, b = np.array([0.30, 0.32, 0.35, 0.31, 0.33]), np.array([0.10, 0.12, 0.11, 0.09, 0.13])
    apart = stats.difference(a, b, stats.quartile_iqm, reps=2000, seed=0)
    assert apart.diff == pytest.approx(0.32 - 0.11) and apart.low > 0 and apart.excludes_zero
    same = stats.difference(a, a[::-1].copy(), stats.mean, reps=2000, seed=0)
    assert same.diff == 0 and same.low < 0 < same.high and not same.excludes_zero
    assert stats.permutation_p(a, b, stats.mean) == pytest.approx(2 / 252)  # the two extreme splits
    assert stats.permutation_p(a, a, stats.mean) == 1.0


def record(side: str, seed: int, success: float, q: float):
    spec = parity.SIZES["cpu"].spec(side, seed)
    evals = {t: {"a": success, "b": success} for t in (50_000, 75_000, 100_000, 125_000, 150_000)}
    train = {
        u: {k: q for k in ("critic_loss", "q_mean", "actor_loss", "alpha_loss", "alpha_sum")}
        for u in range(100, 900, 100)
    }
    return report.RunRecord(spec, True, evals, train, {})


def test_the_verdict_compares_final_success_and_training_statistics_by_side():
    runs = [record("ours", s, 0.3 + 0.01 * s, 10.0 + s) for s in range(5)]
    runs += [record("authors", s, 0.1 + 0.01 * s, 10.0 + s) for s in range(5)]
    rows = report.verdict_rows(runs, final_evals=3)
    final = {r["statistic"]: r for r in rows if r["quantity"] == "final success"}
    assert final["iqm"]["window"] == "evaluations at 100,000, 125,000, 150,000 transitions"
    assert final["iqm"]["diff"] == pytest.approx(0.2) and final["iqm"]["ci_excludes_0"]
    q = [r for r in rows if r["quantity"] == "q_mean"]
    assert len(q) == report.WINDOWS and all(r["diff"] == 0 and not r["ci_excludes_0"] for r in q)
    assert report.verdict_rows(runs[:5], final_evals=3) == []  # one side only: no verdict


TOY = {"width": 16, "batch_per_task": 8, "total_steps": 2_000, "eval_every": 1_000, "eval_episodes": 1}


def toy_size():
    return parity.Size(
        **TOY, seeds=2, final_evals=2, buffer_total=10_000, warmup_vector_steps=100, task_set="mt1"
    )


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_our_side_at_a_toy_size_writes_the_csvs_and_a_rerun_skips_finished_runs(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(parity.SIZES, "toy", toy_size())
    argv = [
        "--size",
        "toy",
        "--sides",
        "ours",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--results-dir",
        str(tmp_path),
    ]
    assert parity.main(argv) == 0
    evals = read(tmp_path / "parity_toy_evals.csv")
    assert list(evals[0]) == ["side", "seed", "run", "transitions", "mean_success", "reach-v3", "code"]
    assert [(r["seed"], r["transitions"]) for r in evals] == [
        (s, t) for s in "01" for t in ("0", "1000", "2000")
    ]
    assert {r["side"] for r in evals} == {"ours"} and {r["run"] for r in evals} == {"finished"}
    train = read(tmp_path / "parity_toy_train.csv")
    columns = ["side", "seed", "update", "transitions", "critic_loss", "q_mean", "actor_loss", "alpha_loss"]
    assert list(train[0]) == [*columns, "alpha_sum", "code"]
    assert [int(r["update"]) for r in train] == list(range(100, 2000, 100)) * 2  # 1,900 updates, every 100th
    assert int(train[0]["transitions"]) == 199  # update 100 comes after 199 vector steps of MT1
    assert (tmp_path / "parity_toy.png").stat().st_size > 0
    assert not (tmp_path / "parity_toy_verdict.csv").exists()
    assert "no verdict" in capsys.readouterr().out
    records = tmp_path / "runs" / "toy" / "ours_s0" / "records.jsonl"
    before = records.stat().st_mtime_ns
    assert parity.main(argv) == 0
    assert "2 of 2 runs already done, skipped" in capsys.readouterr().out
    assert records.stat().st_mtime_ns == before


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("AUTHORS_CODE"),
    reason="needs AUTHORS_CODE=a checkout of rainx0r/metaworld-algorithms (installed in benchmarks/tmp/)",
)
def test_both_sides_at_a_toy_size_give_a_verdict(tmp_path, monkeypatch):
    # MT10 (their MT1 does not start with metaworld 3.1.1): 1,000 vector steps, 900 updates
    size = parity.Size(
        **{**TOY, "total_steps": 10_000, "eval_every": 5_000},
        seeds=2,
        final_evals=2,
        buffer_total=10_000,
        warmup_vector_steps=100,
    )
    monkeypatch.setitem(parity.SIZES, "toy", size)
    argv = [
        "--size",
        "toy",
        "--authors-code",
        os.environ["AUTHORS_CODE"],
        "--runs-dir",
        str(tmp_path / "runs"),
        "--results-dir",
        str(tmp_path),
    ]
    assert parity.main(argv) == 0
    evals = read(tmp_path / "parity_toy_evals.csv")
    theirs = [(r["seed"], r["transitions"]) for r in evals if r["side"] == "authors"]
    assert theirs == [(s, t) for s in "01" for t in ("5000", "10000")]  # after warm-up only: no step 0
    train = read(tmp_path / "parity_toy_train.csv")
    assert {r["side"] for r in train} == {"ours", "authors"}
    verdict = read(tmp_path / "parity_toy_verdict.csv")
    assert verdict[0]["quantity"] == "final success" and verdict[0]["n_authors"] == "2"
    assert verdict[0]["window"] == "evaluations at 5,000, 10,000 transitions"


def test_a_run_is_running_while_its_driver_lives_and_until_it_is_done(tmp_path):
    runs = load_script("parity_runs")
    spec = parity.SIZES["cpu"].spec("ours", 0)
    run_dir = runs.run_dir_of(tmp_path, spec)
    runs.prepare(run_dir, spec)
    assert not runs.is_running(run_dir) and not runs.is_done(run_dir, spec)
    (run_dir / "pid").write_text(str(os.getpid()))  # a live process
    assert runs.is_running(run_dir)
    (run_dir / "done.json").write_text("{}")
    assert not runs.is_running(run_dir) and runs.is_done(run_dir, spec)
    assert not runs.is_done(run_dir, parity.SIZES["cpu"].spec("ours", 1))  # another seed's settings
    (run_dir / "done.json").unlink()
    (run_dir / "pid").write_text("999999999")  # no such process
    assert not runs.is_running(run_dir)


def test_collect_writes_the_verdict_with_both_code_bases_and_labels_unfinished_runs(tmp_path, capsys):
    """Run folders as the drivers leave them (one left unfinished): CSVs, verdict columns, figure."""
    rec = load_script("parity_record")
    size = parity.Size(
        width=16,
        batch_per_task=8,
        total_steps=100_000,
        eval_every=50_000,
        eval_episodes=1,
        seeds=3,
        final_evals=1,
    )
    root = tmp_path / "runs"
    (root).mkdir()
    (root / "provenance.json").write_text('{"ours_commit": "abc", "authors_commit": "30c9991"}')
    for spec in size.specs():
        run_dir = root / f"{spec.side}_s{spec.seed}"
        run_dir.mkdir()
        (run_dir / "spec.json").write_text(spec.to_json())
        recorder = rec.Recorder(run_dir)
        level = 0.5 if spec.side == "ours" else 0.2
        for update in range(100, 1100, 100):
            stats = dict.fromkeys(rec.TRAIN_STATS, float(update + spec.seed))
            recorder.train(update, 40_000 + 10 * update, stats)
        recorder.evaluation(50_000, {"reach-v3": level, "push-v3": 0.0}, None)
        if spec.seed == 2 and spec.side == "authors":
            continue  # stopped before its last evaluation
        recorder.evaluation(100_000, {"reach-v3": level + 0.01 * spec.seed, "push-v3": level}, None)
        recorder.done({})
    rows = report.collect(size, "t", root, tmp_path)
    assert "1 of 6 runs not finished" in capsys.readouterr().out
    verdict = read(tmp_path / "parity_t_verdict.csv")
    final = verdict[0]
    assert (final["quantity"], final["statistic"], final["n_ours"], final["n_authors"]) == (
        "final success",
        "iqm",
        "3",
        "2",
    )
    assert final["ours_code"] == "mtrl abc" and final["authors_code"] == "metaworld-algorithms 30c9991"
    assert (
        float(final["diff"]) == pytest.approx(rows[0]["ours"] - rows[0]["authors"])
        and final["ci_excludes_0"] == "True"
    )
    evals = read(tmp_path / "parity_t_evals.csv")
    assert [r["run"] for r in evals if r["side"] == "authors" and r["seed"] == "2"] == ["unfinished"]
    assert len(evals) == 3 * 2 + 2 * 2 + 1
    assert len(read(tmp_path / "parity_t_train.csv")) == 6 * 10
    assert (tmp_path / "parity_t.png").exists()
