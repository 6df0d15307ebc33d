"""The training loop: warm-up, one SAC update per vector step, evaluation, checkpoints, resume.

Episodes of all tasks run in lockstep (500 steps each), and everything periodic happens at
episode boundaries: evaluation, logging, probe checkpoints and the resume checkpoint. What the loop
advances is the run state (`mtrl.run.state.RunState`), and the resume checkpoint is that state saved
whole, before the envs reset (holding their RNG state), so a resumed run replays exactly the
episodes, updates and log rows an uninterrupted one would have seen. An evaluation evaluates a copy of the
actor (`mtrl.run.evaluator`), at once or in the background; its results are all recorded before a
checkpoint or train.h5 is written, so both ways give the same files.

Around the loop, each in its own module: the run directory's lock and disk checks
(`mtrl.run.directory`), process setup (`mtrl.run.setup`), stop signals (`mtrl.run.stop_signals`),
resuming (`mtrl.run.resume`), divergence (`mtrl.run.divergence`), probe checkpoints
(`mtrl.run.probe_checkpoints`), progress lines (`mtrl.run.progress`) and the evaluator
(`mtrl.run.evaluator`).
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
from mtrl.agents.sac import MultiTaskSAC
from mtrl.config.settings import ConfigError, TrainConfig, require_resolved
from mtrl.envs.benchmarks import ACTION_DIM, EPISODE_LENGTH, OBS_DIM, task_names
from mtrl.envs.evaluation import Evaluation
from mtrl.envs.shm import EnvWorkerError
from mtrl.envs.vector import make_vector_env
from mtrl.files import checkpoints as ckpt
from mtrl.files.completeness import train_h5_problem
from mtrl.files.provenance import provenance_record
from mtrl.files.result_files import write_train_h5
from mtrl.run import probe_checkpoints
from mtrl.run.directory import check_space, run_lock
from mtrl.run.divergence import DivergenceWatch
from mtrl.run.evaluator import Evaluator, EvaluatorError, evaluator_for_run
from mtrl.run.memory import check_fits
from mtrl.run.progress import Progress
from mtrl.run.resume import resume_or_start
from mtrl.run.setup import ProcessSetup, prepare_process, seed_everything
from mtrl.run.shutdown import closed_at_exit, closed_on_error
from mtrl.run.state import RunRngs, RunState
from mtrl.run.stop_signals import StopSignals, TrainingInterrupted, signals_blocked, stop_if_signalled

__all__ = ["WORKER_ERRORS", "Trainer", "TrainingInterrupted", "train"]
# A worker process of the run failed (one line naming it); the trainer has stopped every process.
WORKER_ERRORS = (EnvWorkerError, EvaluatorError)

log = logging.getLogger("mtrl.run.train")


class Trainer:
    """One run: its state (`mtrl.run.state.RunState`), its evaluator, and the loop that advances it.

    `state.step` counts vector steps (one transition per task); files and logs count total transitions.
    `config` must be resolved (`TrainConfig.resolved()`); `setup` is what `prepare_process` returned
    (`train` passes it), or None to set the process up here.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        quiet: bool,
        provenance: str,
        restart_stale: bool,
        setup: ProcessSetup | None = None,
    ) -> None:
        self.config = config = require_resolved(config)
        self.run_dir, self.quiet = run_dir, quiet
        self.progress = Progress(config.total_steps, time.time(), 0, quiet=quiet)  # `run` starts it anew
        self.setup = setup if setup is not None else prepare_process(config)
        self.device = self.setup.device
        self.cores = self.setup.cores  # what prepare_process set torch to; the env workers below
        self.tasks = task_names(config.task_set, config.mt1_task)
        self.n = len(self.tasks)
        self.state = self._new_state(provenance)
        self.resume_file = ckpt.resume_path(run_dir)
        self.resume_saved_at = -1  # vector step of the last resume checkpoint this process wrote
        self.signals = StopSignals()
        with closed_on_error(self.state.envs, self.evaluator):  # a failed resume stops the workers first
            resume_or_start(self.state, run_dir, restart_stale)

    def _new_state(self, provenance: str) -> RunState:
        """The run at step 0: seeded, networks initialised, buffer empty, envs and evaluator built."""
        config, device = self.config, self.device
        seed_everything(config.seed)
        agent = MultiTaskSAC(config, OBS_DIM + self.n, ACTION_DIM, device)
        buffer = MultiTaskReplayBuffer(self.n, config.buffer_per_task, OBS_DIM, ACTION_DIM, device)
        check_space(self.run_dir, config, buffer, agent)
        rngs = RunRngs(device, config.seed)
        envs, self.evaluator = self._make_envs()
        watch = DivergenceWatch(config, self.run_dir)  # NaN stops the run (mtrl.run.divergence)
        return RunState(config, provenance, agent, buffer, envs, rngs, watch)

    def _make_envs(self) -> tuple[gym.vector.VectorEnv, Evaluator]:
        """The run's vector env (one env per task) and its evaluator (`mtrl.run.evaluator.evaluator_for_run`:
        blocking on these envs or in the background on its own), spawned with the stop signals blocked.
        """
        config, setup = self.config, self.setup
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
                return envs, evaluator_for_run(config, self.tasks, setup.device, setup.eval_device, envs)

    # ------------------------------------------------------------------ evaluation and logs
    def submit_eval(self) -> None:
        """Hand a CPU copy of the current actor to the evaluator for this step (done at once, or in
        the background while training goes on)."""
        state = self.state
        actor = {k: v.detach().to("cpu", copy=True) for k, v in state.agent.actor.state_dict().items()}
        self.evaluator.submit(state.step * self.n, actor)

    def record_evals(self, results: list[tuple[int, Evaluation]]) -> float | None:
        """Append evaluation results (in step order); the mean success of the last one, if any."""
        log = self.state.log
        for step, result in results:
            log.eval_step.append(step)
            log.eval_success.append(result.success.tolist())
            log.eval_return.append(result.returns.tolist())
            self.progress.note_eval(step, result.mean_success)
        return results[-1][1].mean_success if results else None

    def wait_for_evals(self) -> None:
        """Record every evaluation submitted: before a checkpoint or train.h5, which hold them all."""
        self.record_evals(self.evaluator.wait())

    def record_train_row(self, success: float | None) -> None:
        """Close the log window into a row (the mean training metrics since the last), report progress."""
        state = self.state
        transitions = state.step * self.n
        sps = (transitions - self.segment_step) / max(time.time() - self.segment_start, 1e-9)
        state.log.train_step.append(transitions)
        for key, value in state.window.close(transitions).items():
            state.log.train_scalars[key].append(value)
        state.log.train_scalars["sps"].append(sps)
        state.log.train_alpha.append(state.agent.log_alpha.detach().exp().cpu().tolist())
        self.segment_start, self.segment_step = time.time(), transitions
        self.progress.report(transitions, success, sps)

    # ------------------------------------------------------------------ the loop
    def collect_and_update(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One vector step: act (randomly during warm-up), store the transitions, one SAC update.

        With `overlap`, the update is launched before the envs step and runs while they do (on the
        GPU, or beside async env workers); it then samples the buffer without this step's
        transitions (the exact order, the default, includes them). The policy acting is the same.
        """
        config, state = self.config, self.state
        if state.step < config.warmup_steps_per_task:
            action = state.rngs.warmup.uniform(-1.0, 1.0, size=(self.n, ACTION_DIM)).astype(np.float32)
        else:
            action = state.agent.act(self._obs_to_device(obs)).cpu().numpy()
            state.watch.check_actions(action, state.agent, state.window, state.step * self.n)
        updating = state.step + 1 >= config.warmup_steps_per_task
        overlapped = config.overlap and updating and len(state.buffer) > 0
        if overlapped:
            next_obs, reward, terminated, truncated = self._step_envs_while_updating(action)
        else:
            next_obs, reward, terminated, truncated, _ = state.envs.step(action)
        state.buffer.add(obs, action, reward, next_obs, terminated)
        state.step += 1
        if updating and not overlapped:
            self._update()
        return next_obs, terminated, truncated

    def _update(self) -> None:
        state = self.state
        metrics = state.agent.update_from_buffer(state.buffer, self.config.batch_per_task, state.rngs.sampler)
        state.window.add(metrics)

    def _step_envs_while_updating(self, action: np.ndarray) -> tuple[np.ndarray, ...]:
        """Launch the update, step the envs meanwhile, then wait for them (async workers or inline)."""
        envs = self.state.envs
        step_async = getattr(envs, "step_async", None)
        if step_async is not None:
            step_async(action)
        self._update()  # on a GPU this only launches work; the envs step while it runs
        result = envs.step_wait() if step_async is not None else envs.step(action)
        return result[:4]

    def _obs_to_device(self, obs: np.ndarray) -> torch.Tensor:
        """Observations for acting: through pinned memory and a non-blocking copy on a GPU."""
        host = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))
        if self.device.type != "cuda":
            return host
        return host.pin_memory().to(self.device, non_blocking=True)

    def save_probe(self) -> None:
        """The probe checkpoint of the current step (`mtrl.run.probe_checkpoints.save_probe`)."""
        state, step = self.state, self.state.step * self.n
        probe_checkpoints.save_probe(self.run_dir, step, self.config, state.agent, state.buffer)

    def at_episode_end(self) -> None:
        """Everything periodic: evaluation, the training log, probe and resume checkpoints."""
        config, state = self.config, self.state
        transitions = state.step * self.n
        state.watch.check_state(state.agent, state.window, transitions)  # nothing diverged is written
        last = state.step == config.vector_steps
        if transitions % config.eval_every == 0 or last:
            self.submit_eval()
        success = self.record_evals(self.evaluator.ready())
        if transitions % config.log_every == 0 or last:
            self.record_train_row(success)
        if state.step == EPISODE_LENGTH:
            probe_checkpoints.complete_initial_probe(self.run_dir, config, state.buffer)
        if state.step // EPISODE_LENGTH in self.wanted_probes:
            self.save_probe()
        if transitions % config.checkpoint_every == 0 and not last:
            self.save_resume()

    def save_resume(self) -> None:
        """Write the resume checkpoint, the whole run state, for the current step (once per step)."""
        if self.resume_saved_at != self.state.step:
            self.wait_for_evals()
            self.state.save(self.resume_file)
            self.resume_saved_at = self.state.step

    def stop_on_signal(self) -> None:
        """At an episode boundary after a stop signal: write the resume checkpoint, then raise."""
        name = self.signals.received
        if name is None or self.state.step >= self.config.vector_steps:  # at the very end: just finish
            return
        self.save_resume()
        self.state.envs.close()
        raise TrainingInterrupted(name, self.state.step * self.n)

    def run(self) -> Path:
        """Train to the end (from step 0 or the resumed step) and write train.h5.

        SIGTERM, SIGHUP, SIGINT and SIGUSR1 stop it at the next episode boundary: the resume checkpoint is
        written and TrainingInterrupted raised.
        """
        with self.signals.active(), closed_at_exit(self.state.envs, self.evaluator):  # every way out
            if self.signals.received:  # during env start-up or the resume load: nothing new to save
                raise TrainingInterrupted(self.signals.received, self.state.step * self.n, written=False)
            return self._run()

    def _run(self) -> Path:
        config, state = self.config, self.state
        self.wanted_probes = probe_checkpoints.probe_episodes(config)
        self.progress = Progress(config.total_steps, time.time(), state.step * self.n, quiet=self.quiet)
        self.progress.start("evaluating the untrained networks first" if state.step == 0 else "resuming")
        if state.step == 0:  # the untrained networks: curves start at step 0, dormancy at initialisation
            self.save_probe()
            self.submit_eval()
        self.segment_start, self.segment_step = time.time(), state.step * self.n  # this process's speed
        obs, _ = state.envs.reset()
        while state.step < config.vector_steps:
            obs, terminated, truncated = self.collect_and_update(obs)
            self.progress.tick(state.step * self.n)  # a line every EVERY_S seconds, whatever log_every
            if not (truncated.all() or terminated.any()):
                continue
            if not truncated.all():
                raise RuntimeError("Meta-World envs ended out of lockstep; episodes must all be 500 steps")
            self.at_episode_end()
            self.stop_on_signal()
            obs, _ = state.envs.reset()
        return self.finish()

    def finish(self) -> Path:
        """Collect the last evaluations, close the envs, write train.h5 and drop the resume checkpoint."""
        state = self.state
        self.wait_for_evals()
        state.envs.close()
        self.evaluator.close()
        actor_params, critic_params = state.agent.parameter_counts()
        attrs = {
            "config": self.config.to_json(),
            "tasks": json.dumps(list(self.tasks)),
            "actor_params": actor_params,
            "critic_params": critic_params,
            "mtrl_version": mtrl.__version__,
            "device": str(self.device),
            "wall_time_s": state.clock.seconds(),
            "provenance": state.provenance,
            **provenance_record(
                self.config.to_dict(),
                state.provenance,
                self.device,
                **self.setup.speed._asdict(),
                resources=self.cores.as_dict() | {"torch_threads_set": torch.get_num_threads()},
            ),
        }
        result_path = self.run_dir / "train.h5"
        write_train_h5(result_path, state.log, attrs, self.n)
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
    setup = prepare_process(config)
    check_fits(config, setup.device)  # networks, replay buffer and a batch fit this job's memory
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
        return Trainer(config, run_dir, quiet, provenance, restart_stale, setup=setup).run()
