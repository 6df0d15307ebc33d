"""Our side of the parity benchmark: `mtrl` training (`mtrl.train.train`, unchanged) with a parity
`RunSpec`'s settings, its statistics recorded as the authors' loop logs theirs.

`python benchmarks/parity_ours.py RUN_DIR` (RUN_DIR holds spec.json). The agent's update is wrapped
here, not changed: every 100th update's own values (not train.h5's window means) go to the record,
with the temperatures after it, as the authors' loop logs them. Evaluations are read from the
trainer as it records them (the step-0 evaluation of the untrained actor included), so a run stopped
early keeps what it evaluated.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parity_record import LOG_EVERY_UPDATES, Recorder, RunSpec  # noqa: E402

from mtrl.agents.sac import METRICS, MultiTaskSAC  # noqa: E402
from mtrl.config.settings import TrainConfig  # noqa: E402
from mtrl.envs.benchmarks import EPISODE_LENGTH  # noqa: E402
from mtrl.envs.evaluation import Evaluation  # noqa: E402
from mtrl.run.train import Trainer, train  # noqa: E402


def train_config(spec: RunSpec) -> TrainConfig:
    """The spec as our TrainConfig: the same network, SAC settings and schedule. On a CPU one process
    (sync envs, blocking evaluation) with the spec's threads, eager float32; on a GPU our defaults."""
    episode = spec.num_tasks * EPISODE_LENGTH
    on_cpu = spec.device == "cpu"
    return TrainConfig(
        task_set=spec.task_set,
        mt1_task="reach-v3",
        arch="mtmhsac",
        actor_width=spec.width,
        critic_width=spec.width,
        depth=spec.depth,
        seed=spec.seed,
        total_steps=spec.total_steps,
        warmup_steps_per_task=spec.warmup_vector_steps,
        eval_every=spec.eval_every,
        eval_episodes=spec.eval_episodes,
        checkpoint_every=spec.total_steps,  # never before the end: a parity run is rerun whole
        probe_checkpoints=1,
        log_every=max(episode, spec.eval_every),
        buffer_per_task=spec.buffer_total // spec.num_tasks,
        batch_per_task=spec.batch_per_task,
        lr=spec.lr,
        alpha_lr=spec.alpha_lr,
        grad_clip=spec.grad_clip,
        gamma=spec.gamma,
        tau=spec.tau,
        device=spec.device,
        vector_strategy="sync" if on_cpu else "shm",
        eval_mode="blocking" if on_cpu else "auto",
        torch_threads=spec.threads,
        update_mode="eager" if on_cpu else "auto",
        matmul_precision="float32" if on_cpu else "auto",
    )


def record_updates(recorder: Recorder, spec: RunSpec) -> None:
    """Wrap `MultiTaskSAC.update_from_buffer`: every 100th update's metrics and temperatures recorded."""
    original = MultiTaskSAC.update_from_buffer
    count = 0
    index = {name: METRICS.index(name) for name in ("critic_loss", "q_mean", "actor_loss", "alpha_loss")}

    def update(self: MultiTaskSAC, buffer, per_task, generator):  # type: ignore[no-untyped-def]
        nonlocal count
        metrics = original(self, buffer, per_task, generator)
        count += 1
        if count % LOG_EVERY_UPDATES == 0:
            values = metrics.tolist()
            stats = {name: values[i] for name, i in index.items()}
            stats["alpha_sum"] = float(self.log_alpha.detach().exp().sum())
            transitions = (spec.warmup_vector_steps - 1 + count) * spec.num_tasks
            recorder.train(count, transitions, stats)
        return metrics

    MultiTaskSAC.update_from_buffer = update  # type: ignore[method-assign]


def record_evaluations(recorder: Recorder) -> None:
    """Wrap `Trainer.record_evals`: each evaluation's per-task success recorded as the trainer logs it."""
    original = Trainer.record_evals

    def record_evals(self: Trainer, results: list[tuple[int, Evaluation]]) -> float | None:
        for step, result in results:
            success = dict(zip(self.tasks, result.success.tolist(), strict=True))
            recorder.evaluation(int(step), success, result.env_steps)
        return original(self, results)

    Trainer.record_evals = record_evals  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: parity_ours.py RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    spec = RunSpec.load(run_dir / "spec.json")
    recorder = Recorder(run_dir)
    record_updates(recorder, spec)
    record_evaluations(recorder)
    train(train_config(spec), run_dir / "mtrl_run", quiet=True)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() and spec.device != "cpu" else "cpu"
    recorder.done({"torch": torch.__version__, "device": device, "threads": torch.get_num_threads()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
