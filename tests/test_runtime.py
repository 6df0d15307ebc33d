"""How many training runs share one GPU, from the measured GPU-busy fraction (mtrl.runtime)."""

from __future__ import annotations

import pytest

from mtrl.config import ConfigError, TrainConfig
from mtrl.runtime import SHARE_COLUMNS, ShareRow, load_share_table, runs_per_gpu, share_summary

H100 = "NVIDIA H100"


def _rows() -> list[ShareRow]:
    return [
        ShareRow(H100, "mt10", "mtmhsac", 400, 400, 3, 0.2),
        ShareRow(H100, "mt10", "mtmhsac", 1600, 1600, 3, 0.8),
        ShareRow("cpu", "mt10", "sm", 400, 400, 3, 0.1),
    ]


def _cfg(width: int, **extra) -> TrainConfig:
    return TrainConfig.from_dict({"actor_width": width, "critic_width": width, **extra})


def test_small_busy_fraction_shares_a_gpu_and_large_widths_do_not():
    small = runs_per_gpu(_cfg(400), _rows(), H100, max_runs=8, target_busy=0.9)
    assert (small.k, small.busy_fraction) == (4, pytest.approx(0.2))  # floor(0.9 / 0.2)
    mid = runs_per_gpu(_cfg(800), _rows(), H100, max_runs=8, target_busy=0.9)
    assert mid.busy_fraction == pytest.approx(0.4) and mid.k == 2  # log-log halfway: sqrt(0.2 * 0.8)
    assert runs_per_gpu(_cfg(1600), _rows(), H100, max_runs=8, target_busy=0.9).k == 1
    # above the widest row the fraction never falls; below the narrowest it is the narrowest's
    assert runs_per_gpu(_cfg(6400), _rows(), H100, max_runs=8, target_busy=0.9).k == 1
    assert runs_per_gpu(_cfg(64), _rows(), H100, max_runs=8, target_busy=0.9).k == 4


def test_k_is_capped_by_max_runs():
    assert runs_per_gpu(_cfg(400), _rows(), H100, max_runs=3, target_busy=0.9).k == 3
    assert runs_per_gpu(_cfg(400), _rows(), "nvidia h100", max_runs=2, target_busy=0.9).k == 2


def test_unmeasured_device_task_set_or_arch_gets_one_gpu_and_says_why():
    for cfg, device in [(_cfg(400), "NVIDIA A100"), (_cfg(400, task_set="mt50"), H100)]:
        share = runs_per_gpu(cfg, _rows(), device, max_runs=4, target_busy=0.9)
        assert share.k == 1 and share.busy_fraction is None and "NOT MEASURED" in share.basis
    sm = _cfg(400, arch="sm")
    assert runs_per_gpu(sm, _rows(), H100, max_runs=4, target_busy=0.9).k == 1
    assert runs_per_gpu(sm, _rows(), "cpu", max_runs=4, target_busy=0.9).k == 4
    shares = {
        "a": runs_per_gpu(sm, _rows(), H100, 4, 0.9),
        "b": runs_per_gpu(_cfg(400), _rows(), H100, 4, 0.9),
    }
    text = "\n".join(share_summary(shares, {"share_table": "gpu_share.csv"}))
    assert "1 of 2 runs share a GPU (1 runs 4 per GPU)" in text and "NOT MEASURED for 1 runs" in text


def test_share_table_absent_is_empty_and_bad_rows_name_the_line(tmp_path):
    assert load_share_table(tmp_path / "none.csv") == []
    path = tmp_path / "gpu_share.csv"
    row = [H100, "mt10", "mtmhsac", "400", "400", "3", "50", "250", "0.2", "2026-11-25", "test"]
    path.write_text(",".join(SHARE_COLUMNS) + "\n" + ",".join(f'"{v}"' for v in row) + "\n")
    assert load_share_table(path) == [ShareRow(H100, "mt10", "mtmhsac", 400, 400, 3, 0.2)]
    path.write_text(",".join(SHARE_COLUMNS) + "\n" + ",".join(row[:8] + ["1.5"] + row[9:]) + "\n")
    with pytest.raises(ConfigError, match=r"gpu_share.csv:2: busy_fraction"):
        load_share_table(path)
