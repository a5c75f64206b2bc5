"""Batched inference of a segmentation network on uint8 patches."""

from __future__ import annotations

import numpy as np
import torch

from razn.models.factory import Segmenter


def select_device(requested: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; otherwise the named device."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


@torch.inference_mode()
def predict_probs(model: Segmenter, patches: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Class probabilities for ``patches``.

    Args:
        patches: ``(N, H, W, 3)`` uint8 RGB.
    Returns:
        ``(N, K, H, W)`` float32 softmax probabilities.
    """
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(patches), batch_size):
        batch = torch.tensor(patches[start : start + batch_size])  # copies: inputs may be read-only
        batch = batch.to(device).permute(0, 3, 1, 2)
        outputs.append(torch.softmax(model(batch).float(), dim=1).cpu().numpy())
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
