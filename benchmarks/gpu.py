"""GPU throughput in one command: env stepping, the update (eager/graph x precision), the whole loop
(exact order and overlap), and the authors' JAX update at the same shapes, interleaved with ours.

    python benchmarks/gpu.py                                          # about 8 minutes on one GPU
    python benchmarks/gpu.py --authors-code PATH/TO/rainx0r-mtrl --jax-python PATH/TO/venv/bin/python
    python benchmarks/gpu.py --device cpu --task-set mt1 --widths 32 --archs --loop-widths 32  # a smoke run

Protocol (as /work/shared/anchors/README.md fixes it for the JAX anchor): 3 warm-up updates, then
blocks of n updates, each ending in a device sync; the median block rate. Ours is timed by
`update_from_buffer` (sampling included, which the JAX anchor leaves out: a conservative ratio).
Writes benchmarks/results/gpu-<machine>-<date>.csv (every measurement) and replaces the loop rows
of benchmarks/results/runtime.csv for the configurations measured, with the settings in `source`,
and their GPU-busy fraction (loop rate / update-alone rate) in gpu_share.csv (runs per GPU).
The authors' code is read from the path passed, never copied; the JAX harness runs as a separate
process (its own Python, `XLA_PYTHON_CLIENT_PREALLOCATE=false`) between our measurements.
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
from collections.abc import Callable
from pathlib import Path

import torch
from throughput import agent_with_random_buffer, random_action_rate  # benchmarks/ is the script's folder

import mtrl.train
from mtrl.config import MATMUL_PRECISIONS, UPDATE_MODES, TrainConfig
from mtrl.envs.benchmarks import EPISODE_LENGTH, task_names
from mtrl.envs.vector import make_vector_env
from mtrl.run_setup import pick_device
from mtrl.runtime import COLUMNS as RUNTIME_COLUMNS
from mtrl.runtime import KEY_COLUMNS, SHARE_COLUMNS
from mtrl.train import Trainer

RESULTS = Path(__file__).parent / "results"
FIELDS = ["benchmark", "arch", "width", "mode", "precision", "overlap", "value", "unit", "note"]
ANCHOR = Path("/work/shared/anchors/jax_update_bench.py")


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


def anchor_block(width: int) -> int:
    return 15 if width <= 400 else 4  # the anchor's default block length


def make_config(args: argparse.Namespace, arch: str, width: int | None, **settings) -> TrainConfig:
    values = {"task_set": args.task_set, "arch": arch, "device": args.device, **settings}
    if width is not None:
        values.update(actor_width=width, critic_width=width)
    return TrainConfig.from_dict(values)


def update_stepper(config: TrainConfig, device: torch.device) -> Callable[[], object]:
    """A closure doing one `update_from_buffer` on a buffer of random MT-shaped transitions."""
    agent, buffer, gen = agent_with_random_buffer(config, device)
    return lambda: agent.update_from_buffer(buffer, config.batch_per_task, gen)


def jax_rate(args: argparse.Namespace, width: int, n: int) -> float:
    """The authors' update at this width (their code from --authors-code), in a fresh process."""
    cmd = [args.jax_python, str(args.jax_bench), "--authors-code", str(args.authors_code)]
    cmd += ["--width", str(width), "--tasks", str(n), "--per-task", "128"]
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "WANDB_MODE": "disabled"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"jax bench failed: {out.stderr.strip().splitlines()[-1:]}")
    return float(json.loads(line[len("RESULT ") :])["updates_per_s_median"])


class SharedEnvs:
    """One async vector env reused by every loop measurement (spawning N workers per config costs
    more than the measurement); `close` is left to the benchmark."""

    def __init__(self, tasks: list[str]) -> None:
        self.envs = make_vector_env(tasks, seed=0, strategy="async")

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


