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
