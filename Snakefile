# mtrl-scaling: the whole study as one DAG; every figure is a file target.
#   snakemake --profile profiles/local --configfile config/smoke.yaml      # CPU, minutes
#   snakemake --profile profiles/slurm figures/fig7.pdf                    # the paper's grid on a GPU cluster
import sys

from snakemake.utils import min_version, validate

min_version("9.0")
sys.path.insert(0, workflow.basedir)  # the mtrl package, without requiring it to be installed


# The paper's grid unless a config file is given (--configfile replaces it instead of merging).
if "figures" not in config:

    configfile: "config/config.yaml"



validate(config, "workflow/schemas/config.schema.yaml")


# Light rules run where Snakemake runs, not as cluster jobs.
localrules:
    all,
    aggregate,
    figure,
    table1,


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        all_targets(),
    default_target: True
