"""`mtrl` command line: train, probe, params, status.

Every TrainConfig field is a typed `mtrl train` flag (`--actor-width 1024`); values given on the
command line override the YAML file. Bad input stops with one line naming the key, before any
env or network is built.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

# Light: `mtrl train` records a SIGTERM or SIGHUP from its first moment (mtrl.run.stop_signals);
# everything slower is imported after that, in the functions that need it.
from mtrl.run.stop_signals import TrainingInterrupted, early_stops

if TYPE_CHECKING:
    from mtrl.config.settings import TrainConfig


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _metavar(field_type: object) -> str:
    """INT, FLOAT, STR, BOOL; `INT|none` for a setting that may be none (then a default applies)."""
    name = str(field_type)
    return name.removesuffix(" | None").upper() + ("|none" if name.endswith(" | None") else "")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    from mtrl.config.settings import TrainConfig

    group = parser.add_argument_group(
        "run settings (override the config file; TYPE|none: a value, or none for the default the help names)"
    )
    for f in dataclasses.fields(TrainConfig):
        default = "none" if f.default is None else f.default
        group.add_argument(
            _flag(f.name),
            dest=f"cfg_{f.name}",
            metavar=_metavar(f.type),
            default=None,
            help=f"{f.metadata.get('help', '')} (default: {default})",
        )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config from the YAML file and the flags over it: resolved and validated, once."""
    overrides = {
        key.removeprefix("cfg_"): value
        for key, value in vars(args).items()
        if key.startswith("cfg_") and value is not None
    }
    from mtrl.config.settings import TrainConfig

    if args.config is None:
        return TrainConfig.from_dict(overrides)
    return TrainConfig.from_yaml(args.config, overrides)


MAX_PARAMS_DEPTH = 16


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors in the project's one-line form (`mtrl: error: ...`, exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"mtrl: error: {message} (see {self.prog} --help)\n")


def _check_out_dir(out: Path) -> None:
    from mtrl.config.settings import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: --out must be a run directory, but it is a file")


def _report_stop(message: str) -> None:
    """The one line of a stop; a terminal that hung up (SIGHUP: writes fail with EIO) changes no exit code."""
    with contextlib.suppress(OSError):
        print(f"mtrl: {message}", file=sys.stderr, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    _check_out_dir(args.out)
    from mtrl.run.train import WORKER_ERRORS, train  # heavy imports: the config is good

    try:
        path = train(config, args.out, quiet=args.quiet)
    except TrainingInterrupted as exc:  # SIGTERM/SIGUSR1 -> 75 (retry), SIGINT -> 130
        _report_stop(str(exc))
        return exc.exit_code
    except WORKER_ERRORS as exc:  # an env worker or the evaluation died or raised: every process reaped
        print(f"mtrl: error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(path)
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from mtrl.config.settings import ConfigError

    for depth in args.depths:
        if not 1 <= depth <= MAX_PARAMS_DEPTH:
            raise ConfigError(f"--depths: each depth must be in 1..{MAX_PARAMS_DEPTH}, got {depth}")
    from mtrl.nets.matching import format_param_table, param_table

    print(format_param_table(param_table(tuple(args.task_sets), tuple(args.depths))))
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from mtrl.config.settings import ConfigError

    run_dir, out = Path(args.run_dir), Path(args.out) if args.out else None
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a run directory" + (" (it is a file)" if run_dir.exists() else ""))
    if out is not None and out.is_dir():
        raise ConfigError(f"{out}: --out must be a file path, but it is a directory")
    from mtrl.probe.probing import probe_run

    try:
        print(probe_run(run_dir, out))
    except ValueError as exc:  # inconsistent or batch-less checkpoints: named in one line
        raise ConfigError(str(exc)) from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mtrl", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train one run (resumes from its checkpoint if present)")
    train.add_argument("--config", type=Path, help="YAML file of run settings (keys as the flags below)")
    train.add_argument("--out", type=Path, required=True, help="run directory (train.h5, checkpoints/)")
    train.add_argument("--quiet", action="store_true", help="no progress lines")
    _add_config_flags(train)
    train.set_defaults(func=cmd_train)

    params = sub.add_parser("params", help="parameter counts of SM/PaCo/MOORE and the matched MLP widths")
    params.add_argument("--task-sets", nargs="+", default=["mt10", "mt50"], choices=["mt10", "mt25", "mt50"])
    params.add_argument("--depths", nargs="+", type=int, default=[3, 4], help="MLP depths (1..16)")
    params.set_defaults(func=cmd_params)

    probe = sub.add_parser("probe", help="plasticity metrics of every checkpoint of a run -> plasticity.h5")
    probe.add_argument("run_dir", help="run directory holding checkpoints/probe (with their probe batches)")
    probe.add_argument("--out", help="output file (default: RUN_DIR/plasticity.h5)")
    probe.set_defaults(func=cmd_probe)

    status = sub.add_parser(
        "status", help="each run of a study: complete, in progress, stale (other code or settings), missing"
    )
    status.add_argument("results_dir", nargs="?", help="results folder (default: the config's results_dir)")
    status.add_argument(
        "--configfile",
        nargs="+",
        help="workflow config file(s) of the study, several merged as Snakemake does (default: the "
        "one(s) recorded in RESULTS_DIR, else config/config.yaml)",
    )
    status.set_defaults(func=lambda args: importlib.import_module("mtrl.study.status").cli_status(args))
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand of a command line (its first word that is no option)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if _command(argv) != "train":
        return _main(argv)
    with early_stops(at_once=True):
        try:
            return _main(argv)
        except TrainingInterrupted as exc:  # SIGTERM or SIGHUP before training: nothing to save
            _report_stop(str(exc))
            return exc.exit_code


def _main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="[%(name)s] %(message)s"
    )
    from mtrl.config.settings import ConfigError
    from mtrl.files.checkpoints import CheckpointError
    from mtrl.files.integrity import DamagedResult
    from mtrl.run.divergence import TrainingDiverged

    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"mtrl: error: {exc}", file=sys.stderr)
        return 2
    # damaged checkpoints or results, a full or read-only disk, NaN
    except (CheckpointError, DamagedResult, TrainingDiverged) as exc:
        print(f"mtrl: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # any other file the system refuses (EIO, a stale NFS handle), named
        if exc.filename is None:
            raise
        print(f"mtrl: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mtrl: interrupted (a resumable checkpoint is kept if one was written)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
