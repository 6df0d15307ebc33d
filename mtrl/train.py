"""The training loop: warm-up, one SAC update per vector step, evaluation, checkpoints, resume.

Episodes of all tasks run in lockstep (500 steps each), and everything periodic happens at
episode boundaries: evaluation, logging, probe checkpoints and the resume checkpoint. The resume
checkpoint is written before the envs reset, holding their RNG state, so a resumed run replays
exactly the episodes an uninterrupted one would have seen.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import mtrl
from mtrl import checkpoints as ckpt
from mtrl.agents.sac import METRICS, MultiTaskSAC
from mtrl.buffers import MultiTaskReplayBuffer
from mtrl.config import TrainConfig
from mtrl.envs.benchmarks import ACTION_DIM, EPISODE_LENGTH, OBS_DIM, task_names
from mtrl.envs.vector import env_state, evaluate, load_env_state, make_vector_env
from mtrl.results import TrainLog, write_train_h5

log = logging.getLogger("mtrl.train")
REPLAY_SAMPLE_PER_TASK = 1_000


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda requested but torch sees no GPU")
    return torch.device(name)


def probe_episodes(config: TrainConfig) -> set[int]:
    """Episode indices (0 = initial networks) after which a network-only probe checkpoint is saved."""
    episodes = config.vector_steps // EPISODE_LENGTH
    return {0} | {
        round(k * episodes / config.probe_checkpoints) for k in range(1, config.probe_checkpoints + 1)
    }


@dataclass
class Progress:
    """One-line progress reports (stderr), readable in SLURM logs; no terminal control codes."""

    total: int
    started: float
    start_step: int

    def report(self, step: int, success: float | None, sps: float) -> None:
        done = step - self.start_step
        rate = done / max(time.time() - self.started, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else math.inf
        line = f"[mtrl] step {step:,}/{self.total:,} ({100 * step / self.total:5.1f}%)  {sps:,.0f} steps/s"
        if success is not None:
            line += f"  eval success {100 * success:5.1f}%"
        line += f"  eta {eta / 60:,.1f} min"
        print(line, file=sys.stderr, flush=True)


def train(
    config: TrainConfig,
    run_dir: str | Path,
    quiet: bool = False,
    provenance: str = "",
    restart_stale: bool = False,
) -> Path:
    """Train one run into `run_dir`; resume if a checkpoint is there; return the path of train.h5.

    `provenance` (e.g. the workflow's code hash) is stored in the resume checkpoint; a checkpoint
    written by another config or provenance is an error, or, with `restart_stale`, discarded.
    """
    run_dir = Path(run_dir)
    result_path = run_dir / "train.h5"
    if result_path.exists():
        log.info("%s already complete", result_path)
        return result_path
    config = config.resolved()
    config.validate()
    device = pick_device(config.device)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    tasks = task_names(config.task_set, config.mt1_task)
    n = len(tasks)

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    agent = MultiTaskSAC(config, OBS_DIM + n, ACTION_DIM, device)
    buffer = MultiTaskReplayBuffer(n, config.buffer_per_task, OBS_DIM, ACTION_DIM, device)
    sample_gen = torch.Generator(device=device)
    sample_gen.manual_seed(config.seed + 1)
    warmup_rng = np.random.default_rng([config.seed, 2])
    # Evaluation runs whole episodes on the training envs between training episodes: one set of
    # envs (half the MuJoCo compiles and processes), and their RNG state still restores exactly.
    envs = make_vector_env(tasks, config.seed, stream=0, strategy=config.vector_strategy)
    train_log = TrainLog()
    step = 0  # vector steps done
    wall_time = 0.0

    resume_file = ckpt.resume_path(run_dir)
    state = ckpt.load(resume_file, device) if resume_file.exists() else None
    if state is not None and (state["config"], state.get("provenance", "")) != (config.to_dict(), provenance):
        if not restart_stale:
            raise RuntimeError(
                f"{resume_file} was written by a different config; delete {run_dir} to start over"
            )
        log.warning("%s is stale (config or code changed): starting over", resume_file)
        state = None
    if state is None:  # a fresh start: leftovers of an earlier, different run must not mix in
        ckpt.clear_run(run_dir)
    else:
        agent.load_training_state(state["agent"])
        buffer.load_state_dict(state["buffer"])
        sample_gen.set_state(state["sample_generator"])
        warmup_rng.bit_generator.state = state["warmup_rng"]
        torch.set_rng_state(state["torch_rng"])
        load_env_state(envs, state["envs"])
        train_log = TrainLog.from_state_dict(state["log"])
        step, wall_time = state["step"], state["wall_time"]
        log.info("resumed %s at step %d", run_dir, step * n)
    actor_params, critic_params = agent.parameter_counts()

    def save_probe(at_step: int) -> None:
        ckpt.save_atomic(
            {
                "step": at_step * n,
                "config": config.to_dict(),
                "actor": agent.actor.state_dict(),
                "critic": agent.critic.state_dict(),
                "log_alpha": agent.log_alpha.detach().cpu(),
            },
            ckpt.probe_path(run_dir, at_step * n),
        )

    def policy(obs: np.ndarray) -> np.ndarray:
        return (
            agent.act(torch.as_tensor(obs, dtype=torch.float32, device=device), deterministic=True)
            .cpu()
            .numpy()
        )

    def record_eval(at_step: int) -> float:
        result = evaluate(envs, policy, config.eval_episodes)
        train_log.eval_step.append(at_step * n)
        train_log.eval_success.append(result.success.tolist())
        train_log.eval_return.append(result.returns.tolist())
        return result.mean_success

    wanted_probes = probe_episodes(config)
    if step == 0:  # the untrained networks: curves start at step 0, dormancy at initialisation
        save_probe(0)
        record_eval(0)
    progress = Progress(config.total_steps, time.time(), step * n)
    metric_sum = torch.zeros(len(METRICS), device=device)
    metric_count = 0
    segment_start, segment_step = time.time(), step
    run_start = time.time() - wall_time
    obs, _ = envs.reset()
    warmup_vector_steps = math.ceil(config.warmup_steps / n)
    while step < config.vector_steps:
        if step < warmup_vector_steps:
            action = warmup_rng.uniform(-1.0, 1.0, size=(n, ACTION_DIM)).astype(np.float32)
        else:
            action = agent.act(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().numpy()
        next_obs, reward, terminated, truncated, _ = envs.step(action)
        buffer.add(obs, action, reward, next_obs, terminated)
        obs = next_obs
        step += 1
        if step >= warmup_vector_steps:
            metric_sum += agent.update(buffer.sample(config.batch_per_task, sample_gen))
            metric_count += 1
        if not (truncated.all() or terminated.any()):
            continue
        if not truncated.all():
            raise RuntimeError("Meta-World envs ended out of lockstep; episodes must all be 500 steps")

        # ---- episode boundary: every env has finished its episode
        transitions = step * n
        episode = step // EPISODE_LENGTH
        last = step == config.vector_steps
        success = None
        if transitions % config.eval_every == 0 or last:
            success = record_eval(step)
        if transitions % config.log_every == 0 or last:
            sps = (step - segment_step) * n / max(time.time() - segment_start, 1e-9)
            means = (metric_sum / max(metric_count, 1)).tolist()
            train_log.train_step.append(transitions)
            for key, value in zip(METRICS, means, strict=True):
                train_log.train_scalars[key].append(value)
            train_log.train_scalars["sps"].append(sps)
            train_log.train_alpha.append(agent.log_alpha.detach().exp().cpu().tolist())
            metric_sum.zero_()
            metric_count = 0
            segment_start, segment_step = time.time(), step
            if not quiet:
                progress.report(transitions, success, sps)
        if episode in wanted_probes:
            save_probe(step)
        if transitions % config.checkpoint_every == 0 and not last:
            ckpt.save_atomic(
                {
                    "config": config.to_dict(),
                    "provenance": provenance,
                    "step": step,
                    "wall_time": time.time() - run_start,
                    "agent": agent.training_state(),
                    "buffer": buffer.state_dict(),
                    "sample_generator": sample_gen.get_state(),
                    "warmup_rng": warmup_rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                    "envs": env_state(envs),
                    "log": train_log.state_dict(),
                },
                resume_file,
            )
        obs, _ = envs.reset()

    envs.close()
    ckpt.save_atomic(replay_sample(buffer, config.seed), ckpt.replay_sample_path(run_dir))
    attrs = {
        "config": config.to_json(),
        "tasks": json.dumps(list(tasks)),
        "actor_params": actor_params,
        "critic_params": critic_params,
        "mtrl_version": mtrl.__version__,
        "device": str(device),
        "wall_time_s": time.time() - run_start,
    }
    write_train_h5(result_path, train_log, attrs, n)
    resume_file.unlink(missing_ok=True)
    return result_path


def replay_sample(buffer: MultiTaskReplayBuffer, seed: int) -> dict[str, torch.Tensor]:
    """A fixed, task-balanced sample of the replay data, kept for probing after the buffer is gone."""
    generator = torch.Generator(device=buffer.device)
    generator.manual_seed(seed + 3)
    batch = buffer.sample(min(REPLAY_SAMPLE_PER_TASK, len(buffer)), generator)
    return {key: getattr(batch, key).cpu() for key in ("obs", "action", "reward", "next_obs", "done", "task")}
