"""Oracle decisions and compute matching of the baselines, on hand-made zoom trees."""

from __future__ import annotations

import numpy as np
import pytest

from razn.benchmark.matching import (
    budget_matched_thresholds,
    compute_matched_thresholds,
    expand,
    matched_probabilities,
    matched_thresholds,
    oracle_zoom,
    reached_nodes,
    threshold_for_share,
    zoom_shares,
)
from razn.engine.deciders import PlannedZoom
from razn.geometry import Node
from razn.rewards import RewardConfig


def test_threshold_for_share_splits_distinct_values_exactly():
    values = np.array([0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    assert threshold_for_share(values, 0.3) == pytest.approx(0.65)  # 0.9, 0.8, 0.7 exceed
    assert (values > threshold_for_share(values, 0.3)).sum() == 3
    assert (values > threshold_for_share(values, 0.0)).sum() == 0
    assert (values > threshold_for_share(values, 1.0)).sum() == 10
    assert (values > threshold_for_share(values, 0.26)).sum() == 3  # rounds to whole nodes


def test_reached_nodes_follow_zooms_and_tissue():
    tissue = [np.ones((1, 1, 1), bool), np.array([[[True, True], [False, True]]])]
    zoom = {0: np.ones((1, 1, 1), bool), 1: np.array([[[True, False], [True, False]]])}
    reached = reached_nodes(zoom, tissue, 2)
    np.testing.assert_array_equal(reached[1], tissue[1])
    # level 1: 3 tissue nodes reached, one zooms (the off-tissue zoom does not count)
    assert zoom_shares(zoom, tissue, 2) == [1.0, pytest.approx(1 / 3)]


def test_matched_thresholds_give_uncertainty_razns_shares():
    # Two roots; level 1 holds 2x2 children per root, all on tissue.
    entropy0 = np.array([0.8, 0.2]).reshape(2, 1, 1)
    entropy1 = np.array([[0.9, 0.1, 0.5, 0.3], [0.95, 0.85, 0.75, 0.65]]).reshape(2, 2, 2)
    tissue = [np.ones((2, 1, 1), bool), np.ones((2, 2, 2), bool)]
    # razn zoomed one of two roots, then half of the children it reached.
    thresholds = matched_thresholds([entropy0, entropy1], tissue, [0.5, 0.5], 2)
    assert thresholds[0] == pytest.approx(0.5)  # root 0 (0.8) zooms, root 1 (0.2) not
    # Uncertainty reaches root 0's children only: 0.9, 0.1, 0.5, 0.3 -> the top two zoom.
    assert thresholds[1] == pytest.approx(0.4)
    zoom = {0: entropy0 > thresholds[0], 1: entropy1 > thresholds[1]}
    assert zoom_shares(zoom, tissue, 2) == [0.5, 0.5]
    assert matched_probabilities([0.5, 0.25]) == [0.5, 0.25]


def test_oracle_zooms_where_the_ground_truth_reward_is_positive():
    # Levels 0, 1, 2 with r = 2 and one root; a finest patch (the reward's unit) is 100 px.
    area = [np.full((1, 1, 1), 1600.0), np.full((1, 2, 2), 400.0), np.full((1, 4, 4), 100.0)]
    errors = [np.full((1, 1, 1), 400.0), np.zeros((1, 2, 2)), np.zeros((1, 4, 4))]
    errors[1][0, 0, 0] = 40.0  # zooming fixes 40 px: 0.4 − 0.02 · 4 > 0
    errors[1][0, 1, 1] = 1.0  # zooming fixes 1 px: 0.01 − 0.02 · 4 < 0
    reward = RewardConfig(lam=0.02, policy_cost=0.0)
    zoom = oracle_zoom(errors, area, reward, rate=2, unit_area=100.0)
    np.testing.assert_array_equal(zoom[1][0], [[True, False], [False, False]])
    # Level 0: break errs 400 px; zooming (children follow the oracle) errs 1 px for 7
    # segmentations: 3.99 − 0.14 > 0.
    assert zoom[0][0, 0, 0]


def test_planned_zoom_looks_nodes_up_under_their_roots():
    zoom = {0: np.array([True, False]).reshape(2, 1, 1), 1: np.zeros((2, 2, 2), bool)}
    zoom[1][1, 0, 1] = True  # root 1 (col 3, row 0), child at row 0, col 1
    decider = PlannedZoom(np.array([[2, 0], [3, 0]]), zoom, rate=2)
    decided, probability = decider.decide(0, [Node(0, 2, 0), Node(0, 3, 0), Node(0, 9, 9)], None)
    np.testing.assert_array_equal(decided, [True, False, False])
    decided, _ = decider.decide(1, [Node(1, 7, 0), Node(1, 6, 0), Node(1, 7, 1)], None)
    np.testing.assert_array_equal(decided, [True, False, False])
    assert probability.dtype == np.float32


def test_expand_repeats_each_node_over_its_children():
    values = np.arange(4).reshape(1, 2, 2)
    np.testing.assert_array_equal(
        expand(values, 2)[0], [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    )


def test_compute_matching_keeps_uncertainty_within_razns_patches():
    # One root, levels 0–2, r = 2, every node on tissue. Uncertainty segments each node it
    # decides on, so zooming the root costs 1 + 4 and zooming a level-1 node 1 + 4 more.
    entropy = [np.full((1, 1, 1), 0.9), np.array([[[0.8, 0.1], [0.2, 0.3]]])]
    errors = [np.full((1, 1, 1), 100.0), np.full((1, 2, 2), 10.0), np.zeros((1, 4, 4))]
    tissue = [np.ones((1, 1, 1), bool), np.ones((1, 2, 2), bool), np.ones((1, 4, 4), bool)]
    # With 9 patches: the root and its 4 children (5), one child zoomed (+4): 9, 30 errors.
    match = compute_matched_thresholds(entropy, errors, tissue, 9, 2)
    assert (match.patches, match.errors) == (9, 30.0)
    assert match.shares == [1.0, 0.25]
    assert 0.3 <= match.thresholds[1] < 0.8  # the most uncertain child, 0.8, zooms
    # Razn's share matching would zoom half the level-1 nodes: 13 patches, over budget.
    half = compute_matched_thresholds(entropy, errors, tissue, 13, 2)
    assert (half.patches, half.errors) == (13, 20.0)
    # Below the cheapest plan (ud: the root alone) the cheapest is returned.
    assert compute_matched_thresholds(entropy, errors, tissue, 0, 2).patches == 1


def test_budget_matching_spends_the_patches_without_errors():
    # The tree above: uncertainty's val-chosen shares [1, 0.25] scaled to a test budget.
    entropy = [np.full((1, 1, 1), 0.9), np.array([[[0.8, 0.1], [0.2, 0.3]]])]
    tissue = [np.ones((1, 1, 1), bool), np.ones((1, 2, 2), bool), np.ones((1, 4, 4), bool)]
    nine = budget_matched_thresholds(entropy, tissue, [1.0, 0.25], 9, 2)
    assert nine.patches == 9 and nine.shares == [1.0, 0.25] and np.isnan(nine.errors)
    assert 0.3 <= nine.thresholds[1] < 0.8  # the most uncertain child zooms
    # 13 patches: the two most uncertain children (0.8 and 0.3) zoom
    thirteen = budget_matched_thresholds(entropy, tissue, [1.0, 0.25], 13, 2)
    assert thirteen.patches == 13 and 0.2 <= thirteen.thresholds[1] < 0.3
    # a budget above cip's (1 + 4 + 16) zooms everything; one below the root alone, nothing
    assert budget_matched_thresholds(entropy, tissue, [1.0, 0.25], 100, 2).patches == 21
    assert budget_matched_thresholds(entropy, tissue, [1.0, 0.25], 0, 2).patches == 1
    # all-zero shares (ud on val) still spend a budget: the same share at every level
    assert budget_matched_thresholds(entropy, tissue, [0.0, 0.0], 21, 2).patches == 21
    with pytest.raises(ValueError, match="1 shares for 2 decision levels"):
        budget_matched_thresholds(entropy, tissue, [1.0], 9, 2)
