rule aggregate:
    """A figure's tidy table: success IQM (config `success_statistic`) or plasticity mean, 95% bootstrap CIs.

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
        statistic=config["success_statistic"],
        extensions=lambda wildcards: EXTENSIONS[wildcards.figure],
        x_placement=config["x_placement"],
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
