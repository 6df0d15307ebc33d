"""The training node end to end: result files, probe checkpoints, resume after a kill, clear errors."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mtrl.config.settings import ConfigError, TrainConfig
from mtrl.files import checkpoints as ckpt
from mtrl.run.train import Trainer, train
from tests.conftest import TINY

TIMING_KEYS = {"sps"}  # wall-clock measurements legitimately differ between runs
TIMING_ATTRS = {"wall_time_s", "checksum"}
# What runs of other execution settings (eval_mode, vector_strategy, workers) record differently
EXECUTION_ATTRS = ("@config", "@provenance_resources")


def h5_contents(path: Path) -> dict[str, object]:
    """Every dataset and attribute of an HDF5 file except wall-clock timings."""
    out: dict[str, object] = {}
    with h5py.File(path, "r") as handle:
        # the checksum of the datasets covers `sps` too: it differs between any two runs as sps does
        out.update({f"@{k}": v for k, v in handle.attrs.items() if k not in TIMING_ATTRS})
        handle.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[()])
                if isinstance(obj, h5py.Dataset) and name.split("/")[-1] not in TIMING_KEYS
                else None
            )
        )
    return out


def assert_same_contents(want: dict, got: dict, ignore: tuple[str, ...] = ()) -> None:
    """Two h5_contents: the same keys, and every value but those in `ignore` equal."""
    assert want.keys() == got.keys()
    for key in want.keys() - set(ignore):
        np.testing.assert_array_equal(want[key], got[key], err_msg=key)


def test_tiny_run_writes_complete_results(tmp_path, tiny_config):
    path = train(tiny_config, tmp_path / "run", quiet=True)
    with h5py.File(path, "r") as handle:
        assert handle["eval/step"][()].tolist() == [0, 1000, 2000]
        assert handle["eval/success"].shape == (3, 1) and handle["eval/return"].shape == (3, 1)
        assert handle["train/step"][()].tolist() == [500, 1000, 1500, 2000]
        for key in ("critic_loss", "actor_loss", "alpha_loss", "q_mean", "entropy", "sps"):
            assert handle[f"train/{key}"].shape == (4,)
        assert np.isfinite(handle["train/critic_loss"][()][1:]).all()
        assert handle["train/alpha"].shape == (4, 1)
        config = json.loads(handle.attrs["config"])
        assert config["actor_width"] == 32 and json.loads(handle.attrs["tasks"]) == ["reach-v3"]
        assert handle.attrs["actor_params"] == 40 * 32 + 32 + 2 * (32 * 32 + 32) + 32 * 8 + 8
    steps = [s for s, _ in ckpt.probe_checkpoints(tmp_path / "run")]
    assert steps == [0, 1000, 2000]
    probe = ckpt.load(ckpt.probe_checkpoints(tmp_path / "run")[-1][1])
    # networks and one probe batch (batch_per_task rows per task), no buffer
    assert set(probe) == {"step", "config", "actor", "critic", "log_alpha", "probe_batch"}
    assert probe["probe_batch"]["obs"].shape == (tiny_config.batch_per_task, 40)
    assert not ckpt.resume_path(tmp_path / "run").exists()  # no stale multi-GB state once complete
    assert train(tiny_config, tmp_path / "run", quiet=True) == path  # complete runs are not redone


def test_same_seed_same_numbers_and_other_seed_differs(tmp_path, tiny_config):
    short = dataclasses.replace(tiny_config, total_steps=1000, eval_every=500, probe_checkpoints=1)
    a = h5_contents(train(short, tmp_path / "a", quiet=True))
    b = h5_contents(train(short, tmp_path / "b", quiet=True))
    c = h5_contents(train(dataclasses.replace(short, seed=1), tmp_path / "c", quiet=True))
    assert_same_contents(a, b)
    assert not np.array_equal(a["train/critic_loss"], c["train/critic_loss"])


def _train_command(run_dir: Path, config: dict) -> list[str]:
    args = [sys.executable, "-m", "mtrl.cli", "train", "--out", str(run_dir)]
    for key, value in config.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    return args


@pytest.mark.slow
@pytest.mark.parametrize("eval_mode", ["blocking", "background"])
def test_killed_run_resumes_to_identical_results(tmp_path, eval_mode):
    """kill -9 after the first resume checkpoint; the resumed run equals an uninterrupted one, with the
    evaluation at once or in the background (its results pending at the kill are evaluated again)."""
    config = {**TINY, "total_steps": 3000, "checkpoint_every": 1000, "eval_every": 500}
    reference = tmp_path / "reference"
    uninterrupted = subprocess.Popen(
        _train_command(reference, {**config, "eval_mode": "blocking"}), stdout=subprocess.DEVNULL
    )
    config["eval_mode"] = eval_mode

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_command(killed, config), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not ckpt.resume_path(killed).exists():
        assert proc.poll() is None, "run ended before its first resume checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "train.h5").exists()  # the declared output appears only when complete

    resumed = subprocess.run(_train_command(killed, config), check=True, capture_output=True, text=True)
    assert "resumed" in resumed.stderr
    assert uninterrupted.wait(timeout=240) == 0
    want, got = h5_contents(reference / "train.h5"), h5_contents(killed / "train.h5")
    assert_same_contents(want, got, ignore=EXECUTION_ATTRS)  # the config differs only in eval_mode
    assert got["eval/step"].tolist() == list(range(0, 3001, 500))
    for (step_a, path_a), (step_b, path_b) in zip(
        ckpt.probe_checkpoints(reference), ckpt.probe_checkpoints(killed), strict=True
    ):
        a, b = ckpt.load(path_a), ckpt.load(path_b)
        assert step_a == step_b
        for name in a["actor"]:
            assert torch.equal(a["actor"][name], b["actor"][name]), (step_a, name)


def test_resume_with_a_different_config_is_refused_or_restarted(tmp_path, tiny_config):
    run = tmp_path / "run"
    ckpt.save_atomic({"config": {**tiny_config.to_dict(), "seed": 99}}, ckpt.resume_path(run))
    ckpt.save_atomic({"stale": True}, ckpt.probe_path(run, 123_000))
    with pytest.raises(ConfigError, match=r"resume\.pt: written by a different config \(seed differ\)"):
        train(tiny_config, run, quiet=True)
    short = dataclasses.replace(tiny_config, total_steps=1000, eval_every=500, probe_checkpoints=1)
    ckpt.save_atomic({"config": short.resolved().to_dict(), "provenance": "old-code"}, ckpt.resume_path(run))
    train(short, run, quiet=True, provenance="new-code", restart_stale=True)
    assert [s for s, _ in ckpt.probe_checkpoints(run)] == [0, 1000]  # the stale step-123000 file is gone


def test_config_round_trips_through_train_h5(tmp_path, tiny_config):
    short = dataclasses.replace(tiny_config, total_steps=1000, eval_every=500, probe_checkpoints=1)
    with h5py.File(train(short, tmp_path / "run", quiet=True)) as handle:
        assert TrainConfig.from_dict(json.loads(handle.attrs["config"])) == short.resolved()


def test_blocking_and_background_evaluation_write_identical_results(tmp_path):
    """The evaluation at step t is of the policy at step t on envs seeded from (seed, t) alone, whether
    training waits for it or goes on meanwhile; training itself no longer depends on the evaluation
    (it ran on the training envs and drew from their RNG): other episode counts, the same losses. On
    the default vector env (shm); blocking evaluation on sync envs is every other run's."""
    config = {**TINY, "vector_strategy": "shm", "eval_every": 500, "eval_episodes": 2}
    runs = {
        mode: h5_contents(train(TrainConfig.from_dict({**config, **mode_settings}), tmp_path / mode, True))
        for mode, mode_settings in [
            ("blocking", {"eval_mode": "blocking"}),
            ("background", {"eval_mode": "background"}),
            ("one_episode", {"eval_mode": "blocking", "eval_episodes": 1}),
        ]
    }
    assert_same_contents(runs["blocking"], runs["background"], ignore=EXECUTION_ATTRS)
    assert runs["blocking"]["eval/step"].tolist() == [0, 500, 1000, 1500, 2000]
    one, two = runs["one_episode"], runs["blocking"]
    assert not np.array_equal(one["eval/return"], two["eval/return"])
    for key in [k for k in two if k.startswith("train/")]:
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)


