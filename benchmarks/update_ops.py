"""Ops of one SAC update per phase (critic, actor, alpha, Polyak, clipping, ...), counted on a CPU.

    python benchmarks/update_ops.py --label after                    # MT10, width 400, graph mode
    python benchmarks/update_ops.py --modes graph compiled --sequence # and print each phase's ops

On a CPU, `graph` mode runs the body the CUDA graph captures on a GPU, uncaptured (mtrl.agents.capture),
so torch.profiler sees the op sequence of the captured graph. An op counted is a dispatcher-level
aten op that is not a view (views launch nothing), plus each kernel a compiled body (`compiled`
mode) runs; on a GPU each is about one kernel launch: `baddbmm` is two (bias copy, GEMM), the
`*_backward` ops that zero-fill first are two, and a `_foreach_*` or fused-Adam op is one multi-tensor
launch per chunk of tensors. Phases are the `update/<phase>` ranges of `learn` (`update_phase`).

Writes (replacing rows of the same label, mode, arch and width) benchmarks/results/update_ops.csv.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch._dynamo
import torch._functorch.config
import torch._inductor.config
from throughput import agent_with_random_buffer  # benchmarks/ is the script's folder
from torch.autograd.profiler_util import FunctionEvent

from mtrl.config.settings import TrainConfig
from mtrl.envs.cores import cpu_model

RESULTS = Path(__file__).parent / "results" / "update_ops.csv"
FIELDS = ["label", "mode", "arch", "width", "phase", "ops", "machine", "measured_on"]
# Ops that only make a new view of existing memory (or nothing at all) when their children do too.
VIEWS = {
    f"aten::{name}"
    for name in [
        *("view", "_unsafe_view", "reshape", "_reshape_alias", "as_strided", "as_strided_", "expand"),
        *("expand_as", "view_as", "squeeze", "squeeze_", "unsqueeze", "unsqueeze_", "t", "transpose"),
        *("permute", "select", "slice", "chunk", "split", "unbind", "narrow", "flatten", "detach"),
        *("alias", "lift_fresh", "to", "contiguous", "empty", "empty_like", "empty_strided"),
        *("resolve_conj", "resolve_neg", "result_type"),
    ]
}
SYNCS = ("item", "_local_scalar_dense")  # a device-to-host copy: the host waits for the device
PHASE = "update/"


def is_view(event: FunctionEvent) -> bool:
    return event.name in VIEWS and all(is_view(child) for child in aten_children(event))


def aten_children(event: FunctionEvent) -> list[FunctionEvent]:
    """The first aten ops below `event` (through non-aten ranges such as autograd nodes)."""
    found: list[FunctionEvent] = []
    for child in event.cpu_children:
        found += [child] if child.name.startswith("aten::") else aten_children(child)
    return found


def is_kernel(event: FunctionEvent) -> bool:
    """A kernel a compiled body runs (inductor's generated C++ or Triton kernels)."""
    return "cpp_fused_" in event.name or event.name.startswith("triton_")


def counted_ops(event: FunctionEvent) -> Iterable[FunctionEvent]:
    """The ops of `event`'s subtree that count: the top-level non-view aten ops and compiled kernels."""
    if is_kernel(event) or (event.name.startswith("aten::") and not is_view(event)):
        yield event
        return
    if event.name.startswith("aten::"):
        return  # a view whose children are views too
    for child in event.cpu_children:
        yield from counted_ops(child)


def phase_of(event: FunctionEvent) -> str:
    """The innermost `update/<phase>` range around `event` ("outside" when none)."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(PHASE):
            return parent.name[len(PHASE) :]
        parent = parent.cpu_parent
    return "outside"


def profile_update(agent, buffer, generator) -> list[FunctionEvent]:
    """The profiler events of one `update_from_buffer` call (after the caller's warm-up)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        agent.update_from_buffer(buffer, agent.config.batch_per_task, generator)
    return list(prof.events())


def ops_by_phase(events: list[FunctionEvent]) -> dict[str, list[str]]:
    """Counted op names of one update by phase, in the order they ran."""
    phases: dict[str, list[str]] = {}
    for root in (e for e in events if e.cpu_parent is None):
        for op in counted_ops(root):
            phases.setdefault(phase_of(op), []).append(op.name.removeprefix("aten::"))
    return phases


def count(config: TrainConfig, warmup: int = 3) -> dict[str, list[str]]:
    """Ops by phase of one update of `config` on a CPU, after `warmup` updates (and compilation)."""
    # compiled kernels named in the profile: compiled afresh (dynamo keeps compiled code per function,
    # across agents), never code cached without the names
    torch._dynamo.reset()
    agent, buffer, generator = agent_with_random_buffer(config, torch.device("cpu"))
    profiled = torch._inductor.config.patch({"cpp.enable_kernel_profile": True, "fx_graph_cache": False})
    with profiled, torch._functorch.config.patch(enable_autograd_cache=False):
        for _ in range(warmup):
            agent.update_from_buffer(buffer, config.batch_per_task, generator)
        return ops_by_phase(profile_update(agent, buffer, generator))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="current", help="names this code version in the CSV")
    parser.add_argument("--task-set", default="mt10")
    parser.add_argument("--arch", default="mtmhsac")
    parser.add_argument("--width", type=int, default=400, help="op counts do not depend on it")
    parser.add_argument("--modes", nargs="+", default=["graph"], choices=["eager", "graph", "compiled"])
    parser.add_argument("--sequence", action="store_true", help="print each phase's ops in order")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def write_rows(rows: list[dict], path: Path) -> None:
    """Replace rows of the same label, mode, arch and width; keep the others."""
    key = lambda r: (r["label"], r["mode"], r["arch"], str(r["width"]))  # noqa: E731
    old = list(csv.DictReader(path.open())) if path.exists() else []
    new_keys = {key(r) for r in rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows([r for r in old if key(r) not in new_keys] + rows)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    machine = f"{cpu_model()}, 1 torch thread, torch {torch.__version__}"
    rows = []
    for mode in args.modes:
        values = {"task_set": args.task_set, "arch": args.arch, "device": "cpu", "update_mode": mode}
        config = TrainConfig.from_dict(values | {"actor_width": args.width, "critic_width": args.width})
        phases = count(config)
        every = [op for names in phases.values() for op in names]
        syncs = sum(op in SYNCS for op in every)
        for phase, ops in [*phases.items(), ("total", every)]:
            rows.append(
                {"label": args.label, "mode": mode, "arch": args.arch, "width": args.width, "phase": phase}
                | {"ops": len(ops), "machine": machine, "measured_on": time.strftime("%Y-%m-%d")}
            )
            print(f"{args.label:8s} {mode:8s} {phase:16s} {len(ops):4d}", flush=True)
            if args.sequence and phase != "total":
                print("    " + " ".join(f"{name}x{n}" if n > 1 else name for name, n in _runs(ops)))
        print(f"{args.label:8s} {mode:8s} host syncs       {syncs:4d}", flush=True)
    write_rows(rows, args.out)
    return rows


def _runs(names: list[str]) -> list[tuple[str, int]]:
    """Consecutive repeats collapsed: [a, a, b] -> [(a, 2), (b, 1)]."""
    out: list[tuple[str, int]] = []
    for name in names:
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1] + 1)
        else:
            out.append((name, 1))
    return out


if __name__ == "__main__":
    main()
