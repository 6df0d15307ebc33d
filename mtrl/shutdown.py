"""Env workers shut down on every way out of training: the run finishing, an error, a stop signal.

Worker processes left running when the trainer exits find their pipes closed and print a
traceback each (`EOFError`, `BrokenPipeError`) after the trainer's one-line error. Closing the
vector env (its `close()`, whatever kind of vector env it is) before the exception leaves the
trainer stops them first. On an error, a failure to close is logged, never raised over the error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

log = logging.getLogger("mtrl.train")


class Closable(Protocol):
    def close(self) -> None: ...


def close_quietly(envs: Closable) -> None:
    """Close `envs`; a failure (a worker already gone) is logged at debug level, not raised."""
    try:
        envs.close()
    except Exception as exc:  # noqa: BLE001 - the error that ended training is the one to report
        log.debug("closing the env workers after an error: %s: %s", type(exc).__name__, exc)


@contextmanager
def closed_on_error(envs: Closable) -> Iterator[None]:
    """Close `envs` if the block raises (anything, KeyboardInterrupt included), then re-raise."""
    try:
        yield
    except BaseException:
        close_quietly(envs)
        raise


@contextmanager
def closed_at_exit(envs: Closable) -> Iterator[None]:
    """Close `envs` however the block ends: normally (errors of close propagate) or by an exception."""
    with closed_on_error(envs):
        yield
    envs.close()
