"""The smoke pipeline's time from empty results, recorded with the machine and its load.

Runs `make smoke`'s Snakemake command (profiles/local, config/smoke.yaml, 2 cores) with its results
and figures redirected into an emptied scratch folder (benchmarks/tmp/smoke) and, unless
--warm-cache, an empty mtrl cache (Meta-World's goal variations and the matched widths, as on a new
machine's first `make smoke`). Appends one row to benchmarks/results/smoke.csv: wall time, jobs,
training runs, the CPU seconds of all its processes, cores, CPU model, and the 1-minute load average
before and during the run (during: sampled every few seconds; it counts the smoke's own jobs too,
up to --cores of it). The README states the smoke's time and job count of the row it cites by date
and commit (tests/test_smoke_benchmark.py checks that row, so a new row never breaks the suite): run
this on an otherwise idle machine, then copy the sentence it prints into the README.

.venv/bin/python benchmarks/smoke_time.py            # the smoke, as `make smoke` runs it
.venv/bin/python benchmarks/smoke_time.py --cores 4  # another core count (the row records it)

Started by a Python without Snakemake (the system's), it runs itself again with the repository's
.venv/bin/python, or says in one line to run `make install` first.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "smoke.csv"
SCRATCH = ROOT / "benchmarks" / "tmp" / "smoke"
FIELDS = [
    "date",
    "commit",
    "config",
    "cores",
    "wall_s",
    "jobs",
    "runs",
    "cpu_s",
    "cache",
    "load_before",
    "load_during",
    "load_max",
    "cpu_count",
    "cpu_model",
]
LOAD_EVERY_S = 5.0


def job_stats(output: str) -> dict[str, int]:
    """Snakemake's first 'Job stats' table (jobs per rule, and 'total') from its output."""
    table = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    counts: dict[str, int] = {}
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"\s*(\S+)\s+(\d+)\s*", line)
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def all_done(output: str) -> bool:
    """Whether Snakemake reported every step of its DAG done ('N of N steps (100%) done')."""
    return re.search(r"(\d+) of \1 steps \(100%\) done", output) is not None


def minutes_seconds(wall_s: float) -> str:
    """'12 min 5 s': how the README states a time."""
    total = round(wall_s)
    return f"{total // 60} min {total % 60} s"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


class LoadSampler:
    """The 1-minute load average every LOAD_EVERY_S seconds while the smoke runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(LOAD_EVERY_S):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


CITED = re.compile(
    r"It takes (\d+ min \d+ s) for its (\d+) jobs \((\d+) training runs\)"
    r".*?the row of\s+(\S+), commit\s+(\w+)\)",
    re.S,
)


def readme_sentence(row: dict[str, object]) -> str:
    """What the README says of a row: its time and jobs, and which row it is (date and commit)."""
    return (
        f"It takes {minutes_seconds(float(str(row['wall_s'])))} for its {row['jobs']} jobs "
        f"({row['runs']} training runs) on an otherwise idle {row['cpu_count']}-core CPU "
        f"({row['cpu_model']}; load average {float(str(row['load_during'])):.1f} during the run, its own "
        f"jobs included; {float(str(row['cpu_s'])) / 60:.0f} CPU-minutes), after the install, from empty "
        f"`results/smoke` and a {row['cache']} cache (`benchmarks/results/smoke.csv`, the row of "
        f"{row['date']}, commit {str(row['commit']).split('+')[0]})"
    )


def cited_row(rows: list[dict[str, str]], readme: str) -> tuple[re.Match[str], dict[str, str]]:
    """The README's sentence on the smoke's time and the row of smoke.csv it cites (by date and
    commit); a ValueError naming what is missing."""
    stated = CITED.search(readme)
    if stated is None:
        raise ValueError("README: no sentence 'It takes ... (..., the row of DATE, commit C)'")
    date_, commit_ = stated.group(4), stated.group(5)
    found = [row for row in rows if row["date"] == date_ and row["commit"].split("+")[0] == commit_]
    if len(found) != 1:
        raise ValueError(f"smoke.csv: {len(found)} rows of {date_}, commit {commit_} (the README cites one)")
    return stated, found[0]


def venv_python(executable: Path, root: Path) -> Path | None:
    """The repository's .venv Python when `executable` has no Snakemake beside it (a system Python),
    None when it has, or when there is no .venv either."""
    if (executable.parent / "snakemake").exists():
        return None
    python = root / ".venv" / "bin" / "python"
    return python if (python.parent / "snakemake").exists() and python.exists() else None


def snakemake_command(args: argparse.Namespace) -> list[str]:
    """`make smoke`'s command, with results and figures in the scratch folder."""
    return [
        str(Path(sys.executable).parent / "snakemake"),
        "--profile",
        "profiles/local",
        "--cores",
        str(args.cores),
        "--configfile",
        str(args.configfile),
        "--config",
        f"results_dir={args.scratch / 'results'}",
        f"figures_dir={args.scratch / 'figures'}",
    ]


