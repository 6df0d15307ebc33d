"""mtrl.tables tables from synthetic result files, and every figure drawn from its table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from mtrl.figures import FIG1_XLABEL, FIGURES, PLOTTED
from mtrl.files.result_files import read_train_h5
from mtrl.nets.matching import mlp_counts
from mtrl.plots import draw, from_step
from mtrl.tables import (
    RunRef,
    aggregate,
    plasticity_curve,
    plasticity_final,
    success_curve,
    success_final,
    table1,
    table1_markdown,
)
from tests.fixtures_results import fake_study, write_fake_plasticity, write_fake_train

REPS = 100
N_TASKS = 10


def hand_iqm(scores: np.ndarray) -> float:
    """The pooled IQM over runs x tasks (the `statistic="pooled"` option)."""
    flat = np.sort(np.asarray(scores, dtype=float).ravel())
    cut = int(0.25 * flat.size)
    return float(flat[cut : flat.size - cut].mean())


def authors_iqm(scores: np.ndarray) -> float:
    """The study's statistic as the authors' figure scripts compute it: each run's mean success over
    tasks; keep the runs between polars' nearest quartiles (sorted indices round((n - 1) / 4) and
    round(3 (n - 1) / 4), halves up), inclusive; their mean."""
    means = np.asarray(scores, dtype=float).mean(axis=1)
    ordered, n = np.sort(means), means.size
    q1, q3 = ordered[int((n - 1) * 0.25 + 0.5)], ordered[int((n - 1) * 0.75 + 0.5)]
    return float(means[(means >= q1) & (means <= q3)].mean())


def trimmed_iqm(scores: np.ndarray) -> float:
    """The option "runs": trim_mean(run means, 0.25)."""
    return float(scipy.stats.trim_mean(np.asarray(scores, dtype=float).mean(axis=1), 0.25))


def final_scores(width: int, seed: int) -> np.ndarray:
    """Distinct, known per-task final success rates for a (width, seed)."""
    base = 0.3 if width == 256 else 0.6
    return np.clip(base + 0.02 * seed + 0.03 * np.arange(N_TASKS) - 0.1, 0, 1)


@pytest.fixture
def sweep(tmp_path: Path) -> list[RunRef]:
    """3 seeds x 2 widths on MT10; the first two evaluations are zeros, the last is final_scores."""
    runs = []
    for width in (256, 1024):
        for seed in range(3):
            run_dir = tmp_path / f"w{width}" / f"s{seed}"
            success = np.zeros((3, N_TASKS))
            success[1] = 0.5 * final_scores(width, seed)
            success[2] = final_scores(width, seed)
            write_fake_train(
                run_dir,
                success,
                actor_width=width,
                critic_width=width,
                seed=seed,
                actor_params=width * 10,
                critic_params=width * 20,
            )
            runs.append(RunRef("MT10", "FF", run_dir, label="feed-forward", order=1))
    return runs


def test_success_final(sweep: list[RunRef]) -> None:
    df = success_final(sweep, reps=REPS, seed=0)
    assert list(df["actor_width"]) == [256, 1024]
    for width, row in zip((256, 1024), df.itertuples(), strict=True):
        expected = 100 * authors_iqm(np.stack([final_scores(width, s) for s in range(3)]))
        assert row.iqm == pytest.approx(expected) and row.statistic == "authors"
        assert row.ci_low <= row.iqm <= row.ci_high
        assert row.n_runs == 3 and row.seeds == "0,1,2"
        assert row.actor_params == width * 10 and row.critic_params == width * 20
        assert row.params == width * 30
        assert row.panel == "MT10" and row.series == "FF" and row.label == "feed-forward" and row.order == 1
        assert row.step == 600_000 and row.arch == "mtmhsac" and row.depth == 3 and not row.skip
    # 3 runs: the authors keep the two upper runs; trim_mean(0.25) (the option "runs") keeps all three
    runs = success_final(sweep, reps=REPS, seed=0, statistic="runs")
    finals = np.stack([final_scores(256, s) for s in range(3)])
    assert runs["iqm"].iloc[0] == pytest.approx(100 * trimmed_iqm(finals))
    assert abs(runs["iqm"].iloc[0] - df["iqm"].iloc[0]) > 0.5


def test_success_curve(sweep: list[RunRef], tmp_path: Path) -> None:
    df = success_curve(sweep[:3], reps=REPS, seed=0)
    assert list(df["step"]) == [200_000, 400_000, 600_000]
    finals = np.stack([final_scores(256, s) for s in range(3)])
    np.testing.assert_allclose(df["iqm"], [0.0, 100 * authors_iqm(0.5 * finals), 100 * authors_iqm(finals)])
    assert (df["ci_low"] <= df["iqm"] + 1e-9).all() and (df["iqm"] <= df["ci_high"] + 1e-9).all()
    assert set(df["n_runs"]) == {3} and set(df["label"]) == {"feed-forward"}
    # a shorter run: cut to the common prefix with a warning
    short = tmp_path / "short"
    write_fake_train(short, np.full((2, N_TASKS), 0.5), actor_width=256, critic_width=256, seed=9)
    with pytest.warns(UserWarning, match="truncating"):
        cut = success_curve([*sweep[:3], RunRef("MT10", "FF", short)], reps=REPS)
    assert list(cut["step"]) == [200_000, 400_000] and set(cut["n_runs"]) == {4}
    # misaligned eval steps cannot be pooled
    odd = tmp_path / "odd"
    write_fake_train(odd, np.full((3, N_TASKS), 0.5), steps=[1, 2, 3], seed=8)
    with pytest.raises(ValueError, match="different step values"):
        success_curve([sweep[0], RunRef("MT10", "FF", odd)], reps=REPS)
    # two series -> two curves
    both = success_curve(sweep[:3] + [RunRef("MT10", "wide", r.run_dir) for r in sweep[3:]], reps=REPS)
    assert list(dict.fromkeys(both["series"])) == ["FF", "wide"] and len(both) == 6


def spread_runs(root: Path) -> list[RunRef]:
    """8 MT10 runs whose pooled IQM and IQM over run means differ: 3 tasks never solved, 3 always,
    4 varying by run, and one collapsed run (what an MT10 study looks like)."""
    rng = np.random.default_rng(5)
    runs = []
    for seed in range(8):
        final = np.concatenate([np.zeros(3), np.ones(3), rng.uniform(0.2, 0.8, size=4)])
        if seed == 7:
            final[:] = 0.05
        success = np.stack([0.5 * final, final])
        run_dir = root / f"spread{seed}"
        write_fake_train(run_dir, success, arch="moore", seed=seed)
        runs.append(RunRef("MT10", "MOORE", run_dir))
    return runs


def test_success_tables_use_the_authors_iqm_over_run_means(tmp_path: Path) -> None:
    runs = spread_runs(tmp_path)
    finals = np.stack([read_train_h5(r.train_path).eval_success[-1] for r in runs])
    expected, pooled = 100 * authors_iqm(finals), 100 * hand_iqm(finals)
    assert abs(expected - pooled) > 5
    final = success_final(runs, reps=REPS)
    assert final["iqm"].item() == pytest.approx(expected) and final["n_runs"].item() == 8
    curve = success_curve(runs, reps=REPS)
    np.testing.assert_allclose(curve["iqm"], [100 * authors_iqm(0.5 * finals), expected])
    assert set(curve["n_runs"]) == {8}
    table = table1(runs, reps=REPS).set_index(["architecture", "task_set"])
    assert table.loc[("MOORE", "MT10"), "ours"] == pytest.approx(expected)
    assert table.loc[("MOORE", "MT10"), "n_runs"] == 8
    for fig in ("fig1", "fig4", "table1"):
        assert set(aggregate(fig, runs, reps=REPS)["statistic"]) == {"authors"}
    # the pooled runs x tasks IQM: a documented option, through the registry as in the workflow
    assert aggregate("fig1", runs, reps=REPS, statistic="pooled")["iqm"].item() == pytest.approx(pooled)
    assert success_curve(runs, reps=REPS, statistic="pooled")["iqm"].iloc[-1] == pytest.approx(pooled)
    pooled_t1 = aggregate("table1", runs, reps=REPS, statistic="pooled").set_index(
        ["architecture", "task_set"]
    )
    assert pooled_t1.loc[("MOORE", "MT10"), "ours"] == pytest.approx(pooled)
    with pytest.raises(ValueError, match="statistic must be one of"):
        aggregate("fig6", runs, statistic="mean")


def plasticity_runs(root: Path) -> list[RunRef]:
    """Two seeds; dormant % total and param norms chosen so every expected mean is known."""
    steps = [1000, 2000, 3000]
    taus = (0.0, 0.025, 0.1)
    runs = []
    for seed in range(2):
        values = {}
        for k, net in enumerate(("actor", "critic0", "critic1")):
            # value = 10*net + seed + tau_index/10 + step_index*30 (percentages: within [0, 100])
            total = np.array([[30 * i + 10 * k + seed + t / 10 for t in range(3)] for i in range(3)])
            per_layer = np.repeat(total[:, :, None], 2, axis=2) + np.array([0.0, 1.0])
            values[net] = {
                "dormant_pct_total": total,
                "dormant_pct": per_layer,
                "param_norm": np.array([1.0, 2.0, 3.0]) * (k + 1) + seed,
                "grad_norm": np.array([0.5, 0.25, 0.125]) * (k + 1) + seed,
            }
        run_dir = root / f"p{seed}"
        write_fake_plasticity(run_dir, steps, values=values, taus=taus, layers=("l0", "l1"), seed=seed)
        write_fake_train(run_dir, np.full((1, N_TASKS), 0.5), seed=seed, actor_params=7, critic_params=8)
        runs.append(RunRef("MT10", "width 400", run_dir))
    return runs


def test_the_actor_row_of_figs_6_and_7_is_the_extension_actor_dormancy(tmp_path: Path) -> None:
    """The authors' dormancy figures plot the first critic only (plots/fig4.py, fig4_3.py)."""
    runs = plasticity_runs(tmp_path)
    for figure in ("fig6", "fig7"):
        assert set(aggregate(figure, runs, reps=REPS)["network"]) == {"critic"}
        extended = aggregate(figure, runs, reps=REPS, extensions=["actor_dormancy"])
        assert list(dict.fromkeys(extended["network"])) == ["actor", "critic"]
        assert set(aggregate(figure, runs, reps=REPS, extensions=["width_8192"])["network"]) == {"critic"}


