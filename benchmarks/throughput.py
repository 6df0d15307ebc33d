"""Throughput of the training node's parts and of the whole loop, written to a CSV with the machine.

env      MT10 random-action stepping alone (transitions/s), sync vector env in one process
update   one SAC update (sample + critic/actor/alpha steps + Polyak) alone, batch 128 x N (updates/s)
loop     the real training loop, `mtrl.run.train.train`, after warm-up (transitions/s), with the
         overhead it adds over the sum of its two parts: 1 - (t_env + t_update) / t_loop per step

python benchmarks/throughput.py                      # CPU-sized defaults
python benchmarks/throughput.py --widths 400 1024 4096 --loop-width 400 --device cuda
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from mtrl.agents.buffers import MultiTaskReplayBuffer
from mtrl.agents.sac import MultiTaskSAC
from mtrl.config.settings import TrainConfig
from mtrl.config.speed import resolve_speed
from mtrl.envs.benchmarks import ACTION_DIM, OBS_DIM, task_names
from mtrl.envs.vector import make_vector_env
from mtrl.run.setup import pick_device, set_matmul_precision
from mtrl.run.train import train

RESULTS = Path(__file__).parent / "results" / "throughput.csv"
FIELDS = ["benchmark", "arch", "width", "task_set", "batch", "value", "unit", "device", "machine", "date"]


def append_rows(path: Path, fields: list[str], rows: list[dict]) -> None:
    """Append rows to a results CSV, writing its header first if the file is new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerows(rows)
    print(f"appended {len(rows)} rows to {path}")


def machine_name(device: torch.device) -> str:
    gpu = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{torch.get_num_threads()} CPU threads"
    )
    return f"{platform.processor() or platform.machine()}, {gpu}, torch {torch.__version__}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_action_rate(envs, vector_steps: int) -> float:
    """Transitions/s of a vector env stepped alone with fixed-seed random actions (reset first)."""
    envs.reset()
    n = envs.num_envs
    actions = np.random.default_rng(0).uniform(-1, 1, (vector_steps, n, ACTION_DIM)).astype(np.float32)
    start = time.perf_counter()
    for t in range(vector_steps):
        _, _, _, truncated, _ = envs.step(actions[t])
        if truncated.all():
            envs.reset()
    return vector_steps * n / (time.perf_counter() - start)


def env_steps_per_second(task_set: str, vector_steps: int) -> float:
    envs = make_vector_env(task_names(task_set), seed=0, strategy="sync")
    rate = random_action_rate(envs, vector_steps)
    envs.close()
    return rate


def agent_with_random_buffer(
    config: TrainConfig, device: torch.device
) -> tuple[MultiTaskSAC, MultiTaskReplayBuffer, torch.Generator]:
    """A fixed-seed agent, a buffer of 1,000 random MT-shaped transitions per task, and a sampler."""
    n = config.num_tasks
    speed = resolve_speed(config.update_mode, config.matmul_precision, device.type)
    set_matmul_precision(speed.matmul_precision, device)  # process-wide, as the trainer sets it
    torch.manual_seed(0)
    agent = MultiTaskSAC(config, OBS_DIM + n, ACTION_DIM, device)
    buffer = MultiTaskReplayBuffer(n, 1_000, OBS_DIM, ACTION_DIM, device)
    rng = np.random.default_rng(0)
    for _ in range(1_000):
        obs = rng.standard_normal((n, OBS_DIM + n)).astype(np.float32)
        buffer.add(obs, rng.uniform(-1, 1, (n, ACTION_DIM)), rng.standard_normal(n), obs, np.zeros(n))
    return agent, buffer, torch.Generator(device=device).manual_seed(0)


def updates_per_second(config: TrainConfig, device: torch.device, updates: int, warmup: int = 2) -> float:
    agent, buffer, gen = agent_with_random_buffer(config, device)
    for _ in range(warmup):
        agent.update(buffer.sample(config.batch_per_task, gen))
    sync(device)
    start = time.perf_counter()
    for _ in range(updates):
        agent.update(buffer.sample(config.batch_per_task, gen))
    sync(device)
    return updates / (time.perf_counter() - start)


def loop_steps_per_second(config: TrainConfig, workdir: Path) -> float:
    """Transitions/s of the real loop, from train.h5's per-segment rates after warm-up and compile."""
    path = train(config, workdir / "loop", quiet=True)
    with h5py.File(path) as handle:
        sps = handle["train/sps"][()]
    return float(np.median(sps[1:-1]))  # first segment holds warm-up, last one the final evaluation


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--task-set", default="mt10")
    parser.add_argument("--widths", type=int, nargs="+", default=[400, 1024, 4096])
    parser.add_argument("--archs", nargs="+", default=["sm", "paco", "moore"])
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--env-steps", type=int, default=2_000)
    parser.add_argument("--loop-width", type=int, default=400)
    parser.add_argument("--loop-episodes", type=int, default=6, help="episodes per env in the loop run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def loop_config(base: dict, width: int, episodes: int, n: int) -> TrainConfig:
    """The loop benchmark's run: `episodes` training episodes per env after one of warm-up, sync envs."""
    return TrainConfig.from_dict(
        {
            **base,
            "actor_width": width,
            "critic_width": width,
            "vector_strategy": "sync",
            "total_steps": episodes * 500 * n,
            "warmup_steps_per_task": 500,
            "log_every": 500 * n,
            "eval_every": episodes * 500 * n,
            "eval_episodes": 1,
            "checkpoint_every": episodes * 500 * n,
            "probe_checkpoints": 1,
            "buffer_per_task": 5_000,
        }
    )


def measure_updates(args: argparse.Namespace, base: dict, device: torch.device, record) -> dict[int, float]:
    """Updates/s of MTMHSAC at each width and of each architecture at its default size."""
    n = len(task_names(args.task_set))
    update_rate: dict[int, float] = {}
    for width in args.widths:
        config = TrainConfig.from_dict({**base, "actor_width": width, "critic_width": width})
        update_rate[width] = updates_per_second(config, device, args.updates if width < 2048 else 3)
        record("update", "mtmhsac", width, update_rate[width], "updates/s", 128 * n)
    for arch in args.archs:
        config = TrainConfig.from_dict({**base, "arch": arch})
        rate = updates_per_second(config, device, args.updates)
        record("update", arch, "default", rate, "updates/s", 128 * n)
    return update_rate


def main() -> None:
    args = parse_args()
    device = pick_device(args.device)
    rows: list[dict] = []
    n = len(task_names(args.task_set))
    base = dict(task_set=args.task_set, device=str(device))

    def record(
        benchmark: str, arch: str, width: int | str, value: float, unit: str, batch: int | str = ""
    ) -> None:
        rows.append(
            dict(
                benchmark=benchmark,
                arch=arch,
                width=width,
                task_set=args.task_set,
                batch=batch,
                value=round(value, 2),
                unit=unit,
                device=device.type,
                machine=machine_name(device),
                date=time.strftime("%Y-%m-%d"),
            )
        )
        print(f"{benchmark:7s} {arch:8s} {width!s:>6s}  {value:10.2f} {unit}", flush=True)

    env_sps = env_steps_per_second(args.task_set, max(args.env_steps // n, 1))
    record("env", "-", "-", env_sps, "transitions/s")
    update_rate = measure_updates(args, base, device, record)
    width = args.loop_width
    config = loop_config(base, width, args.loop_episodes, n)
    if width not in update_rate:
        update_rate[width] = updates_per_second(config, device, args.updates)
    with tempfile.TemporaryDirectory() as tmp:
        loop_sps = loop_steps_per_second(config, Path(tmp))
    record("loop", "mtmhsac", width, loop_sps, "transitions/s", 128 * n)
    parts = 1 / env_sps + 1 / (update_rate[width] * n)  # seconds per transition spent in the two parts
    overhead = 1 - parts / (1 / loop_sps)
    record("loop_overhead", "mtmhsac", width, 100 * overhead, "% of loop time outside env step + update")

    append_rows(args.out, FIELDS, rows)


if __name__ == "__main__":
    main()
