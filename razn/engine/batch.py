"""Segment a list of slides into ``OUT_DIR/<slide name>/``, one failure never stopping the rest.

Per slide the engine writes, into a temporary folder renamed into place only when
everything is written (a half-written slide never looks done):

* ``labels.zarr``: uint8 class labels at the output resolution, ``[y, x]``;
* ``decisions.csv``: every node visited (level, col, row, x, y, action, zoom_probability);
* ``summary.json``: mode, λ, seconds, patches and nodes per level, level-0 pixels read,
  the time split into read, segment, policy and write, and the geometry;
* ``overlay.png``: the thumbnail with the predicted classes, beside the zoom map.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zarr

from razn import __version__
from razn.engine.zoom import SlideResult, ZoomEngine
from razn.errors import RaznError
from razn.outputs.overlay import overlay_image, sample_labels, save_overlay, zoom_level_map
from razn.slide import Slide, open_slide
from razn.slide.tissue import detect_tissue

THUMBNAIL_SIDE = 1024


@dataclass
class SlideOutcome:
    """What happened to one slide of a batch."""

    slide: Path
    status: str  # "done" or "failed"
    output: Path | None = None
    reason: str = ""
    seconds: float = 0.0
    patches: list[int] | None = None


def output_name(slide_path: Path) -> str:
    """A folder name for a slide's outputs: its file name without extension, made safe.

    Path separators, leading dots and control characters are replaced, so a name can
    never point outside the output folder; spaces, brackets and non-ASCII stay.
    """
    name = slide_path.name
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    safe = re.sub(r"[\x00-\x1f/\\:]", "_", stem).strip().lstrip(".")
    return safe or "slide"


def segment_slides(
    slides: Sequence[Path],
    engine: ZoomEngine,
    out_dir: Path,
    extra_summary: dict[str, Any] | None = None,
    progress: bool = False,
    on_done: Any = None,
) -> list[SlideOutcome]:
    """Segment every slide; return one outcome per slide, in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for path in slides:
        start = time.perf_counter()
        try:
            output, result = segment_one(Path(path), engine, out_dir, extra_summary or {}, progress)
            outcome = SlideOutcome(Path(path), "done", output, "", result.seconds, result.patches)
        except RaznError as exc:
            outcome = SlideOutcome(
                Path(path), "failed", None, str(exc), time.perf_counter() - start
            )
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return outcomes


def segment_one(
    path: Path, engine: ZoomEngine, out_dir: Path, extra: dict[str, Any], progress: bool = False
) -> tuple[Path, SlideResult]:
    """Segment one slide into ``out_dir/<name>/`` (written to a temporary folder first)."""
    target = out_dir / output_name(path)
    partial = out_dir / f".{target.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    with open_slide(path) as slide:
        tissue = detect_tissue(slide, engine.config.tissue)
        result = engine.segment(slide, partial / "labels.zarr", tissue=tissue, progress=progress)
        result.decisions.write_csv(partial / "decisions.csv")
        write_summary(partial / "summary.json", slide, engine, result, extra)
        write_overlay(partial / "overlay.png", slide, engine, result, partial / "labels.zarr")
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return target, result


def write_summary(
    path: Path, slide: Slide, engine: ZoomEngine, result: SlideResult, extra: dict[str, Any]
) -> None:
    geometry = engine.geometry
    summary = {
        "razn_version": __version__,
        "slide": str(slide.path),
        "mode": result.mode,
        **extra,
        "seconds": result.seconds,
        "patches": result.patches,
        "nodes": result.nodes,
        "level0_pixels_read": result.level0_pixels_read,
        "timings": result.timings,
        "tissue_fraction": result.tissue_fraction,
        "dimensions": list(slide.dimensions),
        "mpp": list(slide.mpp) if slide.mpp else None,
        "working_downsamples": list(geometry.downsamples),
        "patch_size": geometry.patch_size,
        "output_downsample": engine.output_downsample,
        "class_names": list(engine.config.data.class_names),
    }
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")


def write_overlay(
    path: Path, slide: Slide, engine: ZoomEngine, result: SlideResult, labels_path: Path
) -> None:
    thumbnail = slide.get_thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    size = (thumbnail.shape[1], thumbnail.shape[0])
    downsample = slide.dimensions[0] / size[0]
    labels = zarr.open_array(str(labels_path), mode="r")
    sampled = sample_labels(labels, engine.output_downsample, size, downsample)
    extents = [engine.geometry.extent(level) for level in range(engine.geometry.num_levels)]
    level_map = zoom_level_map(result.decisions.rows, extents, size, downsample)
    save_overlay(path, overlay_image(thumbnail, sampled, level_map))
