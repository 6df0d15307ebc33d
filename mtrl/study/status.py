"""Where every run of a study stands, judged by the provenance its outputs record.

complete     train.h5 is whole and plausible (`mtrl.files.completeness`: values in range, checksum as
             written) and records the run settings and training code the workflow would use now
             (and so does plasticity.h5, if there is one)
stale        train.h5 (or plasticity.h5) records other settings or code, or is not whole or not
             plausible (its figures would mix versions, or be wrong): the workflow makes it again
in progress  a resume checkpoint, or probe checkpoints short of the run's total, exist (the step
             reached is shown)
missing      no train.h5 and nothing to resume from (nothing yet, or train.h5 deleted)
Aggregation uses `stale_inputs` to refuse out-of-date inputs, naming them. A results folder knows
the study that wrote it (`study.json`, written when the workflow starts jobs) and holds that study
only: `mtrl status RESULTS_DIR` checks it against that study's config, and the workflow refuses
another study's config (`check_results_owner`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtrl.files.completeness import result_file_problem
from mtrl.files.result_files import read_provenance

TRAIN_FILE, PLASTICITY_FILE = "train.h5", "plasticity.h5"
STATES = ("complete", "in progress", "stale", "missing")
STUDY_RECORD = "study.json"
DEFAULT_CONFIG = Path("config/config.yaml")


@dataclass(frozen=True)
class RunStatus:
    run_id: str
    state: str  # complete | stale | in progress | missing
    detail: str = ""
    damaged: str = ""  # a result file that is not whole, named: "<path>: incomplete (...)"

    def line(self) -> str:
        return f"{self.run_id}: {self.state} {self.detail}".rstrip()


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


def _progress(run_dir: Path, identity_json: str, train_code: str) -> str:
    """The step a stopped or running run reached, from its resume checkpoint (read without its
    tensors: `checkpoints.peek`) or its last probe checkpoint; '' if it has neither."""
    from mtrl.files import checkpoints as ckpt

    resume = ckpt.resume_path(run_dir)
    found = [path for path in (resume, ckpt.previous_path(resume)) if path.exists()]
    if found:
        try:
            state = ckpt.peek(found[0])
        except ckpt.CheckpointError as exc:
            return f"{exc} (the run falls back to resume.prev.pt or starts over)"
        return _resume_progress(state, identity_json, train_code)
    probes = ckpt.probe_checkpoints(run_dir)
    if not probes:
        return ""
    total = json.loads(identity_json).get("total_steps")
    if isinstance(total, int) and probes[-1][0] >= total:  # it had finished: its train.h5 is gone
        return ""
    step = probes[-1][0]
    return f"step {step:,} (last probe checkpoint; without a resume checkpoint a stopped run starts over)"


def _resume_progress(state: Mapping[str, Any], identity_json: str, train_code: str) -> str:
    from mtrl.envs.benchmarks import num_tasks_of
    from mtrl.files.provenance import identity

    config = state["config"]
    text = f"step {state['step'] * num_tasks_of(config['task_set']):,} of {config['total_steps']:,}"
    differs = []
    recorded = json.dumps(identity(config), sort_keys=True)
    if recorded != identity_json:
        differs.append(_settings_diff(recorded, identity_json))
    if state.get("provenance") != train_code:
        differs.append(f"training code {state.get('provenance') or 'unrecorded'} != current {train_code}")
    if differs:
        return text + f" (resume checkpoint of other {'; '.join(differs)}: the run will start over)"
    return text + " (resume checkpoint)"


def run_status(
    run_id: str, run_dir: Path, identity_json: str, train_code: str, probe_code: str | None = None
) -> RunStatus:
    """The state of one run; `probe_code` also checks plasticity.h5 when there is one."""
    train_h5 = run_dir / TRAIN_FILE
    if train_h5.exists():
        files = [(train_h5, train_code)]
        if probe_code is not None and (run_dir / PLASTICITY_FILE).exists():
            files.append((run_dir / PLASTICITY_FILE, probe_code))
        for path, code in files:
            damage = result_file_problem(path)
            if damage:
                return RunStatus(run_id, "stale", f"{path.name} {damage}", damaged=f"{path}: {damage}")
            problem = _differs(path, identity_json, code)
            if problem:
                return RunStatus(run_id, "stale", problem)
        return RunStatus(run_id, "complete")
    progress = _progress(run_dir, identity_json, train_code) if run_dir.is_dir() else ""
    if progress:
        return RunStatus(run_id, "in progress", progress)
    gone = [name for name in (PLASTICITY_FILE,) if (run_dir / name).exists()]
    detail = f"(no {TRAIN_FILE}, though {', '.join(gone)} is there: it trains again)" if gone else ""
    return RunStatus(run_id, "missing", detail)


def result_problem(path: Path, identity_json: str, code: str) -> str:
    """'' when the result file `path` is whole, plausible and records this run identity and code;
    else why not ('missing', damage, or what differs): the workflow makes such a file again."""
    if not path.exists():
        return "missing"
    damage = result_file_problem(path)
    return f"{path.name} {damage}" if damage else _differs(path, identity_json, code)


def stale_inputs(expected: Mapping[str, Any], plasticity: bool) -> list[RunStatus]:
    """Each input run of an aggregate that is not complete: its provenance disagrees with `expected`
    (figure_expected in workflow/rules/common.smk: runs {run_dir: identity JSON}, code hashes), or a
    file of it is not whole (`damaged`: it cannot be aggregated, whatever allow_stale says)."""
    statuses = [
        run_status(
            run_dir,
            Path(run_dir),
            identity_json,
            expected["train_code"],
            expected["probe_code"] if plasticity else None,
        )
        for run_dir, identity_json in expected["runs"].items()
    ]
    return [status for status in statuses if status.state != "complete"]


def study_status(study: Mapping[str, Any], results_dir: Path | None = None) -> list[RunStatus]:
    """Every run of a validated workflow config, in grid order."""
    from mtrl.files.provenance import code_hash, identity
    from mtrl.study.grid import build_grid

    grid = build_grid(study)
    root = Path(results_dir or study.get("results_dir", "results")) / "runs"
    train_code, probe_code = code_hash("train"), code_hash("probe")
    return [
        run_status(
            rid, root / rid, json.dumps(identity(cfg.to_dict()), sort_keys=True), train_code, probe_code
        )
        for rid, cfg in grid.runs.items()
    ]


# ------------------------------------------------------------------ which study wrote a results folder
def record_study(results_dir: Path, configfiles: Sequence[str | Path]) -> None:
    """Note in `results_dir` the config file(s) of the study writing it (the workflow, on start)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    files = [{"path": os.path.relpath(p), "resolved": str(Path(p).resolve())} for p in configfiles]
    (results_dir / STUDY_RECORD).write_text(json.dumps({"configfiles": files}, indent=1) + "\n")


