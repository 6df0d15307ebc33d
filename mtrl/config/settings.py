"""Run configuration: one frozen dataclass, validated at the edge with errors that name the key.

A `TrainConfig` is one grid point of the study (architecture x widths x depth x task set x seed x
steps) plus the SAC hyper-parameters. Step counts are *total* environment transitions summed over
all tasks, as in the paper (MT10: 2e7); the loop itself advances one vector step (= N transitions)
at a time, so interval settings must be multiples of N x episode length.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mtrl.config.errors import ConfigError
from mtrl.config.limits import check_counts
from mtrl.config.values import coerce
from mtrl.envs.benchmarks import EPISODE_LENGTH, REWARD_VERSIONS, TASK_SETS, num_tasks_of

ARCHS = ("mtmhsac", "sm", "paco", "moore")
DEVICES = ("auto", "cpu", "cuda")
VECTOR_STRATEGIES = ("sync", "async", "shm")
EVAL_MODES = ("auto", "blocking", "background")  # auto: background on CUDA, blocking on a CPU
MAX_SEED = 2**32 - 4  # numpy's legacy seed is 32-bit; seed + 3 seeds the probe-batch generator
UPDATE_MODES = (
    "auto",
    "eager",
    "graph",
    "compiled",
)  # auto: graph on CUDA, eager on a CPU (mtrl.config.speed)
MATMUL_PRECISIONS = ("auto", "float32", "tf32", "bf16")  # auto: tf32 on CUDA, float32 on a CPU


# Per-architecture settings of the authors' experiment files (rainx0r/mtrl experiments/baselines),
# applied by `TrainConfig.resolved()` when the field is left at None.
PACO_MAX_Q_VALUE = 5000.0  # their PaCo runs clip TD targets and predicted Q (commit f5c121f)
MOORE_MT10_LOG_STD_MIN = -10.0  # mt10_moore.py; mt50_moore.py and every other run: -20
LOG_STD_MIN = -20.0


def default_max_q_value(arch: str) -> float:
    """The clip bound an architecture's runs used: 5000 for PaCo, 0 (no clipping) otherwise."""
    return PACO_MAX_Q_VALUE if arch == "paco" else 0.0


def default_log_std_min(arch: str, task_set: str) -> float:
    """The policy's log-std floor in the authors' runs: -10 for MOORE on MT10, -20 otherwise."""
    return MOORE_MT10_LOG_STD_MIN if (arch, task_set) == ("moore", "mt10") else LOG_STD_MIN


BY_TASK_SET = "; none: the paper's value for the task set"


