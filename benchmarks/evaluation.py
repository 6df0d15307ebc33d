"""What an evaluation costs, and what it costs training to run it in the background, to a CSV.

cost     one MT10 evaluation at `--episodes` episodes per task, the way the trainer ran it before
         (`mtrl.envs.vector.evaluate`: full 500-step episodes, every env stepped in lockstep, on a
         sync vector env, the faster of sync and gymnasium async on a 2-core CPU) and as it runs now
         (`mtrl.envs.evaluation.evaluate_until_success`: episodes end at their first success, finished
         envs rest, shm workers), for two policies: an untrained width-400 actor (never succeeds:
         every episode runs 500 steps, the worst case) and Meta-World's scripted experts (succeed
         early: the best case); seconds, env transitions stepped and mean success
overlap  the training loop (MT10, width 400, batch 128 per task, the paper's settings) alone, then
         while a background evaluation (`--overlap-episodes` per task) runs beside it: the loop's
         rate in both, and how long the evaluation takes beside training vs alone. Training loses
         `overlapped seconds x (1 - rate beside / rate alone)` to a background evaluation and all of
         `seconds alone` to a blocking one: the smaller decides eval_mode's CPU default.

python benchmarks/evaluation.py                                  # both parts, MT10, 50 episodes
python benchmarks/evaluation.py --parts overlap --overlap-episodes 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from env_stepping import load, machine

from mtrl.envs.benchmarks import ACTION_DIM, OBS_DIM, task_names
from mtrl.envs.evaluation import Policy

RESULTS = Path(__file__).parent / "results" / "evaluation.csv"
FIELDS = ["part", "what", "policy", "task_set", "episodes", "value", "unit", "machine", "load", "date"]


class Experts:
    """Meta-World's scripted expert of each task, acting on the state part of each row."""

    def __init__(self, tasks: list[str]) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self.experts = [ENV_POLICY_MAP[name]() for name in tasks]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = [expert.get_action(o[:OBS_DIM]) for expert, o in zip(self.experts, obs, strict=True)]
        return np.clip(np.asarray(rows, dtype=np.float32), -1, 1)


def untrained_actor(config) -> Policy:
    """The evaluated policy of a freshly initialised actor (`mtrl.run.evaluator.ActorPolicy`)."""
    import torch

    from mtrl.nets import build_network

    torch.manual_seed(0)
    actor = build_network(config, "actor", OBS_DIM + config.num_tasks, 2 * ACTION_DIM)
    setup = eval_setup(config)
    return setup.policy_factory({k: v.clone() for k, v in actor.state_dict().items()})


def eval_setup(config, workers: int | None = None):
    from mtrl.run.evaluator import eval_setup_for_run

    tasks = task_names(config.task_set)
    return eval_setup_for_run(config, tasks, OBS_DIM + len(tasks), ACTION_DIM, workers)


def paper_config(task_set: str, episodes: int, **extra):
    from mtrl.config.settings import TrainConfig

    return TrainConfig.from_dict({"task_set": task_set, "eval_episodes": episodes, **extra})


def measure_cost(args: argparse.Namespace, record) -> None:
    """Old (full episodes, lockstep, sync) and new (until success, shm) evaluation of two policies."""
    from mtrl.envs.evaluation import evaluate_until_success
    from mtrl.envs.vector import evaluate, make_vector_env

    config = paper_config(args.task_set, args.episodes)
    tasks = list(task_names(args.task_set))
    policies = {"untrained actor (w400)": untrained_actor(config), "scripted experts": Experts(tasks)}
    for name, policy in policies.items():
        for method, strategy in (("old: full episodes, lockstep", "sync"), ("new: until success", "shm")):
            envs = make_vector_env(tasks, seed=0, strategy=strategy)
            start = time.perf_counter()
            run = evaluate if strategy == "sync" else evaluate_until_success
            result = run(envs, policy, args.episodes)
            seconds = time.perf_counter() - start
            envs.close()
            workers = len(getattr(envs, "groups", ())) or 1
            label = f"{method} ({strategy}, {workers} worker{'s' * (workers > 1)})"
            record("cost", f"{label}: seconds", name, seconds, "s")
            record("cost", f"{label}: env transitions", name, result.env_steps, "transitions")
            record("cost", f"{label}: mean success", name, float(result.success.mean()), "fraction")


