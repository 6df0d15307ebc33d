"""The training loop: warm-up, one SAC update per vector step, evaluation, checkpoints, resume.

Episodes of all tasks run in lockstep (500 steps each), and everything periodic happens at
episode boundaries: evaluation, logging, probe checkpoints and the resume checkpoint. The resume
checkpoint is written before the envs reset, holding their RNG state, so a resumed run replays
exactly the episodes an uninterrupted one would have seen.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import mtrl
from mtrl import checkpoints as ckpt
from mtrl import rng_state
from mtrl.agents.sac import METRICS, MultiTaskSAC
from mtrl.buffers import MultiTaskReplayBuffer
from mtrl.config import ConfigError, TrainConfig
from mtrl.envs.benchmarks import ACTION_DIM, EPISODE_LENGTH, OBS_DIM, task_names
from mtrl.envs.vector import env_state, evaluate, load_env_state, make_vector_env
from mtrl.provenance import identity, provenance_record
from mtrl.results import TrainLog, train_h5_problem, write_train_h5
from mtrl.shutdown import closed_at_exit, closed_on_error
from mtrl.speed import Speed, resolve_speed

log = logging.getLogger("mtrl.train")
LOCK_NAME = ".mtrl.lock"


# Signals that stop training at the next episode boundary, and the exit code each one maps to:
# 75 (EX_TEMPFAIL) tells Snakemake/SLURM the attempt failed and may be retried; 130 is the shell's Ctrl-C.
STOP_SIGNALS = {"SIGTERM": 75, "SIGUSR1": 75, "SIGINT": 130}


class TrainingInterrupted(Exception):
    """Training stopped on a signal at an episode boundary, after writing the resume checkpoint.

    `signal_name` is e.g. "SIGTERM", `step` the total env transitions done; `exit_code` is what the
    process should exit with (75 for SIGTERM/SIGUSR1, 130 for SIGINT). str() is the one-line report
    without the "mtrl: " prefix.
    """

    def __init__(self, signal_name: str, step: int) -> None:
        self.signal_name, self.step = signal_name, step
        self.exit_code = STOP_SIGNALS[signal_name]
        super().__init__(
            f"{signal_name} received: stopped at step {step}, "
            "resume checkpoint written; run again to continue"
        )


class StopSignals:
    """While active, SIGTERM/SIGINT/SIGUSR1 are recorded (first one wins) instead of ending the process.

    A second SIGINT raises KeyboardInterrupt at once (the last resume checkpoint is kept).
    """

    def __init__(self) -> None:
        self.received: str | None = None

    def _handle(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.received is not None and name == "SIGINT":  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        if self.received is None:
            self.received = name
            # os.write, not logging: a handler may run in the middle of another write to stderr
            os.write(2, f"[mtrl.train] {name} received: stopping at the end of this episode\n".encode())

    @contextmanager
    def active(self) -> Iterator[StopSignals]:
        if threading.current_thread() is not threading.main_thread():  # handlers need the main thread
            yield self
            return
        previous = {name: signal.signal(getattr(signal, name), self._handle) for name in STOP_SIGNALS}
        try:
            yield self
        finally:
            for name, handler in previous.items():
                signal.signal(getattr(signal, name), handler)


@contextmanager
def signals_blocked() -> Iterator[None]:
    """Block the stop signals in this thread while env workers are spawned: they inherit the mask, so
    a SIGTERM or Ctrl-C sent to the whole process group (SLURM, a terminal) leaves them running until
    the trainer has finished its episode and written the checkpoint. Pending signals arrive after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # started later, it would unblock SIGINT and SIGTERM again
    wanted = {getattr(signal, name) for name in STOP_SIGNALS}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device: cuda requested but torch sees no GPU on this machine "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
            "use device: auto or cpu to train on the CPU"
        )
    return torch.device(name)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run directory, so two trainers (an orphaned SLURM job and its
    resubmission) never write one run at once. Creates the directory; ConfigError if it is not
    writable or another process holds the lock."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: the run directory is a file")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held for the whole run
    except OSError as exc:
        raise ConfigError(f"{run_dir}: cannot write the run directory ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise ConfigError(
                f"{run_dir}: another trainer is writing this run directory ({holder}); "
                "wait for it or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def check_writable(folder: Path) -> None:
    """Fail now, not after hours, if `folder` cannot take files."""
    probe = folder / f".mtrl-write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot write here ({exc.strerror or exc})") from None


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


