"""The update half of `gpu.py`: our update per mode and precision (the JAX anchor's protocol: 3
warm-up updates, then blocks ending in a device sync, the median block rate), and the authors' jitted
JAX update run in its own process, interleaved round by round with ours, as ratios of medians.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from throughput import agent_with_random_buffer  # benchmarks/ is the script's folder

from mtrl.config.settings import TrainConfig
from mtrl.envs.benchmarks import task_names

FIELDS = ["benchmark", "arch", "width", "mode", "precision", "overlap", "value", "unit", "note"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU x{torch.get_num_threads()} threads"


def block_rate(step: Callable[[], object], device: torch.device, per_block: int, blocks: int = 5) -> float:
    """The anchor's protocol: 3 warm-up calls, then `blocks` blocks of `per_block` calls ending in a
    sync; the median rate in calls per second."""
    for _ in range(3):
        step()
    sync(device)
    rates = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(per_block):
            step()
        sync(device)
        rates.append(per_block / (time.perf_counter() - start))
    return statistics.median(rates)


def per_block(width: int, device: torch.device) -> int:
    """Updates per timed block: ~0.1 s on an H100 (100 / 60 / 20 at widths 400 / 1024 / wider, as
    the 2026-11-28 run), the anchor's own default (15 / 4) on a CPU."""
    if device.type != "cuda":
        return 15 if width <= 400 else 4
    return 100 if width <= 400 else 60 if width <= 1024 else 20


@dataclass
class Bench:
    """One benchmark run: its settings, device, start time and the rows measured so far."""

    args: argparse.Namespace
    device: torch.device
    started: float = field(default_factory=time.time)
    rows: list[dict] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        return list(task_names(self.args.task_set))

    def config(self, arch: str, width: int | None, **settings) -> TrainConfig:
        values = {"task_set": self.args.task_set, "arch": arch, "device": self.args.device, **settings}
        if width is not None:
            values.update(actor_width=width, critic_width=width)
        return TrainConfig.from_dict(values)

    def record(self, benchmark: str, arch: str, width, value: float, unit: str, **extra) -> None:
        row = {f: "" for f in FIELDS} | {"benchmark": benchmark, "arch": arch, "width": width or "default"}
        row |= {"value": round(value, 3), "unit": unit, **extra}
        self.rows.append(row)
        print(f"{benchmark:10s} {arch:8s} {row['width']!s:>7s} {extra}  {value:10.3f} {unit}", flush=True)

    def over_budget(self, what: str) -> bool:
        if time.time() - self.started < self.args.budget_s:
            return False
        print(f"skipped (over --budget-s): {what}", flush=True)
        return True


# The two ways an update is timed: `fixed` on one batch held fixed, as the authors' JAX anchor times
# theirs (like for like); `sampled` from the replay buffer, sampling and gather included (end to end).
KINDS = ("fixed", "sampled")


def update_steppers(config: TrainConfig, device: torch.device) -> dict[str, Callable[[], object]]:
    """Closures doing one update of one agent, per kind: `fixed` (`update_on` a batch sampled once
    from a buffer of random MT-shaped transitions) and `sampled` (`update_from_buffer`)."""
    agent, buffer, gen = agent_with_random_buffer(config, device)
    batch = buffer.sample(config.batch_per_task, gen)
    return {
        "fixed": lambda: agent.update_on(batch),
        "sampled": lambda: agent.update_from_buffer(buffer, config.batch_per_task, gen),
    }


def our_rates(bench: Bench, steppers: dict[str, Callable[[], object]], width: int) -> dict[str, float]:
    """Updates/s of each kind (the anchor's protocol), one kind after the other."""
    block = per_block(width, bench.device)
    return {kind: block_rate(step, bench.device, block) for kind, step in steppers.items()}


def measure_updates(bench: Bench) -> dict[tuple, float]:
    """The update alone: every mode and precision at each width (MTMHSAC), archs at their defaults;
    end to end (`update`) and on a fixed batch (`update_fixed`). Returns the end-to-end rates."""
    rates: dict[tuple, float] = {}
    args = bench.args
    for arch, width in [("mtmhsac", w) for w in args.widths] + [(a, None) for a in args.archs]:
        for mode in args.modes:
            for precision in args.precisions:
                if bench.over_budget(f"update {arch} {width} {mode} {precision}"):
                    continue
                setting = {"mode": mode, "precision": precision}
                config = bench.config(arch, width, update_mode=mode, matmul_precision=precision)
                try:
                    kinds = our_rates(bench, update_steppers(config, bench.device), config.actor_width)
                except Exception as exc:  # one failing setting must not lose the others' numbers
                    bench.record(
                        "update", arch, width, math.nan, "updates/s", **setting, note=f"failed: {exc!s:.120}"
                    )
                    continue
                rates[(arch, width, mode, precision)] = kinds["sampled"]
                bench.record("update", arch, width, kinds["sampled"], "updates/s", **setting, note="sampled")
                bench.record(
                    "update_fixed", arch, width, kinds["fixed"], "updates/s", **setting, note="fixed batch"
                )
    return rates


