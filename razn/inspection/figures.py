"""Figures of a slide's zoom decisions: each function returns one matplotlib ``Figure``.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state), so they
work the same in a notebook (displayed inline), a script or a thread. Images are
drawn in level-0 pixel coordinates (``extent``), so panels of different resolutions
line up and axis ticks read as level-0 ``x``/``y``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from razn.errors import OutputError
from razn.inspection.outputs import NOT_DECIDED, SlideOutputs
from razn.inspection.stats import (
    border_share_by_level,
    class_share_by_level,
    decision_statistics,
    tissue_share_by_level,
    truth_on_pyramid,
)
from razn.outputs.overlay import level_colours

THUMBNAIL_SIDE = 1024
ERROR_COLOURS = {"false positive": (240, 150, 0), "false negative": (40, 90, 230)}


def zoom_map_figure(outputs: SlideOutputs, max_side: int = THUMBNAIL_SIDE) -> Figure:
    """The thumbnail tinted by the working level at which each area was decided."""
    level = outputs.level_for_size(max_side)
    zoom = outputs.zoom_map(level)
    thumbnail, _ = outputs.thumbnail(max_side)
    shares = tissue_share_by_level(zoom, len(outputs.working_downsamples))
    figure = Figure(figsize=(7, 6.5), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    axes.imshow(thumbnail, extent=_extent(outputs, thumbnail.shape))
    colours = level_colours(len(outputs.working_downsamples)) / 255
    tint = _level_rgba(zoom, colours)
    axes.imshow(tint, extent=_extent(outputs, zoom.shape, outputs.pyramid_downsample(level)))
    handles = [
        Patch(color=colours[k], label=f"level {k} (×{d:g}): {100 * s:.1f} % of tissue")
        for k, (d, s) in enumerate(zip(outputs.working_downsamples, shares, strict=True))
    ]
    handles.append(Patch(facecolor="none", edgecolor="grey", label="untinted: no tissue"))
    axes.legend(handles=handles, fontsize=8, loc="upper right")
    axes.set_title(f"{outputs.name}: where each area was decided ({outputs.mode})")
    _label_axes(axes)
    return figure


def zoom_probability_figure(outputs: SlideOutputs, max_side: int = 512) -> Figure:
    """P(zoom) of every node the policy decided, one heat-map panel per decision level."""
    decisions = outputs.decisions()
    levels = len(outputs.working_downsamples) - 1
    w, h = outputs.dimensions
    cell = max(w, h) / max_side
    shape = (max(1, round(h / cell)), max(1, round(w / cell)))
    figure = Figure(figsize=(4.2 * max(levels, 1) + 1, 4.4), dpi=110, layout="constrained")
    image = None
    for level in range(levels):
        axes = figure.add_subplot(1, max(levels, 1), level + 1)
        canvas = np.full(shape, np.nan)
        rows = decisions[
            (decisions["level"] == level) & decisions["action"].isin(["zoom", "break"])
        ]
        extent = outputs.extent(level)
        for x, y, p in zip(rows["x"], rows["y"], rows["zoom_probability"], strict=True):
            canvas[_span(y, extent, cell, shape[0]), _span(x, extent, cell, shape[1])] = p
        image = axes.imshow(canvas, vmin=0, vmax=1, cmap="magma", extent=(0, w, h, 0))
        zoomed = int((rows["action"] == "zoom").sum())
        axes.set_title(f"g_{level}: {zoomed} of {len(rows)} zoomed", fontsize=9)
        axes.set_facecolor("#dddddd")
        _label_axes(axes)
    if image is not None:
        figure.colorbar(image, ax=figure.axes, shrink=0.8, label="P(zoom)")
    figure.suptitle(f"{outputs.name}: the policy's zoom probability per level")
    return figure


def truth_figure(
    outputs: SlideOutputs, truth: str | Path, max_side: int = THUMBNAIL_SIDE
) -> Figure:
    """Prediction, ground truth and their disagreement side by side."""
    level = outputs.level_for_size(max_side)
    predicted = outputs.labels(level)
    expected = truth_on_pyramid(outputs, truth, level)
    extent = _extent(outputs, predicted.shape, outputs.pyramid_downsample(level))
    figure = Figure(figsize=(13, 4.8), dpi=110, layout="constrained")
    names = outputs.class_names
    for index, (title, labels) in enumerate(
        (("prediction", predicted), ("ground truth", expected))
    ):
        axes = figure.add_subplot(1, 3, index + 1)
        axes.imshow(_class_rgb(labels, outputs.class_colours), extent=extent)
        axes.set_title(title)
        _label_axes(axes)
    axes = figure.add_subplot(1, 3, 3)
    axes.imshow(_error_rgb(predicted, expected), extent=extent)
    valid = expected != 255
    wrong = int(((predicted != expected) & valid).sum())
    axes.set_title(f"errors: {100 * wrong / max(int(valid.sum()), 1):.2f} % of pixels")
    handles = [
        Patch(color=(r / 255, g / 255, b / 255), label=k) for k, (r, g, b) in ERROR_COLOURS.items()
    ]
    axes.legend(handles=handles, fontsize=8, loc="upper right")
    _label_axes(axes)
    palette = outputs.class_colours / 255
    legend = [Patch(color=tuple(palette[k]), label=n) for k, n in enumerate(names) if k]
    # "outside": constrained layout makes room below the panels, clear of their axis labels
    figure.legend(handles=legend, loc="outside lower center", ncol=len(legend) or 1, fontsize=8)
    figure.suptitle(f"{outputs.name}: prediction against ground truth ({outputs.mode})")
    return figure


def region_figure(
    outputs: SlideOutputs,
    location: tuple[int, int],
    size: int,
    level: int | None = None,
) -> Figure:
    """A region read at working ``level`` (default the finest) with the predicted
    classes and the patch grid of every decision inside it, coloured by level.

    Args:
        location: the region's level-0 top-left ``(x, y)``.
        size: the region's side in level-0 pixels.
    """
    from razn.slide import open_slide, read_at_downsample

    downsamples = outputs.working_downsamples
    level = len(downsamples) - 1 if level is None else level
    d = downsamples[level]
    side = max(1, round(size / d))
    x, y = location
    if outputs.slide_path is None:
        raise OutputError("summary.json names no slide", outputs.folder)
    with open_slide(outputs.slide_path) as slide:
        image = read_at_downsample(slide, (x, y), d, (side, side))
    labels = _crop_labels(outputs, location, size)
    figure = Figure(figsize=(7, 7), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    region = (x, x + size, y + size, y)
    axes.imshow(image, extent=region)
    axes.imshow(_class_rgb(labels, outputs.class_colours, alpha=0.35), extent=region)
    _draw_patch_grid(axes, outputs, location, size)
    axes.set_xlim(x, x + size)
    axes.set_ylim(y + size, y)
    axes.set_title(f"{outputs.name}: region at ({x}, {y}), read at working level {level} (×{d:g})")
    _label_axes(axes)
    return figure


def decision_statistics_figure(outputs: SlideOutputs, rewards: np.ndarray | None = None) -> Figure:
    """Zoom rate per level and, with oracle rewards (one per decision row), split by
    whether zooming helped."""
    table = decision_statistics(outputs.decisions(), len(outputs.working_downsamples), rewards)
    figure = Figure(figsize=(6.5, 4), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    x = np.arange(len(table))
    if rewards is None:
        axes.bar(x, table["zoom_rate"], color="tab:red", label="all nodes")
    else:
        width = 0.27
        axes.bar(x - width, table["zoom_rate"], width, color="tab:red", label="all nodes")
        axes.bar(x, table["zoom_rate_helped"], width, color="tab:green", label="zoom helped")
        axes.bar(x + width, table["zoom_rate_not_helped"], width, color="tab:grey",
                 label="zoom did not help")  # fmt: skip
    axes.set_xticks(
        x, [f"g_{lv}\n{n} nodes" for lv, n in zip(table["level"], table["nodes"], strict=True)]
    )
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("zoom rate")
    axes.legend(fontsize=8)
    axes.set_title("decisions per level")
    return figure


def area_by_level_figure(outputs: SlideOutputs, truth: str | Path | None = None) -> Figure:
    """Share of the tissue decided per level; with ground truth also each foreground
    class's area and border (where the classes needed their zoom)."""
    level = outputs.level_for_size(4096)
    zoom = outputs.zoom_map(level)
    num_levels = len(outputs.working_downsamples)
    panels = {"area": {"all tissue": tissue_share_by_level(zoom, num_levels)}}
    if truth is not None:
        expected = truth_on_pyramid(outputs, truth, level)
        names = outputs.class_names
        panels["border"] = {}
        for value, name in enumerate(names[1:], start=1):
            panels["area"][name] = class_share_by_level(zoom, expected, value, num_levels)
            panels["border"][f"{name} border"] = border_share_by_level(
                zoom, expected, num_levels, value
            )
    figure = Figure(figsize=(6.5, 3.2 * len(panels) + 0.8), dpi=110, layout="constrained")
    x = np.arange(num_levels)
    ticks = [f"level {k}\n×{d:g}" for k, d in enumerate(outputs.working_downsamples)]
    for row, (what, series) in enumerate(panels.items()):
        axes = figure.add_subplot(len(panels), 1, row + 1)
        width = 0.8 / len(series)
        for i, (name, shares) in enumerate(series.items()):
            bars = axes.bar(x + (i - (len(series) - 1) / 2) * width, shares, width, label=name)
            axes.bar_label(bars, [f"{100 * s:.0f} %" for s in shares], fontsize=7)
        axes.set_xticks(x, ticks)
        axes.set_ylabel(f"share of {what} decided here")
        axes.set_ylim(0, 1.15)
        axes.legend(fontsize=8, ncol=min(len(series), 4))
    figure.suptitle(f"{outputs.name}: where the area was decided")
    return figure