def test_fig1_places_points_as_published_or_at_their_own_count(tmp_path: Path) -> None:
    """x_at: a matched MLP at its architecture's actor count in the panel, or at a given number."""
    runs = []
    for name, arch, width, x_at, params in (
        ("MTMHSAC", "mtmhsac", 400, 370_000, 372_880),
        ("MTMHSAC", "mtmhsac", 800, "moore", 1_385_680),
        ("MTMHSAC", "mtmhsac", 1024, None, 2_000_000),
        ("MOORE", "moore", 400, None, 1_379_320),
    ):
        run_dir = tmp_path / f"{arch}{width}"
        write_fake_train(
            run_dir, np.full((1, N_TASKS), 0.5), arch=arch, actor_width=width, actor_params=params
        )
        runs.append(RunRef("MT10", name, run_dir, x_at=x_at))
    published = aggregate("fig1", runs, reps=REPS)
    assert list(published["x_params"]) == [370_000, 1_379_320, 2_000_000, 1_379_320]
    assert set(published["x_placement"]) == {"published"}
    own = aggregate("fig1", runs, reps=REPS, x_placement="own")
    assert list(own["x_params"]) == list(own["actor_params"]) == [372_880, 1_385_680, 2_000_000, 1_379_320]
    with pytest.raises(ValueError, match=r"^success_final: MT10/MTMHSAC is placed at the actor count of sm"):
        aggregate("fig1", [RunRef("MT10", "MTMHSAC", runs[1].run_dir, x_at="sm")], reps=REPS)
    with pytest.raises(ValueError, match="x_placement must be one of"):
        aggregate("fig1", runs, reps=REPS, x_placement="mine")


