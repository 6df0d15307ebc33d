"""Evidence that the agent learns: single-task reach (MT1) and a short MT10 run with fixed seeds.

Writes each eval curve to benchmarks/results/learning_<name>.csv and appends a summary row
(steps to >= 80% success, final success, machine) to benchmarks/results/learning_summary.csv.

  python benchmarks/learning_check.py reach     # MT1 reach-v3, paper hyper-parameters
  python benchmarks/learning_check.py mt10cpu   # MT10 at a 2-core CPU's size, 1M transitions (~1-2 h)
  python benchmarks/learning_check.py mt10      # MT10, paper sizes, short (for a GPU: --device cuda)
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
import numpy as np
import torch

from mtrl.config.settings import TrainConfig
from mtrl.envs.benchmarks import task_names
from mtrl.files import checkpoints as ckpt
from mtrl.run.train import train

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


CURVE_SCALARS = ("critic_loss", "actor_loss", "q_mean", "entropy")


def curves_from_train_h5(path: Path) -> dict:
    """Eval curve (mean and per task) and training scalars of a finished run."""
    with h5py.File(path) as handle:
        return {
            "tasks": json.loads(handle.attrs["tasks"]),
            "eval_step": handle["eval/step"][()],
            "success_mean": handle["eval/success_mean"][()],
            "success": handle["eval/success"][()],
            "train_step": handle["train/step"][()],
            **{k: handle[f"train/{k}"][()] for k in CURVE_SCALARS},
            "alpha_mean": handle["train/alpha"][()].mean(axis=1),
        }


def curves_from_resume(path: Path) -> dict:
    """The same curves from a resume checkpoint's log (a run that has not finished)."""
    state = ckpt.load(path)  # checksummed format (mtrl.files.checkpoints)
    log = state["log"]
    success = np.asarray(log["eval_success"], dtype=np.float64)
    config = TrainConfig.from_dict(state["config"])
    return {
        "tasks": list(task_names(config.task_set, config.mt1_task)),
        "eval_step": np.asarray(log["eval_step"]),
        "success_mean": success.mean(axis=1),
        "success": success,
        "train_step": np.asarray(log["train_step"]),
        **{k: np.asarray(log["train_scalars"][k]) for k in CURVE_SCALARS},
        "alpha_mean": np.asarray(log["train_alpha"]).mean(axis=1),
    }


def write_curves(name: str, curves: dict) -> None:
    """benchmarks/results/<name>.csv (eval, per task) and <name>_train.csv (losses, Q, alpha)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"{name}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "success_mean", *curves["tasks"]])
        rows = zip(curves["eval_step"].tolist(), curves["success_mean"], curves["success"], strict=True)
        for step, mean, per_task in rows:
            writer.writerow([step, f"{mean:.3f}", *(f"{v:.3f}" for v in per_task)])
    with open(RESULTS / f"{name}_train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", *CURVE_SCALARS, "alpha_mean"])
        for i, step in enumerate(curves["train_step"].tolist()):
            values = [curves[k][i] for k in (*CURVE_SCALARS, "alpha_mean")]
            writer.writerow([step, *(f"{v:.4g}" for v in values)])


def machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU x{torch.get_num_threads()}"
    cpu = platform.processor() or platform.machine()
    return f"{platform.node()} | {cpu} | {device} | torch {torch.__version__}"


SUMMARY_FIELDS = [
    "check",
    "seed",
    "total_steps",
    "steps_to_80pct",
    "final_success",
    "best_success",
    "wall_minutes",
    "machine",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=sorted(CHECKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (oversubscribing thrashes)")
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/tmp"))
    parser.add_argument("--total-steps", type=int, help="override the check's length (transitions)")
    parser.add_argument("--buffer-per-task", type=int, help="override the replay capacity per task")
    parser.add_argument("--max-q-value", type=float, help="clip TD targets and Q to +-this")
    parser.add_argument(
        "--partial", action="store_true", help="write the curves so far of a run in progress (no training)"
    )
    return parser.parse_args(argv)


def check_config(args: argparse.Namespace) -> tuple[TrainConfig, Path]:
    """The check's config with the command line's overrides, and its run directory."""
    given = [("total_steps", args.total_steps), ("buffer_per_task", args.buffer_per_task)]
    overrides = {
        key: value for key, value in [*given, ("max_q_value", args.max_q_value)] if value is not None
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
    return config, args.workdir / f"learning_{args.check}{variant}_s{args.seed}"


def report_partial(args: argparse.Namespace, config: TrainConfig, run_dir: Path) -> int:
    """A run still training (or cut off): its curves so far, from the resume checkpoint."""
    resume = run_dir / "checkpoints" / "resume.pt"
    if not resume.is_file():
        print(f"learning_check: error: {resume}: no resume checkpoint to report from", file=sys.stderr)
        return 2
    curves = curves_from_resume(resume)
    write_curves(f"{run_dir.name}_partial", curves)
    steps, success = curves["eval_step"], curves["success_mean"]
    print(f"{args.check}: partial, {curves['train_step'][-1]:,} of {config.total_steps:,} transitions")
    print(" ".join(f"{s}:{v:.2f}" for s, v in zip(steps.tolist(), success.tolist(), strict=True)))
    return 0


def append_summary(args: argparse.Namespace, config: TrainConfig, curves: dict, minutes: float) -> None:
    """One row of learning_summary.csv: when the run first reached 80 %, where it ended."""
    steps, success = curves["eval_step"], curves["success_mean"]
    reached = next((int(s) for s, v in zip(steps, success, strict=True) if v >= 0.8), None)
    summary = RESULTS / "learning_summary.csv"
    new = not summary.exists()
    with open(summary, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(SUMMARY_FIELDS)
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config, run_dir = check_config(args)
    if args.partial:
        return report_partial(args, config, run_dir)
    start = time.time()
    path = train(config, run_dir)
    curves = curves_from_train_h5(path)
    write_curves(run_dir.name, curves)
    append_summary(args, config, curves, (time.time() - start) / 60)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
