"""An overlay PNG: the slide thumbnail with the predicted classes, beside the zoom map.

Left: the thumbnail with every non-background class tinted. Right: the thumbnail
tinted by the working level at which each area was decided, on a colour ramp over the
slide's actual levels (coarsest = blue through finest = red, :func:`level_colours`),
with a legend; untinted areas hold no tissue and were never decided. Sampling is
nearest neighbour, so no label is ever interpolated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from razn.geometry import centre_indices

CLASS_COLOURS = np.array(
    [[0, 0, 0], [230, 30, 30], [30, 160, 30], [30, 60, 220], [220, 160, 0], [160, 0, 200]],
    np.float32,
)
LEVEL_RAMP = np.array(
    [[40, 90, 230], [40, 190, 200], [120, 200, 60], [240, 170, 30], [230, 40, 40]], np.float32
)
"""Stops of the zoom-level colour ramp, blue (coarse) to red (fine)."""


def level_colours(num_levels: int) -> np.ndarray:
    """``(num_levels, 3)`` float RGB (0–255) for working levels 0 … m: the ramp sampled
    evenly, so the coarsest is always blue and the finest always red."""
    if num_levels <= 1:
        return LEVEL_RAMP[-1:].copy()
    positions = np.linspace(0, len(LEVEL_RAMP) - 1, num_levels)
    below = np.floor(positions).astype(int)
    above = np.minimum(below + 1, len(LEVEL_RAMP) - 1)
    weight = (positions - below)[:, None]
    return (1 - weight) * LEVEL_RAMP[below] + weight * LEVEL_RAMP[above]


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
    thumbnail: np.ndarray,
    labels: np.ndarray,
    level_map: np.ndarray,
    downsamples: Sequence[float],
    class_colours: Sequence[Sequence[int]] | None = None,
    alpha: float = 0.45,
) -> np.ndarray:
    """The two panels side by side with the zoom map's legend below, ``(h + legend, 2w +
    gap, 3)`` uint8; ``downsamples`` are the working levels' (coarsest first);
    ``class_colours`` RGB (0–255) per class value, razn's palette by default."""
    base = thumbnail.astype(np.float32)
    palette = CLASS_COLOURS if class_colours is None else np.asarray(class_colours, np.float32)
    classes = np.clip(labels, 0, len(palette) - 1)
    tint = palette[classes]
    left = np.where((labels > 0)[..., None], (1 - alpha) * base + alpha * tint, base)
    colours = level_colours(len(downsamples))
    levels = colours[np.clip(level_map, 0, len(colours) - 1)]
    right = np.where((level_map >= 0)[..., None], (1 - alpha) * base + alpha * levels, base)
    gap = np.full((base.shape[0], 8, 3), 255, np.float32)
    panels = np.concatenate([left, gap, right], axis=1).round().astype(np.uint8)
    return np.concatenate([panels, _legend(panels.shape[1], colours, downsamples)], axis=0)


LEGEND_ROW = 16
"""Pixels per legend entry below the overlay's panels."""


def legend_height(num_levels: int) -> int:
    """Height of the overlay's legend strip: one row per level and one for "untinted"."""
    return LEGEND_ROW * (num_levels + 1) + 8


def _legend(width: int, colours: np.ndarray, downsamples: Sequence[float]) -> np.ndarray:
    """A white strip naming each level's colour, and that untinted areas hold no tissue."""
    from PIL import ImageDraw

    entries: list[tuple[np.ndarray | None, str]] = [
        (c, f"level {k} (downsample {d:g})")
        for k, (c, d) in enumerate(zip(colours, downsamples, strict=True))
    ]
    entries.append((None, "untinted: no tissue, never decided"))
    row = LEGEND_ROW
    strip = Image.new("RGB", (width, legend_height(len(downsamples))), "white")
    draw = ImageDraw.Draw(strip)
    for index, (colour, text) in enumerate(entries):
        top = 4 + index * row
        box = (8, top + 2, 20, top + 13)
        if colour is None:
            draw.rectangle(box, outline=(120, 120, 120))
        else:
            draw.rectangle(box, fill=tuple(int(v) for v in colour))
        draw.text((26, top + 1), text, fill=(0, 0, 0))
    return np.asarray(strip)


def save_overlay(path: Path, image: np.ndarray) -> Path:
    Image.fromarray(image).save(path)
    return path
