# Grid expansion, input functions and resources. The logic lives in mtrl.study.grid, mtrl.study.runtime and
# mtrl.files.provenance (tested without Snakemake); this file turns it into paths, params and resources.
import json
from pathlib import Path

from mtrl.config.settings import ConfigError
from mtrl.config.files import load_yaml_mapping
from mtrl.figures import FIGURES
from mtrl.study.fits import check_runs_fit
from mtrl.study.grid import build_grid, figure_extensions
from mtrl.files.provenance import CODE_GROUPS, code_hash, figure_code_hash, identity, table_code_hash
from mtrl.study.plan import plan_lines, targets_scope
from mtrl.study.remake import files_to_remake, made_by, remake_line
from mtrl.study.status import check_results_owner, result_problem
from mtrl.study.gpu_share import check_mem_mb, NodeLimits, Share, load_share_table, runs_per_gpu, train_mem_mb, train_threads
from mtrl.study.runtime import load_table, plan, retries

try:
    for _file in workflow.configfiles:  # Snakemake keeps the last of a key given twice: refuse it
        load_yaml_mapping(_file)
    GRID = build_grid(config)
    check_mem_mb({cfg.task_set for cfg in GRID.runs.values()}, config["train_resources"]["mem_mb"])
    check_runs_fit(GRID.runs, config["train_resources"])  # before any plan: sizes no job can hold
    EXTENSIONS = figure_extensions(config)  # figure -> the extensions switched on that change its table
    _TABLE = load_table(Path(workflow.basedir) / config["train_resources"]["runtime_table"])
    PLANS = {rid: plan(cfg, _TABLE, config["train_resources"]) for rid, cfg in GRID.runs.items()}
    _RES = config["train_resources"]
    if _RES["share_gpu"] and _RES["gpu"] > 0:  # k runs per GPU from measured busy fractions
        _SHARES = load_share_table(Path(workflow.basedir) / _RES["share_table"])
        _NODE = NodeLimits.from_resources(_RES)  # k runs share one node's cores and memory
        SHARES = {
            rid: runs_per_gpu(
                cfg, _SHARES, _RES["runtime_device"], _RES["max_runs_per_gpu"], _RES["target_gpu_busy"], _NODE
            )
            for rid, cfg in GRID.runs.items()
        }
    else:
        SHARES = {rid: Share(1, None, "share_gpu off") for rid in GRID.runs}
except ConfigError as exc:
    raise WorkflowError(f"mtrl: error: {exc}") from None

RESULTS = Path(config["results_dir"])
FIGURES_DIR = Path(config["figures_dir"])
if workflow.is_main_process:  # one results folder, one study: never another study's runs or study.json
    try:
        check_results_owner(RESULTS, workflow.configfiles)
    except ConfigError as exc:
        raise WorkflowError(f"mtrl: error: {exc}") from None
# What each figure is (its table, its plot, whether its runs are probed): mtrl.figures.FIGURES.
PLOTTED = [f for f in GRID.figures if FIGURES[f].plot is not None]
CODE = {group: code_hash(group) for group in CODE_GROUPS}
TABLE_CODE = {figure: table_code_hash(figure) for figure in GRID.figures}
FIGURE_CODE = {figure: figure_code_hash(figure) for figure in PLOTTED}
ENV = "../../envs/mtrl.yaml"
# A run may take several time-capped attempts, resuming each time (see mtrl.study.runtime). Only the
# Snakemake that submits jobs retries: inside a SLURM job (remote execution) a rule's `retries`
# would otherwise restart the stopped trainer in the same allocation, minutes before its time limit.
TRAIN_RETRIES = 0 if workflow.remote_exec else retries(PLANS, config["train_resources"])
# Commands that plan no jobs: they print no plan (snakemake's own CLI option names).
NO_JOBS = (
    "lint", "report", "list_rules", "list_target_rules", "dag", "rulegraph", "filegraph", "d3dag",
    "summary", "detailed_summary", "unlock", "cleanup_metadata", "cleanup_shadow", "archive",
    "containerize", "print_compilation", "list_changes", "list_input_changes", "list_params_changes",
    "list_untracked", "list_conda_envs", "conda_cleanup_envs", "conda_create_envs_only",
    "delete_all_output", "delete_temp_output", "export_cwl", "generate_unit_tests",
    "edit_notebook", "draft_notebook",
)
SUMMARIES = ("summary", "detailed_summary")  # no jobs, but they say which files are to be remade




