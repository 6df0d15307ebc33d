"""The plan banner a Snakemake command prints (mtrl.study.plan.plan_lines), from constructed plans:
honest magnitudes (minutes under an hour), nothing left said as such, settings and GPU sharing in words."""

from __future__ import annotations

from types import SimpleNamespace

from mtrl.config.settings import TrainConfig
from mtrl.study.gpu_share import CORES, GPU_BUSY, NOT_MEASURED, Share
from mtrl.study.plan import duration, plan_lines
from mtrl.study.runtime import Estimate, Plan

CPU_RESOURCES = {
    "runtime_device": "cpu",
    "max_runtime_minutes": 60,
    "max_attempts": 5,
    "runtime_table": "benchmarks/results/runtime.csv",
    "share_gpu": True,
    "gpu": 0,
}
GPU_RESOURCES = {
    **CPU_RESOURCES,
    "runtime_device": "NVIDIA H100 80GB HBM3",
    "max_runtime_minutes": 2880,
    "gpu": 1,
}


def _plans(minutes: list[float], attempts: int = 1) -> dict[str, Plan]:
    return {
        f"r{i}": Plan(Estimate(m, 1000.0, True, "measured"), round(m * 1.5), attempts, 60)
        for i, m in enumerate(minutes)
    }


def _grid(n: int, **settings) -> SimpleNamespace:
    return SimpleNamespace(
        runs={f"r{i}": TrainConfig.from_dict({"task_set": "mt10", **settings}) for i in range(n)}
    )


def _shares(n: int, k: int = 1, binding: str = NOT_MEASURED) -> dict[str, Share]:
    return {f"r{i}": Share(k, None, "", binding) for i in range(n)}


def test_durations_are_said_in_minutes_under_an_hour_and_hours_after():
    assert [duration(m) for m in (0.2, 12.4, 59.4, 60, 207, 600, 240_000)] == [
        "~1 min",
        "~12 min",
        "~59 min",
        "~1.0 hours",
        "~3.5 hours",
        "~10 hours",
        "~4,000 hours",
    ]
    assert duration(30, "GPU") == "~30 GPU-min" and duration(90, "GPU") == "~1.5 GPU-hours"


def test_a_short_cpu_plan_says_minutes_in_words_and_no_jobs_split():
    lines = plan_lines(
        "the whole study", ["r0", "r1"], _grid(2), _plans([5.0, 7.4]), _shares(2), CPU_RESOURCES
    )
    assert lines == [
        "mtrl: plan for the whole study: 2 runs, 0 complete; the 2 to train take ~12 min of job time in all "
        "on cpu (eager updates, float32 matmuls, the authors' step order)"
    ]
    one = plan_lines("x", ["r0"], _grid(1), _plans([0.3]), _shares(1), {**GPU_RESOURCES, "share_gpu": True})
    assert one == [
        "mtrl: plan for x: 1 run, 0 complete; the 1 to train take ~1 GPU-min on NVIDIA H100 80GB HBM3 "
        "(CUDA-graph updates, tf32 matmuls, the authors' step order)",
        "mtrl: GPU sharing: none; the run gets a GPU of its own; no sharing measurement for this GPU: 1 run, "
        "one GPU each",
    ]


def test_nothing_left_says_so_and_nothing_else():
    lines = plan_lines(
        "x", ["r0", "r1"], _grid(2), _plans([5.0, 7.4]), _shares(2), GPU_RESOURCES, {"r0", "r1"}
    )
    assert lines == ["mtrl: plan for x: 2 runs, all complete: nothing left to train"]


def test_runs_longer_than_a_job_and_gpu_sharing_in_words():
    grid, plans = _grid(3, overlap=True), _plans([3000.0, 3000.0, 30.0], attempts=2)
    shares = {
        "r0": Share(1, 0.3, "", CORES),
        "r1": Share(1, 0.3, "", CORES),
        "r2": Share(3, 0.3, "", GPU_BUSY),
    }
    first, sharing = plan_lines("fig1", list(grid.runs), grid, plans, shares, GPU_RESOURCES)
    assert first == (
        "mtrl: plan for fig1: 3 runs, 0 complete; the 3 to train take ~100 GPU-hours on NVIDIA H100 80GB "
        "HBM3 (CUDA-graph updates, tf32 matmuls, env steps overlapping the update); 3 of them run as several "
        "jobs of at most 48 h each, each resuming the last"
    )
    assert sharing == (
        "mtrl: GPU sharing: 1 of the 3 runs share a GPU (1 run 3 per GPU), the rest get one each; runs per "
        "GPU are limited by the node's cores (2 runs), how busy one run keeps the GPU (1 run)"
    )
    alone = plan_lines("fig1", ["r0", "r1"], grid, plans, shares, GPU_RESOURCES)[-1]
    assert alone == (
        "mtrl: GPU sharing: none; each of the 2 runs gets a GPU of its own; runs per GPU are limited by "
        "the node's cores (2 runs)"
    )
