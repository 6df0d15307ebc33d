"""Multi-task SAC (Yu et al. 2020; the study's Sec. 4.3): tanh-Gaussian actor, clipped double Q with
the two critics as one batched ensemble, Polyak targets, and one learned temperature per task.

`update` returns its metrics as device tensors so that the loop never waits on the device.

Two ways to run an update (config `update_mode`): `eager`, the reference and the CPU default, and
`graph`, the same maths (`learn`) on fixed-address inputs, captured once as a CUDA graph on a GPU
(`mtrl.agents.capture`). Both draw the same random numbers in the same order.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtrl.agents.buffers import Batch, MultiTaskReplayBuffer
from mtrl.agents.capture import FixedBatchUpdate, StaticUpdate, adam_options, update_phase
from mtrl.agents.compiled import UpdateFunctions, clip_gradients, update_functions
from mtrl.config.settings import TrainConfig, require_resolved
from mtrl.config.speed import resolve_speed
from mtrl.nets import build_network
from mtrl.nets.layers import count_parameters

METRICS = ("critic_loss", "actor_loss", "alpha_loss", "q_mean", "entropy")


class Temperatures(NamedTuple):
    """Per sample: the task's temperature (detached) and task-loss weight (None: all ones)."""

    alpha: Tensor
    weights: Tensor | None


def _weighted_mean(values: Tensor, weights: Tensor | None) -> Tensor:
    """mean(weights * values); without weights no multiplication by ones (the same numbers)."""
    return (values if weights is None else weights * values).mean()


def squashed_gaussian(mean: Tensor, log_std: Tensor, noise: Tensor | None) -> tuple[Tensor, Tensor]:
    """tanh(mean + std * noise) and its log-probability (with the tanh change of variables)."""
    if noise is None:
        return torch.tanh(mean), torch.zeros(mean.shape[:-1], device=mean.device)
    std = log_std.exp()
    pre_tanh = mean + std * noise
    log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    # log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)), stable for large |u|
    log_prob = log_prob - (2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))).sum(-1)
    return torch.tanh(pre_tanh), log_prob


