"""benchmarks/evaluation.py on MT1: both ways of evaluating, both policies, one row each, the same
success; the scripted expert's episode ends at its first success."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the scripts import their neighbours
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_evaluation_benchmark_compares_full_episodes_with_until_success(tmp_path, monkeypatch):
    script = load_script("evaluation")
    out = tmp_path / "evaluation.csv"
    argv = ["evaluation.py", "--task-set", "mt1", "--episodes", "2", "--parts", "cost", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    script.main()
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == script.FIELDS
    value = {(row["policy"], row["what"].split(" (")[0], row["what"].rsplit(": ", 1)[1]): row for row in rows}
    assert len(value) == len(rows) == 12  # 2 policies x 2 ways x (seconds, transitions, success)
    old, new = "old: full episodes, lockstep", "new: until success"
    for policy in ("untrained actor (w400)", "scripted experts"):
        assert value[(policy, old, "mean success")]["value"] == value[(policy, new, "mean success")]["value"]
        assert float(value[(policy, old, "env transitions")]["value"]) == 2 * 500
    expert = "scripted experts"
    assert float(value[(expert, new, "mean success")]["value"]) == 1.0  # reach-v3's expert succeeds
    assert float(value[(expert, new, "env transitions")]["value"]) < 2 * 500 / 4  # and stops there


def test_per_core_rates_count_the_env_workers_cpu_and_rotate_the_rounds():
    """benchmarks/per_core.py on one task: every way's transitions are counted against the CPU time
    of the benchmark and its workers, rounds start from a different way each time."""
    import time

    script = load_script("env_stepping")
    import per_core

    tasks = ["reach-v3"]
    order: list[str] = []
    ways = [
        per_core.physics_way(tasks, 5, forward=False),
        per_core.single_way("metaworld", tasks, fast=False),
        per_core.vector_way("shm fast", tasks, strategy="shm"),
    ]
    for way in ways:
        chunk = way.chunk
        way.chunk = lambda steps, chunk=chunk, name=way.name: order.append(name) or chunk(steps)
    cpu, own = per_core.cpu_seconds(), time.process_time()
    ways[2].chunk(50)  # the worker steps, this process waits: the worker's CPU time counts
    assert per_core.cpu_seconds() - cpu > time.process_time() - own
    order.clear()
    script.interleave(ways, rounds=2, steps=20)
    names = [way.name for way in ways]
    assert order[3:] == names + names[1:] + names[:1]  # after one warm-up chunk each: rotated rounds
    for way in ways:
        assert len(way.per_core) == 2 and all(rate > 0 for rate in way.per_core)
