"""Numbers behind the figures: zoom rates per level, and where the area was decided.

Areas are counted on one pyramid level of the outputs (pixels of equal size), so a
share is a share of slide area. The tumour border is the set of ground-truth pixels
with a 4-neighbour of another class, at that pyramid level's resolution.
"""

from __future__ import annotations

import numpy as np

from razn.inspection.outputs import NOT_DECIDED, SlideOutputs


def decision_statistics(
    decisions, num_levels: int, rewards: np.ndarray | None = None
):  # -> pandas.DataFrame
    """Per decision level (0 … ``num_levels`` − 2): nodes decided, zooms, zoom rate and,
    with ``rewards`` (one per row, :func:`razn.inspection.oracle.decision_rewards`), the
    zoom rate among the nodes where zooming helped (reward > 0) and among the rest."""
    import pandas as pd

    decided = decisions["action"].isin(["zoom", "break"]).to_numpy()
    zoomed = (decisions["action"] == "zoom").to_numpy()
    levels = decisions["level"].to_numpy()
    rows = []
    for level in range(num_levels - 1):
        at = decided & (levels == level)
        row: dict[str, float] = {
            "level": level,
            "nodes": int(at.sum()),
            "zooms": int((at & zoomed).sum()),
        }
        row["zoom_rate"] = row["zooms"] / row["nodes"] if row["nodes"] else float("nan")
        if rewards is not None:
            known = at & ~np.isnan(rewards)
            helped = known & (rewards > 0)
            row["helped"] = int(helped.sum())
            row["zoom_rate_helped"] = _rate(zoomed, helped)
            row["zoom_rate_not_helped"] = _rate(zoomed, known & ~helped)
        rows.append(row)
    return pd.DataFrame(rows)


def _rate(zoomed: np.ndarray, where: np.ndarray) -> float:
    count = int(where.sum())
    return float((zoomed & where).sum() / count) if count else float("nan")


def tissue_share_by_level(zoom_map: np.ndarray, num_levels: int) -> list[float]:
    """Share of the decided area (tissue) that was decided at each working level."""
    decided = zoom_map != NOT_DECIDED
    total = int(decided.sum())
    return [float((zoom_map == k).sum() / total) if total else 0.0 for k in range(num_levels)]


def border_pixels(truth: np.ndarray) -> np.ndarray:
    """Pixels of ``truth`` (labels, 255 = ignore) with a 4-neighbour of another class."""
    border = np.zeros(truth.shape, bool)
    vertical = truth[1:, :] != truth[:-1, :]
    horizontal = truth[:, 1:] != truth[:, :-1]
    border[1:, :] |= vertical
    border[:-1, :] |= vertical
    border[:, 1:] |= horizontal
    border[:, :-1] |= horizontal
    return border & (truth != 255)


def border_share_by_level(
    zoom_map: np.ndarray, truth: np.ndarray, num_levels: int, value: int | None = None
) -> list[float]:
    """Share of the decided class-border area that was decided at each working level;
    ``value``: only the border pixels of that class (all borders by default)."""
    border = border_pixels(truth)
    if value is not None:
        border &= truth == value
    return _shares(zoom_map, border, num_levels)


def class_share_by_level(
    zoom_map: np.ndarray, truth: np.ndarray, value: int, num_levels: int
) -> list[float]:
    """Share of class ``value``'s decided area (by ``truth``) decided at each working level."""
    areas = class_level_areas(zoom_map, truth, value + 1, num_levels)
    return [float(x) for x in level_shares(areas)[value]]


def class_level_areas(
    level_map: np.ndarray, truth: np.ndarray, num_classes: int, num_levels: int
) -> np.ndarray:
    """Pixels of each class (by ``truth``; 255 = ignore) decided at each working level,
    ``int64 (num_classes, num_levels)``; ``level_map`` holds the working level of each pixel
    (any value outside ``0 … num_levels − 1`` is not decided) on the grid of ``truth``.
    Counts, not shares, so that slides can be pooled by adding them."""
    if level_map.shape != truth.shape:
        raise ValueError(f"level map {level_map.shape} and truth {truth.shape} differ in shape")
    levels = level_map.astype(np.int64)
    classes = truth.astype(np.int64)
    valid = (levels >= 0) & (levels < num_levels) & (classes < num_classes)
    index = classes[valid] * num_levels + levels[valid]
    counts = np.bincount(index, minlength=num_classes * num_levels)
    return counts.reshape(num_classes, num_levels)


def level_shares(areas: np.ndarray) -> np.ndarray:
    """Each row of ``areas`` (:func:`class_level_areas`) as shares summing to 1 (0 where empty)."""
    areas = np.asarray(areas, np.float64)
    totals = areas.sum(axis=1, keepdims=True)
    return np.divide(areas, totals, out=np.zeros_like(areas), where=totals > 0)


def _shares(zoom_map: np.ndarray, where: np.ndarray, num_levels: int) -> list[float]:
    where = where & (zoom_map != NOT_DECIDED)
    total = int(where.sum())
    return [
        float((where & (zoom_map == k)).sum() / total) if total else 0.0 for k in range(num_levels)
    ]


def truth_on_pyramid(outputs: SlideOutputs, truth_path, level: int) -> np.ndarray:
    """The ground-truth mask on the grid of pyramid ``level`` (nearest neighbour)."""
    from razn.data.masks import open_mask

    shape = outputs.labels(level).shape
    with open_mask(truth_path, outputs.dimensions) as mask:
        return mask.read_labels((0, 0), outputs.pyramid_downsample(level), (shape[1], shape[0]))
