"""The study grid: run ids, sharing between figures, matched widths, errors naming the key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mtrl.config.settings import ConfigError
from mtrl.nets.matching import matched_width
from mtrl.study.grid import build_grid, figure_extensions, run_id

ROOT = Path(__file__).resolve().parents[1]


def study(**figures) -> dict:
    return {
        "seeds": [0, 1],
        "task_set_defaults": {
            "mt10": {
                "total_steps": 10000,
                "warmup_steps_per_task": 100,
                "eval_every": 5000,
                "checkpoint_every": 5000,
                "log_every": 5000,
                "probe_checkpoints": 1,
            }
        },
        "figures": figures,
    }


def test_run_ids_are_readable_and_deterministic():
    grid = build_grid(
        study(fig4=[{"panel": "MT10", "series": "w", "task_set": "mt10", "width": [256, 1024]}])
    )
    assert list(grid.runs) == [
        "mt10/mtmhsac/a256-c256-d3/s0",
        "mt10/mtmhsac/a256-c256-d3/s1",
        "mt10/mtmhsac/a1024-c1024-d3/s0",
        "mt10/mtmhsac/a1024-c1024-d3/s1",
    ]
    config = grid.runs["mt10/mtmhsac/a1024-c1024-d3/s1"]
    assert (config.actor_width, config.critic_width, config.seed, config.total_steps) == (
        1024,
        1024,
        1,
        10000,
    )


def test_figures_share_runs_and_series_keep_order():
    sweep = {"panel": "MT10", "series": "w", "task_set": "mt10", "width": [256, 512]}
    pair = {
        "panel": "MT10",
        "series": "a512/c256",
        "task_set": "mt10",
        "actor_width": 512,
        "critic_width": 256,
    }
    grid = build_grid(study(fig4=[sweep], fig6=[sweep], fig5=[pair, {**sweep, "width": 512}]))
    assert len(grid.runs) == 3 * 2
    assert set(grid.runs_of("fig4")) == set(grid.runs_of("fig6"))
    assert grid.runs_of("fig5") == [
        "mt10/mtmhsac/a512-c256-d3/s0",
        "mt10/mtmhsac/a512-c256-d3/s1",
        "mt10/mtmhsac/a512-c512-d3/s0",
        "mt10/mtmhsac/a512-c512-d3/s1",
    ]
    assert [r.order for r in grid.figures["fig5"]] == [0.0, 0.0, 1.0, 1.0]


def test_extra_keys_enter_the_run_id_and_skip_is_marked():
    grid = build_grid(
        study(
            fig9=[
                {
                    "panel": "p",
                    "series": "s",
                    "task_set": "mt10",
                    "depth": 4,
                    "skip": True,
                    "width": 64,
                    "use_task_weights": True,
                }
            ]
        )
    )
    assert "mt10/mtmhsac/a64-c64-d4-skip-use_task_weightsTrue/s0" in grid.runs


def test_matched_width_is_computed_from_the_architecture():
    grid = build_grid(
        study(fig1=[{"panel": "MT10", "series": "m", "task_set": "mt10", "width": {"match": "moore"}}])
    )
    config = next(iter(grid.runs.values()))
    assert config.actor_width == config.critic_width == matched_width("moore", "mt10", 3) == 798


def test_bad_values_name_the_series_and_key():
    with pytest.raises(ConfigError, match=r"figures.fig4\[0\].*actor_width"):
        build_grid(study(fig4=[{"panel": "MT10", "series": "w", "task_set": "mt10", "width": 0}]))
    with pytest.raises(ConfigError, match="unknown config key.*widht"):
        build_grid(study(fig4=[{"panel": "MT10", "series": "w", "task_set": "mt10", "widht": 64}]))
    with pytest.raises(ConfigError, match="match"):
        build_grid(
            study(fig1=[{"panel": "MT10", "series": "m", "task_set": "mt10", "width": {"match": "gpt"}}])
        )


def test_a_run_id_defined_twice_differently_is_refused():
    base = study(fig4=[{"panel": "MT10", "series": "w", "task_set": "mt10", "width": 64}])
    base["figures"]["fig5"] = [
        {"panel": "MT10", "series": "w", "task_set": "mt10", "width": 64, "gamma": 0.9}
    ]
    # gamma is not an id key but the series set it, so it becomes part of the id: no clash
    assert len(build_grid(base).runs) == 4
    assert run_id(build_grid(base).runs["mt10/mtmhsac/a64-c64-d3/s0"]) == "mt10/mtmhsac/a64-c64-d3/s0"


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_shipped_configs_build(name):
    grid = build_grid(yaml.safe_load((ROOT / "config" / name).read_text()))
    assert set(grid.figures) == {
        "fig1",
        "fig4",
        "fig5",
        "fig6",
        "fig7",
        "fig9",
        "fig10",
        "fig11",
        "fig12",
        "table1",
    }


def test_full_grid_uses_the_papers_settings():
    grid = build_grid(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    mt10 = grid.runs["mt10/mtmhsac/a4096-c4096-d3/s9"]
    assert (mt10.total_steps, mt10.eval_every, mt10.eval_episodes, mt10.batch_per_task) == (
        20_000_000,
        200_000,
        50,
        128,
    )
    mt50 = grid.runs["mt50/mtmhsac/a4096-c4096-d3/s0"]
    assert (mt50.total_steps, mt50.eval_every, mt50.buffer_per_task * 50) == (
        100_000_000,
        1_000_000,
        5_000_000,
    )
    assert grid.runs["mt10/moore/a400-c400-d3/s0"].alpha_lr == 1e-4
    assert not grid.runs["mt10/sm/a400-c400-d3/s0"].use_task_weights  # Fig. 1's SM: no task weights
    assert {
        "mt10/mtmhsac/a885-c885-d3/s0",  # the experiment files' matched widths
        "mt10/mtmhsac/a650-c650-d4-skip/s0",
    } <= set(grid.runs)
    # MT25: widths 256-2048 as the width-scaling file's run names (1e8, evaluation every 1M); 4096 is
    # mt25_mtmhsac_v2_4096 (reginald-mclean/mtrl experiments/misc/mt25_mtmhsac_v2.py): 5e7, every 500k
    mt25 = {(c.actor_width, c.total_steps, c.eval_every) for c in grid.runs.values() if c.task_set == "mt25"}
    assert mt25 == {(w, 100_000_000, 1_000_000) for w in (256, 512, 1024, 2048)} | {
        (4096, 50_000_000, 500_000)
    }


def test_series_names_can_be_filled_from_the_grid_point():
    grid = build_grid(
        study(
            fig4=[{"panel": "MT10", "series": "width {actor_width}", "task_set": "mt10", "width": [256, 512]}]
        )
    )
    assert [r.series for r in grid.figures["fig4"]] == ["width 256", "width 256", "width 512", "width 512"]
    orders = [r.order for r in grid.figures["fig4"]]
    assert orders == sorted(orders) and orders[0] != orders[-1]


def test_settings_of_other_architectures_do_not_change_a_runs_identity():
    from mtrl.files.provenance import identity

    base = study(fig4=[{"panel": "MT10", "series": "w", "task_set": "mt10", "width": 64}])
    sm_sized = {**base, "run_defaults": {"sm_module_width": 32, "paco_k": 3, "vector_strategy": "sync"}}
    plain, other = build_grid(base), build_grid(sm_sized)
    assert list(plain.runs) == list(other.runs)  # same run ids, so the same output paths
    for rid in plain.runs:
        assert identity(plain.runs[rid].to_dict()) == identity(other.runs[rid].to_dict())
    # ...but a size of the run's own architecture is part of it
    sm = study(fig1=[{"panel": "MT10", "series": "SM", "task_set": "mt10", "arch": "sm"}])
    wider = {**sm, "run_defaults": {"sm_module_width": 32}}
    rid = next(iter(build_grid(sm).runs))
    assert identity(build_grid(sm).runs[rid].to_dict()) != identity(build_grid(wider).runs[rid].to_dict())


def test_execution_settings_come_from_the_defaults_sections_only():
    from mtrl.study.grid import execution_settings

    base = study(fig4=[{"panel": "MT10", "series": "w", "task_set": "mt10", "width": 64, "torch_threads": 2}])
    with pytest.raises(ConfigError, match=r"figures.fig4\[0\].*torch_threads: an execution setting"):
        build_grid(base)
    config = {
        "run_defaults": {"vector_strategy": "sync"},
        "task_set_defaults": {"mt50": {"torch_threads": 4}},
    }
    assert execution_settings(config, "mt50", "moore") == {"vector_strategy": "sync", "torch_threads": 4}
    assert execution_settings(config, "mt10", "moore") == {"vector_strategy": "sync"}


def test_a_task_set_without_step_settings_is_an_error_naming_it():
    base = study(fig7=[{"panel": "p", "series": "MT25", "task_set": "mt25", "width": 64}])
    with pytest.raises(ConfigError, match=r"^task_set_defaults\.mt25\.total_steps: figures\.fig7\[0\]"):
        build_grid(base)


def test_a_bad_default_is_named_where_it_is_set():
    base = study(fig4=[{"panel": "MT10", "series": "w", "task_set": "mt10", "width": 64}])
    base["task_set_defaults"]["mt10"]["total_steps"] = 12345
    with pytest.raises(
        ConfigError, match=r"^task_set_defaults\.mt10\.total_steps: must be a positive multiple"
    ):
        build_grid(base)
    base = study(fig4=[{"panel": "MT10", "series": "w", "task_set": "mt10", "width": 64}])
    base["run_defaults"] = {"gamma": 2.0}
    with pytest.raises(ConfigError, match=r"^run_defaults\.gamma: must be in \(0, 1\]"):
        build_grid(base)


def test_schema_errors_are_one_line_naming_the_key():
    from mtrl.study.grid import validate_study

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    good = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    validate_study(good, schema)
    assert good["train_resources"]["max_runtime_minutes"] == 60 and good["allow_stale"] is False
    bad = {**good, "bootstrap_rep": 10}
    with pytest.raises(ConfigError, match=r"^bootstrap_rep: unknown key \(known: allow_stale, ") as info:
        validate_study(bad, schema)
    assert "\n" not in str(info.value)
    bad = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    bad["train_resources"]["max_runtime_minutes"] = 0
    with pytest.raises(ConfigError, match=r"^train_resources\.max_runtime_minutes: 0 is less than"):
        validate_study(bad, schema)


def test_a_figure_the_registry_does_not_declare_is_refused_naming_it():
    series = {"panel": "MT10", "series": "w", "task_set": "mt10", "width": 64}
    with pytest.raises(
        ConfigError, match=r"^figures\.fig2: no such figure in mtrl/figures\.py; one of fig1, "
    ):
        build_grid(study(fig2=[series]))


def test_reward_version_enters_the_run_id_only_off_the_default():
    sm = {"panel": "MT10", "series": "SM", "task_set": "mt10", "arch": "sm"}
    grid = build_grid(study(fig1=[sm], table1=[{**sm, "reward_version": "v1"}]))
    assert grid.runs_of("fig1") == ["mt10/sm/a400-c400-d3/s0", "mt10/sm/a400-c400-d3/s1"]
    assert grid.runs_of("table1") == ["mt10/sm/a400-c400-d3-rewv1/s0", "mt10/sm/a400-c400-d3-rewv1/s1"]
    assert grid.runs["mt10/sm/a400-c400-d3-rewv1/s0"].reward_version == "v1"
    assert grid.runs["mt10/sm/a400-c400-d3/s0"].reward_version == "v2"
    # a v1 default for every run still marks every id (two configs never share a path)
    v1_everywhere = {**study(fig1=[sm]), "run_defaults": {"reward_version": "v1"}}
    assert list(build_grid(v1_everywhere).runs) == [
        "mt10/sm/a400-c400-d3-rewv1/s0",
        "mt10/sm/a400-c400-d3-rewv1/s1",
    ]
    with pytest.raises(ConfigError, match=r"table1\[0\].*reward_version"):
        build_grid(study(table1=[{**sm, "reward_version": "v0"}]))


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_table1_sm_runs_use_v1_rewards_and_task_weights_and_nothing_else_does(name):
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    grid = build_grid(config)
    width = 400 if name == "config.yaml" else config["run_defaults"]["actor_width"]
    table1_sm = [r.run_id for r in grid.figures["table1"] if r.series == "SM"]
    (sm_series,) = [s for s in config["figures"]["table1"] if s["series"] == "SM"]
    seeds = sm_series.get("seeds", config["seeds"])  # the smoke's: one seed
    assert table1_sm == [f"mt10/sm/a{width}-c{width}-d3-rewv1-use_task_weightsTrue/s{seed}" for seed in seeds]
    for rid in table1_sm:
        assert grid.runs[rid].reward_version == "v1" and grid.runs[rid].use_task_weights
    # Fig. 1's SM runs as the authors' figure script names them: mt10_softmodules_task_weights_false
    # (v2 rewards) and mt50_softmodules_depth_4 (4 layers x 4 modules, no task weights)
    fig1_sm = [r.run_id for r in grid.figures["fig1"] if r.series == "SM"]
    assert fig1_sm[: len(seeds)] == [f"mt10/sm/a{width}-c{width}-d3/s{seed}" for seed in seeds]
    assert {rid.split("/")[0] for rid in fig1_sm} == {"mt10", "mt50"}
    assert not any(grid.runs[rid].use_task_weights for rid in fig1_sm)
    mt50_sm = [grid.runs[rid] for rid in fig1_sm if rid.startswith("mt50/")]
    assert {(c.sm_layers, c.sm_modules, c.reward_version) for c in mt50_sm} == {(4, 4, "v2")}
    assert {rid for rid, c in grid.runs.items() if c.reward_version != "v2"} == set(table1_sm)
    assert {rid for rid, c in grid.runs.items() if c.use_task_weights} == set(table1_sm)


def test_fig1_and_fig7_have_the_authors_series():
    grid = build_grid(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    fig1 = {(r.panel, r.series, r.run_id.rsplit("/", 1)[0]) for r in grid.figures["fig1"]}
    ff = {
        panel: {grid.runs[rid + "/s0"].actor_width for p, s, rid in fig1 if (p, s) == (panel, "MTMHSAC")}
        for panel in ("MT10", "MT50")
    }
    # plots/fig1_new.py: the default MTMHSAC (400), the MLPs matched to SM, PaCo and MOORE, 1024-4096
    assert ff["MT10"] == {400, 550, 800, 885, 1024, 2048, 4096}
    assert ff["MT50"] == {400, 780, 925, 1805, 1024, 2048, 4096}
    assert {s for p, s, _ in fig1 if p == "MT50"} == {"MTMHSAC", "SM", "PaCo", "MOORE"}
    # mtmhsac_moore_params_log_std-10_clipped_q: log-std floor -10, Q clipped at 5000; no other run
    moore_matched = grid.runs["mt50/mtmhsac/a925-c925-d3-log_std_min-10.0-max_q_value5000.0/s0"]
    assert (moore_matched.log_std_min, moore_matched.max_q_value) == (-10, 5000)
    clipped = {rid.rsplit("/", 1)[0] for rid, c in grid.runs.items() if c.max_q_value and c.arch != "paco"}
    assert clipped == {"mt50/mtmhsac/a925-c925-d3-log_std_min-10.0-max_q_value5000.0"}
    # plots/fig4_3.py: widths 256-4096 on MT10, MT25 and MT50
    for series in ("MT10", "MT25", "MT50"):
        widths = {grid.runs[r.run_id].actor_width for r in grid.figures["fig7"] if r.series == series}
        assert widths == {256, 512, 1024, 2048, 4096}, series
    assert len(grid.runs) == 380
    # fig1_new.py's placement: matched MLPs at their architecture's count, MT10 width 400 at 370,000
    x_at = {
        (r.panel, grid.runs[r.run_id].actor_width): r.x_at
        for r in grid.figures["fig1"]
        if r.series == "MTMHSAC"
    }
    assert {key: at for key, at in x_at.items() if at is not None} == {
        ("MT10", 400): 370_000,
        ("MT10", 550): "sm",
        ("MT10", 885): "paco",
        ("MT10", 800): "moore",
        ("MT50", 780): "sm",
        ("MT50", 1805): "paco",
        ("MT50", 925): "moore",
    }


def test_the_published_figures_show_widths_256_to_4096_and_8192_is_an_extension():
    """plots/fig3.py (Fig. 4) and fig4.py (Fig. 6) plot widths 256-4096; 8192 is opt-in."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert config["extensions"] == []
    default = build_grid(config)
    assert max(c.actor_width for c in default.runs.values()) == 4096
    extended = build_grid({**config, **yaml.safe_load((ROOT / "config" / "extensions.yaml").read_text())})
    added = sorted(set(extended.runs) - set(default.runs))
    assert added == sorted(
        f"{ts}/mtmhsac/a8192-c8192-d3/s{seed}" for ts in ("mt10", "mt50") for seed in range(10)
    )
    for figure in ("fig4", "fig6", "fig11", "fig12"):
        widths = {extended.runs[rid].actor_width for rid in extended.runs_of(figure)}
        assert widths == {256, 512, 1024, 2048, 4096, 8192}, figure
        assert {default.runs[rid].actor_width for rid in default.runs_of(figure)} == widths - {8192}
    assert figure_extensions({"extensions": ["actor_dormancy"]})["fig6"] == ["actor_dormancy"]
    assert figure_extensions(config)["fig7"] == []


