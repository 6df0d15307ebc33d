"""Meta-World 3.1.1's per-step Python, replaced by exactly equivalent faster code (no fork, no patch).

Three quarters of a Meta-World step is Python around MuJoCo: list comprehensions over every contact
(`touching_object`), scipy's `Rotation.from_matrix` for each object quaternion, array-generic reward
utilities called on scalars (`reward_utils.tolerance`), `np.hstack`/`np.split`/`np.clip` on 3-vectors.
`fast_class(cls)` returns a subclass of a Meta-World env class in which

- the base class's hot methods (`touching_object`, `_get_curr_obs_combined_no_goal`, `_get_obs`,
  `set_xyz_action`, `step`) are replaced by versions computing the same floats in the same order
  (only where the task class does not override them itself), and
- every method of the task's classes that reads the module globals `reward_utils`, `Rotation` or
  `np` runs its own, unchanged code with those names bound to scalar fast paths
  (mtrl.envs.fast_utils): the same formulas on Python floats, numpy's own ufuncs for the
  transcendental functions, the original function for any input the fast path does not cover.

Nothing global changes: an unpatched env in the same process steps exactly as before.
tests/test_fast_metaworld.py replays seeded action sequences on every MT50 task (v1 and v2
rewards) against unpatched envs and requires bitwise equality of obs, reward, flags and info.
"""

from __future__ import annotations

import sys
import types
from functools import cache
from typing import Any

import mujoco
import numpy as np
import numpy.typing as npt
from metaworld.sawyer_xyz_env import SawyerXYZEnv

from mtrl.envs import fast_utils
from mtrl.envs.shm_worker import METAWORLD_INFO_KEYS

_clip = np._core.umath.clip  # the ufunc np.clip ends in, called directly (same result, less dispatch)
_MOCAP_QUAT = np.array([1, 0, 1, 0])


class _Ids:
    """MuJoCo ids of the named bodies, geoms and sites the hot methods read, looked up once per env
    (a name's id is fixed by the model; `data.body(name)` looks it up on every call)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.hand = self.body("hand")
        self.rightclaw = self.body("rightclaw")
        self.leftclaw = self.body("leftclaw")
        self.leftpad = model.geom("leftpad_geom").id
        self.rightpad = model.geom("rightpad_geom").id
        self.right_effector = self.site("rightEndEffector")
        self.left_effector = self.site("leftEndEffector")
        self.bodies: dict[str, int] = {}
        self.sites: dict[str, int] = {}

    def body(self, name: str) -> int:
        return self.model.body(name).id

    def site(self, name: str) -> int:
        return self.model.site(name).id


def _ids(env: Any) -> _Ids:
    ids = env.__dict__.get("_fast_ids")
    if ids is None:
        ids = env.__dict__["_fast_ids"] = _Ids(env.model)
    return ids


def get_body_com(self: Any, body_name: str) -> npt.NDArray[np.float64]:
    """`MujocoEnv.get_body_com`: the body's row of `data.xpos` (a view, as there)."""
    bodies = _ids(self).bodies
    index = bodies.get(body_name)
    if index is None:
        index = bodies[body_name] = self.model.body(body_name).id
    return self.data.xpos[index]


def _site_index(self: Any, name: str) -> int:
    sites = _ids(self).sites
    index = sites.get(name)
    if index is None:
        index = sites[name] = self.model.site(name).id
    return index


def _get_site_pos(self: Any, site_name: str) -> npt.NDArray[np.float64]:
    """`SawyerXYZEnv._get_site_pos`: a copy of the site's position."""
    return self.data.site_xpos[_site_index(self, site_name)].copy()


def _set_pos_site(self: Any, name: str, pos: npt.NDArray[Any]) -> None:
    """`SawyerXYZEnv._set_pos_site`: the site's position set to `pos[:3]`."""
    assert isinstance(pos, np.ndarray)
    assert pos.ndim == 1
    self.data.site_xpos[_site_index(self, name)] = pos[:3]


def _tcp_center(self: Any) -> npt.NDArray[np.float64]:
    """`SawyerXYZEnv.tcp_center`: the midpoint of the two finger sites."""
    ids = _ids(self)
    site_xpos = self.data.site_xpos
    return (site_xpos[ids.right_effector] + site_xpos[ids.left_effector]) / 2.0


