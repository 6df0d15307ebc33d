"""The authors' side of the parity benchmark: their MTMHSAC (rainx0r/metaworld-algorithms, installed by
benchmarks/install_authors.sh) trained through their own `Run`, as examples/multi_task/mtmhsac_mt10.py
builds it, with the widths, batch, buffer, steps and evaluation of a parity `RunSpec`.

Run with their environment's Python: `python benchmarks/parity_authors.py RUN_DIR` (RUN_DIR holds
spec.json). Two shims, neither touching their algorithm: their `Run.start` refuses to run without a
GPU (its `jax.device_count` check is answered with 1), and with wandb off their metrics go nowhere,
so their module's `log` is replaced by one writing our record, and their `train` gets `track=True`.
Training statistics are their update's own values at every 100th update (as their loop logs them);
evaluations are their `MetaworldConfig.evaluate` (Meta-World's `evaluation()`) inside their loop.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parity_record import Recorder, RunSpec  # noqa: E402

STATS = {  # their log key -> our record's name
    "losses/qf_loss": "critic_loss",
    "losses/qf_values": "q_mean",
    "losses/actor_loss": "actor_loss",
    "losses/alpha_loss": "alpha_loss",
    "alpha": "alpha_sum",
}


def build_run(spec: RunSpec, run_dir: Path) -> Any:
    """Their `Run` of examples/multi_task/mtmhsac_mt10.py with the spec's sizes and schedule."""
    from metaworld_algorithms.config.networks import ContinuousActionPolicyConfig, QValueFunctionConfig
    from metaworld_algorithms.config.nn import MultiHeadConfig
    from metaworld_algorithms.config.optim import OptimizerConfig
    from metaworld_algorithms.config.rl import OffPolicyTrainingConfig
    from metaworld_algorithms.envs import MetaworldConfig
    from metaworld_algorithms.rl.algorithms import MTSACConfig
    from metaworld_algorithms.run import Run

    def net() -> Any:
        optimizer = OptimizerConfig(lr=spec.lr, max_grad_norm=spec.grad_clip)
        return MultiHeadConfig(
            num_tasks=spec.num_tasks, width=spec.width, depth=spec.depth, optimizer=optimizer
        )

    episodes_per_eval, rest = divmod(spec.eval_every, 500)  # their cadence counts finished episodes
    assert rest == 0 and spec.total_steps % spec.eval_every == 0, "eval_every must divide into episodes"
    return Run(
        run_name=f"parity_{spec.task_set}_mtmhsac",
        seed=spec.seed,
        data_dir=run_dir / "authors_run",
        env=MetaworldConfig(
            env_id=spec.task_set.upper(),
            terminate_on_success=False,
            evaluation_num_episodes=spec.eval_episodes,
        ),
        algorithm=MTSACConfig(
            num_tasks=spec.num_tasks,
            gamma=spec.gamma,
            tau=spec.tau,
            temperature_optimizer_config=OptimizerConfig(lr=spec.alpha_lr, max_grad_norm=None),
            actor_config=ContinuousActionPolicyConfig(network_config=net()),
            critic_config=QValueFunctionConfig(network_config=net()),
            num_critics=2,
        ),
        training_config=OffPolicyTrainingConfig(
            total_steps=spec.total_steps,
            buffer_size=spec.buffer_total,
            batch_size=spec.batch_per_task * spec.num_tasks,
            warmstart_steps=spec.warmup_vector_steps,
            evaluation_frequency=episodes_per_eval,
        ),
        # their in-loop evaluation at the last step is the final one; checkpointing would save the
        # whole buffer at every evaluation and evaluate once more 10 transitions later
        checkpoint=False,
    )


def record_log(recorder: Recorder, spec: RunSpec, data: dict[str, Any], step: int) -> None:
    """Their `log(data, step=total_steps)`: `total_steps` counts transitions before this vector step."""
    vector_step = step // spec.num_tasks
    transitions = step + spec.num_tasks  # collected when the update or evaluation happens
    if "losses/qf_loss" in data:
        stats = {name: float(data[key]) for key, name in STATS.items()}
        recorder.train(vector_step - spec.warmup_vector_steps, transitions, stats)
    if "charts/mean_success_rate" in data:
        success = {
            key.removeprefix("charts/").removesuffix("_success_rate"): float(value)
            for key, value in data.items()
            if key.endswith("_success_rate") and key != "charts/mean_success_rate"
        }
        recorder.evaluation(transitions, success, None)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: parity_authors.py RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    spec = RunSpec.load(run_dir / "spec.json")
    if spec.task_set != "mt10":  # their MT1 path stops in metaworld 3.1.1's make_mt_envs (no env_id)
        print(
            f"parity_authors: task set {spec.task_set}: only mt10 is run on the authors' side",
            file=sys.stderr,
        )
        return 2
    import jax
    import metaworld_algorithms
    import metaworld_algorithms.run as their_run
    from metaworld_algorithms.rl.algorithms import base as their_base

    their_run.jax = SimpleNamespace(device_count=lambda *_: 1, devices=jax.devices)  # shim 1: GPU guard
    recorder = Recorder(run_dir)
    their_base.log = lambda data, step: record_log(recorder, spec, data, step)  # shim 2: metrics
    original_train = their_base.OffPolicyAlgorithm.train

    @functools.wraps(original_train)
    def train_tracked(self: Any, *args: Any, **kwargs: Any) -> Any:
        return original_train(self, *args, **{**kwargs, "track": True})

    their_base.OffPolicyAlgorithm.train = train_tracked
    build_run(spec, run_dir).start()
    recorder.done(
        {
            "jax": jax.__version__,
            "device": str(jax.devices()[0]),
            "package": str(Path(metaworld_algorithms.__file__).parent),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
