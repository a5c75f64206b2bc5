"""Rewards and subtree outcomes on hand-built trees with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from razn.rewards import (
    RewardConfig,
    follow_policies,
    oracle_zoom,
    reward_unit_area,
    sum_children,
    zoom_cost,
    zoom_gain,
    zoom_outcome,
    zoom_reward,
)


def test_sum_children_groups_r_by_r_blocks():
    values = np.arange(16).reshape(1, 4, 4)
    np.testing.assert_array_equal(
        sum_children(values, 2),
        [[[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]],
    )


def test_wrong_parent_with_right_children_earns_the_formula():
    # One root, two levels (r = 2): f_0 misclassifies 300 of 1000 pixels, f_1 none;
    # one finest patch (the reward's unit of area) holds 250 pixels.
    errors = [np.array([[[300.0]]]), np.zeros((1, 2, 2))]
    outcome = zoom_outcome(errors, zoom={}, level=0, rate=2)
    assert outcome.errors[0, 0, 0] == 0 and outcome.segmentations[0, 0, 0] == 4
    assert outcome.policy_calls[0, 0, 0] == 0  # the children are at L_m: no policy there
    config = RewardConfig(lam=0.01, policy_cost=0.1)
    area = np.array([[[1000.0]]])
    # Image-first: zooming runs 4 segmentations instead of the parent's one.
    cost = zoom_cost(outcome, config)
    assert cost[0, 0, 0] == 3
    reward = zoom_reward(errors[0], outcome.errors, area, cost, config.lam, unit_area=250.0)
    assert reward[0, 0, 0] == pytest.approx(300 / 250 - 0.01 * 3)
    # f_i first: the parent is segmented whatever g_0 decides, so the zoom adds all 4.
    cost = zoom_cost(outcome, config, decide_first=False)
    reward = zoom_reward(errors[0], outcome.errors, area, cost, config.lam, unit_area=250.0)
    assert reward[0, 0, 0] == pytest.approx(300 / 250 - 0.01 * 4)


def test_zoom_that_changes_nothing_costs_exactly_lambda_times_cost():
    errors = [np.array([[[40.0]]]), np.array([[[10.0, 10.0], [10.0, 10.0]]])]
    outcome = zoom_outcome(errors, {}, 0, 2)
    for decide_first, extra in ((True, 3), (False, 4)):
        cost = zoom_cost(outcome, RewardConfig(), decide_first)
        reward = zoom_reward(errors[0], outcome.errors, 1000.0, cost, 0.5, unit_area=250.0)
        assert reward[0, 0, 0] == pytest.approx(-0.5 * extra)


def test_children_follow_the_next_level_policy():
    # Three levels, r = 2. Level 1 policy zooms only the top-left child.
    errors = [
        np.array([[[100.0]]]),
        np.array([[[30.0, 5.0], [5.0, 5.0]]]),
        np.zeros((1, 4, 4)),
    ]
    errors[2][0, 0, 0] = 2.0  # one grandchild under the zoomed child still errs
    zoom = {1: np.array([[[True, False], [False, False]]])}
    outcome = zoom_outcome(errors, zoom, level=0, rate=2)
    assert outcome.errors[0, 0, 0] == 2.0 + 5 + 5 + 5
    assert outcome.segmentations[0, 0, 0] == 4 + 3  # four grandchildren + three children
    assert outcome.policy_calls[0, 0, 0] == 4  # g_1 on each child
    cost = zoom_cost(outcome, RewardConfig(policy_cost=0.25))
    assert cost[0, 0, 0] == pytest.approx(7 + 0.25 * 4 - 1)  # the parent is never segmented
    # f_i first: the zoomed child is segmented too, before g_1 zooms it.
    informed = zoom_outcome(errors, zoom, level=0, rate=2, decide_first=False)
    assert informed.segmentations[0, 0, 0] == 4 + 3 + 1
    cost = zoom_cost(informed, RewardConfig(policy_cost=0.25), decide_first=False)
    assert cost[0, 0, 0] == pytest.approx(8 + 0.25 * 4)


def test_follow_policies_at_a_level_counts_its_own_policy_call():
    errors = [np.array([[[9.0]]]), np.array([[[1.0, 1.0], [1.0, 1.0]]])]
    broke = follow_policies(errors, {0: np.array([[[False]]])}, level=0, rate=2)
    zoomed = follow_policies(errors, {0: np.array([[[True]]])}, level=0, rate=2)
    assert (broke.errors[0, 0, 0], broke.segmentations[0, 0, 0], broke.policy_calls[0, 0, 0]) == (
        9,
        1,
        1,
    )
    assert (
        zoomed.errors[0, 0, 0],
        zoomed.segmentations[0, 0, 0],
        zoomed.policy_calls[0, 0, 0],
    ) == (4, 4, 1)
    informed = follow_policies(errors, {0: np.array([[[True]]])}, 0, 2, decide_first=False)
    assert informed.segmentations[0, 0, 0] == 5  # f_0 ran before g_0 zoomed


def test_empty_area_gives_only_the_cost():
    reward = zoom_reward(np.array([5.0]), np.array([0.0]), np.array([0.0]), np.array([4.0]), 0.1, 9)
    assert reward[0] == pytest.approx(-0.4)


def test_a_pixel_fixed_is_worth_the_same_at_every_level():
    # 100 pixels fixed by zooming a coarse node (16x the area) or a fine one: same gain.
    coarse = zoom_reward(np.array([100.0]), np.array([0.0]), np.array([16000.0]), 0.0, 0.0, 1000)
    fine = zoom_reward(np.array([100.0]), np.array([0.0]), np.array([1000.0]), 0.0, 0.0, 1000)
    assert coarse[0] == fine[0] == pytest.approx(0.1)


def test_reward_unit_area_is_one_finest_patch_at_the_evaluation_resolution():
    assert reward_unit_area(256, 1.0, 1.0) == 65536.0
    assert reward_unit_area(256, 1.0, 2.0) == 16384.0  # scored at half the resolution
    assert reward_unit_area(64, 2.0, 1.0) == 16384.0


def test_the_cost_model_may_differ_by_level():
    # Level 1 sees f_1 (its zoomed child is segmented first), level 0 decides first.
    errors = [np.array([[[100.0]]]), np.array([[[30.0, 5.0], [5.0, 5.0]]]), np.zeros((1, 4, 4))]
    zoom = {1: np.array([[[True, False], [False, False]]])}
    outcome = zoom_outcome(errors, zoom, level=0, rate=2, decide_first=(True, False))
    assert outcome.segmentations[0, 0, 0] == 4 + 3 + 1
    cost = zoom_cost(outcome, RewardConfig(policy_cost=0.0), decide_first=True)
    assert cost[0, 0, 0] == 7  # the root itself is never segmented


def test_nodes_without_tissue_cost_nothing():
    # One root, two levels (r = 2); only the top two children hold tissue, so a zoom reads
    # and segments two patches: image-first it adds one segmentation over the break, not 3.
    errors = [np.array([[[300.0]]]), np.zeros((1, 2, 2))]
    tissue = [np.ones((1, 1, 1), bool), np.array([[[True, True], [False, False]]])]
    outcome = zoom_outcome(errors, {}, 0, 2, tissue=tissue)
    assert outcome.segmentations[0, 0, 0] == 2
    config = RewardConfig(lam=0.01, policy_cost=0.1)
    gain = zoom_gain(errors, np.array([[[1000.0]]]), {}, 0, 2, config, 250.0, tissue=tissue)
    assert gain[0, 0, 0] == pytest.approx(300 / 250 - 0.01 * 1)
    # a policy below asks only about tissue nodes: g_1 there costs 2 calls, not 4
    below = {1: np.zeros((1, 2, 2), bool)}
    three = [*errors, np.zeros((1, 4, 4))]
    calls = zoom_outcome(three, below, 0, 2, tissue=[*tissue, np.ones((1, 4, 4), bool)])
    assert calls.policy_calls[0, 0, 0] == 2 and calls.segmentations[0, 0, 0] == 2


def test_the_oracle_zooms_at_the_tissue_edge_when_only_tissue_children_are_paid_for():
    # f_0 gets 100 pixels wrong, f_1 none; one child holds tissue. At λ = 0.5 a zoom that
    # paid for all four children (+3) loses 1.5 − 0.4; paying for the one it reads, it
    # costs what the break costs (one patch) and wins the 0.4.
    errors = [np.array([[[100.0]]]), np.zeros((1, 2, 2))]
    area = [np.array([[[1000.0]]]), np.full((1, 2, 2), 250.0)]
    tissue = [np.ones((1, 1, 1), bool), np.array([[[True, False], [False, False]]])]
    config = RewardConfig(lam=0.5, policy_cost=0.1)
    assert not oracle_zoom(errors, area, config, 2, 250.0)[0][0, 0, 0]
    assert oracle_zoom(errors, area, config, 2, 250.0, tissue=tissue)[0][0, 0, 0]