def _pad_force_positive(efc_force: np.ndarray, addresses: np.ndarray) -> bool:
    """`0 < sum(efc_force[a] for a in addresses)`, summed left to right from 0 as Python's `sum` does."""
    total = 0.0
    for value in efc_force[addresses].tolist():
        total += value
    return 0 < total


def touching_object(self: Any, object_geom_id: int) -> bool:
    """`SawyerXYZEnv.touching_object` from the contact arrays: both pads press on the object."""
    ids = _ids(self)
    contact = self.data.contact
    g1, g2 = contact.geom1, contact.geom2
    on_object = (g1 == object_geom_id) | (g2 == object_geom_id)
    if not on_object.any():
        return False
    addresses = contact.efc_address
    efc_force = self.data.efc_force
    left = on_object & ((g1 == ids.leftpad) | (g2 == ids.leftpad))
    right = on_object & ((g1 == ids.rightpad) | (g2 == ids.rightpad))
    return _pad_force_positive(efc_force, addresses[left]) and _pad_force_positive(
        efc_force, addresses[right]
    )


def _get_curr_obs_combined_no_goal(self: Any) -> npt.NDArray[np.float64]:
    """Hand position, gripper opening, then each object's position and quaternion, zero-padded (18)."""
    ids = _ids(self)
    xpos = self.data.xpos
    out = np.zeros(18)
    out[:3] = xpos[ids.hand]
    apart = xpos[ids.rightclaw] - xpos[ids.leftclaw]
    gap = np.sqrt(apart.dot(apart)) / 0.1  # np.linalg.norm of a 3-vector, exactly
    out[3] = 0.0 if gap < 0.0 else (1.0 if gap > 1.0 else gap)  # np.clip(gap, 0, 1), NaN kept
    obj_pos = np.asarray(self._get_pos_objects(), dtype=np.float64).reshape(-1)
    obj_quat = np.asarray(self._get_quat_objects(), dtype=np.float64).reshape(-1)
    if len(obj_pos) % 3 or len(obj_quat) % 4 or len(obj_pos) // 3 != len(obj_quat) // 4:
        return SawyerXYZEnv._get_curr_obs_combined_no_goal(self)  # Meta-World's own error path
    at = 4
    for k in range(len(obj_pos) // 3):
        out[at : at + 3] = obj_pos[3 * k : 3 * k + 3]
        out[at + 3 : at + 7] = obj_quat[4 * k : 4 * k + 4]
        at += 7
    return out


def _get_obs(self: Any) -> npt.NDArray[np.float64]:
    """Current 18 floats, the previous step's 18, the goal (zeros if partially observable): 39."""
    pos_goal = self._get_pos_goal()
    curr = self._get_curr_obs_combined_no_goal()
    obs = np.empty(36 + len(pos_goal))
    obs[:18] = curr
    obs[18:36] = self._prev_obs
    obs[36:] = 0.0 if self._partially_observable else pos_goal
    self._prev_obs = curr
    return obs


def set_xyz_action(self: Any, action: npt.NDArray[Any]) -> None:
    """`SawyerXYZEnv.set_xyz_action`: the mocap moves by the clipped action, within the mocap box."""
    pos_delta = _clip(action, -1, 1) * self.action_scale
    new_mocap_pos = self.data.mocap_pos + pos_delta[None]
    new_mocap_pos[0, :] = _clip(new_mocap_pos[0, :], self.mocap_low, self.mocap_high)
    self.data.mocap_pos = new_mocap_pos
    self.data.mocap_quat = _MOCAP_QUAT


def _simulate(self: Any, grip: Any) -> None:
    """`MujocoEnv.do_simulation([grip, -grip], frame_skip)`: the same calls, the shape check known."""
    data = self.data
    data.ctrl[:] = [grip, -grip]
    mujoco.mj_step(self.model, data, nstep=self.frame_skip)
    mujoco.mj_rnePostConstraint(self.model, data)


def step(self: Any, action: npt.NDArray[np.float32]) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
    """`SawyerXYZEnv.step`, statement for statement, without the generic helpers' overhead."""
    if not self._set_task_called:
        raise RuntimeError("You must call env.set_task before using env.step")
    assert len(action) == 4, f"Actions should be size 4, got {len(action)}"
    self.set_xyz_action(action[:3])
    if self.curr_path_length >= self.max_path_length:
        raise ValueError("You must reset the env manually once truncate==True")
    if self.model.nu != 2:
        self.do_simulation([action[-1], -action[-1]], n_frames=self.frame_skip)
    else:
        _simulate(self, action[-1])
    self.curr_path_length += 1
    for site in self._target_site_config:
        self._set_pos_site(*site)
    if self._did_see_sim_exception:
        info = dict.fromkeys(METAWORLD_INFO_KEYS, 0.0) | {"success": False, "grasp_success": False}
        return self._last_stable_obs, 0.0, False, False, info
    mujoco.mj_forward(self.model, self.data)
    space = self.sawyer_observation_space
    obs = _clip(self._get_obs(), space.low, space.high, dtype=np.float64)
    self._last_stable_obs = obs
    reward, info = self.evaluate_state(obs, action)
    truncate = self.curr_path_length == self.max_path_length
    return obs.copy(), reward, False, truncate, info


BASE_METHODS: dict[str, Any] = {
    "touching_object": touching_object,
    "_get_curr_obs_combined_no_goal": _get_curr_obs_combined_no_goal,
    "_get_obs": _get_obs,
    "set_xyz_action": set_xyz_action,
    "step": step,
    "get_body_com": get_body_com,
    "_get_site_pos": _get_site_pos,
    "_set_pos_site": _set_pos_site,
    "tcp_center": property(_tcp_center),
}
# where Meta-World defines each (a task class that overrides one keeps its own)
_DEFINED_IN = {"get_body_com": "MujocoEnv"}


def _rebound(fn: types.FunctionType) -> types.FunctionType:
    """`fn` with its module globals `reward_utils`/`Rotation`/`np` bound to the fast paths (its code,
    defaults and closure unchanged; decorated functions: the wrapped function too); `fn` if it reads none."""
    cells = fn.__closure__
    new_cells = cells
    if cells:
        inner = [_cell_value(cell) for cell in cells]
        swapped = [_rebound(v) if isinstance(v, types.FunctionType) else v for v in inner]
        if any(a is not b for a, b in zip(inner, swapped, strict=True)):
            new_cells = tuple(
                cell if a is b else types.CellType(b)
                for cell, a, b in zip(cells, inner, swapped, strict=True)
            )
    names = fast_utils.replaced_globals(fn.__code__, fn.__globals__)
    if not names and new_cells is cells:
        return fn
    scope = (
        fn.__globals__ if not names else {**fn.__globals__, **{n: fast_utils.FAST_GLOBALS[n] for n in names}}
    )
    out = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, new_cells)
    out.__kwdefaults__ = fn.__kwdefaults__
    out.__qualname__, out.__doc__, out.__module__ = fn.__qualname__, fn.__doc__, fn.__module__
    out.__dict__.update(fn.__dict__)
    return out


