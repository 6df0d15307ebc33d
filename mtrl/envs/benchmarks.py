"""Task lists of the benchmarks. Pure data: importing this does not import Meta-World."""

from __future__ import annotations

from functools import cache

EPISODE_LENGTH = 500
OBS_DIM = 39
ACTION_DIM = 4
# Meta-World's reward functions: v2 (current) or v1 (the original release's, which the study
# restored for its Table 1 Soft Modularization runs).
REWARD_VERSIONS = ("v1", "v2")

MT10_TASKS: tuple[str, ...] = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)
# MT25 exactly as the study's code lists it (mtrl/envs/metaworld.py, `spawn`, env_id "MT25"): the
# MT10 tasks, then these fifteen in this order. The order is the one-hot order, so it matters for
# checkpoints and per-task results. Meta-World 3.1.1's env_dict.MT25_V3 happens to be the same list.
MT25_TASKS: tuple[str, ...] = MT10_TASKS + (
    "coffee-pull-v3",
    "pick-out-of-hole-v3",
    "disassemble-v3",
    "pick-place-wall-v3",
    "basketball-v3",
    "stick-pull-v3",
    "button-press-wall-v3",
    "faucet-open-v3",
    "door-lock-v3",
    "lever-pull-v3",
    "sweep-into-v3",
    "faucet-close-v3",
    "coffee-button-v3",
    "button-press-topdown-wall-v3",
    "dial-turn-v3",
)
TASK_SETS: dict[str, int] = {"mt1": 1, "mt10": 10, "mt25": 25, "mt50": 50}


@cache
def all_tasks() -> tuple[str, ...]:
    """Every Meta-World v3 task name, in Meta-World's MT50 order."""
    from metaworld import env_dict

    return tuple(env_dict.MT50_V3.keys())


class _AllTasks:
    """Lazy container so `name in ALL_TASKS` works without importing Meta-World up front."""

    def __contains__(self, name: object) -> bool:
        return name in all_tasks()

    def __iter__(self):
        return iter(all_tasks())


ALL_TASKS = _AllTasks()


def num_tasks_of(task_set: str) -> int:
    return TASK_SETS[task_set]


def task_names(task_set: str, mt1_task: str = "reach-v3") -> tuple[str, ...]:
    """The ordered task list of a benchmark; a task's index is its one-hot position."""
    if task_set == "mt1":
        return (mt1_task,)
    if task_set == "mt10":
        return MT10_TASKS
    if task_set == "mt25":
        return MT25_TASKS
    if task_set == "mt50":
        return all_tasks()
    raise KeyError(task_set)
