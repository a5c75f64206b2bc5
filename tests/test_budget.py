"""``--budget``: a share of cip's patches, priced on the validation slides, mapped to λ."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_batch import segment, slides

from razn.errors import ConfigError
from razn.policy.budget import (
    ValidationCost,
    lambda_for_budget,
    read_validation,
    validation_cost,
    write_validation,
)


def test_validation_cost_counts_breaks_and_the_finest_children_holding_tissue():
    # One root, three levels (r = 2): the root zooms; of its 4 children (3 on tissue) two zoom.
    zoom = {
        0: np.array([[[True]]]),
        1: np.array([[[True, True], [False, False]]]),
    }
    finest = np.ones((1, 4, 4), bool)
    finest[0, 0, 1] = False  # one finest child of the zoomed child (0, 0) holds no tissue
    finest[0, 2:, 2:] = False  # child (1, 1) holds none, nor its children
    tissue = [np.array([[[True]]]), np.array([[[True, True], [True, False]]]), finest]
    cost = validation_cost(zoom, tissue, rate=2, lam=0.01, splits=["val"])
    # level 0: nothing breaks; level 1: one reached tissue child breaks; level 2: 3 + 4,
    # the finest children of the two zooms that hold tissue (the engine never reads the other)
    assert cost.patches == [0, 1, 7]
    assert cost.cip_patches == 11 and cost.ud_patches == 1  # every finest tissue node
    assert cost.share == pytest.approx(8 / 11)


def _saved_curve(tmp_path, shares: dict[float, int]) -> None:
    for lam, patches in shares.items():
        folder = tmp_path / f"lam_{lam:g}"
        folder.mkdir()
        write_validation(folder, ValidationCost(lam, [4, 0, patches - 4], 100, 4, ["val"]))


def test_budget_picks_the_most_accurate_lambda_within_it(tmp_path):
    _saved_curve(tmp_path, {0.001: 90, 0.01: 40, 0.1: 10})
    assert read_validation(tmp_path / "lam_0.01").share == pytest.approx(0.4)
    assert lambda_for_budget(tmp_path, 0.5).lam == 0.01
    assert lambda_for_budget(tmp_path, 0.4).lam == 0.01  # at most: equal is within
    assert lambda_for_budget(tmp_path, 1.0).lam == 0.001
    assert lambda_for_budget(tmp_path, 0.1).lam == 0.1


def test_budgets_that_cannot_be_met_are_one_line_errors(tmp_path):
    _saved_curve(tmp_path, {0.01: 40, 0.1: 10})
    with pytest.raises(ConfigError, match=r"below what ud needs \(0\.040 of cip's patches"):
        lambda_for_budget(tmp_path, 0.02)
    with pytest.raises(ConfigError, match=r"the cheapest, λ=0\.1, needs 0\.100"):
        lambda_for_budget(tmp_path, 0.05)
    with pytest.raises(ConfigError, match="no validation curve"):
        lambda_for_budget(tmp_path / "empty", 0.5)


def test_segment_with_a_budget_records_the_lambda_and_the_share_used(tiny_run, tmp_path):
    folder = tiny_run / "run" / "policies" / "lam_0.01"
    cost = read_validation(folder)
    assert cost is not None and cost.splits == ["val"]  # written when the policies were trained
    result = segment(tiny_run, tmp_path, str(slides(tiny_run)[0]), "--budget", "1.0")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "synth_000" / "summary.json").read_text())
    assert summary["lambda"] == 0.01
    assert summary["budget"] == {"requested": 1.0, "lambda": 0.01, "validation_share": cost.share}
    assert summary["budget_used"] == pytest.approx(sum(summary["patches"]) / summary["cip_patches"])
    cip = segment(tiny_run, tmp_path / "cip", str(slides(tiny_run)[0]), mode="cip")
    assert cip.exit_code == 0, cip.output
    cip_summary = json.loads((tmp_path / "cip" / "synth_000" / "summary.json").read_text())
    assert summary["cip_patches"] == sum(cip_summary["patches"]) > 0  # what cip really segments


def test_a_budget_below_ud_is_refused_in_one_line(tiny_run, tmp_path):
    result = segment(tiny_run, tmp_path, str(slides(tiny_run)[0]), "--budget", "0.0001")
    assert result.exit_code != 0
    assert "below what ud needs" in result.output and "Traceback" not in result.output
