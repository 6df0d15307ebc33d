"""`make report` / `make smoke-report`: Snakemake's report command, with one line instead of its
traceback when the figures it would hold do not exist yet (no study run, or not all of it).

python -m mtrl.study.report_check REPORT "WHAT TO RUN FIRST" snakemake --report REPORT ...
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence

MISSING = re.compile(r"File (\S+) (?:is )?marked for report but does not exist")


def missing_line(output: str, report: str, run_first: str) -> str | None:
    """The one line for Snakemake's output when a file marked for the report does not exist, else None."""
    found = MISSING.search(output)
    if found is None:
        return None
    return (
        f"mtrl: error: {report}: no results yet ({found.group(1)} does not exist); run {run_first} first, "
        "then this again"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; pass its output through, or say in one line what is missing."""
    report, run_first, *command = sys.argv[1:] if argv is None else argv
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    line = missing_line(proc.stdout + proc.stderr, report, run_first) if proc.returncode else None
    if line is not None:
        print(line, file=sys.stderr)
        return 2
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
