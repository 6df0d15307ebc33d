"""Counts no machine can run: torch threads, and the experts, parameter sets and modules of the
architectures. Refused in one line naming the key, before anything is built (a million MOORE
experts or 100,000 torch threads otherwise end in a traceback from deep inside torch)."""

from __future__ import annotations

from typing import Protocol

from mtrl.config.errors import ConfigError


class Counts(Protocol):
    """The settings the check reads (a TrainConfig has them; this module need not import it)."""

    torch_threads: int
    paco_k: int | None
    moore_experts: int | None
    sm_layers: int | None
    sm_modules: int | None
    actor_width: int
    critic_width: int
    arch: str

    @property
    def num_tasks(self) -> int: ...


# More torch threads than any machine has cores: OpenMP fails to start them inside an update.
MAX_TORCH_THREADS = 1024
# The study uses at most 20 (PaCo on MT50); SM builds one module object per module (x layers).
MAX_COUNTS = {"paco_k": 1024, "moore_experts": 1024, "sm_layers": 64, "sm_modules": 64}


def check_counts(config: Counts) -> None:
    """ConfigError naming the first count beyond what can run (values as given, None: a default)."""
    if config.torch_threads > MAX_TORCH_THREADS:
        raise ConfigError(
            f"torch_threads: {config.torch_threads} is more than any machine's cores (at most "
            f"{MAX_TORCH_THREADS}; 0: the job's cores less its env workers)"
        )
    for name, limit in MAX_COUNTS.items():
        value = getattr(config, name)
        if value is not None and value > limit:
            raise ConfigError(f"{name}: {value} is beyond what can be built (at most {limit})")
    width = min(config.actor_width, config.critic_width)
    experts = config.moore_experts or (6 if config.num_tasks > 10 else 4)  # TrainConfig.resolved's default
    if config.arch == "moore" and experts > width:
        raise ConfigError(
            f"moore_experts: {experts} experts cannot be orthonormalised in width {width} "
            "(actor_width and critic_width must be at least moore_experts)"
        )