def test_curves_are_drawn_from_the_first_evaluation_after_warm_up() -> None:
    """The tables keep step 0; the drawn curves start at the registry's first_step (fig3.py's 200k,
    fig5.py's 300k, else after step 0), unless a curve would keep fewer than two points."""
    assert FIGURES["fig4"].plot.args["first_step"] == 200_000
    assert FIGURES["fig5"].plot.args["first_step"] == 300_000
    assert {FIGURES[f].plot.args["first_step"] for f in ("fig6", "fig9", "fig10", "fig11", "fig12")} == {1}
    table = pd.DataFrame(
        {
            "panel": ["MT10"] * 5 + ["MT50"] * 2,
            "label": ["a"] * 3 + ["b"] * 2 + ["a"] * 2,
            "step": [0, 200_000, 400_000, 0, 5000, 0, 1_000_000],
        }
    )
    assert list(from_step(table, 1)["step"]) == [200_000, 400_000, 0, 5000, 0, 1_000_000]
    assert list(from_step(table, 300_000)["step"]) == [0, 200_000, 400_000, 0, 5000, 0, 1_000_000]
    longer = pd.concat([table, table.iloc[[2]].assign(step=600_000)], ignore_index=True)
    assert list(from_step(longer, 300_000)["step"])[:2] == [400_000, 0]