class Trainer:
    """One run: its agent, buffer, envs, RNGs and log, and the loop that advances them.

    `step` counts vector steps (one transition per task); files and logs count total transitions.
    """

    def __init__(
        self, config: TrainConfig, run_dir: Path, quiet: bool, provenance: str, restart_stale: bool
    ) -> None:
        self.config = config = config.resolved()
        config.validate()
        self.run_dir, self.quiet, self.provenance = run_dir, quiet, provenance
        self.device = device = pick_device(config.device)
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        self.tasks = task_names(config.task_set, config.mt1_task)
        self.n = n = len(self.tasks)

        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)
        self.agent = MultiTaskSAC(config, OBS_DIM + n, ACTION_DIM, device)
        self.buffer = MultiTaskReplayBuffer(n, config.buffer_per_task, OBS_DIM, ACTION_DIM, device)
        self._check_space(run_dir)
        self.sample_gen = torch.Generator(device=device)
        self.sample_gen.manual_seed(config.seed + 1)
        self.warmup_rng = np.random.default_rng([config.seed, 2])
        # Evaluation runs whole episodes on the training envs between training episodes: one set of
        # envs (half the MuJoCo compiles and processes), and their RNG state still restores exactly.
        with signals_blocked():
            self.envs = make_vector_env(
                self.tasks,
                config.seed,
                stream=0,
                strategy=config.vector_strategy,
                reward_version=config.reward_version,
            )
        self.train_log = TrainLog()
        self.step = 0  # vector steps done
        self.wall_time = 0.0
        self.resume_file = ckpt.resume_path(run_dir)
        self.resume_saved_at = -1  # vector step of the last resume checkpoint this process wrote
        self.signals = StopSignals()
        with closed_on_error(self.envs):  # a failed resume stops the env workers before its error
            self._resume_or_start(restart_stale)
        self.metric_sum = torch.zeros(len(METRICS), device=device)
        self.metric_count = 0

    # ------------------------------------------------------------------ state
    def _check_space(self, run_dir: Path) -> None:
        """ConfigError now if the disk cannot hold this run's checkpoints at their largest."""
        check_writable(ckpt.resume_path(run_dir).parent)
        config, n = self.config, self.n
        per_transition = self.buffer.obs[0, 0].numel() * 2 + self.buffer.action[0, 0].numel() + 2
        buffer_bytes = n * min(config.buffer_per_task, config.vector_steps) * per_transition * 4
        networks = ckpt.payload_bytes(self.agent.training_state())
        probes = (config.probe_checkpoints + 1) * networks
        # the resume checkpoint and its temporary successor, probe checkpoints, 10% margin
        needed = int(1.1 * (2 * (buffer_bytes + networks) + probes))
        existing = [ckpt.resume_path(run_dir), ckpt.previous_path(ckpt.resume_path(run_dir))]
        existing += [path for _, path in ckpt.probe_checkpoints(run_dir)]
        # files this run will replace count as room (a resumed run already holds some of `needed`)
        free = shutil.disk_usage(run_dir).free + sum(p.stat().st_size for p in existing if p.exists())
        if free < needed:
            raise ConfigError(
                f"{run_dir}: needs about {needed / 2**30:,.2f} GB free for its checkpoints, "
                f"{free / 2**30:,.2f} GB free"
            )

    def _load_resume(self) -> tuple[dict[str, Any] | None, Path]:
        """The newest readable resume checkpoint (resume.pt, else resume.prev.pt), saying which."""
        candidates = [self.resume_file, ckpt.previous_path(self.resume_file)]
        damaged = []
        for path in candidates:
            if not path.exists():
                continue
            try:
                state = ckpt.load(path, self.device)
            except ckpt.CheckpointError as exc:
                log.warning("%s", exc)
                damaged.append(path)
                continue
            if damaged:  # drop the damaged file; the good one becomes resume.pt, the next save keeps it
                log.warning("%s: falling back to the previous resume checkpoint %s", damaged[0], path)
                for bad in damaged:
                    bad.unlink(missing_ok=True)
                os.replace(path, self.resume_file)
            return state, self.resume_file
        if damaged:
            log.warning("no readable resume checkpoint in %s: starting over", self.resume_file.parent)
        return None, self.resume_file

    def _resume_or_start(self, restart_stale: bool) -> None:
        """Load the resume checkpoint if there is one for this exact run; else clear leftovers."""
        state, source = self._load_resume()
        expected = (identity(self.config.to_dict()), self.provenance)
        if state is not None and (identity(state["config"]), state.get("provenance", "")) != expected:
            if not restart_stale:
                raise RuntimeError(
                    f"{source} was written by a different config; delete {self.run_dir} to start over"
                )
            log.warning("%s is stale (config or code changed): starting over", source)
            state = None
        if state is None:  # a fresh start: leftovers of an earlier, different run must not mix in
            ckpt.clear_run(self.run_dir)
            return
        try:
            rng_state.restore(state, self.device, self._generators())
            self.agent.load_training_state(state["agent"])
            self.buffer.load_state_dict(state["buffer"])
            self.warmup_rng.bit_generator.state = state["warmup_rng"]
            load_env_state(self.envs, state["envs"])
            self.train_log = TrainLog.from_state_dict(state["log"])
            self.step, self.wall_time = state["step"], state["wall_time"]
        except rng_state.RngStateError as exc:
            raise ckpt.CheckpointError(f"{source}: {exc}, or delete it to start over") from None
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ckpt.CheckpointError(
                f"{source}: does not hold this run's resume state ({type(exc).__name__}: {exc}); "
                f"delete it to start over"
            ) from None
        log.info("resumed %s at step %d", self.run_dir, self.step * self.n)

    def resume_state(self) -> dict[str, Any]:
        """Everything needed to continue this run bit-for-bit."""
        return {
            "config": self.config.to_dict(),
            "provenance": self.provenance,
            "step": self.step,
            "wall_time": time.time() - self.run_start,
            "agent": self.agent.training_state(),
            "buffer": self.buffer.state_dict(),
            "warmup_rng": self.warmup_rng.bit_generator.state,
            **rng_state.capture(self.device, self._generators()),
            "envs": env_state(self.envs),
            "log": self.train_log.state_dict(),
        }

    def _generators(self) -> dict[str, torch.Generator]:
        """The run's own torch generators, by their key in the resume checkpoint (the agent's is
        saved with the agent)."""
        return {"sample_generator": self.sample_gen}

    def save_probe(self) -> None:
        """Networks, temperatures and a probe batch at the current step, for the plasticity probe.

        The probe batch is `batch_per_task` transitions per task (one training batch) drawn, with a
        fixed seed, from the buffer as it is now: the metrics of each checkpoint are measured on the
        data it was training on, as the authors measured them on the current training batch. At step
        0 the buffer is empty; that checkpoint gets its batch at the first episode boundary
        (`complete_initial_probe`).
        """
        step = self.step * self.n
        state = {
            "step": step,
            "config": self.config.to_dict(),
            "actor": self.agent.actor.state_dict(),
            "critic": self.agent.critic.state_dict(),
            "log_alpha": self.agent.log_alpha.detach().cpu(),
            "probe_batch": probe_batch(self.buffer, self.config.batch_per_task, self.config.seed)
            if len(self.buffer)
            else None,
        }
        ckpt.save_atomic(state, ckpt.probe_path(self.run_dir, step))

    def complete_initial_probe(self) -> None:
        """Give the step-0 checkpoint (untrained networks) its probe batch: the first episode's data.

        At step 0 the buffer is empty. The first episode boundary is the earliest point a batch can be
        drawn; its data is warm-up (uniform random actions under the default 4,000-step warm-up), the
        kind the first updates train on. A later buffer would hold states of a policy that had already
        learned, which the untrained networks never met.
        """
        path = ckpt.probe_path(self.run_dir, 0)
        state = ckpt.load(path, "cpu") if path.exists() else None
        if state is not None and state.get("probe_batch") is None:
            state["probe_batch"] = probe_batch(self.buffer, self.config.batch_per_task, self.config.seed)
            ckpt.save_atomic(state, path)

    # ------------------------------------------------------------------ evaluation and logs
    def _policy(self, obs: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return self.agent.act(obs_t, deterministic=True).cpu().numpy()

    def record_eval(self) -> float:
        result = evaluate(self.envs, self._policy, self.config.eval_episodes)
        self.train_log.eval_step.append(self.step * self.n)
        self.train_log.eval_success.append(result.success.tolist())
        self.train_log.eval_return.append(result.returns.tolist())
        return result.mean_success

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
        if not self.quiet:
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

    def at_episode_end(self) -> None:
        """Everything periodic: evaluation, the training log, probe and resume checkpoints."""
        config = self.config
        transitions = self.step * self.n
        last = self.step == config.vector_steps
        success = None
        if transitions % config.eval_every == 0 or last:
            success = self.record_eval()
        if transitions % config.log_every == 0 or last:
            self.record_train_row(success)
        if self.step == EPISODE_LENGTH:
            self.complete_initial_probe()
        if self.step // EPISODE_LENGTH in self.wanted_probes:
            self.save_probe()
        if transitions % config.checkpoint_every == 0 and not last:
            self.save_resume()

    def save_resume(self) -> None:
        """Write the resume checkpoint for the current step (once per step)."""
        if self.resume_saved_at != self.step:
            ckpt.save_atomic(self.resume_state(), self.resume_file, keep_previous=True)
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

        SIGTERM, SIGINT and SIGUSR1 stop it at the next episode boundary: the resume checkpoint is
        written and TrainingInterrupted raised.
        """
        with self.signals.active(), closed_at_exit(self.envs):  # env workers stop on every way out
            return self._run()

    def _run(self) -> Path:
        config = self.config
        self.wanted_probes = probe_episodes(config)
        if self.step == 0:  # the untrained networks: curves start at step 0, dormancy at initialisation
            self.save_probe()
            self.record_eval()
        self.progress = Progress(config.total_steps, time.time(), self.step * self.n)
        self.segment_start, self.segment_step = time.time(), self.step
        self.run_start = time.time() - self.wall_time
        obs, _ = self.envs.reset()
        while self.step < config.vector_steps:
            obs, terminated, truncated = self.collect_and_update(obs)
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

    def finish(self) -> Path:
        """Close the envs, write train.h5 and drop the resume checkpoint."""
        self.envs.close()
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
                self.config.to_dict(), self.provenance, self.device, **self.speed()._asdict()
            ),
        }
        result_path = self.run_dir / "train.h5"
        write_train_h5(result_path, self.train_log, attrs, self.n)
        self.resume_file.unlink(missing_ok=True)
        ckpt.previous_path(self.resume_file).unlink(missing_ok=True)
        return result_path


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
    resolved = config.resolved()
    resolved.validate()
    pick_device(resolved.device)  # a missing GPU fails here, before the run directory is touched
    with run_lock(run_dir):
        result_path = run_dir / "train.h5"
        if result_path.exists():
            problem = train_h5_problem(result_path, resolved.to_dict(), provenance)
            if problem is None:
                log.info("%s already complete", result_path)
                return result_path
            if problem.startswith("written by") and not restart_stale:
                raise ConfigError(f"{result_path}: {problem}; delete {run_dir} or use another run directory")
            log.warning("%s: %s: training again", result_path, problem)
            result_path.unlink()
        return Trainer(config, run_dir, quiet, provenance, restart_stale).run()


def probe_batch(buffer: MultiTaskReplayBuffer, per_task: int, seed: int) -> dict[str, torch.Tensor]:
    """`per_task` transitions per task of the buffer as it is now (with replacement, as training
    samples), drawn by a generator of its own seeded with `seed`, so training's RNGs are untouched."""
    generator = torch.Generator(device=buffer.device)
    generator.manual_seed(seed + 3)
    batch = buffer.sample(per_task, generator)
    return {key: getattr(batch, key).cpu() for key in ("obs", "action", "reward", "next_obs", "done", "task")}