def test_an_extension_nothing_defines_is_an_error_naming_it():
    series = {"panel": "MT10", "series": "w", "task_set": "mt10", "width": 64, "extension": "wide"}
    assert (
        build_grid(study(fig4=[series, {**series, "width": 32, "extension": "wider"}])).figures.keys()
        == set()
    )
    on = {**study(fig4=[series]), "extensions": ["wide"]}
    assert list(build_grid(on).runs) == ["mt10/mtmhsac/a64-c64-d3/s0", "mt10/mtmhsac/a64-c64-d3/s1"]
    with pytest.raises(
        ConfigError, match=r"^extensions: 'widest' is defined by no series \(`extension:`\) and no figure"
    ):
        build_grid({**on, "extensions": ["widest"]})


# ---------------------------------------------------------------- matched widths on disk
_BUILD_SMOKE_GRID = """
import sys, yaml
from mtrl.study.grid import build_grid
grid = build_grid(yaml.safe_load(open("config/smoke.yaml")))
print(sorted(grid.runs), "torch" in sys.modules)
"""


def test_matched_widths_are_remembered_so_reading_the_workflow_needs_no_torch(tmp_path):
    env = {**os.environ, "MTRL_CACHE_DIR": str(tmp_path)}

    def build():
        proc = subprocess.run(
            [sys.executable, "-c", _BUILD_SMOKE_GRID], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        runs, torch_imported = proc.stdout.rsplit(" ", 1)
        return runs, torch_imported.strip() == "True"

    first, torch_first = build()
    assert torch_first and (tmp_path / "matched-widths.json").is_file()
    second, torch_second = build()
    assert second == first and not torch_second  # the same widths, without building a network

    (tmp_path / "matched-widths.json").write_text("{not json")  # a damaged cache is recomputed
    assert build() == (first, True)


def test_a_cached_width_is_keyed_by_the_architecture_depth_and_counting_code(tmp_path, monkeypatch):
    from mtrl.nets.matching import arch_config
    from mtrl.study import width_cache

    monkeypatch.setenv("MTRL_CACHE_DIR", str(tmp_path))
    sm = arch_config("sm", "mt10")
    assert width_cache.matched_width(sm, 3) == matched_width("sm", "mt10", 3)
    keys = {width_cache.cache_key(sm, 3), width_cache.cache_key(sm, 4)}
    keys.add(width_cache.cache_key(arch_config("moore", "mt10"), 3))
    monkeypatch.setattr(width_cache, "_counting_code", lambda: "edited")  # e.g. a new layer in nets/
    keys.add(width_cache.cache_key(sm, 3))
    assert len(keys) == 4


def test_the_readme_counts_the_smoke_pipelines_runs():
    stated = re.search(r"(\d+) training runs on MT10/MT25/MT50", (ROOT / "README.md").read_text())
    smoke = build_grid(yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text()))
    assert stated and int(stated.group(1)) == len(smoke.runs)


