"""Batched inference of a segmentation network on uint8 patches."""

from __future__ import annotations

import numpy as np
import torch

from razn.models.device import select_device, to_device
from razn.models.factory import Segmenter

__all__ = ["class_labels", "predict_probs", "select_device", "tissue_labels"]


@torch.inference_mode()
def predict_probs(
    model: Segmenter,
    patches: np.ndarray,
    batch_size: int = 16,
    *,
    autocast: torch.dtype | None = None,
) -> np.ndarray:
    """Class probabilities for ``patches``.

    Args:
        patches: ``(N, H, W, 3)`` uint8 RGB (pinned host memory goes to a GPU without a copy).
        autocast: mixed-precision dtype on CUDA (see :func:`razn.models.device.autocast_dtype`);
            None runs fp32. The softmax is always taken in fp32.
    Returns:
        ``(N, K, H, W)`` float32 softmax probabilities.
    """
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(patches), batch_size):
        batch = to_device(patches[start : start + batch_size], device).permute(0, 3, 1, 2)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = model(batch)
        outputs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    if not outputs:
        return np.zeros((0, model.num_classes, *patches.shape[1:3]), np.float32)
    return np.concatenate(outputs)


def class_labels(probs: np.ndarray) -> np.ndarray:
    """The most probable class of each pixel, ``(N, K, H, W)`` → ``(N, H, W)`` uint8.

    Same result as ``probs.argmax(axis=1)`` (the lowest class wins ties) at about half the
    cost: numpy's argmax over a non-contiguous axis is slow, a running maximum is not.
    """
    best = probs[:, 0].copy()
    labels = np.zeros(best.shape, np.uint8)
    for k in range(1, probs.shape[1]):
        better = probs[:, k] > best
        labels[better] = k
        np.maximum(best, probs[:, k], out=best)
    return labels


def tissue_labels(probs: np.ndarray, on_tissue: np.ndarray) -> np.ndarray:
    """The classes razn outputs for patches, ``(N, H, W)`` uint8: f_i's most probable class
    on tissue and background (0) elsewhere. The engine writes these and the reward cache
    scores these, so the rewards describe exactly what the engine makes."""
    return np.where(on_tissue, class_labels(probs), 0).astype(np.uint8)
