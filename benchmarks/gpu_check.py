"""Check a GPU node end to end in at most 8 minutes, with or without the authors' JAX update
(`make gpu-check`; on a cluster `srun --gres=gpu:1 make gpu-check`):

1. tests    the GPU tests (captured update == eager for every architecture, RNG states of a CUDA run
            restored from its checkpoint), `pytest tests/test_speed.py` and the resume test on CUDA;
2. resume   a real MT10 width-400 run at the paper's settings (evaluation: 5 episodes per task, not
            50, for time) stopped by SIGTERM, run again: it must say it resumed at the step it
            stopped at, log its next rows from there, keep the rows before it, and stop again later;
3. same     the same short run (the paper's settings, 60,000 transitions) uninterrupted twice and
            stopped + resumed once: the resumed run must equal the uninterrupted one bit for bit
            where the GPU is deterministic (the two uninterrupted runs equal); where it is not,
            it may differ from it no more than 10x the two uninterrupted runs differ;
4. ratio    with --authors-code only (at most 150 s, taken from step 5's time): `benchmarks/gpu.py
            --jax-only`, our update over the authors' jitted JAX update, interleaved, at widths 400,
            1024 and 4096 (graph and compiled, tf32, one round): like for like (ours on a fixed
            batch, as their anchor) and end to end;
5. bench    `benchmarks/gpu.py` in the time left: env, updates, loops (runtime.csv and gpu_share.csv
            rows of this GPU).

Every step has its own time limit, all within --deadline-s. The report, with the GPU model, goes
to benchmarks/results/gpu-check-<gpu>-<date>.json; the runs to benchmarks/tmp/gpu-check/.
Exit 0 when steps 1-3 pass (steps 4 and 5 only measure), 1 when one of them fails, and 2 with the
one line "gpu-check: no GPU: nothing measured ..." where torch sees no CUDA device (no step runs and
no report is written).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PROGRESS = re.compile(r"^\[mtrl\] step ([\d,]+)/")
STOPPED = re.compile(r"stopped at step (\d+),")
RESUMED = re.compile(r"resumed .* at step (\d+)$")
# The paper's MT10 baseline is TrainConfig's default; these only shorten the evaluations.
PAPER_RUN = {"task_set": "mt10", "device": "cuda", "eval_episodes": 5}
SHORT_RUN = {  # 40,000 transitions of warm-up, then 2,000 updates: stopped after about 500 of them
    **PAPER_RUN,
    "total_steps": 60_000,
    "eval_every": 30_000,
    "eval_episodes": 1,
    "log_every": 5_000,
    "probe_checkpoints": 2,
}
SHORT_STOP = 45_000
GPU_TESTS = ["tests/test_speed.py", "tests/test_train.py::test_a_cuda_run_resumes_its_rng_states_on_gpu"]
DEADLINE_S, RATIO_S = 480, 150  # all steps together; the most the JAX comparison may take of them
NONDETERMINISM_FACTOR = 10.0  # resumed-vs-uninterrupted may exceed uninterrupted-vs-uninterrupted by this


def train_command(run_dir: Path, config: Mapping[str, Any]) -> list[str]:
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in config.items()]
    return [sys.executable, "-m", "mtrl.cli", "train", "--out", str(run_dir), *flags]


@dataclass
class Attempt:
    """One `mtrl train` process: its exit code, stderr lines, and the steps it reported."""

    returncode: int
    lines: list[str]
    resumed_at: int | None = None  # from "resumed ... at step N"
    stopped_at: int | None = None  # from "stopped at step N"
    progress: list[int] = field(default_factory=list)  # steps of its progress lines


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def attempt(cmd: list[str], stop_after: int | None, timeout: float) -> Attempt:
    """Run `cmd` (its own process group) until it ends; SIGTERM the group at the first progress line
    at or beyond step `stop_after` (None: never). A process still running at `timeout` is killed."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stderr, lines), daemon=True).start()
    result, deadline, signalled = Attempt(-1, []), time.time() + timeout, False
    while (line := _next_line(lines, deadline)) is not None:
        result.lines.append(line)
        if match := PROGRESS.match(line):
            result.progress.append(int(match.group(1).replace(",", "")))
            if stop_after is not None and result.progress[-1] >= stop_after and not signalled:
                os.killpg(proc.pid, signal.SIGTERM)
                signalled = True
        for pattern, name in ((STOPPED, "stopped_at"), (RESUMED, "resumed_at")):
            if match := pattern.search(line):
                setattr(result, name, int(match.group(1)))
    if proc.poll() is None and time.time() >= deadline:
        os.killpg(proc.pid, signal.SIGKILL)
        result.lines.append(f"gpu-check: killed after its {timeout:.0f} s limit")
    result.returncode = proc.wait()
    return result


def _next_line(lines: queue.Queue, deadline: float) -> str | None:
    try:
        return lines.get(timeout=max(0.0, deadline - time.time()))
    except queue.Empty:
        return None


