"""Parameter counts of the MTRL architectures and the plain MLP widths matched to them.

Rule (paper Sec. 5.1): the matched MTMHSAC network has the same depth for actor and critic and
the largest width such that its actor has at most as many parameters as the architecture's
actor AND its critic at most as many as the architecture's critic (one Q network; the ensemble
of two is counted once). The architecture keeps its default size for the task set (SM 2x2 / 4x4,
PaCo K = 5 / 20, MOORE k = 4 / 6, width 400, depth 3); only the MLP's depth varies (the study's
depth-4 runs match a depth-4 MLP to the depth-3 architecture counts).

Counts come from building the real modules on the meta device (no memory, no init cost).

How the counts compare with the study (rainx0r/mtrl). Our architecture counts equal those in its
parameter-count notebook (MT10 actors: SM 691,022, MOORE 1,379,320, PaCo 1,700,095, the last
including the bias of PaCo's one-hot Dense; MT50 PaCo actor 6,801,180). The widths it trained
with are set by hand in its experiment files, and are within a few units of this rule's result,
not equal:

    MT10 depth 3: SM 550 (rule: 555), PaCo 885 (889), MOORE 800 (798)
    MT10 depth 4: SM 460 (458), PaCo 730 (730), MOORE 650 (656)
    MT50 depth 3: SM 780 (781), PaCo 1805 (1725), MOORE 925 (928)

The notebook solved count(w) = architecture count with a *single-head* MLP formula (49w + w +
2(w^2 + w) + 8w + 8), giving 572 / 906 / 815 on MT10, while the trained MLPs are multi-head (N
heads: +(N-1)(8w + 8) actor parameters); with the multi-head count the largest admissible widths
are 555 / 889 / 798, which the study apparently rounded to nearby round numbers (two of them
slightly above the bound: MOORE 800 has 1,385,680 actor parameters vs 1,379,320; SM depth-4 460
has 696,060 vs 691,022). For MT50 PaCo the notebook reused the MT10 single-head formula (49
inputs) and got 1829, then tried 1820; the study trained 1805, whose multi-head MLP has 7,404,510
actor and 6,779,630 critic parameters, above PaCo's 6,801,180 / 6,777,040 (multi-head bound:
1725). The MT50 SM and MOORE widths are in the first author's fork (reginald-mclean/mtrl,
experiments/misc/mt50_mtmhsac_{sm,moore}_params_v2.py), not in rainx0r/mtrl. `STUDY_WIDTHS` lists
the study's values for comparison only; nothing here uses them.
"""

from __future__ import annotations

from functools import cache

import torch

from mtrl.config.settings import TrainConfig
from mtrl.envs.benchmarks import ACTION_DIM, OBS_DIM

ARCHS_MATCHED = ("sm", "paco", "moore")

# Widths the study trained its matched MLPs with (its experiment configs); comparison only.
STUDY_WIDTHS: dict[tuple[str, str, int], int] = {
    ("sm", "mt10", 3): 550,
    ("paco", "mt10", 3): 885,
    ("moore", "mt10", 3): 800,
    ("sm", "mt10", 4): 460,
    ("paco", "mt10", 4): 730,
    ("moore", "mt10", 4): 650,
    ("sm", "mt50", 3): 780,
    ("paco", "mt50", 3): 1805,
    ("moore", "mt50", 3): 925,
}


def io_features(num_tasks: int) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) per role: actor [obs, one-hot] -> 2|A|; critic [obs, one-hot, a] -> 1."""
    return {"actor": (OBS_DIM + num_tasks, 2 * ACTION_DIM), "critic": (OBS_DIM + num_tasks + ACTION_DIM, 1)}


@cache
def count_actor_critic(config: TrainConfig) -> tuple[int, int]:
    """(actor parameters, parameters of ONE critic Q network) of `config.arch` at its sizes."""
    from mtrl.nets import build_network
    from mtrl.nets.layers import count_parameters

    config = config.resolved()
    io = io_features(config.num_tasks)
    with torch.device("meta"):
        actor = build_network(config, "actor", *io["actor"], ensemble=1)
        critic = build_network(config, "critic", *io["critic"], ensemble=2)
    return count_parameters(actor), count_parameters(critic) // 2


def arch_config(arch: str, task_set: str, depth: int = 3) -> TrainConfig:
    """The architecture at the study's default size for the task set."""
    return TrainConfig(arch=arch, task_set=task_set, depth=depth).resolved()


