rule aggregate:
    """A figure's tidy table: IQM with stratified-bootstrap 95% CIs (rliable) over its runs.

    Refuses input runs whose recorded provenance (settings, code hash) differs from the current
    ones, naming them, unless allow_stale is set; the table's provenance goes beside it (JSON).
    """
    input:
        figure_inputs,
    output:
        table=RESULTS / "tables" / "{figure}.csv",
        provenance=RESULTS / "tables" / "{figure}.provenance.json",
    params:
        runs=figure_runs,
        reps=config["bootstrap_reps"],
        expected=figure_expected,
        code=lambda wildcards: TABLE_CODE[wildcards.figure],
    log:
        RESULTS / "logs" / "aggregate" / "{figure}.log",
    benchmark:
        RESULTS / "benchmarks" / "aggregate" / "{figure}.tsv"
    conda:
        ENV
    script:
        "../scripts/aggregate.py"