def stop_and_resume(config: Mapping[str, Any], run_dir: Path, stop_after: int, timeout: float) -> dict:
    """Stop a run after `stop_after` transitions, run it again and stop it at its next progress line:
    it must resume at the step it stopped at and continue its log from there."""
    from mtrl.files import checkpoints as ckpt

    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.time()
    first = attempt(train_command(run_dir, config), stop_after, timeout)
    report: dict[str, Any] = {"first": _summary(first)}
    if first.returncode != 75 or first.stopped_at is None:
        return report | {"ok": False, "why": "the first attempt did not stop with exit 75"}
    before = ckpt.load(ckpt.resume_path(run_dir))["log"]
    second = attempt(train_command(run_dir, config), first.stopped_at + 1, timeout - (time.time() - started))
    report["second"] = _summary(second)
    after = ckpt.load(ckpt.resume_path(run_dir))["log"] if second.returncode == 75 else {}
    checks = {
        "resumed at the step it stopped at": second.resumed_at == first.stopped_at,
        "next progress line after that step": bool(second.progress) and second.progress[0] > first.stopped_at,
        "stopped again later, exit 75": second.returncode == 75
        and (second.stopped_at or 0) > first.stopped_at,
        "rows before the stop kept": bool(after) and _log_prefix(before, after),
    }
    return report | {"checks": checks, "ok": all(checks.values()), "seconds": round(time.time() - started, 1)}


def _summary(run: Attempt) -> dict:
    return {k: v for k, v in asdict(run).items() if k != "lines"} | {"last_lines": run.lines[-3:]}


def _log_prefix(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Every row of the earlier training log is, unchanged, the start of the later one."""
    for key, rows in before.items():
        if isinstance(rows, dict):
            if not _log_prefix(rows, after[key]):
                return False
        elif list(after[key][: len(rows)]) != list(rows):
            return False
    return True


def h5_values(path: Path) -> dict[str, np.ndarray]:
    """The datasets of a train.h5 (timings left out: they differ between any two runs)."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[()])
                if isinstance(obj, h5py.Dataset) and not name.endswith("sps")
                else None
            )
        )
    return out


def difference(a: Path, b: Path) -> float:
    """The largest relative difference between two train.h5 files' values (0.0: bit-identical)."""
    va, vb = h5_values(a), h5_values(b)
    if va.keys() != vb.keys() or any(va[k].shape != vb[k].shape for k in va):
        return float("inf")
    worst = 0.0
    for key in va:
        x, y = va[key].astype(np.float64), vb[key].astype(np.float64)
        if not np.array_equal(x, y, equal_nan=True):
            worst = max(worst, float(np.nanmax(np.abs(x - y) / np.maximum(np.abs(y), 1e-12))))
    return worst


def resume_equals_uninterrupted(
    config: Mapping[str, Any], workdir: Path, stop_after: int, timeout: float
) -> dict:
    """Two uninterrupted runs and one stopped and resumed, concurrently; the resumed one must equal
    the uninterrupted one as far as the device is deterministic."""
    started = time.time()
    dirs = {name: workdir / name for name in ("uninterrupted", "again", "resumed")}
    for path in dirs.values():
        shutil.rmtree(path, ignore_errors=True)
    runs = {
        name: subprocess.Popen(
            train_command(dirs[name], config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT
        )
        for name in ("uninterrupted", "again")
    }
    stopped = attempt(train_command(dirs["resumed"], config), stop_after, timeout)
    left = timeout - (time.time() - started)
    resumed = attempt(train_command(dirs["resumed"], config), None, left)
    codes = {name: _wait(proc, timeout - (time.time() - started)) for name, proc in runs.items()}
    report: dict[str, Any] = {"stopped": _summary(stopped), "resumed": _summary(resumed), "exit": codes}
    if stopped.returncode != 75 or resumed.returncode != 0 or set(codes.values()) != {0}:
        return report | {"ok": False, "why": "a run failed or was not stopped"}
    result = {name: dirs[name] / "train.h5" for name in dirs}
    resumed_diff = difference(result["resumed"], result["uninterrupted"])
    repeat_diff = difference(result["again"], result["uninterrupted"])
    if resumed_diff == 0.0:
        verdict, ok = "bit-identical", True
    elif repeat_diff == 0.0:
        verdict, ok = "the resume changed the numbers (the device is deterministic)", False
    else:
        ok = resumed_diff <= NONDETERMINISM_FACTOR * repeat_diff
        verdict = (
            f"the device is not deterministic: within {NONDETERMINISM_FACTOR:g}x the run-to-run difference"
        )
    report |= {"relative_difference": {"resumed": resumed_diff, "uninterrupted_twice": repeat_diff}}
    return report | {"verdict": verdict, "ok": ok, "seconds": round(time.time() - started, 1)}


def _wait(proc: subprocess.Popen, timeout: float) -> int:
    try:
        proc.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    return proc.returncode


def run_step(cmd: Sequence[str], timeout: float) -> dict:
    """A command with a time limit: its exit code, last output lines and seconds."""
    started = time.time()
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, cwd=ROOT, timeout=max(1.0, timeout))
        code, output = proc.returncode, (proc.stdout + proc.stderr).strip().splitlines()
    except subprocess.TimeoutExpired as exc:
        code, output = 124, [*str(exc.stdout or "").splitlines()[-5:], f"timed out after {timeout:.0f} s"]
    return {
        "exit": code,
        "ok": code == 0,
        "last_lines": output[-8:],
        "seconds": round(time.time() - started, 1),
    }


