"""The CPU parts of `make gpu-check` (benchmarks/gpu_check.py): the stop / resume / compare driver on
a tiny CPU run, the comparison of results, the report and its verdict, the benchmark's command."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import h5py
import pytest

from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
TINY_RUN = {**TINY, "total_steps": 3000, "device": "cpu"}  # MT1: 500 transitions per episode


def _load(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))  # gpu.py imports its neighbour throughput.py
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


check = _load("gpu_check")


@pytest.mark.slow
def test_a_stopped_run_resumes_at_its_step_and_continues_its_log(tmp_path):
    report = check.stop_and_resume(TINY_RUN, tmp_path / "run", stop_after=1000, timeout=300)
    assert report["ok"], report
    first, second = report["first"], report["second"]
    assert first["returncode"] == 75 and first["stopped_at"] in (1000, 1500)  # the episode after the line
    assert second["resumed_at"] == first["stopped_at"]
    # every progress line is past the stop; the first log row (every 500) is the next one, not step 500
    # again (lines between rows come from the clock: mtrl.run.progress)
    assert min(second["progress"]) > first["stopped_at"]
    assert [step for step in second["progress"] if step % 500 == 0][0] == first["stopped_at"] + 500
    assert second["stopped_at"] > first["stopped_at"] and second["returncode"] == 75
    assert all(report["checks"].values()) and len(report["checks"]) == 4


@pytest.mark.slow
def test_a_resumed_run_equals_the_uninterrupted_ones_on_a_cpu(tmp_path):
    report = check.resume_equals_uninterrupted(TINY_RUN, tmp_path, stop_after=1000, timeout=400)
    assert report["ok"] and report["verdict"] == "bit-identical", report
    assert report["relative_difference"] == {"resumed": 0.0, "uninterrupted_twice": 0.0}
    assert report["resumed"]["resumed_at"] == report["stopped"]["stopped_at"] < 3000
    assert report["resumed"]["progress"][-1] == 3000 and report["exit"] == {"uninterrupted": 0, "again": 0}


def _result(path: Path, loss: list[float]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle["train/critic_loss"] = loss
        handle["train/sps"] = [time.time()]  # timings differ between any two runs: not compared
        handle["eval/step"] = [0, 1000]
    return path


def test_results_compare_by_their_largest_relative_difference(tmp_path):
    a = _result(tmp_path / "a" / "train.h5", [1.0, 2.0])
    assert check.difference(a, _result(tmp_path / "b" / "train.h5", [1.0, 2.0])) == 0.0
    assert check.difference(a, _result(tmp_path / "c" / "train.h5", [1.0, 2.2])) == pytest.approx(0.1 / 1.1)
    assert check.difference(a, _result(tmp_path / "d" / "train.h5", [1.0])) == float("inf")


def test_an_attempt_that_outlives_its_limit_is_killed():
    sleeper = [
        sys.executable,
        "-c",
        "import time, sys; print('[mtrl] step 5/9', file=sys.stderr); time.sleep(60)",
    ]
    started = time.time()
    result = check.attempt(sleeper, stop_after=None, timeout=3)
    assert time.time() - started < 30 and result.returncode != 0
    assert result.progress == [5] and result.lines[-1] == "gpu-check: killed after its 3 s limit"


def test_the_report_names_the_gpu_and_fails_when_a_required_step_fails(tmp_path, monkeypatch):
    steps = {"tests": True, "resume": True, "same": True}
    monkeypatch.setattr(check, "run_step", lambda cmd, timeout: {"ok": steps["tests"], "cmd": cmd})
    monkeypatch.setattr(check, "stop_and_resume", lambda *a: {"ok": steps["resume"]})
    monkeypatch.setattr(check, "resume_equals_uninterrupted", lambda *a: {"ok": steps["same"]})
    monkeypatch.setattr(check, "machine", lambda: {"gpu": "NVIDIA H100 80GB HBM3", "torch": "x"})
    assert check.main(["--device", "cpu", "--out-dir", str(tmp_path)]) == 0
    (report,) = tmp_path.glob("gpu-check-nvidia-h100-80gb-hbm3-*.json")
    data = json.loads(report.read_text())
    assert data["ok"] and data["machine"]["gpu"] == "NVIDIA H100 80GB HBM3"
    assert data["tests"]["cmd"][-2:] == check.GPU_TESTS and "benchmarks/gpu.py" in " ".join(
        data["bench"]["cmd"]
    )
    steps["same"] = False
    assert check.main(["--device", "cpu", "--out-dir", str(tmp_path)]) == 1


def test_without_a_gpu_it_says_so_in_one_line_measures_nothing_and_writes_no_report(
    tmp_path, monkeypatch, capsys
):
    ran = []
    monkeypatch.setattr(check, "run_step", lambda *a: ran.append(a) or {"ok": True})
    monkeypatch.setattr(check, "stop_and_resume", lambda *a: ran.append(a) or {"ok": True})
    monkeypatch.setattr(check, "machine", lambda: {"gpu": "no GPU", "torch": "2.13.0"})
    assert check.main(["--out-dir", str(tmp_path)]) == check.NO_GPU_EXIT == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.splitlines() == [
        "gpu-check: no GPU: nothing measured (torch sees no CUDA device here; on a cluster: "
        "srun --gres=gpu:1 make gpu-check)"
    ]
    assert ran == [] and list(tmp_path.iterdir()) == []
    assert check.no_gpu_line("cpu", "no GPU") is None and check.no_gpu_line("cuda", "NVIDIA H100") is None


def test_each_step_says_whether_it_passed_failed_or_was_skipped_and_why():
    verdict = check.step_verdict
    assert verdict({"skipped": "no --authors-code"}) == "skipped: no --authors-code"
    assert verdict({"ok": False, "exit": 124}) == "FAILED (exit 124)"
    assert verdict({"ok": False, "why": "a run failed or was not stopped"}) == (
        "FAILED: a run failed or was not stopped"
    )
    assert verdict({"ok": True, "last_lines": ["12 passed, 8 skipped in 3.1s"]}) == "ok (8 tests skipped)"
    assert verdict({"ok": True, "checks": {}}) == "ok"


def test_the_jax_comparison_is_a_step_of_its_own_only_when_given_the_authors_code(tmp_path, monkeypatch):
    plain = check.parse_args(["--device", "cpu"])
    bench = check.benchmark_command(plain, budget_s=200)
    assert "--authors-code" not in bench and bench[bench.index("--budget-s") + 1] == "200"
    assert plain.deadline_s == check.DEADLINE_S
    anchor = tmp_path / "jax_update_bench.py"
    anchor.write_text("")
    args = check.parse_args(
        ["--authors-code", str(tmp_path), "--jax-bench", str(anchor), "--jax-python", "py"]
    )
    assert args.deadline_s == check.DEADLINE_S == 480  # the JAX comparison fits in the same 8 minutes
    cmd = check.ratio_command(args, budget_s=200)
    assert cmd[cmd.index("--jax-bench") + 1] == str(anchor) and cmd[cmd.index("--jax-python") + 1] == "py"
    assert "--jax-only" in cmd and cmd[cmd.index("--jax-widths") + 1 :][:3] == ["400", "1024", "4096"]
    with pytest.raises(SystemExit):
        check.parse_args(["--authors-code", str(tmp_path)])  # the anchor's path is an argument
    commands = []
    monkeypatch.setattr(check, "run_step", lambda cmd, timeout: commands.append(cmd) or {"ok": True})
    monkeypatch.setattr(check, "stop_and_resume", lambda *a: {"ok": True})
    monkeypatch.setattr(check, "resume_equals_uninterrupted", lambda *a: {"ok": True})
    argv = ["--device", "cpu", "--out-dir", str(tmp_path), "--authors-code", str(tmp_path)]
    assert check.main([*argv, "--jax-bench", str(anchor)]) == 0
    assert ["--jax-only" in c for c in commands] == [False, True, False]  # tests, ratio, bench


def test_the_gpu_benchmark_compares_with_jax_like_for_like_and_end_to_end(monkeypatch, capsys):
    """The JAX part on a CPU with a stand-in for the anchor's process: per width and setting, our
    update on a fixed batch over theirs (like for like) and ours sampling its batch (end to end)."""
    gpu = _load("gpu")
    update = sys.modules["gpu_update"]  # the JAX half of gpu.py, as gpu.py imported it
    args = gpu.parse_args(["--device", "cpu", "--task-set", "mt1", "--jax-widths", "16", "32"])
    args.jax_modes, args.jax_precisions, args.jax_rounds = ["eager", "graph"], ["float32"], 2
    bench = gpu.Bench(args, gpu.torch.device("cpu"))
    monkeypatch.setattr(update, "jax_rate", lambda args, width, n, block: 1000.0 / width)
    gpu.measure_jax(bench)
    rows = {(r["benchmark"], r["width"], r["mode"]): r for r in bench.rows}
    for width in (16, 32):
        assert rows[("jax_update", width, "")]["value"] == round(1000.0 / width, 3)
        for mode in ("eager", "graph"):
            fixed = rows[("update_fixed_interleaved", width, mode)]["value"]
            sampled = rows[("update_interleaved", width, mode)]["value"]
            like, end = rows[("jax_ratio", width, mode)], rows[("jax_ratio_end_to_end", width, mode)]
            assert like["value"] == pytest.approx(fixed / (1000.0 / width), rel=1e-3)
            assert end["value"] == pytest.approx(sampled / (1000.0 / width), rel=1e-3)
            assert like["note"].startswith("like for like") and end["note"].startswith("end to end")


@pytest.mark.slow
def test_the_gpu_benchmark_writes_rows_with_their_setting(tmp_path):
    """benchmarks/gpu.py on a CPU at toy size: every loop setting measured gets a runtime.csv and a
    gpu_share.csv row saying its mode, precision and overlap; rows of other keys are kept."""
    from mtrl.study.gpu_share import load_share_table
    from mtrl.study.runtime import load_table

    shutil.copy(ROOT / "benchmarks" / "results" / "runtime.csv", tmp_path / "runtime.csv")
    kept = load_table(tmp_path / "runtime.csv")
    gpu = _load("gpu")
    argv = ["--device", "cpu", "--task-set", "mt1", "--widths", "32", "--archs", "--loop-widths", "32"]
    argv += [
        "--modes",
        "eager",
        "graph",
        "--precisions",
        "float32",
        "--loop-steps",
        "20",
        "--env-steps",
        "50",
    ]
    argv += ["--loop-settings", "eager,float32,exact", "graph,float32,overlap", "--out-dir", str(tmp_path)]
    out = gpu.main(argv)
    assert out.name.startswith("gpu-cpu-") and out.read_text().startswith("# CPU x1 threads, torch ")
    new = [r for r in load_table(tmp_path / "runtime.csv") if r.task_set == "mt1"]
    assert {str(r.setting) for r in new} == {"eager/float32/exact", "graph/float32/overlap"}
    assert all(r.device == "cpu" and r.actor_width == 32 for r in new)
    assert len(load_table(tmp_path / "runtime.csv")) == len(kept) + 2
    shares = load_share_table(tmp_path / "gpu_share.csv")
    assert {str(r.setting) for r in shares} == {"eager/float32/exact", "graph/float32/overlap"}


def test_the_gpu_runs_are_the_papers_mt10_baseline_with_shorter_evaluations():
    """The check's runs differ from TrainConfig's defaults (the paper's MT10 baseline) only in
    execution settings, evaluation episodes and, for the short one, its schedule; both validate."""
    from dataclasses import asdict

    from mtrl.config.settings import TrainConfig

    paper = asdict(TrainConfig().resolved())
    schedule = {"total_steps", "eval_every", "log_every", "probe_checkpoints"}
    for run, allowed in [
        (check.PAPER_RUN, {"device", "eval_episodes"}),
        (check.SHORT_RUN, {"device", "eval_episodes"} | schedule),
    ]:
        config = asdict(TrainConfig.from_dict(run))
        assert {k for k in paper if config[k] != paper[k]} == allowed
        assert (config["actor_width"], config["batch_per_task"], config["warmup_steps_per_task"]) == (
            400,
            128,
            4000,
        )
    assert 10 * 4000 < check.SHORT_STOP < check.SHORT_RUN["total_steps"]  # stopped after the warm-up
