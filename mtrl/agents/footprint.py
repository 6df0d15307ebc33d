"""How much memory a run needs: its networks (parameters, gradients, Adam moments, target critics),
its replay buffer and one update's batch, and the one-line refusal of a run that cannot fit.

Pure and torch-free: `mtrl train` checks a run with the exact network sizes (`mtrl.run.memory`,
counted on the meta device as `mtrl.nets.matching` counts them), the workflow's plan with
`approximate_sizes`, without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from mtrl.config.settings import TrainConfig
from mtrl.envs.benchmarks import ACTION_DIM, OBS_DIM

FLOAT_BYTES = 4
# Unit activations one update keeps per sample, per unit of (actor + critic ensemble): the actor runs
# on obs and next obs, the critics on (obs, action) and (obs, new action), the target critics on next
# obs, and autograd keeps each output and its gradient.
ACTIVATION_FACTOR = 10


@dataclass(frozen=True)
class NetSizes:
    """Sizes of a run's networks: parameters of the actor and of ONE Q network (the critic ensemble
    holds two, the targets two more), and units (layer outputs) one sample activates in each."""

    actor_params: int
    critic_params: int
    actor_units: int
    critic_units: int


@dataclass(frozen=True)
class Footprint:
    """Bytes a run holds on its device: networks, replay buffer, one update's batch."""

    networks: int
    buffer: int
    batch: int

    @property
    def total(self) -> int:
        return self.networks + self.buffer + self.batch


def transition_bytes(obs_dim: int = OBS_DIM, action_dim: int = ACTION_DIM) -> int:
    """One stored transition (MultiTaskReplayBuffer's float32 row): obs, next obs, action, reward, done."""
    return (2 * obs_dim + action_dim + 2) * FLOAT_BYTES


def network_bytes(sizes: NetSizes) -> int:
    """Parameters, gradients and two Adam moments of the actor and both Q networks, plus the two targets."""
    return FLOAT_BYTES * (4 * sizes.actor_params + (2 * 4 + 2) * sizes.critic_params)


def footprint(config: TrainConfig, sizes: NetSizes) -> Footprint:
    """What a run of `config` with networks of `sizes` holds: networks, buffer, one update's batch."""
    rows = config.num_tasks * config.batch_per_task
    units = sizes.actor_units + 2 * sizes.critic_units
    return Footprint(
        networks=network_bytes(sizes),
        buffer=config.num_tasks * config.buffer_per_task * transition_bytes(),
        batch=rows * (transition_bytes() + ACTIVATION_FACTOR * FLOAT_BYTES * units),
    )


def approximate_sizes(config: TrainConfig) -> NetSizes:
    """`NetSizes` by formula, without torch: a multi-head MLP per role (exact for MTMHSAC), times
    PaCo's parameter sets or MOORE's experts (within 10 %); SM by its module layout (over, < 50 %)."""
    config = config.resolved()
    n = config.num_tasks
    roles = {
        "actor": (config.actor_width, OBS_DIM + n, 2 * ACTION_DIM),
        "critic": (config.critic_width, OBS_DIM + n + ACTION_DIM, 1),
    }
    params, units = {}, {}
    for role, (width, inputs, outputs) in roles.items():
        if config.arch == "sm":
            emb, mod, layers, modules = (
                config.sm_embedding,
                config.sm_module_width,
                config.sm_layers,
                config.sm_modules,
            )
            params[role] = (
                inputs * emb
                + 2 * emb**2
                + 2 * emb * mod
                + layers * modules * (emb * mod + modules * mod)
                + mod * outputs * n
            )
            units[role] = 3 * emb + layers * modules * (mod + modules) + outputs * n
            continue
        copies = {"paco": config.paco_k, "moore": config.moore_experts}.get(config.arch) or 1
        hidden = inputs * width + (config.depth - 1) * width**2 + config.depth * width
        params[role] = copies * hidden + (width + 1) * n * outputs
        units[role] = copies * config.depth * width + n * outputs
    return NetSizes(params["actor"], params["critic"], units["actor"], units["critic"])


def _short(value: float) -> str:
    """3.4e17, 1e15, 2,000: a size as a config value or estimate reads best."""
    if value < 1e6 and value == int(value):
        return f"{int(value):,}"
    mantissa, _, exponent = f"{value:.2g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


def human_size(size: int) -> str:
    """24 GiB, 512 MiB: memory as `free -h` and SLURM say it."""
    if size >= 2**30:
        return f"{size / 2**30:,.1f}".removesuffix(".0") + " GiB"
    return f"{size / 2**20:,.0f} MiB"


def _network_keys(config: TrainConfig) -> str:
    if config.arch == "sm":
        keys = ("sm_layers", "sm_modules", "sm_module_width", "sm_embedding")
    else:
        extra = {"paco": ("paco_k",), "moore": ("moore_experts",)}.get(config.arch, ())
        keys = (*extra, "actor_width", "critic_width", "depth")
    return ", ".join(f"{key}={_short(getattr(config, key))}" for key in keys)


def fit_problem(config: TrainConfig, needed: Footprint, limit: int, where: str) -> str | None:
    """None if `needed` fits in `limit` bytes, else one line naming the settings of its largest part,
    the estimate and what `where` (the job, the GPU) has."""
    if needed.total <= limit:
        return None
    parts = [
        (needed.buffer, f"buffer_per_task={_short(config.buffer_per_task)}", "replay buffer"),
        (needed.networks, _network_keys(config), "networks (parameters, Adam moments, target critics)"),
        (needed.batch, f"batch_per_task={_short(config.batch_per_task)}", "activations for one batch"),
    ]
    size, keys, what = max(parts, key=lambda part: part[0])
    rest = "" if _short(size) == _short(needed.total) else f" (~{_short(needed.total)} bytes in all)"
    return f"{keys} needs ~{_short(size)} bytes of {what}{rest}; {where} has {human_size(limit)}"
