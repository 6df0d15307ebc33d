"""Runtime plans and runs per GPU from measured rows of the setting a run resolves to (mtrl.study.runtime,
mtrl.config.speed), and the plan a Snakemake command prints for its targets (mtrl.study.plan)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from mtrl.config.settings import ConfigError, TrainConfig
from mtrl.config.speed import device_type_of, resolve_speed
from mtrl.study.gpu_share import (
    SHARE_COLUMNS,
    NodeLimits,
    ShareRow,
    gpu_mem_mb,
    load_share_table,
    runs_per_gpu,
)
from mtrl.study.grid import StudyGrid, build_grid, validate_study
from mtrl.study.plan import WHOLE_STUDY, plan_lines, targets_runs
from mtrl.study.runtime import Row, Setting, estimate, load_table, plan, run_setting
from tests.workflow_helpers import ROOT, snakemake

RESULTS = ROOT / "benchmarks" / "results"
SHIPPED_GPU = "NVIDIA H100 80GB HBM3"

H100 = "NVIDIA H100"
FAST, CPU = Setting("graph", "tf32", False), Setting("eager", "float32", False)  # `auto` on a GPU, a CPU


def _rows() -> list[ShareRow]:
    return [
        ShareRow(H100, "mt10", "mtmhsac", 400, 400, 3, FAST, 0.2),
        ShareRow(H100, "mt10", "mtmhsac", 1600, 1600, 3, FAST, 0.8),
        ShareRow(H100, "mt10", "mtmhsac", 400, 400, 3, CPU, 0.9),  # eager float32: another setting
        ShareRow("cpu", "mt10", "sm", 400, 400, 3, CPU, 0.1),
    ]


def _cfg(width: int, **extra) -> TrainConfig:
    return TrainConfig.from_dict({"actor_width": width, "critic_width": width, **extra})


def test_small_busy_fraction_shares_a_gpu_and_large_widths_do_not():
    small = runs_per_gpu(_cfg(400), _rows(), H100, max_runs=8, target_busy=0.9)
    assert (small.k, small.busy_fraction) == (4, pytest.approx(0.2))  # floor(0.9 / 0.2)
    mid = runs_per_gpu(_cfg(800), _rows(), H100, max_runs=8, target_busy=0.9)
    assert mid.busy_fraction == pytest.approx(0.4) and mid.k == 2  # log-log halfway: sqrt(0.2 * 0.8)
    assert runs_per_gpu(_cfg(1600), _rows(), H100, max_runs=8, target_busy=0.9).k == 1
    # above the widest row the fraction never falls; below the narrowest it is the narrowest's
    assert runs_per_gpu(_cfg(6400), _rows(), H100, max_runs=8, target_busy=0.9).k == 1
    assert runs_per_gpu(_cfg(64), _rows(), H100, max_runs=8, target_busy=0.9).k == 4


def test_k_is_capped_by_max_runs():
    assert runs_per_gpu(_cfg(400), _rows(), H100, max_runs=3, target_busy=0.9).k == 3
    assert runs_per_gpu(_cfg(400), _rows(), "nvidia h100", max_runs=2, target_busy=0.9).k == 2


def test_unmeasured_device_task_set_or_arch_gets_one_gpu_and_says_why():
    for cfg, device in [(_cfg(400), "NVIDIA A100"), (_cfg(400, task_set="mt50"), H100)]:
        share = runs_per_gpu(cfg, _rows(), device, max_runs=4, target_busy=0.9)
        assert share.k == 1 and share.busy_fraction is None and "NOT MEASURED" in share.basis
    sm = _cfg(400, arch="sm")
    assert runs_per_gpu(sm, _rows(), H100, max_runs=4, target_busy=0.9).k == 1
    assert runs_per_gpu(sm, _rows(), "cpu", max_runs=4, target_busy=0.9).k == 4
    # explicit settings pick their own rows: eager float32 on the H100 keeps it 90% busy
    eager = _cfg(400, update_mode="eager", matmul_precision="float32")
    assert runs_per_gpu(eager, _rows(), H100, max_runs=4, target_busy=0.9).busy_fraction == pytest.approx(0.9)
    overlapped = runs_per_gpu(_cfg(400, overlap=True), _rows(), H100, max_runs=4, target_busy=0.9)
    assert overlapped.k == 1 and "graph/tf32/overlap" in overlapped.basis  # not measured overlapped


def _node(cores: int = 64, mem_mb: int = 1_000_000, gpu_mem_mb: int = 80_000) -> NodeLimits:
    return NodeLimits(cores, mem_mb, gpu_mem_mb, max_threads=16, base_mem_mb={"mt10": 32000, "mt50": 64000})


def test_k_runs_share_a_gpu_only_where_the_node_holds_them_and_the_plan_names_the_limit():
    # width 400 keeps the GPU 20 % busy (4 runs by the GPU) but an MT10 run uses 11 cores
    def share(**node):
        return runs_per_gpu(_cfg(400), _rows(), H100, max_runs=8, target_busy=0.9, node=_node(**node))

    assert (share().k, share().binding) == (4, "GPU busy")  # 64 cores hold 5 runs
    assert (share(cores=16).k, share(cores=16).binding) == (1, "cores")  # 2 x 11 > 16
    assert (share(cores=40).k, share(cores=40).binding) == (3, "cores")
    assert "runs that fit: GPU busy 4, cores 3, host memory 29" in share(cores=40).basis
    assert (share(mem_mb=70_000).k, share(mem_mb=70_000).binding) == (2, "host memory")  # 33,562 MB each
    two_gpus_worth = 2 * gpu_mem_mb(_cfg(400).resolved()) + 1
    assert (share(gpu_mem_mb=two_gpus_worth).k, share(gpu_mem_mb=two_gpus_worth).binding) == (2, "GPU memory")
    capped = runs_per_gpu(_cfg(400), _rows(), H100, max_runs=2, target_busy=0.9, node=_node())
    assert (capped.k, capped.binding) == (2, "max_runs_per_gpu")
    sync = _cfg(400, vector_strategy="sync")  # one process: one core
    assert runs_per_gpu(sync, _rows(), H100, max_runs=8, target_busy=0.9, node=_node(cores=4)).k == 4
    unmeasured = runs_per_gpu(_cfg(400, task_set="mt50"), _rows(), H100, 4, 0.9, node=_node())
    assert (unmeasured.k, unmeasured.binding) == (1, "not measured")
    line = _sharing_line_of([share(cores=16), share(cores=16), share(), unmeasured])
    assert line == (
        "mtrl: GPU sharing: 1 of the 4 runs share a GPU (1 run 4 per GPU), the rest get one each; no "
        "sharing measurement for this GPU: 1 run, one GPU each; runs per GPU are limited by the node's "
        "cores (2 runs), how busy one run keeps the GPU (1 run)"
    )


def _sharing_line_of(shares) -> str:
    from mtrl.study.plan import _sharing_line

    return _sharing_line(shares)


def test_a_runs_gpu_memory_is_its_buffer_networks_and_a_process_and_grows_with_width():
    """MT10 width 400: a 1e6-transition buffer (320 MiB), 4.9e6 floats of networks, optimiser state
    and targets, a batch's activations and 1,500 MB per process."""
    assert gpu_mem_mb(TrainConfig().resolved()) == 1980
    sizes = [gpu_mem_mb(_cfg(w).resolved()) for w in (400, 1024, 4096, 8192)]
    assert sizes == sorted(sizes) and sizes[-1] < 16_000  # four width-8192 runs fit an 80 GB GPU
    assert gpu_mem_mb(_cfg(400, buffer_per_task=200_000).resolved()) == 1980 + 321  # + 1e6 x 84 floats
    paco = _cfg(400, arch="paco").resolved()  # 5 parameter sets
    assert gpu_mem_mb(paco) > gpu_mem_mb(_cfg(400).resolved())