def pareto_figure(rows: Sequence[dict[str, Any]], default_lambda: float | None = None) -> Figure:
    """Dice against seconds per test slide from ``razn benchmark`` result rows: razn and the
    oracle (its ceiling) as curves over λ, the other modes as points (see
    :mod:`razn.benchmark.report`)."""
    figure = Figure(figsize=(7, 5), dpi=120, layout="constrained")
    axes = figure.add_subplot()
    clean = [r for r in rows if r.get("variant", "clean") == "clean"]
    _razn_curve(axes, clean, default_lambda)
    _oracle_curve(axes, clean)
    markers = {"ud": "v", "cip": "^", "uncertainty": "D", "random": "x", "oracle": "*"}
    for r in (r for r in clean if r["mode"] not in ("razn", "oracle")):
        label = r["mode"]
        if r["mode"] in ("uncertainty", "random"):
            label += " (matched on test compute)" if r.get("matched_on") == "test" else " (matched)"
        axes.scatter(
            _per_slide(r), r["dice"], marker=markers.get(r["mode"], "P"), s=60, label=label
        )
    for r in (r for r in rows if r.get("variant") == "noisy"):
        axes.scatter(_per_slide(r), r["dice"], marker="o", facecolors="none", edgecolors="grey",
                     s=60, label=f"{r['mode']} (noisy labels)")  # fmt: skip
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes.legend(unique.values(), unique.keys(), fontsize=7, loc="lower right")
    axes.set_xlabel("seconds per test slide")
    axes.set_ylabel("foreground Dice (pooled)")
    axes.set_title("razn: accuracy against compute")
    axes.grid(alpha=0.3)
    return figure


