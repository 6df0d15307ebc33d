"""GPU throughput in one command: env stepping, the update (eager/graph x precision), the whole loop
(exact order and overlap), and the authors' JAX update at the same shapes, interleaved with ours.

    python benchmarks/gpu.py                                          # about 8 minutes on one GPU
    python benchmarks/gpu.py --authors-code PATH/TO/rainx0r-mtrl --jax-bench PATH/TO/jax_update_bench.py \\
        --jax-python PATH/TO/venv/bin/python                         # with the authors' JAX update
    python benchmarks/gpu.py --device cpu --task-set mt1 --widths 32 --archs --loop-widths 32  # a smoke run

Protocol (the JAX anchor's, `jax_update_bench.py`): 3 warm-up updates, then blocks of n updates,
each ending in a device sync; the median block rate. Ours is timed by `update_from_buffer`
(sampling included, which the JAX anchor leaves out: a conservative ratio). The authors' code and
the anchor script are read from the paths passed, never copied; the anchor runs as a separate
process (its own Python, `XLA_PYTHON_CLIENT_PREALLOCATE=false`) between rounds of ours.

Writes to --out-dir (benchmarks/results/): gpu-<machine>-<task set>-<date>.csv with every
measurement, and for each loop configuration and setting measured a row of runtime.csv (its
transitions/s) and of gpu_share.csv (its GPU-busy fraction: loop rate / update-alone rate), each
with the update mode, precision and overlap it ran with, replacing rows of the same key.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch._dynamo.config
from throughput import agent_with_random_buffer, random_action_rate  # benchmarks/ is the script's folder

import mtrl.train
from mtrl.config import MATMUL_PRECISIONS, UPDATE_MODES, TrainConfig
from mtrl.envs.benchmarks import EPISODE_LENGTH, task_names
from mtrl.envs.vector import make_vector_env
from mtrl.gpu_share import SHARE_COLUMNS, gpu_mem_mb
from mtrl.run_setup import pick_device
from mtrl.runtime import COLUMNS as RUNTIME_COLUMNS
from mtrl.runtime import KEY_COLUMNS, SETTING_COLUMNS, Setting
from mtrl.speed import AUTO
from mtrl.train import Trainer

RESULTS = Path(__file__).parent / "results"
FIELDS = ["benchmark", "arch", "width", "mode", "precision", "overlap", "value", "unit", "note"]
# The loop settings measured by default: the study's GPU default (`auto` on CUDA) in the exact
# order and overlapped, and the reference.
LOOP_SETTINGS = ("graph,tf32,exact", "graph,tf32,overlap", "eager,float32,exact")


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


def parse_setting(text: str) -> Setting:
    """'graph,tf32,overlap' -> Setting('graph', 'tf32', True); the third part is exact or overlap."""
    mode, precision, order = (part.strip() for part in text.split(","))
    if mode not in UPDATE_MODES or precision not in MATMUL_PRECISIONS or order not in ("exact", "overlap"):
        raise argparse.ArgumentTypeError(f"not MODE,PRECISION,exact|overlap: {text!r}")
    return Setting(mode, precision, order == "overlap")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--task-set", default="mt10")
    parser.add_argument("--widths", type=int, nargs="*", default=[256, 400, 1024, 2048, 4096, 8192])
    parser.add_argument("--archs", nargs="*", default=["sm", "paco", "moore"], help="at their defaults")
    concrete_modes = [m for m in UPDATE_MODES if m != AUTO]
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["eager", "graph"],
        choices=concrete_modes,
        help="compiled: see --jax-modes",
    )
    precisions = [p for p in MATMUL_PRECISIONS if p != AUTO]
    parser.add_argument("--precisions", nargs="+", default=precisions, choices=precisions)
    parser.add_argument("--env-steps", type=int, default=1_000, help="vector steps")
    parser.add_argument("--loop-widths", type=int, nargs="*", default=[256, 400, 1024, 4096])
    parser.add_argument("--loop-steps", type=int, default=300, help="timed vector steps per loop config")
    parser.add_argument(
        "--loop-settings", type=parse_setting, nargs="+", default=[parse_setting(s) for s in LOOP_SETTINGS]
    )
    parser.add_argument("--authors-code", type=Path, help="checkout of rainx0r/mtrl for the JAX update")
    parser.add_argument("--jax-bench", type=Path, help="the anchor script jax_update_bench.py")
    parser.add_argument("--jax-python", default="python", help="a Python with jax, flax, optax, distrax")
    parser.add_argument("--jax-widths", type=int, nargs="*", default=[400, 1024, 4096])
    parser.add_argument("--jax-modes", nargs="+", default=["graph", "compiled"], choices=concrete_modes)
    parser.add_argument("--jax-precisions", nargs="+", default=["tf32"], choices=precisions)
    parser.add_argument("--jax-rounds", type=int, default=2)
    parser.add_argument("--jax-only", action="store_true", help="only ours/JAX (no env, update, loop parts)")
    parser.add_argument("--budget-s", type=float, default=440, help="skip optional parts after this")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.authors_code and not (args.jax_bench and args.jax_bench.is_file()):
        parser.error("--authors-code needs --jax-bench: the path of the anchor script jax_update_bench.py")
    if args.jax_only and not args.authors_code:
        parser.error("--jax-only needs --authors-code and --jax-bench")
    return args


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


class SharedEnvs:
    """One vector env (the trainer's default: shm workers) reused by every loop measurement (spawning
    N workers per config costs more than the measurement); `close` is left to the benchmark."""

    def __init__(self, tasks: list[str]) -> None:
        self.envs = make_vector_env(tasks, seed=0, strategy=TrainConfig.vector_strategy)

    def __call__(self, *args, **kwargs):
        return self.envs


def loop_rate(config: TrainConfig, device: torch.device, steps: int) -> float:
    """Transitions/s of `Trainer.collect_and_update` (the training step) after warm-up and capture."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, Path(tmp), quiet=True, provenance="benchmark", restart_stale=True)
        obs, _ = trainer.envs.reset()

        def advance(count: int) -> None:
            nonlocal obs
            for _ in range(count):
                obs, _, truncated = trainer.collect_and_update(obs)
                if truncated.all():
                    obs, _ = trainer.envs.reset()

        advance(config.warmup_steps_per_task + 5)  # random-action warm-up, first updates, capture
        sync(device)
        start = time.perf_counter()
        advance(steps)
        float(trainer.metric_sum.sum())  # the metrics are on the device: wait for the last update
        return steps * trainer.n / (time.perf_counter() - start)


