"""Dice and IoU of a stitched label array against a ground-truth mask, chunk by chunk.

Both are compared on one grid, the **evaluation resolution** ``downsample`` (level-0
px per pixel): the prediction is sampled by nearest neighbour at the centres of
that grid's pixels, the mask by :meth:`razn.data.masks.LabelMask.read_labels`.
Pixels labelled 255 (ignore) in the mask are left out. Memory holds one block of
rows at a time, never a whole slide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from razn.data.masks import LabelMask
from razn.geometry import centre_indices


@dataclass(frozen=True)
class SegmentationScores:
    """Per-class Dice and IoU from a confusion matrix ``[truth, prediction]``."""

    confusion: np.ndarray

    @property
    def dice(self) -> np.ndarray:
        tp = np.diag(self.confusion).astype(np.float64)
        denominator = self.confusion.sum(axis=0) + self.confusion.sum(axis=1)
        return np.divide(2 * tp, denominator, out=np.full(len(tp), np.nan), where=denominator > 0)

    @property
    def iou(self) -> np.ndarray:
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(axis=0) + self.confusion.sum(axis=1) - tp
        return np.divide(tp, union, out=np.full(len(tp), np.nan), where=union > 0)

    @property
    def foreground_dice(self) -> float:
        """Mean Dice over classes 1 … K−1 (class 0, background, left out; NaN classes skipped).

        The headline figure: background covers most of a slide and its Dice is close to 1
        whatever the method, so including it hides the differences that matter.
        """
        return _nanmean(self.dice[1:])

    @property
    def foreground_iou(self) -> float:
        """Mean IoU over classes 1 … K−1 (see :attr:`foreground_dice`)."""
        return _nanmean(self.iou[1:])

    def as_dict(self, class_names: Sequence[str]) -> dict[str, Any]:
        """Per-class ``dice`` and ``iou`` (NaN classes are absent), their means over all
        classes and over the foreground classes, and the confusion matrix."""
        dice, iou = self.dice, self.iou
        return {
            "foreground_dice": self.foreground_dice,
            "foreground_iou": self.foreground_iou,
            "dice": {
                n: float(d) for n, d in zip(class_names, dice, strict=False) if not np.isnan(d)
            },
            "iou": {n: float(v) for n, v in zip(class_names, iou, strict=False) if not np.isnan(v)},
            "mean_dice": float(np.nanmean(dice)) if not np.isnan(dice).all() else float("nan"),
            "mean_iou": float(np.nanmean(iou)) if not np.isnan(iou).all() else float("nan"),
            "confusion": self.confusion.tolist(),
        }

    def __add__(self, other: SegmentationScores) -> SegmentationScores:
        return SegmentationScores(self.confusion + other.confusion)


def score_labels(
    prediction: Any,
    prediction_downsample: float,
    mask: LabelMask | np.ndarray,
    num_classes: int,
    downsample: float | None = None,
    rows_per_block: int = 1024,
) -> SegmentationScores:
    """Confusion of a predicted label array (zarr or numpy, ``[y, x]``) against ``mask``.

    Args:
        prediction: labels at ``prediction_downsample`` covering the slide from (0, 0).
        mask: the ground truth, aligned with the same slide; or the truth already read
            at ``downsample`` (see :func:`read_truth`), to score many predictions of one
            slide without reading its mask again.
        num_classes: K; predicted or true values >= K (other than 255) are an error.
        downsample: the evaluation resolution; defaults to the prediction's.
    """
    downsample = downsample or prediction_downsample
    if isinstance(mask, np.ndarray):
        height, width = mask.shape
    else:
        width, height = evaluation_shape(mask.slide_dimensions, downsample)
    cols = centre_indices(0, downsample, width, prediction_downsample)
    cols = np.minimum(cols, prediction.shape[1] - 1)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for y0 in range(0, height, rows_per_block):
        h = min(rows_per_block, height - y0)
        rows = centre_indices(y0 * downsample, downsample, h, prediction_downsample)
        rows = np.minimum(rows, prediction.shape[0] - 1)
        block = np.asarray(prediction[int(rows[0]) : int(rows[-1]) + 1])[rows - rows[0]][:, cols]
        if isinstance(mask, np.ndarray):
            truth = mask[y0 : y0 + h]
        else:
            truth = mask.read_labels((0, y0 * downsample), downsample, (width, h))
        confusion += confusion_matrix(truth, block, num_classes)
    return SegmentationScores(confusion)


def evaluation_shape(dimensions: tuple[int, int], downsample: float) -> tuple[int, int]:
    """``(width, height)`` of the evaluation grid at ``downsample`` over a slide of ``dimensions``."""
    return (
        int(np.ceil(dimensions[0] / downsample - 1e-9)),
        int(np.ceil(dimensions[1] / downsample - 1e-9)),
    )


def read_truth(mask: LabelMask, downsample: float) -> np.ndarray:
    """The whole ground truth at ``downsample``, ``[y, x]`` uint8 (255 = ignore)."""
    width, height = evaluation_shape(mask.slide_dimensions, downsample)
    return mask.read_labels((0, 0), downsample, (width, height))


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if values.size and not np.isnan(values).all() else float("nan")


def confusion_matrix(truth: np.ndarray, prediction: np.ndarray, num_classes: int) -> np.ndarray:
    """``[truth, prediction]`` counts over pixels whose truth is not 255 (ignore)."""
    keep = truth != 255
    t = truth[keep].astype(np.int64)
    p = prediction[keep].astype(np.int64)
    if t.size and (t.max() >= num_classes or p.max() >= num_classes):
        raise ValueError(f"labels must be below {num_classes} (or 255 in the truth)")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )
