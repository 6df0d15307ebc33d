rule train:
    """Train one grid point; resumes from checkpoints/resume.pt if a previous attempt was killed."""
    output:
        RESULTS / "runs" / "{run}" / "train.h5",
    params:
        config=train_config,
        code=CODE["train"],
    log:
        RESULTS / "logs" / "train" / "{run}.log",
    benchmark:
        RESULTS / "benchmarks" / "train" / "{run}.tsv"
    threads: train_threads
    resources:
        gpu=config["train_resources"]["gpu"],
        runtime=train_runtime,
        mem_mb=train_mem_mb,
    conda:
        ENV
    script:
        "../scripts/train.py"
