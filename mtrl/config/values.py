"""A YAML or command-line value converted to a config field's declared type (bool, int, float, str,
or one of them or None): `coerce` raises ValueError saying what is wrong, for the caller to name the key."""

from __future__ import annotations

import math
import types
import typing
from typing import Any

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
MAX_INT = 2**53  # the largest integer a float (YAML's 2e7, JSON) holds exactly; far beyond any run


def coerce(value: Any, hint: Any) -> Any:
    """`value` as the type `hint` (e.g. `int`, `float | None`); ValueError("expected int, got 'x'")."""
    optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ValueError("a value is required")
    try:
        result = _as(base, value)
    except OverflowError:
        raise ValueError(f"must be a finite number, got {value!r}") from None
    except (TypeError, ValueError):
        raise ValueError(f"expected {base.__name__}, got {value!r}") from None
    if base is int and abs(result) > MAX_INT:
        raise ValueError(f"{value!r} is too large (at most 2**53 = {MAX_INT:,})")
    return result


def _as(base: type, value: Any) -> Any:
    """`value` as `base`; TypeError/ValueError if it is not one, OverflowError if not finite."""
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in TRUE + FALSE:
            return value.lower() in TRUE
        raise ValueError
    if base in (int, float) and isinstance(value, bool):
        raise ValueError
    if base is int:
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, float) and not number.is_integer():
            raise ValueError
        return int(number)
    if base is float:
        number = float(value)
        if not math.isfinite(number):
            raise OverflowError
        return number
    return str(value)