# -- helpers ------------------------------------------------------------------------------
def _razn_curve(axes: Any, clean: Sequence[dict[str, Any]], default_lambda: float | None) -> None:
    razn = [r for r in clean if r["mode"] == "razn" and r.get("lambda") is not None]
    seeds = {r.get("seed") for r in razn}
    curve_seed = min(seeds, key=lambda s: (s is not None, s or 0)) if seeds else None
    curve = sorted((r for r in razn if r.get("seed") == curve_seed), key=_per_slide)
    if curve:
        axes.plot([_per_slide(r) for r in curve], [r["dice"] for r in curve], "o-",
                  color="tab:red", label="razn (λ sweep)")  # fmt: skip
        for r in curve:
            axes.annotate(f"λ={r['lambda']:g}", (_per_slide(r), r["dice"]),
                          textcoords="offset points", xytext=(4, -10), fontsize=7)  # fmt: skip
    defaults = [
        r for r in razn if default_lambda is not None and abs(r["lambda"] - default_lambda) < 1e-12
    ]
    if len(defaults) > 1:
        xs, ys = [_per_slide(r) for r in defaults], [r["dice"] for r in defaults]
        axes.errorbar(np.mean(xs), np.mean(ys), xerr=np.std(xs, ddof=1), yerr=np.std(ys, ddof=1),
                      fmt="s", color="darkred", capsize=3,
                      label=f"razn λ={default_lambda:g}, {len(defaults)} seeds")  # fmt: skip


def _oracle_curve(axes: Any, clean: Sequence[dict[str, Any]]) -> None:
    oracle = sorted((r for r in clean if r["mode"] == "oracle"), key=_per_slide)
    if oracle:
        axes.plot([_per_slide(r) for r in oracle], [r["dice"] for r in oracle], "*--",
                  color="tab:green", label="oracle (λ sweep)")  # fmt: skip