def write_runtime(rows: list[dict], path: Path, columns: tuple[str, ...] = RUNTIME_COLUMNS) -> None:
    """Replace rows of the same (device, task_set, arch, widths, depth) in runtime.csv (or
    gpu_share.csv), keep others."""
    key = lambda r: tuple(str(r[c]) for c in columns[:6])  # noqa: E731
    old = list(csv.DictReader(path.open())) if path.exists() else []
    new_keys = {key(r) for r in rows}
    kept = [r for r in old if key(r) not in new_keys]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(kept + rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--task-set", default="mt10")
    parser.add_argument("--widths", type=int, nargs="*", default=[256, 400, 1024, 2048, 4096, 8192])
    parser.add_argument("--archs", nargs="*", default=["sm", "paco", "moore"], help="at their defaults")
    parser.add_argument("--modes", nargs="+", default=list(UPDATE_MODES))
    parser.add_argument("--precisions", nargs="+", default=list(MATMUL_PRECISIONS))
    parser.add_argument("--env-steps", type=int, default=1_000, help="vector steps")
    parser.add_argument("--loop-widths", type=int, nargs="*", default=[256, 400, 1024, 4096])
    parser.add_argument("--loop-steps", type=int, default=300, help="timed vector steps per loop config")
    parser.add_argument("--fast", default="graph,tf32", help="mode,precision of the overlapped loop")
    parser.add_argument("--runtime", default="eager,float32,exact", help="setting written to runtime.csv")
    parser.add_argument("--authors-code", type=Path, help="checkout of rainx0r/mtrl for the JAX update")
    parser.add_argument("--jax-python", default="python", help="a Python with jax, flax, optax, distrax")
    parser.add_argument("--jax-bench", type=Path, default=ANCHOR)
    parser.add_argument("--jax-widths", type=int, nargs="*", default=[400, 1024])
    parser.add_argument("--jax-rounds", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=440, help="skip optional parts after this")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = pick_device(args.device)
    torch.set_num_threads(1)
    started = time.time()
    tasks = list(task_names(args.task_set))
    n = len(tasks)
    date = time.strftime("%Y-%m-%d")
    name = machine(device)
    rows: list[dict] = []

    def record(benchmark: str, arch: str, width, value: float, unit: str, **extra) -> None:
        row = {f: "" for f in FIELDS} | {"benchmark": benchmark, "arch": arch, "width": width}
        row |= {"value": round(value, 3), "unit": unit, **extra}
        rows.append(row)
        print(f"{benchmark:10s} {arch:8s} {width!s:>6s} {extra}  {value:10.3f} {unit}", flush=True)

    def over_budget(what: str) -> bool:
        if time.time() - started < args.budget_s:
            return False
        print(f"skipped (over --budget-s): {what}", flush=True)
        return True

    # 1. env stepping alone (async, N workers), also the loop's envs
    shared = SharedEnvs(tasks)
    env_sps = random_action_rate(shared.envs, args.env_steps)  # the async vector env alone
    record("env", "-", "-", env_sps, "transitions/s", note=f"async, {n} workers")

    # 2. the update alone: every mode and precision at each width (MTMHSAC), archs at their defaults
    update_rate: dict[tuple, float] = {}
    configs = [("mtmhsac", w) for w in args.widths] + [(a, None) for a in args.archs]
    for arch, width in configs:
        for mode in args.modes:
            for precision in args.precisions:
                if over_budget(f"update {arch} {width} {mode} {precision}"):
                    continue
                try:
                    config = make_config(args, arch, width, update_mode=mode, matmul_precision=precision)
                    step = update_stepper(config, device)
                    rate = block_rate(step, device, anchor_block(config.actor_width))
                except Exception as exc:  # one failing setting must not lose the others' numbers
                    record("update", arch, width or "default", math.nan, "updates/s", mode=mode,
                           precision=precision, note=f"failed: {exc!s:.120}")  # fmt: skip
                    continue
                update_rate[(arch, width, mode, precision)] = rate
                record("update", arch, width or "default", rate, "updates/s", mode=mode, precision=precision)

    # 3. the authors' JAX update, interleaved with ours at the same shapes
    if args.authors_code and args.jax_bench.exists() and device.type == "cuda":
        fast_mode, fast_precision = args.fast.split(",")
        for width in args.jax_widths:
            ours: dict[str, list[float]] = {"tf32": [], "float32": []}
            theirs: list[float] = []
            for _ in range(args.jax_rounds):
                if over_budget(f"jax round at width {width}"):
                    break
                for precision in ours:
                    config = make_config(
                        args, "mtmhsac", width, update_mode="graph", matmul_precision=precision
                    )
                    step = update_stepper(config, device)
                    ours[precision].append(block_rate(step, device, anchor_block(width)))
                try:
                    theirs.append(jax_rate(args, width, n))
                except Exception as exc:
                    note = f"failed: {exc!s:.160}"
                    record("jax_update", "authors", width, math.nan, "updates/s", note=note)
                    break
            if theirs and ours["tf32"]:
                jax_median = statistics.median(theirs)
                record("jax_update", "authors", width, jax_median, "updates/s", note="TF32 (JAX default)")
                for precision, rates in ours.items():
                    ratio = statistics.median(rates) / jax_median
                    extra = {"mode": "graph", "precision": precision}
                    record("jax_ratio", "mtmhsac", width, ratio, "ours/JAX", **extra)
    elif args.authors_code:
        print("JAX comparison skipped: needs --device cuda and the anchor script", flush=True)

    # 4. the whole loop: exact order with the reference update, and overlapped with the fast one
    mtrl.train.make_vector_env = shared  # every Trainer reuses the running env workers
    settings = {"eager,float32,exact": ("eager", "float32", False)}
    fast_mode, fast_precision = args.fast.split(",")
    settings[f"{args.fast},overlap"] = (fast_mode, fast_precision, True)
    settings[f"{args.fast},exact"] = (fast_mode, fast_precision, False)
    runtime_rows, share_rows = [], []
    torch_version = f"torch {torch.__version__}"
    loop_configs = [("mtmhsac", w) for w in args.loop_widths] + [(a, None) for a in args.archs]
    for arch, width in loop_configs:
        for label, (mode, precision, overlap) in settings.items():
            if over_budget(f"loop {arch} {width} {label}"):
                continue
            config = make_config(
                args,
                arch,
                width,
                update_mode=mode,
                matmul_precision=precision,
                overlap=overlap,
                vector_strategy="async",
                warmup_steps_per_task=20,
                total_steps=2 * n * EPISODE_LENGTH,
                buffer_per_task=5_000,
                eval_episodes=1,
                probe_checkpoints=1,
            )
            sps = loop_rate(config, device, args.loop_steps)
            record("loop", arch, width or "default", sps, "transitions/s", mode=mode, precision=precision,
                   overlap=overlap, note=f"{sps / env_sps:.3f} x env alone")  # fmt: skip
            update = update_rate.get((arch, width, mode, precision))
            if update:
                t_env, t_update, t_loop = n / env_sps, 1 / update, n / sps  # seconds per vector step
                parts = max(t_env, t_update) if overlap else t_env + t_update
                record("loop_overhead", arch, width or "default", 100 * (1 - parts / t_loop), "%",
                       mode=mode, precision=precision, overlap=overlap)  # fmt: skip
            if label == args.runtime:
                runtime_rows.append(
                    {
                        "device": name if device.type == "cuda" else "cpu",  # as runtime_device
                        "task_set": args.task_set,
                        "arch": arch,
                        "actor_width": config.actor_width,
                        "critic_width": config.critic_width,
                        "depth": config.depth,
                        "transitions_per_s": round(sps, 2),
                        "measured_on": date,
                        "source": f"python benchmarks/gpu.py (loop, {label}; {name}; {torch_version})",
                    }
                )
                if update:  # the share of the loop's time the GPU computes: runs per GPU (mtrl.runtime)
                    share_rows.append(
                        {c: runtime_rows[-1][c] for c in KEY_COLUMNS}
                        | {"device": name, "loop_vector_steps_per_s": round(sps / n, 3)}
                        | {"update_per_s": round(update, 3), "busy_fraction": round(sps / n / update, 4)}
                        | {"measured_on": date, "source": runtime_rows[-1]["source"]}
                    )
    shared.envs.close()

    args.out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    out = args.out_dir / f"gpu-{slug}-{args.task_set}-{date}.csv"
    with out.open("w", newline="") as handle:
        handle.write(f"# {name}, torch {torch.__version__}, {args.task_set}, batch 128 x {n}, {date}\n")
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    if runtime_rows:
        write_runtime(runtime_rows, args.out_dir / "runtime.csv")
    if share_rows:
        write_runtime(share_rows, args.out_dir / "gpu_share.csv", SHARE_COLUMNS)
    print(f"wrote {out} and {len(runtime_rows)} runtime.csv rows in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
