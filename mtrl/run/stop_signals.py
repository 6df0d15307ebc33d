"""Stopping a run on a signal: SIGTERM (SLURM's time limit), SIGUSR1 or Ctrl-C end training at the
next episode boundary, after the resume checkpoint is written, instead of killing it mid-write."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
            os.write(2, f"[mtrl.run.train] {name} received: stopping at the end of this episode\n".encode())

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
    from mtrl.envs.shm import start_resource_tracker

    start_resource_tracker()  # started later, it would unblock SIGINT and SIGTERM again
    wanted = {getattr(signal, name) for name in STOP_SIGNALS}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
