"""Scalar fast paths for the helpers Meta-World's task code calls on every step, bit for bit equal.

`reward_utils.tolerance` (numpy-generic: `np.where`, `np.logical_and`, 0-d arrays) computes one float
from one float; here the same formula runs on Python floats, with numpy's own ufuncs for exp/cosh so
the last bit agrees. scipy's `Rotation.from_matrix(m).as_quat()` on MuJoCo's orthonormal 3x3 `xmat`
becomes Markley's method written out (the algorithm scipy runs); `np.linalg.norm` of a float64
vector becomes `sqrt(x.dot(x))` (what numpy runs for it). Any input outside a fast path goes to the
original function, so results never depend on which path ran.
"""

from __future__ import annotations

import math
import types
from typing import Any

import numpy as np
from metaworld.utils import reward_utils
from scipy.spatial.transform import Rotation

_FLOATS = (float, np.float64)
_SCALES: dict[tuple[str, float], float] = {}


def _sigmoid_scale(sigmoid: str, value_at_1: float) -> float:
    """The scale `reward_utils._sigmoids` computes for a sigmoid and value, as numpy computes it."""
    key = (sigmoid, value_at_1)
    scale = _SCALES.get(key)
    if scale is None:
        if sigmoid == "gaussian":
            scale = float(np.sqrt(-2 * np.log(value_at_1)))
        else:  # long_tail
            scale = float(np.sqrt(1 / value_at_1 - 1))
        _SCALES[key] = scale
    return scale


def tolerance(
    x: Any,
    bounds: tuple[float, float] = (0.0, 0.0),
    margin: Any = 0.0,
    sigmoid: str = "gaussian",
    value_at_margin: float = 0.1,
) -> Any:
    """`reward_utils.tolerance` for a float `x` with a gaussian or long-tail sigmoid (the ones Meta-World's
    v3 tasks use); anything else is handed to the original."""
    lower, upper = bounds
    if (
        type(x) not in _FLOATS
        or sigmoid not in ("gaussian", "long_tail")
        or not 0 < value_at_margin < 1
        or lower > upper
        or margin < 0
    ):
        return reward_utils.tolerance(x, bounds, margin, sigmoid, value_at_margin)
    if lower <= x <= upper:
        return 1.0
    if margin == 0:
        return 0.0
    d = float(lower - x if x < lower else x - upper) / float(margin)
    scaled = d * _sigmoid_scale(sigmoid, value_at_margin)
    # `**2` as the original (on a numpy float64 scalar: C `pow`, which Python's float `**` also calls)
    if sigmoid == "gaussian":
        return float(np.exp(-0.5 * scaled**2))
    return 1 / (scaled**2 + 1)


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """`np.linalg.norm`; for a 1-d float64 array and the 2-norm, numpy's own `sqrt(x.dot(x))` directly."""
    if (
        type(x) is np.ndarray
        and x.ndim == 1
        and x.dtype == np.float64
        and (ord is None or ord == 2)
        and axis is None
        and not keepdims
    ):
        return np.sqrt(x.dot(x))
    return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)


class _Quat:
    """What `Rotation.from_matrix(...)` returns, as far as Meta-World reads it (`as_quat()`)."""

    __slots__ = ("quat",)

    def __init__(self, quat: np.ndarray) -> None:
        self.quat = quat

    def as_quat(self, canonical: bool = False) -> np.ndarray:
        return self.quat.copy() if not canonical else Rotation.from_quat(self.quat).as_quat(canonical=True)


def _markley(m: list[list[float]]) -> np.ndarray:
    """Scalar-last unit quaternion of a rotation matrix (Markley 2008), scipy's operation order."""
    trace = m[0][0] + m[1][1] + m[2][2]
    decision = (m[0][0], m[1][1], m[2][2], trace)
    choice = max(range(4), key=decision.__getitem__)  # the first maximum, as np.argmax
    q = [0.0, 0.0, 0.0, 0.0]
    if choice != 3:
        i = choice
        j = (i + 1) % 3
        k = (j + 1) % 3
        q[i] = 1 - trace + 2 * m[i][i]
        q[j] = m[j][i] + m[i][j]
        q[k] = m[k][i] + m[i][k]
        q[3] = m[k][j] - m[j][k]
    else:
        q[0] = m[2][1] - m[1][2]
        q[1] = m[0][2] - m[2][0]
        q[2] = m[1][0] - m[0][1]
        q[3] = 1 + trace
    n = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    return np.array([q[0] / n, q[1] / n, q[2] / n, q[3] / n])


def from_matrix(matrix: Any, **kwargs: Any) -> Any:
    """`Rotation.from_matrix`, fast for one 3x3 float64 matrix; other inputs go to scipy."""
    if kwargs or type(matrix) is not np.ndarray or matrix.shape != (3, 3) or matrix.dtype != np.float64:
        return Rotation.from_matrix(matrix, **kwargs)
    return _Quat(_markley(matrix.tolist()))


def _fast_module(name: str, base: types.ModuleType, **overrides: Any) -> types.ModuleType:
    """A module object with `base`'s namespace and `overrides` (module-dict lookups stay as fast)."""
    module = types.ModuleType(name, base.__doc__)
    module.__dict__.update({k: v for k, v in vars(base).items() if not k.startswith("__")})
    module.__dict__.update(overrides)
    return module


FAST_REWARD_UTILS = _fast_module("reward_utils", reward_utils, tolerance=tolerance)
FAST_NUMPY = _fast_module("numpy", np, linalg=_fast_module("numpy.linalg", np.linalg, norm=norm))
FAST_ROTATION = types.SimpleNamespace(
    **{name: getattr(Rotation, name) for name in ("from_quat", "from_euler", "from_rotvec", "identity")},
    from_matrix=from_matrix,
)
# module global name -> (the object Meta-World's code binds to it, its fast replacement)
FAST_GLOBALS: dict[str, Any] = {
    "reward_utils": FAST_REWARD_UTILS,
    "Rotation": FAST_ROTATION,
    "np": FAST_NUMPY,
}
ORIGINALS: dict[str, Any] = {"reward_utils": reward_utils, "Rotation": Rotation, "np": np}


def _code_names(code: types.CodeType) -> set[str]:
    """Global (and attribute) names a code object and the code nested in it read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def replaced_globals(code: types.CodeType, scope: dict[str, Any]) -> list[str]:
    """The replaceable globals a function's code reads that its module binds to the originals."""
    names = _code_names(code)
    return [name for name, original in ORIGINALS.items() if name in names and scope.get(name) is original]
