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
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch._dynamo.config
from gpu_update import (  # benchmarks/ is the script's folder
    FIELDS,
    Bench,
    machine,
    measure_jax,
    measure_updates,
    sync,
)
from throughput import random_action_rate

import mtrl.run.train
from mtrl.config.settings import MATMUL_PRECISIONS, UPDATE_MODES, TrainConfig
from mtrl.config.speed import AUTO
from mtrl.envs.benchmarks import EPISODE_LENGTH
from mtrl.envs.vector import make_vector_env
from mtrl.run.setup import pick_device
from mtrl.run.train import Trainer
from mtrl.study.gpu_share import SHARE_COLUMNS, gpu_mem_mb
from mtrl.study.runtime import COLUMNS as RUNTIME_COLUMNS
from mtrl.study.runtime import KEY_COLUMNS, SETTING_COLUMNS, Setting

RESULTS = Path(__file__).parent / "results"
# The loop settings measured by default: the study's GPU default (`auto` on CUDA) in the exact
# order and overlapped, and the reference.
LOOP_SETTINGS = ("graph,tf32,exact", "graph,tf32,overlap", "eager,float32,exact")


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
        obs, _ = trainer.state.envs.reset()

        def advance(count: int) -> None:
            nonlocal obs
            for _ in range(count):
                obs, _, truncated = trainer.collect_and_update(obs)
                if truncated.all():
                    obs, _ = trainer.state.envs.reset()

        advance(config.warmup_steps_per_task + 5)  # random-action warm-up, first updates, capture
        sync(device)
        start = time.perf_counter()
        advance(steps)
        float(trainer.state.window.sums.sum())  # the metrics are on the device: wait for the last update
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
    estimate runs per GPU are planned with (mtrl.study.gpu_share.gpu_mem_mb, for this short run's buffer)."""
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
    make_envs, mtrl.run.train.make_vector_env = mtrl.run.train.make_vector_env, shared  # Trainers reuse them
    try:
        return measure_loops(bench, env_sps, update_rate)
    finally:
        mtrl.run.train.make_vector_env = make_envs
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