def loop_config(bench: Bench, arch: str, width: int | None, setting: Setting) -> TrainConfig:
    """A short run of the architecture with this setting: 20 warm-up steps, a small buffer."""
    n = len(bench.tasks)
    return bench.config(
        arch,
        width,
        update_mode=setting.update_mode,
        matmul_precision=setting.matmul_precision,
        overlap=setting.overlap,
        eval_mode="blocking",  # the loop alone: no evaluation process beside it
        warmup_steps_per_task=20,
        total_steps=2 * n * EPISODE_LENGTH,
        buffer_per_task=5_000,
        eval_episodes=1,
        probe_checkpoints=1,
    )


def table_rows(
    bench: Bench, config: TrainConfig, setting: Setting, sps: float, update: float | None
) -> tuple[dict, dict | None]:
    """The loop's runtime.csv row and, when its update alone was measured, its gpu_share.csv row."""
    name, n = machine(bench.device), len(bench.tasks)
    source = f"python benchmarks/gpu.py (loop, {setting}; {name}; torch {torch.__version__})"
    key = {
        "device": name if bench.device.type == "cuda" else "cpu",  # as train_resources.runtime_device
        "task_set": bench.args.task_set,
        "arch": config.arch,
        "actor_width": config.actor_width,
        "critic_width": config.critic_width,
        "depth": config.depth,
        **dict(zip(SETTING_COLUMNS, setting, strict=True)),
    }
    dated = {"measured_on": time.strftime("%Y-%m-%d"), "source": source}
    runtime = key | {"transitions_per_s": round(sps, 2)} | dated
    if not update:
        return runtime, None
    busy = {"loop_vector_steps_per_s": round(sps / n, 3), "update_per_s": round(update, 3)}
    # One update per vector step: the loop cannot outpace its update; a ratio over 1 is timing noise
    # of two separate measurements (seen on a loaded CPU), and the device is then busy all the time.
    fraction = min(1.0, round(sps / n / update, 4))
    return runtime, key | busy | {"busy_fraction": fraction} | dated