def test_share_table_absent_is_empty_and_bad_rows_name_the_line(tmp_path):
    assert load_share_table(tmp_path / "none.csv") == []
    path = tmp_path / "gpu_share.csv"
    row = [
        H100,
        "mt10",
        "mtmhsac",
        "400",
        "400",
        "3",
        "graph",
        "tf32",
        "False",
        "50",
        "250",
        "0.2",
        "2026",
        "t",
    ]
    path.write_text(",".join(SHARE_COLUMNS) + "\n" + ",".join(f'"{v}"' for v in row) + "\n")
    assert load_share_table(path) == [ShareRow(H100, "mt10", "mtmhsac", 400, 400, 3, FAST, 0.2)]
    path.write_text(",".join(SHARE_COLUMNS) + "\n" + ",".join(row[:11] + ["1.5"] + row[12:]) + "\n")
    with pytest.raises(ConfigError, match=r"gpu_share.csv:2: busy_fraction"):
        load_share_table(path)
    path.write_text(",".join(SHARE_COLUMNS) + "\n" + ",".join(row[:8] + ["maybe"] + row[9:]) + "\n")
    with pytest.raises(ConfigError, match=r"gpu_share.csv:2: overlap must be true or false, got 'maybe'"):
        load_share_table(path)


# ---------------------------------------------------------------- auto settings and the rows they pick
def test_auto_is_graph_and_tf32_on_cuda_and_eager_float32_on_a_cpu():
    assert resolve_speed("auto", "auto", "cuda") == ("graph", "tf32")
    assert resolve_speed("auto", "auto", "cpu") == ("eager", "float32")
    assert resolve_speed("eager", "bf16", "cuda") == ("eager", "bf16")  # explicit values stay
    assert resolve_speed("auto", "float32", "cuda") == ("graph", "float32")
    assert (device_type_of("cpu"), device_type_of("NVIDIA H100 80GB HBM3")) == ("cpu", "cuda")
    assert TrainConfig().update_mode == TrainConfig().matmul_precision == "auto"  # the defaults
    assert run_setting(_cfg(400), H100) == FAST and run_setting(_cfg(400), "cpu") == CPU


