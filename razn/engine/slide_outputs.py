"""Write one slide's output files (:mod:`razn.outputs.layout`) from what the engine did.

The engine has already stitched ``labels.zarr``; from it and the decision log this
writes the decision table, the OME-Zarr class map and zoom map, the QuPath GeoJSON,
the overlay and, last, ``summary.json``. Each is built window by window or from a
bounded thumbnail, so memory does not grow with the slide.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import zarr

from razn import __version__
from razn.engine.zoom import SlideResult, ZoomEngine
from razn.outputs import layout
from razn.outputs.geojson import ome_zarr_to_geojson, write_geojson
from razn.outputs.layout import MIN_REGION_AREA
from razn.outputs.ngff_slide import write_slide_image
from razn.outputs.ome_zarr import (
    NgffVersion,
    class_colours,
    write_label_image,
    write_level_map,
)
from razn.outputs.overlay import overlay_image, sample_labels, save_overlay, zoom_level_map
from razn.slide import Slide, read_at_downsample

THUMBNAIL_SIDE = 1024


def write_slide_outputs(
    folder: Path,
    slide: Slide,
    engine: ZoomEngine,
    result: SlideResult,
    extra: dict[str, Any],
    ngff_version: NgffVersion = "0.4",
    viewer_outputs: bool = True,
    min_region_area: float = MIN_REGION_AREA,
) -> None:
    """Write every output but ``labels.zarr`` (already there) into ``folder``; without
    ``viewer_outputs`` only ``decisions.csv`` and ``summary.json`` (what scoring needs).
    ``min_region_area``: the smallest GeoJSON region, in µm² (level-0 px² without mpp)."""
    start = time.perf_counter()
    result.decisions.write_csv(folder / layout.DECISIONS)
    outputs: dict[str, Any] = {"ngff_version": ngff_version if viewer_outputs else None}
    if viewer_outputs:
        min_px = region_area_px(min_region_area, slide.mpp)
        write_viewer_outputs(folder, slide, engine, result, ngff_version, min_px)
        outputs["min_region_area"] = min_region_area
        outputs["min_region_area_unit"] = "µm²" if slide.mpp else "level-0 px²"
    outputs["output_seconds"] = time.perf_counter() - start
    write_summary(folder / layout.SUMMARY, slide, engine, result, {**extra, **outputs})


SOURCE_IMAGE = "../../"
"""Where a label image under ``slide.ome.zarr/labels/<name>/`` finds its image."""


def region_area_px(area: float, mpp: tuple[float, float] | None) -> float:
    """``area`` in µm² as level-0 px² (taken as px² already when the slide has no mpp)."""
    return float(area) / (mpp[0] * mpp[1]) if mpp else float(area)


def write_viewer_outputs(
    folder: Path,
    slide: Slide,
    engine: ZoomEngine,
    result: SlideResult,
    ngff_version: NgffVersion,
    min_region_px: float = 0.0,
) -> None:
    """The slide's OME-Zarr (an RGB pyramid holding the class map and the zoom map as its
    labels), the QuPath GeoJSON and the overlay."""
    labels = zarr.open_array(str(folder / layout.LABELS), mode="r")
    d_out, mpp = engine.output_downsample, slide.mpp
    class_names = list(engine.config.data.class_names)
    name = Path(slide.path).stem if slide.path else folder.name
    write_slide_image(
        folder / layout.IMAGE_OME,
        lambda location, downsample, size: read_at_downsample(slide, location, downsample, size),
        slide.dimensions,
        d_out,
        mpp,
        name,
        ngff_version,
    )
    write_label_image(
        folder / layout.LABELS_OME,
        labels,
        d_out,
        mpp,
        class_names,
        engine.config.data.class_colours,
        version=ngff_version,
        source_image=SOURCE_IMAGE,
    )
    geometry = engine.geometry
    write_level_map(
        folder / layout.ZOOM_LEVELS_OME,
        result.decisions.rows,
        slide.dimensions,
        d_out,
        geometry.patch_size,
        geometry.downsamples,
        mpp,
        version=ngff_version,
        source_image=SOURCE_IMAGE,
    )
    regions = ome_zarr_to_geojson(folder / layout.LABELS_OME, min_area_px=min_region_px)
    write_geojson(folder / layout.GEOJSON, regions)
    write_overlay(folder / layout.OVERLAY, slide, engine, result)


def write_summary(
    path: Path, slide: Slide, engine: ZoomEngine, result: SlideResult, extra: dict[str, Any]
) -> None:
    """``summary.json``: what was done to the slide, at what cost, with which geometry."""
    geometry = engine.geometry
    summary = {
        "razn_version": __version__,
        "slide": str(Path(slide.path).resolve()) if slide.path else None,
        "mode": result.mode,
        **extra,
        "seconds": result.seconds,
        "patches": result.patches,
        "nodes": result.nodes,
        "zoomed": result.zoomed,
        "refined": result.refined,
        **_budget_used(result),
        "level0_pixels_read": result.level0_pixels_read,
        "timings": result.timings,
        "tissue_fraction": result.tissue_fraction,
        "dimensions": list(slide.dimensions),
        "mpp": list(slide.mpp) if slide.mpp else None,
        "working_downsamples": list(geometry.downsamples),
        "patch_size": geometry.patch_size,
        "output_downsample": engine.output_downsample,
        "class_names": list(engine.config.data.class_names),
        "class_colours": class_colours(
            engine.config.data.num_classes, engine.config.data.class_colours
        ),
    }
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")


def _budget_used(result: SlideResult) -> dict[str, Any]:
    """``cip_patches`` and ``budget_used`` (this slide's patches as a share of cip's) when
    they were counted."""
    if result.cip_patches is None:
        return {}
    used = sum(result.patches) / result.cip_patches if result.cip_patches else 0.0
    return {"cip_patches": result.cip_patches, "budget_used": used}


def write_overlay(path: Path, slide: Slide, engine: ZoomEngine, result: SlideResult) -> None:
    """The thumbnail (longest side ``THUMBNAIL_SIDE``) with the classes, beside the zoom map.

    Classes are sampled from the coarsest level of ``labels.ome.zarr`` (beside ``path``)
    whose pixels are no larger than a thumbnail pixel: a few chunks, not the whole map.
    """
    thumbnail = slide.get_thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    size = (thumbnail.shape[1], thumbnail.shape[0])
    downsample = slide.dimensions[0] / size[0]
    labels, labels_downsample = _pyramid_level(
        path.parent / layout.LABELS_OME, engine.output_downsample, downsample
    )
    sampled = sample_labels(labels, labels_downsample, size, downsample)
    extents = [engine.geometry.extent(level) for level in range(engine.geometry.num_levels)]
    level_map = zoom_level_map(result.decisions.rows, extents, size, downsample)
    data = engine.config.data
    colours = class_colours(data.num_classes, data.class_colours)
    save_overlay(
        path,
        overlay_image(thumbnail, sampled, level_map, engine.geometry.downsamples, colours),
    )


def _pyramid_level(path: Path, output_downsample: float, wanted: float) -> tuple[Any, float]:
    """The coarsest level of a razn OME-Zarr whose downsample is at most ``wanted`` (level-0
    px per pixel), and its downsample."""
    group = zarr.open_group(str(path), mode="r")
    count = len(list(group.array_keys()))
    ratio = max(1.0, wanted / output_downsample)
    level = min(count - 1, math.floor(math.log2(ratio) + 1e-9))
    return group[str(level)], output_downsample * 2**level
