"""Dice and IoU on hand-made masks with known values."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from razn.cli import main
from razn.data.manifest import ManifestEntry, write_manifest
from razn.data.masks import open_mask
from razn.errors import RaznError
from razn.evaluate import SegmentationScores, confusion_matrix, score_labels
from razn.evaluate_outputs import evaluate_outputs


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


def _segmented(folder, name, labels, downsample=2.0, mode="cip"):
    out = folder / name
    out.mkdir(parents=True)
    zarr.save_array(str(out / "labels.zarr"), labels)
    summary = {
        "mode": mode,
        "seconds": 1.5,
        "patches": [0, 4],
        "output_downsample": downsample,
        "class_names": ["background", "tumour"],
    }
    (out / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


@pytest.fixture
def two_slides(tmp_path, gradient_pyramid):
    """Two 1000x700 slides with masks (one tumour rectangle each) in a test-split manifest."""
    slide_a, _ = gradient_pyramid
    slide_b = tmp_path / "second slide.tiff"
    shutil.copy(slide_a, slide_b)
    truth = np.zeros((700, 1000), np.uint8)
    truth[100:300, 200:600] = 1  # 80 000 tumour px at level 0
    zarr.save_array(str(tmp_path / "a_mask.zarr"), truth)
    zarr.save_array(str(tmp_path / "b_mask.zarr"), truth)
    write_manifest(
        tmp_path / "manifest.csv",
        [
            ManifestEntry(slide_a, tmp_path / "a_mask.zarr", "test"),
            ManifestEntry(slide_b, tmp_path / "b_mask.zarr", "test"),
        ],
    )
    return tmp_path


def test_evaluate_outputs_pools_slides_with_known_dice(two_slides):
    pred = two_slides / "pred"
    perfect = np.zeros((350, 500), np.uint8)  # at downsample 2
    perfect[50:150, 100:300] = 1  # 20 000 px
    half = np.zeros_like(perfect)
    half[50:150, 100:200] = 1  # half the tumour found, nothing false
    _segmented(pred, "gradient", perfect)
    _segmented(pred, "second slide", half)
    report = evaluate_outputs(pred, two_slides / "manifest.csv", split="test")
    assert report.downsample == 2.0 and not report.failed and not report.missing
    by_name = {s.name: s.scores for s in report.slides}
    assert by_name["gradient"].foreground_dice == pytest.approx(1.0)
    assert by_name["second slide"].foreground_dice == pytest.approx(2 * 10000 / (10000 + 20000))
    # pooled: tp 30 000, fp 0, fn 10 000 -> 60 000 / 70 000
    assert report.pooled.foreground_dice == pytest.approx(6 / 7)
    assert report.pooled.foreground_iou == pytest.approx(3 / 4)
    metrics = report.as_dict()
    assert metrics["pooled"]["dice"]["tumour"] == pytest.approx(6 / 7)
    assert [s["name"] for s in metrics["slides"]] == ["gradient", "second slide"]


def test_evaluate_cli_writes_metrics_and_reports_missing_and_broken(two_slides):
    pred = two_slides / "pred"
    labels = np.zeros((350, 500), np.uint8)
    labels[50:150, 100:300] = 1
    _segmented(pred, "gradient", labels)
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--pred",
            str(pred),
            "--manifest",
            str(two_slides / "manifest.csv"),
            "--downsample",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((pred / "metrics.json").read_text())
    assert metrics["evaluation_downsample"] == 4.0
    assert metrics["pooled"]["foreground_dice"] == pytest.approx(1.0)
    assert metrics["missing"] == [str(two_slides / "second slide.tiff")]
    assert "(pooled)" in result.output

    shutil.rmtree(pred / "gradient" / "labels.zarr")
    result = CliRunner().invoke(
        main, ["evaluate", "--pred", str(pred), "--manifest", str(two_slides / "manifest.csv")]
    )
    assert result.exit_code == 2
    assert "gradient" in result.output and "cannot score" in result.output


def test_evaluate_refuses_outputs_of_different_resolutions(two_slides):
    pred = two_slides / "pred"
    _segmented(pred, "gradient", np.zeros((350, 500), np.uint8), downsample=2.0)
    _segmented(pred, "second slide", np.zeros((700, 1000), np.uint8), downsample=1.0)
    with pytest.raises(RaznError, match=r"disagree on output_downsample.*--downsample"):
        evaluate_outputs(pred, two_slides / "manifest.csv")
