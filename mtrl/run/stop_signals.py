"""Stopping a run on a signal: SIGTERM (SLURM's time limit), SIGHUP (a closed terminal, a cluster's
hang-up), SIGUSR1 or Ctrl-C end training at the next episode boundary, after the resume checkpoint is
written, instead of killing it mid-write.

Before training (imports, env start-up, loading a resume checkpoint) `early_stops` records SIGTERM and
SIGHUP, which `stop_if_signalled` then turns into a clean stop with nothing lost: installed first
thing by `mtrl train` and the workflow's train job, before their slow imports."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

# Signals that stop training at the next episode boundary, and the exit code each one maps to:
# 75 (EX_TEMPFAIL) tells Snakemake/SLURM the attempt failed and may be retried; 130 is the shell's Ctrl-C.
STOP_SIGNALS = {"SIGTERM": 75, "SIGHUP": 75, "SIGUSR1": 75, "SIGINT": 130}
# Recorded before training starts. Not SIGUSR1 (the job's own time-limit timer waits for the trainer's
# handler) nor SIGINT (Python's KeyboardInterrupt already ends the process in one line).
EARLY_SIGNALS = ("SIGTERM", "SIGHUP")
_early: list[str] = []  # the first early stop signal received and not yet honoured
# While True (a command's imports and parsing: nothing started), an early stop ends it at once.
_stop_at_once = [False]


class TrainingInterrupted(Exception):
    """Training stopped on a signal at an episode boundary, after writing the resume checkpoint.

    `signal_name` is e.g. "SIGTERM", `step` the total env transitions done; `exit_code` is what the
    process should exit with (75 for SIGTERM/SIGUSR1, 130 for SIGINT). str() is the one-line report
    without the "mtrl: " prefix.
    """

    def __init__(self, signal_name: str, step: int, written: bool = True) -> None:
        self.signal_name, self.step = signal_name, step
        self.exit_code = STOP_SIGNALS[signal_name]
        if written:
            what = f"stopped at step {step}, resume checkpoint written; run again to continue"
        elif step:
            what = (
                f"stopped before training resumed at step {step}, its resume checkpoint kept; "
                "run again to continue"
            )
        else:
            what = "stopped before training started, nothing to save; run again to start"
        super().__init__(f"{signal_name} received: {what}")


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
            _say(f"[mtrl.run.train] {name} received: stopping at the end of this episode\n")

    @contextmanager
    def active(self) -> Iterator[StopSignals]:
        if threading.current_thread() is not threading.main_thread():  # handlers need the main thread
            yield self
            return
        previous = {name: signal.signal(getattr(signal, name), self._handle) for name in STOP_SIGNALS}
        self.received = self.received or take_early_stop()
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
    from mtrl.envs.shm import start_resource_tracker

    start_resource_tracker()  # started later, it would unblock SIGINT and SIGTERM again
    wanted = {getattr(signal, name) for name in STOP_SIGNALS}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _say(text: str) -> None:
    """Write to stderr from a signal handler; a terminal already gone (SIGHUP: EIO) is no error."""
    with suppress(OSError):
        os.write(2, text.encode())


def _record_early(signum: int, _frame: Any) -> None:
    name = signal.Signals(signum).name
    if _stop_at_once[0]:  # nothing started: stop now (raised where the main thread is, e.g. an import)
        _stop_at_once[0] = False
        raise TrainingInterrupted(name, 0, written=False)
    if not _early:
        _early.append(name)


def take_early_stop() -> str | None:
    """The stop signal recorded by `early_stops` and not yet honoured (then forgotten), if any."""
    return _early.pop() if _early else None


@contextmanager
def early_stops(at_once: bool = False) -> Iterator[None]:
    """While the block runs (a command's whole life), SIGTERM and SIGHUP do not kill the process:
    training honours them (`stop_if_signalled`, `StopSignals`). With `at_once`, one that comes before
    training starts (`stop_if_signalled(0)`) raises TrainingInterrupted where the process is (the
    CLI's imports): nothing was started, there is nothing to save or close."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _early.clear()
    _stop_at_once[0] = at_once
    previous = {name: signal.signal(getattr(signal, name), _record_early) for name in EARLY_SIGNALS}
    try:
        yield
    finally:
        _stop_at_once[0] = False
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)
        _early.clear()


def stop_if_signalled(step: int) -> None:
    """TrainingInterrupted now if a stop signal came before training (nothing new written): at
    `step` 0 nothing was started, else the run's resume checkpoint of that step is as it was. From
    here on a stop signal is recorded, never raised at once."""
    _stop_at_once[0] = False
    name = take_early_stop()
    if name is not None:
        raise TrainingInterrupted(name, step, written=False)
