rule aggregate:
    """A figure's tidy table: IQM with stratified-bootstrap 95% CIs (rliable) over its runs."""
    input:
        figure_inputs,
    output:
        RESULTS / "tables" / "{figure}.csv",
    params:
        runs=figure_runs,
        reps=config["bootstrap_reps"],
        code=CODE["aggregate"],
    log:
        RESULTS / "logs" / "aggregate" / "{figure}.log",
    benchmark:
        RESULTS / "benchmarks" / "aggregate" / "{figure}.tsv"
    conda:
        ENV
    script:
        "../scripts/aggregate.py"
