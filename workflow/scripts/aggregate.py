"""Rule aggregate: one figure's tidy table from its runs, refusing runs of other settings or code, and
result files that are not whole (whatever allow_stale says: they cannot be read)."""

import json

from _adapter import fail, logged

with logged(snakemake.log[0]):
    from absl import logging as absl_logging

    from mtrl.files.integrity import file_sha256
    from mtrl.files.provenance import provenance_record
    from mtrl.study.status import stale_inputs
    from mtrl.tables import RunRef, aggregate

    figure, expected = snakemake.wildcards.figure, snakemake.params.expected
    plasticity = any(str(path).endswith("plasticity.h5") for path in snakemake.input)
    problems = stale_inputs(expected, plasticity)
    damaged = [status.damaged for status in problems if status.damaged]
    if damaged:
        more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
        fail(f"{damaged[0]}: cannot aggregate {figure} from it{more}; rerun the workflow to make it again")
    stale = [status.line() for status in problems]
    if stale and not expected["allow_stale"]:
        fail(
            f"{figure}: {len(stale)} input run(s) were made by other settings or code than the "
            "workflow runs now (rerun them, or set allow_stale: true):\n  " + "\n  ".join(stale)
        )
    absl_logging.set_verbosity(absl_logging.WARNING)  # rliable's "Calculating estimates for x ..." per call
    runs = [RunRef(**ref) for ref in snakemake.params.runs]
    table = aggregate(
        figure,
        runs,
        reps=snakemake.params.reps,
        statistic=snakemake.params.statistic,
        extensions=snakemake.params.extensions,
        x_placement=snakemake.params.x_placement,
    )
    table.to_csv(snakemake.output.table, index=False)
    record = provenance_record(
        None,
        snakemake.params.code,
        "cpu",
        train_code=expected["train_code"],
        probe_code=expected["probe_code"],
        runs=expected["runs"],
        stale_allowed=stale,
    )
    with open(snakemake.output.provenance, "w") as handle:
        as_data = {
            key.removeprefix("provenance_"): json.loads(value) if value[:1] in ("[", "{") else value
            for key, value in record.items()
        }
        as_data["table_sha256"] = file_sha256(snakemake.output.table)  # checked where it is read
        json.dump(as_data, handle, indent=1, sort_keys=True)
