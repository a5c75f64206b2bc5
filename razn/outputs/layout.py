"""The files of one slide's output folder, ``OUT/<slide name>/``, by name.

Everything that writes or reads a slide's outputs takes the names from here, so the
layout is stated once:

| name | content |
|---|---|
| ``labels.zarr`` | uint8 class labels ``[y, x]`` at the output resolution (zarr v3), chunked by the finest patch: razn's own working copy, read by ``razn evaluate`` and the benchmark |
| ``slide.ome.zarr`` | the NGFF image group (:mod:`razn.outputs.ngff_slide`): a downsampled RGB pyramid of the slide, holding the two label images below |
| ``slide.ome.zarr/labels/classes`` | the same labels as an NGFF label image with a 2×2-mode pyramid |
| ``slide.ome.zarr/labels/zoom_levels`` | the working level at which each pixel was decided, same geometry |
| ``decisions.csv`` | every node visited (level, col, row, x, y, action, zoom_probability) |
| ``regions.geojson`` | QuPath annotations, one per connected region of each class |
| ``overlay.png`` | the thumbnail with the classes, beside the zoom map |
| ``summary.json`` | mode, λ, seconds, patches, timings, geometry; written last |
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MIN_REGION_AREA = 50.0
"""Default smallest region written to ``regions.geojson``: 50 µm² (about one nucleus), or
50 level-0 px² on a slide without mpp. Smaller specks are left out of the GeoJSON only;
the label images keep every pixel."""

LABELS = "labels.zarr"
IMAGE_OME = "slide.ome.zarr"
LABELS_OME = "slide.ome.zarr/labels/classes"
ZOOM_LEVELS_OME = "slide.ome.zarr/labels/zoom_levels"
DECISIONS = "decisions.csv"
GEOJSON = "regions.geojson"
OVERLAY = "overlay.png"
SUMMARY = "summary.json"

FILES = (LABELS, IMAGE_OME, LABELS_OME, ZOOM_LEVELS_OME, DECISIONS, GEOJSON, OVERLAY, SUMMARY)


def read_summary(folder: Path) -> dict[str, Any] | None:
    """The ``summary.json`` of an output folder, or None when it is missing or unreadable."""
    try:
        summary = json.loads((Path(folder) / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return summary if isinstance(summary, dict) else None


def is_complete(folder: Path, expected: dict[str, Any]) -> bool:
    """Whether ``folder`` holds every output file and a summary agreeing with ``expected``.

    ``expected`` maps summary keys (the slide's resolved path, the mode, the run, …) to
    the values a finished segmentation with the current settings would have written.
    """
    folder = Path(folder)
    if not all((folder / name).exists() for name in FILES):
        return False
    summary = read_summary(folder)
    return summary is not None and all(summary.get(k) == v for k, v in expected.items())
