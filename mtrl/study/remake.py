"""The result files behind a Snakemake command's targets that the workflow must make again, judged
from the files themselves: missing, not whole, damaged, or recording other settings or code.

Snakemake alone misses two of these: it does not rebuild a missing intermediate file (a deleted
train.h5, plasticity.h5 or table) whose consumers' outputs exist, and it cannot see a file damaged
after it was written. The workflow passes these files to Snakemake as forced (`--forcerun`), so it
writes nothing to make them rerun (a dry run writes nothing at all) and their jobs' inputs stay the
same: once remade, a file is current and is never rebuilt again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from mtrl.files.integrity import table_problem
from mtrl.study.plan import Scope

# judge(path, kind, run) -> '' when the file is current, else why not; kind is "train" or "probe"
Judge = Callable[[Path, str, str], str]
RULE_OF = {"train.h5": "train", "plasticity.h5": "probe"}  # the rest are tables: "aggregate"


def files_to_remake(scope: Scope, results_dir: Path, judge: Judge) -> dict[Path, str]:
    """{path: why} of every train.h5, plasticity.h5 and table in `scope` that must be made again.

    A run whose train.h5 is remade has its plasticity.h5 remade after it in any case (Snakemake
    reruns what depends on a job that runs); so do the tables and figures that read it.
    """
    remake: dict[Path, str] = {}
    for run in scope.runs:
        train = results_dir / "runs" / run / "train.h5"
        why = judge(train, "train", run)
        if why:
            remake[train] = why
        elif run in scope.probed:
            plasticity = results_dir / "runs" / run / "plasticity.h5"
            why = judge(plasticity, "probe", run)
            if why:
                remake[plasticity] = why
    for figure in scope.figures:
        table = results_dir / "tables" / f"{figure}.csv"
        if not table.exists() or not table.with_suffix(".provenance.json").exists():
            remake[table] = "missing"
        elif problem := table_problem(table):
            remake[table] = f"{table.name} {problem}"
    return remake


def made_by(remake: dict[Path, str], allowed_rules: Collection[str]) -> dict[Path, str]:
    """The files of `remake` that the rules in `allowed_rules` make (Snakemake's --allowed-rules;
    all when it is empty): a file no allowed rule makes is not forced."""
    if not allowed_rules:
        return remake
    return {path: why for path, why in remake.items() if RULE_OF.get(path.name, "aggregate") in allowed_rules}


def remake_line(remake: dict[Path, str]) -> str | None:
    """One line saying how many files are made again and why, with an example; None if none."""
    damaged = {path: why for path, why in remake.items() if why != "missing"}
    if not damaged:
        return None
    path, why = next(iter(damaged.items()))
    more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
    return f"mtrl: {len(damaged)} result files are made again, e.g. {path}: {why}{more}"
