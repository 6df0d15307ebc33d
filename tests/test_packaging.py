"""The pins agree everywhere: pyproject, the conda env file, the lock; the CLI is installed."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)\s*", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_conda_env_matches_pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _pins(project["dependencies"])
    env = yaml.safe_load((ROOT / "envs" / "mtrl.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == wanted
    assert "python=3.11" in env["dependencies"]


def test_lock_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _pins(project["dependencies"] + project["optional-dependencies"]["dev"])
    locked = _pins((ROOT / "requirements.lock").read_text().splitlines())
    for name, version in wanted.items():
        assert locked.get(name) == version, f"{name}: pyproject {version}, lock {locked.get(name)}"
    assert locked["torch"] == "2.13.0"  # never a +cuda or +cpu local version: the plain pin


def test_every_conda_env_file_parses():
    for path in (ROOT / "envs").glob("*.yaml"):
        env = yaml.safe_load(path.read_text())
        assert env["name"] and env["dependencies"], path


def test_cli_entry_point_installed():
    assert shutil.which("mtrl") or (Path(__import__("sys").executable).parent / "mtrl").exists()