def test_warmup_counts_steps_per_task_not_transitions(tmp_path):
    """The authors act randomly while the *vector* step is below 4,000: on MT10 that is 40,000
    transitions. One MT10 episode (500 vector steps) with warmup_steps_per_task=400 makes exactly
    500 - 400 + 1 = 101 updates (today's transition-count reading would make 461)."""
    from mtrl.run.train import Trainer

    config = TrainConfig.from_dict(
        {
            **TINY,
            "task_set": "mt10",
            "total_steps": 5000,
            "eval_every": 5000,
            "checkpoint_every": 5000,
            "log_every": 5000,
            "probe_checkpoints": 1,
            "warmup_steps_per_task": 400,
            "eval_episodes": 1,
        }
    )
    trainer = Trainer(config, tmp_path / "run", quiet=True, provenance="", restart_stale=False)
    calls = []
    agent = trainer.state.agent
    real_update = agent.update
    agent.update = lambda batch: calls.append(trainer.state.step) or real_update(batch)
    trainer.run()
    assert len(calls) == 101
    assert calls[0] == 400
    assert TrainConfig().warmup_steps_per_task == 4000


@pytest.mark.slow
@pytest.mark.parametrize(("strategy", "eval_mode"), [("async", "blocking"), ("shm", "background")])
def test_sigterm_to_the_process_group_checkpoints_and_resumes_identically(tmp_path, strategy, eval_mode):
    """SLURM's scancel/time limit: SIGTERM to every process of the job, env workers and evaluation
    included. The trainer ends the episode, collects the pending evaluations, writes the resume
    checkpoint, says so in one line and exits 75; the resumed run equals an uninterrupted one (in one
    process, evaluating at once: the worker processes change nothing)."""
    config = {
        **TINY, "total_steps": 2000, "checkpoint_every": 2000, "eval_every": 500,
        "vector_strategy": strategy, "eval_mode": eval_mode,
    }  # fmt: skip
    reference = tmp_path / "reference"
    uninterrupted = subprocess.Popen(
        _train_command(reference, {**config, "vector_strategy": "sync", "eval_mode": "blocking"}),
        stdout=subprocess.DEVNULL,
    )

    stopped = tmp_path / "stopped"
    proc = subprocess.Popen(
        _train_command(stopped, config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # the first progress line: training is under way, before step 2000
        if line.startswith("[mtrl] step"):
            break
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 75, err
    lines = [x for x in err.splitlines() if x.startswith("mtrl:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("mtrl: SIGTERM received: stopped at step ")
    assert lines[0].endswith(", resume checkpoint written; run again to continue")
    step = int(lines[0].split("stopped at step ")[1].split(",")[0])
    assert 0 < step < 2000
    assert ckpt.load(ckpt.resume_path(stopped))["step"] == step  # vector steps == transitions on MT1
    assert not (stopped / "train.h5").exists()

    resumed = subprocess.run(_train_command(stopped, config), check=True, capture_output=True, text=True)
    assert "resumed" in resumed.stderr
    assert uninterrupted.wait(timeout=240) == 0
    want, got = h5_contents(reference / "train.h5"), h5_contents(stopped / "train.h5")
    assert_same_contents(want, got, ignore=EXECUTION_ATTRS)  # the config differs in execution settings only


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGUSR1, 75)])
def test_signal_stops_at_the_episode_boundary_with_its_exit_code(
    tmp_path, tiny_config, monkeypatch, sig, code, capsys
):
    """The signal arrives mid-episode (here: during the step-500 evaluation hook); training stops at
    that episode's end with the resume checkpoint of that step, and the CLI exits with the code."""
    from mtrl.cli import main
    from mtrl.run.train import Trainer, TrainingInterrupted

    real = Trainer.at_episode_end

    def signalled(self):
        if self.state.step == 500:
            os.kill(os.getpid(), sig)
        real(self)

    monkeypatch.setattr(Trainer, "at_episode_end", signalled)
    before = signal.getsignal(sig)  # SIG_IGN for SIGINT where the suite was started in the background
    with pytest.raises(TrainingInterrupted) as info:
        train(tiny_config, tmp_path / "run", quiet=True)
    assert (info.value.signal_name, info.value.step, info.value.exit_code) == (sig.name, 500, code)
    assert ckpt.load(ckpt.resume_path(tmp_path / "run"))["step"] == 500
    assert signal.getsignal(sig) == before  # handlers restored

    args = ["train", "--out", str(tmp_path / "cli")] + [
        f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()
    ]
    assert main(args) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1]
        == f"mtrl: {sig.name} received: stopped at step 500, resume checkpoint written; run again to continue"
    )


