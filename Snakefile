# mtrl-scaling: the whole study as one DAG; every figure is a file target.
#   snakemake --profile profiles/local --configfile config/smoke.yaml      # CPU, minutes
#   snakemake --profile slurm figures/fig7.pdf                             # the paper's grid on a GPU cluster
import sys
from pathlib import Path

import yaml
from snakemake.utils import min_version

min_version("9.0")

# Snakemake puts this folder first on sys.path: the workflow reads and hashes the mtrl beside it.
# Its jobs import the installed mtrl (`make install`: this checkout) and stop if it is another one
# (workflow/scripts/_adapter.py), so the code hash a result records is that of the code that made it.
from mtrl.config.settings import ConfigError
from mtrl.study.grid import validate_study


# The paper's grid only when no config file is given: a --configfile is the whole study, never
# merged with the paper's figures.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


if "figures" not in config:
    raise WorkflowError(
        "mtrl: error: figures: the config file given has no `figures` section "
        "(see config/config.yaml for the paper's study, config/smoke.yaml for a small one)"
    )
# `--config allow_stale=true`: Snakemake reads only `True`/`False` as booleans; take any case.
for _key, _value in list(config.items()):
    if isinstance(_value, str) and _value.lower() in ("true", "false"):
        config[_key] = _value.lower() == "true"
try:
    with open(Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml") as _schema:
        validate_study(config, yaml.safe_load(_schema))
except ConfigError as exc:
    raise WorkflowError(f"mtrl: error: {exc}") from None


report: "workflow/report/workflow.rst"


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
