"""Segmentation loss (cross-entropy + soft Dice) and Dice bookkeeping; label 255 is ignored."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional torch alias

from razn.data.masks import IGNORE

_SMOOTH = 1.0  # Laplace smoothing of the soft Dice: keeps classes absent from a batch finite


def segmentation_loss(
    logits: torch.Tensor, labels: torch.Tensor, dice_weight: float = 1.0
) -> torch.Tensor:
    """Cross-entropy plus ``dice_weight`` × soft Dice loss, both over non-ignored pixels.

    Args:
        logits: ``(N, K, H, W)`` float.
        labels: ``(N, H, W)`` integer classes, 255 = ignore.
    """
    labels = labels.long()
    valid = labels != IGNORE
    # A sum over valid pixels divided by their count (at least 1): a batch that is all
    # "ignore" contributes zero loss instead of the NaN that reduction="mean" gives.
    ce = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum")
    ce = ce / valid.sum().clamp(min=1)
    if dice_weight == 0:
        return ce
    return ce + dice_weight * soft_dice_loss(logits, labels, valid)


def soft_dice_loss(
    logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """``1 − mean over classes`` of the soft Dice of softmax probabilities, pooled over the batch."""
    if valid is None:
        valid = labels != IGNORE
    probs = torch.softmax(logits.float(), dim=1) * valid.unsqueeze(1)
    target = F.one_hot(labels.masked_fill(~valid, 0), logits.shape[1]).permute(0, 3, 1, 2)
    target = target * valid.unsqueeze(1)
    dims = (0, 2, 3)
    intersection = (probs * target).sum(dims)
    total = probs.sum(dims) + target.sum(dims)
    dice = (2 * intersection + _SMOOTH) / (total + _SMOOTH)
    return 1 - dice.mean()


class DiceCounter:
    """Accumulates hard-prediction Dice per class over many batches (pixels pooled).

    Dice of class ``c`` is ``2·|P∩T| / (|P| + |T|)``; a class absent from both the
    predictions and the labels scores 1 (nothing to find, nothing wrongly found).
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.intersection = np.zeros(num_classes, np.int64)
        self.predicted = np.zeros(num_classes, np.int64)
        self.actual = np.zeros(num_classes, np.int64)

    def update(self, predictions: torch.Tensor, labels: torch.Tensor) -> None:
        """Add ``(N, H, W)`` predicted classes against ``(N, H, W)`` labels (255 ignored)."""
        valid = labels != IGNORE
        pred = predictions[valid].long().cpu()
        true = labels[valid].long().cpu()
        k = self.num_classes
        self.intersection += torch.bincount(pred[pred == true], minlength=k)[:k].numpy()
        self.predicted += torch.bincount(pred, minlength=k)[:k].numpy()
        self.actual += torch.bincount(true, minlength=k)[:k].numpy()

    def dice(self) -> np.ndarray:
        """Dice of every class, ``(K,)`` float64 in [0, 1]."""
        total = self.predicted + self.actual
        with np.errstate(invalid="ignore", divide="ignore"):
            dice = np.where(total > 0, 2 * self.intersection / total, 1.0)
        return dice.astype(np.float64)
