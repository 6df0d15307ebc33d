"""The SAC update as one CUDA graph (config `update_mode: graph`).

`StaticUpdate` runs the agent's `learn` on fixed-address inputs: sample indices and policy noise are
drawn outside into static buffers (the same numbers, in the same order, as the eager update draws)
and the batch is gathered inside, so that on a GPU the whole update (critic, actor, temperature,
Adam steps, clipping, Polyak) is captured once and replayed: one launch instead of hundreds. On a
CPU the same body runs uncaptured. The agent sees two calls: `adam_options` when it builds its
optimisers, and `StaticUpdate(agent, buffer, per_task).run(generator)` per update.
`FixedBatchUpdate(agent, batch).run()` is the same update on a batch held fixed (benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from mtrl.agents.buffers import Batch, MultiTaskReplayBuffer

GRAPH_WARMUP_UPDATES = 3  # uncaptured updates on a side stream before capture (then undone)


def update_phase(name: str) -> torch.profiler.record_function:
    """A named range of one update in profiler traces (`benchmarks/update_ops.py` counts ops per phase);
    host-side only, so a captured graph holds the same kernels with or without it."""
    return torch.profiler.record_function(f"update/{name}")


def adam_options(update_mode: str, device: torch.device) -> dict[str, Any]:
    """Fused Adam; a captured one keeps its step count on the device (`capturable`), eager is unchanged."""
    return {"fused": True, "capturable": update_mode != "eager" and device.type == "cuda"}


class Learner(Protocol):
    """What a captured update needs of the agent (`mtrl.agents.sac.MultiTaskSAC` is one): its device
    and action size, its noise draw, the update body, its parameters and optimisers."""

    device: torch.device
    action_dim: int

    def draw_noise(self, batch_size: int, out: Tensor | None = None) -> Tensor: ...

    def learn(self, batch: Batch, next_noise: Tensor, noise: Tensor) -> Tensor: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...

    def optimizers(self) -> tuple[torch.optim.Optimizer, ...]: ...


class CapturedUpdate:
    """Static policy noise and the captured graph of `learn`; subclasses say where the batch comes from."""

    def __init__(self, agent: Learner, batch_size: int) -> None:
        self.agent, self.device = agent, agent.device
        # the policy noise of the TD target and of the actor loss
        self.next_noise = torch.empty(batch_size, agent.action_dim, device=self.device)
        self.noise = torch.empty(batch_size, agent.action_dim, device=self.device)
        self.out: Tensor | None = None  # the metrics the captured graph writes
        self.graph: torch.cuda.CUDAGraph | None = None

    def _batch(self) -> Batch:
        raise NotImplementedError

    def _update(self) -> Tensor:
        """Noise drawn into the static inputs (as eager draws it), then one update: the graph replayed
        on a GPU (captured on first use), the uncaptured body on a CPU. Returns METRICS anew."""
        self.agent.draw_noise(len(self.noise), out=self.next_noise)
        self.agent.draw_noise(len(self.noise), out=self.noise)
        if self.device.type != "cuda":
            return self._learn()
        if self.graph is None:
            self._capture()
        assert self.graph is not None and self.out is not None
        self.graph.replay()
        return self.out.clone()

    def _learn(self) -> Tensor:
        return self.agent.learn(self._batch(), self.next_noise, self.noise)

    def _capture(self) -> None:
        """Warm up on a side stream (as CUDA graph capture requires), undo it, then capture `learn`."""
        saved = _snapshot(self.agent)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP_UPDATES):
                self._learn()
        torch.cuda.current_stream(self.device).wait_stream(side)
        _restore(self.agent, saved)
        for optim in self.agent.optimizers():
            optim.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = self._learn()


class StaticUpdate(CapturedUpdate):
    """The training update: sample indices drawn into a static buffer, the batch gathered inside."""

    def __init__(self, agent: Learner, buffer: MultiTaskReplayBuffer, per_task: int) -> None:
        super().__init__(agent, buffer.num_tasks * per_task)
        self.buffer = buffer
        self.idx = torch.zeros(buffer.num_tasks, per_task, dtype=torch.long, device=self.device)

    def fits(self, buffer: MultiTaskReplayBuffer, per_task: int) -> bool:
        """Whether this update's static inputs serve `buffer` sampled `per_task` rows per task."""
        return self.buffer is buffer and self.idx.shape[1] == per_task

    def run(self, generator: torch.Generator) -> Tensor:
        """Draw indices (with `generator`) into the static buffer, then the update (`_update`)."""
        self.buffer.sample_indices(self.idx.shape[1], generator, out=self.idx)
        return self._update()

    def _batch(self) -> Batch:
        with update_phase("gather"):
            return self.buffer.gather(self.idx)


class FixedBatchUpdate(CapturedUpdate):
    """The update on one batch whose tensors the caller keeps (fixed addresses): no sampling, no
    gather. What the authors' JAX anchor times (`benchmarks/gpu.py`: the like-for-like ratio)."""

    def __init__(self, agent: Learner, batch: Batch) -> None:
        super().__init__(agent, len(batch.task))
        self.batch = batch

    def run(self) -> Tensor:
        return self._update()

    def _batch(self) -> Batch:
        return self.batch


def _snapshot(agent: Learner) -> tuple[list[Tensor], list[dict]]:
    """Copies of the agent's parameters (targets and temperatures included) and optimiser states."""
    params = [t.detach().clone() for t in agent.parameters()]
    states = [
        {p: {k: v.clone() for k, v in st.items()} for p, st in optim.state.items()}
        for optim in agent.optimizers()
    ]
    return params, states


@torch.no_grad()
def _restore(agent: Learner, saved: tuple[list[Tensor], list[dict]]) -> None:
    """Put a `_snapshot` back in place (the graph reads these addresses); optimiser state the warm-up
    created is zeroed, as a fresh Adam's is."""
    params, states = saved
    torch._foreach_copy_([t.detach() for t in agent.parameters()], params)
    for optim, before in zip(agent.optimizers(), states, strict=True):
        for p, state in optim.state.items():
            for key, value in state.items():
                if p in before:
                    value.copy_(before[p][key])
                else:
                    value.zero_()