def test_plasticity_curve(tmp_path: Path) -> None:
    runs = plasticity_runs(tmp_path)
    df = plasticity_curve(runs, metric="dormant_pct_total", tau=0.1, network=("actor", "critic"), reps=REPS)
    actor = df[df["network"] == "actor"]
    critic = df[df["network"] == "critic"]
    assert list(actor["step"]) == [1000, 2000, 3000] and set(df["layer"]) == {"all"}
    # actor: mean over seeds 0, 1 of 30*i + 0 + seed + 0.2 -> 30*i + 0.7
    np.testing.assert_allclose(actor["mean"], [0.7, 30.7, 60.7])
    # critic: the FIRST critic, as the authors' figures (critic0, k=1) -> 30*i + 10 + 0.5 + 0.2
    np.testing.assert_allclose(critic["mean"], [10.7, 40.7, 70.7])
    assert (df["ci_low"] <= df["mean"]).all() and (df["mean"] <= df["ci_high"]).all()
    assert set(df["tau"]) == {0.1} and set(df["n_runs"]) == {2} and set(df["metric"]) == {"dormant_pct_total"}
    low_tau = plasticity_curve(runs, tau=0.025, network="actor", reps=REPS)
    np.testing.assert_allclose(low_tau["mean"], [0.6, 30.6, 60.6])
    layers = plasticity_curve(runs, metric="dormant_pct", tau=0.1, network="critic0", reps=REPS)
    assert set(layers["layer"]) == {"l0", "l1"}
    np.testing.assert_allclose(layers[layers["layer"] == "l1"]["mean"], [11.7, 41.7, 71.7])
    norms = plasticity_curve(runs, metric="param_norm", tau=None, network="critic", reps=REPS)
    # Both critics as one parameter vector: per run sqrt(critic0^2 + critic1^2), then the mean over
    # runs; critic0 (k=1): [1,2,3]*2 + seed, critic1 (k=2): [1,2,3]*3 + seed.
    base = np.array([1.0, 2.0, 3.0])
    joint = [np.sqrt((2 * base + seed) ** 2 + (3 * base + seed) ** 2) for seed in range(2)]
    np.testing.assert_allclose(norms["mean"], np.mean(joint, axis=0))
    assert norms["tau"].isna().all()
    grads = plasticity_curve(runs, metric="grad_norm", tau=None, network="critic", reps=REPS)
    base = np.array([0.5, 0.25, 0.125])
    joint = [np.sqrt((2 * base + seed) ** 2 + (3 * base + seed) ** 2) for seed in range(2)]
    np.testing.assert_allclose(grads["mean"], np.mean(joint, axis=0))
    # The members themselves stay available.
    second = plasticity_curve(runs, metric="param_norm", tau=None, network="critic1", reps=REPS)
    np.testing.assert_allclose(second["mean"], 3 * np.array([1.0, 2.0, 3.0]) + 0.5)
    with pytest.raises(ValueError, match="tau 0.5 not probed"):
        plasticity_curve(runs, tau=0.5)
    with pytest.raises(ValueError, match="unknown plasticity metric"):
        plasticity_curve(runs, metric="nope")
    with pytest.raises(ValueError, match="network"):
        plasticity_curve(runs, network="policy")