def _cell_value(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


def _rebound_attribute(value: Any) -> Any:
    """A function or property of the task's classes with its fast globals; None if nothing changes."""
    if isinstance(value, types.FunctionType):
        out = _rebound(value)
        return None if out is value else out
    if isinstance(value, property) and isinstance(value.fget, types.FunctionType):
        fget = _rebound(value.fget)
        return None if fget is value.fget else property(fget, value.fset, value.fdel, value.__doc__)
    return None


def _namespace(cls: type[SawyerXYZEnv]) -> dict[str, Any]:
    """The fast class's own attributes: the base methods the task does not override, then every
    other method (as the task resolves it) that reads a replaced global."""
    namespace: dict[str, Any] = {}
    seen: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            break
        for name, value in vars(klass).items():
            if name in seen or name.startswith("__"):
                continue
            seen.add(name)
            if name in BASE_METHODS and klass.__name__ == _DEFINED_IN.get(name, "SawyerXYZEnv"):
                namespace[name] = BASE_METHODS[name]
            elif klass.__module__.startswith(("metaworld.", "mtrl.envs.fork")):  # the task's code
                rebound = _rebound_attribute(value)
                if rebound is not None:
                    namespace[name] = rebound
    return namespace


@cache
def fast_class(cls: type[SawyerXYZEnv]) -> type[SawyerXYZEnv]:
    """The fast subclass of a Meta-World env class (one per class; picklable by name)."""
    name = f"Fast{cls.__name__}"
    namespace = _namespace(cls)
    base_task_name = cls.__name__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        cls.__init__(self, *args, **kwargs)
        if self.task_name == type(self).__name__:  # Meta-World names tasks by class: keep the original
            self.task_name = base_task_name

    namespace.update(__init__=__init__, __module__=__name__, __qualname__=name, base_class=cls)
    fast = type(name, (cls,), namespace)
    setattr(sys.modules[__name__], name, fast)
    return fast
