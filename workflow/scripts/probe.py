"""Rule probe: plasticity metrics of a run's checkpoints, with the provenance they were made under."""

from pathlib import Path

from _adapter import logged

with logged(snakemake.log[0]):
    from mtrl.files.checkpoints import remove_quietly, write_failure
    from mtrl.files.provenance import provenance_record
    from mtrl.files.result_files import provenance_attrs, read_provenance
    from mtrl.probe.probing import probe_run

    run_dir = Path(snakemake.input.train).parent
    out = Path(snakemake.output[0])
    tmp = out.with_name(f".{out.name}.partial")
    probe_run(run_dir, tmp)
    trained = read_provenance(snakemake.input.train)
    try:
        provenance_attrs(
            tmp,
            provenance_record(
                snakemake.params.run,
                snakemake.params.code,
                "cpu",
                train_code=trained.get("provenance_code", ""),
            ),
        )
        tmp.replace(out)
    except OSError as exc:  # a full or read-only disk: named in one line, no partial file left
        remove_quietly(tmp)
        raise write_failure(out, exc) from None