def test_plasticity_final(tmp_path: Path) -> None:
    df = plasticity_final(plasticity_runs(tmp_path), reps=REPS)
    assert list(df["network"]) == ["actor", "critic"]
    np.testing.assert_allclose(df["mean"], [60.7, 70.7])  # the critic is the first critic
    assert set(df["params"]) == {15} and set(df["step"]) == {3000} and set(df["n_runs"]) == {2}


def test_table1(tmp_path: Path) -> None:
    runs = []
    for arch in ("paco", "moore"):
        for seed in range(2):
            run_dir = tmp_path / arch / str(seed)
            write_fake_train(run_dir, np.full((2, N_TASKS), 0.4 + 0.1 * seed), arch=arch, seed=seed)
            runs.append(RunRef("MT10", arch, run_dir))
    ff = tmp_path / "ff"
    write_fake_train(ff, np.ones((1, N_TASKS)))
    df = table1([*runs, RunRef("MT10", "FF", ff)], reps=REPS)
    assert len(df) == 6
    row = df.set_index(["architecture", "task_set"])
    assert row.loc[("PaCo", "MT10"), "ours"] == pytest.approx(45.0)
    assert row.loc[("MOORE", "MT10"), "n_runs"] == 2
    assert math.isnan(row.loc[("SM", "MT10"), "ours"]) and row.loc[("SM", "MT10"), "n_runs"] == 0
    assert row.loc[("SM", "MT10"), "published"] == 71.8 and row.loc[("SM", "MT10"), "paper"] == 71.4
    assert math.isnan(row.loc[("SM", "MT50"), "published"]) and math.isnan(row.loc[("SM", "MT50"), "paper"])
    assert row.loc[("PaCo", "MT50"), "published"] == 57.3 and row.loc[("PaCo", "MT50"), "paper"] == 58.9
    assert row.loc[("MOORE", "MT10"), "published"] == 88.7 and row.loc[("MOORE", "MT50"), "paper"] == 72.0
    md = table1_markdown(df)
    legend, table = md.split("\n\n| Architecture |")
    rows = table.splitlines()
    assert len(rows) == 5 and rows[0].startswith(" MT10 (ours, 95% CI) | MT10 (paper) | MT10 (published) |")
    assert "| PaCo | 45.0 [" in md and "88.7" in md and rows[2].startswith("| SM | NA |")
    # the legend above says what each column is, the statistic of "ours" included
    assert legend.startswith("Table 1: final success rate (%) of SM, PaCo and MOORE")
    ours = "- **ours**: the runs of this pipeline, final evaluation: the mean of the runs between the first"
    paper = "- **paper**: the study's own reproduction of the architecture (McLean et al. 2025, Table 1); no"
    assert ours in legend and paper in legend
    assert "- **published**: the architecture's original publication's number" in legend
    assert "- NA: no runs (ours), no number reported (paper, published)" in legend
    pooled = table1_markdown(df.assign(statistic="pooled"))
    assert "final evaluation: the IQM over all runs x tasks," in pooled