def machine() -> dict[str, str]:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return {
        "gpu": gpu,
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "python": sys.version.split()[0],
    }


def benchmark_command(args: argparse.Namespace, budget_s: float) -> list[str]:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", args.device]
    cmd += ["--widths", "400", "1024", "4096", "--loop-widths", "400", "1024"]
    return cmd + ["--budget-s", f"{budget_s:.0f}", "--out-dir", str(args.out_dir)]


def ratio_command(args: argparse.Namespace, budget_s: float) -> list[str]:
    """`benchmarks/gpu.py --jax-only`: ours/JAX like for like (and end to end) at 400, 1024 and 4096,
    graph and compiled at tf32, one round."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", args.device, "--jax-only"]
    cmd += ["--authors-code", str(args.authors_code), "--jax-bench", str(args.jax_bench)]
    cmd += ["--jax-python", args.jax_python, "--jax-widths", "400", "1024", "4096", "--jax-rounds", "1"]
    return cmd + ["--budget-s", f"{budget_s:.0f}", "--out-dir", str(args.out_dir)]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cpu runs the same steps on a CPU (slowly)")
    parser.add_argument("--deadline-s", type=float, help=f"all steps together (default {DEADLINE_S} s)")
    parser.add_argument("--authors-code", type=Path, help="checkout of rainx0r/mtrl: adds the JAX update")
    parser.add_argument("--jax-bench", type=Path, help="the anchor script jax_update_bench.py")
    parser.add_argument("--jax-python", default="python", help="a Python with the authors' dependencies")
    parser.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "tmp" / "gpu-check")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.authors_code and not (args.jax_bench and args.jax_bench.is_file()):
        parser.error("--authors-code needs --jax-bench: the path of the anchor script jax_update_bench.py")
    if args.deadline_s is None:
        args.deadline_s = DEADLINE_S
    return args


NO_GPU_EXIT = 2


def step_verdict(result: Mapping[str, Any]) -> str:
    """'ok', 'ok (3 tests skipped)', 'skipped: <why>' or 'FAILED (exit N)': one step's line."""
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    if not result.get("ok"):
        if "why" in result:
            return f"FAILED: {result['why']}"
        return f"FAILED (exit {result['exit']})" if "exit" in result else "FAILED"
    found = re.search(r"(\d+) skipped", " ".join(result.get("last_lines", [])))
    return f"ok ({found.group(1)} tests skipped)" if found else "ok"


def no_gpu_line(device: str, gpu: str) -> str | None:
    """The one line of a GPU check on a machine whose torch sees no GPU; None where there is one (or
    the check was asked to run on another device)."""
    if device != "cuda" or gpu != "no GPU":
        return None
    return (
        "gpu-check: no GPU: nothing measured (torch sees no CUDA device here; on a cluster: "
        "srun --gres=gpu:1 make gpu-check)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    found = machine()
    line = no_gpu_line(args.device, found["gpu"])
    if line is not None:
        print(line, file=sys.stderr)
        return NO_GPU_EXIT
    started = time.time()
    left = lambda reserve=0.0: args.deadline_s - (time.time() - started) - reserve  # noqa: E731
    paper, short = {**PAPER_RUN, "device": args.device}, {**SHORT_RUN, "device": args.device}
    report: dict[str, Any] = {"machine": found, "date": time.strftime("%Y-%m-%d")}
    # `not slow`: the CPU-only compiled-mode checks (minutes of C++ compiling) stay out; GPU tests are in
    tests = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *GPU_TESTS]
    report["tests"] = run_step(tests, min(150, left(300)))
    report["resume"] = stop_and_resume(paper, args.workdir / "paper", 50_000, min(150, left(180)))
    report["same"] = resume_equals_uninterrupted(short, args.workdir / "same", SHORT_STOP, min(150, left(30)))
    if args.authors_code:
        budget = min(RATIO_S, left(20))
        report["ratio"] = run_step(ratio_command(args, budget - 40), budget)
    else:
        report["ratio"] = {"skipped": "no --authors-code"}
    budget = left(20)
    report["bench"] = (
        run_step(benchmark_command(args, budget - 60), budget) if budget > 90 else {"skipped": "no time left"}
    )
    report["seconds"] = round(time.time() - started, 1)
    report["ok"] = all(report[step]["ok"] for step in ("tests", "resume", "same"))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", report["machine"]["gpu"].lower()).strip("-")
    out = args.out_dir / f"gpu-check-{slug}-{report['date']}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    for step in ("tests", "resume", "same", "ratio", "bench"):
        print(f"gpu-check {step:6s} {step_verdict(report[step])}")
    print(f"gpu-check: {'passed' if report['ok'] else 'FAILED'} in {report['seconds']:.0f} s; report {out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
