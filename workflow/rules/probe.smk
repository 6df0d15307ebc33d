rule probe:
    """Plasticity metrics of every probe checkpoint of a run, on its own probe batch (CPU is enough)."""
    input:
        train=RESULTS / "runs" / "{run}" / "train.h5",
    output:
        RESULTS / "runs" / "{run}" / "plasticity.h5",
    params:
        run=run_identity,
        code=CODE["probe"],
    log:
        RESULTS / "logs" / "probe" / "{run}.log",
    benchmark:
        RESULTS / "benchmarks" / "probe" / "{run}.tsv"
    threads: probe_threads
    resources:
        runtime=probe_runtime,
        mem_mb=probe_mem_mb,
    conda:
        ENV
    script:
        "../scripts/probe.py"