def _recorded_files(results_dir: Path) -> list[list[Path]] | None:
    """Per config file recorded in `results_dir`, where it may be (as given, then resolved); None if
    the folder records no study."""
    path = results_dir / STUDY_RECORD
    if not path.is_file():
        return None
    from mtrl.config.settings import ConfigError

    try:
        files = json.loads(path.read_text())["configfiles"]
        return [[Path(entry["path"]), Path(entry["resolved"])] for entry in files]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: unreadable record of the study ({type(exc).__name__}); delete it"
        ) from None


def recorded_study(results_dir: Path) -> tuple[Path, ...] | None:
    """The config file(s) of the study that wrote `results_dir`, if it recorded them (several: the
    study's config and, e.g., config/extensions.yaml, merged in that order as Snakemake does)."""
    from mtrl.config.settings import ConfigError

    files = _recorded_files(results_dir)
    if files is None:
        return None
    if not files:
        raise ConfigError(
            f"{results_dir / STUDY_RECORD}: the record of the study names no config file; delete it"
        )
    return tuple(next((c for c in candidates if c.is_file()), candidates[-1]) for candidates in files)


def check_results_owner(results_dir: Path, configfiles: Sequence[str | Path]) -> None:
    """ConfigError when `results_dir` records another study than the one of `configfiles`: one results
    folder, one study (its runs and study.json are never overwritten by another)."""
    from mtrl.config.settings import ConfigError

    recorded = _recorded_files(results_dir)
    current = [Path(path) for path in configfiles]
    if recorded is None:
        return
    pairs = zip(recorded, current, strict=False)
    same = all(any(_same_file(c, path) for c in cands) for cands, path in pairs)
    if same and len(recorded) == len(current):
        return
    names = ", ".join(str(cands[0]) for cands in recorded) or "none"
    raise ConfigError(
        f"{results_dir}: holds the runs of the study {names}, not of {', '.join(map(str, current))}; "
        f"give this study its own results_dir (or delete {results_dir / STUDY_RECORD} to hand it over)"
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def study_and_results(
    results_dir: str | None, configfile: str | Sequence[str] | None
) -> tuple[dict[str, Any], Path]:
    """The study and results folder `mtrl status` checks: the folder given (else the config's
    results_dir) against the study recorded there (else --configfile, one file or several merged,
    else config/config.yaml). ConfigError for a folder that does not exist, or that another study
    wrote."""
    from mtrl.config.settings import ConfigError

    folder = Path(results_dir) if results_dir else None
    if folder is not None and not folder.is_dir():
        raise ConfigError(
            f"{folder}: no such results folder" + (" (it is a file)" if folder.exists() else "")
        )
    recorded = recorded_study(folder) if folder is not None else None
    given = [configfile] if isinstance(configfile, str) else list(configfile or [])
    paths = tuple(Path(p) for p in given) or recorded or (DEFAULT_CONFIG,)
    study = load_study(*paths)
    folder = folder or Path(study["results_dir"])
    if recorded is None and folder.is_dir():
        recorded = recorded_study(folder)
    same = recorded is not None and len(recorded) == len(paths)
    if recorded is not None and not (same and all(map(_same_file, paths, recorded))):
        raise ConfigError(
            f"{folder}: written by the study {_names(recorded)}, not {_names(paths)}; "
            f"`mtrl status {folder}` checks it against its own study"
        )
    if recorded is None and not given and not _same_file(folder, Path(study["results_dir"])):
        raise ConfigError(
            f"{folder}: no study recorded here, and {_names(paths)} writes to {study['results_dir']}; "
            "pass the study's config file with --configfile"
        )
    return study, folder


def cli_status(args: Any) -> int:
    """`mtrl status [RESULTS_DIR] [--configfile FILE]`: one line per run, then the counts."""
    study, results_dir = study_and_results(args.results_dir, args.configfile)
    statuses = study_status(study, results_dir)
    for status in statuses:
        print(f"{status.state:<12} {status.run_id}" + (f"  {status.detail}" if status.detail else ""))
    counts = {state: sum(s.state == state for s in statuses) for state in STATES}
    print(", ".join(f"{n} {state}" for state, n in counts.items()) + f" of {len(statuses)} runs")
    return 0


def _names(paths: Sequence[Path]) -> str:
    return " + ".join(str(p) for p in paths)


def _merged(base: dict[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    """`more` merged into `base` as Snakemake merges config files: mappings key by key, the rest replaced."""
    for key, value in more.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merged(base[key], value)
        else:
            base[key] = value
    return base


def load_study(path: Path, *more: Path) -> dict[str, Any]:
    """A workflow config file (with `more` merged into it, as Snakemake merges several), read,
    checked against the workflow's schema and completed with its defaults; ConfigError naming the
    file or key."""
    import yaml

    from mtrl.config.files import load_yaml_mapping
    from mtrl.config.settings import ConfigError
    from mtrl.files.provenance import ROOT
    from mtrl.study.grid import validate_study

    study = load_yaml_mapping(path)
    for extra in more:
        study = _merged(study, load_yaml_mapping(extra))
    if "figures" not in study:
        raise ConfigError(f"{path}: figures: the config file has no `figures` section")
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    validate_study(study, schema)
    return study
