"""docs/fidelity.md's "Ours" column must say what the code runs.

Every table row with a key (a `TrainConfig` key, optionally `[arch, task set]`, or one of the
special keys `params [...]`, `task K [...]`, `config.yaml:NAME`) is checked against the config the
study's workflow builds: TrainConfig defaults < config/config.yaml's run / task-set / arch defaults,
then `resolved()`. A failure names the row.
"""

from __future__ import annotations

import dataclasses
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from mtrl.config.settings import ARCHS, TrainConfig
from mtrl.envs.benchmarks import TASK_SETS, task_names

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "fidelity.md"
STUDY = ROOT / "config" / "config.yaml"

# Rows whose target value is being put into the code on other branches (issue 9). They are expected
# to fail until those branches are merged; once one passes, strict xfail fails: delete its entry.
PENDING = {}


def parse_value(cell: str) -> Any:
    """The value at the start of an "Ours" cell: 4,000 / 4e3 / 3e-4 / -10 / None / true / v2."""
    token = cell.replace("`", "").strip().split()[0].rstrip(";:")
    if token.lower() in ("none", "null", "off"):
        return None
    if token.lower() in ("true", "false"):
        return token.lower() == "true"
    number = token.replace(",", "")
    try:
        return int(number)
    except ValueError:
        pass
    try:
        return float(number)
    except ValueError:
        return token


def parse_numbers(cell: str) -> list[int]:
    """Every integer in a cell, thousands separators allowed: '1,700,095 / 1,694,060' -> two ints."""
    return [int(m.replace(",", "")) for m in re.findall(r"\d[\d,]*", cell.replace("`", ""))]


def split_row(line: str) -> list[str]:
    cells = line.strip().strip("|").split("|")
    return [c.strip() for c in cells]


def keyed_rows(text: str) -> list[tuple[str, str, str]]:
    """(setting, key, ours) of every row with a key, from every table that has Key and Ours columns."""
    rows: list[tuple[str, str, str]] = []
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.lstrip().startswith("|"):
            header = None
            continue
        cells = split_row(line.replace(r"\|", "/"))
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue
        if "key" not in header or "ours" not in header:
            continue
        key = cells[header.index("key")].replace("`", "").strip()
        if key and key not in ("-", "—"):
            rows.append((cells[0], key, cells[header.index("ours")]))
    return rows


def parse_key(key: str) -> tuple[str, str, str]:
    """'log_std_min [moore, mt10]' -> ('log_std_min', 'moore', 'mt10'); defaults mtmhsac / mt10."""
    match = re.fullmatch(r"([^\[]+?)\s*(?:\[([^\]]*)\])?", key.strip())
    if match is None:
        raise ValueError(f"unreadable key {key!r}")
    name, selector = match.group(1).strip(), match.group(2) or ""
    arch, task_set = "mtmhsac", "mt10"
    for token in filter(None, (t.strip() for t in selector.split(","))):
        if token in ARCHS:
            arch = token
        elif token in TASK_SETS:
            task_set = token
        else:
            raise ValueError(f"key {key!r}: {token!r} is neither an architecture nor a task set")
    return name, arch, task_set


@cache
def study() -> dict[str, Any]:
    return yaml.safe_load(STUDY.read_text())


@cache
def effective_config(arch: str, task_set: str) -> TrainConfig:
    """The config the workflow builds for this arch and task set (before any grid-point override)."""
    values = {
        **study().get("run_defaults", {}),
        **study().get("task_set_defaults", {}).get(task_set, {}),
        **study().get("arch_defaults", {}).get(arch, {}),
        "arch": arch,
        "task_set": task_set,
    }
    return TrainConfig.from_dict(values).resolved()


def code_value(key: str) -> Any:
    """What the code gives for a table key."""
    if key.startswith("config.yaml:"):
        return study()[key.removeprefix("config.yaml:")]
    name, arch, task_set = parse_key(key)
    if name == "params":
        from mtrl.nets.matching import count_actor_critic

        torch.set_num_threads(1)
        return list(count_actor_critic(effective_config(arch, task_set)))
    if match := re.fullmatch(r"task (\d+)", name):
        return task_names(task_set)[int(match.group(1)) - 1]
    config = effective_config(arch, task_set)
    if not hasattr(config, name):
        raise KeyError(f"{name!r} is not a TrainConfig key")
    return getattr(config, name)


def same(ours: Any, code: Any) -> bool:
    if isinstance(code, bool) or isinstance(ours, bool) or code is None or ours is None:
        return ours is code
    if isinstance(code, int | float) and isinstance(ours, int | float):
        return math.isclose(float(ours), float(code), rel_tol=1e-9, abs_tol=0.0)
    return str(ours) == str(code)


ROWS = keyed_rows(DOC.read_text())


def _param(row: tuple[str, str, str]) -> Any:
    setting, key, ours = row
    marks = [pytest.mark.xfail(strict=True, reason=PENDING[key])] if key in PENDING else []
    return pytest.param(setting, key, ours, id=key, marks=marks)


@pytest.mark.parametrize(("setting", "key", "ours"), [_param(r) for r in ROWS])
def test_ours_column_matches_code(setting: str, key: str, ours: str) -> None:
    code = code_value(key)
    if key.split("[")[0].strip() == "params":
        assert parse_numbers(ours)[:2] == code, f"row {setting!r} ({key}): table says {ours!r}, code {code}"
        return
    value = parse_value(ours)
    assert same(value, code), f"row {setting!r} ({key}): table says {value!r}, code gives {code!r}"


def test_table_covers_the_run_defining_keys() -> None:
    """The keys that define a run all appear; every keyed row names something the code knows."""
    keys = {parse_key(k)[0] for _, k, _ in ROWS if not k.startswith("config.yaml:")}
    # Every TrainConfig field defines a run, except these execution and bookkeeping settings.
    not_protocol = {"task_set", "mt1_task", "seed", "device", "vector_strategy", "torch_threads",
                    "env_workers", "eval_mode", "eval_device", "checkpoint_every", "log_every",
                    "update_mode"}  # fmt: skip
    required = {f.name for f in dataclasses.fields(TrainConfig)} - not_protocol | {"params"}
    assert required <= keys, f"docs/fidelity.md has no row for {sorted(required - keys)}"
    assert len({k for _, k, _ in ROWS}) == len(ROWS), "a key appears in two rows"
    assert set(PENDING) <= {k for _, k, _ in ROWS}, "PENDING names a row the table does not have"


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("4,000", 4000),
        ("4e3 (per task)", 4000),
        ("`3e-4`", 3e-4),
        ("-10", -10),
        ("None", None),
        ("true", True),
        ("v2", "v2"),
        ("1e-5;", 1e-5),
    ],
)
def test_parse_value_is_tolerant(cell: str, value: Any) -> None:
    assert same(parse_value(cell), value)


def test_parser_reads_key_and_ours_columns_by_name() -> None:
    text = "| S | Ours | Key |\n| --- | --- | --- |\n| a | 2e7 | `total_steps [mt50]` |\n| b | x | - |\n"
    assert keyed_rows(text) == [("a", "total_steps [mt50]", "2e7")]
    assert parse_key("log_std_min [moore, mt10]") == ("log_std_min", "moore", "mt10")
    with pytest.raises(ValueError):
        parse_key("lr [bogus]")


def test_readme_links_the_fidelity_table() -> None:
    assert "docs/fidelity.md" in (ROOT / "README.md").read_text()