def command_args():
    """The parsed command line of the `snakemake` command that parses this file (its targets,
    allowed_rules...); None for one that plans no jobs (NO_JOBS) or is not the snakemake command
    line (the API). Snakemake does not tell a Snakefile its targets: its own parser reads them."""
    if Path(sys.argv[0]).name != "snakemake" and Path(sys.argv[0]).parent.name != "snakemake":
        return None
    from snakemake.cli import get_argument_parser

    try:
        args, _ = get_argument_parser().parse_known_args(sys.argv[1:])
    except (SystemExit, Exception):  # an unreadable command line: Snakemake reports it itself
        return None
    if any(getattr(args, name, None) for name in NO_JOBS if name not in SUMMARIES):
        return None
    return args


def force_rerun(workflow, files):
    """Add `files` to Snakemake's --forcerun for the DAG it builds next. Snakemake sets its DAG
    settings after it read this Snakefile, so they are amended where they are read (_prepare_dag)."""
    prepare = getattr(workflow, "_prepare_dag", None)
    if not files:
        return
    if prepare is None:
        raise WorkflowError(f"mtrl: error: this Snakemake has no _prepare_dag: cannot remake {files[0]}")

    def prepare_forced(*args, **kwargs):
        settings = workflow.dag_settings
        settings.forcerun = frozenset(settings.forcerun or ()) | frozenset(files)
        return prepare(*args, **kwargs)

    workflow._prepare_dag = prepare_forced


# The plan of the targets asked for, once: in the process where Snakemake is started, never in the
# processes of its jobs, and not for commands that run no jobs. The result files behind the targets
# that are missing, damaged or of other settings or code are forced (mtrl.study.remake): Snakemake
# would not rebuild a deleted intermediate, nor see a damaged one.
IDENTITY = {rid: json.dumps(identity(cfg.to_dict()), sort_keys=True) for rid, cfg in GRID.runs.items()}


def _judge(path, kind, run):
    return result_problem(path, IDENTITY[run], CODE[kind])


if workflow.is_main_process and (_args := command_args()) is not None:
    _scope = targets_scope(list(_args.targets or []), GRID, RESULTS, FIGURES_DIR)
    REMAKE = files_to_remake(_scope, RESULTS, _judge)
    _complete = {rid for rid in _scope.runs if RESULTS / "runs" / rid / "train.h5" not in REMAKE}
    _lines = plan_lines(_scope.label, _scope.runs, GRID, PLANS, SHARES, config["train_resources"], _complete)
    _lines += [line] if (line := remake_line(REMAKE)) else []
    if not any(getattr(_args, name, None) for name in SUMMARIES):
        print("\n".join(_lines), file=sys.stderr)
    force_rerun(workflow, [str(path) for path in made_by(REMAKE, getattr(_args, "allowed_rules", None) or ())])


wildcard_constraints:
    run=r"mt[0-9a-z\-]+/[a-z]+/[^/]+/s[0-9]+",
    figure="|".join(GRID.figures) or "none",


def run_dir(run):
    return RESULTS / "runs" / run


def all_targets():
    targets = [FIGURES_DIR / f"{figure}.pdf" for figure in PLOTTED]
    if "table1" in GRID.figures:
        targets += [FIGURES_DIR / "table1.md", FIGURES_DIR / "table1.csv"]
    return targets


def run_identity(wildcards):
    """The settings that define the run (mtrl.files.provenance.identity): a param, so changing one reruns it."""
    return identity(GRID.runs[wildcards.run].to_dict())