def measure_loops(bench: Bench, env_sps: float, update_rate: dict[tuple, float]) -> tuple[list, list]:
    """The whole loop for each configuration and setting, its overhead, and its table rows."""
    args, n = bench.args, len(bench.tasks)
    runtime_rows, share_rows = [], []
    for arch, width in [("mtmhsac", w) for w in args.loop_widths] + [(a, None) for a in args.archs]:
        for setting in args.loop_settings:
            if bench.over_budget(f"loop {arch} {width} {setting}"):
                continue
            config = loop_config(bench, arch, width, setting)
            if bench.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(bench.device)
            sps = loop_rate(config, bench.device, args.loop_steps)
            record_gpu_memory(bench, config, setting)
            mode, precision, overlap = setting
            extra = {"mode": mode, "precision": precision, "overlap": overlap}
            bench.record(
                "loop", arch, width, sps, "transitions/s", **extra, note=f"{sps / env_sps:.3f} x env alone"
            )
            update = update_rate.get((arch, width, mode, precision))
            if update:
                t_env, t_update, t_loop = n / env_sps, 1 / update, n / sps  # seconds per vector step
                parts = max(t_env, t_update) if overlap else t_env + t_update
                bench.record("loop_overhead", arch, width, 100 * (1 - parts / t_loop), "%", **extra)
            runtime, share = table_rows(bench, config, setting, sps, update)
            runtime_rows.append(runtime)
            share_rows += [share] if share else []
    return runtime_rows, share_rows


def record_gpu_memory(bench: Bench, config: TrainConfig, setting: Setting) -> None:
    """The loop's peak GPU memory held by torch (a process adds its CUDA context) beside the
    estimate runs per GPU are planned with (mtrl.gpu_share.gpu_mem_mb, for this short run's buffer)."""
    if bench.device.type != "cuda":
        return
    peak = torch.cuda.max_memory_reserved(bench.device) / 2**20
    width = config.actor_width if config.arch == "mtmhsac" else None
    note = f"{setting}; estimate {gpu_mem_mb(config.resolved())} MB with a process's context"
    bench.record("gpu_memory", config.arch, width, peak, "MB reserved", note=note)


def write_runtime(rows: list[dict], path: Path, columns: Sequence[str] = RUNTIME_COLUMNS) -> None:
    """Replace rows of the same key (device, task set, arch, widths, depth and setting) in runtime.csv
    (or gpu_share.csv), keep the others."""
    key_columns = (*KEY_COLUMNS, *SETTING_COLUMNS)
    key = lambda r: tuple(str(r[c]).lower() for c in key_columns)  # noqa: E731
    old = list(csv.DictReader(path.open())) if path.exists() else []
    new_keys = {key(r) for r in rows}
    kept = [r for r in old if key(r) not in new_keys]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(kept + rows)


def write_results(bench: Bench, runtime_rows: list[dict], share_rows: list[dict]) -> Path:
    """Every measurement to gpu-<machine>-<task set>-<date>.csv; the loop rows to the two tables."""
    out_dir, name = bench.args.out_dir, machine(bench.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    date = time.strftime("%Y-%m-%d")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    out = out_dir / f"gpu-{slug}-{bench.args.task_set}-{date}.csv"
    with out.open("w", newline="") as handle:
        n = len(bench.tasks)
        handle.write(f"# {name}, torch {torch.__version__}, {bench.args.task_set}, batch 128 x {n}, {date}\n")
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(bench.rows)
    if runtime_rows:
        write_runtime(runtime_rows, out_dir / "runtime.csv")
    if share_rows:
        write_runtime(share_rows, out_dir / "gpu_share.csv", SHARE_COLUMNS)
    return out


def measure_parts(bench: Bench) -> tuple[list, list]:
    """Env stepping, the update alone and the loops; their runtime.csv and gpu_share.csv rows."""
    shared = SharedEnvs(bench.tasks)  # the vector env alone, then the loop's envs
    env_sps = random_action_rate(shared.envs, bench.args.env_steps)
    workers = len(getattr(shared.envs, "groups", ())) or len(bench.tasks)
    bench.record(
        "env", "-", "-", env_sps, "transitions/s", note=f"{TrainConfig.vector_strategy}, {workers} workers"
    )
    update_rate = measure_updates(bench)
    make_envs, mtrl.train.make_vector_env = mtrl.train.make_vector_env, shared  # Trainers reuse them
    try:
        return measure_loops(bench, env_sps, update_rate)
    finally:
        mtrl.train.make_vector_env = make_envs
        shared.envs.close()


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    bench = Bench(args, pick_device(args.device))
    torch.set_num_threads(1)
    # compiled mode: dynamo keeps compiled code per function across agents, one entry per width and
    # precision; past its limit it would silently run eager code under the name `compiled`
    torch._dynamo.config.recompile_limit = 64
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    runtime_rows, share_rows = ([], []) if args.jax_only else measure_parts(bench)
    if args.authors_code and bench.device.type == "cuda":  # last: the loop rows matter more
        measure_jax(bench)
    elif args.authors_code:
        print("JAX comparison skipped: needs --device cuda", flush=True)
    out = write_results(bench, runtime_rows, share_rows)
    print(f"wrote {out} and {len(runtime_rows)} runtime.csv rows in {time.time() - bench.started:.0f} s")
    return out


if __name__ == "__main__":
    main()
