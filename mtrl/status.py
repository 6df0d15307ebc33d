"""Where every run of a study stands, judged by the provenance its outputs record.

complete     train.h5 records the run settings and training code the workflow would use now
stale        train.h5 (or plasticity.h5) records other settings or code: its figures would mix versions
in progress  a resume checkpoint or probe checkpoints exist (the step reached is shown)
missing      nothing yet
Aggregation uses `stale_inputs` to refuse out-of-date inputs, naming them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtrl.results import read_provenance

TRAIN_FILE, PLASTICITY_FILE = "train.h5", "plasticity.h5"
STATES = ("complete", "in progress", "stale", "missing")


@dataclass(frozen=True)
class RunStatus:
    run_id: str
    state: str  # complete | stale | in progress | missing
    detail: str = ""


def _differs(path: Path, identity_json: str, code: str) -> str:
    """'' when `path` records this identity and code, else what differs."""
    try:
        recorded = read_provenance(path)
    except OSError as exc:
        return f"{path.name} unreadable ({exc})"
    problems = []
    if recorded.get("provenance_identity") != identity_json:
        problems.append(_settings_diff(recorded.get("provenance_identity"), identity_json))
    if recorded.get("provenance_code") != code:
        problems.append(f"code {recorded.get('provenance_code', 'unrecorded')} != current {code}")
    return f"{path.name}: " + "; ".join(problems) if problems else ""


def _settings_diff(recorded: str | None, wanted: str) -> str:
    if recorded is None:
        return "settings unrecorded"
    old, new = json.loads(recorded), json.loads(wanted)
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    shown = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:4])
    return "settings " + shown + (" ..." if len(keys) > 4 else "")


def _progress(run_dir: Path) -> str:
    resume = run_dir / "checkpoints" / "resume.pt"
    if resume.exists():
        import torch

        from mtrl.envs.benchmarks import num_tasks_of

        state = torch.load(resume, map_location="cpu", weights_only=False, mmap=True)
        steps = state["step"] * num_tasks_of(state["config"]["task_set"])
        return f"step {steps:,} of {state['config']['total_steps']:,} (resume checkpoint)"
    probes = sorted((run_dir / "checkpoints" / "probe").glob("step_*.pt"))
    if probes:
        return f"step {int(probes[-1].stem.removeprefix('step_')):,} (last probe checkpoint)"
    return ""


def run_status(
    run_id: str, run_dir: Path, identity_json: str, train_code: str, probe_code: str | None = None
) -> RunStatus:
    """The state of one run; `probe_code` also checks plasticity.h5 when there is one."""
    train_h5 = run_dir / TRAIN_FILE
    if train_h5.exists():
        problem = _differs(train_h5, identity_json, train_code)
        plasticity = run_dir / PLASTICITY_FILE
        if not problem and probe_code is not None and plasticity.exists():
            problem = _differs(plasticity, identity_json, probe_code)
        return RunStatus(run_id, "stale", problem) if problem else RunStatus(run_id, "complete")
    progress = _progress(run_dir) if run_dir.exists() else ""
    return RunStatus(run_id, "in progress", progress) if progress else RunStatus(run_id, "missing")


def stale_inputs(expected: Mapping[str, Any], plasticity: bool) -> list[str]:
    """Lines naming each input run of an aggregate whose provenance disagrees with `expected`
    (figure_expected in workflow/rules/common.smk: runs {run_dir: identity JSON}, code hashes)."""
    problems = []
    for run_dir, identity_json in expected["runs"].items():
        status = run_status(
            run_dir,
            Path(run_dir),
            identity_json,
            expected["train_code"],
            expected["probe_code"] if plasticity else None,
        )
        if status.state != "complete":
            problems.append(f"{run_dir}: {status.state} {status.detail}".rstrip())
    return problems


def study_status(study: Mapping[str, Any], results_dir: Path | None = None) -> list[RunStatus]:
    """Every run of a validated workflow config, in grid order."""
    from mtrl.grid import build_grid
    from mtrl.provenance import code_hash, identity

    grid = build_grid(study)
    root = Path(results_dir or study.get("results_dir", "results")) / "runs"
    train_code, probe_code = code_hash("train"), code_hash("probe")
    return [
        run_status(
            rid, root / rid, json.dumps(identity(cfg.to_dict()), sort_keys=True), train_code, probe_code
        )
        for rid, cfg in grid.runs.items()
    ]


def cli_status(args: Any) -> int:
    """`mtrl status [RESULTS_DIR] --configfile FILE`: one line per run, then the counts."""
    import yaml

    from mtrl.config import ConfigError
    from mtrl.grid import validate_study
    from mtrl.provenance import ROOT

    path = Path(args.configfile)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    study = yaml.safe_load(path.read_text()) or {}
    if "figures" not in study:
        raise ConfigError(f"{path}: figures: the config file has no `figures` section")
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    validate_study(study, schema)
    statuses = study_status(study, Path(args.results_dir) if args.results_dir else None)
    for status in statuses:
        print(f"{status.state:<12} {status.run_id}" + (f"  {status.detail}" if status.detail else ""))
    counts = {state: sum(s.state == state for s in statuses) for state in STATES}
    print(", ".join(f"{n} {state}" for state, n in counts.items()) + f" of {len(statuses)} runs")
    return 0
