"""The training loop: warm-up, one SAC update per vector step, evaluation, checkpoints, resume.

Episodes of all tasks run in lockstep (500 steps each), and everything periodic happens at
episode boundaries: evaluation, logging, probe checkpoints and the resume checkpoint. The resume
checkpoint is written before the envs reset, holding their RNG state, so a resumed run replays
exactly the episodes an uninterrupted one would have seen. An evaluation evaluates a copy of the
actor (`mtrl.run.evaluator`), at once or in the background; its results are all recorded before a
checkpoint or train.h5 is written, so both ways give the same files.

Around the loop, each in its own module: the run directory's lock and disk checks
(`mtrl.run.directory`), process setup (`mtrl.run.setup`), stop signals (`mtrl.run.stop_signals`), the
resume checkpoint (`mtrl.run.resume`), probe checkpoints (`mtrl.run.probe_checkpoints`), progress lines
(`mtrl.run.progress`) and the evaluator (`mtrl.run.evaluator`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import mtrl
from mtrl.agents.buffers import MultiTaskReplayBuffer
from mtrl.agents.sac import METRICS, MultiTaskSAC
from mtrl.config.settings import ConfigError, TrainConfig, require_resolved
from mtrl.config.speed import Speed, resolve_speed
from mtrl.envs.benchmarks import ACTION_DIM, EPISODE_LENGTH, OBS_DIM, task_names
from mtrl.envs.evaluation import Evaluation
from mtrl.envs.shm import EnvWorkerError
from mtrl.envs.vector import make_vector_env
from mtrl.files import checkpoints as ckpt
from mtrl.files.provenance import provenance_record
from mtrl.files.result_files import TrainLog, train_h5_problem, write_train_h5
from mtrl.run import probe_checkpoints
from mtrl.run.directory import check_space, run_lock
from mtrl.run.divergence import DivergenceWatch
from mtrl.run.evaluator import Evaluator, EvaluatorError, evaluator_for_run
from mtrl.run.memory import check_fits
from mtrl.run.progress import Progress
from mtrl.run.resume import resume_or_start, resume_state
from mtrl.run.setup import core_split, prepare_process, seed_everything
from mtrl.run.shutdown import closed_at_exit, closed_on_error
from mtrl.run.stop_signals import StopSignals, TrainingInterrupted, signals_blocked, stop_if_signalled

__all__ = ["WORKER_ERRORS", "Trainer", "TrainingInterrupted", "train"]
# A worker process of the run failed (one line naming it); the trainer has stopped every process.
WORKER_ERRORS = (EnvWorkerError, EvaluatorError)

log = logging.getLogger("mtrl.run.train")


class Trainer:
    """One run: its agent, buffer, envs, RNGs and log, and the loop that advances them.

    `step` counts vector steps (one transition per task); files and logs count total transitions.
    `config` must be resolved (`TrainConfig.resolved()`); `device` is what `prepare_process` returned
    (`train` passes it), or None to set the process up here.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        quiet: bool,
        provenance: str,
        restart_stale: bool,
        device: torch.device | None = None,
    ) -> None:
        self.config = config = require_resolved(config)
        self.run_dir, self.quiet, self.provenance = run_dir, quiet, provenance
        self.progress = Progress(config.total_steps, time.time(), 0, quiet=quiet)  # `run` starts it anew
        self.device = device = device if device is not None else prepare_process(config)
        self.cores = core_split(config)  # what prepare_process set torch to; the env workers below
        self.tasks = task_names(config.task_set, config.mt1_task)
        self.n = n = len(self.tasks)
        seed_everything(config.seed)
        self.agent = MultiTaskSAC(config, OBS_DIM + n, ACTION_DIM, device)
        self.buffer = MultiTaskReplayBuffer(n, config.buffer_per_task, OBS_DIM, ACTION_DIM, device)
        check_space(run_dir, config, self.buffer, self.agent)
        self.sample_gen = torch.Generator(device=device)
        self.sample_gen.manual_seed(config.seed + 1)
        self.warmup_rng = np.random.default_rng([config.seed, 2])
        self.envs, self.evaluator = self._make_envs()
        self.train_log = TrainLog()
        self.step = 0  # vector steps done
        self.wall_time = 0.0
        self.resume_file = ckpt.resume_path(run_dir)
        self.resume_saved_at = -1  # vector step of the last resume checkpoint this process wrote
        self.signals = StopSignals()
        self.watch = DivergenceWatch(config)  # NaN stops the run (mtrl.run.divergence)
        with closed_on_error(self.envs, self.evaluator):  # a failed resume stops the workers first
            resume_or_start(self, restart_stale)
        self.metric_sum = torch.zeros(len(METRICS), device=device)
        self.metric_count = 0

    def _make_envs(self) -> tuple[gym.vector.VectorEnv, Evaluator]:
        """The run's vector env (one env per task) and its evaluator (`mtrl.run.evaluator.evaluator_for_run`:
        blocking on these envs or in the background on its own), spawned with the stop signals blocked.
        """
        config = self.config
        with signals_blocked():
            envs = make_vector_env(
                self.tasks,
                config.seed,
                stream=0,
                strategy=config.vector_strategy,
                reward_version=config.reward_version,
                workers=self.cores.env_workers or None,
            )
            with closed_on_error(envs):
                return envs, evaluator_for_run(config, self.tasks, self.device, envs)

    # ------------------------------------------------------------------ evaluation and logs
    def submit_eval(self) -> None:
        """Hand a CPU copy of the current actor to the evaluator for this step (done at once, or in
        the background while training goes on)."""
        actor = {k: v.detach().to("cpu", copy=True) for k, v in self.agent.actor.state_dict().items()}
        self.evaluator.submit(self.step * self.n, actor)

    def record_evals(self, results: list[tuple[int, Evaluation]]) -> float | None:
        """Append evaluation results (in step order); the mean success of the last one, if any."""
        for step, result in results:
            self.train_log.eval_step.append(step)
            self.train_log.eval_success.append(result.success.tolist())
            self.train_log.eval_return.append(result.returns.tolist())
            self.progress.note_eval(step, result.mean_success)
        return results[-1][1].mean_success if results else None

    def wait_for_evals(self) -> None:
        """Record every evaluation submitted: before a checkpoint or train.h5, which hold them all."""
        self.record_evals(self.evaluator.wait())

    def record_train_row(self, success: float | None) -> None:
        """Append the mean training metrics since the last row, and report progress."""
        transitions = self.step * self.n
        sps = (self.step - self.segment_step) * self.n / max(time.time() - self.segment_start, 1e-9)
        means = (self.metric_sum / max(self.metric_count, 1)).tolist()
        self.train_log.train_step.append(transitions)
        for key, value in zip(METRICS, means, strict=True):
            self.train_log.train_scalars[key].append(value)
        self.train_log.train_scalars["sps"].append(sps)
        self.train_log.train_alpha.append(self.agent.log_alpha.detach().exp().cpu().tolist())
        self.metric_sum.zero_()
        self.metric_count = 0
        self.segment_start, self.segment_step = time.time(), self.step
        self.progress.report(transitions, success, sps)

    # ------------------------------------------------------------------ the loop
    def collect_and_update(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One vector step: act (randomly during warm-up), store the transitions, one SAC update.

        With `overlap`, the update is launched before the envs step and runs while they do (on the
        GPU, or beside async env workers); it then samples the buffer without this step's
        transitions (the exact order, the default, includes them). The policy acting is the same.
        """
        config = self.config
        if self.step < config.warmup_steps_per_task:
            action = self.warmup_rng.uniform(-1.0, 1.0, size=(self.n, ACTION_DIM)).astype(np.float32)
        else:
            action = self.agent.act(self._obs_to_device(obs)).cpu().numpy()
            self.watch.check_actions(self, action)
        updating = self.step + 1 >= config.warmup_steps_per_task
        overlapped = config.overlap and updating and len(self.buffer) > 0
        if overlapped:
            next_obs, reward, terminated, truncated = self._step_envs_while_updating(action)
        else:
            next_obs, reward, terminated, truncated, _ = self.envs.step(action)
        self.buffer.add(obs, action, reward, next_obs, terminated)
        self.step += 1
        if updating and not overlapped:
            self._update()
        return next_obs, terminated, truncated

    def _update(self) -> None:
        metrics = self.agent.update_from_buffer(self.buffer, self.config.batch_per_task, self.sample_gen)
        self.metric_sum += metrics
        self.metric_count += 1

    def _step_envs_while_updating(self, action: np.ndarray) -> tuple[np.ndarray, ...]:
        """Launch the update, step the envs meanwhile, then wait for them (async workers or inline)."""
        step_async = getattr(self.envs, "step_async", None)
        if step_async is not None:
            step_async(action)
        self._update()  # on a GPU this only launches work; the envs step while it runs
        result = self.envs.step_wait() if step_async is not None else self.envs.step(action)
        return result[:4]

    def _obs_to_device(self, obs: np.ndarray) -> torch.Tensor:
        """Observations for acting: through pinned memory and a non-blocking copy on a GPU."""
        host = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))
        if self.device.type != "cuda":
            return host
        return host.pin_memory().to(self.device, non_blocking=True)

    def save_probe(self) -> None:
        """The probe checkpoint of the current step (`mtrl.run.probe_checkpoints.save_probe`)."""
        probe_checkpoints.save_probe(self.run_dir, self.step * self.n, self.config, self.agent, self.buffer)

    def at_episode_end(self) -> None:
        """Everything periodic: evaluation, the training log, probe and resume checkpoints."""
        self.watch.check_state(self)  # nothing diverged is evaluated or written
        config = self.config
        transitions = self.step * self.n
        last = self.step == config.vector_steps
        if transitions % config.eval_every == 0 or last:
            self.submit_eval()
        success = self.record_evals(self.evaluator.ready())
        if transitions % config.log_every == 0 or last:
            self.record_train_row(success)
        if self.step == EPISODE_LENGTH:
            probe_checkpoints.complete_initial_probe(self.run_dir, config, self.buffer)
        if self.step // EPISODE_LENGTH in self.wanted_probes:
            self.save_probe()
        if transitions % config.checkpoint_every == 0 and not last:
            self.save_resume()

    def save_resume(self) -> None:
        """Write the resume checkpoint for the current step (once per step)."""
        if self.resume_saved_at != self.step:
            self.wait_for_evals()
            ckpt.save_atomic(resume_state(self), self.resume_file, keep_previous=True)
            self.resume_saved_at = self.step

    def stop_on_signal(self) -> None:
        """At an episode boundary after a stop signal: write the resume checkpoint, then raise."""
        name = self.signals.received
        if name is None or self.step >= self.config.vector_steps:  # at the very end: just finish
            return
        self.save_resume()
        self.envs.close()
        raise TrainingInterrupted(name, self.step * self.n)

    def run(self) -> Path:
        """Train to the end (from step 0 or the resumed step) and write train.h5.

        SIGTERM, SIGHUP, SIGINT and SIGUSR1 stop it at the next episode boundary: the resume checkpoint is
        written and TrainingInterrupted raised.
        """
        with self.signals.active(), closed_at_exit(self.envs, self.evaluator):  # stop on every way out
            if self.signals.received:  # during env start-up or the resume load: nothing new to save
                raise TrainingInterrupted(self.signals.received, self.step * self.n, written=False)
            return self._run()

    def _run(self) -> Path:
        config = self.config
        self.wanted_probes = probe_checkpoints.probe_episodes(config)
        self.progress = Progress(config.total_steps, time.time(), self.step * self.n, quiet=self.quiet)
        self.progress.start("evaluating the untrained networks first" if self.step == 0 else "resuming")
        if self.step == 0:  # the untrained networks: curves start at step 0, dormancy at initialisation
            self.save_probe()
            self.submit_eval()
        self.segment_start, self.segment_step = time.time(), self.step
        self.run_start = time.time() - self.wall_time
        obs, _ = self.envs.reset()
        while self.step < config.vector_steps:
            obs, terminated, truncated = self.collect_and_update(obs)
            self.progress.tick(self.step * self.n)  # a line every EVERY_S seconds, whatever log_every
            if not (truncated.all() or terminated.any()):
                continue
            if not truncated.all():
                raise RuntimeError("Meta-World envs ended out of lockstep; episodes must all be 500 steps")
            self.at_episode_end()
            self.stop_on_signal()
            obs, _ = self.envs.reset()
        return self.finish()

    def speed(self) -> Speed:
        """The update mode and matmul precision this run resolved `auto` to on its device."""
        return resolve_speed(self.config.update_mode, self.config.matmul_precision, self.device.type)

    def generators(self) -> dict[str, torch.Generator]:
        """The run's own torch generators, by their key in the resume checkpoint (the agent's is
        saved with the agent)."""
        return {"sample_generator": self.sample_gen}

    def finish(self) -> Path:
        """Collect the last evaluations, close the envs, write train.h5 and drop the resume checkpoint."""
        self.wait_for_evals()
        self.envs.close()
        self.evaluator.close()
        actor_params, critic_params = self.agent.parameter_counts()
        attrs = {
            "config": self.config.to_json(),
            "tasks": json.dumps(list(self.tasks)),
            "actor_params": actor_params,
            "critic_params": critic_params,
            "mtrl_version": mtrl.__version__,
            "device": str(self.device),
            "wall_time_s": time.time() - self.run_start,
            "provenance": self.provenance,
            **provenance_record(
                self.config.to_dict(),
                self.provenance,
                self.device,
                **self.speed()._asdict(),
                resources=self.cores.as_dict() | {"torch_threads_set": torch.get_num_threads()},
            ),
        }
        result_path = self.run_dir / "train.h5"
        write_train_h5(result_path, self.train_log, attrs, self.n)
        ckpt.remove_finished(self.resume_file)
        return result_path


def train(
    config: TrainConfig,
    run_dir: str | Path,
    quiet: bool = False,
    provenance: str = "",
    restart_stale: bool = False,
) -> Path:
    """Train one run into `run_dir`; resume if a checkpoint is there; return the path of train.h5.

    The edge of a run: `config` is resolved and validated here (nothing to do if it came from
    `TrainConfig.from_dict`/`from_yaml`) and the process set up (a missing GPU fails here, before the
    run directory is touched). `provenance` (e.g. the workflow's code hash) is stored in the resume
    checkpoint; a checkpoint written by another config or provenance is an error, or, with
    `restart_stale`, discarded.
    """
    stop_if_signalled(0)  # a SIGTERM or SIGHUP during the imports: nothing started yet
    run_dir = Path(run_dir)
    config = config.resolved()
    device = prepare_process(config)
    check_fits(config, device)  # networks, replay buffer and a batch fit this job's memory
    with run_lock(run_dir):
        result_path = run_dir / "train.h5"
        if result_path.exists():
            ckpt.require_readable(result_path)  # EIO, permissions, a directory: stop, delete nothing
            problem = train_h5_problem(result_path, config.to_dict(), provenance)
            if problem is None:
                log.info("%s already complete", result_path)
                return result_path
            if problem.startswith("written by") and not restart_stale:
                raise ConfigError(f"{result_path}: {problem}; delete {run_dir} or use another run directory")
            log.warning("%s: %s: training again", result_path, problem)
            ckpt.remove_file(result_path, "to train the run again")
        return Trainer(config, run_dir, quiet, provenance, restart_stale, device=device).run()
