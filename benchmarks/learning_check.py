"""Evidence that the agent learns: single-task reach (MT1) and a short MT10 run with fixed seeds.

Writes each eval curve to benchmarks/results/learning_<name>.csv and appends a summary row
(steps to >= 80% success, final success, machine) to benchmarks/results/learning_summary.csv.

  python benchmarks/learning_check.py reach     # MT1 reach-v3, paper hyper-parameters
  python benchmarks/learning_check.py mt10      # MT10, short
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import h5py
import torch

from mtrl.config import TrainConfig
from mtrl.train import train

RESULTS = Path(__file__).parent / "results"
CHECKS = {
    "reach": dict(
        task_set="mt1",
        mt1_task="reach-v3",
        total_steps=150_000,
        eval_every=10_000,
        eval_episodes=20,
        checkpoint_every=10_000,
        log_every=5_000,
        probe_checkpoints=4,
        warmup_steps_per_task=4_000,
    ),
    "mt10cpu": dict(  # MT10 at a size a 2-core CPU runs for ~1M transitions in the background
        task_set="mt10",
        actor_width=256,
        critic_width=256,
        batch_per_task=32,
        total_steps=1_000_000,
        eval_every=50_000,
        eval_episodes=10,
        checkpoint_every=50_000,
        log_every=10_000,
        probe_checkpoints=4,
        warmup_steps_per_task=4_000,
    ),
    "mt10": dict(
        task_set="mt10",
        total_steps=100_000,
        eval_every=20_000,
        eval_episodes=5,
        checkpoint_every=20_000,
        log_every=10_000,
        probe_checkpoints=4,
        warmup_steps_per_task=4_000,
    ),
}


def machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU x{torch.get_num_threads()}"
    cpu = platform.processor() or platform.machine()
    return f"{platform.node()} | {cpu} | {device} | torch {torch.__version__}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=sorted(CHECKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (oversubscribing thrashes)")
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/tmp"))
    parser.add_argument("--total-steps", type=int, help="override the check's length (transitions)")
    parser.add_argument("--buffer-per-task", type=int, help="override the replay capacity per task")
    parser.add_argument("--max-q-value", type=float, help="clip TD targets and Q to +-this")
    args = parser.parse_args()
    overrides = {
        key: value
        for key, value in [
            ("total_steps", args.total_steps),
            ("buffer_per_task", args.buffer_per_task),
            ("max_q_value", args.max_q_value),
        ]
        if value is not None
    }
    config = TrainConfig.from_dict(
        {
            **CHECKS[args.check],
            **overrides,
            "seed": args.seed,
            "device": args.device,
            "torch_threads": args.threads,
            "vector_strategy": "sync",  # one process: on a few cores, env workers only compete
        }
    )
    variant = "".join(f"_{key}{value:g}" for key, value in sorted(overrides.items()) if key != "total_steps")
    run_dir = args.workdir / f"learning_{args.check}{variant}_s{args.seed}"
    start = time.time()
    path = train(config, run_dir)
    minutes = (time.time() - start) / 60
    with h5py.File(path) as handle:
        steps, success = handle["eval/step"][()], handle["eval/success_mean"][()]
        tasks = json.loads(handle.attrs["tasks"])
        per_task = handle["eval/success"][()]
        train_step = handle["train/step"][()]
        scalars = {k: handle[f"train/{k}"][()] for k in ("critic_loss", "actor_loss", "q_mean", "entropy")}
        alpha_mean = handle["train/alpha"][()].mean(axis=1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = run_dir.name
    with open(RESULTS / f"{name}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "success_mean", *tasks])
        for row in zip(steps.tolist(), success.tolist(), per_task.tolist(), strict=True):
            writer.writerow([row[0], f"{row[1]:.3f}", *(f"{v:.3f}" for v in row[2])])
    with open(RESULTS / f"{name}_train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", *scalars, "alpha_mean"])
        for i, step in enumerate(train_step.tolist()):
            writer.writerow([step, *(f"{v[i]:.4g}" for v in scalars.values()), f"{alpha_mean[i]:.4g}"])
    reached = next((int(s) for s, v in zip(steps, success, strict=True) if v >= 0.8), None)
    summary = RESULTS / "learning_summary.csv"
    new = not summary.exists()
    with open(summary, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(
                [
                    "check",
                    "seed",
                    "total_steps",
                    "steps_to_80pct",
                    "final_success",
                    "best_success",
                    "wall_minutes",
                    "machine",
                ]
            )
        writer.writerow(
            [
                args.check,
                args.seed,
                config.total_steps,
                reached if reached is not None else "not reached",
                f"{success[-1]:.3f}",
                f"{success.max():.3f}",
                f"{minutes:.1f}",
                machine(),
            ]
        )
    print(f"{args.check}: final success {success[-1]:.2f}, >=80% at {reached} steps, {minutes:.1f} min")
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