def test_missing_files_name_the_path(tmp_path: Path) -> None:
    ref = RunRef("MT10", "FF", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere" / "train.h5")):
        aggregate("fig1", [ref])
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere" / "plasticity.h5")):
        aggregate("fig6", [ref])
    with pytest.raises(KeyError, match="unknown figure"):
        aggregate("fig2", [ref])


@pytest.fixture(scope="module")
def study_tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    figs = fake_study(tmp_path_factory.mktemp("study"), seeds=2, evals=5, probes=4)
    assert set(figs) == set(FIGURES)
    return {fig: aggregate(fig, runs, reps=REPS, seed=0) for fig, runs in figs.items()}


def test_registry_tables(study_tables: dict[str, pd.DataFrame]) -> None:
    assert set(study_tables["fig6"]["network"]) == {"critic"}  # the actor: extension actor_dormancy
    assert set(study_tables["fig7"]["network"]) == {"critic"}
    assert set(study_tables["fig7"]["series"]) == {"MT10", "MT25", "MT50"}
    assert set(study_tables["fig11"]["metric"]) == {"param_norm"}
    assert set(study_tables["fig12"]["network"]) == {"critic"}
    fig1 = study_tables["fig1"]
    assert set(fig1["panel"]) == {"MT10", "MT50"}
    assert set(fig1[fig1["panel"] == "MT50"]["series"]) == {"MTMHSAC", "SM", "PaCo", "MOORE"}
    # Fig. 1's x axis: the actor's parameter count (plots/fig1_new.py), not actor + critic
    assert (fig1["x_params"] == fig1["actor_params"]).all() and (fig1["x_params"] < fig1["params"]).all()
    assert study_tables["table1"]["ours"].notna().sum() == 5  # Table 1 has no SM on MT50
    # Fig. 7's x axis: every task set's run of a width sits at the MT50 actor count of that width
    # (plots/fig4_3.py), which is the MT50 run's own count
    fig7 = study_tables["fig7"]
    for width, rows in fig7.groupby("actor_width"):
        assert rows["x_params"].nunique() == 1, width
        mt50 = rows[rows["task_set"] == "mt50"]
        assert (rows["x_params"] == mlp_counts("mt50", int(width), 3)[0]).all()
        assert (mt50["x_params"] == mt50["actor_params"]).all()
    assert (
        fig7[fig7["task_set"] == "mt10"]["x_params"]
        .gt(fig7[fig7["task_set"] == "mt10"]["actor_params"])
        .all()
    )


@pytest.mark.parametrize(
    ("figure", "xlabel"),
    [("fig1", FIG1_XLABEL["published"]), ("fig7", "MT50 actor parameters at that width")],
)
def test_params_figures_plot_at_the_authors_x(
    figure: str, xlabel: str, study_tables: dict[str, pd.DataFrame]
) -> None:
    """Fig. 1 and Fig. 7 place every point at the table's x_params (plots/fig1_new.py, fig4_3.py)."""
    import matplotlib.pyplot as plt

    from mtrl.plots import plot_inputs
    from mtrl.plots._common import params_figure

    table, args = plot_inputs(study_tables[figure], FIGURES[figure].plot.args)
    fig = params_figure(table, figure=figure, **args)
    try:
        columns = "network" if figure == "fig7" else "panel"
        for ax, value in zip(fig.axes, dict.fromkeys(table[columns]), strict=False):
            drawn = {round(float(x)) for line in ax.get_lines() for x in line.get_xdata()}
            part = table[table[columns] == value]
            if figure == "fig7":
                part = part[part["layer"] == "all"]
            assert drawn == set(part["x_params"].astype(int)), value
            assert " ".join(ax.get_xlabel().split()) == xlabel  # long labels are wrapped
    finally:
        plt.close(fig)


@pytest.mark.parametrize("figure", PLOTTED)
def test_draw_every_figure(figure: str, study_tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    csv = tmp_path / f"{figure}.csv"  # figures are drawn from the CSV tables in the workflow
    study_tables[figure].to_csv(csv, index=False)
    pdf, png = draw(figure, pd.read_csv(csv), tmp_path / "out" / f"{figure}.pdf")
    assert pdf == tmp_path / "out" / f"{figure}.pdf" and png == pdf.with_suffix(".png")
    assert pdf.stat().st_size > 5_000 and png.stat().st_size > 20_000


def test_draw_rejects_unknown_and_incomplete(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no plot"):
        draw("table1", pd.DataFrame(), tmp_path / "t.pdf")
    with pytest.raises(ValueError, match="lacks columns"):
        draw("fig4", pd.DataFrame({"panel": ["MT10"]}), tmp_path / "f.pdf")


# ---------------------------------------------------------------- figures at the edges
def drawn(figure: str, table: pd.DataFrame):
    """The matplotlib figure the registry draws for `figure` from `table` (closed by the caller)."""
    from mtrl.plots import _common, plot_inputs

    plot = FIGURES[figure].plot
    table, args = plot_inputs(table, plot.args)
    return getattr(_common, plot.function)(table, figure=figure, **args)


def at_the_edges(table: pd.DataFrame, x_low: float, x_high: float) -> pd.DataFrame:
    """`table` with every value at an end of its range, as a toy run gives them: success 0 % or 100 %
    (per series), dormant neurons 0 %, CIs collapsed; parameter counts rescaled into [x_low, x_high]."""
    table = table.copy()
    y = "iqm" if "iqm" in table else "mean"
    if y == "iqm":
        solved = table.groupby("label")[y].transform("max") > table[y].median()
        table[y] = np.where(solved, 100.0, 0.0)
    elif (table["metric"] == "dormant_pct_total").all():
        table[y] = 0.0
    table["ci_low"] = table["ci_high"] = table[y]
    if "x_params" in table:
        x = np.log(table["x_params"].astype(float))
        scaled = (x - x.min()) / max(x.max() - x.min(), 1e-12)
        table["x_params"] = np.exp(np.log(x_low) + scaled * (np.log(x_high) - np.log(x_low)))
    return table


def y_range_shows(ax, low: float, high: float) -> bool:
    """Whether the axis shows [low, high] with a margin of at least 2 % of it at each end."""
    bottom, top = ax.get_ylim()
    margin = 0.02 * (high - low)
    return bottom <= low - margin and top >= high + margin


@pytest.mark.parametrize("figure", PLOTTED)
def test_figures_at_0_and_100_percent_show_their_lines_and_markers_whole(
    figure: str, study_tables: dict[str, pd.DataFrame]
) -> None:
    import matplotlib.pyplot as plt

    fig = drawn(figure, at_the_edges(study_tables[figure], 2_500, 20_000))
    try:
        args = FIGURES[figure].plot.args
        for ax in fig.axes:
            if args.get("ylim") == (0, 100):  # success: 0 % and 100 % clear of the frame
                assert y_range_shows(ax, 0, 100), (figure, ax.get_ylim())
            elif args.get("ylim") == (0, None):  # dormant neurons all at 0 %: 0 above the frame
                assert y_range_shows(ax, 0, 1), (figure, ax.get_ylim())
                bottom, top = ax.get_ylim()
                shown = [tick for tick in ax.get_yticks() if bottom <= tick <= top]
                assert min(shown) == 0  # no negative percentages
            # every marker is drawn whole even where it meets the frame
            markers = [line for line in ax.get_lines() if line.get_marker() not in (None, "None", "")]
            assert all(not line.get_clip_on() for line in markers), figure
        if FIGURES[figure].plot.function == "params_figure":
            for ax in fig.axes:  # the first and last point sit inside the x range
                low, high = ax.get_xlim()
                xs = [x for line in ax.get_lines() for x in line.get_xdata()]
                assert low < min(xs) / 1.05 and high > max(xs) * 1.05
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("x_low", "x_high"),
    [
        (2_500, 20_000),  # the smoke's Fig. 1: under a decade
        (13_000, 17_000),  # a fraction of a decade
        (7_000, 7_000),  # one parameter count
        (2e5, 3.5e7),  # the study's Fig. 1
        (1e2, 1e14),  # many decades
    ],
)
@pytest.mark.parametrize("figure", ["fig1", "fig7"])
def test_log_axes_label_at_least_two_round_ticks_for_any_range(
    figure: str, x_low: float, x_high: float, study_tables: dict[str, pd.DataFrame]
) -> None:
    import matplotlib.pyplot as plt

    fig = drawn(figure, at_the_edges(study_tables[figure], x_low, x_high))
    try:
        fig.canvas.draw()
        for ax in fig.axes:
            assert ax.get_xscale() == "log"
            low, high = ax.get_xlim()
            labelled = [
                (tick.get_position()[0], tick.get_text())
                for tick in ax.get_xticklabels()
                if tick.get_text() and low <= tick.get_position()[0] <= high
            ]
            assert 2 <= len(labelled) <= 7, (x_low, x_high, labelled)
            for value, text in labelled:  # plain round numbers: 5k, 20k, 1M
                mantissa = value / 10 ** np.floor(np.log10(value))
                assert mantissa * 2 == round(mantissa * 2) and "^" not in text and "e" not in text
    finally:
        plt.close(fig)


def test_log_ticks() -> None:
    from mtrl.plots._common import format_count, log_ticks, log_view

    assert log_ticks(2_200, 22_000) == [5_000, 10_000, 20_000]
    assert log_ticks(13_000, 17_000) == []  # narrower than two ticks: log_view widens such a range
    assert log_ticks(*log_view(13_000, 17_000)) == [10_000, 15_000, 20_000]
    assert log_ticks(*log_view(7_000, 7_000)) == [5_000, 6_000, 7_000, 8_000, 9_000, 10_000]
    assert log_ticks(3e5, 3e7) == [5e5, 1e6, 2e6, 5e6, 1e7, 2e7]
    assert log_ticks(1e5, 1e8) == [1e5, 1e6, 1e7, 1e8]  # 1, 2, 5 would be 10 ticks
    assert log_ticks(1e2, 1e14) == [1e2, 1e4, 1e6, 1e8, 1e10, 1e12, 1e14]  # every other power of ten
    counts = (5_000, 15_000, 1e6, 2.5e7, 3e9, 1e14, 0, 20_000_000)
    assert [format_count(v) for v in counts] == ["5k", "15k", "1M", "25M", "3B", "100T", "0", "20M"]


@pytest.mark.parametrize("figure", PLOTTED)
def test_panel_letters_are_unique_within_a_figure(figure: str, study_tables: dict[str, pd.DataFrame]) -> None:
    import re

    import matplotlib.pyplot as plt

    fig = drawn(figure, study_tables[figure])
    try:
        titles = [ax.get_title() for ax in fig.axes]
        letters = [re.match(r"\((\w)\) ", title) for title in titles]
        if len(titles) == 1:
            assert letters == [None]
        else:
            assert [m.group(1) for m in letters] == list("abcdefgh"[: len(titles)]), titles
    finally:
        plt.close(fig)
    if figure == "fig6":  # one row of two panels, the first critic's (the actor's: actor_dormancy)
        assert titles == ["(a) MT10: Critic", "(b) MT50: Critic"]
