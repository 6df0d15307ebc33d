"""The usual range of the optimiser settings, and what a diverged run's message suggests from it:
the settings that are outside their range (adam_eps 1e-300, initial_alpha 1e30), not always lr."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtrl.config.settings import TrainConfig

# (low, high) of values SAC on Meta-World is run with (the study: lr 3e-4, adam_eps 1e-5, alpha 1,
# tau 0.005, gamma 0.99); a value outside is allowed, and named first when a run diverges.
USUAL_RANGES: dict[str, tuple[float, float]] = {
    "lr": (1e-5, 3e-3),
    "alpha_lr": (1e-5, 3e-3),
    "adam_eps": (1e-10, 1e-2),
    "initial_alpha": (1e-3, 10.0),
    "tau": (1e-4, 0.1),
    "gamma": (0.9, 0.999),
    "log_std_max": (-5.0, 5.0),
}


def unusual_settings(config: TrainConfig) -> list[str]:
    """`name=value (usual low..high)` for each optimiser setting of `config` outside its usual range."""
    found = []
    for name, (low, high) in USUAL_RANGES.items():
        value = getattr(config, name)
        if not low <= value <= high:
            found.append(f"{name}={value:g} (usual {low:g}..{high:g})")
    return found


def divergence_hint(config: TrainConfig) -> str:
    """What to change after a divergence: the unusual settings if any, else a lower learning rate."""
    unusual = unusual_settings(config)
    if unusual:
        return f"settings outside their usual range: {', '.join(unusual)}"
    return f"try a lower lr than {config.lr:g}"