SWEEP = {"panel": "MT10", "series": "width {actor_width}", "task_set": "mt10"}


@pytest.mark.parametrize(
    "series_list",
    [[{**SWEEP, "width": [64, 64]}], [{**SWEEP, "width": 64}, {**SWEEP, "width": 64}]],
    ids=["a list value twice", "a series twice"],
)
def test_a_grid_point_listed_twice_is_one_run_counted_once(series_list, tmp_path):
    """Trained once and, before, aggregated twice: n_runs 4 from 2 runs."""
    from mtrl.tables import RunRef, aggregate
    from tests.fixtures_results import write_fake_train

    grid = build_grid(study(fig4=series_list))
    runs = ["mt10/mtmhsac/a64-c64-d3/s0", "mt10/mtmhsac/a64-c64-d3/s1"]
    assert list(grid.runs) == runs and [r.run_id for r in grid.figures["fig4"]] == runs
    refs = [RunRef(r.panel, r.series, tmp_path / r.run_id, r.label, r.order) for r in grid.figures["fig4"]]
    for seed, ref in enumerate(refs):
        write_fake_train(ref.run_dir, [[0.5] * 10], actor_width=64, critic_width=64, seed=seed)
    assert aggregate("fig4", refs, reps=10)["n_runs"].tolist() == [2]