def _width(wildcards):
    cfg = GRID.runs[wildcards.run]
    return max(cfg.actor_width, cfg.critic_width)


def train_runtime(wildcards, attempt):
    """Minutes: the measured-throughput estimate x safety, capped at max_runtime_minutes per attempt."""
    return PLANS[wildcards.run].minutes(attempt)


def train_job_mem_mb(wildcards, attempt):
    """Host memory: the task set's base (env processes, buffer copies) plus the width's share."""
    return train_mem_mb(GRID.runs[wildcards.run], config["train_resources"]["mem_mb"], attempt)


# Several runs per GPU (profiles/slurm): a run with k > 1 joins group gpu_share_k<k>, and the profile's
# group-components packs k such runs into one SLURM job. Snakemake sums a group's numeric resources,
# so a shared run asks for gpu=0 and the string gres="gpu:1" instead (equal in every member, so the
# group keeps it once: sbatch --gres=gpu:1); threads and mem_mb add up, runtime is the longest's.
def train_group(wildcards):
    k = SHARES[wildcards.run].k
    return f"gpu_share_k{k}" if k > 1 else None


def train_gpu(wildcards):
    return 0 if SHARES[wildcards.run].k > 1 else config["train_resources"]["gpu"]


def train_gres(wildcards):
    return "gpu:1" if SHARES[wildcards.run].k > 1 else ""


def train_job_threads(wildcards):
    """One core per async env worker plus the trainer (mtrl.study.gpu_share.train_threads)."""
    return train_threads(GRID.runs[wildcards.run], config["train_resources"]["max_threads"])


# Probe: an SVD per layer and checkpoint (cost ~ width^3), activations of the probe batch (~ width^2).
def probe_threads(wildcards):
    return min(config["probe_resources"]["max_threads"], 1 + _width(wildcards) // 1024)


def probe_runtime(wildcards, attempt):
    scale = 1 + (_width(wildcards) / 2048) ** 3
    cap = config["train_resources"]["max_runtime_minutes"]
    return min(cap, int(config["probe_resources"]["runtime_minutes"] * scale * attempt))


def probe_mem_mb(wildcards, attempt):
    cfg = GRID.runs[wildcards.run]
    scale = (1 + (_width(wildcards) / 2048) ** 2) * (1 + cfg.num_tasks / 50)
    return int(config["probe_resources"]["mem_mb"] * scale * (1 + 0.5 * (attempt - 1)))


# The results folder knows the study that writes it (`mtrl status RESULTS` reads it): noted when jobs
# start, by the Snakemake that submits them.
onstart:
    if not workflow.remote_exec:
        from mtrl.study.status import record_study

        record_study(RESULTS, workflow.configfiles)


def figure_runs(wildcards):
    """RunRefs of a figure as plain dicts (panel, series, run_dir, label, order, x_at): the aggregate's params."""
    return [
        {
            "panel": r.panel, "series": r.series, "run_dir": str(run_dir(r.run_id)), "label": r.label,
            "order": r.order, "x_at": r.x_at,
        }
        for r in GRID.figures[wildcards.figure]
    ]


def figure_expected(wildcards):
    """What each input run's provenance must say: {run_dir: identity JSON}, and the code hashes."""
    return {
        "runs": {
            str(run_dir(run)): json.dumps(identity(GRID.runs[run].to_dict()), sort_keys=True)
            for run in GRID.runs_of(wildcards.figure)
        },
        "train_code": CODE["train"],
        "probe_code": CODE["probe"],
        "allow_stale": config["allow_stale"],
    }


def figure_inputs(wildcards):
    files = [run_dir(run) / "train.h5" for run in GRID.runs_of(wildcards.figure)]
    if FIGURES[wildcards.figure].needs_plasticity:
        files += [run_dir(run) / "plasticity.h5" for run in GRID.runs_of(wildcards.figure)]
    return files
