"""Shared by the rule scripts: check that the job runs its workflow's `mtrl`, and send logging and
stderr to the rule's log."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A job in an environment without mtrl installed (Snakemake's conda deployment builds envs/mtrl.yaml,
# which holds the dependencies only) imports the workflow's own copy; an installed mtrl is never
# shadowed, and `other_package` refuses one that is not the workflow's.
if importlib.util.find_spec("mtrl") is None:
    sys.path.append(str(ROOT))


def one_line_errors() -> tuple[type[Exception], ...]:
    """mtrl's errors that name their file, key, step or process in one line (config, checkpoints and
    result files, divergence, an env worker or the evaluation that failed): a job failing with one of
    them logs that line, not a traceback."""
    from mtrl.config.settings import ConfigError
    from mtrl.files.checkpoints import CheckpointError
    from mtrl.files.integrity import DamagedResult
    from mtrl.run.divergence import TrainingDiverged
    from mtrl.run.train import WORKER_ERRORS

    return ConfigError, CheckpointError, DamagedResult, TrainingDiverged, *WORKER_ERRORS


def fail(message: str) -> None:
    """End the job with `message` as one `mtrl: error:` line (in its log and on stderr), exit 1."""
    print(f"mtrl: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def other_package() -> str | None:
    """Where the `mtrl` this job imports lives, if not in its workflow's folder: the code hash its rule
    passes (and the job records) is that of the workflow's `mtrl`, which must then be what runs."""
    import mtrl

    package = Path(mtrl.__file__).resolve().parent
    return None if package == ROOT / "mtrl" else str(package)


@contextmanager
def logged(log_path: str):
    """Everything the job prints (logging, warnings, tracebacks) goes to its log file as well as stderr.

    A job that would run another `mtrl` than its workflow's stops first, saying so in one line.
    """
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    other = other_package()
    if other:
        message = (
            f"mtrl: error: {other}: the job imports this mtrl, not its workflow's ({ROOT / 'mtrl'}); "
            f"install the workflow's checkout (pip install -e {ROOT})"
        )
        with open(log_path, "a") as handle:
            handle.write(message + "\n")
        sys.exit(message)
    with open(log_path, "a") as handle:
        logging.basicConfig(
            level=logging.INFO,
            format="[%(name)s] %(message)s",
            force=True,
            handlers=[logging.StreamHandler(handle), logging.StreamHandler(sys.stderr)],
        )
        logging.captureWarnings(True)
        real_stderr = sys.stderr
        sys.stderr = _Tee(real_stderr, handle)
        job = os.environ.get("SLURM_JOB_ID")
        where = (
            f"SLURM job {job} on {socket.gethostname()}" if job else f"local job on {socket.gethostname()}"
        )
        logging.getLogger("mtrl.job").info("%s, pid %d", where, os.getpid())
        try:
            yield
        except Exception as exc:
            if isinstance(exc, one_line_errors()):
                fail(str(exc))  # named in one line: no traceback
            if isinstance(exc, OSError) and exc.filename:  # a full, read-only or network disk
                fail(f"{exc.filename}: {exc.strerror or exc}")
            logging.getLogger("mtrl").exception("job failed")
            raise
        finally:
            # detach everything that writes to the log file before it closes: otherwise logging's
            # shutdown at exit flushes a closed file and prints a traceback
            sys.stderr = real_stderr
            logging.captureWarnings(False)
            root = logging.getLogger()
            for handler in list(root.handlers):
                root.removeHandler(handler)
                handler.close()
            logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s", force=True)


class _Tee:
    """stderr and the log file at once. Libraries keep it after the job's block ends (absl's log
    handler takes sys.stderr when imported and closes it at exit): it then skips the closed log
    file, and closing it closes nothing it does not own."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            if not stream.closed:
                stream.write(text)
                stream.flush()
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            if not stream.closed:
                stream.flush()

    def close(self) -> None:
        """The streams belong to the job (the log file) and the interpreter (stderr)."""

    def __getattr__(self, name: str):  # isatty, fileno, encoding, ...: those of the real stderr
        return getattr(self.streams[0], name)


def stop_before_time_limit(runtime_minutes: float | None, margin_minutes: float) -> None:
    """SIGUSR1 to this process `margin_minutes` before the job's time limit (its `runtime` resource).

    The trainer then stops at the next episode boundary, writes its resume checkpoint and exits 75,
    and Snakemake resubmits the job. Done here rather than by SLURM's --signal, which also reaches
    Snakemake's own job-step process (killed by USR1). The signal waits until a handler is installed
    (the trainer's, while it trains), so it never kills the process by default action.
    """
    if not runtime_minutes:
        return
    delay = max(0.0, (float(runtime_minutes) - float(margin_minutes)) * 60)

    def fire() -> None:
        time.sleep(delay)
        while signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
            time.sleep(0.5)
        logging.getLogger("mtrl.job").info("time limit in %s min: asking the trainer to stop", margin_minutes)
        os.kill(os.getpid(), signal.SIGUSR1)

    threading.Thread(target=fire, name="time-limit", daemon=True).start()
