"""Config files as people write them: YAML read strictly, with one-line errors naming the file.

Used for run settings (`mtrl train --config`) and workflow configs (`mtrl status`, and the workflow's
check of its `--configfile`s, which Snakemake itself reads leniently: `check_workflow_configfiles`,
called from the workflow's profile before Snakemake reads them).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mtrl.config.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error: PyYAML would
    silently keep the last value, so `lr:` set twice would train with whichever came later."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    lines: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        try:
            first = lines.setdefault(key, line)
        except TypeError:  # an unhashable key: the base constructor reports it
            continue
        if first != line:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice (lines {first} and {line})", key_node.start_mark
            )
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML config file's mapping ({} if empty); ConfigError naming the file when it is missing, a
    directory, unreadable, binary, not YAML, not a mapping, or gives a key twice."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: config file is a directory")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - safe
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not text (binary or not UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: config file is not valid YAML: {_yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: config file must hold a mapping of keys to values, not a {type(data).__name__}"
        )
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """'line L, column C: what' of a YAML error (its mark is where the parser stopped)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" + (f" ({context})" if context else "")


CONFIGFILE_OPTIONS = ("--configfile", "--configfiles")


def command_configfiles(argv: Sequence[str]) -> list[str]:
    """The files a `snakemake` command line passes with --configfile/--configfiles (several may follow
    one option, up to the next option; `--configfile=FILE` too)."""
    files: list[str] = []
    taking = False
    for arg in argv:
        option, equals, value = arg.partition("=")
        if option in CONFIGFILE_OPTIONS:
            taking = not equals
            files += [value] if equals else []
        elif arg.startswith("-"):
            taking = False
        elif taking:
            files.append(arg)
    return files


def check_workflow_configfiles(argv: Sequence[str] | None = None) -> None:
    """Stop a `snakemake` command with one `mtrl: error:` line (exit 1) when a --configfile is not a
    non-empty YAML mapping. Snakemake reads these files before the Snakefile runs, and says so with
    a traceback (binary) or without naming the file: profiles/default calls this first."""
    for path in command_configfiles(sys.argv[1:] if argv is None else argv):
        try:
            if not load_yaml_mapping(path):
                raise ConfigError(f"{path}: config file is empty")
        except ConfigError as exc:
            print(f"mtrl: error: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