def _runtime_rows() -> list[Row]:
    return [
        Row(H100, "mt10", "mtmhsac", 400, 400, 3, FAST, 4000.0),
        Row(H100, "mt10", "mtmhsac", 1600, 1600, 3, FAST, 1000.0),
        Row(H100, "mt10", "mtmhsac", 400, 400, 3, CPU, 600.0),
        Row("cpu", "mt10", "mtmhsac", 400, 400, 3, CPU, 100.0),
    ]


def test_the_estimate_uses_rows_of_the_setting_the_run_resolves_to():
    auto = estimate(_cfg(800), _runtime_rows(), H100)  # graph + tf32 on a GPU
    assert auto.measured and auto.gap == "" and auto.transitions_per_s == pytest.approx(2000.0)
    assert "measured with graph/tf32/exact" in auto.basis
    eager = estimate(_cfg(400, update_mode="eager", matmul_precision="float32"), _runtime_rows(), H100)
    assert eager.measured and eager.transitions_per_s == pytest.approx(600.0)
    assert estimate(_cfg(400), _runtime_rows(), "cpu").transitions_per_s == pytest.approx(100.0)
    overlap = estimate(_cfg(400, overlap=True), _runtime_rows(), H100)  # no overlapped rows
    assert not overlap.measured and overlap.gap.startswith("graph/tf32/overlap not measured (from ")
    assert "NOT MEASURED for this run on NVIDIA H100 with graph/tf32/overlap" in overlap.basis
    wide = estimate(_cfg(3200), _runtime_rows(), H100)  # beyond the widest row: extrapolated
    assert not wide.measured and wide.gap == "width outside the measured widths"
    deep = estimate(_cfg(400, depth=4), _runtime_rows(), H100)
    assert not deep.measured and deep.gap == "depth 4 not measured"


