"""Dice and IoU on hand-made masks with known values."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from razn.data.masks import open_mask
from razn.evaluate import SegmentationScores, confusion_matrix, score_labels


def test_confusion_and_scores_with_known_values():
    truth = np.array([[0, 0, 1, 1], [0, 1, 1, 255]], np.uint8)
    prediction = np.array([[0, 1, 1, 1], [0, 0, 1, 1]], np.uint8)
    confusion = confusion_matrix(truth, prediction, 2)
    np.testing.assert_array_equal(confusion, [[2, 1], [1, 3]])
    scores = SegmentationScores(confusion)
    np.testing.assert_allclose(scores.dice, [4 / 6, 6 / 8])
    np.testing.assert_allclose(scores.iou, [2 / 4, 3 / 5])
    summary = scores.as_dict(("background", "tumour"))
    assert summary["dice"] == {"background": pytest.approx(4 / 6), "tumour": pytest.approx(0.75)}
    assert summary["mean_dice"] == pytest.approx((4 / 6 + 0.75) / 2)


def test_score_labels_at_two_resolutions(tmp_path):
    truth = np.zeros((40, 60), np.uint8)  # at downsample 1
    truth[10:30, 20:50] = 1
    zarr.save_array(str(tmp_path / "mask.zarr"), truth)
    prediction = np.zeros((20, 30), np.uint8)  # at downsample 2: right but for one 2x2 pixel
    prediction[5:15, 10:25] = 1
    prediction[0, 0] = 1
    with open_mask(tmp_path / "mask.zarr", (60, 40)) as mask:
        fine = score_labels(prediction, 2.0, mask, 2, downsample=1.0, rows_per_block=7)
        coarse = score_labels(prediction, 2.0, mask, 2)
    np.testing.assert_array_equal(fine.confusion, [[40 * 60 - 600 - 4, 4], [0, 600]])
    np.testing.assert_array_equal(coarse.confusion, [[20 * 30 - 150 - 1, 1], [0, 150]])
    assert fine.dice[1] == pytest.approx(1200 / 1204)
