"""Config files as people write them: YAML read strictly, with one-line errors naming the file.

Used for run settings (`mtrl train --config`) and workflow configs (`mtrl status`, and the workflow's
check of its `--configfile`s, which Snakemake itself reads leniently).
"""

from __future__ import annotations

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
        problem = " ".join(str(exc).split())
        raise ConfigError(f"{path}: config file is not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: config file must hold a mapping of keys to values, not a {type(data).__name__}"
        )
    return data
