"""The SAC maths: squashed-Gaussian log-probs, per-task temperatures, critic learning."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from mtrl.agents.buffers import Batch
from mtrl.agents.sac import MultiTaskSAC, squashed_gaussian
from mtrl.config.settings import TrainConfig


def make_agent(**overrides) -> MultiTaskSAC:
    torch.manual_seed(0)
    config = TrainConfig(task_set="mt10", actor_width=32, critic_width=32, **overrides).resolved()
    return MultiTaskSAC(config, 49, 4, torch.device("cpu"))


def make_batch(n_per_task: int = 8, tasks: int = 10, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    task = torch.arange(tasks).repeat_interleave(n_per_task)
    one_hot = torch.eye(tasks)[task]
    b = len(task)
    return Batch(
        obs=torch.cat([torch.randn(b, 39, generator=g), one_hot], 1),
        action=torch.rand(b, 4, generator=g) * 2 - 1,
        reward=torch.randn(b, generator=g),
        next_obs=torch.cat([torch.randn(b, 39, generator=g), one_hot], 1),
        done=torch.zeros(b),
        task=task,
    )


def test_squashed_gaussian_log_prob_matches_torch_distribution():
    # its own draws (not whatever tests before it left in the global generator): torch's TanhTransform
    # inverts a saturated action to inf, which a draw with |pre-tanh| >~ 9 gives
    torch.manual_seed(0)
    mean, log_std, noise = torch.randn(6, 4), torch.randn(6, 4) * 0.5, torch.randn(6, 4)
    action, log_prob = squashed_gaussian(mean, log_std, noise)
    dist = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform(cache_size=1)])
    expected = dist.log_prob(action).sum(-1)
    torch.testing.assert_close(log_prob, expected, atol=1e-3, rtol=1e-4)
    assert action.abs().max() < 1


def test_deterministic_action_is_tanh_mean():
    agent = make_agent()
    obs = make_batch(1).obs
    task = obs[:, 39:].argmax(1)
    mean = agent.actor(obs, task)[0][:, :4]
    torch.testing.assert_close(agent.act(obs, deterministic=True), torch.tanh(mean))


def test_alpha_moves_per_task_toward_target_entropy():
    agent = make_agent()
    task = torch.arange(10).repeat_interleave(4)
    # tasks 0-4: policy entropy far above target (log-prob -20 << 4) -> alpha must fall;
    # tasks 5-9: far below target (log-prob +20) -> alpha must rise.
    log_prob = torch.where(task < 5, torch.tensor(-20.0), torch.tensor(20.0))
    before = agent.log_alpha.detach().clone()
    agent.alpha_optim.zero_grad()
    agent.alpha_loss(log_prob, task).backward()
    agent.alpha_optim.step()
    delta = agent.log_alpha.detach() - before
    assert (delta[:5] < 0).all() and (delta[5:] > 0).all()


def test_updates_fit_the_critic_to_a_fixed_batch():
    agent = make_agent(lr=1e-3)
    batch = make_batch()
    first = agent.update(batch)[0].item()
    for _ in range(150):
        last = agent.update(batch)[0].item()
    assert last < 0.5 * first


def test_max_q_value_clips_targets_and_predictions():
    batch = make_batch()
    huge = dataclasses.replace(batch, reward=torch.full_like(batch.reward, 1e4))
    free, _ = make_agent().critic_loss(huge)
    clipped_agent = make_agent(max_q_value=50.0)
    clipped, _ = clipped_agent.critic_loss(huge)
    with torch.no_grad():
        q = clipped_agent.q_values(batch.obs, batch.action, batch.task).clamp(-50, 50)
    # every target is clipped to 50: the loss is that of the (clipped) predictions against 50
    torch.testing.assert_close(clipped, (0.5 * (q - 50).pow(2).sum(0)).mean())
    assert free > 100 * clipped
    assert torch.equal(make_agent().critic_loss(batch)[0], make_agent(max_q_value=1e9).critic_loss(batch)[0])


def test_task_weights_are_softmax_of_negative_log_alpha():
    agent = make_agent(use_task_weights=True)
    with torch.no_grad():
        agent.log_alpha.copy_(torch.linspace(-1, 1, 10))
    weights = agent.task_weights()
    torch.testing.assert_close(weights.sum(), torch.tensor(10.0))
    assert (weights.diff() < 0).all()
    assert torch.equal(make_agent().task_weights(), torch.ones(10))


def test_target_critic_follows_by_polyak():
    agent = make_agent()
    target_before = [p.clone() for p in agent.target_critic.parameters()]
    agent.update(make_batch())
    for before, target, online in zip(
        target_before, agent.target_critic.parameters(), agent.critic.parameters(), strict=True
    ):
        torch.testing.assert_close(target, before + 0.005 * (online - before))


def test_initial_temperature_and_parameter_counts():
    agent = make_agent()
    torch.testing.assert_close(agent.log_alpha.exp(), torch.ones(10))
    assert agent.parameter_counts() == (
        49 * 32 + 32 + 2 * (32 * 32 + 32) + 10 * (32 * 8 + 8),
        53 * 32 + 32 + 2 * (32 * 32 + 32) + 10 * (32 + 1),
    )
    assert math.isclose(agent.target_entropy, -4.0)