def measure_overlap(args: argparse.Namespace, record) -> None:
    """The loop's rate alone and beside a background evaluation; the evaluation's time beside it and alone."""
    from mtrl.run.evaluator import Evaluator
    from mtrl.run.stop_signals import signals_blocked
    from mtrl.run.train import Trainer

    n = len(task_names(args.task_set))
    episodes = args.overlap_episodes
    config = paper_config(
        args.task_set, episodes, total_steps=100 * n * 500, warmup_steps_per_task=5, eval_mode="blocking",
        buffer_per_task=2_000, probe_checkpoints=1,
    )  # fmt: skip
    state = {k: v.clone() for k, v in _actor_state(config).items()}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, Path(tmp), quiet=True, provenance="benchmark", restart_stale=True)
        obs, _ = trainer.state.envs.reset()

        def advance(count: int) -> float:
            nonlocal obs
            start = time.perf_counter()
            for _ in range(count):
                obs, _, truncated = trainer.collect_and_update(obs)
                if truncated.all():
                    obs, _ = trainer.state.envs.reset()
            return count * n / (time.perf_counter() - start)

        advance(10)  # warm-up and first updates
        alone = advance(args.loop_steps)
        start = time.perf_counter()
        trainer.evaluator.submit(0, state)  # blocking, on the training envs: the evaluation alone
        trainer.evaluator.wait()
        seconds_alone = time.perf_counter() - start
        obs, _ = trainer.state.envs.reset()  # as the trainer does after an evaluation (an episode's end)
        with signals_blocked():
            background = Evaluator(eval_setup(config, workers=1), background=True)
        background.submit(0, state)
        start, steps = time.perf_counter(), 0
        while background.pending and not background.ready():
            advance(5)
            steps += 5
        seconds_beside = time.perf_counter() - start
        background.close()
        trainer.state.envs.close()
    rate_beside = steps * n / seconds_beside
    record("overlap", "loop alone", "untrained actor (w400)", alone, "transitions/s", episodes)
    record("overlap", "loop beside a background evaluation", "untrained actor (w400)", rate_beside,
           "transitions/s", episodes)  # fmt: skip
    record("overlap", "evaluation alone (blocking)", "untrained actor (w400)", seconds_alone, "s", episodes)
    record("overlap", "evaluation beside training (background)", "untrained actor (w400)", seconds_beside,
           "s", episodes)  # fmt: skip
    lost = seconds_beside * (1 - rate_beside / alone)
    record("overlap", "training time lost to it: background", "untrained actor (w400)", lost, "s", episodes)
    record("overlap", "training time lost to it: blocking", "untrained actor (w400)", seconds_alone, "s",
           episodes)  # fmt: skip


def _actor_state(config) -> dict:
    import torch

    from mtrl.nets import build_network

    torch.manual_seed(0)
    return build_network(config, "actor", OBS_DIM + config.num_tasks, 2 * ACTION_DIM).state_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-set", default="mt10")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes per task (cost)")
    parser.add_argument("--overlap-episodes", type=int, default=5, help="per task, for the overlap part")
    parser.add_argument("--loop-steps", type=int, default=30, help="timed vector steps of the loop alone")
    parser.add_argument("--parts", nargs="+", default=["cost", "overlap"], choices=["cost", "overlap"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows: list[dict] = []

    def record(part: str, what: str, policy: str, value: float, unit: str, episodes: int | None = None):
        rows.append(dict(part=part, what=what, policy=policy, task_set=args.task_set,
                         episodes=episodes or args.episodes, value=round(value, 3), unit=unit,
                         machine=machine(), load=load(), date=time.strftime("%Y-%m-%d")))  # fmt: skip
        print(f"{part:8s} {policy:24s} {what:72s} {value:12.3f} {unit}", flush=True)

    if "cost" in args.parts:
        measure_cost(args, record)
    if "overlap" in args.parts:
        measure_overlap(args, record)

    from throughput import append_rows  # here, not above: spawned env workers re-import this module

    append_rows(args.out, FIELDS, rows)


if __name__ == "__main__":
    main()