def test_a_second_ctrl_c_stops_at_once():
    from mtrl.run.stop_signals import StopSignals

    stop = StopSignals()
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with stop.active():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.received == "SIGTERM"  # recorded, the process lives on to the episode's end
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert {sig: signal.getsignal(sig) for sig in before} == before  # restored


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        ("interrupted", 75, "mtrl: SIGTERM received: stopped at step 1500, resume checkpoint written"),
        ("env worker", 1, "mtrl: error: env worker for reach-v3 died (exit code -9)"),
        ("evaluation", 1, "mtrl: error: evaluation process died (exit code -9)"),
    ],
)
def test_the_workflow_rule_script_turns_an_interruption_or_a_worker_failure_into_one_line(
    tmp_path, monkeypatch, error, code, line
):
    """The contract with the workflow: the rule script prints the one line and exits 75 (retry) when
    stopped, 1 when a worker process failed."""
    import logging
    import runpy
    import types

    import mtrl.run.train as train_module
    from mtrl.envs.shm import EnvWorkerError
    from mtrl.run.evaluator import EvaluatorError

    def interrupted(*_a, **_k):
        raise {
            "interrupted": train_module.TrainingInterrupted("SIGTERM", 1500),
            "env worker": EnvWorkerError("env worker for reach-v3 died (exit code -9)"),
            "evaluation": EvaluatorError("evaluation process died (exit code -9)"),
        }[error]

    monkeypatch.setattr(train_module, "train", interrupted)
    scripts = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
    monkeypatch.syspath_prepend(str(scripts))
    job = types.SimpleNamespace(
        log=[str(tmp_path / "train.log")],
        params=types.SimpleNamespace(run=TINY, code="abc"),  # the run's identity (+ execution keys)
        config={},  # the workflow config: execution settings come from its *_defaults sections
        input=[],
        output=[str(tmp_path / "run" / "train.h5")],
        resources=types.SimpleNamespace(runtime=None),  # no time limit: no stop timer
    )
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with pytest.raises(SystemExit) as info:
            runpy.run_path(str(scripts / "train.py"), init_globals={"snakemake": job})
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert info.value.code == code
    log = (tmp_path / "train.log").read_text()
    assert line in log
    assert "Traceback" not in log