def mlp_config(task_set: str, width: int, depth: int) -> TrainConfig:
    return TrainConfig(arch="mtmhsac", task_set=task_set, actor_width=width, critic_width=width, depth=depth)


def mlp_counts(task_set: str, width: int, depth: int) -> tuple[int, int]:
    """(actor, one critic) parameters of the plain multi-head MLP of this width and depth."""
    return count_actor_critic(mlp_config(task_set, width, depth))


def matched_width(arch: str, task_set: str, depth: int = 3, arch_depth: int = 3) -> int:
    """Largest MTMHSAC width (at `depth`) whose actor and critic each have <= the arch's counts."""
    return matched_width_for(arch_config(arch, task_set, arch_depth), depth)


@cache
def matched_width_for(arch: TrainConfig, depth: int) -> int:
    """`matched_width` for an architecture at any size (e.g. the toy sizes of the smoke pipeline)."""
    limit_actor, limit_critic = count_actor_critic(arch)
    task_set = arch.task_set

    def fits(width: int) -> bool:
        actor, critic = mlp_counts(task_set, width, depth)
        return actor <= limit_actor and critic <= limit_critic

    if not fits(1):
        raise ValueError(f"no {depth}-layer MLP fits within {arch.arch} on {task_set}")
    low, high = 1, 2
    while fits(high):  # counts grow monotonically with width
        low, high = high, 2 * high
    while high - low > 1:  # invariant: fits(low), not fits(high)
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def param_table(
    task_sets: tuple[str, ...] = ("mt10", "mt50"), depths: tuple[int, ...] = (3, 4)
) -> list[dict[str, int | str | None]]:
    """One row per (arch, task set, MLP depth): arch counts, matched width and that MLP's counts."""
    rows: list[dict[str, int | str | None]] = []
    for task_set in task_sets:
        for arch in ARCHS_MATCHED:
            actor, critic = count_actor_critic(arch_config(arch, task_set))
            for depth in depths:
                width = matched_width(arch, task_set, depth)
                mlp_actor, mlp_critic = mlp_counts(task_set, width, depth)
                rows.append(
                    {
                        "arch": arch,
                        "task_set": task_set,
                        "depth": depth,
                        "actor_params": actor,
                        "critic_params": critic,
                        "matched_width": width,
                        "mlp_actor_params": mlp_actor,
                        "mlp_critic_params": mlp_critic,
                        "study_width": STUDY_WIDTHS.get((arch, task_set, depth)),
                    }
                )
    return rows


def format_param_table(rows: list[dict[str, int | str | None]]) -> str:
    """A fixed-width text table of `param_table` rows."""
    columns = [
        ("arch", "arch"),
        ("task_set", "tasks"),
        ("depth", "depth"),
        ("actor_params", "arch actor"),
        ("critic_params", "arch critic"),
        ("matched_width", "width"),
        ("mlp_actor_params", "MLP actor"),
        ("mlp_critic_params", "MLP critic"),
        ("study_width", "study width"),
    ]

    def cell(value: int | str | None) -> str:
        if value is None:
            return "-"
        return f"{value:,}" if isinstance(value, int) else str(value)

    body = [[cell(row[key]) for key, _ in columns] for row in rows]
    widths = [max(len(title), *(len(line[i]) for line in body)) for i, (_, title) in enumerate(columns)]
    lines = ["  ".join(title.rjust(w) for (_, title), w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in body]
    return "\n".join(lines)


__all__ = [
    "ARCHS_MATCHED",
    "STUDY_WIDTHS",
    "arch_config",
    "count_actor_critic",
    "format_param_table",
    "io_features",
    "matched_width",
    "mlp_config",
    "mlp_counts",
    "param_table",
]
