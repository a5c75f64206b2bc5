"""An overlay PNG: the slide thumbnail with the predicted classes, beside the zoom map.

Left: the thumbnail with every non-background class tinted. Right: the thumbnail
tinted by the working level at which each area was decided (coarse = blue through
fine = red). Sampling is nearest neighbour, so no label is ever interpolated.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from razn.geometry import centre_indices

CLASS_COLOURS = np.array(
    [[0, 0, 0], [230, 30, 30], [30, 160, 30], [30, 60, 220], [220, 160, 0], [160, 0, 200]],
    np.float32,
)
LEVEL_COLOURS = np.array(
    [[40, 90, 230], [40, 190, 200], [120, 200, 60], [240, 170, 30], [230, 40, 40]], np.float32
)


def zoom_level_map(
    rows: Iterable[tuple[int, int, int, int, int, str, float]],
    extents: list[int],
    size: tuple[int, int],
    downsample: float,
) -> np.ndarray:
    """``int8 [h, w]`` final level of each thumbnail pixel (−1 where nothing was decided).

    ``rows`` are decision rows ``(level, col, row, x, y, action, p)``; breaks are painted.
    """
    level_map = np.full((size[1], size[0]), -1, np.int8)
    for level, _col, _row, x, y, action, _p in rows:
        if action != "break":
            continue
        extent = extents[level]
        x0, y0 = int(x // downsample), int(y // downsample)
        x1, y1 = int(np.ceil((x + extent) / downsample)), int(np.ceil((y + extent) / downsample))
        level_map[y0:y1, x0:x1] = level
    return level_map


def sample_labels(
    labels: Any, labels_downsample: float, size: tuple[int, int], downsample: float
) -> np.ndarray:
    """Nearest-neighbour labels on a thumbnail grid of ``size`` ``(w, h)`` at ``downsample``."""
    rows = np.minimum(
        centre_indices(0, downsample, size[1], labels_downsample), labels.shape[0] - 1
    )
    cols = np.minimum(
        centre_indices(0, downsample, size[0], labels_downsample), labels.shape[1] - 1
    )
    if hasattr(labels, "oindex"):  # zarr: orthogonal selection reads each chunk once
        return np.asarray(labels.oindex[rows, cols])
    return np.asarray(labels)[np.ix_(rows, cols)]


def overlay_image(
    thumbnail: np.ndarray, labels: np.ndarray, level_map: np.ndarray, alpha: float = 0.45
) -> np.ndarray:
    """The two panels side by side, ``(h, 2w + gap, 3)`` uint8."""
    base = thumbnail.astype(np.float32)
    classes = np.clip(labels, 0, len(CLASS_COLOURS) - 1)
    tint = CLASS_COLOURS[classes]
    left = np.where((labels > 0)[..., None], (1 - alpha) * base + alpha * tint, base)
    levels = LEVEL_COLOURS[np.clip(level_map, 0, len(LEVEL_COLOURS) - 1)]
    right = np.where((level_map >= 0)[..., None], (1 - alpha) * base + alpha * levels, base)
    gap = np.full((base.shape[0], 8, 3), 255, np.float32)
    return np.concatenate([left, gap, right], axis=1).round().astype(np.uint8)


def save_overlay(path: Path, image: np.ndarray) -> Path:
    Image.fromarray(image).save(path)
    return path