# ---------------------------------------------------------------- resume on any device
def _resume_checkpoint(run: Path, config: TrainConfig) -> tuple[Path, Trainer]:
    """The resume checkpoint of a fresh trainer (step 0) in `run`, and the trainer (envs closed)."""
    trainer = Trainer(config, run, quiet=True, provenance="", restart_stale=False)
    trainer.state.envs.close()
    trainer.save_resume()
    return ckpt.resume_path(run), trainer


def _draws(trainer) -> list[torch.Tensor]:
    """One draw from each RNG a resumed run continues: torch's CPU RNG, the sampler, the agent's."""
    sample, noise = trainer.state.rngs.sampler, trainer.state.agent.generator  # on the run's device
    return [
        torch.rand(4),
        torch.randint(0, 10**6, (4,), generator=sample, device=sample.device).cpu(),
        torch.randn(4, generator=noise, device=noise.device).cpu(),
    ]


def test_rng_states_survive_any_map_location(tmp_path, tiny_config):
    """A GPU run's checkpoint was loaded with map_location=cuda, which moved its RNG states to the GPU,
    and torch.set_rng_state refused them ("RNG state must be a torch.ByteTensor"). The meta device
    does to the tensors on a CPU what cuda does on a GPU: the map location applies to the networks,
    and every RNG state still comes back a CPU ByteTensor and continues the same numbers."""
    path, trainer = _resume_checkpoint(tmp_path / "run", tiny_config)
    want = _draws(trainer)
    state = ckpt.load(path, "meta")
    assert all(t.device.type == "meta" for t in state["agent"]["model"].values())  # mapped
    assert state["agent"]["model"]._metadata is not None  # a state_dict keeps its type and metadata
    rngs = [state["rngs"]["torch_rng"], state["rngs"]["sample_generator"], state["agent"]["generator"]]
    assert all(t.device.type == "cpu" and t.dtype == torch.uint8 for t in rngs)
    assert state["rngs"]["rng_device"] == "cpu" and "cuda_rng" not in state["rngs"]  # CPU: no CUDA state
    with pytest.raises(TypeError, match="RNG state must be a torch.ByteTensor"):
        torch.set_rng_state(state["rngs"]["torch_rng"].to("meta"))  # what mapping it did before

    trainer.state.rngs.load_state_dict(state["rngs"])
    trainer.state.agent.generator.set_state(state["agent"]["generator"])
    got = _draws(trainer)
    for a, b in zip(want, got, strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_of_another_device_type_says_so(tmp_path, tiny_config):
    from mtrl.run import rng_state

    path, trainer = _resume_checkpoint(tmp_path / "run", tiny_config)
    state = ckpt.load(path)
    state["rngs"]["rng_device"] = "cuda"
    ckpt.save_atomic(state, path)
    with pytest.raises(rng_state.RngStateError, match="drawn on cuda, this run is on cpu: resume it on cuda"):
        trainer.state.rngs.load_state_dict(state["rngs"])
    with pytest.raises(ckpt.CheckpointError, match=r"resume it on cuda, or delete it to start over$"):
        train(tiny_config, tmp_path / "run", quiet=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_cuda_run_resumes_its_rng_states_on_gpu(tmp_path, tiny_config):
    """On a GPU: the checkpoint holds the GPU's CUDA RNG state, loads with map_location=cuda and
    every generator (CPU, CUDA default, sampler, agent) continues the same numbers."""
    config = dataclasses.replace(tiny_config, device="cuda")
    path, trainer = _resume_checkpoint(tmp_path / "run", config)
    device = trainer.device
    want = [*_draws(trainer), torch.rand(4, device=device).cpu()]
    state = ckpt.load(path, device)
    assert state["rngs"]["rng_device"] == "cuda" and state["rngs"]["cuda_rng"].device.type == "cpu"
    assert next(iter(state["agent"]["model"].values())).device.type == "cuda"
    trainer.state.rngs.load_state_dict(state["rngs"])
    trainer.state.agent.generator.set_state(state["agent"]["generator"])
    got = [*_draws(trainer), torch.rand(4, device=device).cpu()]
    for a, b in zip(want, got, strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_a_run_failing_at_resume_prints_one_line_with_async_workers(tmp_path, tiny_config):
    """Every way out of the trainer closes the env workers first: a failed resume prints its one-line
    error and nothing else (no EOFError/BrokenPipeError tracebacks of orphaned async workers)."""
    run = tmp_path / "run"
    path, _ = _resume_checkpoint(run, tiny_config)
    state = ckpt.load(path)
    state["buffer"]["obs"] = torch.zeros(3, 0, 39)  # another task count: not this run's state
    ckpt.save_atomic(state, path)
    proc = subprocess.run(
        _train_command(run, {**TINY, "vector_strategy": "async"}), capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"mtrl: error: {path}: does not hold this run's resume state (ValueError: replay checkpoint "
        "does not fit this buffer (task count or capacity differ)); delete it to start over"
    ]


def test_every_way_out_of_training_closes_the_env_workers(tmp_path, tiny_config, monkeypatch):
    closed: list[str] = []

    def trainer_in(run: str) -> Trainer:
        trainer = Trainer(tiny_config, tmp_path / run, quiet=True, provenance="", restart_stale=False)
        close = trainer.state.envs.close
        monkeypatch.setattr(trainer.state.envs, "close", lambda **kw: (closed.append(run), close(**kw))[1])
        return trainer

    trainer_in("finished").run()
    failing = trainer_in("error")
    monkeypatch.setattr(failing, "at_episode_end", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.run()
    assert "finished" in closed and "error" in closed


def test_auto_speed_settings_stay_auto_in_the_identity_and_are_recorded_resolved(tmp_path, tiny_config):
    """The workflow computes a run's identity on a host without a GPU: `auto` stays in it, so the
    trainer records the same identity on any device; what `auto` became is recorded beside it."""
    from mtrl.files.provenance import identity

    short = dataclasses.replace(tiny_config, total_steps=1000, eval_every=500, probe_checkpoints=1)
    assert (short.update_mode, short.matmul_precision) == ("auto", "auto")  # the defaults
    with h5py.File(train(short, tmp_path / "run", quiet=True)) as handle:
        recorded = json.loads(handle.attrs["provenance_identity"])
        resolved = handle.attrs["provenance_update_mode"], handle.attrs["provenance_matmul_precision"]
        resources = json.loads(handle.attrs["provenance_resources"])
    assert recorded == json.loads(json.dumps(identity(short.resolved().to_dict())))
    assert (recorded["update_mode"], recorded["matmul_precision"]) == ("auto", "auto")
    assert resolved == ("eager", "float32")  # on a CPU
    assert resources["torch_threads"] == resources["torch_threads_set"] == 1  # TINY sets 1
    assert resources["env_workers"] == 0 and resources["cores"] >= 1  # sync: in the trainer