def run_smoke(args: argparse.Namespace, env: dict[str, str]) -> tuple[dict[str, object], str, int]:
    """Run the smoke once from empty results; its row (without machine fields), output and exit code."""
    shutil.rmtree(args.scratch, ignore_errors=True)
    args.scratch.mkdir(parents=True)
    log = args.scratch / "snakemake.log"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with LoadSampler() as load, open(log, "w") as handle:
        proc = subprocess.run(
            snakemake_command(args), cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    wall_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = log.read_text()
    stats = job_stats(output)
    samples = load.samples or [load_before]
    row = {
        "wall_s": round(wall_s, 1),
        "jobs": stats.get("total", 0),
        "runs": stats.get("train", 0),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
        "load_before": round(load_before, 2),
        "load_during": round(sum(samples) / len(samples), 2),
        "load_max": round(max(samples), 2),
    }
    return row, output, proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2, help="Snakemake's --cores (make smoke: 2)")
    parser.add_argument("--configfile", type=Path, default=Path("config/smoke.yaml"))
    parser.add_argument("--scratch", type=Path, default=SCRATCH, help="emptied, then holds the results")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the CSV the row is appended to")
    parser.add_argument("--warm-cache", action="store_true", help="keep the user's mtrl cache")
    args = parser.parse_args(argv)
    args.scratch = args.scratch.resolve()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="mtrl-smoke-cache-") as cache:
        if not args.warm_cache:
            env["MTRL_CACHE_DIR"] = cache
        row, output, code = run_smoke(args, env)
    if code != 0 or not all_done(output):
        log = args.scratch / "snakemake.log"
        print(f"mtrl: error: {log}: the smoke failed (exit {code}); no row recorded")
        return code or 1
    row.update(
        date=date.today().isoformat(),
        commit=commit(),
        config=str(args.configfile),
        cores=args.cores,
        cache="warm" if args.warm_cache else "cold",
        cpu_count=os.cpu_count(),
        cpu_model=cpu_model(),
    )
    from throughput import append_rows  # imports torch: only once there is a row to write

    append_rows(args.out, FIELDS, [row])
    print(row)
    print(f"README: {readme_sentence(row)}")
    return 0


def run_in_venv(argv: list[str]) -> int | None:
    """Run this script again with the repository's .venv Python when the one running it has no
    Snakemake; an exit code when it cannot or did, None to go on here."""
    if (Path(sys.executable).parent / "snakemake").exists():
        return None
    python = venv_python(Path(sys.executable), ROOT)
    if python is None:
        print(
            "mtrl: error: snakemake: not found beside this Python nor in .venv; run `make install`, then "
            ".venv/bin/python benchmarks/smoke_time.py",
            file=sys.stderr,
        )
        return 2
    return subprocess.run([str(python), __file__, *argv], check=False).returncode


if __name__ == "__main__":
    code = run_in_venv(sys.argv[1:])
    sys.exit(main() if code is None else code)