class MultiTaskSAC(nn.Module):
    """Actor, critic ensemble (E=2), target critics, per-task log-alpha and their optimisers.

    `config` is resolved (`TrainConfig.resolved()`). Process-wide settings (matmul precision, torch
    threads, seeds) are the caller's (`mtrl.run.setup`); network initialisation draws from torch's
    global generator, policy noise from the agent's own (seeded with `config.seed`).
    """

    def __init__(self, config: TrainConfig, obs_dim: int, action_dim: int, device: torch.device) -> None:
        super().__init__()
        config = require_resolved(config)
        self.config, self.action_dim, self.num_tasks = config, action_dim, config.num_tasks
        self.actor = build_network(config, "actor", obs_dim, 2 * action_dim, ensemble=1)
        self.critic = build_network(config, "critic", obs_dim + action_dim, 1, ensemble=2)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.full((self.num_tasks,), math.log(config.initial_alpha)))
        self.to(device)
        self.device = device
        self.target_entropy = float(config.target_entropy)  # resolved: -|A| by default
        # Parameter lists are cached: walking the module tree every update costs more than a tiny net's maths.
        self._actor_params = list(self.actor.parameters())
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.target_critic.parameters())
        # `auto` is graph + tf32 on CUDA, eager + float32 on a CPU (mtrl.config.speed)
        self.update_mode, self.precision = resolve_speed(
            config.update_mode, config.matmul_precision, device.type
        )
        adam = {"lr": config.lr, "eps": config.adam_eps, **adam_options(self.update_mode, device)}
        self.actor_optim = torch.optim.Adam(self._actor_params, **adam)
        self.critic_optim = torch.optim.Adam(self._critic_params, **adam)
        self.alpha_optim = torch.optim.Adam([self.log_alpha], **{**adam, "lr": config.alpha_lr})
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed)
        # the capture-ready update (graph and compiled modes): of a buffer, or of a fixed batch
        self._static: StaticUpdate | FixedBatchUpdate | None = None
        plain = UpdateFunctions(self.critic_loss, self.actor_loss, self.alpha_loss, clip_gradients)
        self._functions = update_functions(plain, self.critic, self.update_mode)  # maybe compiled

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for forward passes when `matmul_precision` is bf16, else nothing."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)

    def draw_noise(self, batch_size: int, out: Tensor | None = None) -> Tensor:
        """Standard normal policy noise (B, A) from the agent's generator."""
        shape = (batch_size, self.action_dim)
        return torch.randn(shape, device=self.device, generator=self.generator, out=out)

    # ----------------------------------------------------------------- acting
    def _policy(
        self, obs: Tensor, task: Tensor, deterministic: bool, noise: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Squashed-Gaussian action and log-prob; noise is drawn here unless given (or deterministic)."""
        with self.autocast():
            mean, raw_log_std = self.actor(obs, task)[0].float().chunk(2, dim=-1)
        log_std = raw_log_std.clamp(self.config.log_std_min, self.config.log_std_max)
        if not deterministic and noise is None:
            noise = self.draw_noise(mean.shape[0])
        return squashed_gaussian(mean, log_std, None if deterministic else noise)

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """Actions for one observation per task; obs (N, obs_dim + N) with the one-hot at the end."""
        task = obs[:, -self.num_tasks :].argmax(dim=1)
        return self._policy(obs, task, deterministic)[0]

    def q_values(self, obs: Tensor, action: Tensor, task: Tensor, target: bool = False) -> Tensor:
        """(2, B) Q-values of both critics (or target critics)."""
        net = self.target_critic if target else self.critic
        with self.autocast():
            return net(torch.cat([obs, action], dim=-1), task).squeeze(-1).float()

    # ----------------------------------------------------------------- learning
    def task_weights(self) -> Tensor:
        """N * softmax(-log_alpha) per task (the code's `use_task_weights`); ones when disabled."""
        if not self.config.use_task_weights:
            return torch.ones(self.num_tasks, device=self.log_alpha.device)
        return self.num_tasks * torch.softmax(-self.log_alpha.detach(), dim=0)

    def temperatures(self, task: Tensor) -> Temperatures:
        """Each sample's temperature and task-loss weight, for both losses of an update (log_alpha
        changes only after them); weights are None when `use_task_weights` is off (all ones)."""
        weights = self.task_weights()[task] if self.config.use_task_weights else None
        return Temperatures(self.log_alpha.detach().exp()[task], weights)

    def critic_loss(
        self, batch: Batch, noise: Tensor | None = None, temps: Temperatures | None = None
    ) -> tuple[Tensor, Tensor]:
        """Clipped double-Q TD loss (sum of both critics' MSE) and the mean Q for logging."""
        alpha, weights = temps or self.temperatures(batch.task)
        with torch.no_grad():
            next_action, next_log_prob = self._policy(batch.next_obs, batch.task, False, noise)
            next_q = self.q_values(batch.next_obs, next_action, batch.task, target=True).min(dim=0).values
            target = batch.reward + self.config.gamma * (1 - batch.done) * (next_q - alpha * next_log_prob)
        q = self.q_values(batch.obs, batch.action, batch.task)
        bound = self.config.max_q_value  # resolved: 0 = off (the authors' PaCo runs: 5000)
        if bound:
            target, q = target.clamp(-bound, bound), q.clamp(-bound, bound)
        per_sample = 0.5 * (q - target).pow(2).sum(dim=0)
        return _weighted_mean(per_sample, weights), q.mean().detach()

    def actor_loss(
        self, batch: Batch, noise: Tensor | None = None, temps: Temperatures | None = None
    ) -> tuple[Tensor, Tensor]:
        """E[alpha * log pi - min Q] and the policy's log-probabilities (for the temperature)."""
        alpha, weights = temps or self.temperatures(batch.task)
        action, log_prob = self._policy(batch.obs, batch.task, False, noise)
        q = self.q_values(batch.obs, action, batch.task).min(dim=0).values
        return _weighted_mean(alpha * log_prob - q, weights), log_prob.detach()

    def alpha_loss(self, log_prob: Tensor, task: Tensor) -> Tensor:
        """Per-task temperature loss: alpha_i rises when task i's entropy is below the target."""
        return -(self.log_alpha[task] * (log_prob + self.target_entropy)).mean()

    def _step(
        self, name: str, optim: torch.optim.Optimizer, loss: Tensor, params: list[Tensor], clip: bool = True
    ) -> None:
        """Gradients of `loss` for `params` only (no requires_grad toggling), clip, one Adam step."""
        optim.zero_grad(set_to_none=True)
        with update_phase(f"{name} backward"):
            loss.backward(inputs=params)
        if clip and self.config.grad_clip > 0:
            with update_phase(f"{name} clip"):
                self._functions.clip(params, self.config.grad_clip)
        with update_phase(f"{name} adam"):
            optim.step()

    def learn(self, batch: Batch, next_noise: Tensor, noise: Tensor) -> Tensor:
        """One SAC gradient step for critics, actor and temperatures given the policy noise.

        No host values, no syncs: the body the CUDA graph captures. Returns METRICS as a tensor.
        """
        with update_phase("temperatures"):
            temps = self.temperatures(batch.task)
        with update_phase("critic loss"):
            critic_loss, q_mean = self._functions.critic_loss(batch, next_noise, temps)
        self._step("critic", self.critic_optim, critic_loss, self._critic_params)
        with update_phase("actor loss"):
            actor_loss, log_prob = self._functions.actor_loss(batch, noise, temps)  # grads: the actor only
        self._step("actor", self.actor_optim, actor_loss, self._actor_params)
        with update_phase("alpha loss"):
            alpha_loss = self._functions.alpha_loss(log_prob, batch.task)
        self._step("alpha", self.alpha_optim, alpha_loss, [self.log_alpha], clip=False)
        with update_phase("polyak"), torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._critic_params, self.config.tau)
        with update_phase("metrics"):
            return torch.stack(
                [critic_loss.detach(), actor_loss.detach(), alpha_loss.detach(), q_mean, -log_prob.mean()]
            )

    def update(self, batch: Batch) -> Tensor:
        """One eager SAC update on `batch` (the reference path); returns METRICS as a tensor."""
        next_noise = self.draw_noise(len(batch.task))  # same order as drawing inside the losses
        return self.learn(batch, next_noise, self.draw_noise(len(batch.task)))

    def update_from_buffer(
        self, buffer: MultiTaskReplayBuffer, per_task: int, generator: torch.Generator
    ) -> Tensor:
        """One update on a fresh sample of `buffer`, in the configured `update_mode`.

        eager: sample, then `update`. graph: the capture-ready update for this buffer
        (`mtrl.agents.capture.StaticUpdate`), which draws the same numbers eager draws. Metrics come
        back as a new tensor.
        """
        if self.update_mode == "eager":
            return self.update(buffer.sample(per_task, generator))
        if not (isinstance(self._static, StaticUpdate) and self._static.fits(buffer, per_task)):
            self._static = StaticUpdate(self, buffer, per_task)
        return self._static.run(generator)

    def update_on(self, batch: Batch) -> Tensor:
        """One update on `batch` in the configured `update_mode`, without sampling: the update the
        authors' JAX anchor times. The caller keeps `batch` unchanged between calls (graph modes read
        its tensors where they are: a new batch object is captured anew)."""
        if self.update_mode == "eager":
            return self.update(batch)
        if not (isinstance(self._static, FixedBatchUpdate) and self._static.batch is batch):
            self._static = FixedBatchUpdate(self, batch)
        return self._static.run()

    def optimizers(self) -> tuple[torch.optim.Optimizer, ...]:
        """The critic, actor and temperature optimisers."""
        return self.critic_optim, self.actor_optim, self.alpha_optim

    # ----------------------------------------------------------------- bookkeeping
    def parameter_counts(self) -> tuple[int, int]:
        """(actor, one critic) trainable parameter counts."""
        return count_parameters(self.actor), count_parameters(self.critic) // self.critic.ensemble

    def training_state(self) -> dict:
        return {
            "model": self.state_dict(),
            "actor_optim": self.actor_optim.state_dict(),
            "critic_optim": self.critic_optim.state_dict(),
            "alpha_optim": self.alpha_optim.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_training_state(self, state: dict) -> None:
        self._static = None  # a captured graph would read the optimisers' replaced state tensors
        self.load_state_dict(state["model"])
        self.actor_optim.load_state_dict(state["actor_optim"])
        self.critic_optim.load_state_dict(state["critic_optim"])
        self.alpha_optim.load_state_dict(state["alpha_optim"])
        self.generator.set_state(state["generator"])