def _meta(help_text: str, **kw: Any) -> dict[str, Any]:
    return {"help": help_text, **kw}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run; defaults are the paper's MT10 MTMHSAC baseline."""

    # --- the grid point
    task_set: str = field(default="mt10", metadata=_meta(f"benchmark: one of {', '.join(TASK_SETS)}"))
    mt1_task: str = field(default="reach-v3", metadata=_meta("Meta-World task used when task_set is mt1"))
    arch: str = field(default="mtmhsac", metadata=_meta(f"network architecture: one of {', '.join(ARCHS)}"))
    actor_width: int = field(default=400, metadata=_meta("hidden width of the actor (mtmhsac)"))
    critic_width: int = field(default=400, metadata=_meta("hidden width of each critic (mtmhsac)"))
    depth: int = field(default=3, metadata=_meta("number of hidden layers (mtmhsac)"))
    skip: bool = field(default=False, metadata=_meta("residual skip connections between hidden layers"))
    layer_norm: bool = field(default=False, metadata=_meta("layer norm before each hidden ReLU"))
    seed: int = field(default=0, metadata=_meta("seed for envs, networks, sampling"))
    reward_version: str = field(
        default="v2",
        metadata=_meta("Meta-World reward functions: v2 (current) or v1 (the study's Table 1 SM runs)"),
    )
    # --- architecture sizes (None: the paper's default for the task set)
    sm_layers: int | None = field(
        default=None, metadata=_meta("Soft Modularization module layers" + BY_TASK_SET)
    )
    sm_modules: int | None = field(
        default=None, metadata=_meta("Soft Modularization modules per layer" + BY_TASK_SET)
    )
    sm_module_width: int = field(default=256, metadata=_meta("Soft Modularization module width"))
    sm_embedding: int = field(default=400, metadata=_meta("Soft Modularization embedding width"))
    paco_k: int | None = field(
        default=None, metadata=_meta("PaCo number of shared parameter sets" + BY_TASK_SET)
    )
    moore_experts: int | None = field(default=None, metadata=_meta("MOORE number of experts" + BY_TASK_SET))
    # --- schedule (total transitions over all tasks)
    total_steps: int = field(default=20_000_000, metadata=_meta("total env transitions (all tasks)"))
    warmup_steps_per_task: int = field(
        default=4_000,
        metadata=_meta(
            "random-action steps per task (= vector-env steps) before updates start; "
            "the authors' 4,000 is 40,000 transitions on MT10 and 200,000 on MT50"
        ),
    )
    eval_every: int = field(default=200_000, metadata=_meta("transitions between evaluations"))
    eval_episodes: int = field(default=50, metadata=_meta("evaluation episodes per task"))
    checkpoint_every: int = field(
        default=1_000_000, metadata=_meta("transitions between resume checkpoints (full state)")
    )
    probe_checkpoints: int = field(
        default=25, metadata=_meta("network-only checkpoints for probing, evenly spaced over the run")
    )
    log_every: int = field(default=100_000, metadata=_meta("transitions between training-log rows"))
    # --- SAC
    buffer_per_task: int = field(default=100_000, metadata=_meta("replay capacity per task"))
    batch_per_task: int = field(default=128, metadata=_meta("transitions sampled per task per update"))
    lr: float = field(default=3e-4, metadata=_meta("Adam learning rate (actor and critic)"))
    alpha_lr: float = field(default=3e-4, metadata=_meta("Adam learning rate of log-alpha"))
    adam_eps: float = field(default=1e-5, metadata=_meta("Adam epsilon"))
    grad_clip: float = field(default=1.0, metadata=_meta("global grad-norm clip (<= 0: off)"))
    gamma: float = field(default=0.99, metadata=_meta("discount"))
    tau: float = field(default=0.005, metadata=_meta("Polyak factor of the target critics"))
    initial_alpha: float = field(default=1.0, metadata=_meta("initial entropy temperature per task"))
    target_entropy: float | None = field(default=None, metadata=_meta("target entropy (none: -|A|)"))
    use_task_weights: bool = field(default=False, metadata=_meta("weight task losses by softmax(-log alpha)"))
    max_q_value: float | None = field(
        default=None,
        metadata=_meta(
            "clip TD targets and predicted Q to +-this; 0: no clipping; none: the architecture's "
            f"default (paco: {PACO_MAX_Q_VALUE:g}, as the authors' PaCo runs; other archs: 0)"
        ),
    )
    log_std_min: float | None = field(
        default=None,
        metadata=_meta(
            f"policy log-std lower bound (none: {MOORE_MT10_LOG_STD_MIN:g} for moore on mt10, as the "
            f"authors' MT10 MOORE run; {LOG_STD_MIN:g} otherwise)"
        ),
    )
    log_std_max: float = field(default=2.0, metadata=_meta("policy log-std upper bound"))
    # --- execution
    device: str = field(default="auto", metadata=_meta(f"torch device: one of {', '.join(DEVICES)}"))
    vector_strategy: str = field(
        default="shm",
        metadata=_meta(
            "env vectorisation: sync (one process), async (gymnasium, one per task) or shm "
            "(shared-memory workers, `env_workers` of them)"
        ),
    )
    env_workers: int = field(
        default=0,
        metadata=_meta(
            "shm env workers (0: one per task while the job's cores last, less one for the trainer, else "
            "several tasks each; the job's cores: its CPU affinity capped by SLURM's allocation)"
        ),
    )
    eval_mode: str = field(
        default="auto",
        metadata=_meta(
            "evaluation: blocking (training waits), background (own process and envs, training goes on) "
            "or auto (background on CUDA, blocking on a CPU); both record the same results"
        ),
    )
    eval_device: str = field(
        default="auto",
        metadata=_meta("device of the evaluated actor (auto: the run's device; cpu: 1 thread)"),
    )
    torch_threads: int = field(
        default=0,
        metadata=_meta(
            "torch CPU threads (0: the job's cores less its env workers, at least 1; never torch's default)"
        ),
    )
    update_mode: str = field(
        default="auto",
        metadata=_meta(
            "SAC update: eager (reference), graph (one CUDA graph per update on a GPU), compiled (graph "
            "with torch.compile'd losses and clipping) or auto (graph on CUDA, eager on a CPU)"
        ),
    )
    matmul_precision: str = field(
        default="auto",
        metadata=_meta(
            "float32, tf32 (CUDA only; the JAX default on Ampere/Hopper), bf16 (autocast) or auto "
            "(tf32 on CUDA, float32 on a CPU)"
        ),
    )
    overlap: bool = field(
        default=False,
        metadata=_meta("step the envs while the update runs; the update then sees the buffer one step old"),
    )

    # ------------------------------------------------------------------ derived
    @property
    def num_tasks(self) -> int:
        return num_tasks_of(self.task_set)

    @property
    def vector_steps(self) -> int:
        """Number of vector-env steps (= transitions per task)."""
        return self.total_steps // self.num_tasks

    @property
    def episode_transitions(self) -> int:
        """Transitions in one episode of every env (N x 500): the granularity of all intervals."""
        return self.num_tasks * EPISODE_LENGTH

    def resolved(self) -> TrainConfig:
        """This config validated, with every architecture default filled in for its task set.

        The one place a run's settings are checked and completed: the edges (`from_dict`, the CLI,
        `mtrl.run.train.train`) call it and the code inside a run takes its result (`require_resolved`).
        A resolved config returns itself; `dataclasses.replace` gives an unresolved copy.
        """
        if self.is_resolved:
            return self
        self.validate()
        large = self.num_tasks > 10
        config = dataclasses.replace(
            self,
            sm_layers=self.sm_layers or (4 if large else 2),
            sm_modules=self.sm_modules or (4 if large else 2),
            paco_k=self.paco_k or (20 if large else 5),
            moore_experts=self.moore_experts or (6 if large else 4),
            target_entropy=self.target_entropy if self.target_entropy is not None else -4.0,
            max_q_value=self.max_q_value if self.max_q_value is not None else default_max_q_value(self.arch),
            log_std_min=self._log_std_min(),
        )
        object.__setattr__(config, "_resolved", True)  # not a field: no part of equality or to_dict
        return config

    @property
    def is_resolved(self) -> bool:
        """Whether this config came from `resolved()` (validated, defaults filled in)."""
        return vars(self).get("_resolved", False)

    def _log_std_min(self) -> float:
        if self.log_std_min is not None:
            return self.log_std_min
        return default_log_std_min(self.arch, self.task_set)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build, validate and resolve from a plain mapping (YAML, JSON, CLI); unknown keys are errors."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
        coerced = {name: _coerce(name, value, known[name].type) for name, value in values.items()}
        return cls(**coerced).resolved()

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
        from mtrl.config.files import load_yaml_mapping

        return cls.from_dict({**load_yaml_mapping(path), **(overrides or {})})

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key (of the values as given, before resolving)."""
        for check in (_check_finite, _check_choices, _check_ranges, _check_schedule, check_counts):
            check(self)


def require_resolved(config: TrainConfig) -> TrainConfig:
    """`config` if it came from `TrainConfig.resolved()`: code inside a run never resolves it again."""
    if not config.is_resolved:
        raise TypeError("expected a resolved TrainConfig: resolve it once, at the edge (config.resolved())")
    return config


# ---------------------------------------------------------------------- the checks of `validate`
def _check_finite(config: TrainConfig) -> None:
    """No NaN or infinity in any float setting (also for configs built directly, not via from_dict)."""
    for f in fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{f.name}: must be a finite number, got {value}")


def _check_choices(config: TrainConfig) -> None:
    """Settings that name one of a fixed set: task set, architecture, device, modes, the MT1 task."""
    if config.task_set not in TASK_SETS:
        raise ConfigError(f"task_set: unknown task set {config.task_set!r}; choose one of {list(TASK_SETS)}")
    if config.arch not in ARCHS:
        raise ConfigError(f"arch: unknown architecture {config.arch!r}; choose one of {list(ARCHS)}")
    for name, allowed in (
        ("reward_version", REWARD_VERSIONS),
        ("device", DEVICES),
        ("vector_strategy", VECTOR_STRATEGIES),
        ("eval_mode", EVAL_MODES),
        ("eval_device", DEVICES),
        ("update_mode", UPDATE_MODES),
        ("matmul_precision", MATMUL_PRECISIONS),
    ):
        if getattr(config, name) not in allowed:
            raise ConfigError(f"{name}: {getattr(config, name)!r} is not one of {list(allowed)}")
    if config.task_set == "mt1":
        from mtrl.envs.benchmarks import ALL_TASKS

        if config.mt1_task not in ALL_TASKS:
            raise ConfigError(f"mt1_task: unknown Meta-World task {config.mt1_task!r}")


POSITIVE_INTS = (
    "actor_width",
    "critic_width",
    "depth",
    "total_steps",
    "eval_episodes",
    "buffer_per_task",
    "batch_per_task",
    "sm_module_width",
    "sm_embedding",
    "probe_checkpoints",
)
OPTIONAL_POSITIVE_INTS = ("sm_layers", "sm_modules", "paco_k", "moore_experts")


def _check_ranges(config: TrainConfig) -> None:
    """Sizes, counts, rates and bounds within their ranges."""
    given = [name for name in OPTIONAL_POSITIVE_INTS if getattr(config, name) is not None]
    for name in (*POSITIVE_INTS, *given):
        if getattr(config, name) <= 0:
            raise ConfigError(f"{name}: must be a positive integer, got {getattr(config, name)}")
    for name in ("warmup_steps_per_task", "seed", "torch_threads", "env_workers"):
        if getattr(config, name) < 0:
            raise ConfigError(f"{name}: must be >= 0, got {getattr(config, name)}")
    if config.seed > MAX_SEED:
        raise ConfigError(f"seed: must be at most {MAX_SEED}, got {config.seed}")
    for name in ("lr", "alpha_lr", "adam_eps", "initial_alpha"):
        if not getattr(config, name) > 0:
            raise ConfigError(f"{name}: must be > 0, got {getattr(config, name)}")
    for name in ("gamma", "tau"):
        if not 0 < getattr(config, name) <= 1:
            raise ConfigError(f"{name}: must be in (0, 1], got {getattr(config, name)}")
    if config.max_q_value is not None and not config.max_q_value >= 0:
        raise ConfigError(
            f"max_q_value: must be >= 0 (0: no clipping, none: arch default), got {config.max_q_value}"
        )
    if not config._log_std_min() < config.log_std_max:
        raise ConfigError(
            f"log_std_min: {config._log_std_min()} must be below log_std_max {config.log_std_max}"
        )


def _check_schedule(config: TrainConfig) -> None:
    """Step counts and intervals in whole episodes of every task; warm-up and probes within the run."""
    unit = config.episode_transitions
    for name in ("total_steps", "eval_every", "checkpoint_every", "log_every"):
        value = getattr(config, name)
        if value <= 0 or value % unit:
            raise ConfigError(
                f"{name}: must be a positive multiple of {unit} (= {config.num_tasks} tasks x "
                f"{EPISODE_LENGTH}-step episodes), got {value}"
            )
    if config.warmup_steps_per_task > config.vector_steps:
        raise ConfigError(
            f"warmup_steps_per_task: {config.warmup_steps_per_task} exceeds the run's "
            f"{config.vector_steps} steps per task (total_steps / {config.num_tasks} tasks)"
        )
    if config.probe_checkpoints > config.total_steps // unit:
        raise ConfigError(
            f"probe_checkpoints: {config.probe_checkpoints} checkpoints need at least as many episodes; "
            f"total_steps allows {config.total_steps // unit}"
        )


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Convert a YAML/CLI value to the field's declared type, or raise ConfigError naming `name`."""
    try:
        return coerce(value, _field_types()[name] if isinstance(annotation, str) else annotation)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
