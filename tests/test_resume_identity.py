"""A run stopped anywhere resumes to the files of an uninterrupted run, dataset by dataset.

Tiny MT1 runs (width 16, sync envs, one thread) of 2,000 steps: log rows at 1,000 and 2,000 (windows
of 1,000 steps; updates from step 500), evaluations at 0, 1,500 and 2,000, a resume checkpoint every
episode. Each run is stopped at an episode boundary (a signal arrives
mid-episode; the run stops at that episode's end) or killed mid-episode after a checkpoint, resumed,
and its train.h5 (every dataset and attribute but wall-clock timings), probe checkpoints (every
tensor: networks, temperatures, probe batch; the plasticity probe's inputs) compared with those of
one uninterrupted run. The second config takes the update path of a GPU (`update_mode: graph`, the
captured update's body, uncaptured on a CPU), which computes exactly what eager does: its stopped
runs are compared with the same uninterrupted eager run (but for the recorded `update_mode`), and
its checkpoints also loaded onto the `meta` device as a GPU run loads them onto its GPU: every RNG
state stays on the CPU.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mtrl.config.settings import TrainConfig
from mtrl.files import checkpoints as ckpt
from mtrl.run.state import RunState
from mtrl.run.stop_signals import TrainingInterrupted
from mtrl.run.train import Trainer, train
from tests.test_train import assert_same_contents, h5_contents

RUN = {
    "task_set": "mt1",
    "actor_width": 16,
    "critic_width": 16,
    "total_steps": 2000,
    "warmup_steps_per_task": 500,
    "log_every": 1000,
    "eval_every": 1500,
    "eval_episodes": 1,
    "checkpoint_every": 500,
    "probe_checkpoints": 2,
    "buffer_per_task": 2000,
    "batch_per_task": 8,
    "vector_strategy": "sync",
    "eval_mode": "blocking",
    "torch_threads": 1,
}
CONFIGS = {"cpu": {}, "gpu_path": {"update_mode": "graph"}}
KILL = "kill -9"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run every stopped run is compared with."""
    run = tmp_path_factory.mktemp("reference") / "run"
    train(config_of("cpu"), run, quiet=True)
    return run


def config_of(name: str) -> TrainConfig:
    return TrainConfig.from_dict({**RUN, **CONFIGS[name]})


def deliver_at(monkeypatch, step: int, action) -> None:
    """Call `action()` once, in the middle of the episode before vector step `step`."""
    real = Trainer.collect_and_update

    def hooked(self: Trainer, obs):
        if self.state.step == step - 250:
            action()
        return real(self, obs)

    monkeypatch.setattr(Trainer, "collect_and_update", hooked)


def stop_by_signal(monkeypatch, run: Path, config: TrainConfig, sig: signal.Signals, at: int) -> None:
    """Send `sig` to this process mid-episode; training stops at the episode's end, step `at`."""
    deliver_at(monkeypatch, at, lambda: os.kill(os.getpid(), sig))
    with pytest.raises(TrainingInterrupted) as info:
        train(config, run, quiet=True)
    assert (info.value.signal_name, info.value.step) == (sig.name, at)
    monkeypatch.undo()


def kill_after_checkpoint(monkeypatch, run: Path, config: TrainConfig, at: int) -> None:
    """kill -9 in a forked child, mid-episode after the resume checkpoint of step `at`."""
    deliver_at(monkeypatch, at + 500, lambda: os.kill(os.getpid(), signal.SIGKILL))
    pid = os.fork()
    if pid == 0:  # the child: trains until it kills itself; never returns into pytest
        try:
            train(config, run, quiet=True)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    monkeypatch.undo()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert not (run / "train.h5").exists()


def assert_same_tensors(want: Any, got: Any, where: str) -> None:
    """Two checkpoint contents: the same structure, every tensor and value equal."""
    assert type(want) is type(got), where
    if isinstance(want, dict):
        assert want.keys() == got.keys(), where
        for key in want:
            assert_same_tensors(want[key], got[key], f"{where}/{key}")
    elif isinstance(want, list | tuple):
        assert len(want) == len(got), where
        for index, (a, b) in enumerate(zip(want, got, strict=True)):
            assert_same_tensors(a, b, f"{where}[{index}]")
    elif isinstance(want, torch.Tensor):
        assert want.dtype == got.dtype and torch.equal(want, got), where
    elif isinstance(want, np.ndarray):
        np.testing.assert_array_equal(want, got, err_msg=where)
    else:
        assert want == got, where