def _per_slide(row: dict[str, Any]) -> float:
    return float(row["seconds"]) / max(int(row.get("slides", 1)), 1)


def _extent(
    outputs: SlideOutputs, shape: tuple[int, ...], downsample: float | None = None
) -> tuple[float, float, float, float]:
    """``imshow`` extent in level-0 pixels of an image of ``shape`` at ``downsample``
    (default: the image spans the whole slide)."""
    w, h = outputs.dimensions
    if downsample is None:
        return (0, w, h, 0)
    return (0, shape[1] * downsample, shape[0] * downsample, 0)


def _span(start: float, extent: float, cell: float, limit: int) -> slice:
    return slice(
        int(start // cell), min(limit, max(int(start // cell) + 1, round((start + extent) / cell)))
    )


def _level_rgba(zoom: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    rgba = np.zeros((*zoom.shape, 4), np.float32)
    decided = zoom != NOT_DECIDED
    rgba[..., :3] = colours[np.clip(zoom, 0, len(colours) - 1)]
    rgba[..., 3] = np.where(decided, alpha, 0.0)
    return rgba


def _class_rgb(labels: np.ndarray, palette: np.ndarray, alpha: float | None = None) -> np.ndarray:
    """RGB(A) 0–1 of a class map; ``palette`` ``(K, 3)`` RGB 0–255 per class value."""
    colours = palette[np.clip(labels, 0, len(palette) - 1)] / 255
    colours = np.where((labels == 255)[..., None], 0.85, colours)  # ignored: light grey
    if alpha is None:
        return colours
    return np.concatenate([colours, np.where(labels > 0, alpha, 0.0)[..., None]], axis=-1)


def _error_rgb(predicted: np.ndarray, expected: np.ndarray) -> np.ndarray:
    rgb = np.ones((*predicted.shape, 3), np.float32)
    valid = expected != 255
    rgb[(predicted > 0) & (expected == 0) & valid] = np.array(ERROR_COLOURS["false positive"]) / 255
    rgb[(predicted == 0) & (expected > 0) & valid] = np.array(ERROR_COLOURS["false negative"]) / 255
    other = (predicted > 0) & (expected > 0) & (predicted != expected) & valid
    rgb[other] = (0.6, 0.0, 0.6)  # foreground of the wrong class
    rgb[~valid] = 0.85
    return rgb


def _crop_labels(outputs: SlideOutputs, location: tuple[int, int], size: int) -> np.ndarray:
    """The output labels under a level-0 square (pyramid level 0, outside = 0)."""
    import zarr

    from razn.outputs import layout
    from razn.zarr_nodes import child_array

    path = outputs.folder / layout.LABELS_OME
    array = child_array(zarr.open_group(str(path), mode="r"), "0", path, OutputError)
    d = outputs.output_downsample
    x0, y0 = int(location[0] // d), int(location[1] // d)
    n = max(1, round(size / d))
    crop = np.zeros((n, n), np.uint8)
    part = np.asarray(array[y0 : y0 + n, x0 : x0 + n])
    crop[: part.shape[0], : part.shape[1]] = part
    return crop


def _draw_patch_grid(
    axes: Any, outputs: SlideOutputs, location: tuple[int, int], size: int
) -> None:
    decisions = outputs.decisions()
    x, y = location
    breaks = decisions[decisions["action"] == "break"]
    handles = {}
    for level, bx, by in zip(breaks["level"], breaks["x"], breaks["y"], strict=True):
        extent = outputs.extent(level)
        if bx + extent <= x or by + extent <= y or bx >= x + size or by >= y + size:
            continue
        colour = level_colours(len(outputs.working_downsamples))[level] / 255
        axes.add_patch(Rectangle((bx, by), extent, extent, fill=False, edgecolor=colour, lw=1.2))
        handles[level] = Patch(edgecolor=colour, fill=False, label=f"decided at level {level}")
    if handles:
        axes.legend(handles=[handles[k] for k in sorted(handles)], fontsize=8, loc="upper right")


def _label_axes(axes: Any) -> None:
    axes.set_xlabel("x (level-0 px)", fontsize=8)
    axes.set_ylabel("y (level-0 px)", fontsize=8)
    axes.tick_params(labelsize=7)


__all__ = [
    "area_by_level_figure",
    "decision_statistics_figure",
    "pareto_figure",
    "region_figure",
    "truth_figure",
    "zoom_map_figure",
    "zoom_probability_figure",
]