def test_one_run_in_two_panels_of_a_figure_is_in_both():
    grid = build_grid(study(fig4=[{**SWEEP, "width": 64}, {**SWEEP, "panel": "other", "width": 64}]))
    assert len(grid.runs) == 2 and [r.panel for r in grid.figures["fig4"]] == ["MT10"] * 2 + ["other"] * 2


def test_a_study_with_its_extensions_file_is_one_study_for_mtrl_status(tmp_path, monkeypatch):
    """`--configfile config/config.yaml config/extensions.yaml`: the workflow records both files;
    `mtrl status` merges them as Snakemake does (the extended grid) and tells the pair from one."""
    from mtrl.study.status import record_study, study_and_results

    monkeypatch.chdir(ROOT)  # the workflow records the paths it was given, relative to where it runs
    results = tmp_path / "results"
    both = ["config/config.yaml", "config/extensions.yaml"]
    record_study(results, both)
    study, folder = study_and_results(str(results), None)
    assert folder == results and study["extensions"] == ["width_8192", "actor_dormancy"]
    assert len(build_grid(study).runs) == 400 and study["seeds"] == list(range(10))
    assert study_and_results(str(results), both)[0] == study
    with pytest.raises(
        ConfigError,
        match=r"written by the study config/config\.yaml \+ config/extensions\.yaml, not config/config\.yaml",
    ):
        study_and_results(str(results), ["config/config.yaml"])
