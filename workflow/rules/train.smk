rule train:
    """Train one grid point; resumes from checkpoints/resume.pt if a previous attempt was stopped.

    Each attempt is capped at max_runtime_minutes; signal_minutes before the limit the script sends
    the trainer SIGUSR1, it writes its resume checkpoint at the next episode boundary and exits 75,
    and Snakemake resubmits it (retries: as many attempts as the longest run needs).
    """
    output:
        RESULTS / "runs" / "{run}" / "train.h5",
    params:
        run=run_identity,
        code=CODE["train"],
    log:
        RESULTS / "logs" / "train" / "{run}.log",
    benchmark:
        RESULTS / "benchmarks" / "train" / "{run}.tsv"
    threads: train_job_threads
    group:
        train_group
    resources:
        gpu=train_gpu,
        gres=train_gres,
        runtime=train_runtime,
        mem_mb=train_job_mem_mb,
    retries: TRAIN_RETRIES
    conda:
        ENV
    script:
        "../scripts/train.py"