def test_shipped_h100_rows_plan_the_paper_baseline_with_graph_and_tf32():
    """The 2026-11-28 H100 measurement: MT10 width 400 loops at 2,562 transitions/s with graph + tf32
    in the exact order (686.57 eager float32), so the paper's 2e7 transitions take ~2.2 hours; it
    keeps the GPU 28% busy, so 3 such runs share one."""
    rows = load_table(RESULTS / "runtime.csv")
    baseline = estimate(TrainConfig(), rows, SHIPPED_GPU)
    assert baseline.measured and baseline.transitions_per_s == pytest.approx(2561.87)
    assert baseline.minutes / 60 == pytest.approx(2e7 / 2561.87 / 3600)
    eager = TrainConfig(update_mode="eager", matmul_precision="float32")
    assert estimate(eager, rows, SHIPPED_GPU).transitions_per_s == pytest.approx(686.57)
    share_rows = load_share_table(RESULTS / "gpu_share.csv")
    share = runs_per_gpu(TrainConfig(), share_rows, SHIPPED_GPU, 4, 0.9)
    assert share.busy_fraction == pytest.approx(0.2845) and share.k == 3
    # ... by the GPU alone: on the node it was measured on (16 cores) its 11 threads keep it alone
    node = NodeLimits.from_resources(_paper()[0]["train_resources"])
    alone = runs_per_gpu(TrainConfig(), share_rows, SHIPPED_GPU, 4, 0.9, node)
    assert (alone.k, alone.binding, node.cores) == (1, "cores", 16)


# ---------------------------------------------------------------- the plan of a command's targets
@cache
def _paper() -> tuple[dict, StudyGrid]:
    study = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    validate_study(study, yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text()))
    return study, build_grid(study)


def test_targets_map_to_the_runs_behind_them(tmp_path, monkeypatch):
    _, grid = _paper()
    monkeypatch.chdir(tmp_path)
    results, figures = Path("results"), Path("figures")
    label, runs = targets_runs(["figures/fig7.pdf"], grid, results, figures)
    assert label == "figures/fig7.pdf" and runs == grid.runs_of("fig7") and len(runs) == 150
    assert len(targets_runs([str(tmp_path / "figures" / "fig5.png")], grid, results, figures)[1]) == 50
    both = targets_runs(["results/tables/fig7.csv", "figures/fig5.pdf"], grid, results, figures)[1]
    assert len(both) == len(set(grid.runs_of("fig7")) | set(grid.runs_of("fig5")))
    one = "mt10/mtmhsac/a400-c1024-d3/s3"
    assert targets_runs([f"results/runs/{one}/train.h5"], grid, results, figures)[1] == [one]
    for whole in ([], ["all"], ["somewhere/else.txt"]):
        assert targets_runs(whole, grid, results, figures) == (WHOLE_STUDY, list(grid.runs))


def test_the_plan_of_a_target_counts_its_runs_hours_and_what_is_not_measured():
    study, grid = _paper()
    resources = study["train_resources"]
    rows = load_table(RESULTS / "runtime.csv")
    plans = {rid: plan(cfg, rows, resources) for rid, cfg in grid.runs.items()}
    shares = {rid: runs_per_gpu(cfg, [], SHIPPED_GPU, 4, 0.9) for rid, cfg in grid.runs.items()}  # none
    fig5 = grid.runs_of("fig5")  # MT10 actor/critic pairs: 5 pairs x 10 seeds
    lines = plan_lines("figures/fig5.pdf", fig5, grid, plans, shares, resources)
    hours = sum(plans[r].estimate.minutes for r in fig5) / 60
    assert lines[0] == (
        f"mtrl: plan for figures/fig5.pdf: 50 runs, 0 complete; the 50 to train take ~{hours:,.0f} "
        f"GPU-hours on {SHIPPED_GPU} (CUDA-graph updates, tf32 matmuls, the authors' step order)"
    )
    assert (
        len(lines) <= 4 and "mtrl: GPU sharing: none; each of the 50 runs gets a GPU of its own" in lines[-1]
    )
    done = set(fig5[:20])
    again = plan_lines("figures/fig5.pdf", fig5, grid, plans, shares, resources, complete=done)
    left = sum(plans[r].estimate.minutes for r in fig5[20:]) / 60
    assert again[0].startswith(
        f"mtrl: plan for figures/fig5.pdf: 50 runs, 20 complete; the 30 to train take ~{left:,.0f}"
    )
    mt50 = [rid for rid in grid.runs_of("fig4") if rid.startswith("mt50/")]
    unmeasured = plan_lines("x", mt50, grid, plans, shares, resources)[1]
    assert unmeasured.startswith(
        f"mtrl: NOT MEASURED on {SHIPPED_GPU} for 50 of them, estimated from other rows"
    )
    assert "50 runs: mt50/mtmhsac not measured" in unmeasured  # widths 256-4096 x 10 seeds