def jax_rate(args: argparse.Namespace, width: int, n: int, block: int) -> float:
    """The authors' update at this width (their code from --authors-code), in a fresh process."""
    cmd = [args.jax_python, str(args.jax_bench), "--authors-code", str(args.authors_code)]
    cmd += ["--width", str(width), "--tasks", str(n), "--per-task", "128", "--per-block", str(block)]
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "WANDB_MODE": "disabled"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"jax bench failed: {out.stderr.strip().splitlines()[-1:]}")
    return float(json.loads(line[len("RESULT ") :])["updates_per_s_median"])


def jax_steppers(bench: Bench, width: int) -> dict[tuple[str, str], dict]:
    """Our steppers per --jax-modes x --jax-precisions at this width, built (and compiled) once for
    every round; a setting that fails to build is recorded and left out."""
    steppers = {}
    for mode in bench.args.jax_modes:
        for precision in bench.args.jax_precisions:
            config = bench.config("mtmhsac", width, update_mode=mode, matmul_precision=precision)
            try:
                steppers[(mode, precision)] = update_steppers(config, bench.device)
            except Exception as exc:
                note = f"failed: {exc!s:.120}"
                bench.record(
                    "jax_ratio",
                    "mtmhsac",
                    width,
                    math.nan,
                    "ours/JAX",
                    mode=mode,
                    precision=precision,
                    note=note,
                )
    return steppers


def measure_jax(bench: Bench) -> None:
    """The authors' JAX update, interleaved round by round with ours at each --jax-modes and
    --jax-precisions; per setting the ratio of medians like for like (our update on a fixed batch, as
    their anchor times theirs) and end to end (ours sampling its batch): never two absolute numbers
    from different runs."""
    args, device = bench.args, bench.device
    for width in args.jax_widths:
        steppers = jax_steppers(bench, width)
        ours: dict[tuple, list[float]] = {(*s, kind): [] for s in steppers for kind in KINDS}
        theirs: list[float] = []
        for _ in range(args.jax_rounds):
            if bench.over_budget(f"jax round at width {width}"):
                break
            for setting, steps in steppers.items():
                for kind, rate in our_rates(bench, steps, width).items():
                    ours[(*setting, kind)].append(rate)
            try:
                theirs.append(jax_rate(args, width, len(bench.tasks), per_block(width, device)))
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                bench.record(
                    "jax_update", "authors", width, math.nan, "updates/s", note=f"failed: {exc!s:.160}"
                )
                break
        if device.type == "cuda" and not bench.over_budget(f"kernel profile at width {width}"):
            record_kernels(bench, width, steppers)
        del steppers  # free this width's agents and graphs before the next
        if theirs:
            record_ratios(bench, width, statistics.median(theirs), ours)


def kernel_profile(step: Callable[[], object], device: torch.device, updates: int = 20) -> dict[str, float]:
    """Per update (after warm-up and capture): the GPU kernels run, their summed time and the wall
    time; wall minus kernel time is what launch gaps and host work cost (torch.profiler, CUPTI)."""
    for _ in range(3):
        step()
    sync(device)
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(updates):
            step()
        sync(device)
        wall = time.perf_counter() - start
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy_us = sum(e.time_range.elapsed_us() for e in kernels)
    return {
        "kernels": len(kernels) / updates,
        "kernel_us": busy_us / updates,
        "wall_us": 1e6 * wall / updates,
    }


def record_kernels(bench: Bench, width: int, steppers: dict[tuple[str, str], dict]) -> None:
    """The kernel profile of each setting's update on a fixed batch (what the JAX anchor times)."""
    for (mode, precision), steps in steppers.items():
        try:
            found = kernel_profile(steps["fixed"], bench.device)
        except Exception as exc:  # a profiler without CUPTI must not lose the ratios
            print(f"kernel profile failed at width {width} {mode}/{precision}: {exc!s:.160}", flush=True)
            continue
        setting = {"mode": mode, "precision": precision}
        busy = f"kernels run {found['kernel_us'] / found['wall_us']:.0%} of the update's wall time"
        bench.record(
            "kernels", "mtmhsac", width, found["kernels"], "kernels/update", **setting, note="fixed batch"
        )
        bench.record("kernel_time", "mtmhsac", width, found["kernel_us"], "us/update", **setting, note=busy)
        bench.record(
            "update_wall", "mtmhsac", width, found["wall_us"], "us/update", **setting, note="profiled"
        )


def record_ratios(bench: Bench, width: int, jax_median: float, ours: dict[tuple, list[float]]) -> None:
    """The JAX median and, per setting and kind, our interleaved median and ours/JAX."""
    bench.record(
        "jax_update", "authors", width, jax_median, "updates/s", note="TF32 (JAX default), no sampling"
    )
    for (mode, precision, kind), rates in ours.items():
        if not rates:
            continue
        setting, like = {"mode": mode, "precision": precision}, kind == "fixed"
        name = "update_fixed_interleaved" if like else "update_interleaved"
        note = "like for like: a fixed batch, as the anchor" if like else "end to end: sampling included"
        ours_median = statistics.median(rates)
        bench.record(name, "mtmhsac", width, ours_median, "updates/s", **setting, note=note)
        ratio = "jax_ratio" if like else "jax_ratio_end_to_end"
        bench.record(ratio, "mtmhsac", width, ours_median / jax_median, "ours/JAX", **setting, note=note)
