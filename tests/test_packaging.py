"""The pins agree everywhere: pyproject, the conda env file, the lock; the CLI is installed."""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)\s*", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


# Pins of the lock that no job imports: dev tools and the executor plugins (they run where Snakemake
# runs), with the packages only they need.
NOT_IN_JOB_ENV = {
    "execnet",
    "iniconfig",
    "pluggy",
    "pygments",
    "pytest",
    "pytest-xdist",
    "ruff",
    "snakemake-executor-plugin-slurm",
    "snakemake-executor-plugin-slurm-jobstep",
    "tqdm",
    "zipp",
}


def _env_pip_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "envs" / "mtrl.yaml").read_text())
    return _pins(next(d["pip"] for d in env["dependencies"] if isinstance(d, dict)))


def test_conda_env_pins_the_tested_tree():
    locked = _pins((ROOT / "requirements.lock").read_text().splitlines())
    wanted = {name: version for name, version in locked.items() if name not in NOT_IN_JOB_ENV}
    assert _env_pip_pins() == wanted  # every package of the lock a job needs, at the lock's version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name, version in _pins(project["dependencies"]).items():
        if name not in NOT_IN_JOB_ENV:
            assert _env_pip_pins()[name] == version, name
    env = yaml.safe_load((ROOT / "envs" / "mtrl.yaml").read_text())
    assert f"python={sys.version_info.major}.{sys.version_info.minor}" in env["dependencies"]


def test_lock_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _pins(project["dependencies"] + project["optional-dependencies"]["dev"])
    locked = _pins((ROOT / "requirements.lock").read_text().splitlines())
    for name, version in wanted.items():
        assert locked.get(name) == version, f"{name}: pyproject {version}, lock {locked.get(name)}"
    assert locked["torch"] == "2.13.0"  # never a +cuda or +cpu local version: the plain pin


def test_lock_holds_every_dependency_of_what_it_pins():
    """pip install -r requirements.lock must not pull anything unpinned (pandas' pytz once was)."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    locked = _pins((ROOT / "requirements.lock").read_text().splitlines())
    unpinned = set()
    for name in locked:
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            continue  # not installed here (nothing of the lock is optional today)
        for text in needs:
            requirement = Requirement(text)
            applies = requirement.marker is None or requirement.marker.evaluate({"extra": ""})
            if applies and re.sub(r"[-_.]+", "-", requirement.name).lower() not in locked:
                unpinned.add(f"{requirement.name} (needed by {name})")
    assert not unpinned, sorted(unpinned)


def test_every_conda_env_file_parses():
    for path in (ROOT / "envs").glob("*.yaml"):
        env = yaml.safe_load(path.read_text())
        assert env["name"] and env["dependencies"], path


def test_cli_entry_point_installed():
    assert shutil.which("mtrl") or (Path(__import__("sys").executable).parent / "mtrl").exists()


def test_the_suite_filters_torchs_script_method_deprecation_and_only_it():
    """torch.utils.mkldnn (imported by the inductor in the compiled-mode tests) warns once per class;
    pyproject's filter silences exactly that warning, from torch.jit._script, and no other."""
    import importlib
    import warnings

    import torch.utils.mkldnn
    from _pytest.config import parse_warning_filter

    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    with warnings.catch_warnings(record=True) as unfiltered:
        warnings.simplefilter("always")
        importlib.reload(torch.utils.mkldnn)
    assert any("torch.jit.script_method" in str(w.message) for w in unfiltered)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for text in options["filterwarnings"]:
            warnings.filterwarnings(*parse_warning_filter(text, escape=False))
        importlib.reload(torch.utils.mkldnn)
        warnings.warn("`torch.jit.script_method` is deprecated elsewhere", DeprecationWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["`torch.jit.script_method` is deprecated elsewhere"]