def test_a_dry_run_prints_the_plan_of_its_target_once_and_lint_prints_none(tmp_path):
    where = ["--config", f"results_dir={tmp_path}/results", f"figures_dir={tmp_path}/figures"]
    proc = snakemake(ROOT, "-n", "--quiet", "rules", *where, "--", f"{tmp_path}/figures/fig7.pdf")
    plan = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("mtrl: ")]
    assert plan[0].startswith(f"mtrl: plan for {tmp_path}/figures/fig7.pdf: 150 runs, 0 complete; the 150")
    assert 2 <= len(plan) <= 4 and sum(line.startswith("mtrl: plan for") for line in plan) == 1
    lint = snakemake(ROOT, "--lint")
    assert "mtrl: " not in lint.stdout + lint.stderr
    report = snakemake(ROOT, "--report", str(tmp_path / "report.zip"), *where, check=False)  # no results yet
    assert "Creating report..." in report.stderr and "mtrl: plan" not in report.stdout + report.stderr


def test_the_readme_states_the_plan_of_the_papers_grid():
    study, grid = _paper()
    resources = study["train_resources"]
    rows, share_rows = load_table(RESULTS / "runtime.csv"), load_share_table(RESULTS / "gpu_share.csv")
    plans = {rid: plan(cfg, rows, resources) for rid, cfg in grid.runs.items()}
    node = NodeLimits.from_resources(resources)
    shares = {rid: runs_per_gpu(cfg, share_rows, SHIPPED_GPU, 4, 0.9, node) for rid, cfg in grid.runs.items()}
    lines = plan_lines(WHOLE_STUDY, grid.runs, grid, plans, shares, resources)
    hours = float(re.search(r"take ~([\d,]+) GPU-hours", lines[0]).group(1).replace(",", ""))
    unmeasured = int(re.search(r"for (\d+) of them", lines[1]).group(1))
    readme = " ".join((ROOT / "README.md").read_text().split())
    stated = re.search(
        r"the paper's grid on the H100: (\d+) runs, ~([\d,]+) GPU-hours.*?, (\d+) runs estimated", readme
    )
    assert stated, "README: the paper's plan on the H100"
    assert int(stated.group(1)) == len(grid.runs)
    assert int(stated.group(2).replace(",", "")) == round(hours, -2) and int(stated.group(3)) == unmeasured
    limited = lines[-1].split("; ")[-1]  # which limit bound the runs per GPU, and for how many runs
    assert limited.startswith("runs per GPU are limited by the node's cores") and f'"{limited}"' in readme
    alone = f"none; each of the {len(grid.runs)} runs gets a GPU of its own"
    assert lines[-1].startswith(f"mtrl: GPU sharing: {alone}") and f'"{alone}"' in readme


def test_evaluations_that_block_add_their_time_to_the_plan_and_background_ones_none():
    """6 evaluations (0, 200k, ..., 1M) x 10 tasks x 10 full episodes of 500 steps at 1,000 env
    transitions/s: 5 min where training waits for them (auto on a CPU), none in the background
    (auto on a GPU)."""
    resources = {
        "runtime_device": "cpu", "max_runtime_minutes": 2880, "signal_minutes": 10, "runtime_safety": 1.0,
        "eval_transitions_per_s": 1000,
    }  # fmt: skip
    settings = {"total_steps": 1_000_000, "eval_every": 200_000, "eval_episodes": 10}
    loop = 1_000_000 / 100 / 60  # the CPU row: 100 transitions/s
    on_cpu = plan(_cfg(400, **settings), _runtime_rows(), resources)
    assert on_cpu.estimate.minutes == pytest.approx(loop + 5)
    gpu = {**resources, "runtime_device": H100}
    minutes = {
        mode: plan(_cfg(400, **settings, eval_mode=mode), _runtime_rows(), gpu).estimate.minutes
        for mode in ("auto", "background", "blocking")
    }
    assert minutes["auto"] == minutes["background"] == pytest.approx(1_000_000 / 4000 / 60)
    assert minutes["blocking"] == pytest.approx(minutes["background"] + 5)
