"""Held-out comparison of a policy's zooms with uncertainty, random and the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from razn.train.held_out import compare_level


def test_comparison_on_a_hand_made_level():
    rewards = np.array([[[0.5, -0.1], [0.2, -0.3]]])
    entropy = np.array([[[0.9, 0.8], [0.1, 0.0]]])
    tissue = np.array([[[1.0, 1.0], [1.0, 0.0]]])  # the last node holds no tissue
    probability = np.array([[[0.9, 0.2], [0.7, 0.9]]])  # zooms nodes 0 and 2 (3 is not tissue)
    result = compare_level(1, probability, rewards, entropy, tissue)
    assert (result.level, result.nodes, result.zoomed) == (1, 3, 2)
    assert result.policy == pytest.approx(0.7)
    assert result.uncertainty == pytest.approx(0.4)  # the two most uncertain: 0.5 - 0.1
    assert result.random == pytest.approx(2 * 0.6 / 3)
    assert result.oracle == pytest.approx(0.7)


def test_a_policy_that_never_zooms_scores_zero_like_its_baselines():
    rewards = np.array([[[0.5, -0.1]]])
    result = compare_level(0, np.zeros((1, 1, 2)), rewards, np.ones((1, 1, 2)), np.ones((1, 1, 2)))
    assert (result.zoomed, result.policy, result.uncertainty, result.random) == (0, 0.0, 0.0, 0.0)
    assert result.oracle == pytest.approx(0.5)


def test_a_level_report_describes_its_decisions_in_one_line():
    from razn.train.policy_reports import level_report

    rewards = np.array([0.5, -0.1, 0.2, -0.3])
    report = level_report(1, np.array([0.9, 0.2, 0.1, 0.1]), rewards)
    assert report.describe() == (
        "zoom policy of level 1: zooms 25.0% of the training patches (the oracle 50.0%)"
    )
    refine = level_report(2, np.array([0.9, 0.9, 0.9, 0.1]), rewards)
    refine.policy = "h"
    assert refine.describe() == (
        "refine policy of level 2: refines 75.0% of the training quadrants (the oracle 50.0%)"
    )
