rule probe:
    """Plasticity metrics of every probe checkpoint of a run, on its own probe batch (CPU is enough)."""
    input:
        RESULTS / "runs" / "{run}" / "train.h5",
    output:
        RESULTS / "runs" / "{run}" / "plasticity.h5",
    params:
        code=CODE["probe"],
    log:
        RESULTS / "logs" / "probe" / "{run}.log",
    benchmark:
        RESULTS / "benchmarks" / "probe" / "{run}.tsv"
    resources:
        runtime=config["probe_resources"]["runtime_minutes"],
        mem_mb=config["probe_resources"]["mem_mb"],
    conda:
        ENV
    script:
        "../scripts/probe.py"