def assert_same_run(want: Path, got: Path, config_differs: str | None = None) -> None:
    """train.h5 and every probe checkpoint of two runs are equal (but for wall-clock timings), or,
    with `config_differs`, equal but for that one setting where the files record the config."""
    recorded = ("@config", "@provenance_identity", f"@provenance_{config_differs}") if config_differs else ()
    assert_same_contents(h5_contents(want / "train.h5"), h5_contents(got / "train.h5"), ignore=recorded)
    probes = ckpt.probe_checkpoints(want)
    assert [s for s, _ in probes] == [s for s, _ in ckpt.probe_checkpoints(got)] == [0, 1000, 2000]
    for step, path in probes:
        a, b = ckpt.load(path), ckpt.load(ckpt.probe_path(got, step))
        if config_differs:
            assert a["config"].pop(config_differs) != b["config"].pop(config_differs)
        assert_same_tensors(a, b, f"probe {step}")


def assert_rng_states_stay_on_the_cpu(path: Path) -> None:
    """Loaded onto `meta` (as a GPU run loads onto its GPU): every tensor is mapped but the RNG states,
    byte tensors, which stay on the CPU with their bytes (torch sets RNG states from CPU tensors only)."""
    state = ckpt.load(path, "meta")
    assert set(RunState.part_names()) <= set(state)
    rngs = [state["rngs"]["torch_rng"], state["rngs"]["sample_generator"], state["agent"]["generator"]]
    assert all(t.device.type == "cpu" and t.dtype == torch.uint8 for t in rngs)
    assert state["window"]["sums"].device.type == "meta"
    assert all(t.device.type == "meta" for t in state["agent"]["model"].values())


# Each case: one run stopped one or more times, (how, at which step it stops), resumed after each
# stop, its files compared at the end. The stops fall before the first log row (500, inside the
# first window), on a window's edge just before an evaluation (1,000), inside a window at an
# evaluation (1,500), and mid-episode after a checkpoint (kill -9 at 750 or 1,750).
CASES = {
    "cpu-SIGTERM500-SIGUSR1_1000-kill1500": (
        "cpu",
        [(signal.SIGTERM, 500), (signal.SIGUSR1, 1000), (KILL, 1500)],
    ),
    "gpu_path-kill500-SIGTERM1500": ("gpu_path", [(KILL, 500), (signal.SIGTERM, 1500)]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_stopped_run_resumes_to_the_files_of_an_uninterrupted_one(tmp_path, monkeypatch, reference, case):
    config_name, stops = CASES[case]
    config, run = config_of(config_name), tmp_path / "run"
    for how, at in stops:
        if how == KILL:
            kill_after_checkpoint(monkeypatch, run, config, at)
        else:
            stop_by_signal(monkeypatch, run, config, how, at)
        resume = ckpt.resume_path(run)
        assert ckpt.load(resume)["step"] == at  # vector steps == transitions on MT1
        if config_name == "gpu_path":
            assert_rng_states_stay_on_the_cpu(resume)
    train(config, run, quiet=True)
    # the GPU's update path computes on a CPU exactly what eager does: one uninterrupted run serves both
    assert_same_run(reference, run, None if config_name == "cpu" else "update_mode")


def test_the_run_state_is_saved_and_loaded_whole(tmp_path):
    """Every part of a run state comes back from its file as it was saved: a second save of the
    loaded state holds the same tensors and values (the wall clock aside, which keeps running)."""
    config = config_of("cpu")
    first = Trainer(config, tmp_path / "a", quiet=True, provenance="p", restart_stale=False)
    obs, _ = first.state.envs.reset()
    for _ in range(520):  # past warm-up: optimisers, buffer, window and log have content
        obs, _, truncated = first.collect_and_update(obs)
        if truncated.all():
            obs, _ = first.state.envs.reset()
    first.state.log.eval_step.append(7)
    first.state.watch.warned = True
    first.state.save(tmp_path / "state.pt")
    second = Trainer(config, tmp_path / "b", quiet=True, provenance="p", restart_stale=False)
    second.state.load(tmp_path / "state.pt")
    want, got = first.state.state_dict(), second.state.state_dict()
    for state in (want, got):
        state.pop("clock")
    assert_same_tensors(want, got, "state")
    assert second.state.step == 520 and second.state.window.count == 21 and second.state.watch.warned
    for trainer in (first, second):
        trainer.state.envs.close()
        trainer.evaluator.close()
