"""Learning parity with the authors' code: their MTMHSAC (rainx0r/metaworld-algorithms, from a checkout
the user gives, installed into its own environment by benchmarks/install_authors.sh) and ours, trained
with the same settings and seeds count, logged the same way, compared with the authors' statistic.

    python benchmarks/parity.py --size cpu --authors-code CHECKOUT   # run what is missing, then collect
    python benchmarks/parity.py --size cpu collect                    # CSVs, figure, verdict only
    python benchmarks/parity.py --size paper --authors-code CHECKOUT --total-steps 2000000  # GPU node

Runs go to benchmarks/tmp/parity/<size>/ (git-ignored; a rerun skips finished runs); the results to
benchmarks/results/parity_<size>_{evals,train,verdict}.csv and parity_<size>.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parity_record import SIDES, RunSpec  # noqa: E402
from parity_runs import Launcher, run_all  # noqa: E402

from mtrl.envs.cores import cpu_model  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INSTALL = HERE / "install_authors.sh"


TASKS = {"mt1": 1, "mt10": 10}


@dataclass(frozen=True)
class Size:
    """One parity configuration; `final_evals` = the evaluations averaged per run for the verdict."""

    width: int
    batch_per_task: int
    total_steps: int
    eval_every: int
    eval_episodes: int
    seeds: int
    final_evals: int
    depth: int = 3
    buffer_total: int = 1_000_000
    warmup_vector_steps: int = 4_000
    task_set: str = "mt10"  # or "mt1" (reach-v3): the tests' toy size
    threads: int = 1
    device: str = "cpu"  # ours' device: "cpu", or "auto" on a GPU node

    def spec(self, side: str, seed: int) -> RunSpec:
        return RunSpec(
            side=side,
            seed=seed,
            task_set=self.task_set,
            num_tasks=TASKS[self.task_set],
            width=self.width,
            depth=self.depth,
            batch_per_task=self.batch_per_task,
            buffer_total=self.buffer_total,
            warmup_vector_steps=self.warmup_vector_steps,
            total_steps=self.total_steps,
            eval_every=self.eval_every,
            eval_episodes=self.eval_episodes,
            threads=self.threads,
            device=self.device,
        )

    def specs(self) -> list[RunSpec]:
        """Seed by seed, ours then theirs: two at a time, both sides are always equally far."""
        return [self.spec(side, seed) for seed in range(self.seeds) for side in SIDES]


SIZES = {
    # fits a shared 2-core CPU in ~2.5 hours (16 runs, 6 at a time, one thread each): MT10, width 128,
    # 32 transitions per task per update, 150k transitions, 5 episodes per task every 25k
    "cpu": Size(
        width=128,
        batch_per_task=32,
        total_steps=150_000,
        eval_every=25_000,
        eval_episodes=5,
        seeds=8,
        final_evals=3,
    ),
    # the paper's MT10 MTMHSAC (width 400, batch 1280, 2e7 transitions, evaluation every 200k with
    # 50 episodes per task): a GPU node's job; --total-steps runs a stated fraction
    "paper": Size(
        width=400,
        batch_per_task=128,
        total_steps=20_000_000,
        eval_every=200_000,
        eval_episodes=50,
        seeds=5,
        final_evals=3,
        threads=4,
        device="auto",
    ),
}


def authors_python(checkout: str | None, venv: Path) -> str | None:
    """Their environment's Python, installed from `checkout` by install_authors.sh (reused when complete)."""
    if checkout is None:
        return None
    if not Path(checkout, "metaworld_algorithms").is_dir():
        raise SystemExit(f"parity: {checkout} is not a checkout of rainx0r/metaworld-algorithms")
    if subprocess.run(["bash", str(INSTALL), checkout, str(venv)]).returncode != 0:
        raise SystemExit(f"parity: installing the authors' code from {checkout} failed (see above)")
    return str(venv / "bin" / "python")


def git_commit(path: Path) -> str:
    """`git describe --always --dirty` of the repository whose top is `path`, or "unknown" (an export
    without .git, which may lie inside another repository, as benchmarks/tmp/ does in this one)."""
    if not (path / ".git").exists():
        return "unknown"
    result = subprocess.run(
        ["git", "-C", str(path), "describe", "--always", "--dirty", "--abbrev=40"],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def write_provenance(root: Path, checkout: str | None, authors_commit: str | None) -> None:
    """provenance.json of a set of runs, written once when they start: both code bases' commits, the
    machine and its load (a `git archive` export has no commit: give it with --authors-commit)."""
    path = root / "provenance.json"
    if path.exists():
        return
    root.mkdir(parents=True, exist_ok=True)
    record = {
        "ours_commit": git_commit(ROOT),
        "authors_commit": authors_commit or (git_commit(Path(checkout)) if checkout else "unknown"),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "load_at_start": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    path.write_text(json.dumps(record, indent=1))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", nargs="?", choices=("all", "run", "collect"), default="all")
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--authors-code", help="checkout of rainx0r/metaworld-algorithms")
    parser.add_argument("--authors-commit", help="the checkout's commit, where it is an export without .git")
    parser.add_argument("--authors-venv", type=Path, default=HERE / "tmp" / "authors-venv")
    parser.add_argument("--runs-dir", type=Path, default=HERE / "tmp" / "parity")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    parser.add_argument("--seeds", type=int, help="seeds per side (default: the size's)")
    parser.add_argument("--total-steps", type=int, help="transitions per run (default: the size's)")
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated: ours,authors")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    size = SIZES[args.size]
    size = replace(size, seeds=args.seeds or size.seeds, total_steps=args.total_steps or size.total_steps)
    sides = tuple(args.sides.split(","))
    if not set(sides) <= set(SIDES):
        raise SystemExit(f"parity: --sides: only {', '.join(SIDES)}, got {args.sides}")
    root = args.runs_dir / args.size
    failures: list[str] = []
    if args.action in ("all", "run"):
        if "authors" in sides and args.authors_code is None:
            raise SystemExit("parity: the authors' runs need --authors-code CHECKOUT (or --sides ours)")
        launcher = Launcher(sys.executable, authors_python(args.authors_code, args.authors_venv))
        specs = [s for s in size.specs() if s.side in sides]
        write_provenance(root, args.authors_code, args.authors_commit)
        failures = run_all(specs, root, launcher, args.jobs)
    if args.action in ("all", "collect"):
        from parity_report import collect

        collect(size, args.size, root, args.results_dir)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
