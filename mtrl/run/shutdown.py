"""Env workers and the evaluator shut down on every way out of training: the run finishing, an
error, a stop signal.

Worker processes left running when the trainer exits find their pipes closed and print a
traceback each (`EOFError`, `BrokenPipeError`) after the trainer's one-line error. Closing the
vector env and the evaluator (their `close()`) before the exception leaves the trainer stops them
first. On an error, a failure to close is logged, never raised over the error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

log = logging.getLogger("mtrl.run.train")


class Closable(Protocol):
    def close(self) -> None: ...


def close_quietly(*owners: Closable) -> None:
    """Close each of `owners`; a failure (a worker already gone) is logged at debug level, not raised."""
    for owner in owners:
        try:
            owner.close()
        except Exception as exc:  # noqa: BLE001 - the error that ended training is the one to report
            log.debug("closing %s after an error: %s: %s", type(owner).__name__, type(exc).__name__, exc)


@contextmanager
def closed_on_error(*owners: Closable) -> Iterator[None]:
    """Close `owners` if the block raises (anything, KeyboardInterrupt included), then re-raise."""
    try:
        yield
    except BaseException:
        close_quietly(*owners)
        raise


@contextmanager
def closed_at_exit(*owners: Closable) -> Iterator[None]:
    """Close `owners` however the block ends: normally (errors of close propagate) or by an exception."""
    with closed_on_error(*owners):
        yield
    for i, owner in enumerate(owners):
        with closed_on_error(*owners[i + 1 :]):  # one that fails to close still closes the rest
            owner.close()
